/*-------------------------------------------------------------------------
 *
 * http_watch.c
 *	  Watches: a GET of a key that waits for it to change
 *	  (GET /kv/{key}?wait= with If-None-Match), and a listing that waits
 *	  for a change under its prefix (GET /kv/?prefix=&wait=&index=).
 *
 * A watch never trusts a wakeup: the ring (watch_ring.c) only says that
 * something may have changed, and the answer always comes from an ordinary
 * read, the fast path or a request to the main thread, made after the
 * change index was read.  A commit moves the index only after it became
 * visible (src/pg/watch.c), so a read that follows the index sees it; a
 * rollback moves nothing.  Hence no answer before the commit, none for a
 * rolled-back write, and no change slept through.
 *
 * Each waiting watch holds its civetweb thread; kv_watch_enter() bounds
 * them by kvserver.max_watchers, beyond which a watch gets 429 while
 * ordinary requests keep the remaining threads.  A watch takes its place
 * only once it must wait: one whose answer is ready costs nothing.
 *
 * civetweb side: runs on civetweb threads, no PostgreSQL.
 *
 * IDENTIFICATION
 *	  src/civet/http_watch.c
 *
 *-------------------------------------------------------------------------
 */
#include "http_watch.h"

#include <stdlib.h>
#include <string.h>

#include "cache_fastpath.h"
#include "http_auth.h"
#include "http_reply.h"
#include "kv_api.h"
#include "request_queue.h"
#include "watch_ring.h"
#include "watch_wait.h"

#ifdef PG_MAJORVERSION
#error "http_watch.c runs on civetweb threads: no PostgreSQL headers"
#endif

/* One look at the key: a cache hit read here, or the main thread's answer. */
typedef struct KeyState
{
	KvRequest  *req;			/* answered by the main thread; NULL: fv */
	KvFastValue fv;
	bool		found;
	int64_t		version;
	int64_t		expires_at;
} KeyState;

static int64_t
watch_deadline(int64_t wait_ms)
{
	int64_t		max = kv_watch_max_wait_ms();

	return kvq_now_ms() + (wait_ms < max ? wait_ms : max);
}

static int
send_stopping(const KvHttpCtx *ctx)
{
	return kv_send_error(ctx, 503, KV_ERR_UNAVAILABLE,
						 "kvserver HTTP server is stopping", NULL, false);
}

/*
 * Become a watcher.  Returns 0, or the status of the refusal it answered
 * (429 when kvserver.max_watchers wait already).
 */
static int
enter_or_refuse(const KvHttpCtx *ctx)
{
	switch (kv_watch_enter())
	{
		case KV_ENTER_OK:
			return 0;
		case KV_ENTER_FULL:
			return kv_send_error_retry(ctx, 429, KV_ERR_TOO_MANY_REQUESTS,
									   "too many watches are waiting (kvserver.max_watchers): try again later",
									   1);
		case KV_ENTER_STOPPING:
			break;
	}
	return send_stopping(ctx);
}

static void
key_state_free(KeyState *ks)
{
	kvq_request_free(ks->req);
	free(ks->fv.value);
	free(ks->fv.content_type);
	memset(ks, 0, sizeof(*ks));
}

/*
 * Read the key as a GET would.  False when the read failed and its error
 * was answered (*status says which); then nothing is left to free.
 */
static bool
read_key(const KvHttpCtx *ctx, const char *key, size_t key_len,
		 int64_t if_none_match, KeyState *ks, int *status)
{
	KvRequest  *req;

	memset(ks, 0, sizeof(*ks));
	if (ctx->id != NULL && ctx->id->verified && ctx->id->may_hit &&
		kvfast_get(key, key_len, &ks->fv))
	{
		ks->found = true;
		ks->version = ks->fv.version;
		ks->expires_at = ks->fv.expires_at;
		return true;
	}
	if ((req = kvq_request_new(KV_OP_GET)) == NULL ||
		(req->key = malloc(key_len + 1)) == NULL)
	{
		kvq_request_free(req);
		*status = kv_send_error(ctx, 500, KV_ERR_INTERNAL, "out of memory",
								NULL, true);
		return false;
	}
	memcpy(req->key, key, key_len);
	req->key[key_len] = '\0';
	req->key_len = key_len;
	req->if_none_match = if_none_match;
	if (!kv_submit(ctx, req, status))
		return false;
	if (req->error != KV_ERR_NONE && req->error != KV_ERR_NOT_FOUND)
	{
		*status = kv_send_request_reply(ctx, req);
		kvq_request_free(req);
		return false;
	}
	ks->req = req;
	ks->found = (req->error == KV_ERR_NONE);
	ks->version = req->version;
	ks->expires_at = req->expires_at;
	return true;
}

static int
send_key_state(const KvHttpCtx *ctx, const KeyState *ks, int64_t if_none_match)
{
	if (ks->req != NULL)
		return kv_send_request_reply(ctx, ks->req);
	return kv_send_value(ctx, ks->fv.value, ks->fv.value_len,
						 ks->fv.content_type, ks->version, ks->expires_at,
						 true, if_none_match);
}

/*
 * When the key expires, in CLOCK_MONOTONIC milliseconds: an expiry is a
 * change of state that no commit announces.  INT64_MAX: never.
 */
static int64_t
expiry_ms(const KeyState *ks)
{
	if (!ks->found || ks->expires_at == 0)
		return INT64_MAX;
	return kvq_now_ms() + (ks->expires_at - kv_pg_timestamp_now()) / 1000 + 1;
}

