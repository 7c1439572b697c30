/*-------------------------------------------------------------------------
 *
 * test_cache_core.c
 *	  Unit tests for one cache partition (src/cache_core.c): sizing, insert
 *	  and lookup, reading values and content types back byte for byte,
 *	  replacing, byte and block accounting, LRU eviction order, the entry
 *	  size limit, removal by key and by hash, clearing, and a randomized
 *	  test against a reference model.
 *
 * A standalone C99 program with no test library: it prints TAP for
 * prove(1) and exits non-zero if any test failed.  A failed test prints
 * what it checked, where, and a "# got X expected Y" line.
 *
 * The structure checks (check_structure) look inside the partition through
 * the layout documented in cache_core.h: the KvcPartition header, then
 * buckets[nbuckets], then the used-block bitmap, then the blocks.  They
 * walk the free-run lists, the LRU list, every entry's extents and every
 * bucket chain, so a test notices a broken link even before a lookup trips
 * on it.
 *
 * The randomized test uses its own PRNG and a fixed seed, printed as a TAP
 * comment; KVC_TEST_SEED and KVC_TEST_OPS in the environment override the
 * seed and the number of operations (e.g. fewer under valgrind).
 *
 * IDENTIFICATION
 *	  test/unit/test_cache_core.c
 *
 *-------------------------------------------------------------------------
 */
#include "cache_core.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ----------------------------------------------------------------
 * Reporting
 * ----------------------------------------------------------------
 */

/* Set by the first failed check of a test; printed after "not ok". */
static char fail_what[512];
static char fail_detail[512];
static char fail_context[256];
static int	fail_line;

/* What the test is doing now, for the diagnostics (e.g. "op 1234"). */
static void
set_context(const char *fmt,...)
{
	va_list		ap;

	va_start(ap, fmt);
	vsnprintf(fail_context, sizeof(fail_context), fmt, ap);
	va_end(ap);
}

static bool
fail(int line, const char *what, const char *fmt,...)
{
	va_list		ap;

	/* keep the first failure: later ones are usually consequences */
	if (fail_line != 0)
		return false;
	fail_line = line;
	snprintf(fail_what, sizeof(fail_what), "%s", what);
	va_start(ap, fmt);
	vsnprintf(fail_detail, sizeof(fail_detail), fmt, ap);
	va_end(ap);
	return false;
}

/* Each CHECK returns false from the calling test on failure. */
#define CHECK_UINT(got, expected, what) \
	do { \
		uint64_t	got_ = (uint64_t) (got); \
		uint64_t	exp_ = (uint64_t) (expected); \
		if (got_ != exp_) \
			return fail(__LINE__, (what), "got %" PRIu64 " expected %" PRIu64, \
						got_, exp_); \
	} while (0)

#define CHECK_INT(got, expected, what) \
	do { \
		int64_t		got_ = (int64_t) (got); \
		int64_t		exp_ = (int64_t) (expected); \
		if (got_ != exp_) \
			return fail(__LINE__, (what), "got %" PRId64 " expected %" PRId64, \
						got_, exp_); \
	} while (0)

#define CHECK_BOOL(got, expected, what) \
	do { \
		bool		got_ = (got); \
		bool		exp_ = (expected); \
		if (got_ != exp_) \
			return fail(__LINE__, (what), "got %s expected %s", \
						got_ ? "true" : "false", exp_ ? "true" : "false"); \
	} while (0)

#define CHECK_FOUND(idx, expected, what) \
	do { \
		bool		got_ = ((idx) != KVC_NONE); \
		bool		exp_ = (expected); \
		if (got_ != exp_) \
			return fail(__LINE__, (what), "got %s expected %s", \
						got_ ? "found" : "not found", \
						exp_ ? "found" : "not found"); \
	} while (0)

/* Propagate a failure from a helper that itself uses the CHECKs. */
#define CHECK_OK(call) \
	do { \
		if (!(call)) \
			return false; \
	} while (0)

/* Memory a test allocated; the runner frees it after the test. */
#define MAX_ALLOCS 32
static void *allocs[MAX_ALLOCS];
static int	nallocs;

static void *
test_alloc(size_t size)
{
	void	   *m;

	if (nallocs == MAX_ALLOCS || (m = malloc(size)) == NULL)
	{
		printf("Bail out! out of memory\n");
		exit(2);
	}
	allocs[nallocs++] = m;
	return m;
}

static void
free_allocs(void)
{
	while (nallocs > 0)
		free(allocs[--nallocs]);
}

/* ----------------------------------------------------------------
 * Helpers
 * ----------------------------------------------------------------
 */

/* A partition in exactly kvc_partition_bytes(nblocks) bytes of heap. */
static KvcPartition *
new_partition(uint32_t nblocks)
{
	KvcPartition *p = test_alloc(kvc_partition_bytes(nblocks));

	kvc_init(p, nblocks);
	return p;
}

/*
 * Blocks an entry needs when stored contiguously, computed here
 * independently of cache_core.c.
 */
static uint32_t
entry_blocks(size_t key_len, size_t ct_len, size_t value_len)
{
	size_t		bytes = sizeof(KvcEntry) + key_len + ct_len + value_len;

	return (uint32_t) ((bytes + KVC_BLOCK_SIZE - 1) / KVC_BLOCK_SIZE);
}

static uint32_t *
bucket_array(KvcPartition *p)
{
	return (uint32_t *) (p + 1);
}

static uint64_t *
used_map(KvcPartition *p)
{
	return (uint64_t *) (bucket_array(p) + p->nbuckets);
}

static const char *
block_at(KvcPartition *p, uint32_t idx)
{
	return (const char *) kvc_entry(p, idx);
}

static const KvcFreeRun *
run_at(KvcPartition *p, uint32_t idx)
{
	return (const KvcFreeRun *) block_at(p, idx);
}

/* The size class of a free run, per cache_core.h, computed here. */
static uint32_t
size_class(uint32_t n)
{
	uint32_t	c = KVC_EXACT_CLASSES;

	if (n < KVC_EXACT_CLASSES)
		return n;
	while (n >= 128)
	{
		n >>= 1;
		c++;
	}
	return c;
}

/*
 * An entry's extents, read through the layout of cache_core.h: one for a
 * contiguous entry.  Returns how many (at most 'max'), 0 if malformed.
 */
#define MAX_EXTENTS 4096
static uint32_t ext_start[MAX_EXTENTS];
static uint32_t ext_len[MAX_EXTENTS];

static uint32_t
entry_extents(KvcPartition *p, uint32_t idx)
{
	const KvcEntry *e = kvc_entry(p, idx);
	KvcExtent	d;
	uint32_t	n = 0;

	if (!e->split)
	{
		ext_start[0] = idx;
		ext_len[0] = entry_blocks(e->key_len, e->ct_len, e->value_len) + e->spare;
		return 1;
	}
	memcpy(&d, block_at(p, idx) + sizeof(KvcEntry), sizeof(d));
	ext_start[n] = idx;
	for (;;)
	{
		if (ext_start[n] >= p->nblocks || d.nblocks == 0 ||
			d.nblocks > p->nblocks - ext_start[n])
			return 0;
		ext_len[n++] = d.nblocks;
		if (d.next == KVC_NONE)
			return n;
		if (n == MAX_EXTENTS)
			return 0;
		ext_start[n] = d.next;
		if (d.next >= p->nblocks)
			return 0;
		memcpy(&d, block_at(p, d.next), sizeof(d));
	}
}

/* Blocks entry 'idx' takes, from its extents. */
static uint32_t
blocks_of(KvcPartition *p, uint32_t idx)
{
	uint32_t	n = entry_extents(p, idx);
	uint32_t	sum = 0;
	uint32_t	i;

	for (i = 0; i < n; i++)
		sum += ext_len[i];
	return sum;
}

static uint32_t
find(KvcPartition *p, const char *key)
{
	return kvc_lookup(p, kvc_hash(key, strlen(key)), key, strlen(key));
}

static bool
put(KvcPartition *p, const char *key, const char *ct,
	const char *value, size_t value_len, int64_t version)
{
	return kvc_insert(p, kvc_hash(key, strlen(key)), key, strlen(key),
					  ct, strlen(ct), value, value_len, version, 0);
}

/* Reads go into the middle of a buffer whose guard bytes must survive. */
#define GUARD		32
#define GUARD_BYTE	0xA5
#define READ_MAX	16384
static unsigned char readbuf[GUARD + READ_MAX + GUARD];

static bool
guards_intact(size_t len)
{
	size_t		i;

	for (i = 0; i < GUARD; i++)
	{
		if (readbuf[i] != GUARD_BYTE)
			return false;
		if (readbuf[GUARD + len + i] != GUARD_BYTE)
			return false;
	}
	return true;
}

static bool
check_bytes(const unsigned char *got, const char *expected, size_t len,
			const char *what)
{
	size_t		i;

	if (len == 0 || memcmp(got, expected, len) == 0)
		return true;
	for (i = 0; i < len; i++)
	{
		if (got[i] != (unsigned char) expected[i])
			return fail(__LINE__, what,
						"got byte 0x%02x at offset %zu of %zu expected 0x%02x",
						got[i], i, len, (unsigned char) expected[i]);
	}
	return true;
}

/*
 * Check entry 'idx''s extents: one of entry_blocks() blocks if contiguous;
 * if split, two or more, the first long enough for header and descriptor,
 * together just long enough for header, descriptors and payload.
 */
static bool
check_extents(KvcPartition *p, uint32_t idx)
{
	const KvcEntry *e = kvc_entry(p, idx);
	size_t		bytes = sizeof(KvcEntry) + e->key_len + e->ct_len + e->value_len;
	uint32_t	n = entry_extents(p, idx);
	uint64_t	room = 0;
	uint32_t	i;

	CHECK_BOOL(n > 0, true, "entry's extents are well formed");
	CHECK_UINT(kvc_entry_blocks(p, idx), blocks_of(p, idx), "kvc_entry_blocks");
	if (!e->split)
	{
		CHECK_BOOL(idx + ext_len[0] <= p->nblocks, true,
				   "contiguous entry inside the partition");
		CHECK_BOOL(e->spare < KVC_MIN_RUN, true,
				   "spare blocks only instead of a too short free run");
		return true;
	}
	CHECK_BOOL(n >= 2, true, "a split entry has two extents or more");
	for (i = 0; i < n; i++)
	{
		CHECK_BOOL(ext_len[i] >= KVC_MIN_RUN, true,
				   "extent holds header and descriptor, or is as long");
		room += (uint64_t) ext_len[i] * KVC_BLOCK_SIZE - KVC_EXTENT_BYTES;
	}
	CHECK_BOOL(room >= bytes, true, "extents hold the entry");

	/*
	 * The last extent is as short as allowed: the blocks its bytes need,
	 * at least KVC_MIN_RUN, plus fewer than KVC_MIN_RUN spare ones.
	 */
	CHECK_BOOL(room - bytes < (2 * KVC_MIN_RUN - 1) * KVC_BLOCK_SIZE, true,
			   "last extent no longer than needed");
	return true;
}

/*
 * Check that entry 'idx' holds exactly this key, content type and value:
 * the header's lengths, then the bytes read back, with nothing written
 * outside the destination, through the locked and the lock-free readers.
 */
