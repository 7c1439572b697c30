/*-------------------------------------------------------------------------
 *
 * cache_shared.h
 *	  Layout of the cache's shared memory, shared by the locked side
 *	  (cache.c, PostgreSQL backends and the worker's main thread) and the
 *	  lock-free read side (cache_fastpath.c, civetweb threads).
 *
 * Include "c.h" (or "postgres.h") before this file: it uses pg_atomic_*
 * types and nothing else from PostgreSQL.
 *
 * Per partition:
 *	  seq		  odd while a writer changes the partition's entries; a
 *				  lock-free reader retries or gives up if it moved
 *	  generation  bumped when the partition is invalidated as a whole (a
 *				  TRUNCATE, a replayed record on a hot standby, a reset);
 *				  guards read-through fills
 *	  writers	  holds of the partition as a whole: a committing
 *				  transaction that invalidates all of it; on a hot
 *				  standby, replayed ones not yet released (src/pg/rmgr.c)
 *	  stripe_gen, stripe_writers
 *				  the same per stripe (KVCACHE_STRIPE_OF of the key's hash),
 *				  for the keys a committing transaction of this node wrote:
 *				  a commit makes only its own keys' stripes miss, and two
 *				  commits in one partition do not refuse each other's
 *				  write-through unless they share a stripe
 *	  hit_ring	  hashes of lock-free hits, applied to the LRU order by the
 *				  next locked lookup or fill (readers cannot write the LRU
 *				  list themselves)
 *
 * IDENTIFICATION
 *	  src/civet/cache_shared.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef KVSERVER_CACHE_SHARED_H
#define KVSERVER_CACHE_SHARED_H

#include "port/atomics.h"

/*
 * civetweb threads use these atomics, and nothing else of PostgreSQL.
 * Where the platform lacks native atomics, PostgreSQL emulates them with
 * spinlocks (and, without spinlocks, semaphores): a civetweb thread would
 * then take a PostgreSQL lock.  Refuse to build there.
 */
#if defined(PG_HAVE_ATOMIC_U64_SIMULATION) || \
	defined(PG_HAVE_ATOMIC_U32_SIMULATION) || \
	defined(PG_HAVE_ATOMIC_FLAG_SIMULATION)
#error "kvserver needs native 32- and 64-bit atomics: this platform emulates them with locks"
#endif

#define KVCACHE_PARTITIONS	16
#define KVCACHE_HIT_RING	64
#define KVCACHE_STRIPES		32	/* per partition; at most 32: a uint32 mask */

typedef struct KvCachePartition
{
	pg_atomic_uint64 seq;
	pg_atomic_uint64 generation;
	pg_atomic_uint32 writers;
	pg_atomic_uint64 stripe_gen[KVCACHE_STRIPES];
	pg_atomic_uint32 stripe_writers[KVCACHE_STRIPES];
	pg_atomic_uint32 hit_ring_pos;
	pg_atomic_uint64 hit_ring[KVCACHE_HIT_RING];	/* 0: empty slot */
	Size		offset;			/* of its KvcPartition from KvCacheShared */
} KvCachePartition;

typedef struct KvCacheShared
{
	int			npartitions;	/* 0: cache disabled */
	Size		partition_bytes;
	pg_atomic_uint32 table_oid; /* entries belong to this kv_store; 0: none */
	pg_atomic_uint64 hits;
	pg_atomic_uint64 misses;
	pg_atomic_uint64 fills_skipped;
	KvCachePartition parts[KVCACHE_PARTITIONS];
} KvCacheShared;

#define KVCACHE_PARTITION_OF(hash) ((int) ((hash) >> 60) % KVCACHE_PARTITIONS)
/* bits apart from the partition's (the top 4) and cache_core's (the low ones) */
#define KVCACHE_STRIPE_OF(hash) ((int) (((hash) >> 40) % KVCACHE_STRIPES))

/* May a lookup of 'hash' use its partition 'part'?  No while a commit is in flight there. */
#define KVCACHE_WRITE_IN_FLIGHT(part, hash) \
	(pg_atomic_read_u32(&(part)->writers) != 0 || \
	 pg_atomic_read_u32(&(part)->stripe_writers[KVCACHE_STRIPE_OF(hash)]) != 0)

#endif							/* KVSERVER_CACHE_SHARED_H */
