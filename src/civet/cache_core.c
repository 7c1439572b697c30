/*-------------------------------------------------------------------------
 *
 * cache_core.c
 *	  One cache partition: a chained hash table, an LRU list and a block
 *	  allocator, all inside one fixed region of memory.
 *
 * The region is shared memory in the server, so it holds no pointers, only
 * block indexes.  It is cut into KVC_BLOCK_SIZE blocks; an entry is a chain
 * of blocks linked through the next[] array, holding a KvcEntry header and
 * then the key, the content type and the value back to back.  Chains mean
 * any set of free blocks can hold any entry, so the allocator never
 * fragments: evicting one block's worth of entries always makes one block's
 * worth of room.  The price is up to one partly used block per entry and
 * four bytes of next[] per block.
 *
 * LRU: entries sit on a doubly linked list, most recently used at the head.
 * A hit moves the entry to the head; when an insert needs blocks and the
 * free list is short, entries are evicted from the tail until it fits.  An
 * entry bigger than max_entry_blocks (an eighth of the partition) is never
 * cached, so one value cannot flush a whole partition.
 *
 * Locking: none here.  Every function expects the caller to hold the
 * partition's lock, exclusively for anything that changes it (and
 * kvc_touch changes the LRU order).
 *
 * IDENTIFICATION
 *	  src/civet/cache_core.c
 *
 *-------------------------------------------------------------------------
 */
#include "cache_core.h"

#include <string.h>

#ifdef PG_MAJORVERSION
#error "cache_core.c must stay free of PostgreSQL headers"
#endif

#define HEADER_BYTES	sizeof(KvcEntry)

static inline uint32_t *
buckets_of(KvcPartition *p)
{
	return (uint32_t *) (p + 1);
}

static inline uint32_t *
next_of(KvcPartition *p)
{
	return buckets_of(p) + p->nbuckets;
}

static inline char *
block(KvcPartition *p, uint32_t idx)
{
	char	   *base = (char *) (next_of(p) + p->nblocks);

	/* blocks start on an 8-byte boundary so KvcEntry is aligned */
	base = (char *) (((uintptr_t) base + 7) & ~(uintptr_t) 7);
	return base + (size_t) idx * KVC_BLOCK_SIZE;
}

static uint32_t
buckets_for(uint32_t nblocks)
{
	uint32_t	n = 16;

	/* about one bucket per two blocks: most entries span two blocks */
	while (n < nblocks / 2 && n < (UINT32_C(1) << 30))
		n <<= 1;
	return n;
}

size_t
kvc_partition_bytes(uint32_t nblocks)
{
	return sizeof(KvcPartition)
		+ sizeof(uint32_t) * (size_t) buckets_for(nblocks)
		+ sizeof(uint32_t) * (size_t) nblocks
		+ 8
		+ (size_t) KVC_BLOCK_SIZE * nblocks;
}

/* The largest block count whose partition fits in 'bytes'. */
uint32_t
kvc_blocks_fitting(size_t bytes)
{
	uint32_t	lo = 0;
	uint32_t	hi = UINT32_MAX - 1;

	if (bytes < kvc_partition_bytes(0))
		return 0;
	while (lo < hi)
	{
		uint32_t	mid = lo + (hi - lo + 1) / 2;

		if (kvc_partition_bytes(mid) <= bytes)
			lo = mid;
		else
			hi = mid - 1;
	}
	return lo;
}

void
kvc_init(KvcPartition *p, uint32_t nblocks)
{
	memset(p, 0, sizeof(*p));
	p->nblocks = nblocks;
	p->nbuckets = buckets_for(nblocks);
	p->max_entry_blocks = nblocks / 8;
	kvc_clear(p);
}

/* 64-bit FNV-1a: cheap, and good enough to spread keys over buckets. */
uint64_t
kvc_hash(const char *key, size_t len)
{
	uint64_t	h = UINT64_C(14695981039346656037);
	size_t		i;

	for (i = 0; i < len; i++)
	{
		h ^= (unsigned char) key[i];
		h *= UINT64_C(1099511628211);
	}
	/* FNV's low bits mix poorly; fold the high half in */
	return h ^ (h >> 29);
}

static inline uint32_t
bucket_of(KvcPartition *p, uint64_t hash)
{
	return (uint32_t) hash & (p->nbuckets - 1);
}

