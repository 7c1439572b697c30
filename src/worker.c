/*-------------------------------------------------------------------------
 *
 * worker.c
 *	  The kvserver background worker: starts the HTTP server, then serves
 *	  the requests its threads queue, in batches, on the main thread.
 *
 * Process model.  civetweb is started before BackgroundWorkerUnblockSignals
 * so its threads inherit a fully blocked signal mask.  They queue requests
 * (request_queue.c) and poke an eventfd; this thread waits on that eventfd,
 * its latch and postmaster death in one WaitEventSet.  Only this thread
 * touches SPI, transactions and LWLocks.
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
 * Locks.  lock_timeout is LOCK_WAIT_MS: a request blocked by another
 * session's lock is rolled back to its subtransaction and retried every
 * RETRY_MS until its client's deadline, so it cannot stall the batch.
 *
 * Expiry.  Every kvserver.expire_interval the loop deletes expired rows in
 * small batches; reads never return them in the meantime.
 *
 * Shutdown.  SIGTERM uses the standard die() handler: the next
 * CHECK_FOR_INTERRUPTS exits with FATAL, even from inside a lock wait.
 * Whichever way the process exits, worker_shutdown() (a before_shmem_exit
 * callback) closes the queue, answers every queued and in-progress request
 * with 503, and only then calls mg_stop(), which therefore finds no thread
 * waiting on us.
 *
 * IDENTIFICATION
 *	  src/worker.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <stdlib.h>
#include <sys/resource.h>

#include "access/xact.h"
#include "executor/spi.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "tcop/tcopprot.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/resowner.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "cache.h"
#include "cache_fastpath.h"
#include "http_server.h"
#include "metrics.h"
#include "kvserver.h"
#include "request_queue.h"
#include "store.h"

#define MAX_BATCH 256

/*
 * A request blocked by a row or table lock gives up after LOCK_WAIT_MS and
 * is retried every RETRY_MS until its client's deadline, so one locked row
 * cannot stall the requests behind it for a whole request_timeout.
 */
#define LOCK_WAIT_MS	50
#define RETRY_MS		20

/* Expired rows are deleted this many at a time, a few batches per round. */
#define EXPIRE_BATCH	500
#define EXPIRE_ROUNDS	20

/* The batch being served; an entry is set to NULL once answered. */
static KvRequest *batch[MAX_BATCH];
static bool batch_retry[MAX_BATCH];
static int	batch_len = 0;

/* Requests put off because of a lock, oldest first. */
static KvRequest *deferred = NULL;
static int	ndeferred = 0;

/* What the running HTTP server was started with. */
static char *http_listen_active = NULL;
static int	http_port_active = 0;

static void worker_shutdown(int code, Datum arg);
static void start_http(void);
static void apply_settings(void);
static void process_batch(KvRequest *list);
static void delete_expired(void);
static Oid	begin_batch_transaction(void);
static void end_batch_transaction(void);
static long wait_timeout(void);
static void set_db_error(KvRequest *req, ErrorData *edata);
static void run_in_subxact(void (*fn) (void *), void *arg, const int *idx,
						   int n);

static TimestampTz next_expire = 0;

/*---- replies ----*/

static void *
xmalloc(Size size)
{
	void	   *p = malloc(size);

	if (p == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("out of memory")));
	return p;
}

static char *
xstrndup(const char *s, size_t len)
{
	char	   *p = xmalloc(len + 1);

	memcpy(p, s, len);
	p[len] = '\0';
	return p;
}

static void
set_error(KvRequest *req, int status, KvError error, const char *message)
{
	req->status = status;
	req->error = error;
	free(req->message);
	req->message = strdup(message);
}

static void
answer(int i)
{
	kvq_complete(batch[i]);
	batch[i] = NULL;
}

static void
answer_all_with(int status, KvError error, const char *message)
{
	int			i;

	for (i = 0; i < batch_len; i++)
	{
		if (batch[i] != NULL)
		{
			kvq_fail(batch[i], status, error, message);
			batch[i] = NULL;
		}
	}
}

static bool
is_write(const KvRequest *req)
{
	return req->op == KV_OP_PUT || req->op == KV_OP_CREATE ||
		req->op == KV_OP_DELETE;
}

/*---- entry point ----*/

