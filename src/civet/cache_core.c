/*-------------------------------------------------------------------------
 *
 * cache_core.c
 *	  One cache partition: a chained hash table, an LRU list and a block
 *	  allocator, all inside one fixed region of memory.
 *
 * The region is shared memory in the server, so it holds no pointers, only
 * block indexes.  It is cut into KVC_BLOCK_SIZE (16-byte) blocks, and an
 * entry is a 40-byte KvcEntry header followed by the key, the content type
 * and the value back to back (cache_core.h has the layout).
 *
 * Allocation.  An entry takes ceil(bytes / 16) contiguous blocks whenever a
 * free run that long exists: then it costs its header and less than one
 * block of tail, and needs no link at all.  Free runs are coalesced on
 * free (a bitmap of used blocks finds the neighbours) and kept on lists by
 * size class, so finding the shortest run that fits is a bit scan, and
 * entries of one size reuse the holes their evictions leave.  When no run
 * is long enough, the entry is split into extents, each starting with an
 * 8-byte KvcExtent (length, next extent), taking the longest runs first.
 * So any free blocks can hold any entry, and eviction never hunts for a
 * contiguous hole; only split entries pay for links.  No free run is ever
 * shorter than KVC_MIN_RUN blocks (header plus descriptor): an entry that
 * would leave 1 or 2 blocks of a run takes them as spare blocks, so free
 * space never crumbles into runs nothing can start in.
 *
 * Eviction.  Entries sit on a doubly linked LRU list, most recently used
 * at the head; a hit moves an entry to the head.  An insert evicts from the
 * tail, one entry at a time, until the entry can be placed, and not one
 * more: until a run of its length exists (find_run), or the free runs hold
 * it split (split_fits: free bytes >= its bytes + 8 per free run).  Both
 * depend on the free runs only, not on the order of the lists, so the unit
 * tests check them from the outside.  An entry needing more than
 * max_entry_blocks (an eighth of the partition) is never cached, so one
 * value cannot flush a whole partition.
 *
 * With values of mixed sizes evicting each other, the free runs an insert
 * finds are the holes of random evicted entries, and entries get split
 * more often; then an entry costs 8 bytes per extent more, and its
 * eviction a walk over its extents.
 *
 * The free runs (size classes, the used-block bitmap, coalescing) are
 * cache_blocks.c's; the region's layout is in cache_layout.h.
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

#include "cache_layout.h"

#ifdef PG_MAJORVERSION
#error "cache_core.c must stay free of PostgreSQL headers"
#endif

/* a free run can hold a header and descriptor; the header is 40 bytes */
typedef char kvc_min_run_holds_header
[(HEADER_BYTES + KVC_EXTENT_BYTES <= KVC_MIN_RUN * KVC_BLOCK_SIZE &&
  HEADER_BYTES == 40) ? 1 : -1];

static uint32_t
buckets_for(uint32_t nblocks)
{
	uint32_t	n = 16;

	/*
	 * About one bucket per eight blocks (128 bytes): an entry of a short
	 * key and value takes four or five blocks, so chains stay short.
	 */
	while (n < nblocks / 8 && n < (UINT32_C(1) << 30))
		n <<= 1;
	return n;
}

