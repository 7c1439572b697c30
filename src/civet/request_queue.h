/*-------------------------------------------------------------------------
 *
 * request_queue.h
 *	  The one interface between civetweb's threads and the worker's main
 *	  thread: a request, its reply, and the queue that carries it.
 *
 * Included by both sides, so it uses plain C types only.  Every pointer in
 * a KvRequest is malloc'd; the side that frees the request frees them.
 *
 * Ownership: a civetweb thread builds a request and submits it; from then
 * until the main thread completes it, only the main thread touches it.  If
 * the thread stops waiting (timeout), it marks the request abandoned under
 * the queue mutex and forgets it; the main thread frees it on completion.
 *
 * IDENTIFICATION
 *	  src/civet/request_queue.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef KVSERVER_REQUEST_QUEUE_H
#define KVSERVER_REQUEST_QUEUE_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kv_api.h"

typedef enum KvOp
{
	KV_OP_GET,					/* GET and HEAD */
	KV_OP_PUT,					/* upsert */
	KV_OP_CREATE,				/* POST /kv/: insert only */
	KV_OP_DELETE,
	KV_OP_LIST,
	KV_OP_HEALTH,
	KV_OP_AUTH,					/* only verify the identity (/metrics, /) */
	KV_OP_TXN					/* POST /txn: several operations, atomically */
} KvOp;

/* One operation of a transaction (POST /txn). */
typedef enum KvTxnOpKind
{
	KV_TXN_CHECK,				/* the key must be at this version (0: absent) */
	KV_TXN_GET,
	KV_TXN_PUT,					/* upsert */
	KV_TXN_DELETE
} KvTxnOpKind;

typedef struct KvTxnOp
{
	/* the operation, filled by the civetweb thread */
	KvTxnOpKind kind;
	char	   *key;			/* decoded, NUL-terminated, validated */
	size_t		key_len;
	char	   *value;			/* PUT */
	size_t		value_len;
	char	   *content_type;	/* PUT; NULL: none */
	int64_t		ttl_seconds;	/* PUT; 0: no expiry */
	int64_t		check_version;	/* CHECK: the version required; 0: absent */

	/* the result, filled by the main thread */
	bool		found;			/* CHECK, GET: the key is live; PUT: it was
								 * created; DELETE: it existed */
	char	   *reply_value;	/* GET */
	size_t		reply_value_len;
	char	   *reply_content_type; /* GET; NULL: none */
	int64_t		version;		/* CHECK, GET: the key's; PUT: the new one */
	int64_t		expires_at;		/* GET, PUT: timestamptz; 0 = never */
} KvTxnOp;

/* How the client said who it is. */
typedef enum KvAuthKind
{
	KV_AUTH_ANONYMOUS,			/* no Authorization: kvserver.anonymous_role */
	KV_AUTH_BASIC,				/* role name and password */
	KV_AUTH_BEARER				/* a token from kv_token_create() */
} KvAuthKind;

typedef enum KvReqState
{
	KV_REQ_NEW,
	KV_REQ_QUEUED,
	KV_REQ_RUNNING,				/* taken by the main thread */
	KV_REQ_DONE,
	KV_REQ_ABANDONED			/* the waiting thread gave up */
} KvReqState;

/* If-Match / If-None-Match values; versions themselves are >= 1 */
#define KV_MATCH_NONE	INT64_C(-1)
#define KV_MATCH_ANY	INT64_C(0)