/*
 * Copy 'len' bytes at logical offset 'off' of entry 'idx' into or out of
 * 'buf'.  Offsets count from the start of the header.
 */
static void
chain_copy(KvcPartition *p, uint32_t idx, size_t off, char *buf, size_t len,
		   bool to_cache)
{
	uint32_t   *next = next_of(p);

	while (off >= KVC_BLOCK_SIZE)
	{
		idx = next[idx];
		off -= KVC_BLOCK_SIZE;
	}
	while (len > 0)
	{
		size_t		n = KVC_BLOCK_SIZE - off;

		if (n > len)
			n = len;
		if (to_cache)
			memcpy(block(p, idx) + off, buf, n);
		else
			memcpy(buf, block(p, idx) + off, n);
		buf += n;
		len -= n;
		off = 0;
		if (len > 0)
			idx = next[idx];
	}
}

const KvcEntry *
kvc_entry(KvcPartition *p, uint32_t idx)
{
	return (const KvcEntry *) block(p, idx);
}

static bool
key_equals(KvcPartition *p, uint32_t idx, const char *key, size_t key_len)
{
	const KvcEntry *e = kvc_entry(p, idx);
	size_t		off = HEADER_BYTES;
	uint32_t   *next = next_of(p);

	if (e->key_len != key_len)
		return false;
	/* compare block by block without copying */
	while (key_len > 0)
	{
		size_t		n;

		while (off >= KVC_BLOCK_SIZE)
		{
			idx = next[idx];
			off -= KVC_BLOCK_SIZE;
		}
		n = KVC_BLOCK_SIZE - off;
		if (n > key_len)
			n = key_len;
		if (memcmp(block(p, idx) + off, key, n) != 0)
			return false;
		key += n;
		key_len -= n;
		off += n;
	}
	return true;
}

uint32_t
kvc_lookup(KvcPartition *p, uint64_t hash, const char *key, size_t key_len)
{
	uint32_t	idx = buckets_of(p)[bucket_of(p, hash)];

	while (idx != KVC_NONE)
	{
		const KvcEntry *e = kvc_entry(p, idx);

		if (e->hash == hash && key_equals(p, idx, key, key_len))
			return idx;
		idx = e->hash_next;
	}
	return KVC_NONE;
}

void
kvc_read_content_type(KvcPartition *p, uint32_t idx, char *dst)
{
	const KvcEntry *e = kvc_entry(p, idx);

	chain_copy(p, idx, HEADER_BYTES + e->key_len, dst, e->ct_len, false);
}

void
kvc_read_value(KvcPartition *p, uint32_t idx, char *dst)
{
	const KvcEntry *e = kvc_entry(p, idx);

	chain_copy(p, idx, HEADER_BYTES + e->key_len + e->ct_len, dst,
			   e->value_len, false);
}

static void
lru_unlink(KvcPartition *p, uint32_t idx)
{
	KvcEntry   *e = (KvcEntry *) block(p, idx);

	if (e->lru_prev != KVC_NONE)
		((KvcEntry *) block(p, e->lru_prev))->lru_next = e->lru_next;
	else
		p->lru_head = e->lru_next;
	if (e->lru_next != KVC_NONE)
		((KvcEntry *) block(p, e->lru_next))->lru_prev = e->lru_prev;
	else
		p->lru_tail = e->lru_prev;
	e->lru_prev = e->lru_next = KVC_NONE;
}

static void
lru_push_head(KvcPartition *p, uint32_t idx)
{
	KvcEntry   *e = (KvcEntry *) block(p, idx);

	e->lru_prev = KVC_NONE;
	e->lru_next = p->lru_head;
	if (p->lru_head != KVC_NONE)
		((KvcEntry *) block(p, p->lru_head))->lru_prev = idx;
	p->lru_head = idx;
	if (p->lru_tail == KVC_NONE)
		p->lru_tail = idx;
}

void
kvc_touch(KvcPartition *p, uint32_t idx)
{
	if (p->lru_head == idx)
		return;
	lru_unlink(p, idx);
	lru_push_head(p, idx);
}

/* Touch every entry whose key hashes to 'hash'. */
void
kvc_touch_hash(KvcPartition *p, uint64_t hash)
{
	uint32_t	idx = buckets_of(p)[bucket_of(p, hash)];

	while (idx != KVC_NONE)
	{
		const KvcEntry *e = kvc_entry(p, idx);

		if (e->hash == hash)
			kvc_touch(p, idx);
		idx = e->hash_next;
	}
}

