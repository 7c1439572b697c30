/*-------------------------------------------------------------------------
 *
 * http_auth_guard.c
 *	  What keeps credential checks from being abused or piling up: failed
 *	  logins counted per client address (429 at the limit), one check at a
 *	  time per credential, and a global rate of checks.
 *
 * The checks themselves run on the worker's main thread (src/pg/auth.c);
 * everything here runs on civetweb threads, so an address that is refused
 * costs the main thread nothing, and other clients are not slowed.
 *
 * Locking: failure_lock protects the failure table, pending_lock the
 * checks in progress (with pending_cv to wait for one), check_lock the
 * token bucket; the settings are atomics published by the main thread.
 *
 * civetweb side: runs on civetweb threads, no PostgreSQL.
 *
 * IDENTIFICATION
 *	  src/civet/http_auth_guard.c
 *
 *-------------------------------------------------------------------------
 */
#include <errno.h>
#include <openssl/crypto.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "http_auth.h"

#ifdef PG_MAJORVERSION
#error "http_auth_guard.c runs on civetweb threads: no PostgreSQL headers"
#endif

/*
 * Credentials the cache does not know are checked on the worker's main
 * thread (a SCRAM check is about a millisecond of its time).  However many
 * clients present new credentials, at most CHECKS_PER_SEC checks a second
 * reach it: a request over the rate waits its turn on its own thread, up
 * to CHECK_MAX_WAIT_MS, and is refused with 429 beyond that.  Requests
 * whose credentials are cached are never held back.
 */
#define CHECKS_PER_SEC		100
#define CHECK_MAX_WAIT_MS	2000

/* Failure table: FAIL_SLOTS addresses, found within FAIL_PROBES slots. */
#define FAIL_SLOTS		1024
#define FAIL_PROBES		8

typedef struct FailureCount
{
	char		addr[48];
	int64_t		window_start_ms;
	int			failures;		/* including attempts in flight */
	bool		inflight[4];	/* INFLIGHT_KEYS */
	unsigned char inflight_key[4][KV_AUTH_KEY_LEN];
} FailureCount;

static pthread_mutex_t failure_lock = PTHREAD_MUTEX_INITIALIZER;
static FailureCount failures[FAIL_SLOTS];

static pthread_mutex_t check_lock = PTHREAD_MUTEX_INITIALIZER;
static double check_tokens = CHECKS_PER_SEC;
static int64_t check_refilled_ms = 0;

static int	set_max_failures = 10;
static int	set_failure_window_s = 60;

static uint64_t addr_key;
static pthread_once_t addr_key_once = PTHREAD_ONCE_INIT;

void
kv_auth_guard_configure(int max_failures, int failure_window_s)
{
	__atomic_store_n(&set_max_failures, max_failures, __ATOMIC_RELAXED);
	__atomic_store_n(&set_failure_window_s, failure_window_s, __ATOMIC_RELAXED);
}

static void
init_addr_key(void)
{
	if (getrandom(&addr_key, sizeof(addr_key), 0) != sizeof(addr_key))
		addr_key = (uint64_t) time(NULL) * UINT64_C(0x9E3779B97F4A7C15);
}

/*---- failed logins ----*/

/*
 * An attempt with credentials the cache does not know is charged to its
 * address as a failure before it is checked, and refunded if it succeeds:
 * so attempts in flight count, and an address cannot get past the limit by
 * sending many guesses at once.  The same credentials sent on several
 * connections at once (a client's connection pool starting) are charged
 * once: only the first is "in flight", the others learn their verdict and
 * count as failures only if it is one.
 */
#define INFLIGHT_KEYS	4

static uint64_t
addr_hash(const char *addr)
{
	uint64_t	h;
	const char *p;

	/* keyed, so nobody can pick addresses that collide on purpose */
	pthread_once(&addr_key_once, init_addr_key);
	h = addr_key;
	h ^= UINT64_C(14695981039346656037);
	for (p = addr; *p; p++)
		h = (h ^ (unsigned char) *p) * UINT64_C(1099511628211);
	return h;
}

/*
 * The slot of 'addr', made if 'create'.  When every slot it may use is
 * taken by a live window, the oldest one is given up: losing another
 * address's count is better than never counting this one.  Caller holds
 * failure_lock.
 */