static bool
check_entry(KvcPartition *p, uint32_t idx,
			const char *key, size_t key_len,
			const char *ct, size_t ct_len,
			const char *value, size_t value_len)
{
	const KvcEntry *e;
	size_t		off = sizeof(KvcEntry) + key_len;

	CHECK_FOUND(idx, true, "entry is present");
	e = kvc_entry(p, idx);
	CHECK_UINT(kvc_lookup(p, e->hash_lo, key, key_len), idx,
			   "entry's hash and key look it up");
	CHECK_UINT(kvc_lookup_racy(p, e->hash_lo, key, key_len), idx,
			   "kvc_lookup_racy finds it too");
	CHECK_UINT(e->key_len, key_len, "key_len");
	CHECK_UINT(e->ct_len, ct_len, "ct_len");
	CHECK_UINT(e->value_len, value_len, "value_len");
	CHECK_OK(check_extents(p, idx));
	if (ct_len > READ_MAX || value_len > READ_MAX)
		return fail(__LINE__, "test read buffer too small",
					"got %zu expected at most %d",
					ct_len > value_len ? ct_len : value_len, READ_MAX);

	memset(readbuf, GUARD_BYTE, GUARD + ct_len + GUARD);
	kvc_read_content_type(p, idx, (char *) readbuf + GUARD);
	CHECK_OK(check_bytes(readbuf + GUARD, ct, ct_len, "content type bytes"));
	CHECK_BOOL(guards_intact(ct_len), true,
			   "kvc_read_content_type wrote only ct_len bytes");

	memset(readbuf, GUARD_BYTE, GUARD + value_len + GUARD);
	kvc_read_value(p, idx, (char *) readbuf + GUARD);
	CHECK_OK(check_bytes(readbuf + GUARD, value, value_len, "value bytes"));
	CHECK_BOOL(guards_intact(value_len), true,
			   "kvc_read_value wrote only value_len bytes");

	/* the lock-free reader, as cache_fastpath.c calls it */
	memset(readbuf, GUARD_BYTE, GUARD + ct_len + GUARD);
	CHECK_BOOL(kvc_read_racy(p, idx, off, (char *) readbuf + GUARD, ct_len),
			   true, "kvc_read_racy content type");
	CHECK_OK(check_bytes(readbuf + GUARD, ct, ct_len, "racy content type bytes"));
	CHECK_BOOL(guards_intact(ct_len), true, "kvc_read_racy wrote only ct_len bytes");
	memset(readbuf, GUARD_BYTE, GUARD + value_len + GUARD);
	CHECK_BOOL(kvc_read_racy(p, idx, off + ct_len, (char *) readbuf + GUARD,
							 value_len),
			   true, "kvc_read_racy value");
	CHECK_OK(check_bytes(readbuf + GUARD, value, value_len, "racy value bytes"));
	CHECK_BOOL(guards_intact(value_len), true,
			   "kvc_read_racy wrote only value_len bytes");
	return true;
}

/* check_entry for NUL-terminated key and content type */
static bool
check_str_entry(KvcPartition *p, const char *key, const char *ct,
				const char *value, size_t value_len)
{
	return check_entry(p, find(p, key), key, strlen(key), ct, strlen(ct),
					   value, value_len);
}

/*
 * Walk the whole partition and check it is consistent: every block is
 * either in a free run on its size class's list (nfree blocks in nruns
 * maximal runs) or in exactly one entry's extents, and the used-block
 * bitmap says which; the LRU list is a proper doubly linked list of
 * 'entries' entries; every entry is in the bucket its hash names; entries,
 * payload_bytes and kvc_blocks_used agree with the sums over the live
 * entries.
 */
#define MARK_MAX	65536
static unsigned char mark[MARK_MAX];

#define MARK_FREE	1
#define MARK_BODY	2
#define MARK_HEAD	3

static bool
check_structure(KvcPartition *p)
{
	uint32_t   *buckets = bucket_array(p);
	uint64_t   *used = used_map(p);
	uint32_t	idx;
	uint32_t	prev;
	uint64_t	nfree = 0;
	uint64_t	nruns = 0;
	uint64_t	nentries = 0;
	uint64_t	payload = 0;
	uint64_t	blocks = 0;
	uint64_t	chained = 0;
	uint32_t	b;
	uint32_t	c;

	if (p->nblocks > MARK_MAX)
		return fail(__LINE__, "test mark array too small",
					"got %u expected at most %d", p->nblocks, MARK_MAX);
	memset(mark, 0, p->nblocks);

	CHECK_UINT(p->nbuckets & (p->nbuckets - 1), 0, "nbuckets is a power of 2");

	/* the free runs, class by class */
	for (c = 0; c < KVC_CLASSES; c++)
	{
		bool		listed = (p->class_mask[c / 64] >> (c % 64)) & 1;

		set_context("size class %u", c);
		CHECK_BOOL(listed, p->free_heads[c] != KVC_NONE,
				   "class_mask bit set iff the class has runs");
		prev = KVC_NONE;
		for (idx = p->free_heads[c]; idx != KVC_NONE; idx = run_at(p, idx)->next)
		{
			const KvcFreeRun *r;
			uint32_t	j;

			CHECK_BOOL(idx < p->nblocks, true, "free run index in range");
			r = run_at(p, idx);
			CHECK_BOOL(r->nblocks > 0 && r->nblocks <= p->nblocks - idx, true,
					   "free run inside the partition");
			CHECK_BOOL(r->nblocks >= KVC_MIN_RUN || r->nblocks == p->nblocks,
					   true, "no free run shorter than KVC_MIN_RUN");
			CHECK_UINT(size_class(r->nblocks), c, "free run in its size class");
			CHECK_UINT(kvc_size_class(r->nblocks), c, "kvc_size_class");
			CHECK_UINT(r->prev, prev, "free run's prev links back");
			CHECK_UINT(run_at(p, idx + r->nblocks - 1)->start, idx,
					   "free run's last block names its start");
			for (j = idx; j < idx + r->nblocks; j++)
			{
				CHECK_UINT(mark[j], 0, "free block in one run only");
				mark[j] = MARK_FREE;
			}
			nfree += r->nblocks;
			nruns++;
			prev = idx;
		}
	}
	set_context("");
	CHECK_UINT(nfree, p->nfree, "blocks in free runs == nfree");
	CHECK_UINT(nruns, p->nruns, "free runs == nruns");

	/* the LRU list, and each entry's extents */
	prev = KVC_NONE;
	for (idx = p->lru_head; idx != KVC_NONE;)
	{
		const KvcEntry *e;
		uint32_t	n;
		uint32_t	i;
		uint32_t	j;

		CHECK_BOOL(idx < p->nblocks && p->nblocks - idx >= KVC_HEADER_BLOCKS,
				   true, "LRU index in range");
		CHECK_UINT(mark[idx], 0, "entry head block owned once");
		e = kvc_entry(p, idx);
		CHECK_UINT(e->lru_prev, prev, "lru_prev links back");
		CHECK_OK(check_extents(p, idx));
		n = entry_extents(p, idx);
		for (i = 0; i < n; i++)
		{
			for (j = ext_start[i]; j < ext_start[i] + ext_len[i]; j++)
			{
				CHECK_UINT(mark[j], 0, "entry block owned once");
				mark[j] = (j == idx) ? MARK_HEAD : MARK_BODY;
			}
			blocks += ext_len[i];
		}
		nentries++;
		payload += (uint64_t) e->key_len + e->ct_len + e->value_len;
		prev = idx;
		idx = e->lru_next;
	}
	CHECK_UINT(p->lru_tail, prev, "lru_tail is the last entry");
	CHECK_UINT(nentries, p->entries, "LRU length == entries");
	CHECK_UINT(payload, p->payload_bytes, "payload_bytes == sum over entries");
	CHECK_UINT(blocks, kvc_blocks_used(p), "kvc_blocks_used == sum of entry blocks");
	CHECK_UINT(kvc_blocks_used(p) + p->nfree, p->nblocks,
			   "kvc_blocks_used + nfree == nblocks");
	CHECK_UINT(blocks + nfree, p->nblocks, "every block free or in an entry");

	/* the bitmap matches; free runs are maximal */
	for (b = 0; b < p->nblocks; b++)
	{
		bool		bit = (used[b / 64] >> (b % 64)) & 1;

		set_context("block %u", b);
		CHECK_BOOL(bit, mark[b] != MARK_FREE, "used bit set iff in an entry");
	}
	set_context("");
	for (c = 0; c < KVC_CLASSES; c++)
		for (idx = p->free_heads[c]; idx != KVC_NONE; idx = run_at(p, idx)->next)
		{
			uint32_t	end = idx + run_at(p, idx)->nblocks;

			CHECK_BOOL(idx == 0 || mark[idx - 1] != MARK_FREE, true,
					   "no free block just before a free run");
			CHECK_BOOL(end == p->nblocks || mark[end] != MARK_FREE, true,
					   "no free block just after a free run");
		}

	/* the hash table holds exactly the entries on the LRU list */
	for (b = 0; b < p->nbuckets; b++)
	{
		for (idx = buckets[b]; idx != KVC_NONE; idx = kvc_entry(p, idx)->hash_next)
		{
			CHECK_BOOL(idx < p->nblocks, true, "bucket chain index in range");
			CHECK_UINT(mark[idx], MARK_HEAD, "bucket chain names an entry");
			CHECK_UINT(kvc_entry(p, idx)->hash_lo & (p->nbuckets - 1), b,
					   "entry is in its hash's bucket");
			mark[idx] = 0;		/* so a cycle or a duplicate shows up */
			chained++;
		}
	}
	CHECK_UINT(chained, p->entries, "bucket chains hold all entries");
	return true;
}

/* Deterministic PRNG (splitmix64), so runs repeat on every platform. */
static uint64_t rng_state;

static uint64_t
rng_next(void)
{
	uint64_t	z = (rng_state += UINT64_C(0x9E3779B97F4A7C15));

	z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
	z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
	return z ^ (z >> 31);
}

static uint32_t
rng_below(uint32_t n)
{
	return (uint32_t) (rng_next() % n);
}

/* ----------------------------------------------------------------
 * Tests
 * ----------------------------------------------------------------
 */

static const uint32_t sizes[] = {
	0, 1, 2, 3, 7, 8, 9, 15, 16, 17, 31, 32, 33, 34, 63, 64, 65, 100,
	255, 256, 257, 1000, 4095, 4096, 4097, 65535, 65536, 1000003,
	UINT32_C(16777216)
};

static bool
test_sizing_round_trip(void)
{
	size_t		i;

	CHECK_UINT(kvc_blocks_fitting(0), 0, "kvc_blocks_fitting(0)");
	CHECK_UINT(kvc_blocks_fitting(kvc_partition_bytes(0) - 1), 0,
			   "kvc_blocks_fitting below a 0-block partition");
	for (i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++)
	{
		uint32_t	n = sizes[i];
		size_t		bytes = kvc_partition_bytes(n);

		set_context("nblocks %u, %zu bytes", n, bytes);
		CHECK_UINT(kvc_blocks_fitting(bytes), n,
				   "kvc_blocks_fitting(kvc_partition_bytes(n))");
		CHECK_BOOL(kvc_partition_bytes(n + 1) > bytes, true,
				   "kvc_partition_bytes grows with n");
		CHECK_BOOL(bytes >= sizeof(KvcPartition) + (size_t) n * KVC_BLOCK_SIZE,
				   true, "kvc_partition_bytes covers header and blocks");
		if (n > 0)
			CHECK_UINT(kvc_blocks_fitting(bytes - 1), n - 1,
					   "one byte short fits one block fewer");
		CHECK_UINT(kvc_blocks_fitting(kvc_partition_bytes(n + 1) - 1), n,
				   "one byte short of n+1 blocks fits n");
	}
	return true;
}