/* Unlink an entry from its bucket and the LRU, and free its blocks. */
static void
remove_entry(KvcPartition *p, uint32_t idx)
{
	KvcEntry   *e = (KvcEntry *) block(p, idx);
	uint32_t   *slot = &buckets_of(p)[bucket_of(p, e->hash)];
	uint32_t   *next = next_of(p);
	uint32_t	last;
	uint32_t	i;

	while (*slot != idx)
		slot = &((KvcEntry *) block(p, *slot))->hash_next;
	*slot = e->hash_next;
	lru_unlink(p, idx);

	p->entries--;
	p->payload_bytes -= (uint64_t) e->key_len + e->ct_len + e->value_len;

	/* splice the whole chain onto the free list */
	last = idx;
	for (i = 1; i < e->nblocks; i++)
		last = next[last];
	next[last] = p->free_head;
	p->free_head = idx;
	p->nfree += e->nblocks;
}

static uint32_t
blocks_needed(size_t key_len, size_t ct_len, size_t value_len)
{
	size_t		bytes = HEADER_BYTES + key_len + ct_len + value_len;

	return (uint32_t) ((bytes + KVC_BLOCK_SIZE - 1) / KVC_BLOCK_SIZE);
}

bool
kvc_fits(KvcPartition *p, size_t key_len, size_t ct_len, size_t value_len)
{
	if (key_len > UINT32_MAX / 4 || ct_len > UINT32_MAX / 4 ||
		value_len > UINT32_MAX / 4)
		return false;
	return blocks_needed(key_len, ct_len, value_len) <= p->max_entry_blocks;
}

/*
 * Insert or replace an entry, evicting from the LRU tail as needed.
 * Returns false, changing nothing but removing any old entry for the key,
 * when the entry is too big to cache.
 */
bool
kvc_insert(KvcPartition *p, uint64_t hash,
		   const char *key, size_t key_len,
		   const char *ct, size_t ct_len,
		   const char *value, size_t value_len,
		   int64_t version, int64_t expires_at)
{
	uint32_t   *next = next_of(p);
	uint32_t	need;
	uint32_t	idx;
	uint32_t	old;
	uint32_t	i;
	KvcEntry	hdr;

	old = kvc_lookup(p, hash, key, key_len);
	if (old != KVC_NONE)
		remove_entry(p, old);
	if (!kvc_fits(p, key_len, ct_len, value_len))
		return false;

	need = blocks_needed(key_len, ct_len, value_len);
	while (p->nfree < need)
	{
		remove_entry(p, p->lru_tail);
		p->evictions++;
	}

	/* take 'need' blocks off the free list; they stay chained */
	idx = p->free_head;
	old = idx;
	for (i = 1; i < need; i++)
		old = next[old];
	p->free_head = next[old];
	next[old] = KVC_NONE;
	p->nfree -= need;

	memset(&hdr, 0, sizeof(hdr));
	hdr.hash = hash;
	hdr.version = version;
	hdr.expires_at = expires_at;
	hdr.nblocks = need;
	hdr.key_len = (uint32_t) key_len;
	hdr.ct_len = (uint32_t) ct_len;
	hdr.value_len = (uint32_t) value_len;
	hdr.lru_prev = hdr.lru_next = KVC_NONE;
	hdr.hash_next = buckets_of(p)[bucket_of(p, hash)];
	memcpy(block(p, idx), &hdr, sizeof(hdr));
	chain_copy(p, idx, HEADER_BYTES, (char *) key, key_len, true);
	chain_copy(p, idx, HEADER_BYTES + key_len, (char *) ct, ct_len, true);
	chain_copy(p, idx, HEADER_BYTES + key_len + ct_len, (char *) value,
			   value_len, true);

	buckets_of(p)[bucket_of(p, hash)] = idx;
	lru_push_head(p, idx);
	p->entries++;
	p->payload_bytes += (uint64_t) key_len + ct_len + value_len;
	return true;
}

bool
kvc_remove(KvcPartition *p, uint64_t hash, const char *key, size_t key_len)
{
	uint32_t	idx = kvc_lookup(p, hash, key, key_len);

	if (idx == KVC_NONE)
		return false;
	remove_entry(p, idx);
	return true;
}

