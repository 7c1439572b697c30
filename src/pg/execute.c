/*-------------------------------------------------------------------------
 *
 * execute.c
 *	  Execute one request (or one group of GET misses) against kv_store
 *	  on the worker's main thread, and fill in its reply.
 *
 * Replies cross back to a civetweb thread, which frees them with free():
 * so every reply field is malloc'd here (kv_reply_alloc throws on failure, like
 * palloc), never palloc'd.
 *
 * A GET is answered from the shared cache when it can be; otherwise from
 * the table, and the row then fills the cache.  The fill is guarded by a
 * token taken before the row was read (cache.c): if the key was
 * invalidated in between, the stale row is not cached.
 *
 * A transaction (POST /txn) is txn.c's.
 *
 * Locking: none of its own; the cache takes its partition locks inside
 * kvcache_lookup() and kvcache_fill().
 *
 * IDENTIFICATION
 *	  src/pg/execute.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <stdlib.h>

#include "access/xlog.h"
#include "access/xlogrecovery.h"
#include "utils/timestamp.h"

#include "cache.h"
#include "execute.h"
#include "kvserver.h"
#include "metrics.h"
#include "node_role.h"
#include "request_queue.h"
#include "store.h"
#include "txn.h"

/*
 * Replies are malloc'd (request_queue.h: the civetweb side frees them);
 * out of memory is an ERROR of the request's subtransaction.
 */
void *
kv_reply_alloc(Size size)
{
	void	   *p = malloc(size);

	if (p == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("out of memory")));
	return p;
}

char *
kv_reply_strndup(const char *s, size_t len)
{
	char	   *p = kv_reply_alloc(len + 1);

	memcpy(p, s, len);
	p[len] = '\0';
	return p;
}

/* A transaction (POST /txn) writes when it puts or deletes anything. */
bool
kv_exec_is_write(const KvRequest *req)
{
	return req->op == KV_OP_PUT || req->op == KV_OP_CREATE ||
		req->op == KV_OP_DELETE ||
		(req->op == KV_OP_TXN && kvq_txn_ops_write(req->txn_ops, req->ntxn_ops));
}

/* A GET answered from the cache, if it is there. */
bool
kv_exec_cached_get(KvRequest *req, Oid relid)
{
	KvCachedValue cv;

	if (!req->role_may_hit)
		return false;
	if (!kvcache_lookup(relid, req->key, req->key_len, kv_reply_alloc, &cv))
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
	/* the cache serves only roles that may read every row: so it is filled by them only */
	if (req->role_may_hit)
		kvcache_fill(relid, req->key, req->key_len, token, row->value,
					 row->value_len, row->content_type, row->version,
					 row->expires_at);
	req->reply_value = kv_reply_strndup(row->value, row->value_len);
	req->reply_value_len = row->value_len;
	req->reply_content_type = row->content_type
		? kv_reply_strndup(row->content_type, strlen(row->content_type)) : NULL;
	req->version = row->version;
	req->expires_at = row->expires_at;
	req->cache_hit = false;
	req->status = 200;
}

/*
 * GET misses read with one statement (key = ANY ($1)) instead of one
 * statement and one subtransaction each.
 */
typedef struct GetMany
{
	KvRequest **reqs;
	uint64	   *tokens;
	int			n;
	Oid			relid;
} GetMany;

static void
get_many_row(void *arg, const char *key, size_t key_len, const KvRow *row)
{
	GetMany    *g = (GetMany *) arg;
	int			k;

	/* the same key may be asked for more than once in a batch */
	for (k = 0; k < g->n; k++)
	{
		KvRequest  *req = g->reqs[k];

		if (req->status == 0 && req->key_len == key_len &&
			memcmp(req->key, key, key_len) == 0)
			get_from_row(req, g->relid, g->tokens[k], row);
	}
}

void
kv_exec_get_many(KvRequest **reqs, int n, Oid relid)
{
	GetMany		g;
	const char **keys = palloc(sizeof(char *) * n);
	size_t	   *lens = palloc(sizeof(size_t) * n);
	int			k;

	g.reqs = reqs;
	g.n = n;
	g.relid = relid;
	g.tokens = palloc(sizeof(uint64) * n);
	/* fill tokens are taken before the statement's snapshot */
	for (k = 0; k < n; k++)
	{
		keys[k] = reqs[k]->key;
		lens[k] = reqs[k]->key_len;
		g.tokens[k] = kvcache_fill_token(reqs[k]->key, reqs[k]->key_len);
	}
	store_get_many(keys, lens, n, get_many_row, &g);
	for (k = 0; k < n; k++)
		if (reqs[k]->status == 0)
			kvq_set_error(reqs[k], 404, KV_ERR_NOT_FOUND, "key not found");
}