static bool
test_partition_fits_in_its_bytes(void)
{
	/*
	 * Multiples of 3 (the smallest entry), most of them leaving the last
	 * word of the used-block bitmap partly used.
	 */
	static const uint32_t counts[] = {24, 27, 33, 63, 99, 129, 1026, 3081};
	static char value[8192];
	size_t		i;

	for (i = 0; i < sizeof(counts) / sizeof(counts[0]); i++)
	{
		uint32_t	n = counts[i];
		size_t		bytes = kvc_partition_bytes(n);
		KvcPartition *p = test_alloc(bytes);
		char	   *end = (char *) p + bytes;
		char		key[16];
		uint32_t	j;
		uint32_t	k;
		size_t		big;

		kvc_init(p, n);
		set_context("nblocks %u, %zu bytes", n, bytes);
		CHECK_UINT(p->nblocks, n, "nblocks after kvc_init");
		CHECK_UINT(p->nfree, n, "nfree after kvc_init");
		CHECK_UINT(p->max_entry_blocks, n / 8, "max_entry_blocks");
		CHECK_OK(check_structure(p));
		for (j = 0; j < n; j++)
		{
			const char *blk = (const char *) kvc_entry(p, j);

			CHECK_UINT((uintptr_t) blk % 8, 0, "block is 8-byte aligned");
			CHECK_BOOL(blk >= (char *) (used_map(p) + (n + 63) / 64), true,
					   "block after the used-block bitmap");
			CHECK_BOOL(blk + KVC_BLOCK_SIZE <= end, true,
					   "block inside the partition's bytes");
		}

		/*
		 * Fill every block with the smallest entries, whose value's last byte
		 * is their last block's last byte: 7-byte key + 1-byte value after
		 * the header, three blocks.
		 */
		CHECK_UINT(entry_blocks(7, 0, 1), KVC_HEADER_BLOCKS,
				   "test entry is as short as an entry gets");
		CHECK_UINT(sizeof(KvcEntry) + 7 + 1, KVC_HEADER_BLOCKS * KVC_BLOCK_SIZE,
				   "test entry fills its blocks");
		for (j = 0; j < n / KVC_HEADER_BLOCKS; j++)
		{
			snprintf(key, sizeof(key), "%07u", j);
			value[0] = (char) (j * 7 + 1);
			CHECK_BOOL(put(p, key, "", value, 1, j), true, "insert 3-block entry");
		}
		CHECK_UINT(p->nfree, 0, "all blocks used");
		CHECK_UINT(p->nruns, 0, "no free run left");
		CHECK_UINT(p->evictions, 0, "no evictions while filling");
		CHECK_UINT(p->entries, n / KVC_HEADER_BLOCKS, "entries after filling");
		CHECK_OK(check_structure(p));
		for (j = 0; j < n / KVC_HEADER_BLOCKS; j++)
		{
			snprintf(key, sizeof(key), "%07u", j);
			value[0] = (char) (j * 7 + 1);
			set_context("nblocks %u, key %s", n, key);
			CHECK_OK(check_str_entry(p, key, "", value, 1));
		}

		/* then the largest entries allowed, again filling every block */
		kvc_clear(p);
		big = (size_t) p->max_entry_blocks * KVC_BLOCK_SIZE - sizeof(KvcEntry) - 7;
		for (k = 0; k < big; k++)
			value[k] = (char) (k * 13 + n);
		for (j = 0; j < 8; j++)
		{
			snprintf(key, sizeof(key), "%07u", j);
			value[0] = (char) j;
			CHECK_BOOL(put(p, key, "", value, big, j), true,
					   "insert largest entry");
		}
		CHECK_UINT(p->nfree, n % 8 < KVC_MIN_RUN ? 0 : n % 8,
				   "largest entries fill the partition");
		CHECK_OK(check_structure(p));
		for (j = 0; j < 8; j++)
		{
			snprintf(key, sizeof(key), "%07u", j);
			value[0] = (char) j;
			set_context("nblocks %u, largest entry %s", n, key);
			CHECK_OK(check_str_entry(p, key, "", value, big));
		}
	}
	return true;
}

static bool
test_insert_then_lookup(void)
{
	KvcPartition *p = new_partition(256);
	const char *key = "alpha";
	uint64_t	hash = kvc_hash(key, 5);
	char		longkey[150];
	uint32_t	idx;
	const KvcEntry *e;

	CHECK_BOOL(kvc_insert(p, hash, key, 5, "text/plain", 10, "hello", 5,
						  INT64_C(42), INT64_C(1234567890123)),
			   true, "insert alpha");
	CHECK_BOOL(kvc_insert(p, kvc_hash("beta", 4), "beta", 4, "", 0, "", 0,
						  INT64_C(-7), 0),
			   true, "insert beta");

	idx = kvc_lookup(p, hash, key, 5);
	CHECK_FOUND(idx, true, "lookup alpha");
	e = kvc_entry(p, idx);
	CHECK_UINT(e->hash_lo, (uint32_t) hash, "alpha hash's low 32 bits");
	CHECK_UINT(e->key_len, 5, "alpha key_len");
	CHECK_UINT(e->ct_len, 10, "alpha ct_len");
	CHECK_UINT(e->value_len, 5, "alpha value_len");
	CHECK_INT(e->version, 42, "alpha version");
	CHECK_INT(e->expires_at, INT64_C(1234567890123), "alpha expires_at");
	CHECK_OK(check_entry(p, idx, key, 5, "text/plain", 10, "hello", 5));

	idx = find(p, "beta");
	CHECK_FOUND(idx, true, "lookup beta");
	e = kvc_entry(p, idx);
	CHECK_UINT(e->key_len, 4, "beta key_len");
	CHECK_UINT(e->ct_len, 0, "beta ct_len");
	CHECK_UINT(e->value_len, 0, "beta value_len");
	CHECK_INT(e->version, -7, "beta version");
	CHECK_INT(e->expires_at, 0, "beta expires_at");

	/* near misses are not found */
	CHECK_FOUND(find(p, "alph"), false, "lookup prefix of a key");
	CHECK_FOUND(find(p, "alphaa"), false, "lookup extension of a key");
	CHECK_FOUND(find(p, "alphb"), false, "lookup key differing in last byte");
	CHECK_FOUND(kvc_lookup(p, hash, "alphb", 5), false,
				"lookup other key with alpha's hash");
	CHECK_FOUND(kvc_lookup(p, hash, "alph", 4), false,
				"lookup prefix of alpha with alpha's hash");
	CHECK_FOUND(kvc_lookup(p, hash, "alphaa", 6), false,
				"lookup extension of alpha with alpha's hash");
	CHECK_FOUND(kvc_lookup(p, hash, "", 0), false,
				"lookup empty key with alpha's hash");
	CHECK_FOUND(kvc_lookup(p, hash ^ 1, key, 5), false,
				"lookup alpha with another hash");
	/* the header keeps the low 32 bits: the key decides beyond them */
	CHECK_UINT(kvc_lookup(p, hash ^ (UINT64_C(1) << 40), key, 5),
			   kvc_lookup(p, hash, key, 5),
			   "lookup alpha with a hash differing above bit 31");
	CHECK_FOUND(find(p, ""), false, "lookup empty key");

	/* same hash, keys equal up to their last byte, well past block 1 */
	memset(longkey, 'L', sizeof(longkey));
	CHECK_BOOL(kvc_insert(p, hash, longkey, sizeof(longkey), "", 0, "L1", 2,
						  1, 0),
			   true, "insert long key");
	longkey[sizeof(longkey) - 1] = 'M';
	CHECK_FOUND(kvc_lookup(p, hash, longkey, sizeof(longkey)), false,
				"lookup long key differing in its last byte, same hash");
	CHECK_BOOL(kvc_insert(p, hash, longkey, sizeof(longkey), "", 0, "M1", 2,
						  2, 0),
			   true, "insert second long key");
	CHECK_OK(check_entry(p, kvc_lookup(p, hash, longkey, sizeof(longkey)),
						 longkey, sizeof(longkey), "", 0, "M1", 2));
	longkey[sizeof(longkey) - 1] = 'L';
	CHECK_OK(check_entry(p, kvc_lookup(p, hash, longkey, sizeof(longkey)),
						 longkey, sizeof(longkey), "", 0, "L1", 2));
	CHECK_BOOL(kvc_remove(p, hash, longkey, sizeof(longkey)), true,
			   "remove first long key");
	longkey[sizeof(longkey) - 1] = 'M';
	CHECK_BOOL(kvc_remove(p, hash, longkey, sizeof(longkey)), true,
			   "remove second long key");
	CHECK_UINT(p->entries, 2, "entries");
	CHECK_UINT(p->payload_bytes, 5 + 10 + 5 + 4, "payload_bytes");
	CHECK_OK(check_structure(p));
	return true;
}

static bool
test_value_spanning_many_blocks(void)
{
	KvcPartition *p = new_partition(2048);	/* entries up to 256 blocks */
	char		key[200];
	char		ct[100];
	char		value[4000];
	size_t		len;
	size_t		i;

	for (i = 0; i < sizeof(value); i++)
		value[i] = (char) (i * 31 + 7);
	for (i = 0; i < sizeof(ct); i++)
		ct[i] = (char) ('a' + i % 26);
	for (i = 0; i < sizeof(key); i++)
		key[i] = (char) ('A' + i % 26);

	/* a long key and content type crossing block boundaries too */
	CHECK_BOOL(kvc_insert(p, kvc_hash(key, 150), key, 150, ct, 90, value, 3500,
						  1, 0),
			   true, "insert 3500-byte value");
	CHECK_UINT(kvc_entry_blocks(p, kvc_lookup(p, kvc_hash(key, 150), key, 150)),
			   entry_blocks(150, 90, 3500), "entry spans many blocks");
	CHECK_OK(check_entry(p, kvc_lookup(p, kvc_hash(key, 150), key, 150),
						 key, 150, ct, 90, value, 3500));

	/* every value length up to a few blocks, at every offset in a block */
	for (len = 0; len <= 700; len++)
	{
		size_t		klen = 1 + len % 97;
		size_t		clen = len % 13;

		set_context("value_len %zu key_len %zu ct_len %zu", len, klen, clen);
		key[0] = (char) ('a' + len % 26);
		key[klen - 1] = (char) len;
		CHECK_BOOL(kvc_insert(p, kvc_hash(key, klen), key, klen, ct, clen,
							  value + len, len, (int64_t) len, 0),
				   true, "insert");
		CHECK_OK(check_entry(p, kvc_lookup(p, kvc_hash(key, klen), key, klen),
							 key, klen, ct, clen, value + len, len));
	}
	CHECK_OK(check_structure(p));
	return true;
}

