/*-------------------------------------------------------------------------
 *
 * cache_blocks.c
 *	  The block allocator of one cache partition: free runs of 16-byte
 *	  blocks, kept on lists by size class and coalesced on free through a
 *	  bitmap of used blocks (see cache_core.c for how entries use them).
 *
 * A run of n < 64 blocks is on class n's list, longer ones on one list
 * per power of two, and a two-word mask says which lists are non-empty,
 * so the shortest run that fits is a bit scan.  A free run's first block
 * holds its KvcFreeRun (length, list links), its last block its start, so
 * a freed neighbour finds it.  No free run is shorter than KVC_MIN_RUN.
 *
 * Locking: none here.  Every function expects the caller to hold the
 * partition's lock exclusively.
 *
 * IDENTIFICATION
 *	  src/civet/cache_blocks.c
 *
 *-------------------------------------------------------------------------
 */
#include "cache_core.h"

#include "cache_layout.h"

#ifdef PG_MAJORVERSION
#error "cache_blocks.c must stay free of PostgreSQL headers"
#endif

/* ----------------------------------------------------------------
 * Free runs
 * ----------------------------------------------------------------
 */

static inline int
lowest_bit(uint64_t x)			/* x != 0 */
{
#if defined(__GNUC__) || defined(__clang__)
	return __builtin_ctzll(x);
#else
	int			n = 0;

	while ((x & 1) == 0)
	{
		x >>= 1;
		n++;
	}
	return n;
#endif
}

static inline int
highest_bit(uint64_t x)			/* x != 0 */
{
#if defined(__GNUC__) || defined(__clang__)
	return 63 - __builtin_clzll(x);
#else
	int			n = 63;

	while ((x >> 63) == 0)
	{
		x <<= 1;
		n--;
	}
	return n;
#endif
}

/* Runs of n < 64 blocks: class n; longer: one class per power of two. */
uint32_t
kvc_size_class(uint32_t nblocks)
{
	if (nblocks < KVC_EXACT_CLASSES)
		return nblocks;
	return KVC_EXACT_CLASSES + (uint32_t) highest_bit(nblocks) - 6;
}

/* The lowest non-empty class >= c, or KVC_NONE. */
static uint32_t
class_at_least(const KvcPartition *p, uint32_t c)
{
	while (c < KVC_CLASSES)
	{
		uint64_t	bits = p->class_mask[c / 64] & (~UINT64_C(0) << (c % 64));

		if (bits != 0)
			return (c / 64) * 64 + (uint32_t) lowest_bit(bits);
		c = (c / 64 + 1) * 64;
	}
	return KVC_NONE;
}

/* The highest non-empty class, or KVC_NONE. */
static uint32_t
highest_class(const KvcPartition *p)
{
	if (p->class_mask[1] != 0)
		return 64 + (uint32_t) highest_bit(p->class_mask[1]);
	if (p->class_mask[0] != 0)
		return (uint32_t) highest_bit(p->class_mask[0]);
	return KVC_NONE;
}

static inline bool
is_used(KvcPartition *p, uint32_t idx)
{
	return (used_of(p)[idx / 64] >> (idx % 64)) & 1;
}

static void
mark_used(KvcPartition *p, uint32_t start, uint32_t n, bool used)
{
	uint64_t   *map = used_of(p);

	while (n > 0)
	{
		uint32_t	bit = start % 64;
		uint32_t	k = 64 - bit < n ? 64 - bit : n;
		uint64_t	mask = (k == 64 ? ~UINT64_C(0) : ((UINT64_C(1) << k) - 1)) << bit;

		if (used)
			map[start / 64] |= mask;
		else
			map[start / 64] &= ~mask;
		start += k;
		n -= k;
	}
}

/* Put a free run on its class list; its blocks are already marked free. */
void
kvc_link_run(KvcPartition *p, uint32_t start, uint32_t n)
{
	uint32_t	c = kvc_size_class(n);
	KvcFreeRun *r = run_at(p, start);

	r->nblocks = n;
	r->prev = KVC_NONE;
	r->next = p->free_heads[c];
	r->start = start;
	run_at(p, start + n - 1)->start = start;
	if (r->next != KVC_NONE)
		run_at(p, r->next)->prev = start;
	p->free_heads[c] = start;
	p->class_mask[c / 64] |= UINT64_C(1) << (c % 64);
	p->nfree += n;
	p->nruns++;
}

