/*-------------------------------------------------------------------------
 *
 * executor.h
 *	  What the worker's main thread (pool.c) and an executor process
 *	  (executor.c) share: the layout of the dynamic shared memory segment
 *	  that carries their two message queues.
 *
 * IDENTIFICATION
 *	  src/pg/executor.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef KVSERVER_EXECUTOR_H
#define KVSERVER_EXECUTOR_H

#define KV_EXEC_MAGIC		0x6b766578	/* "kvex" */

/*
 * Each direction's ring.  A message larger than this (a value near
 * kvserver.max_value_size) passes in pieces, so it bounds memory, not the
 * size of a value.
 */
#define KV_EXEC_QUEUE_SIZE	(256 * 1024)

/* The segment: this header, then the queue to the executor, then back. */
typedef struct KvExecSegment
{
	uint32		magic;
	int			index;			/* which executor: 0 .. executors - 1 */
} KvExecSegment;

#define KV_EXEC_TO_OFFSET	MAXALIGN(sizeof(KvExecSegment))
#define KV_EXEC_FROM_OFFSET	(KV_EXEC_TO_OFFSET + KV_EXEC_QUEUE_SIZE)
#define KV_EXEC_SEGMENT_SIZE	(KV_EXEC_FROM_OFFSET + KV_EXEC_QUEUE_SIZE)

#endif							/* KVSERVER_EXECUTOR_H */