/*
 * Entries split into extents.  Lay out, from block 0: h2 (8 blocks), x (8),
 * h1 (12), then fillers up to the end; remove h2 and h1, and insert S, 17
 * blocks long: no free run is, so S is split over both holes, the longest
 * first: [16, 28) then [0, 8), the 2 blocks left over going to S as spare.
 * Then remove x, make S the least recently used, and insert T, 18 blocks:
 * evicting S frees [16, 28), which merges with x's hole into [8, 28), long
 * enough; then [0, 8), which merges with that into [0, 28): T must go to
 * block 0, the start of the run as it is after both merges.
 */
static bool
test_split_entries(void)
{
	KvcPartition *p = new_partition(256);	/* entries up to 32 blocks */
	char		value[512];
	char		key[16];
	uint32_t	idx;
	uint32_t	n;
	size_t		i;
	int			f;

	for (i = 0; i < sizeof(value); i++)
		value[i] = (char) (i * 7 + 3);
	CHECK_UINT(entry_blocks(2, 0, 86), 8, "h2 is 8 blocks");
	CHECK_UINT(entry_blocks(1, 0, 87), 8, "x is 8 blocks");
	CHECK_UINT(entry_blocks(2, 0, 150), 12, "h1 is 12 blocks");
	CHECK_UINT(entry_blocks(3, 0, 149), 12, "a filler is 12 blocks");
	CHECK_BOOL(put(p, "h2", "", value, 86, 1), true, "insert h2");
	CHECK_BOOL(put(p, "x", "", value, 87, 1), true, "insert x");
	CHECK_BOOL(put(p, "h1", "", value, 150, 1), true, "insert h1");
	for (f = 0; f < 19; f++)
	{
		snprintf(key, sizeof(key), "f%02d", f);
		CHECK_BOOL(put(p, key, "", value + f, 149, f), true, "insert filler");
	}
	CHECK_UINT(p->nfree, 0, "partition full");
	CHECK_UINT(find(p, "h2"), 0, "h2 at block 0");
	CHECK_UINT(find(p, "x"), 8, "x at block 8");
	CHECK_UINT(find(p, "h1"), 16, "h1 at block 16");

	CHECK_BOOL(kvc_remove(p, kvc_hash("h2", 2), "h2", 2), true, "remove h2");
	CHECK_BOOL(kvc_remove(p, kvc_hash("h1", 2), "h1", 2), true, "remove h1");
	CHECK_UINT(p->nruns, 2, "two holes");
	CHECK_UINT(entry_blocks(1, 0, 219), 17, "S is 17 blocks contiguous");
	CHECK_BOOL(put(p, "S", "text/x", value, 219 - 6, 2), true, "insert S");
	CHECK_UINT(p->evictions, 0, "S fits in the holes, nothing evicted");
	idx = find(p, "S");
	CHECK_UINT(idx, 16, "S starts in the longest hole");
	CHECK_UINT(kvc_entry(p, idx)->split, 1, "S is split");
	n = entry_extents(p, idx);
	CHECK_UINT(n, 2, "two extents");
	CHECK_UINT(ext_start[0], 16, "first extent");
	CHECK_UINT(ext_len[0], 12, "first extent's length");
	CHECK_UINT(ext_start[1], 0, "second extent");
	CHECK_UINT(ext_len[1], 8, "second extent takes the 2 spare blocks");
	CHECK_UINT(p->nfree, 0, "partition full again");
	CHECK_OK(check_str_entry(p, "S", "text/x", value, 219 - 6));
	CHECK_OK(check_structure(p));

	/* reads at every offset and length across the extent boundary */
	for (i = 0; i + 40 <= 219 - 6; i += 7)
	{
		size_t		off = sizeof(KvcEntry) + 1 + 6 + i;

		set_context("offset %zu", i);
		memset(readbuf, GUARD_BYTE, GUARD + 40 + GUARD);
		CHECK_BOOL(kvc_read_racy(p, idx, off, (char *) readbuf + GUARD, 40),
				   true, "kvc_read_racy");
		CHECK_OK(check_bytes(readbuf + GUARD, value + i, 40, "bytes"));
		CHECK_BOOL(guards_intact(40), true, "wrote 40 bytes only");
	}
	set_context("");
	/* the extents hold 12 * 16 - 8 + 8 * 16 - 8 = 304 bytes, header included */
	CHECK_BOOL(kvc_read_racy(p, idx, 300, (char *) readbuf, 4), true,
			   "kvc_read_racy up to the end of the extents");
	CHECK_BOOL(kvc_read_racy(p, idx, 300, (char *) readbuf, 5), false,
			   "kvc_read_racy past the end of the extents");

	CHECK_BOOL(kvc_remove(p, kvc_hash("x", 1), "x", 1), true, "remove x");
	for (f = 0; f < 19; f++)
	{
		snprintf(key, sizeof(key), "f%02d", f);
		kvc_touch(p, find(p, key));
	}
	CHECK_UINT(p->lru_tail, idx, "S is the least recently used");
	CHECK_UINT(entry_blocks(1, 0, 247), 18, "T is 18 blocks");
	CHECK_BOOL(put(p, "T", "", value, 247, 3), true, "insert T");
	CHECK_UINT(p->evictions, 1, "only S evicted");
	CHECK_FOUND(find(p, "S"), false, "S gone");
	CHECK_UINT(find(p, "T"), 0, "T at the start of the merged run");
	CHECK_UINT(kvc_entry(p, find(p, "T"))->split, 0, "T is contiguous");
	CHECK_UINT(p->nfree, 10, "the rest of the run is free");
	CHECK_UINT(p->nruns, 1, "in one run");
	CHECK_OK(check_str_entry(p, "T", "", value, 247));
	CHECK_OK(check_structure(p));
	return true;
}

/*
 * The lock-free readers on garbage: with every block and bucket random, as
 * a reader racing a writer may see them, lookups and reads return quickly
 * and touch nothing outside the partition (the partition is exactly
 * kvc_partition_bytes() of heap, for valgrind or AddressSanitizer to
 * watch), whatever the index, offset and length.
 */
static bool
test_racy_readers_on_garbage(void)
{
	uint32_t	nblocks = 1000;
	KvcPartition *p = new_partition(nblocks);
	char	   *base = (char *) (p + 1);
	char	   *end = (char *) p + kvc_partition_bytes(nblocks);
	static char dst[16384];
	uint64_t	saved = rng_state;
	int			round;

	rng_state = UINT64_C(0xC0FFEE);
	for (round = 0; round < 200; round++)
	{
		char	   *c;
		int			i;

		/* garbage, but mostly small numbers, so indexes are often in range */
		for (c = base; c < end; c++)
			*c = (char) (rng_below(4) == 0 ? rng_next() : rng_below(8));
		for (i = 0; i < 200; i++)
		{
			char		key[32];
			size_t		klen = rng_below(sizeof(key));
			uint32_t	idx = rng_below(nblocks + 8);
			size_t		off = rng_below(1200);
			size_t		len = rng_below(1200);

			memset(key, (int) rng_below(8), sizeof(key));
			(void) kvc_lookup_racy(p, rng_next(), key, klen);
			(void) kvc_read_racy(p, idx, off, dst, len);
			(void) kvc_read_racy(p, idx, sizeof(KvcEntry), dst,
								 rng_below(2) ? 0 : (size_t) rng_next());
		}
	}
	rng_state = saved;
	return true;
}

/*
 * What kv_stats() reports as overhead_bytes_per_entry, computed the same
 * way: (kvc_used_bytes - payload_bytes) / entries, summed over partitions.
 * The goal of issue 11: at most 64 bytes for 16-byte values and keys of
 * 10 to 20 bytes.  Checked in partitions the size the server makes for
 * cache_size 1 MB, 4 MB and 64 MB (the default), filled with distinct keys
 * without eviction, then again after churning through three times as many
 * keys (evicting all along: the holes must be reused without splitting).
 */
static double
overhead_per_entry(const KvcPartition *p)
{
	return (double) (kvc_used_bytes(p) - p->payload_bytes) / (double) p->entries;
}

static bool
test_overhead_per_entry(void)
{
	static const size_t part_bytes[] = {65536, 262144, 4194304};
	static char value[200];
	size_t		s;
	size_t		klen;

	memset(value, 'v', sizeof(value));
	for (s = 0; s < sizeof(part_bytes) / sizeof(part_bytes[0]); s++)
	{
		uint32_t	nblocks = kvc_blocks_fitting(part_bytes[s]);
		KvcPartition *p = test_alloc(kvc_partition_bytes(nblocks));

		for (klen = 10; klen <= 20; klen++)
		{
			char		key[32];
			uint32_t	i;
			uint32_t	fill;
			double		fresh = 0;
			double		churned;

			kvc_init(p, nblocks);
			set_context("partition %zu bytes, key %zu bytes", part_bytes[s], klen);
			for (i = 0; p->evictions == 0; i++)
			{
				snprintf(key, sizeof(key), "%0*u", (int) klen, i);
				CHECK_BOOL(kvc_insert(p, kvc_hash(key, klen), key, klen, "", 0,
									  value, 16, i, 0),
						   true, "insert");
				if (p->evictions == 0)
					fresh = overhead_per_entry(p);
			}
			fill = i;
			for (; i < 4 * fill; i++)
			{
				snprintf(key, sizeof(key), "%0*u", (int) klen, i);
				CHECK_BOOL(kvc_insert(p, kvc_hash(key, klen), key, klen, "", 0,
									  value, 16, i, 0),
						   true, "insert");
			}
			churned = overhead_per_entry(p);
			if (part_bytes[s] == 4194304 && (klen == 10 || klen == 15 || klen == 20))
				printf("# overhead, 16-byte value, %zu-byte key: %.1f bytes/entry "
					   "(%.1f after churn), %" PRIu64 " entries in 4 MiB\n",
					   klen, fresh, churned, p->entries);
			CHECK_BOOL(fresh <= 64.0, true, "overhead <= 64 bytes per entry");
			CHECK_BOOL(churned <= 64.0, true,
					   "overhead <= 64 bytes per entry after churn");
		}
	}
	set_context("");

	/* for the record: other shapes in the default-sized partition */
	{
		static const size_t shapes[][3] = {
			{4, 0, 16}, {7, 0, 16}, {10, 24, 16}, {16, 0, 0}, {16, 0, 100},
			{16, 16, 1000}, {32, 24, 4000}
		};
		uint32_t	nblocks = kvc_blocks_fitting(4194304);
		KvcPartition *p = test_alloc(kvc_partition_bytes(nblocks));
		static char big[4096];

		memset(big, 'b', sizeof(big));
		for (s = 0; s < sizeof(shapes) / sizeof(shapes[0]); s++)
		{
			uint32_t	i;

			kvc_init(p, nblocks);
			for (i = 0; i < 1000; i++)
			{
				char		key[40];

				snprintf(key, sizeof(key), "%0*u", (int) shapes[s][0], i);
				CHECK_BOOL(kvc_insert(p, kvc_hash(key, shapes[s][0]), key,
									  shapes[s][0], big, shapes[s][1],
									  big, shapes[s][2], i, 0),
						   true, "insert");
			}
			printf("# overhead, key %zu, content type %zu, value %zu bytes: %.1f bytes/entry\n",
				   shapes[s][0], shapes[s][1], shapes[s][2], overhead_per_entry(p));
		}
	}
	return true;
}

