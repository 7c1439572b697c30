/*-------------------------------------------------------------------------
 *
 * cache_core.h
 *	  The cache's data structure: one partition's hash table, LRU list and
 *	  block allocator, laid out in a caller-provided memory region.
 *
 * Plain C with no PostgreSQL dependency, so it can be unit-tested and
 * fuzzed alone.  It does no locking: every function here expects the
 * caller to hold the partition's lock (cache.c holds the partition LWLock).
 *
 * IDENTIFICATION
 *	  src/civet/cache_core.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef KVSERVER_CACHE_CORE_H
#define KVSERVER_CACHE_CORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define KVC_BLOCK_SIZE	64
#define KVC_NONE		UINT32_MAX

/* Lives at the start of an entry's first block; payload follows it. */
typedef struct KvcEntry
{
	uint64_t	hash;
	int64_t		version;
	int64_t		expires_at;		/* caller's clock units; 0 = never */
	uint32_t	hash_next;		/* next entry in the bucket chain */
	uint32_t	lru_prev;		/* towards the most recently used end */
	uint32_t	lru_next;		/* towards the least recently used end */
	uint32_t	nblocks;
	uint32_t	key_len;
	uint32_t	ct_len;			/* content type; 0 = none */
	uint32_t	value_len;
} KvcEntry;

typedef struct KvcPartition
{
	uint32_t	nblocks;		/* blocks in this partition */
	uint32_t	nbuckets;		/* power of two */
	uint32_t	free_head;		/* free list through next[] */
	uint32_t	nfree;
	uint32_t	lru_head;		/* most recently used */
	uint32_t	lru_tail;		/* least recently used: evicted first */
	uint32_t	max_entry_blocks;	/* larger entries are not cached */
	uint64_t	entries;
	uint64_t	payload_bytes;	/* key + content type + value bytes cached */
	uint64_t	evictions;
	/* then: uint32_t buckets[nbuckets], uint32_t next[nblocks], blocks */
} KvcPartition;

/* Sizing and setup */
extern size_t kvc_partition_bytes(uint32_t nblocks);
extern uint32_t kvc_blocks_fitting(size_t bytes);
extern void kvc_init(KvcPartition *p, uint32_t nblocks);
extern uint64_t kvc_hash(const char *key, size_t len);

/* Lookups: an entry is named by its first block's index */
extern uint32_t kvc_lookup(KvcPartition *p, uint64_t hash,
						   const char *key, size_t key_len);
extern const KvcEntry *kvc_entry(KvcPartition *p, uint32_t idx);
extern void kvc_read_content_type(KvcPartition *p, uint32_t idx, char *dst);
extern void kvc_read_value(KvcPartition *p, uint32_t idx, char *dst);
extern void kvc_touch(KvcPartition *p, uint32_t idx);
extern void kvc_touch_hash(KvcPartition *p, uint64_t hash);

/* Changes */
extern bool kvc_fits(KvcPartition *p, size_t key_len, size_t ct_len,
					 size_t value_len);
extern bool kvc_insert(KvcPartition *p, uint64_t hash,
					   const char *key, size_t key_len,
					   const char *ct, size_t ct_len,
					   const char *value, size_t value_len,
					   int64_t version, int64_t expires_at);
extern bool kvc_remove(KvcPartition *p, uint64_t hash,
					   const char *key, size_t key_len);
extern int	kvc_remove_hash(KvcPartition *p, uint64_t hash);
extern void kvc_clear(KvcPartition *p);

/* Lock-free readers: safe against a concurrent writer, see cache_core.c */
extern uint32_t kvc_lookup_racy(KvcPartition *p, uint64_t hash,
								const char *key, size_t key_len);
extern bool kvc_read_racy(KvcPartition *p, uint32_t idx, size_t off,
						  char *dst, size_t len);
extern size_t kvc_max_entry_bytes(const KvcPartition *p);

/* Accounting */
extern uint64_t kvc_blocks_used(const KvcPartition *p);
extern uint64_t kvc_used_bytes(const KvcPartition *p);

#endif							/* KVSERVER_CACHE_CORE_H */