/*
 * GET or HEAD of 'key' with If-None-Match and ?wait=: answer when its state
 * differs from the version named (200 with the new value, or 404), or 304
 * at the deadline.  Waiting is sleeping until the index moves, then asking
 * the ring whether the move may concern the key; only then is the key
 * read again.
 */
int
kv_watch_key(const KvHttpCtx *ctx, const char *key, size_t key_len,
			 int64_t if_none_match, int64_t wait_ms)
{
	int64_t		deadline = watch_deadline(wait_ms);
	KvWatchTarget target;
	bool		entered = false;
	int			status = 0;

	kvwr_target(&target, key, key_len, false);
	for (;;)
	{
		uint64_t	seen = kvwr_index();	/* before the read: see above */
		int64_t		wake_at;
		KeyState	ks;
		KvWatchWake w;

		if (!read_key(ctx, key, key_len, if_none_match, &ks, &status))
			break;
		if (!ks.found ||
			(if_none_match != KV_MATCH_ANY && ks.version != if_none_match) ||
			kvq_now_ms() >= deadline)
		{
			status = send_key_state(ctx, &ks, if_none_match);
			key_state_free(&ks);
			break;
		}
		wake_at = expiry_ms(&ks);
		if (wake_at > deadline)
			wake_at = deadline;
		key_state_free(&ks);

		if (!entered && (status = enter_or_refuse(ctx)) != 0)
			break;
		entered = true;
		/* sleep until a change may concern the key, or time is up */
		do
			w = kv_watch_sleep(seen, wake_at);
		while (w == KV_WAKE_INDEX &&
			   kvwr_scan(&target, seen, &seen) == KV_WATCH_NONE);
		if (w == KV_WAKE_STOP)
		{
			status = send_stopping(ctx);
			break;
		}
		/* look again: it changed, expired, or the deadline gets its 304 */
	}
	if (entered)
		kv_watch_leave();
	return status;
}

/* A new listing request like 'req' (prefix, after, limit); NULL: no memory. */
static KvRequest *
copy_list_request(const KvRequest *req)
{
	KvRequest  *copy = kvq_request_new(KV_OP_LIST);

	if (copy == NULL)
		return NULL;
	copy->limit = req->limit;
	copy->prefix = strdup(req->prefix);
	copy->after = req->after ? strdup(req->after) : NULL;
	if (copy->prefix == NULL || (req->after && copy->after == NULL))
	{
		kvq_request_free(copy);
		return NULL;
	}
	return copy;
}

/*
 * Submit a listing and answer it, with the change index read just before:
 * every change up to that index is in the page, and any later one will be
 * reported to a watch from it.  Takes ownership of 'req'.
 */
int
kv_list_now(const KvHttpCtx *ctx, KvRequest *req)
{
	req->change_index = kvwr_index();
	return kv_run_request(ctx, req);
}

/*
 * GET /kv/?prefix=P&wait=D&index=N: the listing as soon as some key under P
 * changed after index N (or the ring cannot tell: N too old, from an
 * earlier run, a cache reset), else at the deadline the same listing with
 * the index the client sent.  The first listing is made at once: it
 * checks who asks (nobody learns of changes they may not list) and is the
 * answer if nothing changes.  Takes ownership of 'req'.
 */
int
kv_watch_list(const KvHttpCtx *ctx, KvRequest *req, int64_t wait_ms,
			  uint64_t base)
{
	int64_t		deadline = watch_deadline(wait_ms);
	KvWatchTarget target;
	KvRequest  *again;
	uint64_t	seen = base;
	KvWatchWake w;
	bool		changed;
	int			status;

	if ((again = copy_list_request(req)) == NULL)
	{
		kvq_request_free(req);
		return kv_send_error(ctx, 500, KV_ERR_INTERNAL, "out of memory",
							 NULL, true);
	}
	req->change_index = kvwr_index();
	if (!kv_submit(ctx, req, &status))
	{
		kvq_request_free(again);
		return status;
	}
	kvwr_target(&target, again->prefix, strlen(again->prefix), true);
	changed = (req->error == KV_ERR_NONE &&
			   kvwr_scan(&target, base, &seen) == KV_WATCH_CHANGED);
	if (req->error != KV_ERR_NONE || changed || kvq_now_ms() >= deadline)
	{
		/*
		 * The client's own index means "nothing changed": if the change
		 * was published while the first listing ran, list once more, with
		 * an index that has moved past it.
		 */
		if (changed && req->change_index == base)
		{
			kvq_request_free(req);
			return kv_list_now(ctx, again);
		}
		/* no wait left (wait=0), and nothing changed: the client's index */
		if (req->error == KV_ERR_NONE && !changed)
			req->change_index = base;
		kvq_request_free(again);
		status = kv_send_request_reply(ctx, req);
		kvq_request_free(req);
		return status;
	}

	if ((status = enter_or_refuse(ctx)) != 0)
	{
		kvq_request_free(again);
		kvq_request_free(req);
		return status;
	}
	do
		w = kv_watch_sleep(seen, deadline);
	while (w == KV_WAKE_INDEX &&
		   kvwr_scan(&target, seen, &seen) == KV_WATCH_NONE);
	kv_watch_leave();

	if (w == KV_WAKE_STOP)
		status = send_stopping(ctx);
	else if (w == KV_WAKE_DEADLINE)
	{
		/*
		 * Nothing under the prefix changed: the same page and the same
		 * index, so a new index always means a change (or that the server
		 * could not tell).
		 */
		req->change_index = base;
		status = kv_send_request_reply(ctx, req);
	}
	else
	{
		status = kv_list_now(ctx, again);
		again = NULL;
	}
	kvq_request_free(again);
	kvq_request_free(req);
	return status;
}
