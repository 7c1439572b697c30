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
 *	  generation  bumped on every invalidation; guards read-through fills
 *	  writers	  committing transactions that wrote keys of the partition;
 *				  on a hot standby, also replayed ones not yet released
 *				  (src/pg/rmgr.c)
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

typedef struct KvCachePartition
{
	pg_atomic_uint64 seq;
	pg_atomic_uint64 generation;
	pg_atomic_uint32 writers;
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

#endif							/* KVSERVER_CACHE_SHARED_H */
