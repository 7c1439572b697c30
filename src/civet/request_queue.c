/*-------------------------------------------------------------------------
 *
 * request_queue.c
 *	  Hand requests from civetweb threads to the worker's main thread and
 *	  hand the replies back.
 *
 * A FIFO protected by one pthread mutex.  Submitting appends a request and
 * writes to an eventfd that the main thread waits on in its WaitEventSet;
 * the submitter then sleeps on the request's own condition variable until
 * the main thread completes it or the timeout passes.
 *
 * Locking: queue_lock protects the list, every request's state, and the
 * closed flag.  The main thread reads and writes a request's other fields
 * without the lock while the request is RUNNING, because then nobody else
 * looks at them (an abandoning thread only flips the state).
 *
 * Shutdown: kvq_close() answers every queued request with 503 and makes
 * later submissions fail at once, so no civetweb thread is left waiting and
 * mg_stop() cannot hang on one.
 *
 * No PostgreSQL here: civetweb threads run this code.
 *
 * IDENTIFICATION
 *	  src/civet/request_queue.c
 *
 *-------------------------------------------------------------------------
 */
#include "request_queue.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#ifdef PG_MAJORVERSION
#error "request_queue.c runs on civetweb threads: no PostgreSQL headers"
#endif

static pthread_mutex_t queue_lock = PTHREAD_MUTEX_INITIALIZER;
static KvRequest *queue_head;
static KvRequest *queue_tail;
static int	queue_len;
static bool queue_closed = true;
static char *closed_message;
static int	wake_fd = -1;

KvRequest *
kvq_request_new(KvOp op)
{
	KvRequest  *req = calloc(1, sizeof(KvRequest));
	pthread_condattr_t attr;

	if (req == NULL)
		return NULL;
	req->op = op;
	req->if_match = KV_MATCH_NONE;
	req->if_none_match = KV_MATCH_NONE;
	req->txn_failed_op = -1;
	req->state = KV_REQ_NEW;
	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_cond_init(&req->done_cv, &attr);
	pthread_condattr_destroy(&attr);
	return req;
}

/*
 * Drop the reply: what the main thread filled in, including an error.  Used
 * when work that built part of a reply failed, and by kvq_request_free().
 */
void
kvq_reply_clear(KvRequest *req)
{
	int			i;

	free(req->message);
	free(req->reply_value);
	free(req->reply_content_type);
	for (i = 0; i < req->nkeys; i++)
		free(req->keys[i]);
	free(req->keys);
	free(req->next_key);
	free(req->database);
	for (i = 0; i < req->ntxn_ops; i++)
	{
		KvTxnOp    *op = &req->txn_ops[i];

		free(op->reply_value);
		free(op->reply_content_type);
		op->reply_value = NULL;
		op->reply_value_len = 0;
		op->reply_content_type = NULL;
		op->found = false;
		op->version = 0;
		op->expires_at = 0;
	}
	req->message = NULL;
	req->reply_value = NULL;
	req->reply_content_type = NULL;
	req->keys = NULL;
	req->nkeys = 0;
	req->next_key = NULL;
	req->database = NULL;
	req->status = 0;
	req->error = KV_ERR_NONE;
	req->db_error = false;
}

void
kvq_request_free(KvRequest *req)
{
	if (req == NULL)
		return;
	kvq_reply_clear(req);
	free(req->key);
	free(req->value);
	free(req->content_type);
	free(req->auth_user);
	if (req->auth_secret)
	{
		/* a password or token must not linger in freed memory */
		explicit_bzero(req->auth_secret, strlen(req->auth_secret));
		free(req->auth_secret);
	}
	free(req->prefix);
	free(req->after);
	kvq_txn_ops_free(req->txn_ops, req->ntxn_ops);
	pthread_cond_destroy(&req->done_cv);
	free(req);
}

/* Free an array of transaction operations, requests and results. */
void
kvq_txn_ops_free(KvTxnOp *ops, int n)
{
	int			i;

	if (ops == NULL)
		return;
	for (i = 0; i < n; i++)
	{
		free(ops[i].key);
		free(ops[i].value);
		free(ops[i].content_type);
		free(ops[i].reply_value);
		free(ops[i].reply_content_type);
	}
	free(ops);
}

/* Does a transaction write (put or delete)?  Else it only reads. */
bool
kvq_txn_ops_write(const KvTxnOp *ops, int n)
{
	int			i;

	for (i = 0; i < n; i++)
		if (ops[i].kind == KV_TXN_PUT || ops[i].kind == KV_TXN_DELETE)
			return true;
	return false;
}

/*
 * Answer 'req' with an error.  The caller owns the request: the main
 * thread while it runs it, or a thread holding queue_lock.
 */
void
kvq_set_error(KvRequest *req, int status, KvError error, const char *message)
{
	req->status = status;
	req->error = error;
	free(req->message);
	req->message = strdup(message ? message : "");
}

/*
 * Submit a request and wait for its reply.  Returns true when the request
 * was answered (by the main thread, or with 503 because the queue is
 * closed); the caller then owns and frees it.  Returns false on timeout:
 * the request now belongs to the main thread and the caller must not touch
 * it again.
 */
