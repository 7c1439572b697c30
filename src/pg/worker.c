/*-------------------------------------------------------------------------
 *
 * worker.c
 *	  The kvserver background worker: starts the HTTP server, then waits
 *	  for queued requests and serves them (batch.c), deletes expired keys,
 *	  applies new settings, and shuts everything down in order.
 *
 * Process model.  civetweb is started before BackgroundWorkerUnblockSignals
 * so its threads inherit a fully blocked signal mask.  They queue requests
 * (request_queue.c) and poke an eventfd; this thread waits on that eventfd,
 * its latch and postmaster death in one WaitEventSet.  Only this thread
 * touches SPI, transactions and LWLocks.
 *
 * Expiry.  Every kvserver.expire_interval the loop deletes expired rows in
 * small batches; reads never return them in the meantime.  Not on a hot
 * standby: the primary deletes them, and replay brings the deletions.
 *
 * Hot standbys.  The worker starts as soon as a standby accepts read-only
 * connections (BgWorkerStart_ConsistentState) and serves reads there.  At
 * every turn of the loop, which waits at most KV_AUTH_TICK_MS, it asks
 * RecoveryInProgress() and publishes the answer and the replay position to
 * civetweb threads (node_role.c): they refuse writes on a standby
 * themselves.  So a promotion is noticed within about a second, without a
 * restart, and from then on writes go through (a transaction begun after
 * the promotion is read-write).
 *
 * Shutdown.  SIGTERM uses the standard die() handler: the next
 * CHECK_FOR_INTERRUPTS exits with FATAL, even from inside a lock wait.
 * Whichever way the process exits, worker_shutdown() (a before_shmem_exit
 * callback) closes the queue, answers every queued and in-progress request
 * with 503, and only then calls mg_stop(), which therefore finds no thread
 * waiting on us.
 *
 * IDENTIFICATION
 *	  src/pg/worker.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <stdlib.h>
#include <sys/resource.h>

#include "access/xact.h"
#include "access/xlog.h"
#include "access/xlogrecovery.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "tcop/tcopprot.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "auth.h"
#include "batch.h"
#include "cache.h"
#include "cache_fastpath.h"
#include "http_server.h"
#include "kvserver.h"
#include "node_role.h"
#include "pool.h"
#include "request_queue.h"
#include "store.h"
#include "tls.h"
#include "watch.h"
#include "watch_ring.h"
#include "watch_wait.h"

/* Expired rows are deleted this many at a time, a few batches per round. */
#define EXPIRE_BATCH	500
#define EXPIRE_ROUNDS	20

/* How often a hot standby tells watchers about replay, while any wait. */
#define KV_STANDBY_WATCH_MS	100

/* What the running HTTP server was started with. */
static char *http_listen_active = NULL;
static int	http_port_active = 0;
static char *http_ssl_certificate_active = NULL;
static char *http_ssl_key_active = NULL;
static bool http_tls_active = false;

static TimestampTz next_expire = 0;

static void worker_shutdown(int code, Datum arg);
static void start_http(void);
static void apply_settings(void);
static void delete_expired(void);
static long wait_timeout(void);
static void publish_node_role(void);
static void publish_watch_limits(void);

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
	kvwr_attach(kvwatch_shared());
	publish_watch_limits();
	kv_http_set_limits(kvserver_max_key_length, kvserver_max_value_size,
					   kvserver_request_timeout_ms);
	kv_http_set_txn_limit(kvserver_max_txn_ops);
	/* a standby refuses writes from its first request on */
	publish_node_role();
	kv_node_set_primary_url(kvserver_primary_url);
	start_http();

	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnection(kvserver_database, NULL, 0);
	/* watch indexes of an earlier run are older than this one's */
	kvwatch_worker_start();
	pgstat_report_appname("kvserver");
	kv_auth_worker_init();
	apply_settings();
	kv_pool_start();

	wes = CreateWaitEventSet(TopMemoryContext, 3);
	AddWaitEventToSet(wes, WL_LATCH_SET, PGINVALID_SOCKET, MyLatch, NULL);
	AddWaitEventToSet(wes, WL_POSTMASTER_DEATH, PGINVALID_SOCKET, NULL, NULL);
	AddWaitEventToSet(wes, WL_SOCKET_READABLE, kvq_eventfd(), NULL, NULL);

	for (;;)
	{
		WaitEvent	events[3];
		int			nevents;
		int			i;

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

		publish_node_role();
		/* replay fires no trigger: a standby's watchers learn of it here */
		if (RecoveryInProgress())
			kvwatch_standby_tick();
		/* the executors serve the queue; without any, this thread does */
		if (!kv_pool_serve())
			kv_batch_serve(kvq_take_all);
		kv_auth_tick();

		if (kvserver_expire_interval_s > 0 &&
			GetCurrentTimestamp() >= next_expire)
		{
			/* a standby cannot delete: replay brings the primary's deletions */
			if (!RecoveryInProgress())
				delete_expired();
			next_expire = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
													  kvserver_expire_interval_s * 1000);
		}
	}
}

