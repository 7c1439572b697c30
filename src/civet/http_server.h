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
} KvHttpConfig;

extern bool kv_http_start(const KvHttpConfig *cfg, char *errbuf, size_t errlen);
extern void kv_http_stop(void);
extern void kv_http_set_limits(int max_key_length, int64_t max_value_size,
							   int request_timeout_ms);

#endif							/* KVSERVER_HTTP_SERVER_H */
