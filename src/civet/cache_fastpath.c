/*-------------------------------------------------------------------------
 *
 * cache_fastpath.c
 *	  Serve cache hits on civetweb threads, without the worker's main
 *	  thread and without locks.
 *
 * A seqlock per partition: writers (cache.c, always under the partition's
 * LWLock) make the partition's seq odd before changing its entries and
 * even again after.  A reader here notes seq, looks the key up and copies
 * the entry out with the bounded walks of cache_core.c, then reads seq
 * again; if it moved, or was odd, the copy may be torn and is thrown away.
 * After a few tries, or whenever a write is in flight in the partition
 * (writers > 0, see cache.c for why that matters), the request simply
 * takes the ordinary path through the main thread.  A miss here is not
 * counted: the main thread counts it when it looks again.
 *
 * What is copied depends on the partition layout (cache_core.h): the
 * 40-byte header, read only at an index kvc_lookup_racy() returned, which
 * checks that the header's three blocks lie inside the partition; then the
 * content type and the value through kvc_read_racy(), which reads a
 * contiguous entry's bytes or follows a split entry's extent descriptors,
 * checking every index and length against the partition (kvc_walk() in
 * cache_walk.c).  With 16-byte blocks, contiguous entries and extents the
 * protocol is the one it was with chained 64-byte blocks: every change of
 * entries and of the free-run bookkeeping (which cache_core writes into
 * freed blocks, so a stale index may lead a reader into it) happens inside
 * kvc_insert, kvc_remove, kvc_remove_hash or kvc_clear, all of which
 * cache.c brackets with seq; the one write outside, kvc_touch's, changes
 * only LRU links, which a reader copies with the header but never uses.
 * So whatever a torn copy holds, the reads stay inside the partition and
 * end, and the seq check throws the copy away.
 *
 * Readers never write the entries or the LRU list.  A hit's hash goes into
 * the partition's hit ring, and the next lookup or fill under the
 * partition's lock (cache.c) moves that entry to the front of the LRU: an
 * approximation that loses touches when more than KVCACHE_HIT_RING hits
 * arrive between two such locked visits.
 *
 * Runs on civetweb threads: plain C and pg_atomic_* only.  It includes
 * c.h for the atomics and refuses to compile with postgres.h.
 *
 * IDENTIFICATION
 *	  src/civet/cache_fastpath.c
 *
 *-------------------------------------------------------------------------
 */
#include "c.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cache_core.h"
#include "cache_fastpath.h"
#include "cache_shared.h"
#include "kv_api.h"

#ifdef POSTGRES_H
#error "cache_fastpath.c runs on civetweb threads: no postgres.h"
#endif

#define FAST_TRIES 3

static KvCacheShared *shared = NULL;

/* Called by the main thread before civetweb starts. */
void
kvfast_attach(void *cache_shared)
{
	shared = (KvCacheShared *) cache_shared;
}

static void
forget(KvFastValue *out)
{
	free(out->value);
	free(out->content_type);
	out->value = NULL;
	out->content_type = NULL;
}

/*
 * One attempt at a consistent copy.  Returns 1 for a hit, 0 for a miss
 * that must go the slow way, -1 when torn (try again).
 */
static int
try_get(KvCachePartition *part, KvcPartition *core, uint64_t hash,
		const char *key, size_t key_len, KvFastValue *out)
{
	uint64_t	seq;
	uint32_t	idx;
	KvcEntry	e;
	size_t		off;

	seq = pg_atomic_read_u64(&part->seq);
	if (seq & 1)
		return -1;
	pg_read_barrier();
	if (KVCACHE_WRITE_IN_FLIGHT(part, hash) ||
		pg_atomic_read_u32(&shared->table_oid) == 0)
		return 0;

	idx = kvc_lookup_racy(core, hash, key, key_len);
	if (idx == KVC_NONE)
	{
		pg_read_barrier();
		return pg_atomic_read_u64(&part->seq) == seq ? 0 : -1;
	}
	memcpy(&e, kvc_entry(core, idx), sizeof(e));
	off = sizeof(KvcEntry) + e.key_len;
	if (off + (size_t) e.ct_len + e.value_len > kvc_max_entry_bytes(core))
		return -1;
	if (e.expires_at != 0 && e.expires_at <= kv_pg_timestamp_now())
		return 0;				/* the main thread removes it */

	out->value = malloc((size_t) e.value_len + 1);
	out->content_type = e.ct_len ? malloc((size_t) e.ct_len + 1) : NULL;
	if (out->value == NULL || (e.ct_len && out->content_type == NULL))
	{
		forget(out);
		return 0;
	}
	if (!kvc_read_racy(core, idx, off, out->content_type, e.ct_len) ||
		!kvc_read_racy(core, idx, off + e.ct_len, out->value, e.value_len))
	{
		forget(out);
		return -1;
	}
	pg_read_barrier();
	if (pg_atomic_read_u64(&part->seq) != seq)
	{
		forget(out);
		return -1;
	}
	out->value[e.value_len] = '\0';
	if (out->content_type)
		out->content_type[e.ct_len] = '\0';
	out->value_len = e.value_len;
	out->version = e.version;
	out->expires_at = e.expires_at;
	return 1;
}

/*
 * Cache figures for /metrics.  The per-partition counts are written under
 * the partition locks, which we cannot take; aligned 64-bit loads are not
 * torn, so each figure is one that was true at some recent moment.
 */
void
kvfast_stats(KvFastStats *stats)
{
	int			i;

	memset(stats, 0, sizeof(*stats));
	if (shared == NULL || shared->npartitions == 0)
		return;
	stats->hits = pg_atomic_read_u64(&shared->hits);
	stats->misses = pg_atomic_read_u64(&shared->misses);
	stats->capacity_bytes = (uint64_t) shared->partition_bytes * shared->npartitions;
	for (i = 0; i < shared->npartitions; i++)
	{
		volatile KvcPartition *core = (KvcPartition *)
		((char *) shared + shared->parts[i].offset);

		stats->entries += core->entries;
		stats->evictions += core->evictions;
		stats->used_bytes += kvc_used_bytes((const KvcPartition *) core);
	}
}

/* A cache hit without the main thread, or false to take the slow path. */
bool
kvfast_get(const char *key, size_t key_len, KvFastValue *out)
{
	uint64_t	hash;
	KvCachePartition *part;
	KvcPartition *core;
	int			i;

	memset(out, 0, sizeof(*out));
	if (shared == NULL || shared->npartitions == 0)
		return false;
	hash = kvc_hash(key, key_len);
	part = &shared->parts[KVCACHE_PARTITION_OF(hash)];
	core = (KvcPartition *) ((char *) shared + part->offset);

	for (i = 0; i < FAST_TRIES; i++)
	{
		int			rc = try_get(part, core, hash, key, key_len, out);

		if (rc == 0)
			return false;
		if (rc == 1)
		{
			uint32		pos = pg_atomic_fetch_add_u32(&part->hit_ring_pos, 1);

			pg_atomic_write_u64(&part->hit_ring[pos % KVCACHE_HIT_RING], hash);
			pg_atomic_fetch_add_u64(&shared->hits, 1);
			return true;
		}
	}
	return false;
}
