/*-------------------------------------------------------------------------
 *
 * auth.h
 *	  Verify who an HTTP request comes from, and run it as that role
 *	  (src/pg/auth.c); tokens (src/pg/tokens.c).
 *
 * Worker main thread, except the token functions, which also serve SQL.
 *
 * IDENTIFICATION
 *	  src/pg/auth.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef KVSERVER_AUTH_H
#define KVSERVER_AUTH_H

#include "datatype/timestamp.h"

#include "request_queue.h"

/* How long a verified identity may be reused by the HTTP threads. */
#define KV_AUTH_REUSE_MS	60000

/* The main thread reads catalog invalidations at least this often. */
#define KV_AUTH_TICK_MS		1000

extern Size kv_auth_shmem_size(void);
extern void kv_auth_shmem_startup(void);
extern void kv_auth_worker_init(void);
extern void kv_auth_bind(Oid store_relid, Oid token_relid);
extern void kv_auth_publish(void);
extern void kv_auth_reload(void);
extern void kv_auth_tick(void);
extern bool kv_auth_trusted(KvRequest *req, Oid store_relid);
extern void kv_auth_verify(KvRequest *req, Oid store_relid);

/* tokens.c */
extern Oid	kv_token_relid(Oid nspid);
extern bool kv_token_lookup(Oid nspid, const char *token, Oid *role,
							TimestampTz *expires_at);

#endif							/* KVSERVER_AUTH_H */
