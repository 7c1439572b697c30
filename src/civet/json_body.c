/*-------------------------------------------------------------------------
 *
 * json_body.c
 *	  The JSON request bodies: POST /kv/ and POST /txn.
 *
 * A client controls every byte: jansson parses only after json_depth_ok()
 * has bounded the nesting (jansson parses recursively), every key is
 * validated, every length bounded; base64 goes through OpenSSL's libcrypto
 * behind a strict check of its own.
 *
 * No PostgreSQL, no civetweb, no shared state: safe on any thread.  The
 * declarations are in http_parse.h, with the rest of the request parsing.
 *
 * IDENTIFICATION
 *	  src/civet/json_body.c
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
#error "json_body.c runs on civetweb threads: no PostgreSQL headers"
#endif

/*
 * jansson parses recursively and allows 2048 levels, more than a civetweb
 * thread's stack holds, so deep nesting is refused before it gets there.
 * Brackets inside strings do not count.
 */
static bool
json_depth_ok(const char *s, size_t len, int max_depth)
{
	int			depth = 0;
	bool		in_string = false;
	size_t		i;

	for (i = 0; i < len; i++)
	{
		char		c = s[i];

		if (in_string)
		{
			if (c == '\\')
				i++;
			else if (c == '"')
				in_string = false;
		}
		else if (c == '"')
			in_string = true;
		else if (c == '[' || c == '{')
		{
			if (++depth > max_depth)
				return false;
		}
		else if (c == ']' || c == '}')
			depth--;
	}
	return true;
}

/* POST /kv/: {"key": "...", "value": "...", "ttl": N} */
KvError
kv_parse_create_body(const char *body, size_t len, size_t max_key_len,
					 char **key, size_t *key_len,
					 char **value, size_t *value_len,
					 int64_t *ttl, const char **why)
{
	json_error_t jerr;
	json_t	   *root;
	json_t	   *jkey;
	json_t	   *jvalue;
	json_t	   *jttl;
	const char *name;
	json_t	   *member;
	KvError		err;

	*key = *value = NULL;
	*ttl = 0;
	if (!json_depth_ok(body, len, KV_JSON_MAX_DEPTH))
	{
		*why = "JSON body is nested too deeply";
		return KV_ERR_BAD_REQUEST;
	}
	/* let "\u0000" through, so that the key check reports it as bad_key */
	root = json_loadb(body, len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &jerr);
	if (root == NULL)
	{
		*why = "body is not valid JSON";
		return KV_ERR_BAD_REQUEST;
	}
	if (!json_is_object(root))
	{
		*why = "body must be a JSON object";
		err = KV_ERR_BAD_REQUEST;
		goto done;
	}
	json_object_foreach(root, name, member)
	{
		if (strcmp(name, "key") != 0 && strcmp(name, "value") != 0 &&
			strcmp(name, "ttl") != 0)
		{
			*why = "unknown field: only \"key\", \"value\" and \"ttl\" are accepted";
			err = KV_ERR_BAD_REQUEST;
			goto done;
		}
	}
	jkey = json_object_get(root, "key");
	jvalue = json_object_get(root, "value");
	jttl = json_object_get(root, "ttl");
	if (!json_is_string(jkey) || !json_is_string(jvalue))
	{
		*why = "\"key\" and \"value\" must be JSON strings";
		err = KV_ERR_BAD_REQUEST;
		goto done;
	}
	if (jttl != NULL && !json_is_null(jttl))
	{
		if (!json_is_integer(jttl) || !kv_ttl_valid(json_integer_value(jttl)))
		{
			*why = "\"ttl\" must be a whole number of seconds between 1 and 100 years";
			err = KV_ERR_BAD_REQUEST;
			goto done;
		}
		*ttl = json_integer_value(jttl);
	}
	*key_len = json_string_length(jkey);
	err = kv_check_key(json_string_value(jkey), *key_len, max_key_len);
	if (err != KV_ERR_NONE)
	{
		*why = err == KV_ERR_KEY_TOO_LONG ? "key is too long"
			: "key must be non-empty UTF-8 without NUL";
		goto done;
	}
	*value_len = json_string_length(jvalue);
	*key = malloc(*key_len + 1);
	*value = malloc(*value_len + 1);
	if (*key == NULL || *value == NULL)
	{
		free(*key);
		free(*value);
		*key = *value = NULL;
		*why = "out of memory";
		err = KV_ERR_INTERNAL;
		goto done;
	}
	memcpy(*key, json_string_value(jkey), *key_len + 1);
	memcpy(*value, json_string_value(jvalue), *value_len + 1);
	err = KV_ERR_NONE;

done:
	json_decref(root);
	return err;
}

