/*-------------------------------------------------------------------------
 *
 * watch_wait.h
 *	  Where watching civetweb threads sleep, how many may, and how they
 *	  are woken (src/civet/watch_wait.c).
 *
 * civetweb side: plain C, no PostgreSQL.
 *
 * IDENTIFICATION
 *	  src/civet/watch_wait.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef KVSERVER_WATCH_WAIT_H
#define KVSERVER_WATCH_WAIT_H

#include <stdbool.h>
#include <stdint.h>

typedef enum KvWatchWake
{
	KV_WAKE_INDEX,				/* the change index moved */
	KV_WAKE_DEADLINE,			/* the deadline passed */
	KV_WAKE_STOP				/* the HTTP server is stopping: answer now */
} KvWatchWake;

typedef enum KvWatchEnter
{
	KV_ENTER_OK,
	KV_ENTER_FULL,				/* kvserver.max_watchers are waiting */
	KV_ENTER_STOPPING
} KvWatchEnter;

/* main thread */
extern bool kv_watch_start(void);
extern void kv_watch_stop(void);
extern void kv_watch_set_limits(int max_watchers, int max_wait_ms);

/* civetweb threads */
extern int	kv_watch_max_wait_ms(void);
extern KvWatchEnter kv_watch_enter(void);
extern void kv_watch_leave(void);
extern KvWatchWake kv_watch_sleep(uint64_t seen, int64_t deadline_ms);
extern int	kv_watch_count(void);
extern int64_t kv_watch_take_waited_ns(void);

#endif							/* KVSERVER_WATCH_WAIT_H */
