/*-------------------------------------------------------------------------
 *
 * txn.c
 *	  Run a transaction of POST /txn (KV_OP_TXN): its checks, gets, puts
 *	  and deletes, in order, all or nothing.
 *
 * batch.c runs it like any other request: in its own subtransaction, as
 * the request's role, inside the batch's transaction.  kv_txn_execute()
 * returns false when an operation failed (a check that does not hold), and
 * batch.c then rolls the subtransaction back; an error thrown by a
 * statement rolls it back through the subtransaction's error handler.
 * Either way nothing of the transaction stays, and req->txn_failed_op
 * names the operation that failed (-1: none in particular, such as the
 * locking statement).  Its writes commit with the batch's one commit.
 *
 * Readers see all of it or none: every key it wrote is removed from the
 * cache (or, write-through, replaced) by invalidate.c's commit callback,
 * while the stripe of each key it wrote is held (writers > 0) from before
 * the commit became visible until its keys are done (cache.c), so a lookup
 * never returns a value older than the commit once the commit is visible.
 *
 * Isolation.  The batch's transaction is READ COMMITTED, where every
 * statement takes a new snapshot, so:
 *
 * - A transaction that only reads (checks and gets) reads all its keys
 *   with ONE statement (store_get_many), hence from one snapshot, and
 *   evaluates its operations on what that statement returned.
 *
 * - A transaction that writes first locks the row of every key it names,
 *   live or expired (store_lock: SELECT ... ORDER BY key FOR UPDATE, so
 *   all transactions lock in the same order and never deadlock on rows
 *   that exist), then runs one statement per operation.  A locked row
 *   cannot change until the commit: each check and get sees the newest
 *   committed state of its key, plus this transaction's own earlier
 *   writes, and what a check found still holds when it commits.
 *
 * - A key without a row cannot be locked.  So a write that follows a check
 *   of the same key carries the check with it: after "version": N it
 *   replaces or deletes only version N (If-Match), after "version": 0 it
 *   creates only (If-None-Match: *); if another client changed the key in
 *   between, the check did not hold after all and the transaction fails
 *   with 412 at the check's index.  A key read as absent and not written
 *   stays unlocked: another client may create it before the commit.
 *
 * Replies are malloc'd (kv_reply_alloc), never palloc'd: they cross back to a
 * civetweb thread.  Working memory is palloc'd in the caller's context
 * (the batch's SPI procedure context).
 *
 * Locking: no LWLock of its own; the row locks of store_lock() and of the
 * writes last until the batch's transaction ends (a rolled-back
 * subtransaction releases them).  State: none between calls.
 *
 * IDENTIFICATION
 *	  src/pg/txn.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <stdlib.h>

#include "utils/timestamp.h"

#include "execute.h"
#include "request_queue.h"
#include "store.h"
#include "txn.h"

/* A distinct key of the transaction. */
typedef struct TxnKey
{
	const char *key;			/* the first operation's copy */
	size_t		key_len;
	int			first_op;		/* its operations, through next_op[] */
	bool		had_row;		/* locked: it had a row, live or expired */
	int			checked_op;		/* the last check before its write; -1 */
} TxnKey;

typedef struct TxnState
{
	KvRequest  *req;
	TxnKey	   *keys;			/* sorted by key */
	int			nkeys;
	int		   *key_of;			/* operation -> keys[] */
	int		   *next_op;		/* operation -> next one of its key; -1 */
} TxnState;

static int
compare_keys(const char *a, size_t alen, const char *b, size_t blen)
{
	int			c = memcmp(a, b, Min(alen, blen));

	if (c != 0)
		return c;
	return alen < blen ? -1 : alen > blen;
}

/* qsort over operation indexes; the operations come through this. */
static const KvTxnOp *sort_ops;

static int
compare_op_keys(const void *a, const void *b)
{
	const KvTxnOp *x = &sort_ops[*(const int *) a];
	const KvTxnOp *y = &sort_ops[*(const int *) b];
	int			c = compare_keys(x->key, x->key_len, y->key, y->key_len);

	if (c != 0)
		return c;
	return *(const int *) a - *(const int *) b;
}

