/*-------------------------------------------------------------------------
 *
 * wire.c
 *	  Flatten a request, and its answer, into a message for the queues
 *	  between the worker's main thread and its executors (pool.c,
 *	  executor.c), and rebuild it on the other side.
 *
 * Both ends are the same build of the same library on the same machine,
 * so integers travel in native form.  Strings travel as a length (-1 for
 * NULL) and their bytes; a rebuilt string is malloc'd and NUL-terminated,
 * as a KvRequest's strings always are (request_queue.h).  A reader never
 * reads past the message: a short or malformed one is refused whole.
 *
 * A transaction (POST /txn) carries its operations in the request message
 * and their results in the answer, in the same order.
 *
 * The credentials of a Basic or Bearer request cross in the request
 * message, through the dynamic shared memory only the server's processes
 * map; the rebuilt copy is wiped when the request is freed.
 *
 * No state, no locks: called by the worker's main thread and executors.
 *
 * IDENTIFICATION
 *	  src/pg/wire.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <stdlib.h>
#include <string.h>

#include "wire.h"

typedef struct Reader
{
	const char *p;
	const char *end;
	bool		ok;
} Reader;

/*---- writing ----*/

#define PUT(buf, v) appendBinaryStringInfo((buf), (const char *) &(v), sizeof(v))

static void
put_bytes(StringInfo buf, const char *s, Size len)
{
	int64		n = s ? (int64) len : -1;

	PUT(buf, n);
	if (s)
		appendBinaryStringInfo(buf, s, len);
}

static void
put_str(StringInfo buf, const char *s)
{
	put_bytes(buf, s, s ? strlen(s) : 0);
}

/*---- reading ----*/

static void
get(Reader *r, void *dst, Size n)
{
	if (!r->ok || (Size) (r->end - r->p) < n)
	{
		r->ok = false;
		memset(dst, 0, n);
		return;
	}
	memcpy(dst, r->p, n);
	r->p += n;
}

#define GET(r, v) get((r), &(v), sizeof(v))

/* A malloc'd NUL-terminated copy, or NULL (also for a NULL string). */
static char *
get_bytes(Reader *r, size_t *len)
{
	int64		n;
	char	   *s;

	GET(r, n);
	if (len)
		*len = 0;
	if (!r->ok || n < 0)
		return NULL;
	if ((uint64) n > (uint64) (r->end - r->p))
	{
		r->ok = false;
		return NULL;
	}
	s = malloc(n + 1);
	if (s == NULL)
	{
		r->ok = false;
		return NULL;
	}
	memcpy(s, r->p, n);
	s[n] = '\0';
	r->p += n;
	if (len)
		*len = n;
	return s;
}

static void
reader_init(Reader *r, const char *data, Size len, char type)
{
	r->p = data;
	r->end = data + len;
	r->ok = len > 0 && data[0] == type;
	r->p++;
}

/*---- transactions (POST /txn) ----*/

static void
put_txn_ops(StringInfo buf, const KvRequest *req)
{
	int32		n = req->ntxn_ops;
	int			i;

	PUT(buf, n);
	for (i = 0; i < n; i++)
	{
		const KvTxnOp *op = &req->txn_ops[i];
		int32		kind = op->kind;

		PUT(buf, kind);
		put_bytes(buf, op->key, op->key_len);
		put_bytes(buf, op->value, op->value_len);
		put_str(buf, op->content_type);
		PUT(buf, op->ttl_seconds);
		PUT(buf, op->check_version);
	}
}

/*
 * The operations of a transaction into req.  Each takes at least its
 * fixed-size fields, so a count larger than the rest of the message could
 * hold is malformed and refused before anything is allocated for it.
 */
