/*-------------------------------------------------------------------------
 *
 * cache.c
 *	  The shared-memory LRU cache in front of kv_store: partitions, their
 *	  locks, counters, and the rules that keep it coherent with the table.
 *
 * kvserver.cache_size bytes of shared memory are split into
 * KVCACHE_PARTITIONS partitions by key hash.  Each partition is a
 * cache_core.c structure (hash table, LRU, block allocator) guarded by its
 * own LWLock from the "kvserver" tranche.  Hit, miss and skipped-fill
 * counters are pg_atomic_uint64 so they can be bumped without the lock.
 *
 * Coherence: the cache must never return a value older than the newest
 * commit.  Each partition is cut into KVCACHE_STRIPES stripes by other
 * bits of the key's hash, and carries, for itself and for each stripe,
 *	  - a generation: bumped whenever entries there are invalidated;
 *	  - writers: transactions that wrote keys there and are between
 *		PRE_COMMIT and the end of their commit (invalidate.c).
 * A commit holds the stripes of the keys it wrote (or, invalidating the
 * whole partition, the partition itself).  A lookup while its key's
 * stripe or its partition is held is a miss, because a commit may already
 * be visible whose invalidation has not run yet.  A reader that misses
 * takes a fill token (both generations) *before* it reads the table, and
 * fills only if, under the lock, both are unchanged and nothing is held:
 * then no commit of its key became visible between its read and its fill.
 * Stripes keep a commit from making the whole partition miss, and two
 * commits of different keys from refusing each other's write-through.  The cache is also bound to one kv_store relation
 * OID, so a DROP and CREATE EXTENSION cannot resurrect old entries.
 *
 * On a hot standby no trigger fires: the replay of kvserver's WAL record
 * (rmgr.c) removes a transaction's keys and holds its partitions
 * (kvcache_hold_partitions: writers++) until its end has been replayed
 * (kvcache_release_partitions, reached from kvcache_lookup through
 * kv_holds_release).
 *
 * The commits' side (holding stripes, removing and installing keys, a
 * standby's holds) is cache_commit.c's; cache_internal.h is what the two
 * files share.
 *
 * Locking: every partition's contents are changed only with its LWLock
 * held exclusively (a hit reorders the LRU, so lookups take it exclusively
 * too), and every change of entries is bracketed by seq_begin/seq_end so
 * that the lock-free readers of cache_fastpath.c can detect it.  kvcache_bind_table and
 * kvcache_reset take all partition locks in index order.  Callers never
 * hold a partition lock across calls into this file.
 *
 * IDENTIFICATION
 *	  src/pg/cache.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "port/atomics.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "utils/acl.h"
#include "utils/lsyscache.h"
#include "utils/rls.h"
#include "utils/timestamp.h"

#include "cache.h"
#include "cache_core.h"
#include "cache_internal.h"
#include "cache_shared.h"
#include "kvserver.h"
#include "rmgr.h"

/* cache_internal.h */
KvCacheShared *kvcache_shm = NULL;
LWLock	   *kvcache_part_locks[KVCACHE_PARTITIONS];

static Size
partition_bytes(void)
{
	Size		total = (Size) kvserver_cache_size_kb * 1024;

	return MAXALIGN_DOWN(total / KVCACHE_PARTITIONS);
}

static Size
shmem_size(void)
{
	Size		size = MAXALIGN(sizeof(KvCacheShared));

	if (kvserver_cache_size_kb > 0)
		size = add_size(size, mul_size(partition_bytes(), KVCACHE_PARTITIONS));
	return size;
}

void
kvcache_shmem_request(void)
{
	RequestAddinShmemSpace(shmem_size());
	RequestNamedLWLockTranche("kvserver", KVCACHE_PARTITIONS);
	kv_holds_shmem_request();
}

