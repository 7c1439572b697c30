/*-------------------------------------------------------------------------
 *
 * watch_wait.c
 *	  Park watching civetweb threads until the change index moves, their
 *	  deadline passes, or the HTTP server stops; and bound how many may be
 *	  parked (kvserver.max_watchers).
 *
 * civetweb threads may not wait on a latch, and committing backends cannot
 * signal a pthread condition variable of the worker's process.  So one
 * thread of ours, the ticker, looks at the shared change index (an atomic
 * read, watch_ring.c) every TICK_NS while anyone watches, and broadcasts
 * wake_cv when it moved; with no watcher it sleeps on tick_cv and costs
 * nothing.  A commit is thus seen within a millisecond, plus the time the
 * woken threads take to look at the ring and read their key again.  The
 * measured cost and latency are in the README (Watches).
 *
 * No lost wakeup: a watcher compares the index with what it has seen while
 * holding watch_lock, before it sleeps; the ticker broadcasts holding the
 * lock, after it saw the index move.  Whichever comes first, the watcher
 * either does not sleep or is woken.
 *
 * Shutdown: kv_watch_stop() (from kv_http_stop(), on the main thread, before
 * mg_stop()) sets 'stopping' and wakes every watcher, which answers at
 * once; new watches are refused with 503 until kv_watch_start() runs again
 * with the next HTTP server.
 *
 * Locking: watch_lock guards watchers, stopping and the ticker's state.
 * The limits are relaxed atomics written by the main thread.
 *
 * civetweb side: plain C and pthreads, no PostgreSQL.
 *
 * IDENTIFICATION
 *	  src/civet/watch_wait.c
 *
 *-------------------------------------------------------------------------
 */
#include "watch_wait.h"

#include <pthread.h>
#include <stdatomic.h>
#include <time.h>

#include "kv_api.h"
#include "request_queue.h"
#include "watch_ring.h"

#ifdef PG_MAJORVERSION
#error "watch_wait.c runs on civetweb threads: no PostgreSQL headers"
#endif

/* How often the ticker looks at the index while someone watches. */
#define TICK_NS		(1000 * 1000)

static pthread_mutex_t watch_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t wake_cv;	/* watchers sleep here (CLOCK_MONOTONIC) */
static pthread_cond_t tick_cv;	/* the ticker sleeps here while nobody watches */
static bool cvs_ready = false;
static int	watchers = 0;
static bool stopping = true;	/* until kv_watch_start() */
static bool ticker_running = false;
static pthread_t ticker;

static atomic_int limit_watchers = KV_DEFAULT_HTTP_THREADS / 2;
static atomic_int limit_wait_ms = KV_DEFAULT_MAX_WAIT_S * 1000;

/* time this thread's current request spent parked, for /metrics */
static __thread int64_t waited_ns = 0;

static void *
ticker_main(void *arg)
{
	struct timespec pause = {0, TICK_NS};
	uint64_t	last = kvwr_index();

	(void) arg;
	pthread_mutex_lock(&watch_lock);
	while (!stopping)
	{
		uint64_t	now;

		if (watchers == 0)
		{
			pthread_cond_wait(&tick_cv, &watch_lock);
			last = kvwr_index();
			continue;
		}
		pthread_mutex_unlock(&watch_lock);
		nanosleep(&pause, NULL);
		now = kvwr_index();
		pthread_mutex_lock(&watch_lock);
		if (now != last)
		{
			last = now;
			pthread_cond_broadcast(&wake_cv);
		}
	}
	pthread_mutex_unlock(&watch_lock);
	return NULL;
}

/*
 * Main thread, with every signal blocked (kv_http_start), so the ticker
 * inherits a full mask as civetweb's threads do.  False if the ticker
 * could not be created.
 */