static bool
test_zero_length_value(void)
{
	KvcPartition *p = new_partition(64);
	const char *key40 = "key-of-forty-bytes......................";
	const char *ct32 = "content-type-of-32-bytes........";
	const KvcEntry *e;

	CHECK_BOOL(put(p, "empty", "text/plain", "", 0, 3), true,
			   "insert empty value");
	CHECK_OK(check_str_entry(p, "empty", "text/plain", "", 0));

	/* key + content type end exactly on a block boundary */
	CHECK_UINT(sizeof(KvcEntry) + 8, 3 * KVC_BLOCK_SIZE, "8 bytes end the block");
	CHECK_BOOL(put(p, "12345678", "", "", 0, 4), true,
			   "insert entry filling three blocks with empty value");
	e = kvc_entry(p, find(p, "12345678"));
	CHECK_UINT(e->split, 0, "contiguous");
	CHECK_UINT(kvc_entry_blocks(p, find(p, "12345678")), 3, "three blocks");
	CHECK_OK(check_str_entry(p, "12345678", "", "", 0));
	CHECK_BOOL(put(p, "1234", "ab/c", "", 0, 5), true,
			   "insert entry ending at block end with content type");
	CHECK_OK(check_str_entry(p, "1234", "ab/c", "", 0));

	/* key + content type end exactly on the seventh block's boundary */
	CHECK_UINT(sizeof(KvcEntry) + strlen(key40) + strlen(ct32),
			   7 * KVC_BLOCK_SIZE, "key40 and ct32 end the seventh block");
	CHECK_BOOL(put(p, key40, ct32, "", 0, 6), true,
			   "insert seven-block entry with empty value");
	CHECK_UINT(kvc_entry_blocks(p, find(p, key40)), 7, "seven blocks");
	CHECK_OK(check_str_entry(p, key40, ct32, "", 0));
	CHECK_UINT(p->payload_bytes, 5 + 10 + 8 + 4 + 4 + 40 + 32, "payload_bytes");
	CHECK_OK(check_structure(p));
	return true;
}

static bool
test_empty_content_type(void)
{
	KvcPartition *p = new_partition(64);
	uint32_t	idx;

	CHECK_BOOL(put(p, "noct", "", "value without type", 18, 1), true,
			   "insert without content type");
	idx = find(p, "noct");
	CHECK_FOUND(idx, true, "lookup");
	CHECK_UINT(kvc_entry(p, idx)->ct_len, 0, "ct_len");
	CHECK_OK(check_str_entry(p, "noct", "", "value without type", 18));
	CHECK_UINT(p->payload_bytes, 4 + 18, "payload_bytes");
	return true;
}

static bool
test_binary_bytes(void)
{
	KvcPartition *p = new_partition(1024);
	static const char key1[] = {'a', '\0', 'b', '\xff'};
	static const char key2[] = {'a', '\0', 'c', '\xff'};
	static const char key3[] = {'a', '\0', 'b'};
	static const char ct[] = {'x', '\0', '\x80', 'y'};
	char		value[512];
	char		value2[3] = {'\0', '\0', '\0'};
	size_t		i;

	for (i = 0; i < sizeof(value); i++)
		value[i] = (char) (255 - i % 256);	/* every byte value, NUL included */

	CHECK_BOOL(kvc_insert(p, kvc_hash(key1, 4), key1, 4, ct, 4, value, 512, 1, 0),
			   true, "insert binary key1");
	CHECK_BOOL(kvc_insert(p, kvc_hash(key2, 4), key2, 4, ct, 4, value2, 3, 2, 0),
			   true, "insert binary key2");
	CHECK_BOOL(kvc_insert(p, kvc_hash(key3, 3), key3, 3, "", 0, value + 1, 100, 3, 0),
			   true, "insert binary key3");
	CHECK_UINT(p->entries, 3, "keys differing after a NUL are distinct");
	CHECK_OK(check_entry(p, kvc_lookup(p, kvc_hash(key1, 4), key1, 4),
						 key1, 4, ct, 4, value, 512));
	CHECK_OK(check_entry(p, kvc_lookup(p, kvc_hash(key2, 4), key2, 4),
						 key2, 4, ct, 4, value2, 3));
	CHECK_OK(check_entry(p, kvc_lookup(p, kvc_hash(key3, 3), key3, 3),
						 key3, 3, "", 0, value + 1, 100));
	/* a key compared as a C string would match "a" */
	CHECK_FOUND(kvc_lookup(p, kvc_hash("a", 1), "a", 1), false,
				"lookup key up to the NUL");
	CHECK_FOUND(kvc_lookup(p, kvc_hash(key1, 4), key2, 4), false,
				"lookup key2 with key1's hash");
	CHECK_OK(check_structure(p));
	return true;
}

static bool
test_replace(void)
{
	KvcPartition *p = new_partition(1024);
	char		v1[100];
	char		v2[1000];
	uint32_t	idx;

	memset(v1, '1', sizeof(v1));
	memset(v2, '2', sizeof(v2));
	v2[999] = 'z';

	CHECK_BOOL(put(p, "k", "text/plain", v1, 100, 1), true, "insert");
	CHECK_BOOL(put(p, "other", "", "o", 1, 1), true, "insert other");
	CHECK_UINT(p->entries, 2, "entries after insert");
	CHECK_UINT(p->payload_bytes, 1 + 10 + 100 + 5 + 1, "payload after insert");

	CHECK_BOOL(put(p, "k", "application/json", v2, 1000, 2), true, "replace larger");
	CHECK_UINT(p->entries, 2, "entries after replace");
	CHECK_UINT(p->payload_bytes, 1 + 16 + 1000 + 5 + 1, "payload after replace");
	idx = find(p, "k");
	CHECK_INT(kvc_entry(p, idx)->version, 2, "version after replace");
	CHECK_OK(check_str_entry(p, "k", "application/json", v2, 1000));
	CHECK_UINT(kvc_blocks_used(p),
			   entry_blocks(1, 16, 1000) + entry_blocks(5, 0, 1),
			   "old blocks freed");
	CHECK_OK(check_structure(p));

	CHECK_BOOL(put(p, "k", "", "", 0, 3), true, "replace with empty");
	CHECK_UINT(p->entries, 2, "entries after second replace");
	CHECK_UINT(p->payload_bytes, 1 + 5 + 1, "payload after second replace");
	CHECK_INT(kvc_entry(p, find(p, "k"))->version, 3, "version after second replace");
	CHECK_OK(check_str_entry(p, "k", "", "", 0));
	CHECK_OK(check_str_entry(p, "other", "", "o", 1));
	CHECK_UINT(p->evictions, 0, "replacing is not evicting");
	CHECK_OK(check_structure(p));
	return true;
}

/*
 * Byte accounting: after each step, entries and payload_bytes must equal
 * the sums over the keys a lookup still finds, computed here from what the
 * test inserted.
 */
#define ACC_KEYS 40

static size_t acc_len[ACC_KEYS];	/* key + ct + value bytes last inserted */

static bool
check_accounting(KvcPartition *p, const char *step)
{
	uint64_t	nfound = 0;
	uint64_t	payload = 0;
	int			i;

	set_context("after %s", step);
	for (i = 0; i < ACC_KEYS; i++)
	{
		char		key[16];

		snprintf(key, sizeof(key), "acc%02d", i);
		if (find(p, key) != KVC_NONE)
		{
			nfound++;
			payload += acc_len[i];
		}
	}
	CHECK_UINT(p->entries, nfound, "entries == live entries");
	CHECK_UINT(p->payload_bytes, payload, "payload_bytes == sum over live entries");
	CHECK_UINT(kvc_blocks_used(p) + p->nfree, p->nblocks,
			   "kvc_blocks_used + nfree == nblocks");
	CHECK_OK(check_structure(p));
	return true;
}

static bool
acc_put(KvcPartition *p, int i, size_t ct_len, size_t value_len)
{
	static char buf[1024];
	char		key[16];

	snprintf(key, sizeof(key), "acc%02d", i);
	memset(buf, 'v', sizeof(buf));
	acc_len[i] = strlen(key) + ct_len + value_len;
	return kvc_insert(p, kvc_hash(key, strlen(key)), key, strlen(key),
					  buf, ct_len, buf, value_len, i, 0);
}

static bool
test_byte_accounting(void)
{
	KvcPartition *p = new_partition(256);	/* entries up to 32 blocks */
	char		key[16];
	int			i;

	CHECK_OK(check_accounting(p, "init"));
	for (i = 0; i < 10; i++)
		CHECK_BOOL(acc_put(p, i, (size_t) (i % 3 * 5), (size_t) (17 * i)),
				   true, "insert");
	CHECK_OK(check_accounting(p, "inserts"));
	CHECK_UINT(p->entries, 10, "entries after 10 inserts");

	CHECK_BOOL(acc_put(p, 2, 0, 300), true, "replace");
	CHECK_BOOL(acc_put(p, 5, 20, 0), true, "replace");
	CHECK_BOOL(acc_put(p, 9, 1, 1), true, "replace");
	CHECK_OK(check_accounting(p, "replaces"));

	snprintf(key, sizeof(key), "acc%02d", 3);
	CHECK_BOOL(kvc_remove(p, kvc_hash(key, 5), key, 5), true, "remove acc03");
	snprintf(key, sizeof(key), "acc%02d", 7);
	CHECK_BOOL(kvc_remove(p, kvc_hash(key, 5), key, 5), true, "remove acc07");
	CHECK_OK(check_accounting(p, "removes"));

	for (i = 10; i < ACC_KEYS; i++)
	{
		CHECK_BOOL(acc_put(p, i, 10, (size_t) (150 + i)), true, "insert");
		CHECK_OK(check_accounting(p, "insert with evictions"));
	}
	CHECK_BOOL(p->evictions > 0, true, "some entries were evicted");
	CHECK_BOOL(p->entries < ACC_KEYS - 2, true, "evictions reduced entries");

	CHECK_BOOL(acc_put(p, 39, 0, 400), true, "replace the newest, evicting");
	CHECK_OK(check_accounting(p, "replace with evictions"));

	kvc_clear(p);
	CHECK_OK(check_accounting(p, "clear"));
	CHECK_UINT(p->entries, 0, "entries after clear");
	CHECK_UINT(p->payload_bytes, 0, "payload after clear");
	CHECK_UINT(kvc_blocks_used(p), 0, "blocks used after clear");
	return true;
}

/*
 * LRU order.  128 blocks of four-block entries (40-byte header, 4-byte key,
 * 20-byte value) hold 32 entries exactly.
 */
#define LRU_V4	20				/* value of a four-block entry */
#define LRU_V5	36				/* five */
#define LRU_V3	4				/* three */

static bool
lru_put(KvcPartition *p, int i, size_t value_len)
{
	char		key[8];
	char		value[256];

	snprintf(key, sizeof(key), "k%03d", i);
	memset(value, (char) i, sizeof(value));
	return put(p, key, "", value, value_len, i);
}

