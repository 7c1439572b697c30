/*-------------------------------------------------------------------------
 *
 * watch.c
 *	  The server side of watches: publish every committed change to
 *	  kv_store as a new change index, with the keys it touched, for the
 *	  civetweb threads that wait on them (src/civet/watch_ring.c reads it).
 *
 * invalidate.c notes each key a transaction writes (kvwatch_note_key, from
 * the row trigger) and calls kvwatch_publish() at XACT_EVENT_COMMIT, after
 * the commit became visible and after the cache entries were invalidated,
 * so a watcher woken by the new index that reads the key again sees the
 * new state.  An abort publishes nothing: a rolled-back write never moves
 * the index and never wakes anyone.
 *
 * A transaction takes one ring slot per key, up to XACT_KEYS keys; past
 * that, one slot for the common prefix of all its keys; TRUNCATE, a dropped
 * table or a huge transaction (invalidate.c's "everything") takes one slot
 * for the empty prefix, which every watcher matches.  A slot is a
 * superset of what changed, never less: a watcher may wake for nothing and
 * look again, but never sleeps through a change.
 *
 * The index is the larger of the last index plus one and the end of the
 * transaction's commit record in WAL.  WAL positions only grow, also
 * across restarts and failovers, so an index handed out by an earlier run
 * of the server is below anything this run publishes, and 'forgotten'
 * (raised to just below the first index this run publishes, or to the WAL
 * position when the worker starts) makes such a watcher answer at once.
 *
 * Hot standbys: no trigger fires during replay, and the WAL record of
 * rmgr.c is replayed before its transaction's commit is, so it cannot say
 * when the change becomes visible.  Instead the worker's main thread calls
 * kvwatch_standby_tick() at every turn of its loop (every 100 ms while
 * anyone watches): when replay has advanced, it publishes the replay
 * position as the index, with an "everything" slot.  Watchers then look
 * again whenever anything was replayed, at most once a turn: a change is
 * seen within about 100 ms of its replay, never missed, and the index goes
 * on from the primary's WAL positions after a promotion.
 *
 * Locking: the "kvserver watch" LWLock serializes writers (committing
 * backends, executors, the worker); readers take no lock (seqlock per
 * slot, see watch_shared.h).  The per-transaction notes are static
 * memory of this process, reset at every transaction end.
 *
 * IDENTIFICATION
 *	  src/pg/watch.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xlog.h"
#include "access/xlogrecovery.h"
#include "port/atomics.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"

#include "watch.h"
#include "watch_shared.h"

/* Keys of one transaction that get a ring slot each. */
#define XACT_KEYS	8

typedef struct NotedKey
{
	uint64		hash;
	uint32		key_len;
	int			stored;
	char		bytes[KVWATCH_KEY_BYTES];
} NotedKey;

static KvWatchShared *watch = NULL;
static LWLock *watch_lock = NULL;

/* the open transaction's keys */
static NotedKey noted[XACT_KEYS];
static int	nnoted = 0;
static bool noted_as_prefix = false;
static char noted_prefix[KVWATCH_KEY_BYTES];
static int	noted_prefix_len = 0;

Size
kvwatch_shmem_size(void)
{
	return MAXALIGN(sizeof(KvWatchShared));
}

void
kvwatch_shmem_request(void)
{
	RequestAddinShmemSpace(kvwatch_shmem_size());
	RequestNamedLWLockTranche("kvserver watch", 1);
}

/* Caller holds AddinShmemInitLock. */
void
kvwatch_shmem_startup(void)
{
	bool		found;
	int			i;

	watch = ShmemInitStruct("kvserver watch", kvwatch_shmem_size(), &found);
	watch_lock = &GetNamedLWLockTranche("kvserver watch")[0].lock;
	if (found)
		return;
	pg_atomic_init_u64(&watch->index, 0);
	pg_atomic_init_u64(&watch->head, 0);
	pg_atomic_init_u64(&watch->forgotten, 0);
	for (i = 0; i < KVWATCH_RING; i++)
	{
		pg_atomic_init_u64(&watch->ring[i].seq, 0);
		watch->ring[i].kind = 0;
		watch->ring[i].index = 0;
	}
}

/* The shared struct, for watch_ring.c's kvwr_attach(). */
void *
kvwatch_shared(void)
{
	return watch;
}

static int
common_len(const char *a, int alen, const char *b, int blen)
{
	int			n = Min(alen, blen);
	int			i;

	for (i = 0; i < n && a[i] == b[i]; i++)
		;
	return i;
}

/* The transaction being committed wrote this key (row trigger). */
void
kvwatch_note_key(const char *key, size_t key_len, uint64 hash)
{
	int			stored = (int) Min(key_len, KVWATCH_KEY_BYTES);
	int			i;

	if (watch == NULL)
		return;
	if (noted_as_prefix)
	{
		noted_prefix_len = common_len(noted_prefix, noted_prefix_len,
									  key, stored);
		return;
	}
	/* hash, length and first bytes are all a slot holds: same slot */
	for (i = 0; i < nnoted; i++)
		if (noted[i].hash == hash && noted[i].key_len == key_len &&
			memcmp(noted[i].bytes, key, stored) == 0)
			return;
	if (nnoted < XACT_KEYS)
	{
		noted[nnoted].hash = hash;
		noted[nnoted].key_len = (uint32) key_len;
		noted[nnoted].stored = stored;
		memcpy(noted[nnoted].bytes, key, stored);
		nnoted++;
		return;
	}
	/* too many keys for a slot each: one slot for what they have in common */
	noted_as_prefix = true;
	memcpy(noted_prefix, key, stored);
	noted_prefix_len = stored;
	for (i = 0; i < nnoted; i++)
		noted_prefix_len = common_len(noted_prefix, noted_prefix_len,
									  noted[i].bytes, noted[i].stored);
}