void
kvserver_worker_main(Datum main_arg)
{
	WaitEventSet *wes;

	pqsignal(SIGTERM, die);
	pqsignal(SIGHUP, SignalHandlerForConfigReload);

	if (kvq_open() < 0)
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("kvserver could not create an eventfd: %m")));
	before_shmem_exit(worker_shutdown, (Datum) 0);

	/* signals are still blocked: civetweb's threads inherit that */
	kvfast_attach(kvcache_shared());
	kv_http_set_limits(kvserver_max_key_length, kvserver_max_value_size,
					   kvserver_request_timeout_ms);
	start_http();

	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnection(kvserver_database, NULL, 0);
	pgstat_report_appname("kvserver");
	apply_settings();

	wes = CreateWaitEventSet(TopMemoryContext, 3);
	AddWaitEventToSet(wes, WL_LATCH_SET, PGINVALID_SOCKET, MyLatch, NULL);
	AddWaitEventToSet(wes, WL_POSTMASTER_DEATH, PGINVALID_SOCKET, NULL, NULL);
	AddWaitEventToSet(wes, WL_SOCKET_READABLE, kvq_eventfd(), NULL, NULL);

	for (;;)
	{
		WaitEvent	events[3];
		int			nevents;
		int			i;
		bool		retried = false;
		KvRequest  *list;

		pgstat_report_activity(STATE_IDLE, NULL);
		nevents = WaitEventSetWait(wes, wait_timeout(), events,
								   lengthof(events), PG_WAIT_EXTENSION);
		for (i = 0; i < nevents; i++)
		{
			/* exiting runs worker_shutdown, which answers our threads */
			if (events[i].events & WL_POSTMASTER_DEATH)
				proc_exit(1);
			if (events[i].events & WL_LATCH_SET)
				ResetLatch(MyLatch);
		}
		CHECK_FOR_INTERRUPTS();

		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
			apply_settings();
		}

		/* new requests, with the deferred ones in front; those once a round */
		for (;;)
		{
			list = kvq_take_all(MAX_BATCH - ndeferred);
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

		if (kvserver_expire_interval_s > 0 &&
			GetCurrentTimestamp() >= next_expire)
		{
			delete_expired();
			next_expire = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
													  kvserver_expire_interval_s * 1000);
		}
	}
}

/* Milliseconds until the next thing to do without being woken, or -1. */
static long
wait_timeout(void)
{
	long		timeout = deferred ? RETRY_MS : -1;

	if (kvserver_expire_interval_s > 0)
	{
		long		until = TimestampDifferenceMilliseconds(GetCurrentTimestamp(),
															next_expire);

		if (timeout < 0 || until < timeout)
			timeout = until;
	}
	return timeout;
}

/*
 * Delete expired rows, a batch per transaction so that no transaction holds
 * many row locks or keeps clients waiting long.  Reads never return expired
 * keys anyway; this only reclaims their space.
 */
static void
delete_expired(void)
{
	int			round;
	MemoryContext oldcxt = CurrentMemoryContext;

	for (round = 0; round < EXPIRE_ROUNDS; round++)
	{
		volatile int64 n = 0;

		if (!OidIsValid(begin_batch_transaction()))
			return;
		pgstat_report_activity(STATE_RUNNING, "kvserver: deleting expired keys");
		PG_TRY();
		{
			n = store_delete_expired(EXPIRE_BATCH);
			end_batch_transaction();
		}
		PG_CATCH();
		{
			ErrorData  *edata;

			MemoryContextSwitchTo(oldcxt);
			edata = CopyErrorData();
			FlushErrorState();
			AbortCurrentTransaction();
			ereport(LOG,
					(errmsg("kvserver could not delete expired keys: %s",
							edata->message)));
			FreeErrorData(edata);
		}
		PG_END_TRY();
		pgstat_report_activity(STATE_IDLE, NULL);
		if (n < EXPIRE_BATCH || kvq_depth() > 0)
			break;
	}
}

/*
 * before_shmem_exit callback: answer everyone, then stop civetweb.  Runs
 * on the way out of FATAL (SIGTERM) and of proc_exit (postmaster death).
 */
static void
worker_shutdown(int code, Datum arg)
{
	const char *msg = "kvserver is shutting down";

	kvq_close(msg);
	answer_all_with(503, KV_ERR_UNAVAILABLE, msg);
	while (deferred != NULL)
	{
		KvRequest  *next = deferred->next;

		kvq_fail(deferred, 503, KV_ERR_UNAVAILABLE, msg);
		deferred = next;
	}
	ndeferred = 0;
	kv_http_stop();
}