size_t
kvc_partition_bytes(uint32_t nblocks)
{
	return sizeof(KvcPartition)
		+ sizeof(uint32_t) * (size_t) buckets_for(nblocks)
		+ sizeof(uint64_t) * used_words(nblocks)
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

/* ----------------------------------------------------------------
 * Entries
 * ----------------------------------------------------------------
 */

/* Bytes of an entry stored contiguously: header and payload. */
size_t
kvc_entry_bytes(size_t key_len, size_t ct_len, size_t value_len)
{
	return HEADER_BYTES + key_len + ct_len + value_len;
}

static inline uint32_t
blocks_for(size_t bytes)
{
	return (uint32_t) ((bytes + KVC_BLOCK_SIZE - 1) / KVC_BLOCK_SIZE);
}

const KvcEntry *
kvc_entry(KvcPartition *p, uint32_t idx)
{
	return (const KvcEntry *) block(p, idx);
}

/* Blocks entry 'idx' takes. */
uint32_t
kvc_entry_blocks(KvcPartition *p, uint32_t idx)
{
	const KvcEntry *e = kvc_entry(p, idx);
	KvcExtent	d;
	uint32_t	n = 0;

	if (!e->split)
		return blocks_for(kvc_entry_bytes(e->key_len, e->ct_len, e->value_len)) +
			e->spare;
	memcpy(&d, block(p, idx) + HEADER_BYTES, sizeof(d));
	for (;;)
	{
		n += d.nblocks;
		if (d.next == KVC_NONE)
			return n;
		memcpy(&d, block(p, d.next), sizeof(d));
	}
}

static bool
key_equals(KvcPartition *p, uint32_t idx, const char *key, size_t key_len)
{
	return kvc_entry(p, idx)->key_len == key_len &&
		kvc_walk(p, idx, HEADER_BYTES, NULL, key, key_len, WALK_COMPARE);
}

uint32_t
kvc_lookup(KvcPartition *p, uint64_t hash, const char *key, size_t key_len)
{
	uint32_t	idx = buckets_of(p)[bucket_of(p, hash)];

	while (idx != KVC_NONE)
	{
		const KvcEntry *e = kvc_entry(p, idx);

		if (e->hash_lo == (uint32_t) hash && key_equals(p, idx, key, key_len))
			return idx;
		idx = e->hash_next;
	}
	return KVC_NONE;
}

void
kvc_read_content_type(KvcPartition *p, uint32_t idx, char *dst)
{
	const KvcEntry *e = kvc_entry(p, idx);

	kvc_walk(p, idx, HEADER_BYTES + e->key_len, dst, NULL, e->ct_len, WALK_READ);
}

void
kvc_read_value(KvcPartition *p, uint32_t idx, char *dst)
{
	const KvcEntry *e = kvc_entry(p, idx);

	kvc_walk(p, idx, HEADER_BYTES + e->key_len + e->ct_len, dst, NULL,
		 e->value_len, WALK_READ);
}

static inline KvcEntry *
entry_mut(KvcPartition *p, uint32_t idx)
{
	return (KvcEntry *) block(p, idx);
}

static void
lru_unlink(KvcPartition *p, uint32_t idx)
{
	KvcEntry   *e = entry_mut(p, idx);

	if (e->lru_prev != KVC_NONE)
		entry_mut(p, e->lru_prev)->lru_next = e->lru_next;
	else
		p->lru_head = e->lru_next;
	if (e->lru_next != KVC_NONE)
		entry_mut(p, e->lru_next)->lru_prev = e->lru_prev;
	else
		p->lru_tail = e->lru_prev;
	e->lru_prev = e->lru_next = KVC_NONE;
}

static void
lru_push_head(KvcPartition *p, uint32_t idx)
{
	KvcEntry   *e = entry_mut(p, idx);

	e->lru_prev = KVC_NONE;
	e->lru_next = p->lru_head;
	if (p->lru_head != KVC_NONE)
		entry_mut(p, p->lru_head)->lru_prev = idx;
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

/*
 * Touch every entry whose key hashes to 'hash' (compared on the low 32
 * bits the header keeps: at worst an unrelated entry is touched too).
 */
void
kvc_touch_hash(KvcPartition *p, uint64_t hash)
{
	uint32_t	idx = buckets_of(p)[bucket_of(p, hash)];

	while (idx != KVC_NONE)
	{
		const KvcEntry *e = kvc_entry(p, idx);

		if (e->hash_lo == (uint32_t) hash)
			kvc_touch(p, idx);
		idx = e->hash_next;
	}
}

/*
 * Unlink an entry from its bucket and the LRU, and free its blocks.
 * Returns the start of a free run of at least 'want' blocks that freeing
 * them made, or KVC_NONE.
 */
static uint32_t
remove_entry(KvcPartition *p, uint32_t idx, uint32_t want)
{
	KvcEntry	e;
	uint32_t   *slot;
	uint32_t	found = KVC_NONE;
	uint32_t	run;
	uint32_t	len;

	memcpy(&e, block(p, idx), sizeof(e));
	slot = &buckets_of(p)[e.hash_lo & (p->nbuckets - 1)];
	while (*slot != idx)
		slot = &entry_mut(p, *slot)->hash_next;
	*slot = e.hash_next;
	lru_unlink(p, idx);

	p->entries--;
	p->payload_bytes -= (uint64_t) e.key_len + e.ct_len + e.value_len;

	if (!e.split)
	{
		run = kvc_free_range(p, idx,
						 blocks_for(kvc_entry_bytes(e.key_len, e.ct_len,
													e.value_len)) + e.spare,
						 &len);
		return len >= want ? run : KVC_NONE;
	}
	else
	{
		KvcExtent	d;
		uint32_t	ext = idx;

		/*
		 * Read each descriptor before freeing its extent (a free run's
		 * bookkeeping overwrites it).  A run found early may grow by a later
		 * merge: the merged run is then at least as long, and replaces it.
		 */
		memcpy(&d, block(p, idx) + HEADER_BYTES, sizeof(d));
		for (;;)
		{
			uint32_t	next = d.next;

			run = kvc_free_range(p, ext, d.nblocks, &len);
			if (len >= want)
				found = run;
			if (next == KVC_NONE)
				break;
			ext = next;
			memcpy(&d, block(p, ext), sizeof(d));
		}
		return found;
	}
}

bool
kvc_fits(KvcPartition *p, size_t key_len, size_t ct_len, size_t value_len)
{
	if (key_len > KVC_MAX_KEY_LEN || ct_len > KVC_MAX_CT_LEN ||
		value_len > KVC_MAX_VALUE_LEN)
		return false;
	return blocks_for(kvc_entry_bytes(key_len, ct_len, value_len)) <=
		p->max_entry_blocks;
}

/*
 * Take free runs, largest first, for an entry of 'bytes' split into
 * extents (kvc_split_fits() said they hold it); write their descriptors.
 * Returns the first block.
 */
static uint32_t
take_extents(KvcPartition *p, size_t bytes)
{
	uint32_t	first = KVC_NONE;
	KvcExtent  *prev = NULL;
	size_t		remaining = bytes;

	while (remaining > 0)
	{
		uint32_t	start = kvc_longest_run(p);
		uint32_t	len = run_at(p, start)->nblocks;
		uint32_t	n = blocks_for(remaining + KVC_EXTENT_BYTES);
		size_t		room;
		KvcExtent  *d;

		if (n < KVC_MIN_RUN)
			n = KVC_MIN_RUN;
		if (n > len)
			n = len;
		n = kvc_take_blocks(p, start, n);
		d = (KvcExtent *) (block(p, start) +
						   (first == KVC_NONE ? HEADER_BYTES : 0));
		d->nblocks = n;
		d->next = KVC_NONE;
		if (prev != NULL)
			prev->next = start;
		else
			first = start;
		prev = d;
		room = (size_t) n * KVC_BLOCK_SIZE - KVC_EXTENT_BYTES;
		remaining -= room < remaining ? room : remaining;
	}
	return first;
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
	size_t		bytes;
	uint32_t	need;
	uint32_t	run;
	uint32_t	idx;
	uint32_t	old;
	KvcEntry	hdr;

	old = kvc_lookup(p, hash, key, key_len);
	if (old != KVC_NONE)
		remove_entry(p, old, UINT32_MAX);
	if (!kvc_fits(p, key_len, ct_len, value_len))
		return false;

	bytes = kvc_entry_bytes(key_len, ct_len, value_len);
	need = blocks_for(bytes);

	/*
	 * Evict until a run of 'need' blocks exists or the free runs hold the
	 * entry split.  Before the first eviction kvc_find_run() looked at every
	 * run; after that a long enough run can only be one an eviction made.
	 * An entry fits, so evicting everything would make room.
	 */
	run = kvc_find_run(p, need);
	while (run == KVC_NONE && !kvc_split_fits(p, bytes) &&
		   p->lru_tail != KVC_NONE)
	{
		run = remove_entry(p, p->lru_tail, need);
		p->evictions++;
	}

	memset(&hdr, 0, sizeof(hdr));
	hdr.version = version;
	hdr.expires_at = expires_at;
	hdr.hash_lo = (uint32_t) hash;
	hdr.hash_next = buckets_of(p)[bucket_of(p, hash)];
	hdr.lru_prev = hdr.lru_next = KVC_NONE;
	hdr.key_len = (uint32_t) key_len;
	hdr.ct_len = (uint32_t) ct_len;
	hdr.value_len = (uint32_t) value_len;
	if (run != KVC_NONE)
	{
		idx = run;
		hdr.spare = kvc_take_blocks(p, idx, need) - need;
		hdr.split = 0;
	}
	else
	{
		idx = take_extents(p, bytes);
		hdr.split = 1;
	}
	memcpy(block(p, idx), &hdr, sizeof(hdr));
	kvc_walk(p, idx, HEADER_BYTES, NULL, key, key_len, WALK_WRITE);
	kvc_walk(p, idx, HEADER_BYTES + key_len, NULL, ct, ct_len, WALK_WRITE);
	kvc_walk(p, idx, HEADER_BYTES + key_len + ct_len, NULL, value, value_len,
		 WALK_WRITE);

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
	remove_entry(p, idx, UINT32_MAX);
	return true;
}

/*
 * Remove every entry whose key hashes to 'hash'.  Invalidation works on
 * hashes so that a transaction need not keep whole keys until commit;
 * a collision only costs an extra miss.  The header keeps the hash's low
 * 32 bits, so an entry whose hash differs only above them goes too: never
 * too few.
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

		if (e->hash_lo == (uint32_t) hash)
		{
			remove_entry(p, idx, UINT32_MAX);
			n++;
		}
		idx = following;
	}
	return n;
}

void
kvc_clear(KvcPartition *p)
{
	uint32_t	i;

	for (i = 0; i < p->nbuckets; i++)
		buckets_of(p)[i] = KVC_NONE;
	memset(used_of(p), 0, sizeof(uint64_t) * used_words(p->nblocks));
	for (i = 0; i < KVC_CLASSES; i++)
		p->free_heads[i] = KVC_NONE;
	p->class_mask[0] = p->class_mask[1] = 0;
	p->nfree = 0;
	p->nruns = 0;
	if (p->nblocks > 0)
		kvc_link_run(p, 0, p->nblocks);
	p->lru_head = p->lru_tail = KVC_NONE;
	p->entries = 0;
	p->payload_bytes = 0;
}

uint64_t
kvc_blocks_used(const KvcPartition *p)
{
	return (uint64_t) p->nblocks - p->nfree;
}

/*
 * Memory the partition's live entries take: each block in use costs its
 * 16 bytes plus its share of the partition's per-block arrays, the hash
 * buckets and the used-block bitmap (about 0.6 to 1.1 bytes a block,
 * rounded up).  With header, tail waste and extent descriptors inside the
 * blocks, (this - payload_bytes) / entries is everything an entry costs
 * beyond its key, content type and value.  The one formula behind
 * kv_stats() and /metrics.
 */
uint64_t
kvc_used_bytes(const KvcPartition *p)
{
	uint64_t	used = kvc_blocks_used(p);
	uint64_t	arrays;
	uint64_t	share;			/* per block, in 1/65536 bytes, rounded up */

	if (p->nblocks == 0)
		return 0;
	arrays = sizeof(uint32_t) * (uint64_t) p->nbuckets +
		sizeof(uint64_t) * (uint64_t) used_words(p->nblocks);
	share = ((arrays << 16) + p->nblocks - 1) / p->nblocks;
	return used * KVC_BLOCK_SIZE + ((used * share + 0xFFFF) >> 16);
}
