/*-------------------------------------------------------------------------
 *
 * cache_commit.c
 *	  The cache's side of commits (cache.c has the lookups and fills): a
 *	  committing transaction of this node holds the stripes its keys fall
 *	  in, removes its keys once its commit is visible and installs their
 *	  new state (write-through); on a hot standby, the replay of kvserver's
 *	  WAL record holds and releases whole partitions (rmgr.c).
 *
 * Why that keeps every reader from a value older than the newest commit:
 * see cache.c and docs/architecture.md ("Coherence").
 *
 * Locking: each function takes the partition LWLocks it changes, one at a
 * time, exclusively; callers hold none.
 *
 * IDENTIFICATION
 *	  src/pg/cache_commit.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "port/atomics.h"

#include "cache.h"
#include "cache_internal.h"

/*
 * Remove from partition 'partition' the entries of these hashes (all of
 * them if 'remove_all').  One mechanism for a commit on this node and for
 * a replayed kvserver WAL record.  Caller holds the partition's LWLock
 * exclusively.
 */
static void
remove_keys_locked(int partition, const uint64 *hashes, int nhashes,
				   bool remove_all)
{
	KvCachePartition *part = &kvcache_shm->parts[partition];
	int			i;

	seq_begin(part);
	if (remove_all)
		kvc_clear(core_of(part));
	else
	{
		for (i = 0; i < nhashes; i++)
			if (kvcache_partition_of(hashes[i]) == partition)
				kvc_remove_hash(core_of(part), hashes[i]);
	}
	seq_end(part);
}

/* The stripes of 'partition' that these hashes fall in, as a mask. */
static uint32
stripes_of(int partition, const uint64 *hashes, int nhashes)
{
	uint32		mask = 0;
	int			i;

	for (i = 0; i < nhashes; i++)
		if (kvcache_partition_of(hashes[i]) == partition)
			mask |= 1u << KVCACHE_STRIPE_OF(hashes[i]);
	return mask;
}

/*
 * A committing transaction wrote these keys (PRE_COMMIT), or, if 'whole',
 * so many that the whole partition is to be invalidated.  Hold their
 * stripes of 'partition' (or the partition), then note the generations
 * from then on in 'begun', for kvcache_writes_end().
 */
void
kvcache_writes_begin(int partition, const uint64 *hashes, int nhashes,
					 bool whole, KvWritesBegun *begun)
{
	KvCachePartition *part;
	int			s;

	memset(begun, 0, sizeof(*begun));
	if (!kvcache_available())
		return;
	part = &kvcache_shm->parts[partition];
	begun->whole = whole;
	begun->stripes = whole ? 0 : stripes_of(partition, hashes, nhashes);
	if (whole)
		pg_atomic_fetch_add_u32(&part->writers, 1);
	for (s = 0; s < KVCACHE_STRIPES; s++)
		if (begun->stripes & (1u << s))
			pg_atomic_fetch_add_u32(&part->stripe_writers[s], 1);
	pg_memory_barrier();
	begun->generation = pg_atomic_read_u64(&part->generation);
	for (s = 0; s < KVCACHE_STRIPES; s++)
		if (begun->stripes & (1u << s))
			begun->stripe_gen[s] = pg_atomic_read_u64(&part->stripe_gen[s]);
}

/*
 * That transaction's commit is over (or it aborted): drop its keys from
 * the partition (all of them if 'remove_all'), move the generations of
 * what it held so that fills begun before now are refused, and let
 * lookups there go on.
 *
 * Then install the new state of the writes it staged (write-through), for
 * each key whose stripe nobody else committed in since its PRE_COMMIT
 * (and the partition was not invalidated as a whole).  Why that is
 * enough: this runs at XACT_EVENT_COMMIT, after the commit became visible
 * and before the transaction's locks are released.  A writer of the same
 * key that started earlier had to finish first (row lock).  One that
 * starts later may skip the lock wait, since our transaction is no longer
 * in progress; it holds the same stripe, as the key is the same: if it
 * committed before this point, its own kvcache_writes_end() moved the
 * stripe's generation past ours and the key is not installed; if it
 * commits after, its kvcache_writes_end() removes what we install; while
 * it is between its PRE_COMMIT and its commit, its hold of the stripe
 * makes every lookup of the key miss.
 */
