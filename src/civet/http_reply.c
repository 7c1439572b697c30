/*-------------------------------------------------------------------------
 *
 * http_reply.c
 *	  Write replies: JSON errors, stored values, JSON documents, static
 *	  pages, and the reply to a request the main thread answered.
 *
 * A reply is assembled in one buffer and written with one mg_write(), so a
 * client sees a whole response or a closed connection, never half a reply
 * that looks complete.
 *
 * Headers are built with a bounded appender: a header that would not fit
 * is a bug, and the reply becomes a 500 rather than a truncated or
 * overflowing one.  Every content type is checked here, whatever its
 * origin (a PUT, a table row that any role allowed to write kv_store may
 * have set before the CHECK constraint existed, the cache, a constant):
 * one that kv_content_type_valid() refuses is untrusted and replaced by
 * application/octet-stream, so stored data can never add a header or
 * split a reply.
 *
 * civetweb side: runs on civetweb threads, no PostgreSQL.
 *
 * IDENTIFICATION
 *	  src/civet/http_reply.c
 *
 *-------------------------------------------------------------------------
 */
#include "http_reply.h"

#include <civetweb.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http_auth.h"
#include "http_parse.h"
#include "node_role.h"

#ifdef PG_MAJORVERSION
#error "http_reply.c runs on civetweb threads: no PostgreSQL headers"
#endif

#define OCTET_STREAM "application/octet-stream"

static const char *
status_text(int status)
{
	switch (status)
	{
		case 200:
			return "OK";
		case 201:
			return "Created";
		case 204:
			return "No Content";
		case 304:
			return "Not Modified";
		case 307:
			return "Temporary Redirect";
		case 400:
			return "Bad Request";
		case 401:
			return "Unauthorized";
		case 403:
			return "Forbidden";
		case 404:
			return "Not Found";
		case 405:
			return "Method Not Allowed";
		case 409:
			return "Conflict";
		case 411:
			return "Length Required";
		case 412:
			return "Precondition Failed";
		case 413:
			return "Payload Too Large";
		case 429:
			return "Too Many Requests";
		case 500:
			return "Internal Server Error";
		case 503:
			return "Service Unavailable";
		case 505:
			return "HTTP Version Not Supported";
	}
	return "Error";
}

/*
 * The Content-Type to send for 'ct': itself if it passes the content type
 * rule, else application/octet-stream.  strnlen: a hostile content type is
 * never scanned past one byte more than the longest valid one.
 */
static const char *
content_type_sendable(const char *ct)
{
	size_t		len = strnlen(ct, KV_MAX_CONTENT_TYPE_LEN + 1);

	return kv_content_type_valid(ct, len) ? ct : OCTET_STREAM;
}

/*
 * A fixed buffer that headers are appended to; 'overflow' once full.  Room
 * for the longest Location besides the usual headers, and for a small body
 * after them, so that a typical reply is written from here with one
 * mg_write() and no allocation.  Appends are plain copies, not printf: a
 * cache hit spends most of its time in a handful of these.
 */
#define HEAD_ROOM	(1024 + KV_MAX_LOCATION_LEN)
#define SMALL_BODY	2048

typedef struct HeadBuf
{
	char		data[HEAD_ROOM + SMALL_BODY];
	size_t		len;
	bool		overflow;
} HeadBuf;

static void
head_mem(HeadBuf *h, const char *s, size_t n)
{
	if (h->overflow || n > HEAD_ROOM - h->len)
	{
		h->overflow = true;
		return;
	}
	memcpy(h->data + h->len, s, n);
	h->len += n;
}

static void
head_str(HeadBuf *h, const char *s)
{
	head_mem(h, s, strlen(s));
}

#define HEAD_LIT(h, lit)	head_mem((h), (lit), sizeof(lit) - 1)

static void
head_u64(HeadBuf *h, uint64_t v)
{
	char		digits[24];
	int			i = sizeof(digits);

	do
	{
		digits[--i] = (char) ('0' + v % 10);
		v /= 10;
	} while (v > 0);
	head_mem(h, digits + i, sizeof(digits) - i);
}

/* "Name: value\r\n" */
static void
head_field(HeadBuf *h, const char *name_colon, size_t name_len, const char *value)
{
	head_mem(h, name_colon, name_len);
	head_str(h, value);
	HEAD_LIT(h, "\r\n");
}

#define HEAD_FIELD(h, lit, value)	head_field((h), (lit), sizeof(lit) - 1, (value))