static void
get_txn_ops(Reader *r, KvRequest *req)
{
	int32		n;
	int			i;

	GET(r, n);
	if (!r->ok || n == 0)
		return;
	if (n < 0 || (Size) n > (Size) (r->end - r->p) / (sizeof(int32) + 3 * sizeof(int64)))
	{
		r->ok = false;
		return;
	}
	req->txn_ops = calloc(n, sizeof(KvTxnOp));
	if (req->txn_ops == NULL)
	{
		r->ok = false;
		return;
	}
	for (i = 0; r->ok && i < n; i++)
	{
		KvTxnOp    *op = &req->txn_ops[i];
		int32		kind;

		req->ntxn_ops = i + 1;
		GET(r, kind);
		op->kind = (KvTxnOpKind) kind;
		op->key = get_bytes(r, &op->key_len);
		op->value = get_bytes(r, &op->value_len);
		op->content_type = get_bytes(r, NULL);
		GET(r, op->ttl_seconds);
		GET(r, op->check_version);
		/* every operation names a key; a put carries a value */
		if (kind < KV_TXN_CHECK || kind > KV_TXN_DELETE || op->key == NULL ||
			(kind == KV_TXN_PUT && op->value == NULL))
			r->ok = false;
	}
}

/* The results of a transaction's operations, in order. */
static void
put_txn_results(StringInfo buf, const KvRequest *req)
{
	int32		n = req->ntxn_ops;
	int32		failed_op = req->txn_failed_op;
	int			i;

	PUT(buf, failed_op);
	PUT(buf, n);
	for (i = 0; i < n; i++)
	{
		const KvTxnOp *op = &req->txn_ops[i];
		bool		found = op->found;

		PUT(buf, found);
		put_bytes(buf, op->reply_value, op->reply_value_len);
		put_str(buf, op->reply_content_type);
		PUT(buf, op->version);
		PUT(buf, op->expires_at);
	}
}

/*
 * Into the operations the worker's request already holds: the executor
 * answers for as many as it received.
 */
static void
get_txn_results(Reader *r, KvRequest *req)
{
	int32		failed_op;
	int32		n;
	int			i;

	GET(r, failed_op);
	req->txn_failed_op = failed_op;
	GET(r, n);
	if (!r->ok || n != req->ntxn_ops)
	{
		r->ok = false;
		return;
	}
	for (i = 0; r->ok && i < n; i++)
	{
		KvTxnOp    *op = &req->txn_ops[i];
		bool		found;

		GET(r, found);
		op->found = found;
		op->reply_value = get_bytes(r, &op->reply_value_len);
		op->reply_content_type = get_bytes(r, NULL);
		GET(r, op->version);
		GET(r, op->expires_at);
	}
}

/*---- requests ----*/

void
kv_wire_put_request(StringInfo buf, const KvRequest *req, uint32 slot)
{
	int32		op = req->op;
	int32		auth_kind = req->auth_kind;
	int32		limit = req->limit;
	bool		create_only = req->create_only;

	appendStringInfoChar(buf, KV_WIRE_REQUEST);
	PUT(buf, slot);
	PUT(buf, op);
	put_bytes(buf, req->key, req->key_len);
	put_bytes(buf, req->value, req->value_len);
	put_str(buf, req->content_type);
	PUT(buf, req->ttl_seconds);
	PUT(buf, req->if_match);
	PUT(buf, create_only);
	PUT(buf, req->if_none_match);
	put_str(buf, req->prefix);
	put_str(buf, req->after);
	PUT(buf, limit);
	PUT(buf, auth_kind);
	put_str(buf, req->auth_user);
	put_str(buf, req->auth_secret);
	PUT(buf, req->auth_role);
	PUT(buf, req->auth_generation);
	PUT(buf, req->deadline_ms);
	put_txn_ops(buf, req);
}

/* A malloc'd request, or NULL when the message is malformed. */
KvRequest *
kv_wire_get_request(const char *data, Size len, uint32 *slot)
{
	Reader		r;
	KvRequest  *req;
	int32		op;
	int32		auth_kind;
	int32		limit;
	bool		create_only;

	reader_init(&r, data, len, KV_WIRE_REQUEST);
	GET(&r, *slot);
	GET(&r, op);
	if (!r.ok || op < KV_OP_GET || op > KV_OP_TXN)
		return NULL;
	req = kvq_request_new((KvOp) op);
	if (req == NULL)
		return NULL;
	req->key = get_bytes(&r, &req->key_len);
	req->value = get_bytes(&r, &req->value_len);
	req->content_type = get_bytes(&r, NULL);
	GET(&r, req->ttl_seconds);
	GET(&r, req->if_match);
	GET(&r, create_only);
	req->create_only = create_only;
	GET(&r, req->if_none_match);
	req->prefix = get_bytes(&r, NULL);
	req->after = get_bytes(&r, NULL);
	GET(&r, limit);
	req->limit = limit;
	GET(&r, auth_kind);
	req->auth_kind = (KvAuthKind) auth_kind;
	req->auth_user = get_bytes(&r, NULL);
	req->auth_secret = get_bytes(&r, NULL);
	GET(&r, req->auth_role);
	GET(&r, req->auth_generation);
	GET(&r, req->deadline_ms);
	get_txn_ops(&r, req);
	if (!r.ok || r.p != r.end ||
		auth_kind < KV_AUTH_ANONYMOUS || auth_kind > KV_AUTH_BEARER)
	{
		kvq_request_free(req);
		return NULL;
	}
	return req;
}