void
kvcache_shmem_startup(void)
{
	bool		found;
	int			i;

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	kvcache_shm = ShmemInitStruct("kvserver cache", shmem_size(), &found);
	for (i = 0; i < KVCACHE_PARTITIONS; i++)
		kvcache_part_locks[i] = &GetNamedLWLockTranche("kvserver")[i].lock;
	if (!found)
	{
		uint32		nblocks = kvc_blocks_fitting(partition_bytes());

		memset(kvcache_shm, 0, sizeof(KvCacheShared));
		kvcache_shm->npartitions = (kvserver_cache_size_kb > 0 && nblocks >= 64)
			? KVCACHE_PARTITIONS : 0;
		kvcache_shm->partition_bytes = partition_bytes();
		pg_atomic_init_u32(&kvcache_shm->table_oid, InvalidOid);
		pg_atomic_init_u64(&kvcache_shm->hits, 0);
		pg_atomic_init_u64(&kvcache_shm->misses, 0);
		pg_atomic_init_u64(&kvcache_shm->fills_skipped, 0);
		for (i = 0; i < KVCACHE_PARTITIONS; i++)
		{
			KvCachePartition *part = &kvcache_shm->parts[i];

			pg_atomic_init_u64(&part->seq, 0);
			pg_atomic_init_u64(&part->generation, 0);
			pg_atomic_init_u32(&part->writers, 0);
			for (int j = 0; j < KVCACHE_STRIPES; j++)
			{
				pg_atomic_init_u64(&part->stripe_gen[j], 0);
				pg_atomic_init_u32(&part->stripe_writers[j], 0);
			}
			pg_atomic_init_u32(&part->hit_ring_pos, 0);
			for (int j = 0; j < KVCACHE_HIT_RING; j++)
				pg_atomic_init_u64(&part->hit_ring[j], 0);
			part->offset = MAXALIGN(sizeof(KvCacheShared)) +
				(Size) i * kvcache_shm->partition_bytes;
			if (kvcache_shm->npartitions > 0)
				kvc_init((KvcPartition *) ((char *) kvcache_shm + part->offset),
						 nblocks);
		}
	}
	kv_holds_shmem_startup();
	LWLockRelease(AddinShmemInitLock);
}

/* Is the cache's shared memory here at all (kvserver preloaded)? */
bool
kvcache_attached(void)
{
	return kvcache_shm != NULL;
}

bool
kvcache_available(void)
{
	return kvcache_shm != NULL && kvcache_shm->npartitions > 0;
}

uint64
kvcache_hash(const char *key, size_t key_len)
{
	return kvc_hash(key, key_len);
}

int
kvcache_partition_of(uint64 hash)
{
	/* high bits pick the partition; cache_core uses the low ones */
	return KVCACHE_PARTITION_OF(hash);
}

/* The shared struct, for cache_fastpath.c's kvfast_attach(). */
void *
kvcache_shared(void)
{
	return kvcache_available() ? kvcache_shm : NULL;
}

/*
 * Move entries hit by lock-free readers to the front of the LRU.  Caller
 * holds the partition lock exclusively.  Touching changes only LRU links,
 * which lock-free readers never follow, so no seq bump is needed.
 */
static void
do_apply_hit_ring(KvCachePartition *part, KvcPartition *core)
{
	int			i;

	for (i = 0; i < KVCACHE_HIT_RING; i++)
	{
		uint64		hash;

		/* a plain read first: most slots are empty on most calls */
		if (pg_atomic_read_u64(&part->hit_ring[i]) == 0)
			continue;
		hash = pg_atomic_exchange_u64(&part->hit_ring[i], 0);
		if (hash != 0)
			kvc_touch_hash(core, hash);
	}
}

/* Empty every partition; caller holds all partition locks. */
static void
do_clear_all(void)
{
	int			i;

	for (i = 0; i < kvcache_shm->npartitions; i++)
	{
		KvCachePartition *part = &kvcache_shm->parts[i];

		seq_begin(part);
		kvc_clear(core_of(part));
		seq_end(part);
		pg_atomic_fetch_add_u64(&part->generation, 1);
	}
}

static void
lock_all(void)
{
	int			i;

	for (i = 0; i < kvcache_shm->npartitions; i++)
		LWLockAcquire(kvcache_part_locks[i], LW_EXCLUSIVE);
}

static void
unlock_all(void)
{
	int			i;

	for (i = kvcache_shm->npartitions - 1; i >= 0; i--)
		LWLockRelease(kvcache_part_locks[i]);
}

/*
 * Make the cache hold entries of kv_store relation 'relid' only.  When the
 * table was dropped and created again, everything cached is from the old
 * one and is thrown away.
 */
void
kvcache_bind_table(Oid relid)
{
	if (!kvcache_available() ||
		pg_atomic_read_u32(&kvcache_shm->table_oid) == relid)
		return;
	lock_all();
	if (pg_atomic_read_u32(&kvcache_shm->table_oid) != relid)
	{
		do_clear_all();
		pg_atomic_write_u32(&kvcache_shm->table_oid, relid);
	}
	unlock_all();
}