static void
exec_list(KvRequest *req)
{
	char	  **keys;
	int			n;
	int			i;

	/* one more than asked, to know whether there is a next page */
	n = store_list(req->prefix, req->after, req->limit + 1, &keys);
	if (n > req->limit)
	{
		n = req->limit;
		req->next_key = kv_reply_strndup(keys[n - 1], strlen(keys[n - 1]));
	}
	req->keys = kv_reply_alloc(sizeof(char *) * (n + 1));
	for (i = 0; i < n; i++)
	{
		req->keys[i] = kv_reply_strndup(keys[i], strlen(keys[i]));
		req->nkeys = i + 1;
	}
	req->status = 200;
}

static void
exec_put(KvRequest *req)
{
	int64		version = 0;
	TimestampTz expires_at = 0;
	KvPutResult res;

	if (req->ttl_seconds > 0)
		expires_at = GetCurrentTimestamp() + req->ttl_seconds * USECS_PER_SEC;
	res = store_put(req->key, req->key_len, req->value, req->value_len,
					req->content_type, expires_at,
					req->op == KV_OP_CREATE || req->create_only,
					req->if_match, &version);
	if (res == KV_PUT_EXISTS && req->op == KV_OP_CREATE)
		kvq_set_error(req, 409, KV_ERR_CONFLICT, "key already exists");
	else if (res == KV_PUT_EXISTS)
		kvq_set_error(req, 412, KV_ERR_PRECONDITION_FAILED,
					  "If-None-Match: * but the key exists");
	else if (res == KV_PUT_NO_MATCH)
		kvq_set_error(req, 412, KV_ERR_PRECONDITION_FAILED,
					  "If-Match does not match the key's current version");
	else
	{
		req->status = (res == KV_PUT_CREATED) ? 201 : 200;
		req->version = version;
		req->expires_at = expires_at;
	}
}

/*
 * A PUT that store_put_many() can write: no condition, not create-only.
 * Larger values go one by one, so that a batch's arrays stay small.
 */
bool
kv_exec_is_plain_put(const KvRequest *req)
{
	return req->op == KV_OP_PUT && !req->create_only &&
		req->if_match == KV_MATCH_NONE &&
		req->value_len <= KV_PUT_MANY_MAX_VALUE;
}

typedef struct PutMany
{
	KvRequest **reqs;
	int			n;
} PutMany;

static void
put_many_row(void *arg, const char *key, size_t key_len, int64 version,
			 bool created)
{
	PutMany    *pm = (PutMany *) arg;
	int			k;

	for (k = 0; k < pm->n; k++)
	{
		KvRequest  *req = pm->reqs[k];

		if (req->status == 0 && req->key_len == key_len &&
			memcmp(req->key, key, key_len) == 0)
		{
			req->status = created ? 201 : 200;
			req->version = version;
			return;
		}
	}
}

/*
 * Several plain PUTs of distinct keys (kv_exec_is_plain_put) with one
 * statement, as exec_put would answer each.  An error propagates to the
 * caller's subtransaction, which then runs them one by one.
 */
void
kv_exec_put_many(KvRequest **reqs, int n)
{
	const char **keys = palloc(sizeof(char *) * n);
	size_t	   *key_lens = palloc(sizeof(size_t) * n);
	const char **values = palloc(sizeof(char *) * n);
	size_t	   *value_lens = palloc(sizeof(size_t) * n);
	const char **types = palloc(sizeof(char *) * n);
	TimestampTz *expires_at = palloc(sizeof(TimestampTz) * n);
	TimestampTz now = GetCurrentTimestamp();
	PutMany		pm = {reqs, n};
	int			k;

	for (k = 0; k < n; k++)
	{
		KvRequest  *req = reqs[k];

		keys[k] = req->key;
		key_lens[k] = req->key_len;
		values[k] = req->value;
		value_lens[k] = req->value_len;
		types[k] = req->content_type;
		expires_at[k] = req->ttl_seconds > 0
			? now + req->ttl_seconds * USECS_PER_SEC : 0;
		req->status = 0;
	}
	store_put_many(keys, key_lens, values, value_lens, types, expires_at, n,
				   put_many_row, &pm);
	for (k = 0; k < n; k++)
	{
		if (reqs[k]->status == 0)
			elog(ERROR, "kvserver: the batched upsert returned no row for a key");
		reqs[k]->expires_at = expires_at[k];
	}
}

