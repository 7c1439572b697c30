/*-------------------------------------------------------------------------
 *
 * kvserver.h
 *	  Settings and entry points shared by the server-side files of
 *	  kvserver (the ones that include postgres.h).
 *
 * IDENTIFICATION
 *	  src/pg/kvserver.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef KVSERVER_H
#define KVSERVER_H

#include "fmgr.h"

#include "kv_api.h"

/* GUC variables, defined in kvserver.c */
extern char *kvserver_listen_addresses;
extern int	kvserver_port;
extern char *kvserver_database;
extern int	kvserver_http_threads;
extern int	kvserver_cache_size_kb;
extern int	kvserver_max_key_length;
extern int	kvserver_max_value_size;
extern int	kvserver_request_timeout_ms;
extern int	kvserver_expire_interval_s;
extern char *kvserver_anonymous_role;
extern bool kvserver_allow_superuser;
extern bool kvserver_public_metrics;
extern int	kvserver_auth_max_failures;
extern int	kvserver_auth_failure_window_s;
extern char *kvserver_ssl_certificate;
extern char *kvserver_ssl_key;
extern char *kvserver_primary_url;
extern int	kvserver_executors;
extern int	kvserver_max_watchers;
extern int	kvserver_max_wait_s;
extern int	kvserver_max_txn_ops;

/* worker.c */
extern PGDLLEXPORT void kvserver_worker_main(Datum main_arg);
extern PGDLLEXPORT void kvserver_executor_main(Datum main_arg);

/* invalidate.c */
extern void kv_invalidate_init(void);
extern bool kv_xact_wrote_store(void);

struct KvStagedWrite;
extern void kv_stage_writes(const struct KvStagedWrite *writes, int n);

#endif							/* KVSERVER_H */
