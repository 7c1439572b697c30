/*-------------------------------------------------------------------------
 *
 * cache_walk.c
 *	  Reading an entry's payload where it lies, contiguous or split into
 *	  extents, for the locked functions of cache_core.c and for the
 *	  lock-free readers of cache_fastpath.c (kvc_lookup_racy,
 *	  kvc_read_racy).
 *
 * Locking: kvc_walk takes no lock and, for the lock-free readers, trusts
 * nothing it reads (see its comment); the racy functions are called
 * without the partition's lock, and their callers throw the result away if
 * the partition's sequence counter moved.
 *
 * IDENTIFICATION
 *	  src/civet/cache_walk.c
 *
 *-------------------------------------------------------------------------
 */
#include "cache_core.h"

#include <string.h>

#include "cache_layout.h"

#ifdef PG_MAJORVERSION
#error "cache_walk.c must stay free of PostgreSQL headers"
#endif

static inline bool
walk_span(char *at, char *out, const char *in, size_t n, WalkMode mode)
{
	switch (mode)
	{
		case WALK_READ:
			memcpy(out, at, n);
			return true;
		case WALK_WRITE:
			memcpy(at, in, n);
			return true;
		case WALK_COMPARE:
			return memcmp(at, in, n) == 0;
	}
	return false;
}

/*
 * Read, write or compare 'len' payload bytes at offset 'off' of entry
 * 'idx'; offsets count from the start of the header, so the key is at
 * HEADER_BYTES.  Returns false if the bytes differ (WALK_COMPARE) or the
 * entry is not well formed.
 *
 * This one walk serves the locked functions and the lock-free readers
 * alike, so it trusts nothing it reads: cache_fastpath.c calls it without
 * the lock, while a writer may be changing the partition, and throws the
 * result away if the partition's sequence counter moved.  Until then it
 * may see torn headers and half-written descriptors, so every block index
 * and extent length is checked against nblocks before it is used, the
 * range against the largest entry, and every extent but the first carries
 * at least 8 payload bytes, so the walk ends within max_entry_bytes / 8
 * extents: garbage in, garbage out, but never an access outside the
 * partition and never an endless loop.  nblocks, nbuckets and
 * max_entry_blocks never change after kvc_init, so they are safe to read.
 */
bool
kvc_walk(KvcPartition *p, uint32_t idx, size_t off, char *out, const char *in,
	 size_t len, WalkMode mode)
{
	uint32_t	nblocks = p->nblocks;
	KvcEntry	h;
	KvcExtent	d;
	uint32_t	ext = idx;
	size_t		data_at;		/* payload's offset in this extent */
	size_t		base;			/* logical offset of that payload byte */
	uint64_t	steps = 0;

	if (idx >= nblocks || nblocks - idx < KVC_HEADER_BLOCKS ||
		off < HEADER_BYTES || len > kvc_max_entry_bytes(p) ||
		off > kvc_max_entry_bytes(p) - len)
		return false;
	if (len == 0)
		return true;
	memcpy(&h, block(p, idx), sizeof(h));
	if (!h.split)
	{
		if ((size_t) (nblocks - idx) * KVC_BLOCK_SIZE < off + len)
			return false;
		return walk_span(block(p, idx) + off, out, in, len, mode);
	}

	memcpy(&d, block(p, idx) + HEADER_BYTES, sizeof(d));
	if (d.nblocks < KVC_MIN_RUN)
		return false;
	data_at = HEADER_BYTES + KVC_EXTENT_BYTES;
	base = HEADER_BYTES;
	for (;;)
	{
		size_t		avail;

		if (d.nblocks == 0 || d.nblocks > nblocks - ext)
			return false;
		avail = (size_t) d.nblocks * KVC_BLOCK_SIZE - data_at;
		if (off < base + avail)
		{
			size_t		n = base + avail - off;

			if (n > len)
				n = len;
			if (!walk_span(block(p, ext) + data_at + (off - base), out, in,
						   n, mode))
				return false;
			if (out)
				out += n;
			if (in)
				in += n;
			off += n;
			len -= n;
			if (len == 0)
				return true;
		}
		base += avail;
		ext = d.next;
		if (ext >= nblocks || ++steps > 2 * (uint64_t) p->max_entry_blocks + 1)
			return false;
		memcpy(&d, block(p, ext), sizeof(d));
		data_at = KVC_EXTENT_BYTES;
	}
}

/*
 * Lock-free reads (cache_fastpath.c): see kvc_walk() for why they are safe
 * against a concurrent writer.
 */
size_t
kvc_max_entry_bytes(const KvcPartition *p)
{
	return (size_t) p->max_entry_blocks * KVC_BLOCK_SIZE;
}

uint32_t
kvc_lookup_racy(KvcPartition *p, uint64_t hash, const char *key,
				size_t key_len)
{
	volatile uint32_t *buckets = buckets_of(p);
	uint32_t	idx = buckets[bucket_of(p, hash)];
	uint32_t	steps = 0;

	/* a header must lie wholly inside the partition to be read */
	while (idx < p->nblocks && p->nblocks - idx >= KVC_HEADER_BLOCKS &&
		   steps++ < p->nblocks)
	{
		KvcEntry	e;

		memcpy(&e, block(p, idx), sizeof(e));
		if (e.hash_lo == (uint32_t) hash && e.key_len == key_len &&
			kvc_walk(p, idx, HEADER_BYTES, NULL, key, key_len, WALK_COMPARE))
			return idx;
		idx = e.hash_next;
	}
	return KVC_NONE;
}

/* Copy 'len' payload bytes at offset 'off' of entry 'idx'; false if torn. */
bool
kvc_read_racy(KvcPartition *p, uint32_t idx, size_t off, char *dst,
			  size_t len)
{
	return kvc_walk(p, idx, off, dst, NULL, len, WALK_READ);
}
