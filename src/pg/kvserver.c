/*-------------------------------------------------------------------------
 *
 * kvserver.c
 *	  Module load: settings, shared-memory hooks, the background worker.
 *
 * Under shared_preload_libraries, _PG_init defines the kvserver.* GUCs,
 * asks for the cache's shared memory and LWLocks (PG 15's
 * shmem_request_hook is the only place allowed to), and registers the HTTP
 * worker.  Loaded any other way (a session calling kv_get without
 * preloading), it defines the GUCs only: the SQL functions then work
 * without a cache, and kv_stats() says so.
 *
 * IDENTIFICATION
 *	  src/pg/kvserver.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <limits.h>

#include "miscadmin.h"
#include "postmaster/bgworker.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "utils/guc.h"

#include "auth.h"
#include "cache.h"
#include "kvserver.h"
#include "watch.h"

PG_MODULE_MAGIC;

/*---- GUC variables ----*/
char	   *kvserver_listen_addresses = NULL;
int			kvserver_port = KV_DEFAULT_PORT;
char	   *kvserver_database = NULL;
int			kvserver_http_threads = KV_DEFAULT_HTTP_THREADS;
int			kvserver_cache_size_kb = KV_DEFAULT_CACHE_SIZE_KB;
int			kvserver_max_key_length = KV_DEFAULT_MAX_KEY_LENGTH;
int			kvserver_max_value_size = KV_DEFAULT_MAX_VALUE_SIZE;
int			kvserver_request_timeout_ms = KV_DEFAULT_REQUEST_TIMEOUT_MS;
int			kvserver_expire_interval_s = KV_DEFAULT_EXPIRE_INTERVAL_S;
char	   *kvserver_anonymous_role = NULL;
bool		kvserver_allow_superuser = false;
bool		kvserver_public_metrics = false;
int			kvserver_auth_max_failures = 10;
int			kvserver_auth_failure_window_s = 60;
char	   *kvserver_ssl_certificate = NULL;
char	   *kvserver_ssl_key = NULL;
char	   *kvserver_primary_url = NULL;
int			kvserver_executors = KV_DEFAULT_EXECUTORS;
int			kvserver_max_watchers = KV_DEFAULT_MAX_WATCHERS;
int			kvserver_max_wait_s = KV_DEFAULT_MAX_WAIT_S;
int			kvserver_max_txn_ops = KV_DEFAULT_MAX_TXN_OPS;

/*---- Saved hook values ----*/
static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

/*---- Function declarations ----*/
void		_PG_init(void);

static void kv_shmem_request(void);
static void kv_shmem_startup(void);
static void define_gucs(void);
static void register_worker(void);
static bool check_primary_url(char **newval, void **extra, GucSource source);

void
_PG_init(void)
{
	define_gucs();

	if (!process_shared_preload_libraries_in_progress)
		return;

	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = kv_shmem_request;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = kv_shmem_startup;

	kv_invalidate_init();
	register_worker();
}

