/*-------------------------------------------------------------------------
 *
 * http_keys.c
 *	  The key resources: GET, HEAD, PUT and DELETE of /kv/{key}; listing
 *	  (GET /kv/?prefix=) and creating (POST /kv/) in the collection.
 *
 * A handler validates and bounds everything a client sent, then either
 * answers at once (errors, writes on a hot standby, and GET/HEAD cache
 * hits read lock-free by cache_fastpath.c) or builds a KvRequest for the worker's main thread and
 * waits for its reply (kv_run_request).  A GET with ?wait= (and
 * If-None-Match, or for a listing &index=) is a watch: http_watch.c.
 *
 * civetweb side: runs on civetweb threads, no PostgreSQL.
 *
 * IDENTIFICATION
 *	  src/civet/http_keys.c
 *
 *-------------------------------------------------------------------------
 */
#include <civetweb.h>
#include <stdlib.h>
#include <string.h>

#include "cache_fastpath.h"
#include "http_auth.h"
#include "http_handlers.h"
#include "http_parse.h"
#include "http_reply.h"
#include "http_watch.h"
#include "kv_api.h"
#include "node_role.h"
#include "request_queue.h"

#ifdef PG_MAJORVERSION
#error "http_keys.c runs on civetweb threads: no PostgreSQL headers"
#endif

static int
send_out_of_memory(const KvHttpCtx *ctx)
{
	return kv_send_error(ctx, 500, KV_ERR_INTERNAL, "out of memory", NULL,
						 true);
}

/* A GET or HEAD answered from the cache on this thread; false: a miss. */
static bool
serve_cache_hit(const KvHttpCtx *ctx, const char *key, size_t key_len,
				int64_t if_none_match, int *status)
{
	KvFastValue fv;

	if (!kvfast_get(key, key_len, &fv))
		return false;
	*status = kv_send_value(ctx, fv.value, fv.value_len, fv.content_type,
							fv.version, fv.expires_at, true, if_none_match);
	free(fv.value);
	free(fv.content_type);
	return true;
}

/*
 * Fill a PUT request from the query (ttl), Content-Type and body.  Returns
 * 0, or the status it answered with (the caller frees the request).
 */
static int
read_put(const KvHttpCtx *ctx, KvRequest *req)
{
	const char *why;
	const char *ct;
	int			nct;
	int			rc;

	req->op = KV_OP_PUT;
	req->create_only = (req->if_none_match == KV_MATCH_ANY);
	req->if_none_match = KV_MATCH_NONE;
	if (kv_parse_ttl(ctx->ri->query_string, &req->ttl_seconds, &why) != KV_ERR_NONE)
		return kv_send_error(ctx, 400, KV_ERR_BAD_REQUEST, why, NULL, true);
	/* checked before the body is read: the database never sees a bad one */
	ct = kv_find_header(ctx->ri, "Content-Type", &nct);
	if (nct > 1)
		return kv_send_error(ctx, 400, KV_ERR_BAD_REQUEST,
							 "repeated Content-Type header", NULL, true);
	if (ct != NULL && !kv_content_type_valid(ct, strlen(ct)))
		return kv_send_error(ctx, 400, KV_ERR_BAD_REQUEST,
							 "Content-Type must be type/subtype of token characters, optionally followed by ; and parameters: 1 to 255 bytes of printable ASCII",
							 NULL, true);
	rc = kv_read_body(ctx, kv_limit_value_size(), &req->value, &req->value_len);
	if (rc == 413)
		return kv_send_error(ctx, 413, KV_ERR_VALUE_TOO_LARGE,
							 "value is larger than kvserver.max_value_size",
							 NULL, true);
	if (rc != 0)
		return kv_send_bad_body(ctx);
	if (ct != NULL && (req->content_type = strdup(ct)) == NULL)
		return send_out_of_memory(ctx);
	return 0;
}

