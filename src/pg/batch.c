/*-------------------------------------------------------------------------
 *
 * batch.c
 *	  Serve the requests civetweb's threads queued, in batches, on the
 *	  worker's main thread: the transactions, the subtransaction around
 *	  each request, group commit, and retries of requests that met a lock.
 *
 * Batches.  Everything queued is taken at once (up to MAX_BATCH).  Writes
 * run first, in one transaction, each in its own subtransaction: a failing
 * request is answered alone and its neighbours go on.  One commit, one WAL
 * flush, for the whole batch (group commit), and only then are the writes
 * answered, so a 2xx always means committed.  Reads follow in a second
 * transaction that sees those commits: the cache first (most hits never get
 * here: cache_fastpath.c serves them on the civetweb thread), then all of
 * the batch's misses in one statement.
 *
 * Locks.  The worker runs with lock_timeout = KV_LOCK_WAIT_MS: a
 * request blocked by another session's lock is rolled back to its
 * subtransaction and deferred, then retried every KV_RETRY_MS until its
 * client's deadline, so it cannot stall the batch.
 *
 * State: batch[] and the deferred list belong to the main thread; a
 * request in either is RUNNING in request_queue.c terms, so no civetweb
 * thread touches it until it is completed.
 *
 * IDENTIFICATION
 *	  src/pg/batch.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "access/xlog.h"
#include "executor/spi.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "replication/syncrep.h"
#include "replication/walsender.h"
#include "replication/walsender_private.h"
#include "storage/lwlock.h"
#include "utils/memutils.h"
#include "utils/resowner.h"
#include "utils/snapmgr.h"

#include "auth.h"
#include "batch.h"
#include "cache.h"
#include "execute.h"
#include "kvserver.h"
#include "metrics.h"
#include "request_queue.h"
#include "store.h"

#define MAX_BATCH 256

/* The batch being served; an entry is set to NULL once answered. */
static KvRequest *batch[MAX_BATCH];
static bool batch_retry[MAX_BATCH];
static int	batch_len = 0;

/* Requests put off because of a lock, oldest first. */
static KvRequest *deferred = NULL;
static int	ndeferred = 0;

/* kv_store_xact_begin() failed because kv_store was locked. */
static bool begin_met_lock = false;

static void process_batch(KvRequest *list);

/*
 * How a finished request is handed back: to its civetweb thread on the
 * worker's main thread (kvq_complete), or to the worker over a message
 * queue in an executor (executor.c).  The callee takes the request.
 */
static void (*reply_fn) (KvRequest *req) = kvq_complete;

void
kv_batch_set_replier(void (*fn) (KvRequest *req))
{
	reply_fn = fn;
}

/*---- answering ----*/

static void
fail_request(KvRequest *req, int status, KvError error, const char *message)
{
	kvq_set_error(req, status, error, message);
	reply_fn(req);
}

static void
answer(int i)
{
	reply_fn(batch[i]);
	batch[i] = NULL;
}

static void
answer_batch_with(int status, KvError error, const char *message)
{
	int			i;

	for (i = 0; i < batch_len; i++)
	{
		if (batch[i] != NULL)
		{
			fail_request(batch[i], status, error, message);
			batch[i] = NULL;
		}
	}
}

/* Shutdown: answer the batch in progress and every deferred request. */
void
kv_batch_fail_all(const char *message)
{
	answer_batch_with(503, KV_ERR_UNAVAILABLE, message);
	while (deferred != NULL)
	{
		KvRequest  *next = deferred->next;

		fail_request(deferred, 503, KV_ERR_UNAVAILABLE, message);
		deferred = next;
	}
	ndeferred = 0;
}

/*
 * While this node is a hot standby, answer the batch's writes with 503
 * read_only and say true.  civetweb threads refuse writes on a standby
 * before they are queued (http_keys.c), going by the role this thread
 * publishes (worker.c); this is the backstop for one that got past them,
 * so that no write ever meets a read-only transaction.
 */
static bool
refuse_writes_in_recovery(void)
{
	int			i;

	if (!RecoveryInProgress())
		return false;
	for (i = 0; i < batch_len; i++)
	{
		if (batch[i] != NULL && kv_exec_is_write(batch[i]))
		{
			fail_request(batch[i], 503, KV_ERR_READ_ONLY,
					 "this node is a hot standby and takes no writes: send them to the primary");
			batch[i] = NULL;
		}
	}
	return true;
}