static void
start_http(void)
{
	KvHttpConfig cfg;
	char		err[256];

	if (http_listen_active)
		free(http_listen_active);
	http_listen_active = strdup(kvserver_listen_addresses);
	http_port_active = kvserver_port;
	if (kvserver_listen_addresses[0] == '\0')
	{
		ereport(LOG,
				(errmsg("kvserver HTTP server disabled: kvserver.listen_addresses is empty")));
		return;
	}

	/*
	 * Every connection, working or waiting in civetweb's accept queue, is a
	 * descriptor; the usual soft limit of 1024 is too few for 256 threads
	 * plus a 1024-deep queue, so take what the hard limit allows.
	 */
	{
		struct rlimit rl;

		if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max)
		{
			rl.rlim_cur = rl.rlim_max;
			(void) setrlimit(RLIMIT_NOFILE, &rl);
		}
	}

	cfg.listen_addresses = kvserver_listen_addresses;
	cfg.port = kvserver_port;
	cfg.threads = kvserver_http_threads;
	cfg.request_timeout_ms = kvserver_request_timeout_ms;
	if (!kv_http_start(&cfg, err, sizeof(err)))
		ereport(ERROR,
				(errcode(ERRCODE_CONFIG_FILE_ERROR),
				 errmsg("kvserver could not start its HTTP server on \"%s\" port %d: %s",
						kvserver_listen_addresses, kvserver_port, err),
				 errhint("Check that the port is free and the addresses exist, or change kvserver.listen_addresses and kvserver.port.")));
	ereport(LOG,
			(errmsg("kvserver listening on http://%s:%d/ (database \"%s\")",
					kvserver_listen_addresses, kvserver_port,
					kvserver_database)));
}

/* Apply settings at start and after SIGHUP. */
static void
apply_settings(void)
{
	char		ms[32];

	kv_http_set_limits(kvserver_max_key_length, kvserver_max_value_size,
					   kvserver_request_timeout_ms);

	/* a shorter kvserver.expire_interval takes effect now, not after the old one */
	if (kvserver_expire_interval_s > 0)
	{
		TimestampTz soon = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
													   kvserver_expire_interval_s * 1000);

		if (next_expire == 0 || soon < next_expire)
			next_expire = soon;
	}

	/* a lock wait is cut short and the request retried: see LOCK_WAIT_MS */
	snprintf(ms, sizeof(ms), "%d", LOCK_WAIT_MS);
	SetConfigOption("lock_timeout", ms, PGC_SUSET, PGC_S_OVERRIDE);

	if (http_listen_active != NULL &&
		(strcmp(http_listen_active, kvserver_listen_addresses) != 0 ||
		 http_port_active != kvserver_port))
	{
		ereport(LOG,
				(errmsg("kvserver restarting its HTTP server for new kvserver.listen_addresses or kvserver.port")));
		kvq_close("kvserver HTTP server is restarting");
		kv_http_stop();
		kvq_reopen();
		start_http();
	}
}

/*---- serving requests ----*/

/* A GET answered from the cache, if it is there. */
static bool
get_from_cache(KvRequest *req, Oid relid)
{
	KvCachedValue cv;

	if (!kvcache_lookup(relid, req->key, req->key_len, xmalloc, &cv))
		return false;
	req->reply_value = cv.value;
	req->reply_value_len = cv.value_len;
	req->reply_content_type = cv.content_type;
	req->version = cv.version;
	req->expires_at = cv.expires_at;
	req->cache_hit = true;
	req->status = 200;
	return true;
}

/* A GET answered from a table row; the row also fills the cache. */
static void
get_from_row(KvRequest *req, Oid relid, uint64 token, const KvRow *row)
{
	kvcache_fill(relid, req->key, req->key_len, token, row->value,
				 row->value_len, row->content_type, row->version,
				 row->expires_at);
	req->reply_value = xstrndup(row->value, row->value_len);
	req->reply_value_len = row->value_len;
	req->reply_content_type = row->content_type
		? xstrndup(row->content_type, strlen(row->content_type)) : NULL;
	req->version = row->version;
	req->expires_at = row->expires_at;
	req->cache_hit = false;
	req->status = 200;
}

static void
fill_get_reply(KvRequest *req, Oid relid)
{
	KvRow		row;
	uint64		token;

	if (get_from_cache(req, relid))
		return;
	token = kvcache_fill_token(req->key, req->key_len);
	store_get(req->key, req->key_len, &row);
	if (!row.found)
		set_error(req, 404, KV_ERR_NOT_FOUND, "key not found");
	else
		get_from_row(req, relid, token, &row);
}

