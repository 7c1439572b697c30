/*-------------------------------------------------------------------------
 *
 * metrics.c
 *	  Request, latency, batch and error counters, and their Prometheus
 *	  text rendering for GET /metrics.
 *
 * The counters live in the worker process's own memory (only the worker
 * serves HTTP) and are bumped with relaxed atomic adds from civetweb
 * threads and the main thread alike; a scrape reads them without stopping
 * anyone, so figures from one scrape may be a few requests apart.  Cache
 * figures come from shared memory through cache_fastpath.c; the node's role
 * and replay position from what the main thread last published
 * (node_role.c), at most about a second old.
 *
 * No PostgreSQL here: civetweb threads render the page.
 *
 * IDENTIFICATION
 *	  src/civet/metrics.c
 *
 *-------------------------------------------------------------------------
 */
#include "metrics.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cache_fastpath.h"
#include "http_request.h"
#include "kv_api.h"
#include "node_role.h"
#include "request_queue.h"
#include "watch_wait.h"

#ifdef PG_MAJORVERSION
#error "metrics.c runs on civetweb threads: no PostgreSQL headers"
#endif


/* Upper bounds in seconds; the last bucket is +Inf. */
static const double latency_bounds[] = {
	0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
	0.1, 0.25, 0.5, 1, 2.5, 5, 10
};
#define NLATENCY (sizeof(latency_bounds) / sizeof(latency_bounds[0]))

static const double batch_bounds[] = {1, 2, 4, 8, 16, 32, 64, 128, 256};
#define NBATCH (sizeof(batch_bounds) / sizeof(batch_bounds[0]))

static uint64_t requests[KV_NMETHODS][6];	/* by status class 1xx..5xx */
static uint64_t latency_buckets[NLATENCY + 1];
static uint64_t latency_sum_ns;
static uint64_t batch_buckets[NBATCH + 1];
static uint64_t batch_sum;
static uint64_t db_errors;

#define BUMP(var, n) __atomic_fetch_add(&(var), (n), __ATOMIC_RELAXED)
#define LOAD(var) __atomic_load_n(&(var), __ATOMIC_RELAXED)

void
kv_metrics_request(KvMethod method, int status, int64_t elapsed_ns)
{
	int			m = (int) method;
	size_t		b;
	int			cls = status / 100;
	double		secs = (double) elapsed_ns / 1e9;

	if (m < 0 || m >= KV_NMETHODS)
		m = KV_METHOD_OTHER;
	if (cls < 1 || cls > 5)
		cls = 5;
	BUMP(requests[m][cls], 1);
	for (b = 0; b < NLATENCY && secs > latency_bounds[b]; b++)
		;
	BUMP(latency_buckets[b], 1);
	BUMP(latency_sum_ns, (uint64_t) (elapsed_ns > 0 ? elapsed_ns : 0));
}

void
kv_metrics_batch(int nrequests)
{
	size_t		b;

	for (b = 0; b < NBATCH && (double) nrequests > batch_bounds[b]; b++)
		;
	BUMP(batch_buckets[b], 1);
	BUMP(batch_sum, (uint64_t) nrequests);
}

void
kv_metrics_db_error(void)
{
	BUMP(db_errors, 1);
}

typedef struct Buf
{
	char	   *data;
	size_t		len;
	size_t		cap;
	bool		failed;
} Buf;

static void put(Buf *b, const char *fmt,...) __attribute__((format(printf, 2, 3)));

static void
put(Buf *b, const char *fmt,...)
{
	va_list		ap;
	int			n;

	if (b->failed)
		return;
	for (;;)
	{
		va_start(ap, fmt);
		n = vsnprintf(b->data + b->len, b->cap - b->len, fmt, ap);
		va_end(ap);
		if (n < 0)
		{
			b->failed = true;
			return;
		}
		if ((size_t) n < b->cap - b->len)
		{
			b->len += n;
			return;
		}
		b->cap = b->cap * 2 + n;
		b->data = realloc(b->data, b->cap);
		if (b->data == NULL)
		{
			b->failed = true;
			return;
		}
	}
}

