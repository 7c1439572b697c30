/*-------------------------------------------------------------------------
 *
 * execute.h
 *	  Run one request against kv_store and fill in its reply
 *	  (src/pg/execute.c).
 *
 * Worker main thread only.  Every function expects what store.h expects:
 * an open transaction, an active snapshot and an SPI connection.  Errors
 * are thrown; the caller's subtransaction turns them into answers.
 *
 * IDENTIFICATION
 *	  src/pg/execute.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef KVSERVER_EXECUTE_H
#define KVSERVER_EXECUTE_H

#include "request_queue.h"

extern void *kv_reply_alloc(Size size);
extern char *kv_reply_strndup(const char *s, size_t len);
extern bool kv_exec_is_write(const KvRequest *req);
extern bool kv_exec_is_plain_put(const KvRequest *req);
extern void kv_exec_put_many(KvRequest **reqs, int n);

/* Values above this size are not written by kv_exec_put_many(). */
#define KV_PUT_MANY_MAX_VALUE	(64 * 1024)
extern bool kv_exec_cached_get(KvRequest *req, Oid relid);
extern bool kv_exec_request(KvRequest *req, Oid relid);
extern void kv_exec_get_many(KvRequest **reqs, int n, Oid relid);
extern void kv_exec_db_error(KvRequest *req, ErrorData *edata);

#endif							/* KVSERVER_EXECUTE_H */
