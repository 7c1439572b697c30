/*-------------------------------------------------------------------------
 *
 * executor.c
 *	  An executor: a background worker process, started by the kvserver
 *	  worker (pool.c), that runs batches of HTTP requests against the
 *	  database and sends the answers back.
 *
 * Why processes.  A transaction's commit waits for its WAL flush and, with
 * synchronous standbys, for their confirmation, inside CommitTransaction:
 * the process can do nothing else meanwhile.  When one thread ran all the
 * SQL, every read waited behind every commit (a 200 ms standby delay made
 * every cache miss take 400 ms).  A PostgreSQL backend runs one
 * transaction at a time, so running several at once takes several
 * processes; the worker's main thread now only hands batches out (pool.c).
 *
 * Protocol.  The worker sends KV_WIRE_REQUEST messages and then a
 * KV_WIRE_GO; the executor serves them as one batch with batch.c (writes
 * in one transaction and one commit, each in a subtransaction, exactly as
 * on the main thread before), sends a KV_WIRE_ANSWER for each request as
 * soon as it is answered, and KV_WIRE_DONE when the batch is through.
 * Requests put off by a lock stay here and are retried every KV_RETRY_MS;
 * their answers come later, after the DONE.
 *
 * Failure.  If the worker goes away (its end of a queue detaches), the
 * executor exits: nobody is left to answer.  If the executor dies, the
 * worker answers what it had sent here with 503 and starts another.
 *
 * State: all process-local.  Sends block (the worker always drains its
 * queues without blocking, so they do not block for long); receives do
 * not, so lock retries and interrupts are served while idle.
 *
 * IDENTIFICATION
 *	  src/pg/executor.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/dsm.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/proc.h"
#include "storage/shm_mq.h"
#include "tcop/tcopprot.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/resowner.h"

#include "auth.h"
#include "batch.h"
#include "executor.h"
#include "kvserver.h"
#include "request_queue.h"
#include "wire.h"

static shm_mq_handle *from_worker = NULL;
static shm_mq_handle *to_worker = NULL;

/* The batch being received, in arrival order. */
static KvRequest *inbox_head = NULL;
static KvRequest *inbox_tail = NULL;

static StringInfoData out;

/*
 * Answers to a batch the worker sent (a GO) are not flushed one by one: the
 * worker's latch is set once, when the batch's DONE goes (or when a quarter
 * of the queue is pending), so a batch of n answers wakes the worker's main
 * thread once, not n times.  They come at the end of the batch anyway:
 * writes after its commit, the misses after their one statement.  Answers
 * of a lock retry, which no DONE follows, are flushed each.
 */
static bool in_batch = false;

static void
send_message(const char *data, Size len, bool flush)
{
	if (shm_mq_send(to_worker, len, data, false, flush) != SHM_MQ_SUCCESS)
		proc_exit(0);			/* the worker is gone: nobody to answer */
}

/* batch.c's replier: the answer goes to the worker, the request is freed. */
static void
send_answer(KvRequest *req)
{
	resetStringInfo(&out);
	kv_wire_put_answer(&out, req, req->slot);
	kvq_request_free(req);
	send_message(out.data, out.len, !in_batch);
}

/* batch.c's source of requests: the batch received, up to max of it. */
static KvRequest *
take_inbox(int max)
{
	KvRequest  *list = inbox_head;
	KvRequest  *last = NULL;
	int			n = 0;

	while (inbox_head != NULL && n < max)
	{
		last = inbox_head;
		inbox_head = inbox_head->next;
		n++;
	}
	if (last == NULL)
		return NULL;
	last->next = NULL;
	if (inbox_head == NULL)
		inbox_tail = NULL;
	return list;
}

static void
receive_request(const char *data, Size len)
{
	uint32		slot;
	KvRequest  *req = kv_wire_get_request(data, len, &slot);

	if (req == NULL)
		ereport(FATAL,
				(errmsg("kvserver executor received a malformed request of %zu bytes",
						len)));
	req->slot = slot;
	req->state = KV_REQ_RUNNING;
	req->next = NULL;
	if (inbox_tail)
		inbox_tail->next = req;
	else
		inbox_head = req;
	inbox_tail = req;
}

