/*-------------------------------------------------------------------------
 *
 * http_txn.c
 *	  POST /txn: several checks, gets, puts and deletes run atomically, in
 *	  one PostgreSQL transaction (src/pg/txn.c runs them).
 *
 * The handler reads and bounds the body, has http_parse.c validate all of
 * it (so the database never sees a malformed operation, and a 400 names
 * the operation at fault), refuses a transaction that writes on a hot
 * standby, and hands the rest to the worker's main thread as one
 * KvRequest (KV_OP_TXN) with its array of operations.  The answer is
 * written by http_reply.c like any other.
 *
 * The limit kvserver.max_txn_ops is published by the main thread
 * (kv_http_set_txn_limit) and read here with relaxed atomics, like the
 * limits of http_request.c: a request that sees the old value for a moment
 * is harmless.
 *
 * civetweb side: runs on civetweb threads, no PostgreSQL.
 *
 * IDENTIFICATION
 *	  src/civet/http_txn.c
 *
 *-------------------------------------------------------------------------
 */
#include <stdlib.h>

#include "http_handlers.h"
#include "http_parse.h"
#include "http_reply.h"
#include "http_server.h"
#include "kv_api.h"
#include "node_role.h"
#include "request_queue.h"

#ifdef PG_MAJORVERSION
#error "http_txn.c runs on civetweb threads: no PostgreSQL headers"
#endif

/*
 * The largest body: room for one value of kvserver.max_value_size in its
 * worst JSON form (six bytes for one, a control character's escape), as
 * for POST /kv/, and 1 MiB for the rest (128 keys of 1024 bytes, escaped,
 * fit).  Each value is held to kvserver.max_value_size on its own.
 */
#define TXN_BODY_SLACK	(1024 * 1024)

static int	limit_max_ops = KV_DEFAULT_MAX_TXN_OPS;

void
kv_http_set_txn_limit(int max_ops)
{
	__atomic_store_n(&limit_max_ops, max_ops, __ATOMIC_RELAXED);
}

static int
status_of(KvError err)
{
	switch (err)
	{
		case KV_ERR_VALUE_TOO_LARGE:
			return 413;
		case KV_ERR_INTERNAL:
			return 500;
		default:
			return 400;
	}
}

int
kv_handle_txn(const KvHttpCtx *ctx)
{
	int64_t		max_value = kv_limit_value_size();
	int			max_ops = __atomic_load_n(&limit_max_ops, __ATOMIC_RELAXED);
	const char *why = NULL;
	KvTxnOp    *ops;
	int			nops;
	int			bad_op;
	KvRequest  *req;
	char	   *body;
	size_t		len;
	int			rc;
	KvError		err;

	if (ctx->method != KV_METHOD_POST)
		return kv_send_error(ctx, 405, KV_ERR_METHOD_NOT_ALLOWED,
							 "the allowed method for /txn is POST", "POST",
							 false);

	rc = kv_read_body(ctx, max_value * 6 + TXN_BODY_SLACK, &body, &len);
	if (rc == 413)
		return kv_send_error(ctx, 413, KV_ERR_VALUE_TOO_LARGE,
							 "body is too large for kvserver.max_value_size",
							 NULL, true);
	if (rc != 0)
		return kv_send_bad_body(ctx);
	err = kv_parse_txn_body(body, len, kv_limit_key_length(), max_ops,
							max_value, &ops, &nops, &bad_op, &why);
	free(body);
	if (err != KV_ERR_NONE)
		return kv_send_json(ctx, status_of(err),
							kv_json_error_op(err, why, bad_op, NULL), -1);

	/*
	 * A hot standby serves a transaction that only reads; one that writes
	 * goes to the primary (its body was read, so a 307 is followed by a
	 * client that sends it again, as RFC 9110 asks of a 307).
	 */
	if (kvq_txn_ops_write(ops, nops) && kv_node_is_standby())
	{
		kvq_txn_ops_free(ops, nops);
		return kv_send_standby_write(ctx);
	}

	req = kvq_request_new(KV_OP_TXN);
	if (req == NULL)
	{
		kvq_txn_ops_free(ops, nops);
		return kv_send_error(ctx, 500, KV_ERR_INTERNAL, "out of memory", NULL,
							 true);
	}
	req->txn_ops = ops;
	req->ntxn_ops = nops;
	return kv_run_request(ctx, req);
}
