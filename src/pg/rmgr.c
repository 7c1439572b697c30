/*-------------------------------------------------------------------------
 *
 * rmgr.c
 *	  kvserver's custom WAL resource manager: keeps the cache of a hot
 *	  standby coherent with the WAL it replays.
 *
 * Triggers do not fire during replay, so a standby cannot learn from
 * invalidate.c which keys changed.  Instead the primary writes one WAL
 * record at PRE_COMMIT of every transaction that wrote kv_store (before its
 * commit record): its xid, the cache partitions it wrote keys of, and the
 * key hashes (or "empty these partitions").  Replaying that record (in the
 * startup process) removes those keys, moves the partitions' generation and
 * *holds* them: writers++, exactly as a committing writer does on the
 * primary, so lookups there miss (locked and lock-free alike) and no fill
 * installs.  The hold is noted as (xid, partitions) in a small table in
 * shared memory.
 *
 * Nothing on a standby is called when a commit or abort record is
 * replayed, so holds are released lazily: kv_holds_release(), called by
 * every cache lookup in a held partition (the worker's and the SQL
 * functions'), by the startup process when the table is full, and at the
 * end of recovery, drops the holds whose transaction is no longer in
 * progress (TransactionIdIsInProgress(), which on a standby consults
 * KnownAssignedXids: false once the commit or abort was replayed, or the
 * transaction is known to have died with its primary).  Releasing moves
 * the generation again and then writers--.  Correctness never depends on
 * how soon that happens: until then readers go to the table.
 *
 * One more hold, the horizon hold, covers what the table cannot name: every
 * partition, until all transactions before xid H have ended.  It is taken
 *	  - at the start of redo (rm_startup): transactions that wrote their
 *		record before the checkpoint replay starts from, and commit after
 *		it, are never seen by this standby; H is the checkpoint's nextXid;
 *	  - when the table is full of transactions still in progress (overflow):
 *		H moves past the record's xid.
 * It is released when GetOldestTransactionIdConsideredRunning() (which
 * covers KnownAssignedXids on a standby) has reached H.
 *
 * Holds are only ever released once this node runs hot standby
 * (HotStandbyActive(): KnownAssignedXids are complete from then on) or
 * recovery is over (rm_cleanup, or !RecoveryInProgress(): nothing can
 * commit any more, so everything is released).  Recovery without hot
 * standby (crash recovery, hot_standby = off) has no readers at all and a
 * cache that was emptied when shared memory was created: redo then does
 * nothing.  docs/architecture.md has the proof.
 *
 * Locking: the holds table has one LWLock ("kvserver holds"), always taken
 * before any partition lock and never while one is held.
 *
 * IDENTIFICATION
 *	  src/pg/rmgr.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/transam.h"
#include "access/xact.h"
#include "access/xlog.h"
#include "access/xlog_internal.h"
#include "access/xloginsert.h"
#include "access/xlogreader.h"
#include "access/xlogrecovery.h"
#include "access/xlogutils.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "port/atomics.h"
#include "storage/lwlock.h"
#include "storage/procarray.h"
#include "storage/shmem.h"

#include "cache.h"
#include "rmgr.h"

#define ALL_PARTITIONS	((uint32) ((1u << KVCACHE_PARTITIONS) - 1))

/*
 * Transactions between their record and the end of their commit, plus the
 * finished ones not yet released.  More than max_connections are rarely in
 * flight at once; beyond this the horizon hold takes over.
 */
#define KV_MAX_HOLDS	512

typedef struct KvHold
{
	TransactionId xid;
	uint32		partitions;
} KvHold;

typedef struct KvHoldTable
{
	/* holds + (horizon_held ? 1 : 0); read without the lock */
	pg_atomic_uint32 pending;
	int			nholds;
	bool		horizon_held;	/* every partition, until ... */
	TransactionId horizon;		/* ... no xid before this runs */
	bool		overflowed;		/* set at an overflow (logged once), cleared
								 * with the horizon hold */
	KvHold		holds[KV_MAX_HOLDS];
} KvHoldTable;

static KvHoldTable *hold_table = NULL;
static LWLock *hold_lock = NULL;

/* Set in the postmaster while preloading; backends inherit it. */
static bool rmgr_registered = false;

static void kvserver_redo(XLogReaderState *record);
static void kvserver_desc(StringInfo buf, XLogReaderState *record);
static const char *kvserver_identify(uint8 info);
static void kvserver_startup(void);
static void kvserver_cleanup(void);

