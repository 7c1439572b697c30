/*-------------------------------------------------------------------------
 *
 * kv_api.h
 *	  Facts of the API that both sides of the thread boundary must agree
 *	  on: error codes, the key rule, setting defaults, content types and
 *	  PostgreSQL's timestamp epoch.
 *
 * Each of these is written here once.  The civetweb side (src/civet/) and
 * the PostgreSQL side (src/pg/) both include this header, so it uses
 * plain C types only, and kv_api.c calls nothing from PostgreSQL.
 *
 * IDENTIFICATION
 *	  src/civet/kv_api.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef KVSERVER_KV_API_H
#define KVSERVER_KV_API_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Error codes of the HTTP API: the "error" field of a JSON error body. */
typedef enum KvError
{
	KV_ERR_NONE = 0,
	KV_ERR_BAD_REQUEST,
	KV_ERR_BAD_KEY,
	KV_ERR_KEY_TOO_LONG,
	KV_ERR_NOT_FOUND,
	KV_ERR_METHOD_NOT_ALLOWED,
	KV_ERR_CONFLICT,
	KV_ERR_PRECONDITION_FAILED,
	KV_ERR_VALUE_TOO_LARGE,
	KV_ERR_UNAVAILABLE,
	KV_ERR_INTERNAL,
	KV_ERR_UNAUTHORIZED,		/* 401: no identity, or a wrong one */
	KV_ERR_FORBIDDEN,			/* 403: the role may not do this */
	KV_ERR_TOO_MANY_REQUESTS,	/* 429: too many failed logins */
	KV_ERR_READ_ONLY			/* 503 or 307: a write on a hot standby */
} KvError;

/*
 * Defaults of the kvserver.* settings.  kvserver.c defines the GUCs with
 * them, and the HTTP side starts with them until the worker publishes the
 * configured values.
 */
#define KV_DEFAULT_LISTEN_ADDRESSES		"127.0.0.1"
#define KV_DEFAULT_PORT					8080
#define KV_DEFAULT_DATABASE				"postgres"
#define KV_DEFAULT_HTTP_THREADS			256
#define KV_DEFAULT_CACHE_SIZE_KB		(64 * 1024)
#define KV_DEFAULT_MAX_KEY_LENGTH		1024
#define KV_DEFAULT_MAX_VALUE_SIZE		(1024 * 1024)
#define KV_DEFAULT_REQUEST_TIMEOUT_MS	5000
#define KV_DEFAULT_EXPIRE_INTERVAL_S	10
#define KV_DEFAULT_SSL_CERTIFICATE		""	/* plain HTTP */
#define KV_DEFAULT_SSL_KEY				""	/* in the certificate file */
#define KV_DEFAULT_PRIMARY_URL			""	/* standby writes get 503 */
#define KV_DEFAULT_EXECUTORS			3	/* one for reads, two for writes */
#define KV_DEFAULT_MAX_WAIT_S			300 /* longest ?wait= of a watch */
#define KV_DEFAULT_MAX_WATCHERS			(-1)	/* half of kvserver.http_threads */
#define KV_DEFAULT_MAX_TXN_OPS			128 /* operations in one POST /txn */

/*
 * Longest kvserver.primary_url, and longest Location a standby sends: the
 * primary's URL followed by the request's own path and query.
 */
#define KV_MAX_PRIMARY_URL_LEN	1024
#define KV_MAX_LOCATION_LEN		4096

/* Content type recorded for values written as text (POST, kv_put(text)). */
#define KV_TEXT_CONTENT_TYPE	"text/plain; charset=utf-8"
/*
 * Longest content type (kv_content_type_valid): a PUT's Content-Type, a
 * stored content_type (CHECK constraint kv_store_content_type_valid) and
 * any content type a reply echoes.
 */
#define KV_MAX_CONTENT_TYPE_LEN	255

/* Seconds from the Unix epoch (1970) to PostgreSQL's (2000-01-01). */
#define KV_PG_EPOCH_UNIX_SECS	INT64_C(946684800)

extern const char *kv_error_code(KvError error);
extern bool kv_utf8_valid(const char *s, size_t len);
extern KvError kv_check_key(const char *key, size_t key_len,
							size_t max_key_len);
extern bool kv_content_type_valid(const char *s, size_t len);
extern const char *kv_primary_url_problem(const char *url);
extern int64_t kv_pg_timestamp_now(void);
extern bool kv_format_timestamp(int64_t pg_ts, char *buf, size_t len);

#endif							/* KVSERVER_KV_API_H */