static FailureCount *
do_failure_slot(const char *addr, int64_t now, int64_t window_ms, bool create)
{
	uint64_t	h = addr_hash(addr);
	int			i;
	FailureCount *victim = NULL;

	for (i = 0; i < FAIL_PROBES; i++)
	{
		FailureCount *f = &failures[(h + i) % FAIL_SLOTS];

		if (strcmp(f->addr, addr) == 0)
			return f;
		if (f->addr[0] == '\0' || now - f->window_start_ms >= window_ms)
		{
			if (victim == NULL || victim->addr[0] != '\0')
				victim = f;
		}
		else if (victim == NULL ||
				 (victim->addr[0] != '\0' && now - victim->window_start_ms < window_ms &&
				  f->window_start_ms < victim->window_start_ms))
			victim = f;
	}
	if (!create)
		return NULL;
	memset(victim, 0, sizeof(*victim));
	strncpy(victim->addr, addr, sizeof(victim->addr) - 1);
	victim->window_start_ms = now;
	return victim;
}

/* Start a new window when the old one is over.  Caller holds failure_lock. */
static void
do_roll_window(FailureCount *f, int64_t now, int64_t window_ms)
{
	if (now - f->window_start_ms >= window_ms)
	{
		f->window_start_ms = now;
		f->failures = 0;
	}
}

static int64_t
window_ms(void)
{
	return (int64_t) __atomic_load_n(&set_failure_window_s, __ATOMIC_RELAXED) * 1000;
}

/*
 * May this attempt go on?  Returns 0, having charged it (id->charged) when
 * its credentials are not in flight already; or the seconds the address
 * must wait.
 */
int
kv_auth_charge_attempt(const char *addr, KvIdentity *id)
{
	int64_t		now = kvq_now_ms();
	int64_t		window = window_ms();
	int			max = __atomic_load_n(&set_max_failures, __ATOMIC_RELAXED);
	FailureCount *f;
	int			wait = 0;
	int			i;
	int			free_key = -1;

	if (max <= 0)
		return 0;
	pthread_mutex_lock(&failure_lock);
	f = do_failure_slot(addr, now, window, true);
	do_roll_window(f, now, window);
	if (f->failures >= max)
		wait = (int) ((f->window_start_ms + window - now + 999) / 1000);
	else
	{
		for (i = 0; i < INFLIGHT_KEYS; i++)
		{
			if (f->inflight[i] &&
				memcmp(f->inflight_key[i], id->key, KV_AUTH_KEY_LEN) == 0)
				break;
			if (!f->inflight[i] && free_key < 0)
				free_key = i;
		}
		if (i == INFLIGHT_KEYS)
		{
			/* not in flight yet: charge it */
			f->failures++;
			id->charged = true;
			if (free_key >= 0)
			{
				memcpy(f->inflight_key[free_key], id->key, KV_AUTH_KEY_LEN);
				f->inflight[free_key] = true;
			}
		}
	}
	pthread_mutex_unlock(&failure_lock);
	return wait;
}

/* Seconds this address must wait before it may try again, or 0. */
int
kv_auth_blocked_for(const char *addr)
{
	int64_t		now = kvq_now_ms();
	int64_t		window = window_ms();
	int			max = __atomic_load_n(&set_max_failures, __ATOMIC_RELAXED);
	FailureCount *f;
	int			wait = 0;

	if (max <= 0)
		return 0;
	pthread_mutex_lock(&failure_lock);
	f = do_failure_slot(addr, now, window, false);
	if (f != NULL && now - f->window_start_ms < window && f->failures >= max)
		wait = (int) ((f->window_start_ms + window - now + 999) / 1000);
	pthread_mutex_unlock(&failure_lock);
	return wait;
}

/*
 * Settle an attempt: 'failed' says how it went; unknown (the main thread
 * gave no verdict) counts as not failed.
 */
void
kv_auth_settle_attempt(const char *addr, KvIdentity *id, bool failed)
{
	int64_t		now = kvq_now_ms();
	int64_t		window = window_ms();
	FailureCount *f;
	int			i;

	if (__atomic_load_n(&set_max_failures, __ATOMIC_RELAXED) <= 0)
		return;
	pthread_mutex_lock(&failure_lock);
	f = do_failure_slot(addr, now, window, failed);
	if (f != NULL)
	{
		do_roll_window(f, now, window);
		if (id->charged)
		{
			for (i = 0; i < INFLIGHT_KEYS; i++)
				if (f->inflight[i] &&
					memcmp(f->inflight_key[i], id->key, KV_AUTH_KEY_LEN) == 0)
					f->inflight[i] = false;
			if (!failed && f->failures > 0)
				f->failures--;
		}
		else if (failed)
			f->failures++;
	}
	id->charged = false;
	pthread_mutex_unlock(&failure_lock);
}

