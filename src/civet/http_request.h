/*-------------------------------------------------------------------------
 *
 * http_request.h
 *	  One HTTP request as the handlers see it, and what they read from it:
 *	  the method, headers, framing, body and preconditions
 *	  (src/civet/http_request.c), plus the limits the worker publishes.
 *
 * civetweb side: plain C, no PostgreSQL.
 *
 * IDENTIFICATION
 *	  src/civet/http_request.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef KVSERVER_HTTP_REQUEST_H
#define KVSERVER_HTTP_REQUEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct mg_connection;
struct mg_request_info;
struct KvIdentity;

/* The request method, parsed once per request. */
typedef enum KvMethod
{
	KV_METHOD_GET,
	KV_METHOD_HEAD,
	KV_METHOD_PUT,
	KV_METHOD_DELETE,
	KV_METHOD_POST,
	KV_METHOD_OTHER				/* anything civetweb accepted that we do not serve */
} KvMethod;

#define KV_NMETHODS (KV_METHOD_OTHER + 1)

/* A request being served on a civetweb thread. */
typedef struct KvHttpCtx
{
	struct mg_connection *conn;
	const struct mg_request_info *ri;
	KvMethod	method;
	bool		head;			/* HEAD: answer with headers only */
	bool		reads;			/* GET or HEAD */
	bool		chunked;		/* Transfer-Encoding: chunked */
	/*
	 * Set by kv_read_body() once it has read the body to its end or given
	 * up on it (malformed, client gone); a body with this unset is drained
	 * by kv_linger_body() before the connection closes.
	 */
	bool		body_consumed;
	struct KvIdentity *id;		/* who is asking; NULL for open endpoints */
} KvHttpCtx;

extern KvMethod kv_method_parse(const char *method);
extern const char *kv_method_name(KvMethod method);

extern const char *kv_find_header(const struct mg_request_info *ri,
								  const char *name, int *count);
extern const char *kv_framing_problem(const struct mg_request_info *ri,
									  bool *chunked);
extern int	kv_read_body(const KvHttpCtx *ctx, int64_t max, char **body,
						 size_t *len);
extern void kv_linger_body(const KvHttpCtx *ctx);
extern const char *kv_parse_preconditions(const KvHttpCtx *ctx,
										  int64_t *if_match,
										  int64_t *if_none_match);

/* Settings published by the main thread (kv_http_set_limits). */
extern int	kv_limit_key_length(void);
extern int64_t kv_limit_value_size(void);
extern int	kv_limit_timeout_ms(void);

#endif							/* KVSERVER_HTTP_REQUEST_H */
