/*-------------------------------------------------------------------------
 *
 * http_handlers.h
 *	  The handlers of each resource, called by the dispatcher in
 *	  http_server.c: keys and the key collection (http_keys.c), health,
 *	  metrics and the dashboard (http_admin.c), transactions
 *	  (http_txn.c).
 *
 * Each returns the status it answered with, for /metrics.
 *
 * civetweb side: plain C, no PostgreSQL.
 *
 * IDENTIFICATION
 *	  src/civet/http_handlers.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef KVSERVER_HTTP_HANDLERS_H
#define KVSERVER_HTTP_HANDLERS_H

#include "http_request.h"

extern int	kv_handle_key(const KvHttpCtx *ctx, const char *key_raw);
extern int	kv_handle_collection(const KvHttpCtx *ctx);
extern int	kv_handle_health(const KvHttpCtx *ctx);
extern int	kv_handle_metrics(const KvHttpCtx *ctx);
extern int	kv_handle_dashboard(const KvHttpCtx *ctx);
extern int	kv_handle_txn(const KvHttpCtx *ctx);

#endif							/* KVSERVER_HTTP_HANDLERS_H */
