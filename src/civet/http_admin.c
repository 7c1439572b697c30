/*-------------------------------------------------------------------------
 *
 * http_admin.c
 *	  The operational endpoints: GET /health (answered by the main thread,
 *	  so it proves the database path works), GET /metrics (rendered here)
 *	  and the dashboard page at GET /.
 *
 * civetweb side: runs on civetweb threads, no PostgreSQL.
 *
 * IDENTIFICATION
 *	  src/civet/http_admin.c
 *
 *-------------------------------------------------------------------------
 */
#include <stdlib.h>

#include "http_handlers.h"
#include "http_reply.h"
#include "metrics.h"
#include "request_queue.h"

#ifdef PG_MAJORVERSION
#error "http_admin.c runs on civetweb threads: no PostgreSQL headers"
#endif

/* The dashboard page, generated from web/dashboard.html at build time. */
extern const char kv_dashboard_html[];
extern const size_t kv_dashboard_html_len;

static int
send_get_only(const KvHttpCtx *ctx, const char *message)
{
	return kv_send_error(ctx, 405, KV_ERR_METHOD_NOT_ALLOWED, message,
						 "GET, HEAD", false);
}

int
kv_handle_health(const KvHttpCtx *ctx)
{
	KvRequest  *req;

	if (!ctx->reads)
		return send_get_only(ctx, "allowed methods for /health are GET and HEAD");
	req = kvq_request_new(KV_OP_HEALTH);
	if (req == NULL)
		return kv_send_error(ctx, 500, KV_ERR_INTERNAL, "out of memory", NULL,
							 true);
	return kv_run_request(ctx, req);
}

int
kv_handle_metrics(const KvHttpCtx *ctx)
{
	size_t		len;
	char	   *page;
	int			status;

	if (!ctx->reads)
		return send_get_only(ctx, "allowed methods here are GET and HEAD");
	if ((status = kv_confirm_identity(ctx)) != 0)
		return status;
	page = kv_metrics_render(&len);
	if (page == NULL)
		return kv_send_error(ctx, 500, KV_ERR_INTERNAL, "out of memory", NULL,
							 false);
	status = kv_send_static(ctx, "text/plain; version=0.0.4; charset=utf-8",
							page, len);
	free(page);
	return status;
}

int
kv_handle_dashboard(const KvHttpCtx *ctx)
{
	int			status;

	if (!ctx->reads)
		return send_get_only(ctx, "allowed methods here are GET and HEAD");
	if ((status = kv_confirm_identity(ctx)) != 0)
		return status;
	return kv_send_static(ctx, "text/html; charset=utf-8",
						  kv_dashboard_html, kv_dashboard_html_len);
}