static void
unlink_run(KvcPartition *p, uint32_t start)
{
	KvcFreeRun *r = run_at(p, start);
	uint32_t	c = kvc_size_class(r->nblocks);

	if (r->prev != KVC_NONE)
		run_at(p, r->prev)->next = r->next;
	else
		p->free_heads[c] = r->next;
	if (r->next != KVC_NONE)
		run_at(p, r->next)->prev = r->prev;
	if (p->free_heads[c] == KVC_NONE)
		p->class_mask[c / 64] &= ~(UINT64_C(1) << (c % 64));
	p->nfree -= r->nblocks;
	p->nruns--;
}

/*
 * Free blocks [start, start + n), merging them with free neighbours.
 * Returns the start of the resulting run; *merged gets its length.
 */
uint32_t
kvc_free_range(KvcPartition *p, uint32_t start, uint32_t n, uint32_t *merged)
{
	uint32_t	end = start + n;

	mark_used(p, start, n, false);
	if (start > 0 && !is_used(p, start - 1))
	{
		uint32_t	left = run_at(p, start - 1)->start;

		n += run_at(p, left)->nblocks;
		unlink_run(p, left);
		start = left;
	}
	if (end < p->nblocks && !is_used(p, end))
	{
		n += run_at(p, end)->nblocks;
		unlink_run(p, end);
	}
	kvc_link_run(p, start, n);
	*merged = n;
	return start;
}

/*
 * Take the first n blocks of free run 'start' (at least n long), or all of
 * it if fewer than KVC_MIN_RUN would be left.  Returns the blocks taken.
 */
uint32_t
kvc_take_blocks(KvcPartition *p, uint32_t start, uint32_t n)
{
	uint32_t	len = run_at(p, start)->nblocks;

	if (len - n < KVC_MIN_RUN)
		n = len;
	unlink_run(p, start);
	if (len > n)
		kvc_link_run(p, start + n, len - n);
	mark_used(p, start, n, true);
	return n;
}

/* A free run of at least n blocks, or KVC_NONE.  Exact: never misses one. */
uint32_t
kvc_find_run(KvcPartition *p, uint32_t n)
{
	uint32_t	c = kvc_size_class(n);
	uint32_t	higher;
	uint32_t	idx;
	uint32_t	scanned = 0;

	if (c < KVC_EXACT_CLASSES)
	{
		/* every run of class >= c is long enough: take the best fit */
		c = class_at_least(p, c);
		return c == KVC_NONE ? KVC_NONE : p->free_heads[c];
	}

	/*
	 * Class c holds runs of [2^k, 2^(k+1)) blocks: look there for a fit,
	 * all of it if no higher class has one for sure.
	 */
	higher = class_at_least(p, c + 1);
	for (idx = p->free_heads[c]; idx != KVC_NONE; idx = run_at(p, idx)->next)
	{
		if (run_at(p, idx)->nblocks >= n)
			return idx;
		if (higher != KVC_NONE && ++scanned >= 8)
			break;
	}
	return higher == KVC_NONE ? KVC_NONE : p->free_heads[higher];
}

/*
 * Can the free runs hold an entry of 'bytes' split into extents?  Taking
 * all of them, each holds its blocks' bytes less a descriptor; every run
 * is at least KVC_MIN_RUN long, enough for the first extent's header and
 * descriptor.
 */
bool
kvc_split_fits(KvcPartition *p, size_t bytes)
{
	return p->nruns > 0 &&
		(uint64_t) p->nfree * KVC_BLOCK_SIZE >=
		(uint64_t) bytes + (uint64_t) p->nruns * KVC_EXTENT_BYTES;
}

/* The longest free run; there must be one. */
uint32_t
kvc_longest_run(KvcPartition *p)
{
	uint32_t	c = highest_class(p);
	uint32_t	best;
	uint32_t	idx;

	if (c == KVC_NONE)
		return KVC_NONE;
	best = p->free_heads[c];
	if (c < KVC_EXACT_CLASSES)
		return best;
	/* a class of mixed lengths: scan it */
	for (idx = run_at(p, best)->next; idx != KVC_NONE; idx = run_at(p, idx)->next)
		if (run_at(p, idx)->nblocks > run_at(p, best)->nblocks)
			best = idx;
	return best;
}