bool
kvcache_bound_to(Oid relid)
{
	return kvcache_available() &&
		pg_atomic_read_u32(&kvcache_shm->table_oid) == relid;
}

/*
 * kv_store 'relid' was dropped (and the dropping transaction committed):
 * forget its entries, and serve nothing from the cache until some session
 * binds it to a new table.
 */
void
kvcache_unbind_table(Oid relid)
{
	if (!kvcache_available() ||
		pg_atomic_read_u32(&kvcache_shm->table_oid) != relid)
		return;
	lock_all();
	do_clear_all();
	pg_atomic_write_u32(&kvcache_shm->table_oid, InvalidOid);
	unlock_all();
}

/*
 * Look a key up.  On a hit, copy it out with 'alloc' (palloc in a backend,
 * malloc in the worker, which hands it to a civetweb thread) and return
 * true.  An expired entry is removed and counts as a miss.
 */
bool
kvcache_lookup(Oid relid, const char *key, size_t key_len, KvAllocFn alloc,
			   KvCachedValue *out)
{
	uint64		hash;
	KvCachePartition *part;
	KvcPartition *core;
	uint32		idx;
	bool		hit = false;

	if (!kvcache_available())
		return false;
	hash = kvc_hash(key, key_len);
	part = &kvcache_shm->parts[kvcache_partition_of(hash)];
	core = core_of(part);

	/* on a hot standby, a replayed writer may have ended (rmgr.c) */
	if (pg_atomic_read_u32(&part->writers) != 0)
		kv_holds_release();

	LWLockAcquire(kvcache_part_locks[KVCACHE_PARTITION_OF(hash)], LW_EXCLUSIVE);
	do_apply_hit_ring(part, core);
	if (!KVCACHE_WRITE_IN_FLIGHT(part, hash) &&
		pg_atomic_read_u32(&kvcache_shm->table_oid) == relid &&
		(idx = kvc_lookup(core, hash, key, key_len)) != KVC_NONE)
	{
		const KvcEntry *e = kvc_entry(core, idx);

		if (e->expires_at != 0 && e->expires_at <= GetCurrentTimestamp())
		{
			seq_begin(part);
			kvc_remove(core, hash, key, key_len);
			seq_end(part);
		}
		else
		{
			out->value = alloc(e->value_len + 1);
			kvc_read_value(core, idx, out->value);
			out->value[e->value_len] = '\0';
			out->value_len = e->value_len;
			out->content_type = NULL;
			if (e->ct_len > 0)
			{
				out->content_type = alloc(e->ct_len + 1);
				kvc_read_content_type(core, idx, out->content_type);
				out->content_type[e->ct_len] = '\0';
			}
			out->version = e->version;
			out->expires_at = e->expires_at;
			kvc_touch(core, idx);
			hit = true;
		}
	}
	LWLockRelease(kvcache_part_locks[KVCACHE_PARTITION_OF(hash)]);

	pg_atomic_fetch_add_u64(hit ? &kvcache_shm->hits : &kvcache_shm->misses, 1);
	return hit;
}

/*
 * The partition's and the key's stripe's generations in one word: the low
 * 32 bits of each.  A fill is refused unless the word is unchanged, which
 * a wrap could fake only after 2^32 invalidations during one fill.
 */
static uint64
fill_token_of(KvCachePartition *part, uint64 hash)
{
	return (pg_atomic_read_u64(&part->generation) << 32) |
		(pg_atomic_read_u64(&part->stripe_gen[KVCACHE_STRIPE_OF(hash)]) & 0xFFFFFFFF);
}

/*
 * Take before reading the table on a miss; pass to kvcache_fill after.
 * The barrier keeps the generations' read ahead of the table read.
 */
uint64
kvcache_fill_token(const char *key, size_t key_len)
{
	uint64		hash;
	uint64		token;

	if (!kvcache_available())
		return 0;
	hash = kvc_hash(key, key_len);
	token = fill_token_of(&kvcache_shm->parts[kvcache_partition_of(hash)], hash);
	pg_memory_barrier();
	return token;
}

