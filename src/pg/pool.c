/*-------------------------------------------------------------------------
 *
 * pool.c
 *	  The executor pool, seen from the worker's main thread: start the
 *	  executors (executor.c), hand them batches of queued requests, and
 *	  hand their answers back to civetweb's threads.
 *
 * Dispatch.  The main thread takes everything queued and splits it into
 * reads (GET misses, listings, /health, identity checks) and writes.
 * Executor 0 takes reads only, so a read never waits behind a commit,
 * however long the commit waits for a synchronous standby.  The others
 * take writes.  An executor gets a new batch only once it has finished its
 * last one; meanwhile requests gather here, so batches grow under load and
 * one commit serves many writes (group commit).  Requests wait for a busy
 * executor up to SPILL_AFTER_MS before the next idle one takes them (reads
 * a write executor, writes the next write executor), so a slow commit
 * still has the next batch built and committed beside it, and with
 * several write executors several write batches are in flight.  With
 * kvserver.executors = 1 the one executor takes everything; with 0, or
 * while no executor is running, the main thread serves the queue itself
 * as it always did (batch.c).
 *
 * Ownership.  A request handed to an executor stays RUNNING in
 * request_queue.c's terms and sits in the executor's slot table here; the
 * executor works on a copy.  Its answer is copied back into the request,
 * which is then completed.  If the executor exits, every request in its
 * slots is answered with 503: a write's outcome is then unknown, as after
 * a lost connection, never reported as done.  A new executor is started.
 *
 * Never blocking.  Sends to executors do not block (a message that does
 * not fit stays in the executor's outbox until its queue has room); the
 * shm_mq code sets our latch when an executor reads or writes, and the
 * main loop waits on it.  Executors' sends may block, which is safe
 * because this thread drains every queue at every turn.
 *
 * State: all of it belongs to the main thread.
 *
 * IDENTIFICATION
 *	  src/pg/pool.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "miscadmin.h"
#include "nodes/pg_list.h"
#include "postmaster/bgworker.h"
#include "storage/dsm.h"
#include "storage/proc.h"
#include "storage/shm_mq.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "batch.h"
#include "execute.h"
#include "executor.h"
#include "kvserver.h"
#include "metrics.h"
#include "node_role.h"
#include "pool.h"
#include "request_queue.h"
#include "wire.h"

/* Requests one executor may hold, including those waiting for a lock. */
#define SLOTS_PER_EXECUTOR	1024

/*
 * An executor that exited is started again after RESTART_DELAY_MS; one
 * that exits again soon after its start waits twice as long each time, up
 * to RESTART_DELAY_MAX_MS, so a failure at start (say, a dropped database)
 * does not fill the log.
 */
#define RESTART_DELAY_MS		1000
#define RESTART_DELAY_MAX_MS	30000
#define SHORT_LIFE_MS			5000

#define MAX_BATCH_TAKE		256

/*
 * Requests wait for a busy executor whose batch is younger than this
 * rather than go to the next idle one: reads for the read executor,
 * writes for the first write executor.  On a small machine fewer, bigger
 * batches win: one read executor answered 15-20% more misses per second
 * than reads spread over every idle executor, and one write executor
 * 40-50% more PUTs at 16 connections than two, because each batch costs a
 * statement, a commit, a round trip through the queues and a wake-up on
 * both sides.  The limit keeps the other executors' purpose: a slow read
 * (a long listing), a lock wait or a commit waiting for a synchronous
 * standby holds up the requests behind it for this long at most.
 */
#define SPILL_AFTER_MS		5

typedef struct Executor
{
	int			index;
	bool		reads_only;
	bool		running;		/* started and its queues attached */
	bool		busy;			/* a batch sent, its DONE not received */
	TimestampTz busy_since;		/* when that batch was sent */
	dsm_segment *seg;
	shm_mq_handle *to;
	shm_mq_handle *from;
	BackgroundWorkerHandle *handle;
	List	   *outbox;			/* StringInfo messages not sent yet */
	TimestampTz started_at;
	int			restart_delay_ms;
	bool		warned;			/* no slot: said so once */
	int			nused;
	uint32		free_head;		/* free slots, chained through free_next */
	uint32		free_next[SLOTS_PER_EXECUTOR];
	KvRequest  *slots[SLOTS_PER_EXECUTOR];
} Executor;