static void
define_gucs(void)
{
	/*
	 * Settings fixed at server start can only be defined while preloading;
	 * loaded later (no cache, no worker), they are shown but read-only.
	 */
	GucContext	at_start = process_shared_preload_libraries_in_progress
		? PGC_POSTMASTER : PGC_INTERNAL;

	DefineCustomStringVariable("kvserver.listen_addresses",
							   "Addresses the HTTP server listens on.",
							   "Comma-separated; \"*\" for all IPv4 addresses; empty disables HTTP.",
							   &kvserver_listen_addresses,
							   KV_DEFAULT_LISTEN_ADDRESSES,
							   PGC_SIGHUP,
							   0,
							   NULL, NULL, NULL);
	DefineCustomIntVariable("kvserver.port",
							"TCP port of the HTTP server.",
							NULL,
							&kvserver_port,
							KV_DEFAULT_PORT, 1, 65535,
							PGC_SIGHUP,
							0,
							NULL, NULL, NULL);
	DefineCustomStringVariable("kvserver.database",
							   "Database the kvserver worker connects to.",
							   "CREATE EXTENSION kvserver must be run in this database.",
							   &kvserver_database,
							   KV_DEFAULT_DATABASE,
							   at_start,
							   0,
							   NULL, NULL, NULL);
	DefineCustomIntVariable("kvserver.http_threads",
							"Number of HTTP worker threads.",
							"Each open connection holds one thread.",
							&kvserver_http_threads,
							KV_DEFAULT_HTTP_THREADS, 2, 4096,
							at_start,
							0,
							NULL, NULL, NULL);
	DefineCustomIntVariable("kvserver.executors",
							"Number of executor processes that run the HTTP requests' SQL.",
							"One serves reads only, so a read never waits behind a commit; the others take writes too. 0 runs everything on the worker's main thread.",
							&kvserver_executors,
							KV_DEFAULT_EXECUTORS, 0, 32,
							at_start,
							0,
							NULL, NULL, NULL);
	DefineCustomIntVariable("kvserver.cache_size",
							"Size of the shared-memory cache.",
							"0 disables the cache.",
							&kvserver_cache_size_kb,
							KV_DEFAULT_CACHE_SIZE_KB, 0, INT_MAX / 2,
							at_start,
							GUC_UNIT_KB,
							NULL, NULL, NULL);
	DefineCustomIntVariable("kvserver.max_key_length",
							"Longest key accepted, in bytes.",
							NULL,
							&kvserver_max_key_length,
							KV_DEFAULT_MAX_KEY_LENGTH, 1, 65536,
							PGC_SIGHUP,
							GUC_UNIT_BYTE,
							NULL, NULL, NULL);
	DefineCustomIntVariable("kvserver.max_value_size",
							"Largest value accepted over HTTP.",
							NULL,
							&kvserver_max_value_size,
							KV_DEFAULT_MAX_VALUE_SIZE, 0, 256 * 1024 * 1024,
							PGC_SIGHUP,
							GUC_UNIT_BYTE,
							NULL, NULL, NULL);
	DefineCustomIntVariable("kvserver.request_timeout",
							"How long an HTTP request may wait for the database.",
							"Also how long an idle HTTP connection is kept open.",
							&kvserver_request_timeout_ms,
							KV_DEFAULT_REQUEST_TIMEOUT_MS, 100, 3600 * 1000,
							PGC_SIGHUP,
							GUC_UNIT_MS,
							NULL, NULL, NULL);
	DefineCustomIntVariable("kvserver.max_txn_ops",
							"Most operations in one transaction (POST /txn).",
							NULL,
							&kvserver_max_txn_ops,
							KV_DEFAULT_MAX_TXN_OPS, 1, 10000,
							PGC_SIGHUP,
							0,
							NULL, NULL, NULL);

	DefineCustomIntVariable("kvserver.expire_interval",
							"How often the worker deletes expired keys.",
							"Expired keys are never returned, whatever this is; 0 leaves their rows in place.",
							&kvserver_expire_interval_s,
							KV_DEFAULT_EXPIRE_INTERVAL_S, 0, 86400,
							PGC_SIGHUP,
							GUC_UNIT_S,
							NULL, NULL, NULL);

	/* Watches (src/civet/http_watch.c) */
	DefineCustomIntVariable("kvserver.max_watchers",
							"Most HTTP watches (GET with ?wait=) waiting at once.",
							"Each holds an HTTP thread; beyond this a watch gets 429. -1: half of kvserver.http_threads. At most three quarters of kvserver.http_threads are used, so ordinary requests keep the rest.",
							&kvserver_max_watchers,
							KV_DEFAULT_MAX_WATCHERS, -1, 4096,
							PGC_SIGHUP,
							0,
							NULL, NULL, NULL);
	DefineCustomIntVariable("kvserver.max_wait",
							"Longest wait of an HTTP watch.",
							"A longer ?wait= is cut to this.",
							&kvserver_max_wait_s,
							KV_DEFAULT_MAX_WAIT_S, 1, 86400,
							PGC_SIGHUP,
							GUC_UNIT_S,
							NULL, NULL, NULL);

	/* Identity of HTTP requests (src/pg/auth.c) */
	DefineCustomStringVariable("kvserver.anonymous_role",
							   "Role that HTTP requests without credentials run as.",
							   "Empty (the default): requests without credentials get 401. The role may be NOLOGIN.",
							   &kvserver_anonymous_role,
							   "",
							   PGC_SIGHUP,
							   0,
							   NULL, NULL, NULL);
	DefineCustomBoolVariable("kvserver.allow_superuser",
							 "Lets superuser roles use the HTTP API.",
							 "Off: a superuser's HTTP requests get 403.",
							 &kvserver_allow_superuser,
							 false,
							 PGC_SIGHUP,
							 0,
							 NULL, NULL, NULL);
	DefineCustomBoolVariable("kvserver.public_metrics",
							 "Serves /metrics and the dashboard page without credentials.",
							 "Off: they need the same identity as the key API (credentials, or kvserver.anonymous_role).",
							 &kvserver_public_metrics,
							 false,
							 PGC_SIGHUP,
							 0,
							 NULL, NULL, NULL);
	DefineCustomIntVariable("kvserver.auth_max_failures",
							"Failed HTTP logins from one client address before it gets 429.",
							"Counted within kvserver.auth_failure_window; 0 disables the limit.",
							&kvserver_auth_max_failures,
							10, 0, 1000000,
							PGC_SIGHUP,
							0,
							NULL, NULL, NULL);
	DefineCustomIntVariable("kvserver.auth_failure_window",
							"Window in which failed HTTP logins are counted.",
							NULL,
							&kvserver_auth_failure_window_s,
							60, 1, 86400,
							PGC_SIGHUP,
							GUC_UNIT_S,
							NULL, NULL, NULL);

	/* HTTPS (src/pg/tls.c); a change restarts the HTTP server */
	DefineCustomStringVariable("kvserver.ssl_certificate",
							   "PEM certificate chain of the HTTP server; empty serves plain HTTP.",
							   "When set, the HTTP port serves HTTPS only, TLS 1.2 at least. A relative path is relative to the data directory.",
							   &kvserver_ssl_certificate,
							   KV_DEFAULT_SSL_CERTIFICATE,
							   PGC_SIGHUP,
							   0,
							   NULL, NULL, NULL);
	DefineCustomStringVariable("kvserver.ssl_key",
							   "PEM private key of the HTTP server's certificate.",
							   "Empty: the key is in the kvserver.ssl_certificate file. A relative path is relative to the data directory.",
							   &kvserver_ssl_key,
							   KV_DEFAULT_SSL_KEY,
							   PGC_SIGHUP,
							   0,
							   NULL, NULL, NULL);

	/* Hot standbys (src/civet/node_role.c) */
	DefineCustomStringVariable("kvserver.primary_url",
							   "Where a hot standby redirects HTTP writes: the primary's kvserver base URL.",
							   "Set: writes on a standby get 307 with Location: this URL followed by the request's path and query. Empty: they get 503.",
							   &kvserver_primary_url,
							   KV_DEFAULT_PRIMARY_URL,
							   PGC_SIGHUP,
							   0,
							   check_primary_url, NULL, NULL);

	MarkGUCPrefixReserved("kvserver");
}