/* GET, HEAD, PUT and DELETE of /kv/{key}. */
int
kv_handle_key(const KvHttpCtx *ctx, const char *key_raw)
{
	KvRequest  *req;
	char	   *key;
	size_t		key_len;
	KvError		err;
	int64_t		if_match = KV_MATCH_NONE;
	int64_t		if_none_match = KV_MATCH_NONE;
	const char *why;
	int			status;

	if (!ctx->reads && ctx->method != KV_METHOD_PUT &&
		ctx->method != KV_METHOD_DELETE)
		return kv_send_error(ctx, 405, KV_ERR_METHOD_NOT_ALLOWED,
							 "allowed methods for a key are GET, HEAD, PUT and DELETE",
							 "GET, HEAD, PUT, DELETE", false);

	err = kv_decode_key(key_raw, kv_limit_key_length(), &key, &key_len);
	if (err != KV_ERR_NONE)
		return kv_send_error(ctx, 400, err,
							 err == KV_ERR_KEY_TOO_LONG
							 ? "key is longer than kvserver.max_key_length"
							 : "key must be 1 or more bytes of valid UTF-8, without NUL, with valid percent-escapes",
							 NULL, false);

	why = kv_parse_preconditions(ctx, &if_match, &if_none_match);
	if (why != NULL)
	{
		free(key);
		return kv_send_error(ctx, 400, KV_ERR_BAD_REQUEST, why, NULL,
							 ctx->method == KV_METHOD_PUT);
	}

	/* a hot standby takes no writes: refused here, its body never read */
	if (!ctx->reads && kv_node_is_standby())
	{
		free(key);
		return kv_send_standby_write(ctx);
	}

	/* ?wait= with If-None-Match: wait for the key to change (http_watch.c) */
	if (ctx->reads)
	{
		int64_t		wait_ms;

		if (kv_parse_watch_query(ctx->ri->query_string, &wait_ms, NULL,
								 NULL, &why) != KV_ERR_NONE)
		{
			free(key);
			return kv_send_error(ctx, 400, KV_ERR_BAD_REQUEST, why, NULL,
								 false);
		}
		if (wait_ms >= 0 && if_none_match != KV_MATCH_NONE)
		{
			status = kv_watch_key(ctx, key, key_len, if_none_match, wait_ms);
			free(key);
			return status;
		}
	}

	/* only for a role the credential cache knows may read the whole table */
	if (ctx->reads && ctx->id != NULL && ctx->id->verified && ctx->id->may_hit &&
		serve_cache_hit(ctx, key, key_len, if_none_match, &status))
	{
		free(key);
		return status;
	}

	req = kvq_request_new(KV_OP_GET);
	if (req == NULL)
	{
		free(key);
		return send_out_of_memory(ctx);
	}
	req->key = key;
	req->key_len = key_len;
	req->if_match = if_match;
	req->if_none_match = if_none_match;
	if (ctx->method == KV_METHOD_PUT && (status = read_put(ctx, req)) != 0)
	{
		kvq_request_free(req);
		return status;
	}
	if (ctx->method == KV_METHOD_DELETE)
		req->op = KV_OP_DELETE;
	return kv_run_request(ctx, req);
}

/*
 * GET /kv/?prefix=&after=&limit=: one page of keys, with X-Kv-Index; with
 * &wait= and &index=, a watch of the prefix (http_watch.c).
 */
static int
list_keys(const KvHttpCtx *ctx)
{
	const char *why = NULL;
	KvRequest  *req = kvq_request_new(KV_OP_LIST);
	int64_t		wait_ms;
	uint64_t	index;
	bool		has_index;

	if (req == NULL)
		return send_out_of_memory(ctx);
	if (kv_parse_list_query(ctx->ri->query_string, &req->prefix, &req->after,
							&req->limit, &why) != KV_ERR_NONE ||
		kv_parse_watch_query(ctx->ri->query_string, &wait_ms, &index,
							 &has_index, &why) != KV_ERR_NONE)
	{
		kvq_request_free(req);
		return kv_send_error(ctx, 400, KV_ERR_BAD_REQUEST, why, NULL, false);
	}
	if (wait_ms >= 0 && has_index)
		return kv_watch_list(ctx, req, wait_ms, index);
	return kv_list_now(ctx, req);
}

/* POST /kv/ with {"key": ..., "value": ...}: create a text value. */
static int
create_key(const KvHttpCtx *ctx)
{
	int64_t		max_value = kv_limit_value_size();
	const char *why = NULL;
	KvRequest  *req;
	char	   *body;
	size_t		len;
	int			rc;
	KvError		err;

	/* a hot standby takes no writes: refused here, its body never read */
	if (kv_node_is_standby())
		return kv_send_standby_write(ctx);

	/* JSON escapes can make a value up to six times longer in the body */
	rc = kv_read_body(ctx, max_value * 6 + 1024, &body, &len);
	if (rc == 413)
		return kv_send_error(ctx, 413, KV_ERR_VALUE_TOO_LARGE,
							 "body is too large for kvserver.max_value_size",
							 NULL, true);
	if (rc != 0)
		return kv_send_bad_body(ctx);
	req = kvq_request_new(KV_OP_CREATE);
	if (req == NULL)
	{
		free(body);
		return send_out_of_memory(ctx);
	}
	err = kv_parse_create_body(body, len, kv_limit_key_length(),
							   &req->key, &req->key_len,
							   &req->value, &req->value_len,
							   &req->ttl_seconds, &why);
	free(body);
	if (err == KV_ERR_NONE && (int64_t) req->value_len > max_value)
	{
		err = KV_ERR_VALUE_TOO_LARGE;
		why = "value is larger than kvserver.max_value_size";
	}
	if (err != KV_ERR_NONE)
	{
		kvq_request_free(req);
		return kv_send_error(ctx, err == KV_ERR_VALUE_TOO_LARGE ? 413 : 400,
							 err, why, NULL, false);
	}
	req->content_type = strdup(KV_TEXT_CONTENT_TYPE);
	if (req->content_type == NULL)
	{
		kvq_request_free(req);
		return send_out_of_memory(ctx);
	}
	return kv_run_request(ctx, req);
}

/* /kv/ and /kv: GET and HEAD list, POST creates. */
int
kv_handle_collection(const KvHttpCtx *ctx)
{
	if (ctx->reads)
		return list_keys(ctx);
	if (ctx->method == KV_METHOD_POST)
		return create_key(ctx);
	return kv_send_error(ctx, 405, KV_ERR_METHOD_NOT_ALLOWED,
						 "allowed methods for /kv/ are GET, HEAD and POST",
						 "GET, HEAD, POST", false);
}
