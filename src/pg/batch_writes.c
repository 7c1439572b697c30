/*-------------------------------------------------------------------------
 *
 * batch_writes.c
 *	  The writes of a batch (batch.c): one transaction, the plain PUTs
 *	  several to a statement and every other write in its own
 *	  subtransaction, the write-through staged for the commit, one commit
 *	  (group commit) confirmed as synchronous_commit asks, and only then
 *	  the answers, so a 2xx always means committed.
 *
 * State: kv_batch[] (batch_internal.h), the serving thread's.
 *
 * IDENTIFICATION
 *	  src/pg/batch_writes.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "access/xlog.h"
#include "miscadmin.h"
#include "replication/syncrep.h"
#include "replication/walsender.h"
#include "replication/walsender_private.h"
#include "storage/lwlock.h"
#include "utils/memutils.h"

#include "batch.h"
#include "batch_internal.h"
#include "cache.h"
#include "execute.h"
#include "kvserver.h"
#include "request_queue.h"
#include "store.h"

/*
 * Did the synchronous standbys confirm the commit that ended at
 * 'commit_end', as synchronous_commit asks?  PostgreSQL ends its wait for
 * them without an error when the process is told to die or the
 * postmaster dies (and with only a WARNING on cancel): the transaction is
 * committed here but may be lost in a failover, so a backend would not
 * report success, and neither may we.  The walsenders publish how far the
 * standbys have confirmed in WalSndCtl->lsn[mode], under SyncRepLock.
 */
static bool
commit_confirmed(XLogRecPtr commit_end)
{
	int			mode;
	bool		confirmed;

	if (!SyncRepRequested() || XLogRecPtrIsInvalid(commit_end))
		return true;
	switch (synchronous_commit)
	{
		case SYNCHRONOUS_COMMIT_REMOTE_WRITE:
			mode = SYNC_REP_WAIT_WRITE;
			break;
		case SYNCHRONOUS_COMMIT_REMOTE_APPLY:
			mode = SYNC_REP_WAIT_APPLY;
			break;
		default:
			mode = SYNC_REP_WAIT_FLUSH;
			break;
	}
	LWLockAcquire(SyncRepLock, LW_SHARED);
	confirmed = !(WalSndCtl->sync_standbys_status & SYNC_STANDBY_DEFINED) ||
		WalSndCtl->lsn[mode] >= commit_end;
	LWLockRelease(SyncRepLock);
	return confirmed;
}

/* Is kv_batch[i] a write that succeeded, to be answered after the commit? */
static bool
write_succeeded(int i)
{
	KvRequest  *req = kv_batch[i];

	return req != NULL && kv_exec_is_write(req) && !kv_batch_retry[i] &&
		req->error == KV_ERR_NONE && req->status >= 200 && req->status <= 299;
}

/*
 * Write-through: have the commit put the batch's successful writes in the
 * cache (invalidate.c, cache.c say when it may), in batch order, so that
 * the next read of a key just written is a hit.  A transaction of POST
 * /txn contributes its puts and deletes, in its order; one that failed
 * was rolled back and contributes nothing.  The requests outlive the
 * commit: they are answered after it.
 */
static void
stage_write_through(Oid relid)
{
	KvStagedWrite *w;
	int			n = 0;
	int			nwrites = 0;
	int			i;
	int			j;

	if (!kvcache_bound_to(relid) || !kv_xact_wrote_store() ||
		!store_is_plain(relid))
		return;
	for (i = 0; i < kv_batch_len; i++)
		if (write_succeeded(i))
			nwrites += kv_batch[i]->op == KV_OP_TXN ? kv_batch[i]->ntxn_ops : 1;
	w = MemoryContextAlloc(TopTransactionContext,
						   sizeof(KvStagedWrite) * Max(nwrites, 1));
	for (i = 0; i < kv_batch_len; i++)
	{
		KvRequest  *req = kv_batch[i];

		if (!write_succeeded(i))
			continue;
		if (req->op == KV_OP_TXN)
		{
			for (j = 0; j < req->ntxn_ops; j++)
			{
				KvTxnOp    *op = &req->txn_ops[j];

				if (op->kind != KV_TXN_PUT && op->kind != KV_TXN_DELETE)
					continue;
				w[n].key = op->key;
				w[n].key_len = op->key_len;
				w[n].deleted = (op->kind == KV_TXN_DELETE);
				w[n].value = op->value;
				w[n].value_len = op->value_len;
				w[n].content_type = op->content_type;
				w[n].version = op->version;
				w[n].expires_at = op->expires_at;
				n++;
			}
			continue;
		}
		w[n].key = req->key;
		w[n].key_len = req->key_len;
		w[n].deleted = (req->op == KV_OP_DELETE);
		w[n].value = req->value;
		w[n].value_len = req->value_len;
		w[n].content_type = req->content_type;
		w[n].version = req->version;
		w[n].expires_at = req->expires_at;
		n++;
	}
	kv_stage_writes(w, n);
}

/*---- plain PUTs, several in one statement ----*/

/* Past this many value bytes, a group is written and a new one begun. */
#define PUT_GROUP_MAX_BYTES		(4 * 1024 * 1024)

typedef struct PutGroup
{
	KvRequest  *reqs[KV_MAX_BATCH];
	int			n;
} PutGroup;

static bool
exec_put_group(void *arg)
{
	PutGroup   *g = (PutGroup *) arg;

	kv_exec_put_many(g->reqs, g->n);
	return true;
}

/*
 * May kv_batch[i] be written by a group, ahead of the batch's other writes?
 * Only a plain PUT that no earlier write of the batch touches: the writes
 * of one key keep their order, and a transaction (POST /txn), whose keys
 * are many, keeps every later write behind it.
 */