static bool
lru_present(KvcPartition *p, int i)
{
	char		key[8];

	snprintf(key, sizeof(key), "k%03d", i);
	return find(p, key) != KVC_NONE;
}

static void
lru_touch(KvcPartition *p, int i)
{
	char		key[8];

	snprintf(key, sizeof(key), "k%03d", i);
	kvc_touch(p, find(p, key));
}

static bool
test_eviction_order_is_lru(void)
{
	KvcPartition *p = new_partition(128);
	/* after touching 0, 2 and 5 the oldest untouched go first */
	static const int evicted[] = {1, 3, 4, 6, 7};
	bool		gone[200];
	int			i;
	int			j;

	memset(gone, 0, sizeof(gone));
	CHECK_UINT(entry_blocks(4, 0, LRU_V4), 4, "test entries are four blocks");
	CHECK_UINT(sizeof(KvcEntry) + 4 + LRU_V4, 4 * KVC_BLOCK_SIZE,
			   "test entries fill four blocks");
	for (i = 0; i < 32; i++)
		CHECK_BOOL(lru_put(p, i, LRU_V4), true, "fill");
	CHECK_UINT(p->nfree, 0, "partition full");
	CHECK_UINT(p->entries, 32, "32 entries");
	CHECK_UINT(p->evictions, 0, "no evictions while filling");

	lru_touch(p, 0);
	lru_touch(p, 2);
	lru_touch(p, 5);
	lru_touch(p, 5);			/* touching the head changes nothing */
	CHECK_OK(check_structure(p));

	for (j = 0; j < 5; j++)
	{
		set_context("insert k%03d", 100 + j);
		CHECK_BOOL(lru_put(p, 100 + j, LRU_V4), true, "insert into full partition");
		gone[evicted[j]] = true;
		for (i = 0; i < 32; i++)
		{
			set_context("insert k%03d: is k%03d present", 100 + j, i);
			CHECK_BOOL(lru_present(p, i), !gone[i],
					   "only the least recently used are evicted");
		}
		for (i = 100; i <= 100 + j; i++)
			CHECK_BOOL(lru_present(p, i), true, "new entries stay");
		CHECK_UINT(p->evictions, j + 1, "evictions counter");
		CHECK_UINT(p->entries, 32, "entries stay 32");
		CHECK_UINT(p->nfree, 0, "still full");
	}
	set_context("after evicting five");

	/*
	 * A five-block entry evicts two four-block entries (k008 and k009, side
	 * by side since the partition was filled in order), leaving three free.
	 */
	CHECK_UINT(entry_blocks(4, 0, LRU_V5), 5, "test entry is five blocks");
	CHECK_BOOL(lru_put(p, 150, LRU_V5), true, "insert five-block entry");
	CHECK_UINT(p->evictions, 7, "evictions after five-block insert");
	CHECK_BOOL(lru_present(p, 8), false, "k008 evicted");
	CHECK_BOOL(lru_present(p, 9), false, "k009 evicted");
	CHECK_BOOL(lru_present(p, 10), true, "k010 kept: eviction stops when it fits");
	CHECK_UINT(p->nfree, 3, "three blocks left free");

	/* touching the tail saves it: the next one goes instead */
	lru_touch(p, 10);
	CHECK_BOOL(lru_put(p, 151, LRU_V4), true, "insert after touching the tail");
	CHECK_UINT(p->evictions, 8, "evictions after touching the tail");
	CHECK_BOOL(lru_present(p, 10), true, "touched tail kept");
	CHECK_BOOL(lru_present(p, 11), false, "next oldest evicted");
	CHECK_UINT(p->nfree, 3, "three blocks left free");

	/* a three-block entry uses the free blocks and evicts nothing */
	CHECK_UINT(entry_blocks(4, 0, LRU_V3), 3, "test entry is three blocks");
	CHECK_BOOL(lru_put(p, 152, LRU_V3), true, "insert three-block entry");
	CHECK_UINT(p->evictions, 8, "no eviction when there is room");
	CHECK_UINT(p->nfree, 0, "full");

	/* the touched ones go after everything untouched */
	for (i = 153; i < 153 + 20; i++)
		CHECK_BOOL(lru_put(p, i, LRU_V4), true, "insert");
	for (i = 12; i < 32; i++)
	{
		set_context("k%03d", i);
		if (i != 0 && i != 2 && i != 5)
			CHECK_BOOL(lru_present(p, i), false, "untouched evicted");
	}
	set_context("after evicting all untouched originals");
	CHECK_BOOL(lru_present(p, 0) && lru_present(p, 2) && lru_present(p, 5),
			   true, "touched originals kept");
	CHECK_BOOL(lru_put(p, 174, LRU_V4), true, "insert");
	CHECK_BOOL(lru_present(p, 0), false, "k000 evicted before k002 and k005");
	CHECK_BOOL(lru_present(p, 2) && lru_present(p, 5), true, "k002, k005 kept");
	CHECK_OK(check_structure(p));
	return true;
}

static bool
test_too_big(void)
{
	KvcPartition *p = new_partition(64);	/* entries up to 8 blocks */
	size_t		limit = 8 * KVC_BLOCK_SIZE - sizeof(KvcEntry);
	char		value[1024];
	int			i;

	memset(value, 'b', sizeof(value));
	CHECK_UINT(p->max_entry_blocks, 8, "max_entry_blocks");
	CHECK_BOOL(kvc_fits(p, 6, 0, limit - 6), true, "kvc_fits at the limit");
	CHECK_BOOL(kvc_fits(p, 6, 0, limit - 5), false, "kvc_fits one byte over");
	CHECK_BOOL(kvc_fits(p, limit + 1, 0, 0), false, "kvc_fits long key");
	CHECK_BOOL(kvc_fits(p, 0, limit + 1, 0), false, "kvc_fits long content type");
	CHECK_BOOL(kvc_fits(p, 0, 0, SIZE_MAX), false, "kvc_fits SIZE_MAX value");
	CHECK_BOOL(kvc_fits(p, SIZE_MAX / 2, SIZE_MAX / 2, 4), false,
			   "kvc_fits lengths summing past SIZE_MAX");

	CHECK_BOOL(put(p, "other", "", "keep me", 7, 1), true, "insert other");
	CHECK_BOOL(put(p, "big-01", "", value, limit - 6, 2), true,
			   "insert at the limit");
	CHECK_UINT(kvc_entry_blocks(p, find(p, "big-01")), 8, "8 blocks");

	/* too big: refused, and the older entry for the key is gone */
	CHECK_BOOL(put(p, "big-01", "", value, limit - 5, 3), false,
			   "insert one byte over the limit");
	CHECK_FOUND(find(p, "big-01"), false, "old entry for the key removed");
	CHECK_UINT(p->entries, 1, "entries");
	CHECK_UINT(p->payload_bytes, 5 + 7, "payload_bytes");
	CHECK_UINT(p->nfree, 64 - entry_blocks(5, 0, 7), "blocks of old entry freed");
	CHECK_UINT(p->evictions, 0, "nothing evicted");
	CHECK_OK(check_str_entry(p, "other", "", "keep me", 7));
	CHECK_OK(check_structure(p));

	/* on a full partition a too-big insert evicts nothing */
	for (i = 0; i < 100; i++)
		CHECK_BOOL(lru_put(p, i, LRU_V4), true, "fill");
	CHECK_UINT(p->nfree, 0, "full");
	{
		uint64_t	evictions = p->evictions;
		uint64_t	entries = p->entries;

		CHECK_BOOL(put(p, "huge", "", value, sizeof(value), 4), false,
				   "insert too big into full partition");
		CHECK_UINT(p->evictions, evictions, "too-big insert evicts nothing");
		CHECK_UINT(p->entries, entries, "too-big insert leaves entries");
		CHECK_UINT(p->nfree, 0, "too-big insert frees nothing");
	}
	CHECK_FOUND(find(p, "huge"), false, "too-big entry not cached");
	CHECK_OK(check_structure(p));

	/* the limits of the header's packed lengths, in a partition of 2.5 MB */
	{
		KvcPartition *q = new_partition(160000);	/* entries up to 320 kB */
		static char big[KVC_MAX_KEY_LEN + 2];
		size_t		i;

		for (i = 0; i < sizeof(big); i++)
			big[i] = (char) ('a' + i % 26);
		CHECK_BOOL(kvc_fits(q, KVC_MAX_KEY_LEN, 0, 0), true, "longest key fits");
		CHECK_BOOL(kvc_fits(q, KVC_MAX_KEY_LEN + 1, 0, 0), false, "a longer key not");
		CHECK_BOOL(kvc_fits(q, 1, KVC_MAX_CT_LEN, 0), true,
				   "longest content type fits");
		CHECK_BOOL(kvc_fits(q, 1, KVC_MAX_CT_LEN + 1, 0), false,
				   "a longer content type not");
		CHECK_BOOL(kvc_fits(q, 1, 0, KVC_MAX_VALUE_LEN + (size_t) 1), false,
				   "a value longer than 1 GB not");
		CHECK_BOOL(kvc_insert(q, kvc_hash(big, KVC_MAX_KEY_LEN), big,
							  KVC_MAX_KEY_LEN, big, KVC_MAX_CT_LEN, big + 1, 5000,
							  1, 0),
				   true, "insert longest key and content type");
		CHECK_OK(check_entry(q, kvc_lookup(q, kvc_hash(big, KVC_MAX_KEY_LEN), big,
										   KVC_MAX_KEY_LEN),
							 big, KVC_MAX_KEY_LEN, big, KVC_MAX_CT_LEN,
							 big + 1, 5000));
	}
	return true;
}

static bool
test_remove(void)
{
	KvcPartition *p = new_partition(64);

	CHECK_BOOL(put(p, "a", "", "va", 2, 1), true, "insert a");
	CHECK_BOOL(put(p, "b", "t", "vb", 2, 1), true, "insert b");
	CHECK_BOOL(put(p, "c", "", "vc", 2, 1), true, "insert c");

	CHECK_BOOL(kvc_remove(p, kvc_hash("b", 1), "b", 1), true, "remove b");
	CHECK_FOUND(find(p, "b"), false, "b gone");
	CHECK_OK(check_str_entry(p, "a", "", "va", 2));
	CHECK_OK(check_str_entry(p, "c", "", "vc", 2));
	CHECK_UINT(p->entries, 2, "entries");
	CHECK_UINT(p->payload_bytes, 6, "payload_bytes");
	CHECK_UINT(p->nfree, 64 - 2 * entry_blocks(1, 0, 2), "blocks freed");
	CHECK_OK(check_structure(p));

	CHECK_BOOL(kvc_remove(p, kvc_hash("b", 1), "b", 1), false, "remove b again");
	CHECK_BOOL(kvc_remove(p, kvc_hash("d", 1), "d", 1), false, "remove missing d");
	CHECK_BOOL(kvc_remove(p, kvc_hash("a", 1) + 1, "a", 1), false,
			   "remove a with the wrong hash");
	CHECK_UINT(p->entries, 2, "entries after failed removes");

	CHECK_BOOL(kvc_remove(p, kvc_hash("a", 1), "a", 1), true, "remove a");
	CHECK_BOOL(kvc_remove(p, kvc_hash("c", 1), "c", 1), true, "remove c");
	CHECK_UINT(p->entries, 0, "entries after removing all");
	CHECK_UINT(p->payload_bytes, 0, "payload after removing all");
	CHECK_UINT(p->nfree, 64, "all blocks free");
	CHECK_UINT(p->lru_head, KVC_NONE, "LRU empty");
	CHECK_OK(check_structure(p));
	return true;
}