/*
 * GET misses of one batch are read with one statement (key = ANY ($1))
 * instead of one statement and one subtransaction each.  An error fails
 * the group as a whole, like a single request's error.
 */
typedef struct GetGroup
{
	int		   *idx;			/* into batch[] */
	uint64	   *tokens;
	int			n;
	Oid			relid;
} GetGroup;

static void
get_group_row(void *arg, const char *key, size_t key_len, const KvRow *row)
{
	GetGroup   *g = (GetGroup *) arg;
	int			k;

	/* the same key may be asked for more than once in a batch */
	for (k = 0; k < g->n; k++)
	{
		KvRequest  *req = batch[g->idx[k]];

		if (req->status == 0 && req->key_len == key_len &&
			memcmp(req->key, key, key_len) == 0)
			get_from_row(req, g->relid, g->tokens[k], row);
	}
}

/* Drop a reply half-built by work that then failed. */
static void
forget_reply(KvRequest *req)
{
	int			k;

	free(req->reply_value);
	free(req->reply_content_type);
	req->reply_value = NULL;
	req->reply_content_type = NULL;
	for (k = 0; k < req->nkeys; k++)
		free(req->keys[k]);
	free(req->keys);
	free(req->next_key);
	free(req->database);
	req->keys = NULL;
	req->nkeys = 0;
	req->next_key = NULL;
	req->database = NULL;
	req->status = 0;
}

static void
exec_get_group(void *arg)
{
	GetGroup   *g = (GetGroup *) arg;
	const char **keys = palloc(sizeof(char *) * g->n);
	size_t	   *lens = palloc(sizeof(size_t) * g->n);
	int			k;

	for (k = 0; k < g->n; k++)
	{
		keys[k] = batch[g->idx[k]]->key;
		lens[k] = batch[g->idx[k]]->key_len;
	}
	store_get_many(keys, lens, g->n, get_group_row, g);
	for (k = 0; k < g->n; k++)
		if (batch[g->idx[k]]->status == 0)
			set_error(batch[g->idx[k]], 404, KV_ERR_NOT_FOUND, "key not found");
}

static void
run_get_group(int *idx, int n, Oid relid)
{
	GetGroup	g;
	int			k;

	g.idx = idx;
	g.n = n;
	g.relid = relid;
	g.tokens = palloc(sizeof(uint64) * n);
	/* fill tokens are taken before the statement's snapshot */
	for (k = 0; k < n; k++)
		g.tokens[k] = kvcache_fill_token(batch[idx[k]]->key,
										 batch[idx[k]]->key_len);
	run_in_subxact(exec_get_group, &g, idx, n);
}

static void
fill_list_reply(KvRequest *req)
{
	char	  **keys;
	int			n;
	int			i;

	/* one more than asked, to know whether there is a next page */
	n = store_list(req->prefix, req->after, req->limit + 1, &keys);
	if (n > req->limit)
	{
		n = req->limit;
		req->next_key = xstrndup(keys[n - 1], strlen(keys[n - 1]));
	}
	req->keys = xmalloc(sizeof(char *) * (n + 1));
	for (i = 0; i < n; i++)
	{
		req->keys[i] = xstrndup(keys[i], strlen(keys[i]));
		req->nkeys = i + 1;
	}
	req->status = 200;
}

