/*-------------------------------------------------------------------------
 *
 * batch.c
 *	  Serve the requests civetweb's threads queued, in batches, on the
 *	  worker's main thread: the transactions, the subtransaction around
 *	  each request, group commit, and retries of requests that met a lock.
 *
 * Batches.  Everything queued is taken at once (up to KV_MAX_BATCH).  Writes
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
 * State: kv_batch[] and the deferred list belong to the main thread; a
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
#include "executor/spi.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "utils/memutils.h"
#include "utils/resowner.h"
#include "utils/snapmgr.h"

#include "auth.h"
#include "batch.h"
#include "batch_internal.h"
#include "cache.h"
#include "execute.h"
#include "kvserver.h"
#include "metrics.h"
#include "request_queue.h"
#include "store.h"

/* The batch being served (batch_internal.h). */
KvRequest  *kv_batch[KV_MAX_BATCH];
bool		kv_batch_retry[KV_MAX_BATCH];
int			kv_batch_len = 0;

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
	reply_fn(kv_batch[i]);
	kv_batch[i] = NULL;
}

static void
answer_batch_with(int status, KvError error, const char *message)
{
	int			i;

	for (i = 0; i < kv_batch_len; i++)
	{
		if (kv_batch[i] != NULL)
		{
			fail_request(kv_batch[i], status, error, message);
			kv_batch[i] = NULL;
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
	for (i = 0; i < kv_batch_len; i++)
	{
		if (kv_batch[i] != NULL && kv_exec_is_write(kv_batch[i]))
		{
			fail_request(kv_batch[i], 503, KV_ERR_READ_ONLY,
					 "this node is a hot standby and takes no writes: send them to the primary");
			kv_batch[i] = NULL;
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
 * Answer kv_batch[i], or put it off if it is to be retried.
 */
void
kv_batch_finish(int i)
{
	if (kv_batch_retry[i])
	{
		/* it starts over: no operation of a transaction is at fault yet */
		kv_batch[i]->txn_failed_op = -1;
		kv_batch[i]->next = NULL;
		if (deferred == NULL)
			deferred = kv_batch[i];
		else
		{
			KvRequest  *tail = deferred;

			while (tail->next)
				tail = tail->next;
			tail->next = kv_batch[i];
		}
		ndeferred++;
		kv_batch[i] = NULL;
		return;
	}
	answer(i);
}

/* A request whose client has stopped waiting is answered, not run late. */
bool
kv_batch_past_deadline(int i)
{
	if (kvq_now_ms() < kv_batch[i]->deadline_ms)
		return false;
	fail_request(kv_batch[i], 503, KV_ERR_UNAVAILABLE,
				 "request timed out waiting for the database");
	kv_batch[i] = NULL;
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
		KvRequest  *list = take(KV_MAX_BATCH - ndeferred);

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
Oid
kv_batch_begin_xact(void)
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
		for (i = 0; begin_met_lock && i < kv_batch_len; i++)
		{
			if (kv_batch[i] != NULL &&
				kvq_now_ms() + KV_LOCK_WAIT_MS < kv_batch[i]->deadline_ms)
			{
				kv_batch_retry[i] = true;
				kv_batch_finish(i);
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
 * n requests kv_batch[idx[]] it was for; a lock timeout, while their clients
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
bool
kv_batch_run_in_subxact(bool (*fn) (void *), void *arg, const int *idx, int n,
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
			KvRequest  *req = kv_batch[idx[k]];

			/* forget any half-built reply */
			kvq_reply_clear(req);
			if (edata->sqlerrcode == ERRCODE_LOCK_NOT_AVAILABLE &&
				kvq_now_ms() + KV_LOCK_WAIT_MS < req->deadline_ms)
				kv_batch_retry[idx[k]] = true;
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

	return kv_exec_request(kv_batch[one->i], one->relid);
}

/* Run kv_batch[i] in its own subtransaction. */
void
kv_batch_run_isolated(int i, Oid relid)
{
	OneRequest	one = {i, relid};

	kv_batch_run_in_subxact(exec_one, &one, &i, 1, kv_batch[i]->role, true);
}

static bool
exec_auth(void *arg)
{
	OneRequest *one = (OneRequest *) arg;

	kv_auth_verify(kv_batch[one->i], one->relid);
	return true;
}

/*
 * Establish who kv_batch[i] runs as.  True when it may go on; otherwise it
 * has been answered (401/403, or 200 for a bare identity check) or put
 * off for a retry.
 */
bool
kv_batch_authenticate(int i, Oid relid)
{
	KvRequest  *req = kv_batch[i];

	if (!kv_auth_trusted(req, relid))
	{
		OneRequest	one = {i, relid};

		kv_batch_run_in_subxact(exec_auth, &one, &i, 1, InvalidOid, true);
	}
	if (req->error == KV_ERR_NONE && !kv_batch_retry[i] && req->op != KV_OP_AUTH)
		return true;
	if (req->op == KV_OP_AUTH && req->error == KV_ERR_NONE)
		req->status = 200;
	kv_batch_finish(i);
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
		g.reqs[k] = kv_batch[idx[k]];
	kv_batch_run_in_subxact(exec_get_group, &g, idx, n, g.reqs[0]->role, true);
}

/*---- reads ----*/

/*
 * The batch's GET misses, one statement per role among them (each runs as
 * its role, so row-level security filters it).
 */
static void
run_misses(const int *misses, int nmisses, Oid relid)
{
	bool		taken[KV_MAX_BATCH] = {false};
	int			group[KV_MAX_BATCH];
	int			first;
	int			k;

	for (first = 0; first < nmisses; first++)
	{
		Oid			role;
		int			n = 0;

		if (taken[first])
			continue;
		role = kv_batch[misses[first]]->role;
		for (k = first; k < nmisses; k++)
		{
			if (!taken[k] && kv_batch[misses[k]]->role == role)
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
	int			misses[KV_MAX_BATCH];
	int			nmisses = 0;
	Oid			relid;
	int			i;

	relid = kv_batch_begin_xact();
	if (!OidIsValid(relid))
		return;

	for (i = 0; i < kv_batch_len; i++)
	{
		if (kv_batch[i] == NULL || kv_batch_past_deadline(i) || !kv_batch_authenticate(i, relid))
			continue;
		if (kv_batch[i]->op == KV_OP_GET)
		{
			/* a hit only for a role that may read the whole table */
			if (kv_exec_cached_get(kv_batch[i], relid))
				answer(i);
			else
				misses[nmisses++] = i;
			continue;
		}
		kv_batch_run_isolated(i, relid);
		kv_batch_finish(i);
	}
	/* already looked up in the cache above: straight to the table */
	run_misses(misses, nmisses, relid);
	for (i = 0; i < nmisses; i++)
		kv_batch_finish(misses[i]);
	kv_store_xact_end();
}

static void
process_batch(KvRequest *list)
{
	bool		have_writes = false;
	bool		have_reads = false;

	kv_batch_len = 0;
	while (list != NULL)
	{
		KvRequest  *next = list->next;

		list->next = NULL;
		kv_batch_retry[kv_batch_len] = false;
		kv_batch[kv_batch_len++] = list;
		if (kv_exec_is_write(list))
			have_writes = true;
		else
			have_reads = true;
		list = next;
	}
	pgstat_report_activity(STATE_RUNNING, "kvserver: serving a batch of requests");
	kv_metrics_batch(kv_batch_len);

	if (have_writes && refuse_writes_in_recovery())
		have_writes = false;
	if ((!have_writes || kv_batch_run_writes()) && have_reads)
		run_reads();

	kv_batch_len = 0;
	pgstat_report_stat(false);
}
