/*-------------------------------------------------------------------------
 *
 * cache.h
 *	  The shared-memory cache as the server sees it (src/pg/cache.c).
 *
 * IDENTIFICATION
 *	  src/pg/cache.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef KVSERVER_CACHE_H
#define KVSERVER_CACHE_H

#include "datatype/timestamp.h"

#include "cache_shared.h"


typedef struct KvCacheStats
{
	bool		enabled;
	int64		capacity_bytes;
	int64		used_bytes;		/* blocks in use, with their overhead */
	int64		payload_bytes;	/* key + content type + value bytes */
	int64		entries;
	int64		hits;
	int64		misses;
	int64		evictions;
	int64		fills_skipped;
	int64		max_cached_value;
	double		overhead_per_entry;
} KvCacheStats;

/* A value read from the cache, in memory from the caller's allocator. */
typedef struct KvCachedValue
{
	char	   *value;
	size_t		value_len;
	char	   *content_type;	/* NULL: none */
	int64		version;
	TimestampTz expires_at;		/* 0: never */
} KvCachedValue;

typedef void *(*KvAllocFn) (Size size);

extern void kvcache_shmem_request(void);
extern void kvcache_shmem_startup(void);
extern bool kvcache_attached(void);
extern bool kvcache_available(void);
extern void kvcache_bind_table(Oid relid);
extern bool kvcache_bound_to(Oid relid);
extern bool kvcache_usable_by(Oid relid, Oid roleid);

extern bool kvcache_lookup(Oid relid, const char *key, size_t key_len,
						   KvAllocFn alloc, KvCachedValue *out);
extern uint64 kvcache_fill_token(const char *key, size_t key_len);
extern void kvcache_fill(Oid relid, const char *key, size_t key_len,
						 uint64 token, const char *value, size_t value_len,
						 const char *content_type, int64 version,
						 TimestampTz expires_at);

/*
 * Write-through: a write the committing transaction made, whose new state
 * the commit installs in the cache (invalidate.c, kv_stage_writes).  The
 * pointers stay the caller's and must live until the commit is over.
 */
typedef struct KvStagedWrite
{
	const char *key;
	size_t		key_len;
	bool		deleted;		/* the key is gone: nothing to install */
	const char *value;
	size_t		value_len;
	const char *content_type;	/* NULL: none */
	int64		version;
	TimestampTz expires_at;		/* 0: never */
} KvStagedWrite;

/* Coherence, for invalidate.c */
extern uint64 kvcache_hash(const char *key, size_t key_len);
extern int	kvcache_partition_of(uint64 hash);
/* What kvcache_writes_begin() took, for kvcache_writes_end(). */
typedef struct KvWritesBegun
{
	bool		whole;			/* held the partition as a whole */
	uint32		stripes;		/* else these stripes of it */
	uint64		generation;		/* the partition's, from the begin on */
	uint64		stripe_gen[KVCACHE_STRIPES];	/* each stripe's in 'stripes' */
} KvWritesBegun;

extern void kvcache_writes_begin(int partition, const uint64 *hashes,
								 int nhashes, bool whole, KvWritesBegun *begun);
extern void kvcache_writes_end(int partition, const uint64 *hashes,
							   int nhashes, bool remove_all,
							   const KvWritesBegun *begun,
							   const KvStagedWrite *staged, int nstaged);

/* Hot standby holds, for rmgr.c */
extern void kvcache_hold_partitions(uint32 partitions, uint32 cleared,
									const uint64 *hashes, int nhashes);
extern void kvcache_release_partitions(uint32 partitions);

extern void *kvcache_shared(void);
extern void kvcache_unbind_table(Oid relid);
extern void kvcache_reset(void);
extern void kvcache_stats(KvCacheStats *stats);

#endif							/* KVSERVER_CACHE_H */