/* Run one request; errors propagate to the caller's subtransaction. */
static void
execute_request(KvRequest *req, Oid relid)
{
	int64		version = 0;
	TimestampTz expires_at = 0;
	KvPutResult res;

	switch (req->op)
	{
		case KV_OP_GET:
			fill_get_reply(req, relid);
			break;
		case KV_OP_PUT:
		case KV_OP_CREATE:
			if (req->ttl_seconds > 0)
				expires_at = GetCurrentTimestamp() + req->ttl_seconds * USECS_PER_SEC;
			res = store_put(req->key, req->key_len, req->value, req->value_len,
							req->content_type, expires_at,
							req->op == KV_OP_CREATE || req->create_only,
							req->if_match, &version);
			if (res == KV_PUT_EXISTS && req->op == KV_OP_CREATE)
				set_error(req, 409, KV_ERR_CONFLICT, "key already exists");
			else if (res == KV_PUT_EXISTS)
				set_error(req, 412, KV_ERR_PRECONDITION_FAILED,
						  "If-None-Match: * but the key exists");
			else if (res == KV_PUT_NO_MATCH)
				set_error(req, 412, KV_ERR_PRECONDITION_FAILED,
						  "If-Match does not match the key's current version");
			else
			{
				req->status = (res == KV_PUT_CREATED) ? 201 : 200;
				req->version = version;
				req->expires_at = expires_at;
			}
			break;
		case KV_OP_DELETE:
			switch (store_delete(req->key, req->key_len, req->if_match))
			{
				case KV_DELETE_DONE:
					req->status = 204;
					break;
				case KV_DELETE_ABSENT:
					set_error(req, 404, KV_ERR_NOT_FOUND, "key not found");
					break;
				case KV_DELETE_NO_MATCH:
					set_error(req, 412, KV_ERR_PRECONDITION_FAILED,
							  "If-Match does not match the key's current version");
					break;
			}
			break;
		case KV_OP_LIST:
			fill_list_reply(req);
			break;
		case KV_OP_HEALTH:
			req->database = xstrndup(kvserver_database, strlen(kvserver_database));
			req->status = 200;
			break;
	}
}

/* Turn a database error into an HTTP answer. */
static void
set_db_error(KvRequest *req, ErrorData *edata)
{
	char		msg[512];

	kv_metrics_db_error();
	switch (edata->sqlerrcode)
	{
		case ERRCODE_LOCK_NOT_AVAILABLE:
		case ERRCODE_QUERY_CANCELED:
		case ERRCODE_T_R_SERIALIZATION_FAILURE:
		case ERRCODE_T_R_DEADLOCK_DETECTED:
		case ERRCODE_READ_ONLY_SQL_TRANSACTION:
		case ERRCODE_ADMIN_SHUTDOWN:
		case ERRCODE_UNDEFINED_TABLE:
			snprintf(msg, sizeof(msg), "database busy or unavailable: %s",
					 edata->message);
			set_error(req, 503, KV_ERR_UNAVAILABLE, msg);
			return;
	}
	if (ERRCODE_TO_CATEGORY(edata->sqlerrcode) == ERRCODE_INTEGRITY_CONSTRAINT_VIOLATION ||
		ERRCODE_TO_CATEGORY(edata->sqlerrcode) == ERRCODE_PROGRAM_LIMIT_EXCEEDED ||
		ERRCODE_TO_CATEGORY(edata->sqlerrcode) == ERRCODE_DATA_EXCEPTION)
	{
		snprintf(msg, sizeof(msg), "rejected by the database: %s",
				 edata->message);
		set_error(req, 400, KV_ERR_BAD_REQUEST, msg);
		return;
	}
	snprintf(msg, sizeof(msg), "database error: %s", edata->message);
	set_error(req, 500, KV_ERR_INTERNAL, msg);
	ereport(LOG,
			(errmsg("kvserver request failed: %s", edata->message)));
}

/*
 * Run fn(arg) in a subtransaction, as PL/pgSQL runs an exception block: an
 * error rolls back this work alone and becomes the answer of each of the
 * n requests batch[idx[]] it was for; a lock timeout, while their clients
 * still wait, marks them for a retry instead.
 */
static void
run_in_subxact(void (*fn) (void *), void *arg, const int *idx, int n)
{
	MemoryContext oldcxt = CurrentMemoryContext;
	ResourceOwner oldowner = CurrentResourceOwner;

	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(oldcxt);
	PG_TRY();
	{
		fn(arg);
		ReleaseCurrentSubTransaction();
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
		for (k = 0; k < n; k++)
		{
			KvRequest  *req = batch[idx[k]];

			forget_reply(req);
			if (edata->sqlerrcode == ERRCODE_LOCK_NOT_AVAILABLE &&
				kvq_now_ms() + LOCK_WAIT_MS < req->deadline_ms)
				batch_retry[idx[k]] = true;
			else
				set_db_error(req, edata);
		}
		FreeErrorData(edata);
	}
	PG_END_TRY();
}

typedef struct OneRequest
{
	int			i;
	Oid			relid;
} OneRequest;

static void
exec_one(void *arg)
{
	OneRequest *one = (OneRequest *) arg;

	execute_request(batch[one->i], one->relid);
}

/* Run batch[i] in its own subtransaction. */
static void
run_isolated(int i, Oid relid)
{
	OneRequest	one = {i, relid};

	run_in_subxact(exec_one, &one, &i, 1);
}

