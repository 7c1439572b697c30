/*-------------------------------------------------------------------------
 *
 * json_reply.c
 *	  The JSON replies of the HTTP API: errors, listings, writes, /health and transaction results.
 *
 * Strings from the table (keys, values, content types) are any SQL role's
 * writing, so everything is escaped to ASCII by jansson.
 *
 * No PostgreSQL, no civetweb, no shared state: safe on any thread.  The
 * declarations are in http_parse.h, with the rest of the request parsing.
 *
 * IDENTIFICATION
 *	  src/civet/json_reply.c
 *
 *-------------------------------------------------------------------------
 */
#include "http_parse.h"

#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#ifdef PG_MAJORVERSION
#error "json_reply.c runs on civetweb threads: no PostgreSQL headers"
#endif

/* A JSON string holding the base64 of in[0..len); NULL on failure. */
static json_t *
base64_string(const char *in, size_t len)
{
	size_t		out_len;
	char	   *out;
	json_t	   *str;

	if (len > (size_t) INT_MAX / 4 * 3 - 3)
		return NULL;
	out_len = 4 * ((len + 2) / 3);
	out = malloc(out_len + 1);
	if (out == NULL)
		return NULL;
	EVP_EncodeBlock((unsigned char *) out, (const unsigned char *) in, (int) len);
	str = json_stringn(out, out_len);
	free(out);
	return str;
}

static char *
dump_flags(json_t *obj, size_t flags, size_t *len)
{
	char	   *s = obj ? json_dumps(obj, JSON_COMPACT | JSON_ENSURE_ASCII | flags) : NULL;

	json_decref(obj);
	if (s == NULL)
		s = strdup("{\"error\":\"internal\",\"message\":\"out of memory\"}");
	if (s != NULL && len != NULL)
		*len = strlen(s);
	return s;
}

static char *
dump(json_t *obj, size_t *len)
{
	return dump_flags(obj, 0, len);
}

/*
 * {"error": code, "message": text}.  The message may quote client text that
 * is not UTF-8; jansson refuses such strings, so fall back to a fixed one.
 */
char *
kv_json_error(KvError error, const char *message, size_t *len)
{
	return kv_json_error_op(error, message, -1, len);
}

/* The same, with "op": the index of the operation of POST /txn at fault. */
char *
kv_json_error_op(KvError error, const char *message, int op, size_t *len)
{
	json_t	   *msg = json_string(message ? message : "");
	json_t	   *obj;

	if (msg == NULL)
		msg = json_string("(message not valid UTF-8)");
	obj = json_pack("{s:s, s:o}", "error", kv_error_code(error),
					"message", msg);
	if (obj != NULL && op >= 0 &&
		json_object_set_new(obj, "op", json_integer(op)) != 0)
	{
		json_decref(obj);
		obj = NULL;
	}
	return dump(obj, len);
}

char *
kv_json_keys(char **keys, int nkeys, const char *next, size_t *len)
{
	json_t	   *arr = json_array();
	int			i;

	for (i = 0; i < nkeys; i++)
		json_array_append_new(arr, json_string(keys[i]));
	return dump(json_pack("{s:o, s:o}", "keys", arr,
						  "next", next ? json_string(next) : json_null()),
				len);
}

/* {"key": ..., "version": N}, the answer to a write */
char *
kv_json_write_reply(const char *key, size_t key_len, int64_t version)
{
	return dump(json_pack("{s:s%, s:I}", "key", key, key_len,
						  "version", (json_int_t) version), NULL);
}

/* "expires_at" when the key has an expiry; false if it cannot be added. */
static bool
set_expires_at(json_t *obj, int64_t expires_at)
{
	char		ts[64];

	if (expires_at == 0)
		return true;
	return kv_format_timestamp(expires_at, ts, sizeof(ts)) &&
		json_object_set_new(obj, "expires_at", json_string(ts)) == 0;
}

