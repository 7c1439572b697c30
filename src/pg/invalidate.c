/*-------------------------------------------------------------------------
 *
 * invalidate.c
 *	  Keep the cache coherent with every write to kv_store, whichever path
 *	  it takes: HTTP, the SQL functions, or plain SQL.
 *
 * kv_store carries two ENABLE ALWAYS triggers that call kv_store_invalidate:
 * a row trigger that records the hash of every key inserted, updated or
 * deleted, and a TRUNCATE trigger that records "everything".  Nothing is
 * invalidated while the transaction is open (it may still abort).  At
 * PRE_COMMIT the touched partitions are marked as having a write in flight,
 * so lookups there miss and fills are refused; at COMMIT, after the rows
 * became visible, the keys are removed and the marks lifted; at ABORT the
 * marks are lifted and nothing else happens.  See cache.c for why this
 * order means no reader sees a value older than the newest commit.
 *
 * State is per backend and per transaction: the pending hashes live in
 * TopTransactionContext and are forgotten at the end of every transaction.
 * Subtransaction aborts keep their hashes: invalidating a key that did not
 * change costs one miss, forgetting one that did would serve stale data.
 *
 * Dropping kv_store (DROP EXTENSION) fires no trigger, so an object access
 * hook notices it instead, and the commit then empties and unbinds the
 * cache: a later CREATE EXTENSION starts from an empty cache.
 *
 * PREPARE TRANSACTION after writing kv_store is refused: the commit would
 * come later, maybe from another backend, and nobody would invalidate.
 *
 * Watches: the row trigger also notes each key for watch.c, and the COMMIT
 * callback publishes them as a new change index, last, after the cache
 * entries are gone, so a watcher woken by it reads the new state.  An abort
 * publishes nothing.
 *
 * Hot standbys: triggers do not fire during replay, so at PRE_COMMIT the
 * same hashes also go into one WAL record of kvserver's resource manager
 * (rmgr.c), ahead of the commit record; a standby's replay of it does there
 * what PRE_COMMIT and COMMIT do here.
 *
 * IDENTIFICATION
 *	  src/pg/invalidate.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/objectaccess.h"
#include "catalog/pg_class.h"
#include "commands/trigger.h"
#include "fmgr.h"
#include "utils/builtins.h"
#include "utils/memutils.h"
#include "utils/rel.h"

#include "cache.h"
#include "kvserver.h"
#include "rmgr.h"
#include "watch.h"

/* Past this many keys in one transaction, invalidate everything instead. */
#define MAX_PENDING_HASHES 65536

static uint64 *pending_hashes = NULL;
static int	npending = 0;
static int	pending_cap = 0;
static bool pending_all = false;
static bool wrote_store = false;
static bool writes_begun[KVCACHE_PARTITIONS];
static KvWritesBegun begun[KVCACHE_PARTITIONS];
static const KvStagedWrite *staged = NULL;
static int	nstaged = 0;
static Oid	dropped_store = InvalidOid;

static object_access_hook_type prev_object_access_hook = NULL;

static void kv_xact_callback(XactEvent event, void *arg);
static void record_key(HeapTuple tuple, TupleDesc desc);
static void kv_object_access(ObjectAccessType access, Oid classId,
							 Oid objectId, int subId, void *arg);

PG_FUNCTION_INFO_V1(kv_store_invalidate);

void
kv_invalidate_init(void)
{
	kv_rmgr_register();
	RegisterXactCallback(kv_xact_callback, NULL);
	prev_object_access_hook = object_access_hook;
	object_access_hook = kv_object_access;
}

static void
kv_object_access(ObjectAccessType access, Oid classId, Oid objectId,
				 int subId, void *arg)
{
	if (prev_object_access_hook)
		prev_object_access_hook(access, classId, objectId, subId, arg);
	if (access == OAT_DROP && classId == RelationRelationId && subId == 0 &&
		kvcache_available() && kvcache_bound_to(objectId))
	{
		dropped_store = objectId;
		wrote_store = true;
		pending_all = true;
	}
}

/* Has the open transaction written kv_store?  Then it must bypass the cache. */
bool
kv_xact_wrote_store(void)
{
	return wrote_store;
}

Datum
kv_store_invalidate(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;

	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("kv_store_invalidate() may only be called as a trigger")));

	wrote_store = true;
	if (TRIGGER_FIRED_BY_TRUNCATE(trigdata->tg_event))
		pending_all = true;
	else if (!pending_all)
	{
		TupleDesc	desc = RelationGetDescr(trigdata->tg_relation);

		record_key(trigdata->tg_trigtuple, desc);
		if (TRIGGER_FIRED_BY_UPDATE(trigdata->tg_event))
			record_key(trigdata->tg_newtuple, desc);
	}
	return PointerGetDatum(NULL);
}