/* "Name: number\r\n" */
static void
head_number_field(HeadBuf *h, const char *name_colon, size_t name_len, uint64_t v)
{
	head_mem(h, name_colon, name_len);
	head_u64(h, v);
	HEAD_LIT(h, "\r\n");
}

#define HEAD_NUMBER(h, lit, v)	head_number_field((h), (lit), sizeof(lit) - 1, (v))

static void
build_head(HeadBuf *h, const KvReply *r, size_t body_len, bool no_body)
{
	h->len = 0;
	h->overflow = false;
	HEAD_LIT(h, "HTTP/1.1 ");
	head_u64(h, (uint64_t) (r->status > 0 ? r->status : 500));
	HEAD_LIT(h, " ");
	head_str(h, status_text(r->status));
	HEAD_LIT(h, "\r\n");
	if (!no_body)
		HEAD_NUMBER(h, "Content-Length: ", body_len);
	if (r->content_type && !no_body)
		HEAD_FIELD(h, "Content-Type: ", content_type_sendable(r->content_type));
	if (r->etag >= 0)
	{
		HEAD_LIT(h, "ETag: \"");
		head_u64(h, (uint64_t) r->etag);
		HEAD_LIT(h, "\"\r\n");
	}
	if (r->cache >= 0)
		HEAD_FIELD(h, "X-Cache: ", r->cache ? "HIT" : "MISS");
	if (r->expires_at != 0)
	{
		char		ts[64];

		/* one that cannot be formatted is a 500, as a header that does not fit */
		if (kv_format_timestamp(r->expires_at, ts, sizeof(ts)))
			HEAD_FIELD(h, "X-Expires-At: ", ts);
		else
			h->overflow = true;
	}
	if (r->allow)
		HEAD_FIELD(h, "Allow: ", r->allow);
	if (r->location)
		HEAD_FIELD(h, "Location: ", r->location);
	if (r->has_index)
		HEAD_NUMBER(h, "X-Kv-Index: ", r->index);
	if (r->retry_after > 0)
		HEAD_NUMBER(h, "Retry-After: ", (uint64_t) r->retry_after);
	else if (r->status == 503)
		HEAD_LIT(h, "Retry-After: 1\r\n");
	if (r->status == 401)
		HEAD_LIT(h, "WWW-Authenticate: Basic realm=\"kvserver\"\r\n");
	if (r->close)
		HEAD_LIT(h, "Connection: close\r\n");
	HEAD_LIT(h, "\r\n");
}

/* Assemble status line, headers and body, and write them at once. */
void
kv_send_reply(struct mg_connection *conn, const KvReply *r)
{
	HeadBuf		h;
	bool		no_body = (r->status == 204 || r->status == 304);
	size_t		body_len = no_body ? 0 : r->body_len;
	char	   *buf;

	build_head(&h, r, body_len, no_body);
	if (h.overflow)
	{
		static const char fallback[] =
			"HTTP/1.1 500 Internal Server Error\r\n"
			"Content-Length: 0\r\nConnection: close\r\n\r\n";

		mg_disable_connection_keep_alive(conn);
		mg_write(conn, fallback, sizeof(fallback) - 1);
		return;
	}

	if (r->close)
		mg_disable_connection_keep_alive(conn);
	if (r->head || body_len == 0)
	{
		mg_write(conn, h.data, h.len);
		return;
	}
	if (body_len <= sizeof(h.data) - h.len)
	{
		memcpy(h.data + h.len, r->body, body_len);
		mg_write(conn, h.data, h.len + body_len);
		return;
	}
	buf = malloc(h.len + body_len);
	if (buf == NULL)
	{
		mg_write(conn, h.data, h.len);
		mg_write(conn, r->body, body_len);
		return;
	}
	memcpy(buf, h.data, h.len);
	memcpy(buf + h.len, r->body, body_len);
	mg_write(conn, buf, h.len + body_len);
	free(buf);
}

/*
 * A JSON error body {"error": code, "message": text}, with Allow, Connection:
 * close and Retry-After as asked (NULL, false, 0: none).
 */
static int
send_json_error(const KvHttpCtx *ctx, int status, KvError error,
				const char *message, const char *allow, bool close,
				int retry_after)
{
	KvReply		r = {0};
	char	   *body;

	body = kv_json_error(error, message, &r.body_len);
	r.status = status;
	r.content_type = KV_JSON_CONTENT_TYPE;
	r.body = body;
	r.etag = -1;
	r.cache = -1;
	r.allow = allow;
	r.close = close;
	r.retry_after = retry_after;
	r.head = ctx->head;
	kv_send_reply(ctx->conn, &r);
	free(body);
	return status;
}