/* One entry of the answer to POST /txn; NULL when out of memory. */
static json_t *
txn_result(const KvTxnOp *op)
{
	/*
	 * Not json_object(): the server binary defines a function of that name
	 * (the SQL json_object()), and the dynamic linker binds ours to it.
	 */
	json_t	   *obj = json_pack("{}");
	bool		ok = obj != NULL;
	const char *value;
	const char *ct;

	switch (op->kind)
	{
		case KV_TXN_CHECK:
		case KV_TXN_GET:
			ok = ok && json_object_set_new(obj, "found", json_boolean(op->found)) == 0;
			if (!op->found)
				break;
			ok = ok && json_object_set_new(obj, "version", json_integer(op->version)) == 0;
			if (op->kind == KV_TXN_CHECK)
				break;
			/* text as a string; anything else as base64 */
			value = op->reply_value ? op->reply_value : "";
			if (kv_utf8_valid(value, op->reply_value_len))
				ok = ok && json_object_set_new(obj, "value",
											   json_stringn(value, op->reply_value_len)) == 0;
			else
				ok = ok && json_object_set_new(obj, "value_base64",
											   base64_string(value, op->reply_value_len)) == 0;
			/* as in replies: one that breaks the rule counts as none */
			ct = op->reply_content_type;
			if (ct != NULL &&
				kv_content_type_valid(ct, strnlen(ct, KV_MAX_CONTENT_TYPE_LEN + 1)))
				ok = ok && json_object_set_new(obj, "content_type",
											   json_string(ct)) == 0;
			ok = ok && set_expires_at(obj, op->expires_at);
			break;
		case KV_TXN_PUT:
			ok = ok && json_object_set_new(obj, "version", json_integer(op->version)) == 0 &&
				json_object_set_new(obj, "created", json_boolean(op->found)) == 0 &&
				set_expires_at(obj, op->expires_at);
			break;
		case KV_TXN_DELETE:
			ok = ok && json_object_set_new(obj, "existed", json_boolean(op->found)) == 0;
			break;
	}
	if (!ok)
	{
		json_decref(obj);
		return NULL;
	}
	return obj;
}

/*
 * {"results": [...]}, one entry per operation of a transaction that
 * committed: check {"found", "version"}; get {"found", "version", "value"
 * (valid UTF-8) or "value_base64", "content_type", "expires_at"}; put
 * {"version", "created", "expires_at"}; delete {"existed"}.  NULL when it
 * cannot be built (out of memory, an expiry that cannot be formatted): the
 * caller answers 500, not a 200 with an error in it.
 */
char *
kv_json_txn_results(const KvTxnOp *ops, int nops, size_t *len)
{
	json_t	   *arr = json_array();
	json_t	   *root;
	char	   *s;
	int			i;

	for (i = 0; arr != NULL && i < nops; i++)
	{
		json_t	   *one = txn_result(&ops[i]);

		if (one == NULL || json_array_append_new(arr, one) != 0)
		{
			json_decref(arr);
			arr = NULL;
		}
	}
	if (arr == NULL || (root = json_pack("{s:o}", "results", arr)) == NULL)
		return NULL;
	s = json_dumps(root, JSON_COMPACT | JSON_ENSURE_ASCII);
	json_decref(root);
	if (s != NULL && len != NULL)
		*len = strlen(s);
	return s;
}

/*
 * {"status": "ok", "role": "primary", "database": ...}; a standby adds
 * "replay_lsn" ("0/3000148", as pg_last_wal_replay_lsn() shows it) and
 * "replay_lag_seconds" (null when unknown).  Reals get 12 significant
 * digits: microseconds for a lag under 10^6 s, without the binary noise of
 * jansson's default 17 ("0.0060000000000000001").
 */
char *
kv_json_health(const char *database, bool standby, uint64_t replay_lsn,
			   int64_t replay_lag_us)
{
	json_t	   *obj;
	char		lsn[32];

	obj = json_pack("{s:s, s:s, s:s}", "status", "ok",
					"role", standby ? "standby" : "primary",
					"database", database);
	if (obj != NULL && standby)
	{
		snprintf(lsn, sizeof(lsn), "%X/%X", (unsigned) (replay_lsn >> 32),
				 (unsigned) replay_lsn);
		if (json_object_set_new(obj, "replay_lsn", json_string(lsn)) != 0 ||
			json_object_set_new(obj, "replay_lag_seconds",
								replay_lag_us >= 0
								? json_real((double) replay_lag_us / 1e6)
								: json_null()) != 0)
		{
			json_decref(obj);
			obj = NULL;
		}
	}
	return dump_flags(obj, JSON_REAL_PRECISION(12), NULL);
}