static RmgrData kvserver_rmgr = {
	.rm_name = KV_RMGR_NAME,
	.rm_redo = kvserver_redo,
	.rm_desc = kvserver_desc,
	.rm_identify = kvserver_identify,
	.rm_startup = kvserver_startup,
	.rm_cleanup = kvserver_cleanup,
	.rm_mask = NULL,
	.rm_decode = NULL
};

/* From _PG_init, while shared_preload_libraries is being processed. */
void
kv_rmgr_register(void)
{
	RegisterCustomRmgr(RM_KVSERVER_ID, &kvserver_rmgr);
	rmgr_registered = true;
}

/*
 * Does a committing transaction here write the record?  Only when a
 * standby can exist (wal_level replica or logical) and the module was
 * preloaded (a record of an unregistered resource manager could not even
 * be replayed by this node's own crash recovery).  Whether this node has a
 * cache does not matter: its standbys may.
 */
bool
kv_wal_logging(void)
{
	return rmgr_registered && XLogStandbyInfoActive() && !RecoveryInProgress();
}

static int
cmp_uint64(const void *a, const void *b)
{
	uint64		x = *(const uint64 *) a;
	uint64		y = *(const uint64 *) b;

	return x < y ? -1 : (x > y ? 1 : 0);
}

/*
 * At PRE_COMMIT of a transaction that wrote kv_store: log what a standby
 * must invalidate.  'hashes' may hold duplicates (both keys of an UPDATE);
 * they are sorted and made unique first.
 */
void
kv_wal_log_invalidation(const uint64 *hashes, int nhashes, bool remove_all)
{
	xl_kvserver_invalidate xlrec;
	uint64	   *sorted = NULL;
	int			n = 0;
	int			i;

#ifdef KVSERVER_BENCH_NO_STANDBY_RECORDS
	/*
	 * BENCHMARK ONLY: never define this in a build anyone runs.  bench/run.sh
	 * (workload "standby") builds a scratch variant with
	 * -DKVSERVER_BENCH_NO_STANDBY_RECORDS to measure what this record costs
	 * the primary; without the record, standbys' caches miss the primary's
	 * writes and serve stale values.
	 */
	return;
#endif
	if (!kv_wal_logging())
		return;
	xlrec.xid = GetTopTransactionIdIfAny();
	if (!TransactionIdIsValid(xlrec.xid))
		return;					/* wrote nothing that reaches WAL */

	xlrec.partitions = 0;
	xlrec.cleared = 0;
	if (remove_all)
		xlrec.partitions = xlrec.cleared = (uint16) ALL_PARTITIONS;
	else
	{
		for (i = 0; i < nhashes; i++)
			xlrec.partitions |= (uint16) (1u << KVCACHE_PARTITION_OF(hashes[i]));
		if (nhashes > 2 * KV_WAL_MAX_HASHES)
			xlrec.cleared = xlrec.partitions;	/* not worth sorting */
		else if (nhashes > 0)
		{
			sorted = palloc(sizeof(uint64) * nhashes);
			memcpy(sorted, hashes, sizeof(uint64) * nhashes);
			if (nhashes > 1)
				qsort(sorted, nhashes, sizeof(uint64), cmp_uint64);
			for (i = 0; i < nhashes; i++)
				if (n == 0 || sorted[n - 1] != sorted[i])
					sorted[n++] = sorted[i];
			if (n > KV_WAL_MAX_HASHES)
			{
				xlrec.cleared = xlrec.partitions;
				n = 0;
			}
		}
	}
	if (xlrec.partitions == 0)
		return;
	xlrec.nhashes = (uint32) n;

	XLogBeginInsert();
	XLogRegisterData((char *) &xlrec, SizeOfKvInvalidate);
	if (n > 0)
		XLogRegisterData((char *) sorted, n * sizeof(uint64));
	(void) XLogInsert(RM_KVSERVER_ID, XLOG_KVSERVER_INVALIDATE);

	if (sorted)
		pfree(sorted);
}

/*---- The standby's holds ----*/

Size
kv_holds_shmem_size(void)
{
	return MAXALIGN(sizeof(KvHoldTable));
}

void
kv_holds_shmem_request(void)
{
	RequestAddinShmemSpace(kv_holds_shmem_size());
	RequestNamedLWLockTranche("kvserver holds", 1);
}