int
kv_send_error(const KvHttpCtx *ctx, int status, KvError error,
			  const char *message, const char *allow, bool close)
{
	return send_json_error(ctx, status, error, message, allow, close, 0);
}

/* A JSON error with Retry-After: 'retry_after' seconds (429, 503). */
int
kv_send_error_retry(const KvHttpCtx *ctx, int status, KvError error,
					const char *message, int retry_after)
{
	return send_json_error(ctx, status, error, message, NULL, false,
						   retry_after);
}

/*
 * The body could not be read: malformed chunking, or the client closed or
 * stalled.  Answer 400 and close; if the client is gone, the write fails
 * harmlessly.
 */
int
kv_send_bad_body(const KvHttpCtx *ctx)
{
	return kv_send_error(ctx, 400, KV_ERR_BAD_REQUEST,
						 "request body is malformed or incomplete", NULL, true);
}

/*
 * A write (PUT, DELETE, POST) that reached a hot standby, answered here,
 * before its body is read (kv_linger_body() drains it): 307 Temporary
 * Redirect to the same path and query on kvserver.primary_url when that is
 * set and the request target can be echoed (kv_node_location), else 503
 * read_only with Retry-After: 1, as a promotion may be under way.  Either
 * way the body is the usual JSON error, code read_only.
 */
int
kv_send_standby_write(const KvHttpCtx *ctx)
{
	KvReply		r = {0};
	char		location[KV_MAX_LOCATION_LEN + 1];
	char		primary[KV_MAX_PRIMARY_URL_LEN + 1];
	char		message[KV_MAX_PRIMARY_URL_LEN + 160];
	char	   *body;

	if (!kv_node_location(ctx->ri->local_uri_raw, ctx->ri->query_string,
						  location, sizeof(location)))
	{
		if (kv_node_primary_url(primary, sizeof(primary)))
			snprintf(message, sizeof(message),
					 "this node is a hot standby and takes no writes: send this one to the primary, %s",
					 primary);
		else
			snprintf(message, sizeof(message),
					 "this node is a hot standby and takes no writes: send them to the primary");
		return kv_send_error(ctx, 503, KV_ERR_READ_ONLY, message, NULL,
							 false);
	}
	body = kv_json_error(KV_ERR_READ_ONLY,
						 "this node is a hot standby: send writes to the primary, at the Location given",
						 &r.body_len);
	r.status = 307;
	r.content_type = KV_JSON_CONTENT_TYPE;
	r.body = body;
	r.etag = -1;
	r.cache = -1;
	r.location = location;
	r.head = ctx->head;
	kv_send_reply(ctx->conn, &r);
	free(body);
	return 307;
}

/* A JSON document; takes ownership of 'body' (NULL: no body). */
int
kv_send_json(const KvHttpCtx *ctx, int status, char *body, int64_t etag)
{
	KvReply		r = {0};

	r.status = status;
	r.content_type = KV_JSON_CONTENT_TYPE;
	r.body = body;
	r.body_len = body ? strlen(body) : 0;
	r.etag = etag;
	r.cache = -1;
	r.head = ctx->head;
	kv_send_reply(ctx->conn, &r);
	free(body);
	return status;
}

/*
 * A stored value: 200 with its bytes, or 304 when the client's
 * If-None-Match names its version.
 */
int
kv_send_value(const KvHttpCtx *ctx, const char *value, size_t len,
			  const char *content_type, int64_t version, int64_t expires_at,
			  bool hit, int64_t if_none_match)
{
	KvReply		r = {0};

	r.status = (if_none_match == KV_MATCH_ANY || if_none_match == version)
		? 304 : 200;
	r.content_type = content_type ? content_type : OCTET_STREAM;
	r.body = value;
	r.body_len = len;
	r.etag = version;
	r.expires_at = expires_at;
	r.cache = hit;
	r.head = ctx->head;
	kv_send_reply(ctx->conn, &r);
	return r.status;
}

/* A page compiled into the module or rendered on this thread. */
int
kv_send_static(const KvHttpCtx *ctx, const char *content_type,
			   const char *body, size_t len)
{
	KvReply		r = {0};

	r.status = 200;
	r.content_type = content_type;
	r.body = body;
	r.body_len = len;
	r.etag = -1;
	r.cache = -1;
	r.head = ctx->head;
	kv_send_reply(ctx->conn, &r);
	return 200;
}

/*
 * A page of keys, with the change index it is at least as new as (the
 * client passes it back as &index= to watch the prefix).
 */