/*---- answers ----*/

void
kv_wire_put_answer(StringInfo buf, const KvRequest *req, uint32 slot)
{
	int32		status = req->status;
	int32		error = req->error;
	int32		nkeys = req->nkeys;
	bool		cache_hit = req->cache_hit;
	bool		standby = req->standby;
	bool		role_may_hit = req->role_may_hit;
	bool		db_error = req->db_error;
	int			i;

	appendStringInfoChar(buf, KV_WIRE_ANSWER);
	PUT(buf, slot);
	PUT(buf, status);
	PUT(buf, error);
	put_str(buf, req->message);
	put_bytes(buf, req->reply_value, req->reply_value_len);
	put_str(buf, req->reply_content_type);
	PUT(buf, req->version);
	PUT(buf, req->expires_at);
	PUT(buf, cache_hit);
	PUT(buf, nkeys);
	for (i = 0; i < req->nkeys; i++)
		put_str(buf, req->keys[i]);
	put_str(buf, req->next_key);
	put_str(buf, req->database);
	PUT(buf, standby);
	PUT(buf, req->replay_lsn);
	PUT(buf, req->replay_lag_us);
	PUT(buf, req->role);
	PUT(buf, role_may_hit);
	PUT(buf, req->role_valid_ms);
	PUT(buf, req->role_generation);
	PUT(buf, db_error);
	put_txn_results(buf, req);
}

bool
kv_wire_answer_slot(const char *data, Size len, uint32 *slot)
{
	Reader		r;

	reader_init(&r, data, len, KV_WIRE_ANSWER);
	GET(&r, *slot);
	return r.ok;
}

/*
 * Fill req's answer from the message.  False when it is malformed; the
 * answer is then cleared.
 */
bool
kv_wire_get_answer(const char *data, Size len, KvRequest *req)
{
	Reader		r;
	uint32		slot;
	int32		status;
	int32		error;
	int32		nkeys;
	bool		flag;
	int			i;

	kvq_reply_clear(req);
	reader_init(&r, data, len, KV_WIRE_ANSWER);
	GET(&r, slot);
	GET(&r, status);
	GET(&r, error);
	req->status = status;
	req->error = (KvError) error;
	req->message = get_bytes(&r, NULL);
	req->reply_value = get_bytes(&r, &req->reply_value_len);
	req->reply_content_type = get_bytes(&r, NULL);
	GET(&r, req->version);
	GET(&r, req->expires_at);
	GET(&r, flag);
	req->cache_hit = flag;
	GET(&r, nkeys);
	if (r.ok && nkeys > 0 && (Size) nkeys <= (Size) (r.end - r.p))
	{
		req->keys = calloc(nkeys, sizeof(char *));
		if (req->keys == NULL)
			r.ok = false;
		for (i = 0; r.ok && i < nkeys; i++)
		{
			req->keys[i] = get_bytes(&r, NULL);
			req->nkeys = i + 1;
		}
	}
	else if (nkeys != 0)
		r.ok = false;
	req->next_key = get_bytes(&r, NULL);
	req->database = get_bytes(&r, NULL);
	GET(&r, flag);
	req->standby = flag;
	GET(&r, req->replay_lsn);
	GET(&r, req->replay_lag_us);
	GET(&r, req->role);
	GET(&r, flag);
	req->role_may_hit = flag;
	GET(&r, req->role_valid_ms);
	GET(&r, req->role_generation);
	GET(&r, flag);
	req->db_error = flag;
	get_txn_results(&r, req);
	if (!r.ok || r.p != r.end)
	{
		kvq_reply_clear(req);
		req->txn_failed_op = -1;
		return false;
	}
	return true;
}
