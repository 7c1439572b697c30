/*-------------------------------------------------------------------------
 *
 * batch.h
 *	  Serve queued HTTP requests in batches, in transactions
 *	  (src/pg/batch.c).
 *
 * The worker's main thread, or an executor's (executor.c).
 *
 * IDENTIFICATION
 *	  src/pg/batch.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef KVSERVER_BATCH_H
#define KVSERVER_BATCH_H

#include "request_queue.h"

/*
 * A request blocked by a row or table lock gives up after KV_LOCK_WAIT_MS
 * (the worker's lock_timeout) and is retried every KV_RETRY_MS until its
 * client's deadline, so one locked row cannot stall the requests behind it
 * for a whole request_timeout.
 */
#define KV_LOCK_WAIT_MS	50
#define KV_RETRY_MS		20

extern void kv_batch_serve(KvRequest *(*take) (int max));
extern void kv_batch_set_replier(void (*fn) (KvRequest *req));
extern bool kv_batch_has_deferred(void);
extern void kv_batch_fail_all(const char *message);

extern Oid	kv_store_xact_begin(char **why);
extern void kv_store_xact_end(void);

#endif							/* KVSERVER_BATCH_H */