/*
 * Tell civetweb threads whether this node is a hot standby and how far it
 * has replayed (node_role.c); say so in the log when a promotion ends
 * recovery under us.  RecoveryInProgress() reads shared memory only until
 * it has once said false, then a local flag.
 */
static void
publish_node_role(void)
{
	static bool published = false;
	static bool was_standby = false;
	bool		standby = RecoveryInProgress();

	if (standby)
		kv_node_publish(true, GetXLogReplayRecPtr(NULL), GetLatestXTime());
	else
		kv_node_publish(false, 0, 0);
	if (published && was_standby && !standby)
		ereport(LOG,
				(errmsg("kvserver noticed that this node was promoted: HTTP writes are taken from now on")));
	else if (!published && standby)
		ereport(LOG,
				(errmsg("kvserver is serving a hot standby: HTTP reads only, writes are refused until a promotion")));
	published = true;
	was_standby = standby;
}

/*
 * kvserver.max_watchers and kvserver.max_wait for civetweb threads.  Each
 * watch holds a thread, so at most three quarters of them may watch (by
 * default half): the rest serve ordinary requests.
 */
static void
publish_watch_limits(void)
{
	int			most = kvserver_http_threads * 3 / 4;
	int			n = kvserver_max_watchers < 0
		? kvserver_http_threads / 2 : Min(kvserver_max_watchers, most);

	kv_watch_set_limits(n, kvserver_max_wait_s * 1000);
}