typedef struct KvRequest
{
	/* the request, filled by the civetweb thread */
	KvOp		op;
	char	   *key;			/* decoded, NUL-terminated, validated */
	size_t		key_len;
	char	   *value;			/* PUT/CREATE body */
	size_t		value_len;
	char	   *content_type;	/* NULL: none given */
	int64_t		ttl_seconds;	/* 0: no expiry */
	int64_t		if_match;		/* KV_MATCH_NONE, KV_MATCH_ANY or a version */
	bool		create_only;	/* POST, or PUT with If-None-Match: * */
	int64_t		if_none_match;	/* GET: answer 304 for this version */
	char	   *prefix;			/* LIST */
	char	   *after;			/* LIST; NULL: from the start */
	int			limit;			/* LIST */
	uint64_t	change_index;	/* LIST: its X-Kv-Index, read by the
								 * civetweb thread before submitting (not
								 * sent to executors) */
	KvTxnOp    *txn_ops;		/* TXN: the operations, in order */
	int			ntxn_ops;

	/*
	 * Identity, filled by the civetweb thread.  auth_role is a role the
	 * thread's credential cache holds as verified at auth_generation; the
	 * main thread trusts it only if no catalog change bumped the
	 * generation since, and verifies the credentials itself otherwise.
	 */
	KvAuthKind	auth_kind;
	char	   *auth_user;		/* BASIC */
	char	   *auth_secret;	/* BASIC password or BEARER token; wiped on free */
	uint32_t	auth_role;		/* 0: not known yet */
	uint64_t	auth_generation;

	/* the reply, filled by the main thread */
	int			status;
	KvError		error;
	char	   *message;		/* error text */
	char	   *reply_value;	/* GET */
	size_t		reply_value_len;
	char	   *reply_content_type;
	int64_t		version;		/* GET/PUT/CREATE: the ETag */
	int64_t		expires_at;		/* PostgreSQL timestamptz, 0 = never */
	bool		cache_hit;
	char	  **keys;			/* LIST */
	int			nkeys;
	char	   *next_key;		/* LIST: NULL when no more */
	char	   *database;		/* HEALTH */
	bool		standby;		/* HEALTH: the node is a hot standby */
	uint64_t	replay_lsn;		/* HEALTH, standby: last WAL replayed */
	int64_t		replay_lag_us;	/* HEALTH, standby: now minus the time of
								 * the last commit replayed; -1: unknown */
	uint32_t	role;			/* the role the request ran as; 0: none */
	bool		role_may_hit;	/* may read cache hits on civetweb threads */
	int64_t		role_valid_ms;	/* CLOCK_MONOTONIC ms until which the
								 * verification may be reused */
	uint64_t	role_generation;	/* auth generation it was verified at */

	bool		db_error;		/* the answer reports a database error */

	/*
	 * TXN: the operation an error belongs to, -1 when it belongs to the
	 * transaction as a whole.  Set by the executor before each operation
	 * and deliberately left alone by kvq_reply_clear(), which the
	 * subtransaction's error handler calls before it reports the error.
	 */
	int			txn_failed_op;

	/* when the waiting thread gives up: CLOCK_MONOTONIC, milliseconds */
	int64_t		deadline_ms;

	/* executor pool (src/pg/pool.c): where the worker keeps the request */
	uint32_t	slot;

	/* bookkeeping, under the queue mutex */
	KvReqState	state;
	pthread_cond_t done_cv;
	struct KvRequest *next;
} KvRequest;

/* either side, on a request it owns */
extern KvRequest *kvq_request_new(KvOp op);
extern void kvq_request_free(KvRequest *req);
extern void kvq_set_error(KvRequest *req, int status, KvError error,
						  const char *message);
extern void kvq_reply_clear(KvRequest *req);
extern void kvq_txn_ops_free(KvTxnOp *ops, int n);
extern bool kvq_txn_ops_write(const KvTxnOp *ops, int n);

/* civetweb threads */
extern bool kvq_submit_and_wait(KvRequest *req, int timeout_ms);

/* main thread */
extern int	kvq_open(void);
extern int	kvq_eventfd(void);
extern KvRequest *kvq_take_all(int max);
extern void kvq_complete(KvRequest *req);
extern void kvq_fail(KvRequest *req, int status, KvError error,
					 const char *message);
extern void kvq_close(const char *message);
extern void kvq_reopen(void);
extern int	kvq_depth(void);
extern int64_t kvq_now_ms(void);

#endif							/* KVSERVER_REQUEST_QUEUE_H */