/*
 * kvserver.primary_url goes into Location headers: the rule is
 * kv_primary_url_problem()'s (src/civet/kv_api.c).
 */
static bool
check_primary_url(char **newval, void **extra, GucSource source)
{
	const char *problem = kv_primary_url_problem(*newval);

	if (problem == NULL)
		return true;
	GUC_check_errcode(ERRCODE_INVALID_PARAMETER_VALUE);
	GUC_check_errdetail("The URL %s.", problem);
	GUC_check_errhint("Set kvserver.primary_url to the primary's kvserver base URL, such as 'http://10.0.0.1:8080', or to '' to answer writes on a standby with 503.");
	return false;
}

static void
kv_shmem_request(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	kvcache_shmem_request();
	kvwatch_shmem_request();
	RequestAddinShmemSpace(kv_auth_shmem_size());
}

static void
kv_shmem_startup(void)
{
	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();
	kvcache_shmem_startup();
	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	kv_auth_shmem_startup();
	kvwatch_shmem_startup();
	LWLockRelease(AddinShmemInitLock);
}

static void
register_worker(void)
{
	BackgroundWorker worker;

	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS |
		BGWORKER_BACKEND_DATABASE_CONNECTION;
	/*
	 * As soon as a hot standby accepts connections: there it serves reads,
	 * and it goes on serving, writes too, after a promotion (worker.c).
	 */
	worker.bgw_start_time = BgWorkerStart_ConsistentState;
	/* after a crash or a failed start (port in use), try again soon */
	worker.bgw_restart_time = 5;
	snprintf(worker.bgw_library_name, BGW_MAXLEN, "kvserver");
	snprintf(worker.bgw_function_name, BGW_MAXLEN, "kvserver_worker_main");
	snprintf(worker.bgw_name, BGW_MAXLEN, "kvserver http worker");
	snprintf(worker.bgw_type, BGW_MAXLEN, "kvserver");
	RegisterBackgroundWorker(&worker);
}