static void
record_key(HeapTuple tuple, TupleDesc desc)
{
	bool		isnull;
	Datum		d;
	text	   *key;
	uint64		hash;

	if (tuple == NULL)
		return;
	/* the key is the first column of kv_store */
	d = heap_getattr(tuple, 1, desc, &isnull);
	if (isnull)
		return;
	key = DatumGetTextPP(d);
	hash = kvcache_hash(VARDATA_ANY(key), VARSIZE_ANY_EXHDR(key));
	/* for watchers (watch.c): published only if the transaction commits */
	kvwatch_note_key(VARDATA_ANY(key), VARSIZE_ANY_EXHDR(key), hash);
	if (npending >= MAX_PENDING_HASHES)
	{
		pending_all = true;
		return;
	}
	if (npending == pending_cap)
	{
		int			newcap = pending_cap ? pending_cap * 2 : 64;

		if (pending_hashes == NULL)
			pending_hashes = MemoryContextAlloc(TopTransactionContext,
												newcap * sizeof(uint64));
		else
			pending_hashes = repalloc(pending_hashes, newcap * sizeof(uint64));
		pending_cap = newcap;
	}
	pending_hashes[npending++] = hash;
}

static bool
partition_touched(int partition)
{
	int			i;

	if (pending_all)
		return true;
	for (i = 0; i < npending; i++)
		if (kvcache_partition_of(pending_hashes[i]) == partition)
			return true;
	return false;
}

static void
forget_transaction(void)
{
	pending_hashes = NULL;		/* freed with TopTransactionContext */
	npending = 0;
	pending_cap = 0;
	pending_all = false;
	wrote_store = false;
	dropped_store = InvalidOid;
	memset(writes_begun, 0, sizeof(writes_begun));
	staged = NULL;
	nstaged = 0;
	kvwatch_forget();
}

/*
 * Write-through: the commit of the current transaction is to install these
 * writes' new state in the cache (see kvcache_writes_end for when it may).
 * Only for writes whose new row the caller knows exactly: no trigger or
 * rule of anyone else's may have changed it (store_is_plain).  The array
 * must live until the transaction ends.
 */
void
kv_stage_writes(const KvStagedWrite *writes, int n)
{
	staged = writes;
	nstaged = n;
}

static void
kv_xact_callback(XactEvent event, void *arg)
{
	int			i;

	switch (event)
	{
		case XACT_EVENT_PRE_COMMIT:
		case XACT_EVENT_PARALLEL_PRE_COMMIT:
			if (!wrote_store)
				break;
			/* for standbys, whether or not this node has a cache */
			if (event == XACT_EVENT_PRE_COMMIT)
				kv_wal_log_invalidation(pending_hashes, npending, pending_all);
			if (!kvcache_available())
				break;
			for (i = 0; i < KVCACHE_PARTITIONS; i++)
			{
				if (!writes_begun[i] && partition_touched(i))
				{
					kvcache_writes_begin(i, pending_hashes, npending,
										 pending_all, &begun[i]);
					writes_begun[i] = true;
				}
			}
			break;

		case XACT_EVENT_COMMIT:
		case XACT_EVENT_PARALLEL_COMMIT:
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PARALLEL_ABORT:
			{
				bool		committed = (event == XACT_EVENT_COMMIT ||
										 event == XACT_EVENT_PARALLEL_COMMIT);

				for (i = 0; i < KVCACHE_PARTITIONS; i++)
				{
					if (writes_begun[i])
						kvcache_writes_end(i, pending_hashes,
										   committed ? npending : 0,
										   committed && pending_all,
										   &begun[i],
										   staged, committed ? nstaged : 0);
				}
				if (committed && OidIsValid(dropped_store))
					kvcache_unbind_table(dropped_store);

				/*
				 * Watchers last: woken by the new index, they read again and
				 * must find the cache entries already gone.  pending_all
				 * also covers a transaction past MAX_PENDING_HASHES, whose
				 * later keys were not noted.
				 */
				if (committed && wrote_store)
					kvwatch_publish(pending_all);
				forget_transaction();
				break;
			}

		case XACT_EVENT_PRE_PREPARE:
			if (wrote_store && (kvcache_available() || kv_wal_logging()))
				ereport(ERROR,
						(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
						 errmsg("cannot PREPARE a transaction that has written kv_store"),
						 errdetail("The kvserver cache is invalidated when the writing transaction commits, which a prepared transaction does not do."),
						 errhint("Commit the kv_store writes in an ordinary transaction.")));
			break;

		case XACT_EVENT_PREPARE:
			forget_transaction();
			break;
	}
}