static int
send_keys(const KvHttpCtx *ctx, const KvRequest *req)
{
	KvReply		r = {0};
	char	   *body = kv_json_keys(req->keys, req->nkeys, req->next_key, NULL);

	r.status = 200;
	r.content_type = KV_JSON_CONTENT_TYPE;
	r.body = body;
	r.body_len = body ? strlen(body) : 0;
	r.etag = -1;
	r.cache = -1;
	r.has_index = true;
	r.index = req->change_index;
	r.head = ctx->head;
	kv_send_reply(ctx->conn, &r);
	free(body);
	return 200;
}

/* Write the reply the main thread filled into 'req'. */
int
kv_send_request_reply(const KvHttpCtx *ctx, const KvRequest *req)
{
	/* a transaction's error names the operation at fault, if one was */
	if (req->error != KV_ERR_NONE && req->op == KV_OP_TXN &&
		req->txn_failed_op >= 0)
		return kv_send_json(ctx, req->status,
							kv_json_error_op(req->error, req->message,
											 req->txn_failed_op, NULL),
							-1);
	if (req->error != KV_ERR_NONE)
		return kv_send_error(ctx, req->status, req->error, req->message,
							 NULL, false);
	switch (req->op)
	{
		case KV_OP_GET:
			return kv_send_value(ctx, req->reply_value, req->reply_value_len,
								 req->reply_content_type, req->version,
								 req->expires_at, req->cache_hit,
								 req->if_none_match);
		case KV_OP_PUT:
		case KV_OP_CREATE:
			return kv_send_json(ctx, req->status,
								kv_json_write_reply(req->key, req->key_len,
													req->version),
								req->version);
		case KV_OP_DELETE:
			return kv_send_json(ctx, 204, NULL, -1);
		case KV_OP_LIST:
			return send_keys(ctx, req);
		case KV_OP_HEALTH:
			return kv_send_json(ctx, 200,
								kv_json_health(req->database ? req->database : "",
											   req->standby, req->replay_lsn,
											   req->replay_lag_us),
								-1);
		case KV_OP_TXN:
			{
				char	   *body = kv_json_txn_results(req->txn_ops,
													   req->ntxn_ops, NULL);

				if (body == NULL)
					return kv_send_error(ctx, 500, KV_ERR_INTERNAL,
										 "the transaction committed, but its results could not be written out",
										 NULL, false);
				return kv_send_json(ctx, 200, body, -1);
			}
		case KV_OP_AUTH:
			break;
	}
	return kv_send_error(ctx, 500, KV_ERR_INTERNAL, "unknown operation",
						 NULL, false);
}

/*
 * Hand a request, with the asker's identity, to the main thread and wait
 * for it.  False when it could not be answered: the error is written,
 * *status says which, and 'req' is gone (freed, or left to the main
 * thread after a timeout).
 */
bool
kv_submit(const KvHttpCtx *ctx, KvRequest *req, int *status)
{
	if (ctx->id != NULL && !kv_auth_attach(ctx->id, req))
	{
		kvq_request_free(req);
		*status = kv_send_error(ctx, 500, KV_ERR_INTERNAL, "out of memory",
								NULL, true);
		return false;
	}
	if (!kvq_submit_and_wait(req, kv_limit_timeout_ms()))
	{
		*status = kv_send_error(ctx, 503, KV_ERR_UNAVAILABLE,
								"request timed out waiting for the database",
								NULL, false);
		return false;
	}
	kv_auth_learn(ctx, req);
	return true;
}

/*
 * Hand a request to the main thread, wait for it, and write its reply.
 * Takes ownership of 'req'.
 */
int
kv_run_request(const KvHttpCtx *ctx, KvRequest *req)
{
	int			status;

	if (!kv_submit(ctx, req, &status))
		return status;
	status = kv_send_request_reply(ctx, req);
	kvq_request_free(req);
	return status;
}

/*
 * Have the main thread verify an identity the credential cache does not
 * know, for an endpoint that needs no database work (/metrics, /).
 * Returns 0 when it is good, or the status of the error it answered.
 */
int
kv_confirm_identity(const KvHttpCtx *ctx)
{
	KvRequest  *req;
	int			status = 0;

	if (ctx->id == NULL || ctx->id->verified)
		return 0;
	if ((req = kvq_request_new(KV_OP_AUTH)) == NULL)
		return kv_send_error(ctx, 500, KV_ERR_INTERNAL, "out of memory",
							 NULL, true);
	if (!kv_submit(ctx, req, &status))
		return status;
	if (req->error != KV_ERR_NONE)
		status = kv_send_error(ctx, req->status, req->error, req->message,
							   NULL, false);
	kvq_request_free(req);
	return status;
}