/*---- one check per credential at a time ----*/

/*
 * When cached credentials expire, or a catalog change drops them all, every
 * connection of a client would have the same credentials checked at once,
 * one after another on the main thread.  Instead the first asker checks
 * them (it is the "leader", id->leader) and the others wait for its verdict
 * on pending_cv, up to PENDING_WAIT_MS, then look in the cache again.
 */
#define PENDING_SLOTS		64
#define PENDING_WAIT_MS		5000

typedef struct PendingCheck
{
	bool		used;
	unsigned char key[KV_AUTH_KEY_LEN];
} PendingCheck;

static pthread_mutex_t pending_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t pending_cv = PTHREAD_COND_INITIALIZER;
static PendingCheck pending[PENDING_SLOTS];

/* Caller holds pending_lock. */
static PendingCheck *
do_find_pending(const unsigned char *key)
{
	int			i;

	for (i = 0; i < PENDING_SLOTS; i++)
		if (pending[i].used &&
			CRYPTO_memcmp(pending[i].key, key, KV_AUTH_KEY_LEN) == 0)
			return &pending[i];
	return NULL;
}

/*
 * Become the leader for id's credentials, or wait while another thread is.
 * Returns true when it waited (the caller looks in the cache again).
 */
bool
kv_auth_await_check(KvIdentity *id)
{
	struct timespec deadline;
	bool		waited = false;
	int			i;

	clock_gettime(CLOCK_REALTIME, &deadline);
	deadline.tv_sec += PENDING_WAIT_MS / 1000;
	pthread_mutex_lock(&pending_lock);
	while (do_find_pending(id->key) != NULL)
	{
		waited = true;
		if (pthread_cond_timedwait(&pending_cv, &pending_lock, &deadline) == ETIMEDOUT)
			break;
	}
	if (!waited)
	{
		for (i = 0; i < PENDING_SLOTS; i++)
		{
			if (!pending[i].used)
			{
				memcpy(pending[i].key, id->key, KV_AUTH_KEY_LEN);
				pending[i].used = true;
				id->leader = true;
				break;
			}
		}
	}
	pthread_mutex_unlock(&pending_lock);
	return waited;
}

/* The leader's check is over (its verdict, if any, is in the cache). */
void
kv_auth_end_check(KvIdentity *id)
{
	PendingCheck *p;

	pthread_mutex_lock(&pending_lock);
	if ((p = do_find_pending(id->key)) != NULL)
		p->used = false;
	pthread_cond_broadcast(&pending_cv);
	pthread_mutex_unlock(&pending_lock);
	id->leader = false;
}

/*---- the rate of checks ----*/

/*
 * Take a turn to have credentials checked: a token bucket of
 * CHECKS_PER_SEC, one second deep.  Sleeps until the turn comes; false
 * when it would be more than CHECK_MAX_WAIT_MS away.
 */
bool
kv_auth_take_check_turn(void)
{
	int64_t		now = kvq_now_ms();
	int64_t		wait_ms;

	pthread_mutex_lock(&check_lock);
	if (check_refilled_ms == 0)
		check_refilled_ms = now;
	check_tokens += (double) (now - check_refilled_ms) * CHECKS_PER_SEC / 1000.0;
	if (check_tokens > CHECKS_PER_SEC)
		check_tokens = CHECKS_PER_SEC;
	check_refilled_ms = now;
	check_tokens -= 1;
	wait_ms = check_tokens >= 0 ? 0 :
		(int64_t) (-check_tokens * 1000.0 / CHECKS_PER_SEC) + 1;
	if (wait_ms > CHECK_MAX_WAIT_MS)
		check_tokens += 1;		/* not taken after all */
	pthread_mutex_unlock(&check_lock);
	if (wait_ms > CHECK_MAX_WAIT_MS)
		return false;
	if (wait_ms > 0)
	{
		struct timespec ts = {wait_ms / 1000, (wait_ms % 1000) * 1000000L};

		while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
			;
	}
	return true;
}