/* Group the operations by key, in key order. */
static void
index_keys(TxnState *st)
{
	KvRequest  *req = st->req;
	int			n = req->ntxn_ops;
	int		   *order = palloc(sizeof(int) * n);
	int		   *last_op = palloc(sizeof(int) * n);
	int			i;

	st->keys = palloc(sizeof(TxnKey) * n);
	st->key_of = palloc(sizeof(int) * n);
	st->next_op = palloc(sizeof(int) * n);
	st->nkeys = 0;
	for (i = 0; i < n; i++)
		order[i] = i;
	sort_ops = req->txn_ops;
	qsort(order, n, sizeof(int), compare_op_keys);
	sort_ops = NULL;

	for (i = 0; i < n; i++)
	{
		const KvTxnOp *op = &req->txn_ops[order[i]];
		TxnKey	   *k;

		if (st->nkeys == 0 ||
			compare_keys(st->keys[st->nkeys - 1].key,
						 st->keys[st->nkeys - 1].key_len,
						 op->key, op->key_len) != 0)
		{
			k = &st->keys[st->nkeys];
			k->key = op->key;
			k->key_len = op->key_len;
			k->first_op = order[i];
			k->had_row = false;
			k->checked_op = -1;
			st->nkeys++;
		}
		else
			st->next_op[last_op[st->nkeys - 1]] = order[i];
		/* sorted by index within a key: each is the last so far */
		last_op[st->nkeys - 1] = order[i];
		st->next_op[order[i]] = -1;
		st->key_of[order[i]] = st->nkeys - 1;
	}
}

static TxnKey *
find_key(TxnState *st, const char *key, size_t key_len)
{
	int			lo = 0;
	int			hi = st->nkeys - 1;

	while (lo <= hi)
	{
		int			mid = lo + (hi - lo) / 2;
		int			c = compare_keys(st->keys[mid].key, st->keys[mid].key_len,
									 key, key_len);

		if (c == 0)
			return &st->keys[mid];
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid - 1;
	}
	return NULL;
}

static void
set_row(KvTxnOp *op, const KvRow *row)
{
	op->found = true;
	op->version = row->version;
	if (op->kind != KV_TXN_GET)
		return;
	op->reply_value = kv_reply_strndup(row->value, row->value_len);
	op->reply_value_len = row->value_len;
	op->reply_content_type = row->content_type
		? kv_reply_strndup(row->content_type, strlen(row->content_type)) : NULL;
	op->expires_at = row->expires_at;
}

/*
 * Does check 'op' hold, by what it found?  False with the reason in
 * 'why' (a buffer of 'len' bytes) when it does not.
 */
static bool
check_holds(const KvTxnOp *op, char *why, size_t len)
{
	if (op->check_version == 0 && op->found)
		snprintf(why, len, "check failed: the key exists (version " INT64_FORMAT ")",
				 op->version);
	else if (op->check_version != 0 && !op->found)
		snprintf(why, len, "check failed: the key does not exist, not at version " INT64_FORMAT,
				 op->check_version);
	else if (op->check_version != 0 && op->version != op->check_version)
		snprintf(why, len, "check failed: the key is at version " INT64_FORMAT ", not " INT64_FORMAT,
				 op->version, op->check_version);
	else
		return true;
	return false;
}

/* The transaction fails at operation i: forget every result, say why. */
static bool
fail_at(KvRequest *req, int i, int status, KvError error, const char *why)
{
	kvq_reply_clear(req);
	kvq_set_error(req, status, error, why);
	req->txn_failed_op = i;
	return false;
}

/*---- transactions that only read ----*/

static void
read_row(void *arg, const char *key, size_t key_len, const KvRow *row)
{
	TxnState   *st = (TxnState *) arg;
	TxnKey	   *k = find_key(st, key, key_len);
	int			i;

	if (k == NULL)
		return;
	for (i = k->first_op; i >= 0; i = st->next_op[i])
		set_row(&st->req->txn_ops[i], row);
}

/* The transaction's distinct keys as the arrays store.c takes. */
static void
key_arrays(TxnState *st, const char ***keys, size_t **lens)
{
	int			k;

	*keys = palloc(sizeof(char *) * st->nkeys);
	*lens = palloc(sizeof(size_t) * st->nkeys);
	for (k = 0; k < st->nkeys; k++)
	{
		(*keys)[k] = st->keys[k].key;
		(*lens)[k] = st->keys[k].key_len;
	}
}

/* Every key read with one statement: one snapshot for all. */
static bool
run_reads(TxnState *st)
{
	KvRequest  *req = st->req;
	const char **keys;
	size_t	   *lens;
	char		why[160];
	int			i;

	key_arrays(st, &keys, &lens);
	store_get_many(keys, lens, st->nkeys, read_row, st);
	for (i = 0; i < req->ntxn_ops; i++)
		if (req->txn_ops[i].kind == KV_TXN_CHECK &&
			!check_holds(&req->txn_ops[i], why, sizeof(why)))
			return fail_at(req, i, 412, KV_ERR_PRECONDITION_FAILED, why);
	return true;
}