/*---- POST /txn ----*/

static bool
base64_char(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
		(c >= '0' && c <= '9') || c == '+' || c == '/';
}

/*
 * Strict base64 (RFC 4648: padded, no whitespace, no line breaks) into a
 * malloc'd, NUL-terminated buffer; NULL when 'in' is not that (*oom: or
 * when memory ran out).  EVP_DecodeBlock() alone would skip surrounding
 * whitespace and count the padding as decoded zero bytes, so the alphabet
 * and the padding are checked here and the padding taken off its count.
 */
static char *
base64_decode(const char *in, size_t len, size_t *out_len, bool *oom)
{
	size_t		pad = 0;
	size_t		i;
	char	   *out;
	int			n;

	*oom = false;
	*out_len = 0;
	if (len % 4 != 0 || len > INT_MAX)
		return NULL;
	while (len > 0 && pad < 2 && in[len - 1 - pad] == '=')
		pad++;
	for (i = 0; i < len - pad; i++)
		if (!base64_char(in[i]))
			return NULL;
	out = malloc(len / 4 * 3 + 1);
	if (out == NULL)
	{
		*oom = true;
		return NULL;
	}
	n = len == 0 ? 0 : EVP_DecodeBlock((unsigned char *) out,
									   (const unsigned char *) in, (int) len);
	if (n < 0 || (size_t) n < pad)
	{
		free(out);
		return NULL;
	}
	*out_len = (size_t) n - pad;
	out[*out_len] = '\0';
	return out;
}

/* Is the JSON string 's' exactly 'lit'?  (A JSON string may hold a NUL.) */
static bool
json_string_is(const json_t *s, const char *lit)
{
	size_t		len = strlen(lit);

	return json_is_string(s) && json_string_length(s) == len &&
		memcmp(json_string_value(s), lit, len) == 0;
}

static bool
name_is(const char *name, size_t name_len, const char *lit)
{
	return name_len == strlen(lit) && memcmp(name, lit, name_len) == 0;
}

/* May an operation of this kind have a field of this name? */
static bool
txn_field_allowed(KvTxnOpKind kind, const char *name, size_t name_len)
{
	if (name_is(name, name_len, "op") || name_is(name, name_len, "key"))
		return true;
	switch (kind)
	{
		case KV_TXN_CHECK:
			return name_is(name, name_len, "version");
		case KV_TXN_PUT:
			return name_is(name, name_len, "value") ||
				name_is(name, name_len, "value_base64") ||
				name_is(name, name_len, "content_type") ||
				name_is(name, name_len, "ttl");
		case KV_TXN_GET:
		case KV_TXN_DELETE:
			break;
	}
	return false;
}

static const char *
txn_fields_message(KvTxnOpKind kind)
{
	switch (kind)
	{
		case KV_TXN_CHECK:
			return "unknown field: a check takes \"op\", \"key\" and \"version\"";
		case KV_TXN_PUT:
			return "unknown field: a put takes \"op\", \"key\", \"value\" or \"value_base64\", \"content_type\" and \"ttl\"";
		case KV_TXN_GET:
			return "unknown field: a get takes \"op\" and \"key\"";
		case KV_TXN_DELETE:
			return "unknown field: a delete takes \"op\" and \"key\"";
	}
	return "unknown field";
}