bool
kvq_submit_and_wait(KvRequest *req, int timeout_ms)
{
	struct timespec deadline;
	uint64_t	one = 1;
	bool		answered;

	clock_gettime(CLOCK_MONOTONIC, &deadline);
	deadline.tv_sec += timeout_ms / 1000;
	deadline.tv_nsec += (long) (timeout_ms % 1000) * 1000000L;
	if (deadline.tv_nsec >= 1000000000L)
	{
		deadline.tv_sec++;
		deadline.tv_nsec -= 1000000000L;
	}

	req->deadline_ms = (int64_t) deadline.tv_sec * 1000 + deadline.tv_nsec / 1000000;

	pthread_mutex_lock(&queue_lock);
	if (queue_closed)
	{
		kvq_set_error(req, 503, KV_ERR_UNAVAILABLE,
					 closed_message ? closed_message : "kvserver is not running");
		req->state = KV_REQ_DONE;
		pthread_mutex_unlock(&queue_lock);
		return true;
	}
	req->state = KV_REQ_QUEUED;
	req->next = NULL;
	if (queue_tail)
		queue_tail->next = req;
	else
	{
		queue_head = req;

		/*
		 * Only the first request of an empty queue wakes the main thread:
		 * kvq_take_all() takes everything queued when it wakes, and re-arms
		 * the eventfd for what it leaves.  One write per request cost a
		 * syscall each under load, and the main thread wake-ups for nothing.
		 * An eventfd write cannot block until the counter nears 2^64.
		 */
		if (write(wake_fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		{
			/* the main thread still sees the request at its next wakeup */
		}
	}
	queue_tail = req;
	queue_len++;

	while (req->state != KV_REQ_DONE)
	{
		if (pthread_cond_timedwait(&req->done_cv, &queue_lock, &deadline) == ETIMEDOUT &&
			req->state != KV_REQ_DONE)
			break;
	}
	answered = (req->state == KV_REQ_DONE);
	if (!answered)
		req->state = KV_REQ_ABANDONED;
	pthread_mutex_unlock(&queue_lock);
	return answered;
}

/* Create the eventfd and start accepting requests. */
int
kvq_open(void)
{
	pthread_mutex_lock(&queue_lock);
	if (wake_fd < 0)
		wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (wake_fd >= 0)
		queue_closed = false;
	pthread_mutex_unlock(&queue_lock);
	return wake_fd;
}

int
kvq_eventfd(void)
{
	return wake_fd;
}

/*
 * Take up to 'max' queued requests, oldest first, marking them RUNNING.
 * Abandoned ones found on the way are freed.  Also resets the eventfd;
 * if requests remain, it is re-armed so the main thread comes back.
 */
KvRequest *
kvq_take_all(int max)
{
	KvRequest  *batch = NULL;
	KvRequest **tail = &batch;
	uint64_t	count;
	int			n = 0;

	if (read(wake_fd, &count, sizeof(count)) < 0)
	{
		/* EAGAIN: nothing pending, which is fine */
	}

	pthread_mutex_lock(&queue_lock);
	while (queue_head != NULL && n < max)
	{
		KvRequest  *req = queue_head;

		queue_head = req->next;
		if (queue_head == NULL)
			queue_tail = NULL;
		queue_len--;
		req->next = NULL;
		if (req->state == KV_REQ_ABANDONED)
		{
			kvq_request_free(req);
			continue;
		}
		req->state = KV_REQ_RUNNING;
		*tail = req;
		tail = &req->next;
		n++;
	}
	if (queue_head != NULL)
	{
		uint64_t	one = 1;

		if (write(wake_fd, &one, sizeof(one)) < 0)
		{
			/* cannot happen short of a counter overflow */
		}
	}
	pthread_mutex_unlock(&queue_lock);
	return batch;
}

/* Caller holds queue_lock. */
static void
do_complete(KvRequest *req)
{
	if (req->state == KV_REQ_ABANDONED)
		kvq_request_free(req);
	else if (req->state != KV_REQ_DONE)
	{
		req->state = KV_REQ_DONE;
		pthread_cond_signal(&req->done_cv);
	}
}

/* Main thread: the reply is filled in; wake the waiting thread. */
void
kvq_complete(KvRequest *req)
{
	pthread_mutex_lock(&queue_lock);
	do_complete(req);
	pthread_mutex_unlock(&queue_lock);
}

/* Main thread: answer a request with an error. */
void
kvq_fail(KvRequest *req, int status, KvError error, const char *message)
{
	pthread_mutex_lock(&queue_lock);
	if (req->state != KV_REQ_ABANDONED && req->state != KV_REQ_DONE)
		kvq_set_error(req, status, error, message);
	do_complete(req);
	pthread_mutex_unlock(&queue_lock);
}

/*
 * Stop taking requests: answer every queued one with 503 'message', and
 * make later submissions get the same answer at once.
 */
void
kvq_close(const char *message)
{
	pthread_mutex_lock(&queue_lock);
	queue_closed = true;
	free(closed_message);
	closed_message = strdup(message);
	while (queue_head != NULL)
	{
		KvRequest  *req = queue_head;

		queue_head = req->next;
		req->next = NULL;
		if (req->state != KV_REQ_ABANDONED)
			kvq_set_error(req, 503, KV_ERR_UNAVAILABLE, message);
		do_complete(req);
	}
	queue_tail = NULL;
	queue_len = 0;
	pthread_mutex_unlock(&queue_lock);
}

/* Accept requests again after kvq_close() (an HTTP server restart). */
void
kvq_reopen(void)
{
	pthread_mutex_lock(&queue_lock);
	queue_closed = (wake_fd < 0);
	pthread_mutex_unlock(&queue_lock);
}

int
kvq_depth(void)
{
	int			n;

	pthread_mutex_lock(&queue_lock);
	n = queue_len;
	pthread_mutex_unlock(&queue_lock);
	return n;
}

int64_t
kvq_now_ms(void)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (int64_t) now.tv_sec * 1000 + now.tv_nsec / 1000000;
}