/*---- transactions that write ----*/

static void
lock_row(void *arg, const char *key, size_t key_len, const KvRow *row)
{
	TxnKey	   *k = find_key((TxnState *) arg, key, key_len);

	if (k != NULL)
		k->had_row = true;
}

/*
 * A put or delete of a key that an earlier check named no longer meets
 * that check: the key changed in between (it had no row to lock).
 */
static bool
check_broken(KvRequest *req, const TxnKey *k)
{
	const KvTxnOp *check = &req->txn_ops[k->checked_op];

	return fail_at(req, k->checked_op, 412, KV_ERR_PRECONDITION_FAILED,
				   check->check_version == 0
				   ? "check failed: the key was created by another client before this transaction wrote it"
				   : "check failed: the key was changed by another client before this transaction wrote it");
}

static bool
run_put(KvRequest *req, KvTxnOp *op, TxnKey *k)
{
	int64		if_match = KV_MATCH_NONE;
	bool		create_only = false;
	TimestampTz expires_at = 0;
	int64		version = 0;
	KvPutResult res;

	if (k->checked_op >= 0)
	{
		int64		v = req->txn_ops[k->checked_op].check_version;

		create_only = (v == 0);
		if (v != 0)
			if_match = v;
	}
	if (op->ttl_seconds > 0)
		expires_at = GetCurrentTimestamp() + op->ttl_seconds * USECS_PER_SEC;
	res = store_put(op->key, op->key_len, op->value, op->value_len,
					op->content_type, expires_at, create_only, if_match,
					&version);
	if (res == KV_PUT_EXISTS || res == KV_PUT_NO_MATCH)
		return check_broken(req, k);
	op->found = (res == KV_PUT_CREATED);
	op->version = version;
	op->expires_at = expires_at;
	return true;
}

static bool
run_delete(KvRequest *req, KvTxnOp *op, TxnKey *k)
{
	int64		if_match = KV_MATCH_NONE;
	KvDeleteResult res;

	if (k->checked_op >= 0 && req->txn_ops[k->checked_op].check_version != 0)
		if_match = req->txn_ops[k->checked_op].check_version;
	res = store_delete(op->key, op->key_len, if_match);
	if (res == KV_DELETE_NO_MATCH)
		return check_broken(req, k);
	op->found = (res == KV_DELETE_DONE);
	/* checked absent, yet there was a live row to delete */
	if (op->found && k->checked_op >= 0 &&
		req->txn_ops[k->checked_op].check_version == 0)
		return check_broken(req, k);
	return true;
}

static bool
run_writes(TxnState *st)
{
	KvRequest  *req = st->req;
	const char **keys;
	size_t	   *lens;
	char		why[160];
	int			i;

	key_arrays(st, &keys, &lens);
	store_lock(keys, lens, st->nkeys, lock_row, st);

	for (i = 0; i < req->ntxn_ops; i++)
	{
		KvTxnOp    *op = &req->txn_ops[i];
		TxnKey	   *key = &st->keys[st->key_of[i]];
		KvRow		row;

		/* an error thrown from here on is this operation's */
		req->txn_failed_op = i;
		switch (op->kind)
		{
			case KV_TXN_CHECK:
				op->found = store_version(op->key, op->key_len, &op->version);
				if (!check_holds(op, why, sizeof(why)))
					return fail_at(req, i, 412, KV_ERR_PRECONDITION_FAILED, why);
				key->checked_op = i;
				break;
			case KV_TXN_GET:
				store_get(op->key, op->key_len, &row);
				if (row.found)
					set_row(op, &row);
				break;
			case KV_TXN_PUT:
				if (!run_put(req, op, key))
					return false;
				break;
			case KV_TXN_DELETE:
				if (!run_delete(req, op, key))
					return false;
				break;
		}
	}
	return true;
}

/*
 * Run transaction 'req'; false when it failed and its subtransaction must
 * be rolled back (the answer says why).  Errors are thrown, with
 * req->txn_failed_op naming the operation that threw.
 */
bool
kv_txn_execute(KvRequest *req)
{
	TxnState	st;
	bool		ok;

	req->txn_failed_op = -1;
	if (req->ntxn_ops <= 0 || req->txn_ops == NULL)
		return fail_at(req, -1, 400, KV_ERR_BAD_REQUEST,
					   "a transaction needs at least one operation");
	st.req = req;
	index_keys(&st);
	ok = kvq_txn_ops_write(req->txn_ops, req->ntxn_ops)
		? run_writes(&st) : run_reads(&st);
	if (!ok)
		return false;
	req->txn_failed_op = -1;
	req->status = 200;
	return true;
}
