/*-------------------------------------------------------------------------
 *
 * batch_internal.h
 *	  What batch.c shares with batch_writes.c: the batch being served and
 *	  the steps both halves take on its requests.  Not for other files.
 *
 * All of it belongs to the thread serving the batch (the worker's main
 * thread or an executor's); nothing here is shared between processes.
 *
 * IDENTIFICATION
 *	  src/pg/batch_internal.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef KVSERVER_BATCH_INTERNAL_H
#define KVSERVER_BATCH_INTERNAL_H

#include "request_queue.h"

#define KV_MAX_BATCH 256

/* The batch being served; an entry is set to NULL once answered. */
extern KvRequest *kv_batch[KV_MAX_BATCH];
extern bool kv_batch_retry[KV_MAX_BATCH];	/* deferred for a lock retry */
extern int	kv_batch_len;

/* batch.c */
extern void kv_batch_finish(int i);
extern bool kv_batch_past_deadline(int i);
extern bool kv_batch_authenticate(int i, Oid relid);
extern Oid	kv_batch_begin_xact(void);
extern bool kv_batch_run_in_subxact(bool (*fn) (void *), void *arg,
									const int *idx, int n, Oid role,
									bool answer_errors);
extern void kv_batch_run_isolated(int i, Oid relid);

/* batch_writes.c */
extern bool kv_batch_run_writes(void);

#endif							/* KVSERVER_BATCH_INTERNAL_H */
