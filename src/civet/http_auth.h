/*-------------------------------------------------------------------------
 *
 * http_auth.h
 *	  Who is asking: credentials from the Authorization header and the
 *	  cache of verified credentials (src/civet/http_auth.c); the failed-
 *	  login limit per client address, one check per credential at a time
 *	  and the rate of checks (src/civet/http_auth_guard.c).
 *
 * civetweb side: plain C and OpenSSL's libcrypto, no PostgreSQL.
 *
 * IDENTIFICATION
 *	  src/civet/http_auth.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef KVSERVER_HTTP_AUTH_H
#define KVSERVER_HTTP_AUTH_H

#include <stdbool.h>
#include <stdint.h>

#include "http_request.h"
#include "request_queue.h"

#define KV_AUTH_KEY_LEN	32

/* The identity of one request. */
typedef struct KvIdentity
{
	KvAuthKind	kind;
	char	   *user;			/* BASIC; malloc'd */
	char	   *secret;			/* BASIC password, BEARER token; malloc'd */
	unsigned char key[KV_AUTH_KEY_LEN];	/* keyed hash of the above */
	bool		verified;		/* found in the credential cache */
	uint32_t	role;			/* when verified */
	bool		may_hit;		/* when verified: cache hits allowed */
	uint64_t	generation;		/* when verified */
	const char *addr;			/* client address, for failed logins */
	bool		charged;		/* counted as a failure until it succeeds */
	bool		leader;			/* checking these credentials for everyone */
} KvIdentity;

/* Published by the main thread (kv_http_set_auth in http_server.h). */
extern bool kv_auth_public_metrics(void);

extern int	kv_auth_identify(const KvHttpCtx *ctx, KvIdentity *id);
extern bool kv_auth_attach(const KvIdentity *id, KvRequest *req);
extern void kv_auth_learn(const KvHttpCtx *ctx, const KvRequest *req);
extern void kv_auth_release(KvIdentity *id);

/* http_auth_guard.c */
extern void kv_auth_guard_configure(int max_failures, int failure_window_s);
extern int	kv_auth_blocked_for(const char *addr);
extern int	kv_auth_charge_attempt(const char *addr, KvIdentity *id);
extern void kv_auth_settle_attempt(const char *addr, KvIdentity *id,
								   bool failed);
extern bool kv_auth_await_check(KvIdentity *id);
extern void kv_auth_end_check(KvIdentity *id);
extern bool kv_auth_take_check_turn(void);

#endif							/* KVSERVER_HTTP_AUTH_H */