static bool
hash_put(KvcPartition *p, uint64_t hash, const char *key, const char *value)
{
	return kvc_insert(p, hash, key, strlen(key), "", 0, value, strlen(value),
					  1, 0);
}

static bool
hash_check(KvcPartition *p, uint64_t hash, const char *key, const char *value,
		   bool present)
{
	uint32_t	idx = kvc_lookup(p, hash, key, strlen(key));

	set_context("key %s", key);
	CHECK_FOUND(idx, present, "lookup");
	if (present)
		CHECK_OK(check_entry(p, idx, key, strlen(key), "", 0,
							 value, strlen(value)));
	return true;
}

static bool
test_remove_hash_collision(void)
{
	KvcPartition *p = new_partition(64);
	uint64_t	h = UINT64_C(0x123456789abcdef0);
	uint64_t	h_bucket = h + p->nbuckets;	/* same bucket, other hash */

	CHECK_BOOL(hash_put(p, h, "one", "v1"), true, "insert one");
	CHECK_BOOL(hash_put(p, h_bucket, "four", "v4"), true, "insert four");
	CHECK_BOOL(hash_put(p, h, "two", "v2"), true, "insert two");
	CHECK_BOOL(hash_put(p, kvc_hash("five", 4), "five", "v5"), true,
			   "insert five");
	CHECK_BOOL(hash_put(p, h, "three", "v3"), true, "insert three");
	CHECK_UINT(p->entries, 5, "colliding keys are separate entries");
	CHECK_OK(hash_check(p, h, "one", "v1", true));
	CHECK_OK(hash_check(p, h, "two", "v2", true));
	CHECK_OK(hash_check(p, h, "three", "v3", true));
	CHECK_OK(hash_check(p, h_bucket, "four", "v4", true));
	CHECK_OK(hash_check(p, h, "four", "v4", false));
	CHECK_OK(check_structure(p));

	/* by key: only that key goes */
	set_context("");
	CHECK_BOOL(kvc_remove(p, h, "two", 3), true, "kvc_remove two");
	CHECK_OK(hash_check(p, h, "two", "v2", false));
	CHECK_OK(hash_check(p, h, "one", "v1", true));
	CHECK_OK(hash_check(p, h, "three", "v3", true));
	CHECK_UINT(p->entries, 4, "entries after kvc_remove");
	CHECK_OK(check_structure(p));

	/* by hash: every key with that hash goes, others in the bucket stay */
	set_context("");
	CHECK_BOOL(hash_put(p, h, "two", "v2"), true, "insert two again");
	CHECK_INT(kvc_remove_hash(p, h), 3, "kvc_remove_hash count");
	CHECK_OK(hash_check(p, h, "one", "v1", false));
	CHECK_OK(hash_check(p, h, "two", "v2", false));
	CHECK_OK(hash_check(p, h, "three", "v3", false));
	CHECK_OK(hash_check(p, h_bucket, "four", "v4", true));
	CHECK_OK(hash_check(p, kvc_hash("five", 4), "five", "v5", true));
	set_context("");
	CHECK_UINT(p->entries, 2, "entries after kvc_remove_hash");
	CHECK_UINT(p->payload_bytes, 4 + 2 + 4 + 2, "payload after kvc_remove_hash");
	CHECK_OK(check_structure(p));
	CHECK_INT(kvc_remove_hash(p, h), 0, "kvc_remove_hash again");
	CHECK_INT(kvc_remove_hash(p, h_bucket), 1, "kvc_remove_hash other hash");
	CHECK_UINT(p->entries, 1, "entries");
	CHECK_OK(check_structure(p));
	return true;
}

static bool
test_clear(void)
{
	KvcPartition *p = new_partition(128);
	uint64_t	evictions;
	int			i;

	for (i = 0; i < 50; i++)
		CHECK_BOOL(lru_put(p, i, LRU_V4), true, "fill");
	CHECK_BOOL(p->evictions > 0, true, "filled past capacity");
	kvc_clear(p);
	CHECK_UINT(p->entries, 0, "entries");
	CHECK_UINT(p->payload_bytes, 0, "payload_bytes");
	CHECK_UINT(p->nfree, 128, "nfree");
	CHECK_UINT(p->nruns, 1, "one free run");
	CHECK_UINT(kvc_blocks_used(p), 0, "kvc_blocks_used");
	CHECK_UINT(p->lru_head, KVC_NONE, "lru_head");
	CHECK_UINT(p->lru_tail, KVC_NONE, "lru_tail");
	for (i = 0; i < 50; i++)
	{
		set_context("k%03d", i);
		CHECK_BOOL(lru_present(p, i), false, "nothing found after clear");
	}
	set_context("");
	CHECK_OK(check_structure(p));

	/* the whole partition is usable again: 32 entries before any eviction */
	evictions = p->evictions;
	for (i = 0; i < 32; i++)
		CHECK_BOOL(lru_put(p, i, LRU_V4), true, "refill");
	CHECK_UINT(p->evictions, evictions, "refill evicts nothing");
	CHECK_UINT(p->nfree, 0, "refilled");
	CHECK_OK(check_structure(p));
	return true;
}

/*
 * Randomized test against a reference model.  The model knows, for every
 * key of a small key space, whether it may be cached and with what value,
 * and when it was last inserted or touched.  After every operation every
 * key is looked up: a key the model says is absent must not be found, a
 * key found must hold exactly what was last inserted for it, and a key not
 * found is evicted (the model forgets it).  Evictions happen only on
 * inserts; there the keys that went must be the least recently used ones,
 * as many as the evictions counter says, and no more than needed to fit:
 * with the blocks each entry held before the insert, the test replays the
 * frees and checks that before the last eviction the entry could not have
 * been placed, by the rule cache_core.c documents (a free run of its
 * length, or room for it split: free bytes >= its bytes + 8 per free run,
 * and a run long enough for the header), and that it is contiguous exactly
 * when a run of its length was there.
 */
#define RM_KEYS		64
#define RM_BLOCKS	1024		/* entries up to 128 blocks = 2008 payload bytes */
#define RM_VALUE_MAX 2300
#define RM_OPS		300000
#define RM_SEED		UINT64_C(20240601)

typedef struct ModelKey
{
	char		key[128];
	size_t		key_len;
	uint64_t	hash;
	bool		present;		/* cached, as far as the model knows */
	int			ct;				/* index into rm_types */
	char		value[RM_VALUE_MAX];
	size_t		value_len;
	int64_t		version;
	int64_t		expires_at;
	uint64_t	stamp;			/* last insert or touch */
	uint32_t	blocks;			/* blocks its entry took when inserted */
} ModelKey;

static const char *const rm_types[] = {"", "text/plain", "application/json", "x"};

static ModelKey model[RM_KEYS];
static uint64_t model_clock;	/* stamps recency, separate from the PRNG */
static uint64_t model_split;	/* inserts that had to split the entry */

/* Which key each block belonged to before an insert; -1: free. */
static int	owner[RM_BLOCKS];

static bool
snapshot_owners(KvcPartition *p)
{
	int			i;

	for (i = 0; i < RM_BLOCKS; i++)
		owner[i] = -1;
	for (i = 0; i < RM_KEYS; i++)
	{
		uint32_t	idx;
		uint32_t	n;
		uint32_t	x;
		uint32_t	b;

		if (!model[i].present)
			continue;
		idx = kvc_lookup(p, model[i].hash, model[i].key, model[i].key_len);
		CHECK_FOUND(idx, true, "key the model has");
		n = entry_extents(p, idx);
		CHECK_BOOL(n > 0, true, "entry's extents are well formed");
		for (x = 0; x < n; x++)
			for (b = ext_start[x]; b < ext_start[x] + ext_len[x]; b++)
				owner[b] = i;
	}
	return true;
}

/*
 * Could an entry of 'bytes' (header included) be placed in the free
 * blocks 'free'?  The placement rule of cache_core.c; *longest gets the
 * longest free run.
 */
static bool
can_place(const bool *free, size_t bytes, uint32_t *longest)
{
	uint32_t	need = (uint32_t) ((bytes + KVC_BLOCK_SIZE - 1) / KVC_BLOCK_SIZE);
	uint64_t	nfree = 0;
	uint64_t	nruns = 0;
	uint32_t	run = 0;
	int			b;

	*longest = 0;
	for (b = 0; b < RM_BLOCKS; b++)
	{
		if (!free[b])
		{
			run = 0;
			continue;
		}
		nfree++;
		if (run++ == 0)
			nruns++;
		if (run > *longest)
			*longest = run;
	}
	return *longest >= need ||
		(nruns > 0 && nfree * KVC_BLOCK_SIZE >= bytes + nruns * KVC_EXTENT_BYTES);
}

/*
 * Look every key up and compare with the model.  Keys the model has but the
 * partition lost are marked absent and flagged in 'lost'.
 */
static bool
model_sweep(KvcPartition *p, bool *lost)
{
	uint64_t	nfound = 0;
	uint64_t	payload = 0;
	uint64_t	blocks = 0;
	int			i;

	for (i = 0; i < RM_KEYS; i++)
	{
		ModelKey   *m = &model[i];
		uint32_t	idx = kvc_lookup(p, m->hash, m->key, m->key_len);

		lost[i] = false;
		if (idx == KVC_NONE)
		{
			if (m->present)
			{
				m->present = false;
				lost[i] = true;
			}
			continue;
		}
		if (!m->present)
			return fail(__LINE__, "key the model says is absent",
						"got found expected not found (key %d)", i);
		CHECK_OK(check_entry(p, idx, m->key, m->key_len,
							 rm_types[m->ct], strlen(rm_types[m->ct]),
							 m->value, m->value_len));
		CHECK_INT(kvc_entry(p, idx)->version, m->version, "version");
		CHECK_INT(kvc_entry(p, idx)->expires_at, m->expires_at, "expires_at");
		CHECK_UINT(blocks_of(p, idx), m->blocks, "entry keeps its blocks");
		nfound++;
		payload += m->key_len + strlen(rm_types[m->ct]) + m->value_len;
		blocks += m->blocks;
	}
	CHECK_UINT(p->entries, nfound, "entries == keys found");
	CHECK_UINT(p->payload_bytes, payload, "payload_bytes == sum over keys found");
	CHECK_UINT(kvc_blocks_used(p), blocks, "kvc_blocks_used == sum over keys found");
	CHECK_UINT(kvc_blocks_used(p) + p->nfree, p->nblocks,
			   "kvc_blocks_used + nfree == nblocks");
	return true;
}