#define NO_SLOT		UINT32_MAX

/*
 * A slot whose request was answered here (shutdown, HTTP restart) while
 * its executor still works on it: the slot is freed when the answer comes.
 */
static KvRequest dropped;
#define DROPPED		(&dropped)

static Executor *executors = NULL;
static int	nexecutors = 0;
static MemoryContext pool_cxt = NULL;

/* Requests taken from the queue and not yet handed out, oldest first. */
static KvRequest *reads_head = NULL,
		   *reads_tail = NULL;
static KvRequest *writes_head = NULL,
		   *writes_tail = NULL;
static int	npending = 0;

static StringInfoData answer_buf;

/*---- starting and losing executors ----*/

static void
reset_slots(Executor *ex)
{
	uint32		i;

	for (i = 0; i < SLOTS_PER_EXECUTOR; i++)
	{
		ex->slots[i] = NULL;
		ex->free_next[i] = (i + 1 < SLOTS_PER_EXECUTOR) ? i + 1 : NO_SLOT;
	}
	ex->free_head = 0;
	ex->nused = 0;
}

static bool
start_executor(Executor *ex)
{
	BackgroundWorker worker;
	KvExecSegment *hdr;
	shm_mq	   *to;
	shm_mq	   *from;
	MemoryContext oldcxt;

	ex->started_at = GetCurrentTimestamp();
	oldcxt = MemoryContextSwitchTo(pool_cxt);
	ex->seg = dsm_create(KV_EXEC_SEGMENT_SIZE, 0);
	dsm_pin_mapping(ex->seg);
	hdr = dsm_segment_address(ex->seg);
	hdr->magic = KV_EXEC_MAGIC;
	hdr->index = ex->index;
	to = shm_mq_create((char *) hdr + KV_EXEC_TO_OFFSET, KV_EXEC_QUEUE_SIZE);
	from = shm_mq_create((char *) hdr + KV_EXEC_FROM_OFFSET, KV_EXEC_QUEUE_SIZE);
	shm_mq_set_sender(to, MyProc);
	shm_mq_set_receiver(from, MyProc);

	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS |
		BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_ConsistentState;
	worker.bgw_restart_time = BGW_NEVER_RESTART;	/* restarted from here */
	snprintf(worker.bgw_library_name, BGW_MAXLEN, "kvserver");
	snprintf(worker.bgw_function_name, BGW_MAXLEN, "kvserver_executor_main");
	snprintf(worker.bgw_name, BGW_MAXLEN, "kvserver executor %d", ex->index);
	snprintf(worker.bgw_type, BGW_MAXLEN, "kvserver executor");
	worker.bgw_main_arg = UInt32GetDatum(dsm_segment_handle(ex->seg));
	worker.bgw_notify_pid = MyProcPid;
	if (!RegisterDynamicBackgroundWorker(&worker, &ex->handle))
	{
		dsm_detach(ex->seg);
		ex->seg = NULL;
		MemoryContextSwitchTo(oldcxt);
		if (!ex->warned)
			ereport(WARNING,
					(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
					 errmsg("kvserver could not start executor %d: no background worker slot is free",
							ex->index),
					 errhint("Raise max_worker_processes (it must leave room for kvserver.executors + 1 processes), or lower kvserver.executors.")));
		ex->warned = true;
		return false;
	}
	ex->warned = false;
	/* with the handle, a queue also reports an executor that never started */
	ex->to = shm_mq_attach(to, ex->seg, ex->handle);
	ex->from = shm_mq_attach(from, ex->seg, ex->handle);
	MemoryContextSwitchTo(oldcxt);
	ex->running = true;
	ex->busy = false;
	ex->outbox = NIL;
	reset_slots(ex);
	return true;
}

