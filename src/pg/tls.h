/*-------------------------------------------------------------------------
 *
 * tls.h
 *	  HTTPS for the worker's HTTP server (src/pg/tls.c).
 *
 * IDENTIFICATION
 *	  src/pg/tls.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef KVSERVER_TLS_H
#define KVSERVER_TLS_H

extern bool kv_tls_prepare(void);
extern int	kv_tls_init_ssl(void *ssl_ctx, void *arg);
extern const char *kv_tls_init_ssl_error(void);
extern bool kv_tls_files_changed(void);

#endif							/* KVSERVER_TLS_H */