static bool
groupable(int i)
{
	KvRequest  *req = kv_batch[i];
	int			j;

	if (!kv_exec_is_plain_put(req))
		return false;
	for (j = 0; j < i; j++)
	{
		KvRequest  *other = kv_batch[j];

		if (other == NULL || !kv_exec_is_write(other))
			continue;
		if (other->op == KV_OP_TXN)
			return false;
		if (other->key_len == req->key_len &&
			memcmp(other->key, req->key, req->key_len) == 0)
			return false;
	}
	return true;
}

/*
 * Write the batch's groupable PUTs (those of ready[]) with one statement
 * per role, in a subtransaction each, and set done[] for the ones written.
 * A group whose statement fails is left to kv_batch_run_isolated(), so
 * one bad request fails alone, as it always did.  Tables with rules or
 * triggers of their own are written one request at a time.
 */
static void
run_put_groups(const bool *ready, bool *done, Oid relid)
{
	bool		left[KV_MAX_BATCH];	/* groupable, and in no group yet */
	int			first;
	int			i;

	if (!store_is_plain(relid))
		return;
	for (i = 0; i < kv_batch_len; i++)
		left[i] = ready[i] && groupable(i);
	for (first = 0; first < kv_batch_len; first++)
	{
		PutGroup	g;
		int			idx[KV_MAX_BATCH];
		size_t		bytes = 0;
		Oid			role;

		if (!left[first])
			continue;
		role = kv_batch[first]->role;
		g.n = 0;
		for (i = first; i < kv_batch_len && bytes < PUT_GROUP_MAX_BYTES; i++)
		{
			if (!left[i] || kv_batch[i]->role != role)
				continue;
			left[i] = false;
			idx[g.n] = i;
			g.reqs[g.n++] = kv_batch[i];
			bytes += kv_batch[i]->value_len;
		}
		if (g.n < 2)
			continue;			/* one PUT is cheaper on its own */
		if (kv_batch_run_in_subxact(exec_put_group, &g, idx, g.n, role, false))
		{
			elog(DEBUG1, "kvserver wrote %d PUTs with one statement", g.n);
			for (i = 0; i < g.n; i++)
				done[idx[i]] = true;
		}
		else
		{
			elog(DEBUG1, kv_batch_retry[idx[0]]
				 ? "kvserver: the statement for %d PUTs met a lock; they will be retried"
				 : "kvserver: the statement for %d PUTs failed; writing them one by one",
				 g.n);
			for (i = 0; i < g.n; i++)
			{
				/* a lock timeout: all of them are retried later, as a group */
				done[idx[i]] = kv_batch_retry[idx[i]];
				kvq_reply_clear(g.reqs[i]);
				g.reqs[i]->status = 0;
				g.reqs[i]->version = 0;
				g.reqs[i]->expires_at = 0;
			}
		}
	}
}

/*
 * Answer every write of the batch that has no answer of its own yet (nor
 * waits for a retry) with this error: its commit failed or is unconfirmed.
 */
static void
fail_unanswered_writes(int status, KvError error, const char *message)
{
	int			i;

	for (i = 0; i < kv_batch_len; i++)
		if (kv_batch[i] && kv_exec_is_write(kv_batch[i]) && !kv_batch_retry[i] &&
			kv_batch[i]->error == KV_ERR_NONE)
			kvq_set_error(kv_batch[i], status, error, message);
}

/*
 * Writes in one transaction, one commit; then answer them.  False when
 * the transaction could not begin (the whole batch is answered then).
 */
bool
kv_batch_run_writes(void)
{
	MemoryContext oldcxt;
	Oid			relid;
	int			i;
	bool		wrote;
	volatile bool committed = false;
	bool		ready[KV_MAX_BATCH];
	bool		done[KV_MAX_BATCH] = {false};

	relid = kv_batch_begin_xact();
	if (!OidIsValid(relid))
		return false;
	for (i = 0; i < kv_batch_len; i++)
		ready[i] = kv_batch[i] && kv_exec_is_write(kv_batch[i]) &&
			!kv_batch_past_deadline(i) && kv_batch_authenticate(i, relid);
	run_put_groups(ready, done, relid);
	for (i = 0; i < kv_batch_len; i++)
		if (ready[i] && !done[i])
			kv_batch_run_isolated(i, relid);

	stage_write_through(relid);

	/* one commit for the whole batch; only then answer the writes */
	oldcxt = CurrentMemoryContext;
	wrote = TransactionIdIsValid(GetTopTransactionIdIfAny());
	PG_TRY();
	{
		kv_store_xact_end();
		committed = true;
	}
	PG_CATCH();
	{
		ErrorData  *edata;
		char		msg[512];

		MemoryContextSwitchTo(oldcxt);
		edata = CopyErrorData();
		FlushErrorState();
		AbortCurrentTransaction();
		snprintf(msg, sizeof(msg), "commit failed: %s", edata->message);
		fail_unanswered_writes(500, KV_ERR_INTERNAL, msg);
		ereport(LOG, (errmsg("kvserver %s", msg)));
		FreeErrorData(edata);
	}
	PG_END_TRY();
	if (committed && wrote && !commit_confirmed(XactLastCommitEnd))
	{
		ereport(WARNING,
				(errmsg("kvserver answered a batch of writes with 503: the commit at %X/%X was not confirmed by the synchronous standbys",
						LSN_FORMAT_ARGS(XactLastCommitEnd))));
		fail_unanswered_writes(503, KV_ERR_UNAVAILABLE,
							   "the write committed locally, but the synchronous standbys did not confirm it: its outcome is unknown");
	}
	for (i = 0; i < kv_batch_len; i++)
		if (kv_batch[i] && kv_exec_is_write(kv_batch[i]))
			kv_batch_finish(i);
	return true;
}
