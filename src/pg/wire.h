/*-------------------------------------------------------------------------
 *
 * wire.h
 *	  The messages between the worker's main thread and its executors
 *	  (src/pg/wire.c).
 *
 * IDENTIFICATION
 *	  src/pg/wire.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef KVSERVER_WIRE_H
#define KVSERVER_WIRE_H

#include "lib/stringinfo.h"

#include "request_queue.h"

/* The first byte of every message says what it is. */
#define KV_WIRE_REQUEST		'R'		/* worker -> executor: one request */
#define KV_WIRE_GO			'G'		/* worker -> executor: end of a batch */
#define KV_WIRE_ANSWER		'A'		/* executor -> worker: one answer */
#define KV_WIRE_DONE		'D'		/* executor -> worker: batch served */

extern void kv_wire_put_request(StringInfo buf, const KvRequest *req,
								uint32 slot);
extern KvRequest *kv_wire_get_request(const char *data, Size len,
									  uint32 *slot);
extern void kv_wire_put_answer(StringInfo buf, const KvRequest *req,
							   uint32 slot);
extern bool kv_wire_answer_slot(const char *data, Size len, uint32 *slot);
extern bool kv_wire_get_answer(const char *data, Size len, KvRequest *req);

#endif							/* KVSERVER_WIRE_H */
