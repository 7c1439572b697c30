/*-------------------------------------------------------------------------
 *
 * cache_internal.h
 *	  What cache.c shares with cache_commit.c: the shared region, the
 *	  partitions' LWLocks and the helpers every change of a partition uses.
 *	  Not for other files.
 *
 * Locking: seq_begin/seq_end bracket every change of a partition's entries
 * and expect its LWLock held exclusively (see cache.c).
 *
 * IDENTIFICATION
 *	  src/pg/cache_internal.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef KVSERVER_CACHE_INTERNAL_H
#define KVSERVER_CACHE_INTERNAL_H

#include "storage/lwlock.h"

#include "cache_core.h"
#include "cache_shared.h"

extern KvCacheShared *kvcache_shm;
/* The partitions' LWLocks, from the "kvserver" tranche. */
extern LWLock *kvcache_part_locks[KVCACHE_PARTITIONS];

static inline KvcPartition *
core_of(KvCachePartition *part)
{
	return (KvcPartition *) ((char *) kvcache_shm + part->offset);
}

/* Bracket a change of a partition's entries; caller holds its lock. */
static inline void
seq_begin(KvCachePartition *part)
{
	pg_atomic_fetch_add_u64(&part->seq, 1);		/* odd: full barrier */
}

static inline void
seq_end(KvCachePartition *part)
{
	pg_atomic_fetch_add_u64(&part->seq, 1);		/* even: full barrier */
}

#endif							/* KVSERVER_CACHE_INTERNAL_H */
