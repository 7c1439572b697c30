/*-------------------------------------------------------------------------
 *
 * http_parse.h
 *	  Pure functions over request text: routing, key decoding and
 *	  validation, query strings, JSON bodies, JSON replies.
 *
 * No PostgreSQL and no civetweb, so each can be unit-tested and fuzzed on
 * its own.  Results are malloc'd.
 *
 * IDENTIFICATION
 *	  src/civet/http_parse.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef KVSERVER_HTTP_PARSE_H
#define KVSERVER_HTTP_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "request_queue.h"

typedef enum KvRoute
{
	KV_ROUTE_NOT_FOUND,
	KV_ROUTE_KEY,				/* /kv/{key} */
	KV_ROUTE_COLLECTION,		/* /kv/ or /kv */
	KV_ROUTE_HEALTH,			/* /health */
	KV_ROUTE_METRICS,			/* /metrics */
	KV_ROUTE_DASHBOARD,			/* / */
	KV_ROUTE_TXN				/* /txn */
} KvRoute;

/* Bounds that are not settings. */
#define KV_LIST_DEFAULT_LIMIT	100
#define KV_LIST_MAX_LIMIT		1000
#define KV_JSON_MAX_DEPTH		32
#define KV_MAX_TTL_SECONDS		(INT64_C(100) * 365 * 24 * 3600)

extern KvRoute kv_route(const char *path, const char **key_raw);
extern KvError kv_decode_key(const char *raw, size_t max_key_len,
							 char **key, size_t *key_len);
extern bool kv_parse_int64(const char *s, size_t len, int64_t *out);
extern KvError kv_query_param(const char *query, const char *name,
							  char **value);
extern KvError kv_parse_list_query(const char *query, char **prefix,
								   char **after, int *limit,
								   const char **why);
extern bool kv_ttl_valid(int64_t ttl);
extern KvError kv_parse_ttl(const char *query, int64_t *ttl, const char **why);
extern bool kv_parse_duration(const char *s, int64_t *ms);
extern KvError kv_parse_watch_query(const char *query, int64_t *wait_ms,
									uint64_t *index, bool *has_index,
									const char **why);
extern KvError kv_parse_create_body(const char *body, size_t len,
									size_t max_key_len,
									char **key, size_t *key_len,
									char **value, size_t *value_len,
									int64_t *ttl, const char **why);

extern KvError kv_parse_txn_body(const char *body, size_t len,
								 size_t max_key_len, int max_ops,
								 int64_t max_value_size,
								 KvTxnOp **ops, int *nops, int *bad_op,
								 const char **why);

extern KvError kv_parse_etag(const char *header, bool strong,
							 int64_t *version);

extern char *kv_json_error(KvError error, const char *message, size_t *len);
extern char *kv_json_error_op(KvError error, const char *message, int op,
							  size_t *len);
extern char *kv_json_keys(char **keys, int nkeys, const char *next,
						  size_t *len);
extern char *kv_json_write_reply(const char *key, size_t key_len,
								 int64_t version);
extern char *kv_json_txn_results(const KvTxnOp *ops, int nops, size_t *len);
extern char *kv_json_health(const char *database, bool standby,
							uint64_t replay_lsn, int64_t replay_lag_us);

#endif							/* KVSERVER_HTTP_PARSE_H */