/*
 * The value of a put: "value" (text, recorded as text/plain; charset=utf-8
 * as POST /kv/ does) or "value_base64" (bytes, recorded without a content
 * type, as a PUT without Content-Type); "content_type" overrides either,
 * null meaning none.
 */
static KvError
parse_txn_value(json_t *jop, int64_t max_value_size, KvTxnOp *op,
				const char **why)
{
	json_t	   *jtext = json_object_get(jop, "value");
	json_t	   *jb64 = json_object_get(jop, "value_base64");
	json_t	   *jct = json_object_get(jop, "content_type");
	const char *ct = NULL;
	bool		oom = false;

	if ((jtext == NULL) == (jb64 == NULL))
	{
		*why = "a put needs one of \"value\" (a string) and \"value_base64\" (base64 of the bytes)";
		return KV_ERR_BAD_REQUEST;
	}
	if (!json_is_string(jtext ? jtext : jb64))
	{
		*why = "\"value\" and \"value_base64\" must be JSON strings";
		return KV_ERR_BAD_REQUEST;
	}
	if (jtext != NULL)
	{
		op->value_len = json_string_length(jtext);
		if ((int64_t) op->value_len <= max_value_size)
		{
			op->value = malloc(op->value_len + 1);
			oom = op->value == NULL;
			if (!oom)
				memcpy(op->value, json_string_value(jtext), op->value_len + 1);
		}
	}
	else
	{
		size_t		b64_len = json_string_length(jb64);

		/* decoded, base64 is 3/4 of its length less the padding */
		if ((int64_t) (b64_len / 4 * 3) - 2 > max_value_size)
			op->value_len = b64_len / 4 * 3;	/* too large: not decoded */
		else
		{
			op->value = base64_decode(json_string_value(jb64), b64_len,
									  &op->value_len, &oom);
			if (op->value == NULL && !oom)
			{
				*why = "\"value_base64\" is not base64 (RFC 4648, with padding, without line breaks)";
				return KV_ERR_BAD_REQUEST;
			}
		}
	}
	if (oom)
	{
		*why = "out of memory";
		return KV_ERR_INTERNAL;
	}
	if ((int64_t) op->value_len > max_value_size)
	{
		*why = "value is larger than kvserver.max_value_size";
		return KV_ERR_VALUE_TOO_LARGE;
	}

	if (jct != NULL && !json_is_null(jct))
	{
		if (!json_is_string(jct) ||
			!kv_content_type_valid(json_string_value(jct), json_string_length(jct)))
		{
			*why = "\"content_type\" must be type/subtype of token characters, optionally followed by ; and parameters: 1 to 255 bytes of printable ASCII";
			return KV_ERR_BAD_REQUEST;
		}
		ct = json_string_value(jct);
	}
	else if (jct == NULL && jtext != NULL)
		ct = KV_TEXT_CONTENT_TYPE;
	if (ct != NULL && (op->content_type = strdup(ct)) == NULL)
	{
		*why = "out of memory";
		return KV_ERR_INTERNAL;
	}
	return KV_ERR_NONE;
}