bool
kv_batch_has_deferred(void)
{
	return deferred != NULL;
}

/*
 * Answer batch[i], or put it off if it is to be retried.
 */
static void
finish(int i)
{
	if (batch_retry[i])
	{
		/* it starts over: no operation of a transaction is at fault yet */
		batch[i]->txn_failed_op = -1;
		batch[i]->next = NULL;
		if (deferred == NULL)
			deferred = batch[i];
		else
		{
			KvRequest  *tail = deferred;

			while (tail->next)
				tail = tail->next;
			tail->next = batch[i];
		}
		ndeferred++;
		batch[i] = NULL;
		return;
	}
	answer(i);
}

/* A request whose client has stopped waiting is answered, not run late. */
static bool
past_deadline(int i)
{
	if (kvq_now_ms() < batch[i]->deadline_ms)
		return false;
	fail_request(batch[i], 503, KV_ERR_UNAVAILABLE,
				 "request timed out waiting for the database");
	batch[i] = NULL;
	return true;
}

/*---- the queue ----*/

/*
 * Serve everything take() hands over (kvq_take_all on the worker's main
 * thread, the received batch in an executor), with the deferred requests
 * in front; those are retried once per call, so a locked row costs one
 * retry a round.
 */
void
kv_batch_serve(KvRequest *(*take) (int max))
{
	bool		retried = false;

	for (;;)
	{
		KvRequest  *list = take(MAX_BATCH - ndeferred);

		if (list == NULL && (deferred == NULL || retried))
			break;
		if (deferred != NULL)
		{
			KvRequest  *tail = deferred;

			while (tail->next)
				tail = tail->next;
			tail->next = list;
			list = deferred;
			deferred = NULL;
			ndeferred = 0;
			retried = true;
		}
		process_batch(list);
		CHECK_FOR_INTERRUPTS();
	}
}

/*---- transactions ----*/

/*
 * Start a transaction with a snapshot and SPI, and find kv_store.  Returns
 * its OID; or InvalidOid with *why saying what is wrong (extension not
 * created, or not usable here), after ending the transaction.
 */
Oid
kv_store_xact_begin(char **why)
{
	Oid			nspid;
	Oid			relid = InvalidOid;

	*why = NULL;
	begin_met_lock = false;
	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	PushActiveSnapshot(GetTransactionSnapshot());
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "kvserver: SPI_connect failed");

	nspid = store_namespace_of_extension();
	if (!OidIsValid(nspid))
		*why = psprintf("extension \"kvserver\" is not installed in database \"%s\": run CREATE EXTENSION kvserver there",
						kvserver_database);
	else if (GetDatabaseEncoding() != PG_UTF8)
		*why = psprintf("database \"%s\" must use the UTF8 encoding for kvserver",
						kvserver_database);
	else
	{
		MemoryContext oldcxt = CurrentMemoryContext;

		PG_TRY();
		{
			relid = store_prepare(nspid);
		}
		PG_CATCH();
		{
			ErrorData  *edata;

			MemoryContextSwitchTo(oldcxt);
			edata = CopyErrorData();
			FlushErrorState();
			*why = psprintf("kvserver is not usable: %s", edata->message);
			begin_met_lock = edata->sqlerrcode == ERRCODE_LOCK_NOT_AVAILABLE;
			relid = InvalidOid;
		}
		PG_END_TRY();
	}

	if (!OidIsValid(relid))
	{
		/* keep the reason past the transaction's memory */
		*why = MemoryContextStrdup(TopMemoryContext, *why);
		SPI_finish();
		PopActiveSnapshot();
		AbortCurrentTransaction();
		return InvalidOid;
	}
	kvcache_bind_table(relid);
	kv_auth_bind(relid, kv_token_relid(nspid));
	kv_auth_publish();
	return relid;
}

void
kv_store_xact_end(void)
{
	SPI_finish();
	PopActiveSnapshot();
	CommitTransactionCommand();
}