/*
 * Remove every entry whose key hashes to 'hash'.  Invalidation works on
 * hashes so that a transaction need not keep whole keys until commit;
 * a collision only costs an extra miss.
 */
int
kvc_remove_hash(KvcPartition *p, uint64_t hash)
{
	uint32_t	idx = buckets_of(p)[bucket_of(p, hash)];
	int			n = 0;

	while (idx != KVC_NONE)
	{
		const KvcEntry *e = kvc_entry(p, idx);
		uint32_t	following = e->hash_next;

		if (e->hash == hash)
		{
			remove_entry(p, idx);
			n++;
		}
		idx = following;
	}
	return n;
}

void
kvc_clear(KvcPartition *p)
{
	uint32_t   *next = next_of(p);
	uint32_t	i;

	for (i = 0; i < p->nbuckets; i++)
		buckets_of(p)[i] = KVC_NONE;
	for (i = 0; i < p->nblocks; i++)
		next[i] = (i + 1 < p->nblocks) ? i + 1 : KVC_NONE;
	p->free_head = p->nblocks > 0 ? 0 : KVC_NONE;
	p->nfree = p->nblocks;
	p->lru_head = p->lru_tail = KVC_NONE;
	p->entries = 0;
	p->payload_bytes = 0;
}

/*
 * Lock-free reads.  cache_fastpath.c reads a partition without its lock,
 * while a writer may be changing it, and throws the result away if the
 * partition's sequence counter moved.  Until it checks, it may see torn
 * headers and half-updated chains, so these walks check every block index
 * against nblocks and never take more steps than an entry can have: garbage
 * in, garbage out, but never an access outside the partition and never an
 * endless loop.  nblocks, nbuckets and max_entry_blocks never change after
 * kvc_init, so they are safe to read.
 */
size_t
kvc_max_entry_bytes(const KvcPartition *p)
{
	return (size_t) p->max_entry_blocks * KVC_BLOCK_SIZE;
}

/* Copy (dst != NULL) or compare with 'cmp' a payload range, bounded. */
static bool
racy_walk(KvcPartition *p, uint32_t idx, size_t off, char *dst,
		  const char *cmp, size_t len)
{
	uint32_t   *next = next_of(p);
	uint32_t	steps = 0;
	uint32_t	max_steps = p->max_entry_blocks;

	if (idx >= p->nblocks || off + len > kvc_max_entry_bytes(p))
		return false;
	while (off >= KVC_BLOCK_SIZE)
	{
		idx = next[idx];
		if (idx >= p->nblocks || ++steps > max_steps)
			return false;
		off -= KVC_BLOCK_SIZE;
	}
	while (len > 0)
	{
		size_t		n = KVC_BLOCK_SIZE - off;

		if (n > len)
			n = len;
		if (dst != NULL)
		{
			memcpy(dst, block(p, idx) + off, n);
			dst += n;
		}
		else
		{
			if (memcmp(block(p, idx) + off, cmp, n) != 0)
				return false;
			cmp += n;
		}
		len -= n;
		off = 0;
		if (len > 0)
		{
			idx = next[idx];
			if (idx >= p->nblocks || ++steps > max_steps)
				return false;
		}
	}
	return true;
}

uint32_t
kvc_lookup_racy(KvcPartition *p, uint64_t hash, const char *key,
				size_t key_len)
{
	volatile uint32_t *buckets = buckets_of(p);
	uint32_t	idx = buckets[bucket_of(p, hash)];
	uint32_t	steps = 0;

	while (idx < p->nblocks && steps++ < p->nblocks)
	{
		KvcEntry	e;

		memcpy(&e, block(p, idx), sizeof(e));
		if (e.hash == hash && e.key_len == key_len &&
			racy_walk(p, idx, HEADER_BYTES, NULL, key, key_len))
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
	return racy_walk(p, idx, off, dst, NULL, len);
}

uint64_t
kvc_blocks_used(const KvcPartition *p)
{
	return (uint64_t) p->nblocks - p->nfree;
}

/*
 * Memory the partition's live entries take: each block costs its bytes
 * plus its slot in the next[] chain array.  The one formula behind
 * kv_stats() and /metrics.
 */
uint64_t
kvc_used_bytes(const KvcPartition *p)
{
	return kvc_blocks_used(p) * (KVC_BLOCK_SIZE + sizeof(uint32_t));
}