bool
kv_watch_start(void)
{
	pthread_condattr_t attr;

	if (!cvs_ready)
	{
		pthread_condattr_init(&attr);
		pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
		pthread_cond_init(&wake_cv, &attr);
		pthread_cond_init(&tick_cv, &attr);
		pthread_condattr_destroy(&attr);
		cvs_ready = true;
	}
	if (ticker_running)
		return true;
	pthread_mutex_lock(&watch_lock);
	stopping = false;
	pthread_mutex_unlock(&watch_lock);
	if (pthread_create(&ticker, NULL, ticker_main, NULL) != 0)
	{
		pthread_mutex_lock(&watch_lock);
		stopping = true;
		pthread_mutex_unlock(&watch_lock);
		return false;
	}
	ticker_running = true;
	return true;
}

/* Main thread: wake every watcher to answer now, refuse new ones. */
void
kv_watch_stop(void)
{
	if (!cvs_ready)
		return;
	pthread_mutex_lock(&watch_lock);
	stopping = true;
	pthread_cond_broadcast(&wake_cv);
	pthread_cond_broadcast(&tick_cv);
	pthread_mutex_unlock(&watch_lock);
	if (ticker_running)
	{
		pthread_join(ticker, NULL);
		ticker_running = false;
	}
}

/* Main thread: kvserver.max_watchers (already resolved) and max_wait. */
void
kv_watch_set_limits(int max_watchers, int max_wait_ms)
{
	atomic_store_explicit(&limit_watchers, max_watchers, memory_order_relaxed);
	atomic_store_explicit(&limit_wait_ms, max_wait_ms, memory_order_relaxed);
}

int
kv_watch_max_wait_ms(void)
{
	return atomic_load_explicit(&limit_wait_ms, memory_order_relaxed);
}

/* Become a watcher, if there is room. */
KvWatchEnter
kv_watch_enter(void)
{
	KvWatchEnter r;

	pthread_mutex_lock(&watch_lock);
	if (stopping)
		r = KV_ENTER_STOPPING;
	else if (watchers >= atomic_load_explicit(&limit_watchers,
											  memory_order_relaxed))
		r = KV_ENTER_FULL;
	else
	{
		r = KV_ENTER_OK;
		if (watchers++ == 0)
			pthread_cond_signal(&tick_cv);
	}
	pthread_mutex_unlock(&watch_lock);
	return r;
}

void
kv_watch_leave(void)
{
	pthread_mutex_lock(&watch_lock);
	watchers--;
	pthread_mutex_unlock(&watch_lock);
}

int
kv_watch_count(void)
{
	int			n;

	pthread_mutex_lock(&watch_lock);
	n = watchers;
	pthread_mutex_unlock(&watch_lock);
	return n;
}

/*
 * A watcher (between kv_watch_enter and kv_watch_leave) sleeps until the
 * change index differs from 'seen', CLOCK_MONOTONIC 'deadline_ms' passes,
 * or the server stops.
 */
KvWatchWake
kv_watch_sleep(uint64_t seen, int64_t deadline_ms)
{
	struct timespec deadline;
	struct timespec t0;
	struct timespec t1;
	KvWatchWake r;

	deadline.tv_sec = deadline_ms / 1000;
	deadline.tv_nsec = (long) (deadline_ms % 1000) * 1000000L;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	pthread_mutex_lock(&watch_lock);
	for (;;)
	{
		if (stopping)
		{
			r = KV_WAKE_STOP;
			break;
		}
		if (kvwr_index() != seen)
		{
			r = KV_WAKE_INDEX;
			break;
		}
		if (kvq_now_ms() >= deadline_ms)
		{
			r = KV_WAKE_DEADLINE;
			break;
		}
		pthread_cond_timedwait(&wake_cv, &watch_lock, &deadline);
	}
	pthread_mutex_unlock(&watch_lock);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	waited_ns += (int64_t) (t1.tv_sec - t0.tv_sec) * 1000000000 +
		(t1.tv_nsec - t0.tv_nsec);
	return r;
}

/*
 * Time the current request of this thread spent in kv_watch_sleep(), and
 * start counting again: the request-duration histogram leaves it out, so
 * a five-minute watch does not look like a slow request.
 */
int64_t
kv_watch_take_waited_ns(void)
{
	int64_t		ns = waited_ns;

	waited_ns = 0;
	return ns;
}
