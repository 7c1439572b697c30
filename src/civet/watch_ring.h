/*-------------------------------------------------------------------------
 *
 * watch_ring.h
 *	  Lock-free reads of the change index and ring of changed keys, for
 *	  civetweb threads (src/civet/watch_ring.c).
 *
 * IDENTIFICATION
 *	  src/civet/watch_ring.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef KVSERVER_WATCH_RING_H
#define KVSERVER_WATCH_RING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* What a watcher waits for: one key, or any key under a prefix. */
typedef struct KvWatchTarget
{
	const char *bytes;
	size_t		len;
	bool		prefix;
	uint64_t	hash;			/* key: kvc_hash(bytes, len) */
} KvWatchTarget;

typedef enum KvWatchScan
{
	KV_WATCH_NONE,				/* no change of the target after 'base' */
	KV_WATCH_CHANGED			/* one, or the ring cannot tell */
} KvWatchScan;

extern void kvwr_attach(void *watch_shared);
extern bool kvwr_attached(void);
extern uint64_t kvwr_index(void);
extern void kvwr_target(KvWatchTarget *t, const char *bytes, size_t len,
						bool prefix);
extern KvWatchScan kvwr_scan(const KvWatchTarget *t, uint64_t base,
							 uint64_t *seen);

#endif							/* KVSERVER_WATCH_RING_H */