/* Caller holds AddinShmemInitLock. */
void
kv_holds_shmem_startup(void)
{
	bool		found;

	hold_table = ShmemInitStruct("kvserver holds", kv_holds_shmem_size(),
								 &found);
	hold_lock = &GetNamedLWLockTranche("kvserver holds")[0].lock;
	if (!found)
	{
		memset(hold_table, 0, sizeof(KvHoldTable));
		pg_atomic_init_u32(&hold_table->pending, 0);
		hold_table->horizon = InvalidTransactionId;
	}
}

/*
 * Hold every partition until no transaction before 'horizon' is in
 * progress (or widen the existing horizon hold).  Caller holds hold_lock.
 */
static void
hold_all_until(TransactionId horizon, bool clear)
{
	if (!hold_table->horizon_held)
	{
		kvcache_hold_partitions(ALL_PARTITIONS, clear ? ALL_PARTITIONS : 0,
								NULL, 0);
		hold_table->horizon_held = true;
		hold_table->horizon = horizon;
		pg_atomic_fetch_add_u32(&hold_table->pending, 1);
	}
	else
	{
		if (clear)
		{
			/* empty everything again; the horizon hold keeps them held */
			kvcache_hold_partitions(ALL_PARTITIONS, ALL_PARTITIONS, NULL, 0);
			kvcache_release_partitions(ALL_PARTITIONS);
		}
		if (TransactionIdFollows(horizon, hold_table->horizon))
			hold_table->horizon = horizon;
	}
}

/*
 * Release what can be released.  'recovery_over': nothing is replayed any
 * more, so no transaction seen in WAL can still commit: release all.
 * Caller holds hold_lock exclusively, and no partition lock.
 */
static void
release_finished(bool recovery_over)
{
	int			i;

	/*
	 * Before hot standby, KnownAssignedXids may not list every running
	 * transaction yet (they are complete once a running-xacts record has
	 * been replayed): "not in progress" could be wrong.  No reader exists
	 * before then anyway.
	 */
	if (!recovery_over && !HotStandbyActive())
		return;

	i = 0;
	while (i < hold_table->nholds)
	{
		KvHold	   *h = &hold_table->holds[i];

		if (recovery_over || !TransactionIdIsInProgress(h->xid))
		{
			kvcache_release_partitions(h->partitions);
			*h = hold_table->holds[--hold_table->nholds];
			pg_atomic_fetch_sub_u32(&hold_table->pending, 1);
		}
		else
			i++;
	}

	if (hold_table->horizon_held &&
		(recovery_over ||
		 TransactionIdPrecedesOrEquals(hold_table->horizon,
									   GetOldestTransactionIdConsideredRunning())))
	{
		kvcache_release_partitions(ALL_PARTITIONS);
		hold_table->horizon_held = false;
		hold_table->horizon = InvalidTransactionId;
		hold_table->overflowed = false;
		pg_atomic_fetch_sub_u32(&hold_table->pending, 1);
	}
}

/*
 * Called before every locked cache lookup in a partition with writers > 0:
 * release the holds whose transactions have ended.  Costs one atomic read
 * when nothing is held (always, on a primary), and never waits for another
 * process doing the same.
 */
void
kv_holds_release(void)
{
	if (hold_table == NULL || pg_atomic_read_u32(&hold_table->pending) == 0)
		return;
	if (!LWLockConditionalAcquire(hold_lock, LW_EXCLUSIVE))
		return;
	release_finished(!RecoveryInProgress());
	LWLockRelease(hold_lock);
}

/*---- Redo, in the startup process ----*/

/*
 * Recovery without hot standby has no readers, and the cache was emptied
 * when shared memory was created, before recovery began: nothing to do.
 */
static bool
standby_cache_active(void)
{
	return standbyState != STANDBY_DISABLED && kvcache_available() &&
		hold_table != NULL;
}