void
kvwatch_forget(void)
{
	nnoted = 0;
	noted_as_prefix = false;
	noted_prefix_len = 0;
}

/* Caller holds watch_lock. */
static void
raise_forgotten(uint64 upto)
{
	if (pg_atomic_read_u64(&watch->forgotten) < upto)
		pg_atomic_write_u64(&watch->forgotten, upto);
	pg_memory_barrier();
}

/*
 * Write the next ring slot.  Caller holds watch_lock.  A reader can only
 * miss the slot it overwrites by reading 'forgotten' after its scan, which
 * is raised first; the seq increments are full barriers.
 */
static void
write_slot(uint64 index, int kind, uint64 hash, uint32 key_len,
		   const char *bytes, int stored)
{
	uint64		pos = pg_atomic_read_u64(&watch->head);
	KvWatchSlot *s = &watch->ring[pos % KVWATCH_RING];

	if (s->kind != 0)
		raise_forgotten(s->index);
	pg_atomic_fetch_add_u64(&s->seq, 1);	/* odd */
	s->index = index;
	s->hash = hash;
	s->key_len = key_len;
	s->stored = (uint16) stored;
	s->kind = (uint16) kind;
	memcpy(s->bytes, bytes, stored);
	pg_atomic_fetch_add_u64(&s->seq, 1);	/* even */
	pg_atomic_write_u64(&watch->head, pos + 1);
}

/*
 * XACT_EVENT_COMMIT of a transaction that wrote kv_store: one new index,
 * with its slots.  'everything': the transaction may have changed any key
 * (TRUNCATE, a dropped table, more keys than invalidate.c keeps).
 */
void
kvwatch_publish(bool everything)
{
	uint64		cur;
	uint64		next;
	int			i;

	if (watch == NULL)
		return;
	LWLockAcquire(watch_lock, LW_EXCLUSIVE);
	cur = pg_atomic_read_u64(&watch->index);
	next = Max(cur + 1, (uint64) XactLastCommitEnd);
	/* the first change of this run: nothing older is known */
	if (cur == 0)
		raise_forgotten(next - 1);
	if (everything || (!noted_as_prefix && nnoted == 0))
		write_slot(next, KVWATCH_SLOT_PREFIX, 0, 0, "", 0);
	else if (noted_as_prefix)
		write_slot(next, KVWATCH_SLOT_PREFIX, 0, 0, noted_prefix,
				   noted_prefix_len);
	else
		for (i = 0; i < nnoted; i++)
			write_slot(next, KVWATCH_SLOT_KEY, noted[i].hash,
					   noted[i].key_len, noted[i].bytes, noted[i].stored);
	/* the slots are in place before anyone can see the index move */
	pg_memory_barrier();
	pg_atomic_write_u64(&watch->index, next);
	LWLockRelease(watch_lock);
	kvwatch_forget();
}

/*
 * The worker starts: a restarted server's index begins at the current WAL
 * position, past every index the previous run handed out, which are all
 * forgotten.  Nothing to do if a commit got there first.
 */
void
kvwatch_worker_start(void)
{
	XLogRecPtr	lsn;

	if (watch == NULL)
		return;
	lsn = RecoveryInProgress() ? GetXLogReplayRecPtr(NULL) : GetXLogInsertRecPtr();
	LWLockAcquire(watch_lock, LW_EXCLUSIVE);
	if (pg_atomic_read_u64(&watch->index) == 0 && lsn > 0)
	{
		raise_forgotten(lsn);
		pg_atomic_write_u64(&watch->index, lsn);
	}
	LWLockRelease(watch_lock);
}

/*
 * Hot standby, worker's main thread: publish what replay brought (see the
 * header comment).  Everything replayed up to that position is visible.
 */
void
kvwatch_standby_tick(void)
{
	uint64		lsn;

	if (watch == NULL)
		return;
	lsn = (uint64) GetXLogReplayRecPtr(NULL);
	if (lsn <= pg_atomic_read_u64(&watch->index))
		return;
	LWLockAcquire(watch_lock, LW_EXCLUSIVE);
	if (lsn > pg_atomic_read_u64(&watch->index))
	{
		write_slot(lsn, KVWATCH_SLOT_PREFIX, 0, 0, "", 0);
		pg_memory_barrier();
		pg_atomic_write_u64(&watch->index, lsn);
	}
	LWLockRelease(watch_lock);
}

/*
 * kv_cache_reset(): forget every change so far.  Prefix watchers holding
 * an older index answer at once and list again; key watchers look at
 * their key again.
 */
void
kvwatch_reset(void)
{
	uint64		next;

	if (watch == NULL)
		return;
	LWLockAcquire(watch_lock, LW_EXCLUSIVE);
	next = pg_atomic_read_u64(&watch->index) + 1;
	if (!RecoveryInProgress())
		next = Max(next, (uint64) GetXLogInsertRecPtr());
	raise_forgotten(next);
	pg_atomic_write_u64(&watch->index, next);
	LWLockRelease(watch_lock);
}