/*
 * The executor is gone (its queue detached): answer what it held with
 * 503 and forget it; kv_pool_serve() starts another.
 */
static void
lose_executor(Executor *ex, const char *message)
{
	uint32		i;
	int			held = ex->nused;
	ListCell   *lc;

	for (i = 0; i < SLOTS_PER_EXECUTOR; i++)
	{
		if (ex->slots[i] != NULL && ex->slots[i] != DROPPED)
			kvq_fail(ex->slots[i], 503, KV_ERR_UNAVAILABLE, message);
		ex->slots[i] = NULL;
	}
	foreach(lc, ex->outbox)
	{
		StringInfo	msg = (StringInfo) lfirst(lc);

		pfree(msg->data);
		pfree(msg);
	}
	list_free(ex->outbox);
	ex->outbox = NIL;
	shm_mq_detach(ex->to);
	shm_mq_detach(ex->from);
	dsm_detach(ex->seg);
	ex->to = ex->from = NULL;
	ex->seg = NULL;
	if (ex->handle)
	{
		TerminateBackgroundWorker(ex->handle);
		pfree(ex->handle);
		ex->handle = NULL;
	}
	ex->running = false;
	ex->busy = false;
	ex->nused = 0;
	if (TimestampDifferenceExceeds(ex->started_at, GetCurrentTimestamp(), SHORT_LIFE_MS))
		ex->restart_delay_ms = RESTART_DELAY_MS;
	else
		ex->restart_delay_ms = Min(ex->restart_delay_ms * 2, RESTART_DELAY_MAX_MS);
	if (held > 0)
		ereport(WARNING,
				(errmsg("kvserver executor %d exited; the %d requests it held were answered with 503",
						ex->index, held)));
	else
		ereport(LOG, (errmsg("kvserver executor %d exited", ex->index)));
}

void
kv_pool_start(void)
{
	int			i;

	if (kvserver_executors <= 0 || executors != NULL)
		return;
	pool_cxt = AllocSetContextCreate(TopMemoryContext, "kvserver executor pool",
									 ALLOCSET_DEFAULT_SIZES);
	initStringInfo(&answer_buf);
	nexecutors = kvserver_executors;
	executors = MemoryContextAllocZero(pool_cxt, sizeof(Executor) * nexecutors);
	for (i = 0; i < nexecutors; i++)
	{
		executors[i].index = i;
		/* with one executor, it must take everything */
		executors[i].reads_only = (i == 0 && nexecutors > 1);
		executors[i].restart_delay_ms = RESTART_DELAY_MS;
		(void) start_executor(&executors[i]);
	}
}

/*---- answers ----*/

static void
receive_answer(Executor *ex, const char *data, Size len)
{
	uint32		slot;
	KvRequest  *req;

	if (!kv_wire_answer_slot(data, len, &slot) || slot >= SLOTS_PER_EXECUTOR ||
		ex->slots[slot] == NULL)
	{
		ereport(WARNING,
				(errmsg("kvserver executor %d sent an answer for no request",
						ex->index)));
		return;
	}
	req = ex->slots[slot];
	ex->slots[slot] = NULL;
	ex->free_next[slot] = ex->free_head;
	ex->free_head = slot;
	ex->nused--;
	if (req == DROPPED)
		return;
	if (!kv_wire_get_answer(data, len, req))
		kvq_set_error(req, 500, KV_ERR_INTERNAL, "malformed answer from an executor");
	if (req->db_error)
		kv_metrics_db_error();

	/*
	 * A client told "primary" may write at once: the HTTP threads must not
	 * still think this node a standby (they refuse writes there).
	 */
	if (req->op == KV_OP_HEALTH && req->status == 200 && !req->standby)
		kv_node_publish(false, 0, 0);
	kvq_complete(req);
}

