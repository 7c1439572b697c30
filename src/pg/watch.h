/*-------------------------------------------------------------------------
 *
 * watch.h
 *	  The change index of kv_store and its ring of changed keys, as the
 *	  server side writes them (src/pg/watch.c).
 *
 * IDENTIFICATION
 *	  src/pg/watch.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef KVSERVER_WATCH_H
#define KVSERVER_WATCH_H

extern Size kvwatch_shmem_size(void);
extern void kvwatch_shmem_request(void);
extern void kvwatch_shmem_startup(void);
extern void *kvwatch_shared(void);
extern void kvwatch_worker_start(void);
extern void kvwatch_standby_tick(void);

/* invalidate.c, for the transaction being committed */
extern void kvwatch_note_key(const char *key, size_t key_len, uint64 hash);
extern void kvwatch_publish(bool everything);
extern void kvwatch_forget(void);

/* kv_cache_reset() */
extern void kvwatch_reset(void);

#endif							/* KVSERVER_WATCH_H */