/* Begin a batch's transaction, or answer the whole batch with 503. */
static Oid
begin_batch_xact(void)
{
	char	   *why;
	Oid			relid = kv_store_xact_begin(&why);

	if (!OidIsValid(relid))
	{
		int			i;

		/*
		 * Preparing the statements met a lock on kv_store (LOCK TABLE, an
		 * ALTER): like a request that meets one, retry while clients wait.
		 */
		for (i = 0; begin_met_lock && i < batch_len; i++)
		{
			if (batch[i] != NULL &&
				kvq_now_ms() + KV_LOCK_WAIT_MS < batch[i]->deadline_ms)
			{
				batch_retry[i] = true;
				finish(i);
			}
		}
		answer_batch_with(503, KV_ERR_UNAVAILABLE, why);
		pfree(why);
	}
	return relid;
}

/*---- subtransactions ----*/

/*
 * Run fn(arg) in a subtransaction, as PL/pgSQL runs an exception block: an
 * error rolls back this work alone and becomes the answer of each of the
 * n requests batch[idx[]] it was for; a lock timeout, while their clients
 * still wait, marks them for a retry instead.  fn returns false to have
 * its work rolled back without an error, its answer kept (a transaction of
 * POST /txn whose check did not hold: all or nothing).  With answer_errors
 * false an error other than a lock timeout answers nobody: the caller
 * learns of it by the false return and runs the requests again one by one.
 *
 * The work runs as 'role' when it is valid (the requests' role: GRANTs and
 * row-level security apply), else as the worker's own role.  The switch is
 * SECURITY_LOCAL_USERID_CHANGE, as for a SECURITY DEFINER function, and an
 * error's subtransaction abort undoes it.
 */
static bool
run_in_subxact(bool (*fn) (void *), void *arg, const int *idx, int n,
			   Oid role, bool answer_errors)
{
	MemoryContext oldcxt = CurrentMemoryContext;
	ResourceOwner oldowner = CurrentResourceOwner;
	Oid			save_user;
	int			save_sec;
	volatile bool ok = true;

	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(oldcxt);
	GetUserIdAndSecContext(&save_user, &save_sec);
	PG_TRY();
	{
		bool		keep;

		if (OidIsValid(role))
			SetUserIdAndSecContext(role, save_sec | SECURITY_LOCAL_USERID_CHANGE);
		keep = fn(arg);
		SetUserIdAndSecContext(save_user, save_sec);
		if (keep)
			ReleaseCurrentSubTransaction();
		else
			RollbackAndReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(oldcxt);
		CurrentResourceOwner = oldowner;
	}
	PG_CATCH();
	{
		ErrorData  *edata;
		int			k;

		MemoryContextSwitchTo(oldcxt);
		edata = CopyErrorData();
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(oldcxt);
		CurrentResourceOwner = oldowner;
		ok = false;
		for (k = 0; k < n; k++)
		{
			KvRequest  *req = batch[idx[k]];

			/* forget any half-built reply */
			kvq_reply_clear(req);
			if (edata->sqlerrcode == ERRCODE_LOCK_NOT_AVAILABLE &&
				kvq_now_ms() + KV_LOCK_WAIT_MS < req->deadline_ms)
				batch_retry[idx[k]] = true;
			else if (answer_errors)
				kv_exec_db_error(req, edata);
		}
		FreeErrorData(edata);
	}
	PG_END_TRY();
	return ok;
}

typedef struct OneRequest
{
	int			i;
	Oid			relid;
} OneRequest;

static bool
exec_one(void *arg)
{
	OneRequest *one = (OneRequest *) arg;

	return kv_exec_request(batch[one->i], one->relid);
}

/* Run batch[i] in its own subtransaction. */
static void
run_isolated(int i, Oid relid)
{
	OneRequest	one = {i, relid};

	run_in_subxact(exec_one, &one, &i, 1, batch[i]->role, true);
}

static bool
exec_auth(void *arg)
{
	OneRequest *one = (OneRequest *) arg;

	kv_auth_verify(batch[one->i], one->relid);
	return true;
}

/*
 * Establish who batch[i] runs as.  True when it may go on; otherwise it
 * has been answered (401/403, or 200 for a bare identity check) or put
 * off for a retry.
 */
static bool
authenticate(int i, Oid relid)
{
	KvRequest  *req = batch[i];

	if (!kv_auth_trusted(req, relid))
	{
		OneRequest	one = {i, relid};

		run_in_subxact(exec_auth, &one, &i, 1, InvalidOid, true);
	}
	if (req->error == KV_ERR_NONE && !batch_retry[i] && req->op != KV_OP_AUTH)
		return true;
	if (req->op == KV_OP_AUTH && req->error == KV_ERR_NONE)
		req->status = 200;
	finish(i);
	return false;
}

