/*-------------------------------------------------------------------------
 *
 * node_role.c
 *	  The node's replication role (primary or hot standby), its replay
 *	  position, and kvserver.primary_url, as published by the worker's
 *	  main thread for civetweb threads.
 *
 * Only the main thread can ask PostgreSQL (RecoveryInProgress(),
 * GetXLogReplayRecPtr(), GetLatestXTime()), and it does so at every turn
 * of its loop, which waits at most a second; civetweb threads read what
 * it published last.  That is what lets a write arriving at a standby be
 * answered on its civetweb thread (503 read_only, or 307 to the primary)
 * without ever reaching the main thread, and /metrics show the role and
 * the replay figures without a database call.
 *
 * After a promotion the role reads "standby" until the main thread's next
 * turn, so for up to a second writes are still refused here; the main
 * thread refuses too any write that reaches it while in recovery, so a
 * role seen late in either direction never lets a write near a read-only
 * transaction.
 *
 * The role and the replay figures are single words with relaxed atomics
 * (a reader that sees one a moment old is harmless).  The primary URL is
 * a string, changed only on reload: a mutex guards it, and readers copy it
 * out.
 *
 * civetweb side: plain C, no PostgreSQL.
 *
 * IDENTIFICATION
 *	  src/civet/node_role.c
 *
 *-------------------------------------------------------------------------
 */
#include "node_role.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "kv_api.h"

#ifdef PG_MAJORVERSION
#error "node_role.c runs on civetweb threads: no PostgreSQL headers"
#endif

static int	node_standby = 0;
static uint64_t node_replay_lsn = 0;
static int64_t node_last_replayed_xact = 0;

static pthread_mutex_t primary_url_lock = PTHREAD_MUTEX_INITIALIZER;
static char primary_url[KV_MAX_PRIMARY_URL_LEN + 1];

/*---- main thread ----*/

void
kv_node_publish(bool standby, uint64_t replay_lsn, int64_t last_replayed_xact)
{
	__atomic_store_n(&node_replay_lsn, replay_lsn, __ATOMIC_RELAXED);
	__atomic_store_n(&node_last_replayed_xact, last_replayed_xact,
					 __ATOMIC_RELAXED);
	__atomic_store_n(&node_standby, standby ? 1 : 0, __ATOMIC_RELAXED);
}

/*
 * kvserver.primary_url, already checked by its GUC check hook; checked
 * once more here, since it becomes a header.  Trailing '/'s are dropped:
 * the request's path, which starts with one, is appended.
 */
void
kv_node_set_primary_url(const char *url)
{
	size_t		len = 0;

	if (url != NULL && kv_primary_url_problem(url) == NULL)
	{
		len = strlen(url);
		while (len > 0 && url[len - 1] == '/')
			len--;
	}
	pthread_mutex_lock(&primary_url_lock);
	if (len > 0)
		memcpy(primary_url, url, len);
	primary_url[len] = '\0';
	pthread_mutex_unlock(&primary_url_lock);
}

/*---- civetweb threads ----*/

bool
kv_node_is_standby(void)
{
	return __atomic_load_n(&node_standby, __ATOMIC_RELAXED) != 0;
}

void
kv_node_get(KvNodeState *state)
{
	state->standby = kv_node_is_standby();
	state->replay_lsn = __atomic_load_n(&node_replay_lsn, __ATOMIC_RELAXED);
	state->last_replayed_xact = __atomic_load_n(&node_last_replayed_xact,
												__ATOMIC_RELAXED);
}

/* kvserver.primary_url into buf; false when it is not set. */
bool
kv_node_primary_url(char *buf, size_t buflen)
{
	size_t		len;

	if (buflen == 0)
		return false;
	pthread_mutex_lock(&primary_url_lock);
	len = strlen(primary_url);
	if (len >= buflen)
		len = 0;
	memcpy(buf, primary_url, len);
	buf[len] = '\0';
	pthread_mutex_unlock(&primary_url_lock);
	return len > 0;
}

/* A request target part that may be echoed in a header: printable, no space. */
static bool
echoable(const char *s)
{
	const unsigned char *p = (const unsigned char *) s;

	for (; *p; p++)
		if (*p <= 0x20 || *p > 0x7E)
			return false;
	return true;
}

/*
 * The Location for a write redirected to the primary: kvserver.primary_url,
 * then the path exactly as received (still percent-encoded), then '?' and
 * the query when there was one.  False, with nothing to send, when no
 * primary URL is set, when the path or query holds a byte that cannot go
 * into a header as is, or when the result would be longer than
 * KV_MAX_LOCATION_LEN (or buflen).
 */
bool
kv_node_location(const char *path, const char *query, char *buf,
				 size_t buflen)
{
	char		url[KV_MAX_PRIMARY_URL_LEN + 1];
	size_t		max = buflen < KV_MAX_LOCATION_LEN + 1 ? buflen : KV_MAX_LOCATION_LEN + 1;
	int			n;

	if (path == NULL || path[0] != '/' || !echoable(path) ||
		(query != NULL && !echoable(query)))
		return false;
	if (strnlen(path, max) >= max ||
		(query != NULL && strnlen(query, max) >= max))
		return false;
	if (!kv_node_primary_url(url, sizeof(url)))
		return false;
	n = snprintf(buf, max, "%s%s%s%s", url, path, query ? "?" : "",
				 query ? query : "");
	return n > 0 && (size_t) n < max;
}