/* Everything the executors have sent; notices the ones that exited. */
static void
receive_all(void)
{
	int			i;

	for (i = 0; i < nexecutors; i++)
	{
		Executor   *ex = &executors[i];

		while (ex->running)
		{
			Size		len;
			void	   *data;
			shm_mq_result res = shm_mq_receive(ex->from, &len, &data, true);

			if (res == SHM_MQ_WOULD_BLOCK)
				break;
			if (res != SHM_MQ_SUCCESS)
			{
				lose_executor(ex, "the executor serving this request exited: its outcome is unknown");
				break;
			}
			if (len == 1 && ((char *) data)[0] == KV_WIRE_DONE)
				ex->busy = false;
			else
				receive_answer(ex, data, len);
		}
	}
}

/*---- handing out ----*/

/* Try to send what waits in ex's outbox, without blocking. */
static void
flush_outbox(Executor *ex)
{
	while (ex->running && ex->outbox != NIL)
	{
		StringInfo	msg = (StringInfo) linitial(ex->outbox);

		/*
		 * The executor's latch is set by the batch's GO, which flushes the
		 * requests before it: one wake-up per batch.
		 */
		bool		go = msg->len == 1 && msg->data[0] == KV_WIRE_GO;
		shm_mq_result res = shm_mq_send(ex->to, msg->len, msg->data, true, go);

		if (res == SHM_MQ_WOULD_BLOCK)
			return;
		if (res != SHM_MQ_SUCCESS)
		{
			lose_executor(ex, "the executor serving this request exited: its outcome is unknown");
			return;
		}
		ex->outbox = list_delete_first(ex->outbox);
		pfree(msg->data);
		pfree(msg);
	}
}

static void
push(KvRequest **head, KvRequest **tail, KvRequest *req)
{
	req->next = NULL;
	if (*tail)
		(*tail)->next = req;
	else
		*head = req;
	*tail = req;
}

/* Hand ex up to one batch from the list at *head. */
static void
send_batch(Executor *ex, KvRequest **head, KvRequest **tail)
{
	MemoryContext oldcxt = MemoryContextSwitchTo(pool_cxt);
	StringInfo	go;
	int			n = 0;

	while (*head != NULL && n < MAX_BATCH_TAKE && ex->free_head != NO_SLOT)
	{
		KvRequest  *req = *head;
		uint32		slot = ex->free_head;
		StringInfo	msg = makeStringInfo();

		*head = req->next;
		if (*head == NULL)
			*tail = NULL;
		req->next = NULL;
		ex->free_head = ex->free_next[slot];
		ex->slots[slot] = req;
		ex->nused++;
		kv_wire_put_request(msg, req, slot);
		ex->outbox = lappend(ex->outbox, msg);
		n++;
	}
	go = makeStringInfo();
	appendStringInfoChar(go, KV_WIRE_GO);
	ex->outbox = lappend(ex->outbox, go);
	MemoryContextSwitchTo(oldcxt);
	npending -= n;
	ex->busy = true;
	ex->busy_since = GetCurrentTimestamp();
	kv_metrics_batch(n);
	flush_outbox(ex);
}

/* The read executor, while it is running; NULL if none. */
static Executor *
read_executor(void)
{
	/* reads_only is set on executor 0 only when there are others */
	if (executors[0].reads_only && executors[0].running)
		return &executors[0];
	return NULL;
}

/* Has ex's batch been running for SPILL_AFTER_MS? */
static bool
held_long(Executor *ex, TimestampTz now)
{
	return TimestampDifferenceExceeds(ex->busy_since, now, SPILL_AFTER_MS);
}

/*
 * The executor for the next batch of reads or writes; NULL if the batch
 * must wait.  Reads go to the read executor, or, when it is not running,
 * is full or held long, to any idle write executor.  Writes go to the
 * first write executor that is idle, but wait for an earlier one that is
 * busy and not held long.
 */