static void
header(Buf *b, const char *name, const char *type, const char *help)
{
	put(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* A histogram: cumulative buckets, the last one +Inf, then sum and count. */
static void
put_histogram(Buf *b, const char *name, const char *help,
			  const double *bounds, size_t nbounds, uint64_t *buckets,
			  double sum)
{
	uint64_t	cum = 0;
	size_t		i;

	header(b, name, "histogram", help);
	for (i = 0; i <= nbounds; i++)
	{
		cum += LOAD(buckets[i]);
		if (i < nbounds)
			put(b, "%s_bucket{le=\"%g\"} %llu\n", name, bounds[i],
				(unsigned long long) cum);
		else
			put(b, "%s_bucket{le=\"+Inf\"} %llu\n", name,
				(unsigned long long) cum);
	}
	put(b, "%s_sum %.9g\n", name, sum);
	put(b, "%s_count %llu\n", name, (unsigned long long) cum);
}

/* The whole /metrics page, malloc'd; NULL when out of memory. */
char *
kv_metrics_render(size_t *len)
{
	Buf			b = {malloc(8192), 0, 8192, false};
	KvFastStats cs;
	KvNodeState node;
	size_t		m;
	int			c;

	if (b.data == NULL)
		return NULL;

	header(&b, "kvserver_http_requests_total", "counter",
		   "HTTP requests answered, by method and status class.");
	for (m = 0; m < KV_NMETHODS; m++)
		for (c = 1; c <= 5; c++)
			put(&b, "kvserver_http_requests_total{method=\"%s\",code=\"%dxx\"} %llu\n",
				kv_method_name((KvMethod) m), c, (unsigned long long) LOAD(requests[m][c]));

	put_histogram(&b, "kvserver_http_request_duration_seconds",
				  "Time from a request's arrival to its reply being written.",
				  latency_bounds, NLATENCY, latency_buckets,
				  (double) LOAD(latency_sum_ns) / 1e9);
	put_histogram(&b, "kvserver_write_batch_size",
				  "Requests taken from the queue per batch by the main thread.",
				  batch_bounds, NBATCH, batch_buckets,
				  (double) LOAD(batch_sum));

	header(&b, "kvserver_queue_depth", "gauge",
		   "Requests waiting for the worker's main thread.");
	put(&b, "kvserver_queue_depth %d\n", kvq_depth());

	header(&b, "kvserver_watchers", "gauge",
		   "Watches (GET with ?wait=) waiting for a change, each holding an HTTP thread.");
	put(&b, "kvserver_watchers %d\n", kv_watch_count());

	header(&b, "kvserver_database_errors_total", "counter",
		   "Requests that failed with a database error.");
	put(&b, "kvserver_database_errors_total %llu\n",
		(unsigned long long) LOAD(db_errors));

	kvfast_stats(&cs);
	header(&b, "kvserver_cache_hits_total", "counter", "Cache lookups that hit.");
	put(&b, "kvserver_cache_hits_total %llu\n", (unsigned long long) cs.hits);
	header(&b, "kvserver_cache_misses_total", "counter", "Cache lookups that missed.");
	put(&b, "kvserver_cache_misses_total %llu\n", (unsigned long long) cs.misses);
	header(&b, "kvserver_cache_evictions_total", "counter",
		   "Entries evicted to make room.");
	put(&b, "kvserver_cache_evictions_total %llu\n",
		(unsigned long long) cs.evictions);
	header(&b, "kvserver_cache_entries", "gauge", "Entries in the cache.");
	put(&b, "kvserver_cache_entries %llu\n", (unsigned long long) cs.entries);
	header(&b, "kvserver_cache_bytes", "gauge",
		   "Cache memory in use by entries, with their overhead.");
	put(&b, "kvserver_cache_bytes %llu\n", (unsigned long long) cs.used_bytes);
	header(&b, "kvserver_cache_capacity_bytes", "gauge",
		   "Cache memory in all (kvserver.cache_size).");
	put(&b, "kvserver_cache_capacity_bytes %llu\n",
		(unsigned long long) cs.capacity_bytes);

	kv_node_get(&node);
	header(&b, "kvserver_role", "gauge",
		   "1 for the node's replication role: primary, or standby (a hot standby, in recovery).");
	put(&b, "kvserver_role{role=\"primary\"} %d\n", node.standby ? 0 : 1);
	put(&b, "kvserver_role{role=\"standby\"} %d\n", node.standby ? 1 : 0);
	if (node.standby)
	{
		header(&b, "kvserver_replay_lsn_bytes", "gauge",
			   "Standby: WAL position replayed so far, in bytes (pg_last_wal_replay_lsn()).");
		put(&b, "kvserver_replay_lsn_bytes %llu\n",
			(unsigned long long) node.replay_lsn);
		/* unknown until a commit has been replayed since the standby started */
		if (node.last_replayed_xact != 0)
		{
			int64_t		lag_us = kv_pg_timestamp_now() - node.last_replayed_xact;

			header(&b, "kvserver_replay_lag_seconds", "gauge",
				   "Standby: time since the last commit replayed was made on the primary.");
			put(&b, "kvserver_replay_lag_seconds %.6f\n",
				(double) (lag_us > 0 ? lag_us : 0) / 1e6);
		}
	}

	if (b.failed)
	{
		free(b.data);
		return NULL;
	}
	*len = b.len;
	return b.data;
}
