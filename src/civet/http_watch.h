/*-------------------------------------------------------------------------
 *
 * http_watch.h
 *	  Watches of a key and of a prefix (src/civet/http_watch.c), called by
 *	  the key handlers of http_keys.c.
 *
 * civetweb side: plain C, no PostgreSQL.
 *
 * IDENTIFICATION
 *	  src/civet/http_watch.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef KVSERVER_HTTP_WATCH_H
#define KVSERVER_HTTP_WATCH_H

#include "http_request.h"
#include "request_queue.h"

extern int	kv_watch_key(const KvHttpCtx *ctx, const char *key,
						 size_t key_len, int64_t if_none_match,
						 int64_t wait_ms);
extern int	kv_list_now(const KvHttpCtx *ctx, KvRequest *req);
extern int	kv_watch_list(const KvHttpCtx *ctx, KvRequest *req,
						  int64_t wait_ms, uint64_t base);

#endif							/* KVSERVER_HTTP_WATCH_H */