static void
kvserver_redo(XLogReaderState *record)
{
	uint8		info = XLogRecGetInfo(record) & XLR_RMGR_INFO_MASK;
	xl_kvserver_invalidate xlrec;
	uint64	   *hashes = NULL;
	TransactionId next;

	if (info != XLOG_KVSERVER_INVALIDATE)
		elog(PANIC, "kvserver_redo: unknown op code %u", info);
	if (XLogRecGetDataLen(record) < SizeOfKvInvalidate)
		elog(PANIC, "kvserver_redo: record too short");
	memcpy(&xlrec, XLogRecGetData(record), SizeOfKvInvalidate);
	if (XLogRecGetDataLen(record) !=
		SizeOfKvInvalidate + (Size) xlrec.nhashes * sizeof(uint64))
		elog(PANIC, "kvserver_redo: record length does not match its %u hashes",
			 xlrec.nhashes);

	if (!standby_cache_active())
		return;

	if (xlrec.nhashes > 0)
	{
		hashes = palloc(sizeof(uint64) * xlrec.nhashes);
		memcpy(hashes, XLogRecGetData(record) + SizeOfKvInvalidate,
			   sizeof(uint64) * xlrec.nhashes);
	}

	LWLockAcquire(hold_lock, LW_EXCLUSIVE);
	if (hold_table->nholds == KV_MAX_HOLDS)
		release_finished(false);
	kvcache_hold_partitions(xlrec.partitions, xlrec.cleared, hashes,
							(int) xlrec.nhashes);
	if (hold_table->nholds < KV_MAX_HOLDS)
	{
		hold_table->holds[hold_table->nholds].xid = xlrec.xid;
		hold_table->holds[hold_table->nholds].partitions = xlrec.partitions;
		hold_table->nholds++;
		pg_atomic_fetch_add_u32(&hold_table->pending, 1);
	}
	else
	{
		/*
		 * Full of transactions in progress: hold everything until this one
		 * and every older one has ended, then drop this record's own hold
		 * (its keys are gone, and the horizon hold covers its partitions).
		 */
		next = xlrec.xid;
		TransactionIdAdvance(next);
		if (!hold_table->overflowed)
			ereport(LOG,
					(errmsg("kvserver: %d replayed transactions hold cache partitions; every partition is held until transaction %u and all older ones have ended",
							KV_MAX_HOLDS, xlrec.xid)));
		hold_table->overflowed = true;
		hold_all_until(next, false);
		kvcache_release_partitions(xlrec.partitions);
	}
	LWLockRelease(hold_lock);

	if (hashes)
		pfree(hashes);
}

/*
 * Start of redo.  A transaction that wrote its record before the point
 * redo starts from, and commits after it, is never seen here; it is older
 * than the checkpoint's nextXid.  So hold (and empty) every partition until
 * every transaction before that has ended.
 */
static void
kvserver_startup(void)
{
	if (!standby_cache_active())
		return;
	LWLockAcquire(hold_lock, LW_EXCLUSIVE);
	hold_all_until(XidFromFullTransactionId(ReadNextFullTransactionId()), true);
	LWLockRelease(hold_lock);
}

/*
 * End of redo (promotion, or the end of archive recovery): nothing will be
 * replayed any more, and a transaction whose commit was not replayed never
 * commits here.  Release everything.
 */
static void
kvserver_cleanup(void)
{
	if (!standby_cache_active())
		return;
	LWLockAcquire(hold_lock, LW_EXCLUSIVE);
	release_finished(true);
	LWLockRelease(hold_lock);
}

/*---- For pg_walinspect and WAL_DEBUG (pg_waldump prints "custom142") ----*/

static void
kvserver_desc(StringInfo buf, XLogReaderState *record)
{
	uint8		info = XLogRecGetInfo(record) & XLR_RMGR_INFO_MASK;
	xl_kvserver_invalidate xlrec;
	uint32		i;

	if (info != XLOG_KVSERVER_INVALIDATE ||
		XLogRecGetDataLen(record) < SizeOfKvInvalidate)
		return;
	memcpy(&xlrec, XLogRecGetData(record), SizeOfKvInvalidate);
	appendStringInfo(buf, "xid %u; partitions 0x%04x", xlrec.xid,
					 (unsigned int) xlrec.partitions);
	if (xlrec.cleared != 0)
		appendStringInfo(buf, "; cleared 0x%04x", (unsigned int) xlrec.cleared);
	appendStringInfo(buf, "; %u key hashes", xlrec.nhashes);
	for (i = 0; i < xlrec.nhashes && i < 8 &&
		 XLogRecGetDataLen(record) >= SizeOfKvInvalidate + (i + 1) * sizeof(uint64); i++)
	{
		uint64		h;

		memcpy(&h, XLogRecGetData(record) + SizeOfKvInvalidate + i * sizeof(uint64),
			   sizeof(uint64));
		appendStringInfo(buf, "%s%016" INT64_MODIFIER "x", i == 0 ? ": " : " ", h);
	}
	if (xlrec.nhashes > 8)
		appendStringInfoString(buf, " ...");
}

static const char *
kvserver_identify(uint8 info)
{
	if ((info & XLR_RMGR_INFO_MASK) == XLOG_KVSERVER_INVALIDATE)
		return "INVALIDATE";
	return NULL;
}
