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
 * Layout of a partition (cache_core.c explains the allocator):
 *
 *	  KvcPartition | uint32_t buckets[nbuckets]
 *				   | uint64_t used[(nblocks + 63) / 64]	 bit set: block in an entry
 *				   | blocks: nblocks x KVC_BLOCK_SIZE, 8-byte aligned
 *
 * An entry is named by its first block's index, where its KvcEntry header
 * is.  It is either
 *	  - contiguous (split == 0): header, key, content type and value back
 *		to back in kvc_entry_bytes() rounded up to blocks, plus 'spare'
 *		(0-2) blocks it was given rather than leave a too short free run;
 *	  - or split into extents (split == 1): runs of blocks, each starting
 *		with a KvcExtent (its length, the next extent), right after the
 *		header in the first one; key, content type and value fill the rest
 *		of the extents in order.  Every extent is at least KVC_MIN_RUN
 *		blocks long.
 *
 * A free run (a maximal run of free blocks, never shorter than KVC_MIN_RUN)
 * keeps a KvcFreeRun in its first block, and its start in the 'start' field
 * of its last block.  Runs are on doubly linked lists by size class
 * (kvc_size_class()): class n holds runs of n blocks for n < 64, class
 * 64 + k those of [64 << k, 128 << k) blocks.
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

#define KVC_BLOCK_SIZE	16
#define KVC_NONE		UINT32_MAX

/* Limits of the packed lengths below; longer entries are never cached. */
#define KVC_MAX_KEY_LEN		((UINT32_C(1) << 17) - 1)
#define KVC_MAX_CT_LEN		((UINT32_C(1) << 14) - 1)
#define KVC_MAX_VALUE_LEN	((UINT32_C(1) << 30) - 1)

/*
 * At the start of an entry's first block: 40 bytes.  version and
 * expires_at are whatever the caller stores (a bigint and a timestamptz in
 * the server), so they keep 64 bits.  The hash keeps its low 32 bits, which
 * include every bit that picks a bucket (nbuckets <= 2^30); lookups compare
 * the keys anyway.  The lengths are packed: keys up to 128 kB (the server
 * accepts 64 kB at most), content types up to 16 kB (the API 255 bytes, but
 * a table written without its CHECK constraint may hold longer ones; those
 * are still cached), values up to 1 GB (kvc_fits() has always refused
 * longer ones).
 */
typedef struct KvcEntry
{
	int64_t		version;
	int64_t		expires_at;		/* caller's clock units; 0 = never */
	uint32_t	hash_lo;		/* low 32 bits of the key's hash */
	uint32_t	hash_next;		/* next entry in the bucket chain */
	uint32_t	lru_prev;		/* towards the most recently used end */
	uint32_t	lru_next;		/* towards the least recently used end */
	uint32_t	value_len:30;
	uint32_t	spare:2;		/* contiguous: blocks beyond its bytes' */
	uint32_t	key_len:17;
	uint32_t	ct_len:14;		/* content type; 0 = none */
	uint32_t	split:1;		/* stored as extents, see above */
} KvcEntry;

/* Blocks the header spans: no entry starts closer to the end than this */
#define KVC_HEADER_BLOCKS \
	((uint32_t) ((sizeof(KvcEntry) + KVC_BLOCK_SIZE - 1) / KVC_BLOCK_SIZE))

/* Starts each extent of a split entry (after the header in the first). */
typedef struct KvcExtent
{
	uint32_t	nblocks;		/* blocks in this extent */
	uint32_t	next;			/* first block of the next one; KVC_NONE */
} KvcExtent;

#define KVC_EXTENT_BYTES	((uint32_t) sizeof(KvcExtent))

/*
 * The shortest free run, and extent: room for a header and a descriptor,
 * so any free run can start an entry.  The allocator never leaves a
 * shorter run behind: it gives the remainder to the entry (spare blocks).
 */
#define KVC_MIN_RUN		3

/* In the first block of a free run; 'start' is read from its last block. */
typedef struct KvcFreeRun
{
	uint32_t	nblocks;
	uint32_t	prev;			/* in its size class's list */
	uint32_t	next;
	uint32_t	start;			/* first block of the run */
} KvcFreeRun;

#define KVC_EXACT_CLASSES	64
#define KVC_CLASSES			(KVC_EXACT_CLASSES + 26)

typedef struct KvcPartition
{
	uint32_t	nblocks;		/* blocks in this partition */
	uint32_t	nbuckets;		/* power of two */
	uint32_t	nfree;			/* free blocks */
	uint32_t	nruns;			/* free runs */
	uint32_t	lru_head;		/* most recently used */
	uint32_t	lru_tail;		/* least recently used: evicted first */
	uint32_t	max_entry_blocks;	/* larger entries are not cached */
	uint32_t	pad;
	uint64_t	entries;
	uint64_t	payload_bytes;	/* key + content type + value bytes cached */
	uint64_t	evictions;
	uint64_t	class_mask[2];	/* bit c: free_heads[c] is not empty */
	uint32_t	free_heads[KVC_CLASSES];
	/* then: buckets[nbuckets], used[], blocks; see above */
} KvcPartition;

/* Sizing and setup */
extern size_t kvc_partition_bytes(uint32_t nblocks);
extern uint32_t kvc_blocks_fitting(size_t bytes);
extern void kvc_init(KvcPartition *p, uint32_t nblocks);
extern uint64_t kvc_hash(const char *key, size_t len);
extern uint32_t kvc_size_class(uint32_t nblocks);

/* Lookups: an entry is named by its first block's index */
extern uint32_t kvc_lookup(KvcPartition *p, uint64_t hash,
						   const char *key, size_t key_len);
extern const KvcEntry *kvc_entry(KvcPartition *p, uint32_t idx);
extern void kvc_read_content_type(KvcPartition *p, uint32_t idx, char *dst);
extern void kvc_read_value(KvcPartition *p, uint32_t idx, char *dst);
extern void kvc_touch(KvcPartition *p, uint32_t idx);
extern void kvc_touch_hash(KvcPartition *p, uint64_t hash);
extern size_t kvc_entry_bytes(size_t key_len, size_t ct_len, size_t value_len);
extern uint32_t kvc_entry_blocks(KvcPartition *p, uint32_t idx);

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