static Executor *
idle_executor(bool for_reads)
{
	Executor   *reader = for_reads ? read_executor() : NULL;
	TimestampTz now = GetCurrentTimestamp();
	int			i;

	if (reader != NULL && reader->free_head != NO_SLOT)
	{
		if (!reader->busy)
			return reader;
		if (!held_long(reader, now))
			return NULL;
	}
	for (i = 0; i < nexecutors; i++)
	{
		Executor   *ex = &executors[i];

		if (!ex->running || ex->reads_only || ex->free_head == NO_SLOT)
			continue;
		if (!ex->busy)
			return ex;
		if (!for_reads && !held_long(ex, now))
			return NULL;
	}
	return NULL;
}

static bool
any_running(void)
{
	int			i;

	for (i = 0; i < nexecutors; i++)
		if (executors[i].running)
			return true;
	return false;
}

static void
restart_exited(void)
{
	int			i;
	TimestampTz now = GetCurrentTimestamp();

	for (i = 0; i < nexecutors; i++)
	{
		Executor   *ex = &executors[i];

		if (!ex->running &&
			TimestampDifferenceExceeds(ex->started_at, now, ex->restart_delay_ms))
			(void) start_executor(ex);
	}
}

/*
 * One turn of the main loop: collect answers, take the queue, hand out
 * batches.  Returns false when there is no executor to serve with: the
 * caller then serves the queue on its own thread.
 */
bool
kv_pool_serve(void)
{
	KvRequest  *list;
	Executor   *ex;
	int			i;

	if (executors == NULL)
		return false;
	receive_all();
	restart_exited();
	if (!any_running() && npending == 0)
		return false;

	list = kvq_take_all(INT_MAX);
	while (list != NULL)
	{
		KvRequest  *next = list->next;

		if (kv_exec_is_write(list))
			push(&writes_head, &writes_tail, list);
		else
			push(&reads_head, &reads_tail, list);
		npending++;
		list = next;
	}

	while (writes_head != NULL && (ex = idle_executor(false)) != NULL)
		send_batch(ex, &writes_head, &writes_tail);
	while (reads_head != NULL && (ex = idle_executor(true)) != NULL)
		send_batch(ex, &reads_head, &reads_tail);
	for (i = 0; i < nexecutors; i++)
		flush_outbox(&executors[i]);
	return true;
}

/*
 * Milliseconds until a batch held back for a busy executor may go to
 * another, or -1: the main loop must wake then, since nothing else may
 * happen before.
 */
long
kv_pool_wait_ms(void)
{
	TimestampTz now;
	long		wait = -1;
	int			i;

	if (reads_head == NULL && writes_head == NULL)
		return -1;
	now = GetCurrentTimestamp();
	for (i = 0; executors != NULL && i < nexecutors; i++)
	{
		Executor   *ex = &executors[i];
		long		left;

		if (!ex->running || !ex->busy || held_long(ex, now))
			continue;
		left = Max(1, SPILL_AFTER_MS - TimestampDifferenceMilliseconds(ex->busy_since, now));
		if (wait < 0 || left < wait)
			wait = left;
	}
	return wait;
}

/* Shutdown or HTTP restart: answer every request the pool holds. */
void
kv_pool_fail_all(const char *message)
{
	KvRequest  *lists[2] = {reads_head, writes_head};
	int			i;
	uint32		s;

	for (i = 0; i < 2; i++)
	{
		KvRequest  *req = lists[i];

		while (req != NULL)
		{
			KvRequest  *next = req->next;

			kvq_fail(req, 503, KV_ERR_UNAVAILABLE, message);
			req = next;
		}
	}
	reads_head = reads_tail = writes_head = writes_tail = NULL;
	npending = 0;

	/*
	 * The executors go on with what they hold; their slots stay taken
	 * until the answers come, and those are dropped.
	 */
	for (i = 0; executors != NULL && i < nexecutors; i++)
	{
		Executor   *ex = &executors[i];

		for (s = 0; s < SLOTS_PER_EXECUTOR; s++)
		{
			if (ex->slots[s] != NULL && ex->slots[s] != DROPPED)
			{
				kvq_fail(ex->slots[s], 503, KV_ERR_UNAVAILABLE, message);
				ex->slots[s] = DROPPED;
			}
		}
	}
}