/* One element of "ops". */
static KvError
parse_txn_op(json_t *jop, size_t max_key_len, int64_t max_value_size,
			 KvTxnOp *op, const char **why)
{
	json_t	   *jkind;
	json_t	   *jkey;
	json_t	   *jversion;
	json_t	   *jttl;
	void	   *iter;
	KvError		err;

	if (!json_is_object(jop))
	{
		*why = "each operation must be a JSON object";
		return KV_ERR_BAD_REQUEST;
	}
	jkind = json_object_get(jop, "op");
	if (json_string_is(jkind, "check"))
		op->kind = KV_TXN_CHECK;
	else if (json_string_is(jkind, "get"))
		op->kind = KV_TXN_GET;
	else if (json_string_is(jkind, "put"))
		op->kind = KV_TXN_PUT;
	else if (json_string_is(jkind, "delete"))
		op->kind = KV_TXN_DELETE;
	else
	{
		*why = "\"op\" must be \"check\", \"get\", \"put\" or \"delete\"";
		return KV_ERR_BAD_REQUEST;
	}
	for (iter = json_object_iter(jop); iter != NULL;
		 iter = json_object_iter_next(jop, iter))
	{
		if (!txn_field_allowed(op->kind, json_object_iter_key(iter),
							   json_object_iter_key_len(iter)))
		{
			*why = txn_fields_message(op->kind);
			return KV_ERR_BAD_REQUEST;
		}
	}

	jkey = json_object_get(jop, "key");
	if (!json_is_string(jkey))
	{
		*why = "\"key\" must be a JSON string";
		return KV_ERR_BAD_REQUEST;
	}
	op->key_len = json_string_length(jkey);
	err = kv_check_key(json_string_value(jkey), op->key_len, max_key_len);
	if (err != KV_ERR_NONE)
	{
		*why = err == KV_ERR_KEY_TOO_LONG ? "key is longer than kvserver.max_key_length"
			: "key must be non-empty UTF-8 without NUL";
		return err;
	}
	if ((op->key = strdup(json_string_value(jkey))) == NULL)
	{
		*why = "out of memory";
		return KV_ERR_INTERNAL;
	}

	switch (op->kind)
	{
		case KV_TXN_CHECK:
			jversion = json_object_get(jop, "version");
			if (!json_is_integer(jversion) || json_integer_value(jversion) < 0)
			{
				*why = "a check needs \"version\": the key's version, or 0 for \"the key must not exist\"";
				return KV_ERR_BAD_REQUEST;
			}
			op->check_version = json_integer_value(jversion);
			break;
		case KV_TXN_PUT:
			jttl = json_object_get(jop, "ttl");
			if (jttl != NULL && !json_is_null(jttl))
			{
				if (!json_is_integer(jttl) || !kv_ttl_valid(json_integer_value(jttl)))
				{
					*why = "\"ttl\" must be a whole number of seconds between 1 and 100 years";
					return KV_ERR_BAD_REQUEST;
				}
				op->ttl_seconds = json_integer_value(jttl);
			}
			return parse_txn_value(jop, max_value_size, op, why);
		case KV_TXN_GET:
		case KV_TXN_DELETE:
			break;
	}
	return KV_ERR_NONE;
}

typedef struct TxnKeyRef
{
	const char *key;
	size_t		len;
	int			op;
} TxnKeyRef;

static int
keyref_cmp(const void *a, const void *b)
{
	const TxnKeyRef *x = a;
	const TxnKeyRef *y = b;
	int			c = memcmp(x->key, y->key, x->len < y->len ? x->len : y->len);

	if (c != 0)
		return c;
	if (x->len != y->len)
		return x->len < y->len ? -1 : 1;
	return x->op < y->op ? -1 : x->op > y->op;
}

/*
 * The first write (put or delete) whose key an earlier write named: its
 * index, or -1; -2 when memory ran out.  Sorted, so a long transaction
 * costs n log n, not n^2.
 */
static int
repeated_write(const KvTxnOp *ops, int nops)
{
	TxnKeyRef  *refs = malloc(sizeof(TxnKeyRef) * (nops > 0 ? nops : 1));
	int			n = 0;
	int			found = -1;
	int			i;

	if (refs == NULL)
		return -2;
	for (i = 0; i < nops; i++)
	{
		if (ops[i].kind != KV_TXN_PUT && ops[i].kind != KV_TXN_DELETE)
			continue;
		refs[n].key = ops[i].key;
		refs[n].len = ops[i].key_len;
		refs[n].op = i;
		n++;
	}
	qsort(refs, n, sizeof(TxnKeyRef), keyref_cmp);
	for (i = 1; i < n; i++)
	{
		/* sorted by key, then index: refs[i] repeats a key named earlier */
		if (refs[i].len == refs[i - 1].len &&
			memcmp(refs[i].key, refs[i - 1].key, refs[i].len) == 0 &&
			(found < 0 || refs[i].op < found))
			found = refs[i].op;
	}
	free(refs);
	return found;
}

