/*-------------------------------------------------------------------------
 *
 * txn.h
 *	  Run a transaction of POST /txn (src/pg/txn.c).
 *
 * Expects what store.h expects: an open transaction (batch.c gives each
 * request its own subtransaction), an active snapshot and an SPI
 * connection.  Worker main thread or executor only.
 *
 * IDENTIFICATION
 *	  src/pg/txn.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef KVSERVER_TXN_H
#define KVSERVER_TXN_H

#include "request_queue.h"

extern bool kv_txn_execute(KvRequest *req);

#endif							/* KVSERVER_TXN_H */