/* Cache a value read from the table, unless a write may have overtaken it. */
void
kvcache_fill(Oid relid, const char *key, size_t key_len, uint64 token,
			 const char *value, size_t value_len, const char *content_type,
			 int64 version, TimestampTz expires_at)
{
	uint64		hash;
	KvCachePartition *part;
	size_t		ct_len = content_type ? strlen(content_type) : 0;
	bool		filled = false;

	if (!kvcache_available())
		return;
	hash = kvc_hash(key, key_len);
	part = &kvcache_shm->parts[kvcache_partition_of(hash)];
	if (!kvc_fits(core_of(part), key_len, ct_len, value_len))
		return;

	LWLockAcquire(kvcache_part_locks[KVCACHE_PARTITION_OF(hash)], LW_EXCLUSIVE);
	do_apply_hit_ring(part, core_of(part));
	if (fill_token_of(part, hash) == token &&
		!KVCACHE_WRITE_IN_FLIGHT(part, hash) &&
		pg_atomic_read_u32(&kvcache_shm->table_oid) == relid)
	{
		seq_begin(part);
		filled = kvc_insert(core_of(part), hash, key, key_len,
							content_type, ct_len, value, value_len,
							version, expires_at);
		seq_end(part);
	}
	LWLockRelease(kvcache_part_locks[KVCACHE_PARTITION_OF(hash)]);

	if (!filled)
		pg_atomic_fetch_add_u64(&kvcache_shm->fills_skipped, 1);
}

/* kv_cache_reset(): empty the cache and zero its counters. */
void
kvcache_reset(void)
{
	int			i;

	if (!kvcache_available())
		return;
	lock_all();
	do_clear_all();
	for (i = 0; i < kvcache_shm->npartitions; i++)
		core_of(&kvcache_shm->parts[i])->evictions = 0;
	pg_atomic_write_u64(&kvcache_shm->hits, 0);
	pg_atomic_write_u64(&kvcache_shm->misses, 0);
	pg_atomic_write_u64(&kvcache_shm->fills_skipped, 0);
	unlock_all();
}

void
kvcache_stats(KvCacheStats *stats)
{
	int			i;

	memset(stats, 0, sizeof(*stats));
	stats->enabled = kvcache_available();
	if (!stats->enabled)
		return;
	stats->capacity_bytes = (int64) kvcache_shm->partition_bytes * kvcache_shm->npartitions;
	for (i = 0; i < kvcache_shm->npartitions; i++)
	{
		KvCachePartition *part = &kvcache_shm->parts[i];
		KvcPartition *core = core_of(part);

		LWLockAcquire(kvcache_part_locks[i], LW_SHARED);
		stats->entries += core->entries;
		stats->payload_bytes += core->payload_bytes;
		stats->evictions += core->evictions;
		stats->used_bytes += kvc_used_bytes(core);
		/* the largest value cacheable with a 0-byte key and no content type */
		if (i == 0)
			stats->max_cached_value = (int64) kvc_max_entry_bytes(core)
				- (int64) sizeof(KvcEntry);
		LWLockRelease(kvcache_part_locks[i]);
	}
	stats->hits = pg_atomic_read_u64(&kvcache_shm->hits);
	stats->misses = pg_atomic_read_u64(&kvcache_shm->misses);
	stats->fills_skipped = pg_atomic_read_u64(&kvcache_shm->fills_skipped);

	/*
	 * Everything an entry costs beyond its key, content type and value
	 * bytes: used_bytes (kvc_used_bytes()) counts each block an entry holds,
	 * so its 40-byte header, the unused tail of its last block, any spare
	 * blocks and, for an entry split into extents, their 8-byte
	 * descriptors; plus each block's share of the hash buckets and the
	 * used-block bitmap.  Free blocks count for nobody.
	 */
	if (stats->entries > 0)
		stats->overhead_per_entry =
			(double) (stats->used_bytes - stats->payload_bytes) / stats->entries;
}

/*
 * May 'roleid' use the cache of kv_store 'relid'?  Only a role that may
 * read every row the way SQL would let it: USAGE on the table's schema,
 * table-level SELECT, and no row-level security applying to it (RLS
 * disabled: RLS_NONE; the owner without FORCE, or BYPASSRLS: RLS_NONE_ENV).
 * Anyone else reads through SPI, so a cache hit never bypasses a privilege.
 */
bool
kvcache_usable_by(Oid relid, Oid roleid)
{
	return pg_namespace_aclcheck(get_rel_namespace(relid), roleid,
								 ACL_USAGE) == ACLCHECK_OK &&
		pg_class_aclcheck(relid, roleid, ACL_SELECT) == ACLCHECK_OK &&
		check_enable_rls(relid, roleid, true) != RLS_ENABLED;
}