/*
 * POST /txn: {"ops": [{"op": "check", "key": K, "version": N},
 * {"op": "get", "key": K}, {"op": "put", "key": K, "value": TEXT |
 * "value_base64": B64, "content_type": CT, "ttl": N},
 * {"op": "delete", "key": K}, ...]}.
 *
 * Everything is checked here, before the database sees any of it: 1 to
 * max_ops operations, each with exactly the fields of its kind, every key
 * by the key rule, every value within max_value_size, and no key written
 * twice (which write would win is not worth a rule).  *ops is a malloc'd
 * array of *nops operations.  On an error, *bad_op is the index of the
 * operation at fault, or -1 when the body as a whole is.
 */
KvError
kv_parse_txn_body(const char *body, size_t len, size_t max_key_len,
				  int max_ops, int64_t max_value_size,
				  KvTxnOp **ops, int *nops, int *bad_op, const char **why)
{
	json_error_t jerr;
	json_t	   *root;
	json_t	   *jops;
	void	   *iter;
	KvTxnOp    *out = NULL;
	size_t		n = 0;
	size_t		i;
	int			repeated;
	KvError		err = KV_ERR_BAD_REQUEST;

	*ops = NULL;
	*nops = 0;
	*bad_op = -1;
	if (!json_depth_ok(body, len, KV_JSON_MAX_DEPTH))
	{
		*why = "JSON body is nested too deeply";
		return KV_ERR_BAD_REQUEST;
	}
	/* let "\u0000" through, so that the key check reports it as bad_key */
	root = json_loadb(body, len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &jerr);
	if (root == NULL)
	{
		*why = "body is not valid JSON";
		return KV_ERR_BAD_REQUEST;
	}
	if (!json_is_object(root))
	{
		*why = "body must be a JSON object: {\"ops\": [...]}";
		goto fail;
	}
	for (iter = json_object_iter(root); iter != NULL;
		 iter = json_object_iter_next(root, iter))
	{
		if (!name_is(json_object_iter_key(iter), json_object_iter_key_len(iter), "ops"))
		{
			*why = "unknown field: only \"ops\" is accepted";
			goto fail;
		}
	}
	jops = json_object_get(root, "ops");
	if (!json_is_array(jops))
	{
		*why = "\"ops\" must be a JSON array of operations";
		goto fail;
	}
	n = json_array_size(jops);
	if (n == 0 || n > (size_t) max_ops)
	{
		*why = "\"ops\" must hold 1 to kvserver.max_txn_ops operations";
		goto fail;
	}
	out = calloc(n, sizeof(KvTxnOp));
	if (out == NULL)
	{
		*why = "out of memory";
		err = KV_ERR_INTERNAL;
		goto fail;
	}
	for (i = 0; i < n; i++)
	{
		err = parse_txn_op(json_array_get(jops, i), max_key_len,
						   max_value_size, &out[i], why);
		if (err != KV_ERR_NONE)
		{
			*bad_op = (int) i;
			goto fail;
		}
	}
	repeated = repeated_write(out, (int) n);
	if (repeated != -1)
	{
		*bad_op = repeated >= 0 ? repeated : -1;
		*why = repeated >= 0
			? "a transaction may write (put or delete) each key once: an earlier operation already writes this key"
			: "out of memory";
		err = repeated >= 0 ? KV_ERR_BAD_REQUEST : KV_ERR_INTERNAL;
		goto fail;
	}
	json_decref(root);
	*ops = out;
	*nops = (int) n;
	return KV_ERR_NONE;

fail:
	if (err == KV_ERR_NONE)
		err = KV_ERR_BAD_REQUEST;
	kvq_txn_ops_free(out, (int) n);
	json_decref(root);
	return err;
}