static bool
model_insert(KvcPartition *p, int k)
{
	ModelKey   *m = &model[k];
	static char value[RM_VALUE_MAX];
	static bool free_before[RM_BLOCKS];
	bool		before[RM_KEYS];
	bool		lost[RM_KEYS];
	size_t		value_len;
	size_t		bytes;
	int			ct = (int) rng_below(4);
	int64_t		version = (int64_t) rng_next();
	int64_t		expires_at = rng_below(4) == 0 ? 0 : (int64_t) rng_below(1000000);
	uint32_t	need;
	uint32_t	longest;
	uint64_t	room;
	uint64_t	evictions = p->evictions;
	uint64_t	evicted_blocks = 0;
	uint64_t	newest_stamp = 0;
	uint64_t	nlost = 0;
	int			newest = -1;
	bool		fits;
	bool		ok;
	size_t		i;
	int			j;

	/* mostly a few hundred bytes; sometimes around the size limit */
	if (rng_below(20) == 0)
		value_len = 1800 + rng_below(RM_VALUE_MAX - 1800);
	else
		value_len = rng_below(400);
	for (i = 0; i < value_len; i++)
		value[i] = (char) rng_next();
	bytes = sizeof(KvcEntry) + m->key_len + strlen(rm_types[ct]) + value_len;
	need = entry_blocks(m->key_len, strlen(rm_types[ct]), value_len);
	fits = need <= RM_BLOCKS / 8;
	room = p->nfree + (m->present ? m->blocks : 0);
	for (j = 0; j < RM_KEYS; j++)
		before[j] = model[j].present;
	CHECK_OK(snapshot_owners(p));

	ok = kvc_insert(p, m->hash, m->key, m->key_len,
					rm_types[ct], strlen(rm_types[ct]), value, value_len,
					version, expires_at);
	CHECK_BOOL(ok, fits, "kvc_insert succeeds iff the entry fits");
	CHECK_BOOL(kvc_fits(p, m->key_len, strlen(rm_types[ct]), value_len), fits,
			   "kvc_fits");
	m->present = ok;
	if (ok)
	{
		uint32_t	idx = kvc_lookup(p, m->hash, m->key, m->key_len);

		CHECK_FOUND(idx, true, "inserted key found");
		m->ct = ct;
		memcpy(m->value, value, value_len);
		m->value_len = value_len;
		m->version = version;
		m->expires_at = expires_at;
		m->stamp = ++model_clock;
		m->blocks = blocks_of(p, idx);
		if (kvc_entry(p, idx)->split)
			model_split++;
	}
	CHECK_OK(model_sweep(p, lost));

	/* what went must be the least recently used, and only as many as needed */
	for (j = 0; j < RM_KEYS; j++)
	{
		int			s;

		if (!lost[j])
			continue;
		nlost++;
		evicted_blocks += model[j].blocks;
		if (model[j].stamp >= newest_stamp)
		{
			newest_stamp = model[j].stamp;
			newest = j;
		}
		for (s = 0; s < RM_KEYS; s++)
		{
			if (s != k && before[s] && model[s].present &&
				model[s].stamp < model[j].stamp)
				return fail(__LINE__, "evicted a more recently used key",
							"got key %d evicted expected key %d evicted first",
							j, s);
		}
	}
	CHECK_UINT(p->evictions - evictions, nlost, "evictions counter == keys lost");
	if (!ok)
	{
		CHECK_UINT(nlost, 0, "a refused insert evicts nothing");
		return true;
	}
	CHECK_BOOL(room + evicted_blocks >= m->blocks, true, "evicted enough to fit");
	CHECK_UINT(p->nfree, room + evicted_blocks - m->blocks, "nfree after insert");

	/* replay: the old entry for the key went first, then the evicted ones */
	for (i = 0; i < RM_BLOCKS; i++)
		free_before[i] = owner[i] < 0 || owner[i] == k ||
			(owner[i] != newest && lost[owner[i]]);
	if (nlost > 0)
		CHECK_BOOL(can_place(free_before, bytes, &longest), false,
				   "evicted no more than needed");
	for (i = 0; i < RM_BLOCKS; i++)
		free_before[i] = free_before[i] || (owner[i] >= 0 && lost[owner[i]]);
	CHECK_BOOL(can_place(free_before, bytes, &longest), true,
			   "the evictions made room");
	CHECK_BOOL(kvc_entry(p, kvc_lookup(p, m->hash, m->key, m->key_len))->split,
			   longest < need, "split exactly when no free run was long enough");
	return true;
}

static bool
test_random_model(void)
{
	KvcPartition *p = new_partition(RM_BLOCKS);
	uint64_t	seed = RM_SEED;
	long		nops = RM_OPS;
	long		op;
	bool		lost[RM_KEYS];
	const char *env;
	int			i;

	if ((env = getenv("KVC_TEST_SEED")) != NULL)
		seed = strtoull(env, NULL, 0);
	if ((env = getenv("KVC_TEST_OPS")) != NULL)
		nops = strtol(env, NULL, 0);
	printf("# random model: seed %" PRIu64 ", %ld operations, %d keys, %d blocks\n",
		   seed, nops, RM_KEYS, RM_BLOCKS);

	rng_state = seed;
	model_clock = 0;
	model_split = 0;
	memset(model, 0, sizeof(model));
	for (i = 0; i < RM_KEYS; i++)
	{
		ModelKey   *m = &model[i];

		if (i % 4 == 3)
		{
			/*
			 * Every fourth key: 90 bytes differing only in the last four,
			 * past the first block, with a 3-bit hash, so full-hash
			 * collisions need the whole key compared.
			 */
			memset(m->key, 'P', 86);
			snprintf(m->key + 86, sizeof(m->key) - 86, "%04d", i);
			m->key_len = 90;
			m->hash = kvc_hash(m->key, m->key_len) & 7;
		}
		else
		{
			/* lengths 6..100, so keys cross block boundaries */
			int			len = snprintf(m->key, sizeof(m->key), "key-%d-", i);

			memset(m->key + len, 'a' + i % 26, (size_t) (i * 37) % 95);
			m->key_len = (size_t) len + (size_t) (i * 37) % 95;
			m->hash = kvc_hash(m->key, m->key_len);
		}
	}

	for (op = 0; op < nops; op++)
	{
		int			k = (int) rng_below(RM_KEYS);
		ModelKey   *m = &model[k];
		uint32_t	r = rng_below(1000);
		uint32_t	idx;

		if (r < 450)
		{
			set_context("op %ld: insert key %d", op, k);
			CHECK_OK(model_insert(p, k));
			continue;
		}
		if (r < 650)
		{
			set_context("op %ld: lookup key %d", op, k);
			idx = kvc_lookup(p, m->hash, m->key, m->key_len);
			CHECK_FOUND(idx, m->present, "lookup agrees with the model");
		}
		else if (r < 850)
		{
			set_context("op %ld: touch key %d", op, k);
			idx = kvc_lookup(p, m->hash, m->key, m->key_len);
			CHECK_FOUND(idx, m->present, "lookup agrees with the model");
			if (idx != KVC_NONE)
			{
				kvc_touch(p, idx);
				m->stamp = ++model_clock;
			}
		}
		else if (r < 950)
		{
			set_context("op %ld: remove key %d", op, k);
			CHECK_BOOL(kvc_remove(p, m->hash, m->key, m->key_len), m->present,
					   "kvc_remove agrees with the model");
			m->present = false;
		}
		else if (r < 999)
		{
			int			n = 0;

			set_context("op %ld: remove hash of key %d", op, k);
			for (i = 0; i < RM_KEYS; i++)
			{
				if (model[i].hash == m->hash && model[i].present)
				{
					model[i].present = false;
					n++;
				}
			}
			CHECK_INT(kvc_remove_hash(p, m->hash), n,
					  "kvc_remove_hash count agrees with the model");
		}
		else
		{
			set_context("op %ld: clear", op);
			kvc_clear(p);
			for (i = 0; i < RM_KEYS; i++)
				model[i].present = false;
		}

		/* anything but an insert loses no key the model did not drop */
		CHECK_OK(model_sweep(p, lost));
		for (i = 0; i < RM_KEYS; i++)
			CHECK_BOOL(lost[i], false, "key lost without an insert");
		if (op % 64 == 0)
			CHECK_OK(check_structure(p));
	}
	set_context("end");
	CHECK_OK(check_structure(p));
	CHECK_BOOL(p->evictions > 1000, true, "the test evicted often");
	printf("# random model: %" PRIu64 " evictions, %" PRIu64 " entries split into extents\n",
		   p->evictions, model_split);
	CHECK_BOOL(model_split > 100, true, "the test split entries often");
	return true;
}

/* ----------------------------------------------------------------
 * Runner
 * ----------------------------------------------------------------
 */

typedef struct TestCase
{
	const char *name;
	bool		(*fn) (void);
} TestCase;

static const TestCase tests[] = {
	{"sizing: kvc_blocks_fitting(kvc_partition_bytes(n)) == n",
	test_sizing_round_trip},
	{"sizing: a partition fits in kvc_partition_bytes(n) bytes",
	test_partition_fits_in_its_bytes},
	{"insert then lookup returns the entry's lengths, version, expires_at",
	test_insert_then_lookup},
	{"values and keys spanning many blocks read back exactly",
	test_value_spanning_many_blocks},
	{"entries split into extents: placed, read back, evicted, merged",
	test_split_entries},
	{"lock-free readers stay inside the partition on garbage",
	test_racy_readers_on_garbage},
	{"overhead per entry <= 64 bytes for 16-byte values, 10-20 byte keys",
	test_overhead_per_entry},
	{"zero-length value reads back, writes nothing",
	test_zero_length_value},
	{"empty content type reads back, writes nothing",
	test_empty_content_type},
	{"binary keys, content types and values with NUL bytes",
	test_binary_bytes},
	{"inserting an existing key replaces it",
	test_replace},
	{"byte accounting over inserts, replaces, removes, evictions, clear",
	test_byte_accounting},
	{"eviction order is LRU, kvc_touch refreshes",
	test_eviction_order_is_lru},
	{"too-big entry refused and older entry for the key removed",
	test_too_big},
	{"kvc_remove removes one key",
	test_remove},
	{"kvc_remove_hash removes every key with the hash, kvc_remove one",
	test_remove_hash_collision},
	{"kvc_clear empties the partition",
	test_clear},
	{"randomized operations agree with a reference model",
	test_random_model},
};

int
main(void)
{
	int			ntests = (int) (sizeof(tests) / sizeof(tests[0]));
	int			nfailed = 0;
	int			i;

	setvbuf(stdout, NULL, _IOLBF, 0);
	printf("1..%d\n", ntests);
	for (i = 0; i < ntests; i++)
	{
		bool		ok;

		fail_line = 0;
		fail_context[0] = '\0';
		ok = tests[i].fn();
		free_allocs();
		if (ok && fail_line == 0)
		{
			printf("ok %d - %s\n", i + 1, tests[i].name);
			continue;
		}
		nfailed++;
		printf("not ok %d - %s\n", i + 1, tests[i].name);
		if (fail_line == 0)
			printf("# failed without a diagnostic\n");
		else
		{
			printf("# %s (line %d%s%s)\n", fail_what, fail_line,
				   fail_context[0] ? ", " : "", fail_context);
			printf("# %s\n", fail_detail);
		}
	}
	if (nfailed > 0)
		printf("# %d of %d tests failed\n", nfailed, ntests);
	return nfailed > 0 ? 1 : 0;
}
