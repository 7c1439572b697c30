/*-------------------------------------------------------------------------
 *
 * cache_layout.h
 *	  Where things are in one cache partition's region (cache_core.c,
 *	  cache_blocks.c, cache_walk.c): the KvcPartition header, then the hash buckets, the
 *	  used-block bitmap and the 16-byte blocks.  Private to those files,
 *	  and, like them, free of PostgreSQL headers.
 *
 * Locking: none; the callers hold the partition's lock.
 *
 * IDENTIFICATION
 *	  src/civet/cache_layout.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef KVSERVER_CACHE_LAYOUT_H
#define KVSERVER_CACHE_LAYOUT_H

#include "cache_core.h"

#define HEADER_BYTES	sizeof(KvcEntry)

static inline uint32_t *
buckets_of(KvcPartition *p)
{
	return (uint32_t *) (p + 1);
}

static inline size_t
used_words(uint32_t nblocks)
{
	return ((size_t) nblocks + 63) / 64;
}

/* nbuckets is even and KvcPartition a multiple of 8 bytes: 8-aligned */
static inline uint64_t *
used_of(KvcPartition *p)
{
	return (uint64_t *) (buckets_of(p) + p->nbuckets);
}

static inline char *
block(KvcPartition *p, uint32_t idx)
{
	char	   *base = (char *) (used_of(p) + used_words(p->nblocks));

	/* blocks start on an 8-byte boundary so KvcEntry is aligned */
	base = (char *) (((uintptr_t) base + 7) & ~(uintptr_t) 7);
	return base + (size_t) idx * KVC_BLOCK_SIZE;
}

static inline KvcFreeRun *
run_at(KvcPartition *p, uint32_t idx)
{
	return (KvcFreeRun *) block(p, idx);
}

static inline uint32_t
bucket_of(KvcPartition *p, uint64_t hash)
{
	return (uint32_t) hash & (p->nbuckets - 1);
}

typedef enum
{
	WALK_READ,					/* block -> out */
	WALK_WRITE,					/* in -> block */
	WALK_COMPARE				/* block == in? */
} WalkMode;

/*
 * Read, write or compare payload bytes of an entry, following its extents
 * and trusting nothing it reads (cache_walk.c).
 */
extern bool kvc_walk(KvcPartition *p, uint32_t idx, size_t off, char *out,
					 const char *in, size_t len, WalkMode mode);

/* The free runs, cache_blocks.c; each expects the partition's lock held. */
extern void kvc_link_run(KvcPartition *p, uint32_t start, uint32_t n);
extern uint32_t kvc_free_range(KvcPartition *p, uint32_t start, uint32_t n,
							   uint32_t *merged);
extern uint32_t kvc_take_blocks(KvcPartition *p, uint32_t start, uint32_t n);
extern uint32_t kvc_find_run(KvcPartition *p, uint32_t n);
extern bool kvc_split_fits(KvcPartition *p, size_t bytes);
extern uint32_t kvc_longest_run(KvcPartition *p);

#endif							/* KVSERVER_CACHE_LAYOUT_H */