static void
exec_delete(KvRequest *req)
{
	switch (store_delete(req->key, req->key_len, req->if_match))
	{
		case KV_DELETE_DONE:
			req->status = 204;
			break;
		case KV_DELETE_ABSENT:
			kvq_set_error(req, 404, KV_ERR_NOT_FOUND, "key not found");
			break;
		case KV_DELETE_NO_MATCH:
			kvq_set_error(req, 412, KV_ERR_PRECONDITION_FAILED,
						  "If-Match does not match the key's current version");
			break;
	}
}

/*
 * Run one request; errors propagate to the caller's subtransaction.
 * Returns false when the request failed without an error and its work must
 * be rolled back all the same (a transaction whose check did not hold).
 */
bool
kv_exec_request(KvRequest *req, Oid relid)
{
	switch (req->op)
	{
		case KV_OP_GET:
			if (!kv_exec_cached_get(req, relid))
				kv_exec_get_many(&req, 1, relid);
			break;
		case KV_OP_PUT:
		case KV_OP_CREATE:
			exec_put(req);
			break;
		case KV_OP_DELETE:
			exec_delete(req);
			break;
		case KV_OP_LIST:
			exec_list(req);
			break;
		case KV_OP_HEALTH:
			req->database = kv_reply_strndup(kvserver_database, strlen(kvserver_database));
			req->standby = RecoveryInProgress();
			req->replay_lsn = 0;
			req->replay_lag_us = -1;
			if (req->standby)
			{
				/* as pg_last_wal_replay_lsn(), pg_last_xact_replay_timestamp() */
				TimestampTz last = GetLatestXTime();

				req->replay_lsn = GetXLogReplayRecPtr(NULL);
				if (last != 0)
					req->replay_lag_us = Max(GetCurrentTimestamp() - last, 0);
				kv_node_publish(true, req->replay_lsn, last);
			}
			else
			{
				/*
				 * Publish it too (worker.c does so every turn of its loop):
				 * a client told "primary" may write at once, without its
				 * write being refused by a civetweb thread that has not
				 * heard of a promotion yet.
				 */
				kv_node_publish(false, 0, 0);
			}
			req->status = 200;
			break;
		case KV_OP_AUTH:
			req->status = 200;
			break;
		case KV_OP_TXN:
			return kv_txn_execute(req);
	}
	return true;
}

/* Turn a database error into an HTTP answer. */
void
kv_exec_db_error(KvRequest *req, ErrorData *edata)
{
	char		msg[512];

	kv_metrics_db_error();
	req->db_error = true;
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
			kvq_set_error(req, 503, KV_ERR_UNAVAILABLE, msg);
			return;
		case ERRCODE_INSUFFICIENT_PRIVILEGE:
		case ERRCODE_WITH_CHECK_OPTION_VIOLATION:
			/* GRANTs, and row-level security's WITH CHECK */
			snprintf(msg, sizeof(msg), "permission denied: %s",
					 edata->message);
			kvq_set_error(req, 403, KV_ERR_FORBIDDEN, msg);
			return;
	}
	if (ERRCODE_TO_CATEGORY(edata->sqlerrcode) == ERRCODE_INTEGRITY_CONSTRAINT_VIOLATION ||
		ERRCODE_TO_CATEGORY(edata->sqlerrcode) == ERRCODE_PROGRAM_LIMIT_EXCEEDED ||
		ERRCODE_TO_CATEGORY(edata->sqlerrcode) == ERRCODE_DATA_EXCEPTION)
	{
		snprintf(msg, sizeof(msg), "rejected by the database: %s",
				 edata->message);
		kvq_set_error(req, 400, KV_ERR_BAD_REQUEST, msg);
		return;
	}
	snprintf(msg, sizeof(msg), "database error: %s", edata->message);
	kvq_set_error(req, 500, KV_ERR_INTERNAL, msg);
	ereport(LOG,
			(errmsg("kvserver request failed: %s", edata->message)));
}