/* Milliseconds until the next thing to do without being woken, or -1. */
static long
wait_timeout(void)
{
	long		timeout = kv_batch_has_deferred() ? KV_RETRY_MS : KV_AUTH_TICK_MS;
	long		spill = kv_pool_wait_ms();

	if (spill >= 0 && spill < timeout)
		timeout = spill;

	/* a standby's watchers hear of replayed changes at every turn */
	if (timeout > KV_STANDBY_WATCH_MS && kv_watch_count() > 0 &&
		RecoveryInProgress())
		timeout = KV_STANDBY_WATCH_MS;

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
		char	   *why;

		if (!OidIsValid(kv_store_xact_begin(&why)))
		{
			pfree(why);
			return;
		}
		pgstat_report_activity(STATE_RUNNING, "kvserver: deleting expired keys");
		PG_TRY();
		{
			/*
			 * Nobody waits for this answer, and a deletion lost in a failover
			 * is made again (expired keys are never returned meanwhile): do
			 * not hold the main thread, which hands out every request, while
			 * a synchronous standby confirms.
			 */
			(void) set_config_option("synchronous_commit", "local",
									 PGC_USERSET, PGC_S_SESSION,
									 GUC_ACTION_LOCAL, true, 0, false);
			n = store_delete_expired(EXPIRE_BATCH);
			kv_store_xact_end();
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
	kv_pool_fail_all(msg);
	kv_batch_fail_all(msg);
	kv_http_stop();
}

/*
 * Every connection, working or waiting in civetweb's accept queue, is a
 * descriptor; the usual soft limit of 1024 is too few for 256 threads plus
 * a 1024-deep queue, so take what the hard limit allows.
 */
static void
raise_fd_limit(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max)
	{
		rl.rlim_cur = rl.rlim_max;
		(void) setrlimit(RLIMIT_NOFILE, &rl);
	}
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
	if (http_ssl_certificate_active)
		pfree(http_ssl_certificate_active);
	if (http_ssl_key_active)
		pfree(http_ssl_key_active);
	http_ssl_certificate_active = MemoryContextStrdup(TopMemoryContext,
													  kvserver_ssl_certificate);
	http_ssl_key_active = MemoryContextStrdup(TopMemoryContext,
											  kvserver_ssl_key);
	http_tls_active = false;
	if (kvserver_listen_addresses[0] == '\0')
	{
		ereport(LOG,
				(errmsg("kvserver HTTP server disabled: kvserver.listen_addresses is empty")));
		return;
	}
	raise_fd_limit();

	/* HTTPS: settings, files and OpenSSL checked here, or an ERROR */
	http_tls_active = kv_tls_prepare();

	memset(&cfg, 0, sizeof(cfg));
	cfg.listen_addresses = kvserver_listen_addresses;
	cfg.port = kvserver_port;
	cfg.threads = kvserver_http_threads;
	cfg.request_timeout_ms = kvserver_request_timeout_ms;
	cfg.tls_init = http_tls_active ? kv_tls_init_ssl : NULL;
	if (!kv_http_start(&cfg, err, sizeof(err)))
	{
		if (http_tls_active && kv_tls_init_ssl_error() != NULL)
			ereport(ERROR,
					(errcode(ERRCODE_CONFIG_FILE_ERROR),
					 errmsg("kvserver could not start its HTTPS server: %s",
							kv_tls_init_ssl_error()),
					 errhint("Check the files named by kvserver.ssl_certificate and kvserver.ssl_key.")));
		ereport(ERROR,
				(errcode(ERRCODE_CONFIG_FILE_ERROR),
				 errmsg("kvserver could not start its HTTP server on \"%s\" port %d: %s",
						kvserver_listen_addresses, kvserver_port, err),
				 errhint("Check that the port is free and the addresses exist, or change kvserver.listen_addresses and kvserver.port.")));
	}
	ereport(LOG,
			(errmsg("kvserver listening on %s://%s:%d/ (database \"%s\")",
					http_tls_active ? "https" : "http",
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
	publish_watch_limits();
	kv_http_set_txn_limit(kvserver_max_txn_ops);
	/* a new kvserver.anonymous_role or allow_superuser changes verdicts */
	kv_auth_reload();
	kv_node_set_primary_url(kvserver_primary_url);

	/* a shorter kvserver.expire_interval takes effect now, not after the old one */
	if (kvserver_expire_interval_s > 0)
	{
		TimestampTz soon = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
													   kvserver_expire_interval_s * 1000);

		if (next_expire == 0 || soon < next_expire)
			next_expire = soon;
	}

	/* a lock wait is cut short and the request retried: see batch.h */
	snprintf(ms, sizeof(ms), "%d", KV_LOCK_WAIT_MS);
	SetConfigOption("lock_timeout", ms, PGC_SUSET, PGC_S_OVERRIDE);

	if (http_listen_active != NULL &&
		(strcmp(http_listen_active, kvserver_listen_addresses) != 0 ||
		 http_port_active != kvserver_port ||
		 strcmp(http_ssl_certificate_active, kvserver_ssl_certificate) != 0 ||
		 strcmp(http_ssl_key_active, kvserver_ssl_key) != 0 ||
		 (http_tls_active && kv_tls_files_changed())))
	{
		/* replaced certificate files are read again, as PostgreSQL does */
		ereport(LOG,
				(errmsg("kvserver restarting its HTTP server for new kvserver.listen_addresses, kvserver.port or TLS settings or files")));
		kvq_close("kvserver HTTP server is restarting");
		kv_pool_fail_all("kvserver HTTP server is restarting");
		kv_batch_fail_all("kvserver HTTP server is restarting");
		kv_http_stop();
		kvq_reopen();
		start_http();
	}
}
