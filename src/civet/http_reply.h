/*-------------------------------------------------------------------------
 *
 * http_reply.h
 *	  Writing replies: status line, headers and body in one write
 *	  (src/civet/http_reply.c).
 *
 * civetweb side: plain C, no PostgreSQL.
 *
 * IDENTIFICATION
 *	  src/civet/http_reply.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef KVSERVER_HTTP_REPLY_H
#define KVSERVER_HTTP_REPLY_H

#include "http_request.h"
#include "kv_api.h"
#include "request_queue.h"

typedef struct KvReply
{
	int			status;
	const char *content_type;
	const char *body;
	size_t		body_len;
	int64_t		etag;			/* < 0: none */
	int64_t		expires_at;		/* PostgreSQL timestamptz; 0: none */
	int			cache;			/* -1: no header, 0: MISS, 1: HIT */
	const char *allow;
	const char *location;		/* 307: where to send the request */
	int			retry_after;	/* seconds; 0: none (503 says 1) */
	bool		has_index;		/* send X-Kv-Index: index */
	uint64_t	index;
	bool		head;			/* HEAD: headers only */
	bool		close;			/* close the connection afterwards */
} KvReply;

#define KV_JSON_CONTENT_TYPE	"application/json"

extern void kv_send_reply(struct mg_connection *conn, const KvReply *r);
extern int	kv_send_error(const KvHttpCtx *ctx, int status, KvError error,
						  const char *message, const char *allow, bool close);
extern int	kv_send_error_retry(const KvHttpCtx *ctx, int status,
								KvError error, const char *message,
								int retry_after);
extern int	kv_send_bad_body(const KvHttpCtx *ctx);
extern int	kv_send_standby_write(const KvHttpCtx *ctx);
extern int	kv_send_json(const KvHttpCtx *ctx, int status, char *body,
						 int64_t etag);
extern int	kv_send_value(const KvHttpCtx *ctx, const char *value, size_t len,
						  const char *content_type, int64_t version,
						  int64_t expires_at, bool hit, int64_t if_none_match);
extern int	kv_send_static(const KvHttpCtx *ctx, const char *content_type,
						   const char *body, size_t len);
extern bool kv_submit(const KvHttpCtx *ctx, KvRequest *req, int *status);
extern int	kv_send_request_reply(const KvHttpCtx *ctx, const KvRequest *req);
extern int	kv_run_request(const KvHttpCtx *ctx, KvRequest *req);
extern int	kv_confirm_identity(const KvHttpCtx *ctx);

#endif							/* KVSERVER_HTTP_REPLY_H */