/* Serve what the worker sent; true if anything came. */
static bool
receive_all(void)
{
	bool		any = false;

	for (;;)
	{
		Size		len;
		void	   *data;
		shm_mq_result res = shm_mq_receive(from_worker, &len, &data, true);

		if (res == SHM_MQ_WOULD_BLOCK)
			return any;
		if (res != SHM_MQ_SUCCESS)
			proc_exit(0);		/* the worker is gone */
		any = true;
		if (len > 0 && ((char *) data)[0] == KV_WIRE_REQUEST)
			receive_request(data, len);
		else if (len == 1 && ((char *) data)[0] == KV_WIRE_GO)
		{
			char		done = KV_WIRE_DONE;

			in_batch = true;
			kv_batch_serve(take_inbox);
			in_batch = false;
			send_message(&done, 1, true);
		}
		else
			ereport(FATAL,
					(errmsg("kvserver executor received an unknown message")));
	}
}

static void
apply_settings(void)
{
	char		ms[32];

	/* a lock wait is cut short and the request retried: see batch.h */
	snprintf(ms, sizeof(ms), "%d", KV_LOCK_WAIT_MS);
	SetConfigOption("lock_timeout", ms, PGC_SUSET, PGC_S_OVERRIDE);
}

/*
 * Prepare the statements and find the tables now rather than in the first
 * batch.  Nothing depends on it: a batch does it again when it fails here
 * (extension not created yet, kv_store locked).
 */
static void
prepare_statements(void)
{
	char	   *why;

	if (OidIsValid(kv_store_xact_begin(&why)))
		kv_store_xact_end();
	else
		pfree(why);
}

void
kvserver_executor_main(Datum main_arg)
{
	dsm_segment *seg;
	KvExecSegment *hdr;
	shm_mq	   *to_me;
	shm_mq	   *from_me;

	pqsignal(SIGTERM, die);
	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	BackgroundWorkerUnblockSignals();

	CurrentResourceOwner = ResourceOwnerCreate(NULL, "kvserver executor");
	seg = dsm_attach(DatumGetUInt32(main_arg));
	if (seg == NULL)
		ereport(FATAL,
				(errmsg("kvserver executor could not attach to its queues: the worker is gone")));
	dsm_pin_mapping(seg);
	hdr = dsm_segment_address(seg);
	if (hdr->magic != KV_EXEC_MAGIC)
		ereport(FATAL,
				(errmsg("kvserver executor found a corrupt queue segment")));
	to_me = (shm_mq *) ((char *) hdr + KV_EXEC_TO_OFFSET);
	from_me = (shm_mq *) ((char *) hdr + KV_EXEC_FROM_OFFSET);
	shm_mq_set_receiver(to_me, MyProc);
	shm_mq_set_sender(from_me, MyProc);
	from_worker = shm_mq_attach(to_me, seg, NULL);
	to_worker = shm_mq_attach(from_me, seg, NULL);
	initStringInfo(&out);

	BackgroundWorkerInitializeConnection(kvserver_database, NULL, 0);
	pgstat_report_appname("kvserver executor");
	kv_auth_worker_init();
	apply_settings();
	kv_batch_set_replier(send_answer);
	prepare_statements();

	for (;;)
	{
		long		timeout;

		pgstat_report_activity(STATE_IDLE, NULL);
		receive_all();
		/* lock retries are due even when nothing new comes */
		if (kv_batch_has_deferred())
			kv_batch_serve(take_inbox);
		timeout = kv_batch_has_deferred() ? KV_RETRY_MS : -1;

		(void) WaitLatch(MyLatch,
						 WL_LATCH_SET | WL_EXIT_ON_PM_DEATH |
						 (timeout >= 0 ? WL_TIMEOUT : 0),
						 timeout, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
			apply_settings();
		}
	}
}