void
kvcache_writes_end(int partition, const uint64 *hashes, int nhashes,
				   bool remove_all, const KvWritesBegun *begun,
				   const KvStagedWrite *staged, int nstaged)
{
	KvCachePartition *part;
	uint32		installable = 0;
	int			i;
	int			s;

	if (!kvcache_available())
		return;
	part = &kvcache_shm->parts[partition];
	LWLockAcquire(kvcache_part_locks[partition], LW_EXCLUSIVE);
	if (nstaged > 0 && !remove_all &&
		pg_atomic_read_u64(&part->generation) == begun->generation)
	{
		for (s = 0; s < KVCACHE_STRIPES; s++)
			if ((begun->stripes & (1u << s)) &&
				pg_atomic_read_u64(&part->stripe_gen[s]) == begun->stripe_gen[s])
				installable |= 1u << s;
	}

	remove_keys_locked(partition, hashes, nhashes, remove_all);
	if (remove_all || begun->whole)
		pg_atomic_fetch_add_u64(&part->generation, 1);
	for (s = 0; s < KVCACHE_STRIPES; s++)
	{
		if (begun->stripes & (1u << s))
		{
			pg_atomic_fetch_add_u64(&part->stripe_gen[s], 1);
			pg_atomic_fetch_sub_u32(&part->stripe_writers[s], 1);
		}
	}
	if (begun->whole)
		pg_atomic_fetch_sub_u32(&part->writers, 1);

	if (installable != 0)
	{
		seq_begin(part);
		for (i = 0; i < nstaged; i++)
		{
			const KvStagedWrite *w = &staged[i];
			uint64		hash = kvc_hash(w->key, w->key_len);
			size_t		ct_len = w->content_type ? strlen(w->content_type) : 0;

			if (kvcache_partition_of(hash) != partition ||
				(installable & (1u << KVCACHE_STRIPE_OF(hash))) == 0)
				continue;
			/* in order: a later write of the same key replaces this one */
			if (w->deleted ||
				!kvc_fits(core_of(part), w->key_len, ct_len, w->value_len) ||
				!kvc_insert(core_of(part), hash, w->key, w->key_len,
							w->content_type, ct_len, w->value, w->value_len,
							w->version, w->expires_at))
				kvc_remove(core_of(part), hash, w->key, w->key_len);
		}
		seq_end(part);
	}
	LWLockRelease(kvcache_part_locks[partition]);
}

/*
 * Hot standby (rmgr.c): the replay of a transaction's kvserver record, at
 * its PRE_COMMIT on the primary and so before its commit record.  For each
 * partition in 'partitions': remove the transaction's keys (every entry if
 * the partition is in 'cleared'), move the generation, and hold the
 * partition (writers++) until kvcache_release_partitions().  Until then no
 * lookup there hits and no fill installs, so no entry of the partition can
 * be older than a commit replayed meanwhile.
 */
void
kvcache_hold_partitions(uint32 partitions, uint32 cleared,
						const uint64 *hashes, int nhashes)
{
	int			i;

	if (!kvcache_available())
		return;
	for (i = 0; i < kvcache_shm->npartitions; i++)
	{
		if ((partitions & (1u << i)) == 0)
			continue;
		LWLockAcquire(kvcache_part_locks[i], LW_EXCLUSIVE);
		remove_keys_locked(i, hashes, nhashes, (cleared & (1u << i)) != 0);
		pg_atomic_fetch_add_u64(&kvcache_shm->parts[i].generation, 1);
		pg_atomic_fetch_add_u32(&kvcache_shm->parts[i].writers, 1);
		LWLockRelease(kvcache_part_locks[i]);
	}
}

/*
 * The held transaction has ended (its commit or abort was replayed, or
 * recovery is over).  Move the generation, so that a fill whose token was
 * taken while it was in progress (whose read may predate its commit) is
 * refused, and lift the hold.  Nothing needs removing: the keys went at
 * hold time, and no fill could install while the partition was held.
 */
void
kvcache_release_partitions(uint32 partitions)
{
	int			i;

	if (!kvcache_available())
		return;
	for (i = 0; i < kvcache_shm->npartitions; i++)
	{
		KvCachePartition *part = &kvcache_shm->parts[i];

		if ((partitions & (1u << i)) == 0)
			continue;
		LWLockAcquire(kvcache_part_locks[i], LW_EXCLUSIVE);
		pg_atomic_fetch_add_u64(&part->generation, 1);
		pg_atomic_fetch_sub_u32(&part->writers, 1);
		LWLockRelease(kvcache_part_locks[i]);
	}
}