/*
 * Answer batch[i], or put it off if it is to be retried.  A request whose
 * client has stopped waiting is answered with 503 rather than run late.
 */
static void
finish(int i)
{
	if (batch_retry[i])
	{
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

static bool
past_deadline(int i)
{
	if (kvq_now_ms() < batch[i]->deadline_ms)
		return false;
	kvq_fail(batch[i], 503, KV_ERR_UNAVAILABLE,
			 "request timed out waiting for the database");
	batch[i] = NULL;
	return true;
}

/*
 * Start a transaction and find kv_store.  Returns its OID, or InvalidOid
 * after answering every open request in the batch with 503 (extension not
 * created, or not usable here) and ending the transaction.
 */
static Oid
begin_batch_transaction(void)
{
	Oid			nspid;
	Oid			relid = InvalidOid;
	char	   *why = NULL;

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	PushActiveSnapshot(GetTransactionSnapshot());
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "kvserver: SPI_connect failed");

	nspid = store_namespace_of_extension();
	if (!OidIsValid(nspid))
		why = psprintf("extension \"kvserver\" is not installed in database \"%s\": run CREATE EXTENSION kvserver there",
					   kvserver_database);
	else if (GetDatabaseEncoding() != PG_UTF8)
		why = psprintf("database \"%s\" must use the UTF8 encoding for kvserver",
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
			why = psprintf("kvserver is not usable: %s", edata->message);
			relid = InvalidOid;
		}
		PG_END_TRY();
	}

	if (!OidIsValid(relid))
	{
		answer_all_with(503, KV_ERR_UNAVAILABLE, why);
		SPI_finish();
		PopActiveSnapshot();
		AbortCurrentTransaction();
		return InvalidOid;
	}
	kvcache_bind_table(relid);
	return relid;
}

static void
end_batch_transaction(void)
{
	SPI_finish();
	PopActiveSnapshot();
	CommitTransactionCommand();
}

static void
process_batch(KvRequest *list)
{
	Oid			relid;
	bool		have_writes = false;
	bool		have_reads = false;
	int			i;

	batch_len = 0;
	while (list != NULL)
	{
		KvRequest  *next = list->next;

		list->next = NULL;
		batch_retry[batch_len] = false;
		batch[batch_len++] = list;
		if (is_write(list))
			have_writes = true;
		else
			have_reads = true;
		list = next;
	}
	pgstat_report_activity(STATE_RUNNING, "kvserver: serving a batch of requests");
	kv_metrics_batch(batch_len);

	if (have_writes)
	{
		MemoryContext oldcxt;

		relid = begin_batch_transaction();
		if (!OidIsValid(relid))
			goto done;
		for (i = 0; i < batch_len; i++)
			if (batch[i] && is_write(batch[i]) && !past_deadline(i))
				run_isolated(i, relid);

		/* one commit for the whole batch; only then answer the writes */
		oldcxt = CurrentMemoryContext;
		PG_TRY();
		{
			end_batch_transaction();
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
				if (batch[i] && is_write(batch[i]) && !batch_retry[i] &&
					batch[i]->error == KV_ERR_NONE)
					set_error(batch[i], 500, KV_ERR_INTERNAL, msg);
			ereport(LOG, (errmsg("kvserver %s", msg)));
			FreeErrorData(edata);
		}
		PG_END_TRY();
		for (i = 0; i < batch_len; i++)
			if (batch[i] && is_write(batch[i]))
				finish(i);
	}

	if (have_reads)
	{
		int			misses[MAX_BATCH];
		int			nmisses = 0;

		relid = begin_batch_transaction();
		if (!OidIsValid(relid))
			goto done;

		for (i = 0; i < batch_len; i++)
		{
			if (batch[i] == NULL || past_deadline(i))
				continue;
			if (batch[i]->op == KV_OP_GET)
			{
				if (get_from_cache(batch[i], relid))
					answer(i);
				else
					misses[nmisses++] = i;
				continue;
			}
			run_isolated(i, relid);
			finish(i);
		}
		if (nmisses == 1)
			run_isolated(misses[0], relid);
		else if (nmisses > 1)
			run_get_group(misses, nmisses, relid);
		for (i = 0; i < nmisses; i++)
			finish(misses[i]);
		end_batch_transaction();
	}

done:
	batch_len = 0;
	pgstat_report_stat(false);
}
