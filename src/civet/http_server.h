/*-------------------------------------------------------------------------
 *
 * http_server.h
 *	  Start and stop the embedded civetweb server (src/civet/http_server.c).
 *
 * Called from the worker's main thread only.  Plain C types, so the
 * worker (which includes postgres.h) and the HTTP glue (which must not)
 * can share it.
 *
 * IDENTIFICATION
 *	  src/civet/http_server.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef KVSERVER_HTTP_SERVER_H
#define KVSERVER_HTTP_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct KvHttpConfig
{
	const char *listen_addresses;	/* comma-separated; "*" = all */
	int			port;
	int			threads;
	int			request_timeout_ms;

	/*
	 * HTTPS when set: civetweb calls tls_init(ssl_ctx, tls_arg) on this
	 * thread, inside kv_http_start(), to load the certificate and key into
	 * its SSL_CTX; it returns 1 when done, -1 on failure.  Call
	 * kv_http_tls_init() first.  NULL: plain HTTP.
	 */
	int			(*tls_init) (void *ssl_ctx, void *arg);
	void	   *tls_arg;
} KvHttpConfig;

extern bool kv_http_tls_init(char *errbuf, size_t errlen);

extern bool kv_http_start(const KvHttpConfig *cfg, char *errbuf, size_t errlen);
extern void kv_http_stop(void);
extern void kv_http_set_auth(bool anonymous, bool public_metrics,
							 int max_failures, int failure_window_s);
extern void kv_http_set_auth_generation(uint64_t generation);
extern void kv_http_set_limits(int max_key_length, int64_t max_value_size,
							   int request_timeout_ms);
extern void kv_http_set_txn_limit(int max_ops);

#endif							/* KVSERVER_HTTP_SERVER_H */
