/*-------------------------------------------------------------------------
 *
 * pool.h
 *	  The executor pool, from the worker's main thread (src/pg/pool.c).
 *
 * Worker main thread only.
 *
 * IDENTIFICATION
 *	  src/pg/pool.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef KVSERVER_POOL_H
#define KVSERVER_POOL_H

extern void kv_pool_start(void);
extern bool kv_pool_serve(void);
extern long kv_pool_wait_ms(void);
extern void kv_pool_fail_all(const char *message);

#endif							/* KVSERVER_POOL_H */