/*
 * The batch's GET misses, read with one statement; an error fails the
 * group as a whole, like a single request's error.
 */
typedef struct GetGroup
{
	KvRequest **reqs;
	int			n;
	Oid			relid;
} GetGroup;

static bool
exec_get_group(void *arg)
{
	GetGroup   *g = (GetGroup *) arg;

	kv_exec_get_many(g->reqs, g->n, g->relid);
	return true;
}

static void
run_get_group(int *idx, int n, Oid relid)
{
	GetGroup	g;
	int			k;

	g.reqs = palloc(sizeof(KvRequest *) * n);
	g.n = n;
	g.relid = relid;
	for (k = 0; k < n; k++)
		g.reqs[k] = batch[idx[k]];
	run_in_subxact(exec_get_group, &g, idx, n, g.reqs[0]->role, true);
}

/*---- one batch ----*/

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

/* Is batch[i] a write that succeeded, to be answered after the commit? */
static bool
write_succeeded(int i)
{
	KvRequest  *req = batch[i];

	return req != NULL && kv_exec_is_write(req) && !batch_retry[i] &&
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
	for (i = 0; i < batch_len; i++)
		if (write_succeeded(i))
			nwrites += batch[i]->op == KV_OP_TXN ? batch[i]->ntxn_ops : 1;
	w = MemoryContextAlloc(TopTransactionContext,
						   sizeof(KvStagedWrite) * Max(nwrites, 1));
	for (i = 0; i < batch_len; i++)
	{
		KvRequest  *req = batch[i];

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
	KvRequest  *reqs[MAX_BATCH];
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
 * May batch[i] be written by a group, ahead of the batch's other writes?
 * Only a plain PUT that no earlier write of the batch touches: the writes
 * of one key keep their order, and a transaction (POST /txn), whose keys
 * are many, keeps every later write behind it.
 */
static bool
groupable(int i)
{
	KvRequest  *req = batch[i];
	int			j;

	if (!kv_exec_is_plain_put(req))
		return false;
	for (j = 0; j < i; j++)
	{
		KvRequest  *other = batch[j];

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
 * A group whose statement fails is left to run_isolated(), so one bad
 * request fails alone, as it always did.  Tables with rules or triggers
 * of their own are written one request at a time.
 */
static void
run_put_groups(const bool *ready, bool *done, Oid relid)
{
	bool		taken[MAX_BATCH] = {false};
	int			first;
	int			i;

	if (!store_is_plain(relid))
		return;
	for (first = 0; first < batch_len; first++)
	{
		PutGroup	g;
		int			idx[MAX_BATCH];
		size_t		bytes = 0;
		Oid			role;

		if (taken[first] || !ready[first] || !groupable(first))
			continue;
		role = batch[first]->role;
		g.n = 0;
		for (i = first; i < batch_len && bytes < PUT_GROUP_MAX_BYTES; i++)
		{
			if (taken[i] || !ready[i] || batch[i]->role != role || !groupable(i))
				continue;
			taken[i] = true;
			idx[g.n] = i;
			g.reqs[g.n++] = batch[i];
			bytes += batch[i]->value_len;
		}
		if (g.n < 2)
			continue;			/* one PUT is cheaper on its own */
		if (run_in_subxact(exec_put_group, &g, idx, g.n, role, false))
		{
			elog(DEBUG1, "kvserver wrote %d PUTs with one statement", g.n);
			for (i = 0; i < g.n; i++)
				done[idx[i]] = true;
		}
		else
		{
			elog(DEBUG1, batch_retry[idx[0]]
				 ? "kvserver: the statement for %d PUTs met a lock; they will be retried"
				 : "kvserver: the statement for %d PUTs failed; writing them one by one",
				 g.n);
			for (i = 0; i < g.n; i++)
			{
				/* a lock timeout: all of them are retried later, as a group */
				done[idx[i]] = batch_retry[idx[i]];
				kvq_reply_clear(g.reqs[i]);
				g.reqs[i]->status = 0;
				g.reqs[i]->version = 0;
				g.reqs[i]->expires_at = 0;
			}
		}
	}
}

/*
 * Writes in one transaction, one commit; then answer them.  False when
 * the transaction could not begin (the whole batch is answered then).
 */
static bool
run_writes(void)
{
	MemoryContext oldcxt;
	Oid			relid;
	int			i;
	bool		wrote;
	volatile bool committed = false;
	bool		ready[MAX_BATCH];
	bool		done[MAX_BATCH] = {false};

	relid = begin_batch_xact();
	if (!OidIsValid(relid))
		return false;
	for (i = 0; i < batch_len; i++)
		ready[i] = batch[i] && kv_exec_is_write(batch[i]) && !past_deadline(i) &&
			authenticate(i, relid);
	run_put_groups(ready, done, relid);
	for (i = 0; i < batch_len; i++)
		if (ready[i] && !done[i])
			run_isolated(i, relid);

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
		for (i = 0; i < batch_len; i++)
			if (batch[i] && kv_exec_is_write(batch[i]) && !batch_retry[i] &&
				batch[i]->error == KV_ERR_NONE)
				kvq_set_error(batch[i], 500, KV_ERR_INTERNAL, msg);
		ereport(LOG, (errmsg("kvserver %s", msg)));
		FreeErrorData(edata);
	}
	PG_END_TRY();
	if (committed && wrote && !commit_confirmed(XactLastCommitEnd))
	{
		ereport(WARNING,
				(errmsg("kvserver answered a batch of writes with 503: the commit at %X/%X was not confirmed by the synchronous standbys",
						LSN_FORMAT_ARGS(XactLastCommitEnd))));
		for (i = 0; i < batch_len; i++)
			if (batch[i] && kv_exec_is_write(batch[i]) && !batch_retry[i] &&
				batch[i]->error == KV_ERR_NONE)
				kvq_set_error(batch[i], 503, KV_ERR_UNAVAILABLE,
							  "the write committed locally, but the synchronous standbys did not confirm it: its outcome is unknown");
	}
	for (i = 0; i < batch_len; i++)
		if (batch[i] && kv_exec_is_write(batch[i]))
			finish(i);
	return true;
}

/*
 * The batch's GET misses, one statement per role among them (each runs as
 * its role, so row-level security filters it).
 */
static void
run_misses(const int *misses, int nmisses, Oid relid)
{
	bool		taken[MAX_BATCH] = {false};
	int			group[MAX_BATCH];
	int			first;
	int			k;

	for (first = 0; first < nmisses; first++)
	{
		Oid			role;
		int			n = 0;

		if (taken[first])
			continue;
		role = batch[misses[first]]->role;
		for (k = first; k < nmisses; k++)
		{
			if (!taken[k] && batch[misses[k]]->role == role)
			{
				taken[k] = true;
				group[n++] = misses[k];
			}
		}
		run_get_group(group, n, relid);
	}
}

/* Reads in a transaction that sees the writes just committed. */
static void
run_reads(void)
{
	int			misses[MAX_BATCH];
	int			nmisses = 0;
	Oid			relid;
	int			i;

	relid = begin_batch_xact();
	if (!OidIsValid(relid))
		return;

	for (i = 0; i < batch_len; i++)
	{
		if (batch[i] == NULL || past_deadline(i) || !authenticate(i, relid))
			continue;
		if (batch[i]->op == KV_OP_GET)
		{
			/* a hit only for a role that may read the whole table */
			if (kv_exec_cached_get(batch[i], relid))
				answer(i);
			else
				misses[nmisses++] = i;
			continue;
		}
		run_isolated(i, relid);
		finish(i);
	}
	/* already looked up in the cache above: straight to the table */
	run_misses(misses, nmisses, relid);
	for (i = 0; i < nmisses; i++)
		finish(misses[i]);
	kv_store_xact_end();
}

static void
process_batch(KvRequest *list)
{
	bool		have_writes = false;
	bool		have_reads = false;

	batch_len = 0;
	while (list != NULL)
	{
		KvRequest  *next = list->next;

		list->next = NULL;
		batch_retry[batch_len] = false;
		batch[batch_len++] = list;
		if (kv_exec_is_write(list))
			have_writes = true;
		else
			have_reads = true;
		list = next;
	}
	pgstat_report_activity(STATE_RUNNING, "kvserver: serving a batch of requests");
	kv_metrics_batch(batch_len);

	if (have_writes && refuse_writes_in_recovery())
		have_writes = false;
	if ((!have_writes || run_writes()) && have_reads)
		run_reads();

	batch_len = 0;
	pgstat_report_stat(false);
}
