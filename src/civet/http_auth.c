/*-------------------------------------------------------------------------
 *
 * http_auth.c
 *	  Who is asking, on the civetweb thread: read the credentials of the
 *	  Authorization header, find them in the cache of verified
 *	  credentials, refuse an address that failed too often, and learn
 *	  from the main thread's verdict.
 *
 * The main thread verifies (src/pg/auth.c: a password against the role's
 * SCRAM or md5 secret, a token against kv_token, the anonymous role) and
 * answers with the role and whether that role may read cache hits here.
 * This file keeps that verdict, so that the next request with the same
 * credentials is served without the main thread: an authenticated GET hit
 * stays on the civetweb thread.
 *
 * The credential cache is keyed by HMAC-SHA256 under a key drawn at start,
 * never by the password itself, and compared in constant time.  An entry
 * is good until the time the main thread gave it (at most a minute, never
 * past the role's VALID UNTIL or the token's expiry) and only while the
 * auth generation it was verified at is current: the main thread bumps the
 * generation whenever a catalog change could alter a verdict (roles,
 * passwords, memberships, GRANTs, row-level security, tokens), so every
 * entry is dropped within the main thread's invalidation delay.
 *
 * Failed logins are counted per client address in a fixed window: once
 * an address has failed kvserver.auth_max_failures times in
 * kvserver.auth_failure_window, its requests with credentials get 429
 * without being checked until the window ends.  Other clients are not
 * affected, and a refused request costs the main thread nothing.  And
 * however many addresses present new credentials, at most CHECKS_PER_SEC
 * checks a second reach the main thread (see take_check_turn).
 *
 * Locking: cache_lock (a rwlock) protects the credential cache,
 * failure_lock the failure table; settings are atomics.  Nothing here
 * blocks on the main thread.
 *
 * civetweb side: runs on civetweb threads, no PostgreSQL.
 *
 * IDENTIFICATION
 *	  src/civet/http_auth.c
 *
 *-------------------------------------------------------------------------
 */
#include "http_auth.h"

#include <civetweb.h>
#include <errno.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <time.h>

#include "http_parse.h"
#include "http_reply.h"
#include "http_server.h"
#include "kv_api.h"

#ifdef PG_MAJORVERSION
#error "http_auth.c runs on civetweb threads: no PostgreSQL headers"
#endif

/* Longest user name (PostgreSQL's NAMEDATALEN - 1) and secret accepted. */
#define MAX_USER_LEN	63
#define MAX_SECRET_LEN	1024
#define MAX_HEADER_LEN	2048

/* Credential cache: CACHE_SETS sets of CACHE_WAYS entries. */
#define CACHE_SETS		512
#define CACHE_WAYS		4

/*
 * Credentials the cache does not know are checked on the worker's main
 * thread (a SCRAM check is about a millisecond of its time).  However many
 * clients present new credentials, at most CHECKS_PER_SEC checks a second
 * reach it: a request over the rate waits its turn on its own thread, up
 * to CHECK_MAX_WAIT_MS, and is refused with 429 beyond that.  Requests
 * whose credentials are cached are never held back.
 */
#define CHECKS_PER_SEC		100
#define CHECK_MAX_WAIT_MS	2000

/* Failure table: FAIL_SLOTS addresses, found within FAIL_PROBES slots. */
#define FAIL_SLOTS		1024
#define FAIL_PROBES		8

typedef struct CachedCredential
{
	unsigned char key[KV_AUTH_KEY_LEN];
	bool		used;
	uint32_t	role;
	bool		may_hit;
	uint64_t	generation;
	int64_t		valid_until_ms;
} CachedCredential;

typedef struct FailureCount
{
	char		addr[48];
	int64_t		window_start_ms;
	int			failures;		/* including attempts in flight */
	bool		inflight[4];	/* INFLIGHT_KEYS */
	unsigned char inflight_key[4][KV_AUTH_KEY_LEN];
} FailureCount;

static pthread_rwlock_t cache_lock = PTHREAD_RWLOCK_INITIALIZER;
static CachedCredential cache[CACHE_SETS][CACHE_WAYS];

static pthread_mutex_t failure_lock = PTHREAD_MUTEX_INITIALIZER;

static pthread_mutex_t check_lock = PTHREAD_MUTEX_INITIALIZER;
static double check_tokens = CHECKS_PER_SEC;
static int64_t check_refilled_ms = 0;
static FailureCount failures[FAIL_SLOTS];

static unsigned char hmac_key[32];
static pthread_once_t hmac_key_once = PTHREAD_ONCE_INIT;
static bool hmac_key_ok = false;

/* Settings and the auth generation, published by the main thread. */
static bool set_anonymous = false;
static bool set_public_metrics = false;
static int	set_max_failures = 10;
static int	set_failure_window_s = 60;
static uint64_t auth_generation = 0;

/*---- settings ----*/

void
kv_http_set_auth(bool anonymous, bool public_metrics, int max_failures,
				 int failure_window_s)
{
	__atomic_store_n(&set_anonymous, anonymous, __ATOMIC_RELAXED);
	__atomic_store_n(&set_public_metrics, public_metrics, __ATOMIC_RELAXED);
	__atomic_store_n(&set_max_failures, max_failures, __ATOMIC_RELAXED);
	__atomic_store_n(&set_failure_window_s, failure_window_s, __ATOMIC_RELAXED);
}

void
kv_http_set_auth_generation(uint64_t generation)
{
	__atomic_store_n(&auth_generation, generation, __ATOMIC_RELEASE);
}

bool
kv_auth_public_metrics(void)
{
	return __atomic_load_n(&set_public_metrics, __ATOMIC_RELAXED);
}

static uint64_t
current_generation(void)
{
	return __atomic_load_n(&auth_generation, __ATOMIC_ACQUIRE);
}

/*---- keyed hash ----*/

static void
init_hmac_key(void)
{
	size_t		got = 0;

	while (got < sizeof(hmac_key))
	{
		ssize_t		n = getrandom(hmac_key + got, sizeof(hmac_key) - got, 0);

		if (n <= 0)
			return;
		got += n;
	}
	hmac_key_ok = true;
}

/* HMAC-SHA256(kind, user, NUL, secret) under this process's random key. */
static bool
credential_key(const KvIdentity *id, unsigned char *out)
{
	size_t		ulen = id->user ? strlen(id->user) + 1 : 0;
	size_t		slen = id->secret ? strlen(id->secret) : 0;
	size_t		len = 1 + ulen + slen;
	unsigned char *buf;
	unsigned int outlen = 0;
	bool		ok;

	pthread_once(&hmac_key_once, init_hmac_key);
	if (!hmac_key_ok || (buf = malloc(len)) == NULL)
		return false;
	buf[0] = (unsigned char) id->kind;
	if (ulen)
		memcpy(buf + 1, id->user, ulen);
	if (slen)
		memcpy(buf + 1 + ulen, id->secret, slen);
	ok = HMAC(EVP_sha256(), hmac_key, sizeof(hmac_key), buf, len, out,
			  &outlen) != NULL && outlen == KV_AUTH_KEY_LEN;
	explicit_bzero(buf, len);
	free(buf);
	return ok;
}

/*---- credential cache ----*/

static CachedCredential *
cache_set(const unsigned char *key)
{
	uint32_t	h;

	memcpy(&h, key, sizeof(h));
	return cache[h % CACHE_SETS];
}

static bool
cache_lookup(KvIdentity *id)
{
	CachedCredential *set = cache_set(id->key);
	uint64_t	generation = current_generation();
	int64_t		now = kvq_now_ms();
	int			w;
	bool		found = false;

	pthread_rwlock_rdlock(&cache_lock);
	for (w = 0; w < CACHE_WAYS; w++)
	{
		CachedCredential *c = &set[w];

		if (c->used && CRYPTO_memcmp(c->key, id->key, KV_AUTH_KEY_LEN) == 0 &&
			c->generation == generation && now < c->valid_until_ms)
		{
			id->role = c->role;
			id->may_hit = c->may_hit;
			id->generation = c->generation;
			found = true;
		}
	}
	pthread_rwlock_unlock(&cache_lock);
	return found;
}

static void
cache_store(const unsigned char *key, const KvRequest *req)
{
	CachedCredential *set = cache_set(key);
	CachedCredential *victim = &set[0];
	int			w;

	pthread_rwlock_wrlock(&cache_lock);
	for (w = 0; w < CACHE_WAYS; w++)
	{
		CachedCredential *c = &set[w];

		if (!c->used || CRYPTO_memcmp(c->key, key, KV_AUTH_KEY_LEN) == 0)
		{
			victim = c;
			break;
		}
		if (c->valid_until_ms < victim->valid_until_ms)
			victim = c;
	}
	memcpy(victim->key, key, KV_AUTH_KEY_LEN);
	victim->used = true;
	victim->role = req->role;
	victim->may_hit = req->role_may_hit;
	victim->generation = req->role_generation;
	victim->valid_until_ms = req->role_valid_ms;
	pthread_rwlock_unlock(&cache_lock);
}

/*---- failed logins ----*/

/*
 * An attempt with credentials the cache does not know is charged to its
 * address as a failure before it is checked, and refunded if it succeeds:
 * so attempts in flight count, and an address cannot get past the limit by
 * sending many guesses at once.  The same credentials sent on several
 * connections at once (a client's connection pool starting) are charged
 * once: only the first is "in flight", the others learn their verdict and
 * count as failures only if it is one.
 */
#define INFLIGHT_KEYS	4

static uint64_t
addr_hash(const char *addr)
{
	uint64_t	h;
	const char *p;

	/* keyed, so nobody can pick addresses that collide on purpose */
	pthread_once(&hmac_key_once, init_hmac_key);
	memcpy(&h, hmac_key, sizeof(h));
	h ^= UINT64_C(14695981039346656037);
	for (p = addr; *p; p++)
		h = (h ^ (unsigned char) *p) * UINT64_C(1099511628211);
	return h;
}

/*
 * The slot of 'addr', made if 'create'.  When every slot it may use is
 * taken by a live window, the oldest one is given up: losing another
 * address's count is better than never counting this one.  Caller holds
 * failure_lock.
 */
static FailureCount *
do_failure_slot(const char *addr, int64_t now, int64_t window_ms, bool create)
{
	uint64_t	h = addr_hash(addr);
	int			i;
	FailureCount *victim = NULL;

	for (i = 0; i < FAIL_PROBES; i++)
	{
		FailureCount *f = &failures[(h + i) % FAIL_SLOTS];

		if (strcmp(f->addr, addr) == 0)
			return f;
		if (f->addr[0] == '\0' || now - f->window_start_ms >= window_ms)
		{
			if (victim == NULL || victim->addr[0] != '\0')
				victim = f;
		}
		else if (victim == NULL ||
				 (victim->addr[0] != '\0' && now - victim->window_start_ms < window_ms &&
				  f->window_start_ms < victim->window_start_ms))
			victim = f;
	}
	if (!create)
		return NULL;
	memset(victim, 0, sizeof(*victim));
	strncpy(victim->addr, addr, sizeof(victim->addr) - 1);
	victim->window_start_ms = now;
	return victim;
}

/* Start a new window when the old one is over.  Caller holds failure_lock. */
static void
do_roll_window(FailureCount *f, int64_t now, int64_t window_ms)
{
	if (now - f->window_start_ms >= window_ms)
	{
		f->window_start_ms = now;
		f->failures = 0;
	}
}

static int64_t
window_ms(void)
{
	return (int64_t) __atomic_load_n(&set_failure_window_s, __ATOMIC_RELAXED) * 1000;
}

/*
 * May this attempt go on?  Returns 0, having charged it (id->charged) when
 * its credentials are not in flight already; or the seconds the address
 * must wait.
 */
static int
charge_attempt(const char *addr, KvIdentity *id)
{
	int64_t		now = kvq_now_ms();
	int64_t		window = window_ms();
	int			max = __atomic_load_n(&set_max_failures, __ATOMIC_RELAXED);
	FailureCount *f;
	int			wait = 0;
	int			i;
	int			free_key = -1;

	if (max <= 0)
		return 0;
	pthread_mutex_lock(&failure_lock);
	f = do_failure_slot(addr, now, window, true);
	do_roll_window(f, now, window);
	if (f->failures >= max)
		wait = (int) ((f->window_start_ms + window - now + 999) / 1000);
	else
	{
		for (i = 0; i < INFLIGHT_KEYS; i++)
		{
			if (f->inflight[i] &&
				memcmp(f->inflight_key[i], id->key, KV_AUTH_KEY_LEN) == 0)
				break;
			if (!f->inflight[i] && free_key < 0)
				free_key = i;
		}
		if (i == INFLIGHT_KEYS)
		{
			/* not in flight yet: charge it */
			f->failures++;
			id->charged = true;
			if (free_key >= 0)
			{
				memcpy(f->inflight_key[free_key], id->key, KV_AUTH_KEY_LEN);
				f->inflight[free_key] = true;
			}
		}
	}
	pthread_mutex_unlock(&failure_lock);
	return wait;
}

/* Seconds this address must wait before it may try again, or 0. */
static int
blocked_for(const char *addr)
{
	int64_t		now = kvq_now_ms();
	int64_t		window = window_ms();
	int			max = __atomic_load_n(&set_max_failures, __ATOMIC_RELAXED);
	FailureCount *f;
	int			wait = 0;

	if (max <= 0)
		return 0;
	pthread_mutex_lock(&failure_lock);
	f = do_failure_slot(addr, now, window, false);
	if (f != NULL && now - f->window_start_ms < window && f->failures >= max)
		wait = (int) ((f->window_start_ms + window - now + 999) / 1000);
	pthread_mutex_unlock(&failure_lock);
	return wait;
}

/*
 * Settle an attempt: 'failed' says how it went; unknown (the main thread
 * gave no verdict) counts as not failed.
 */
static void
settle_attempt(const char *addr, KvIdentity *id, bool failed)
{
	int64_t		now = kvq_now_ms();
	int64_t		window = window_ms();
	FailureCount *f;
	int			i;

	if (__atomic_load_n(&set_max_failures, __ATOMIC_RELAXED) <= 0)
		return;
	pthread_mutex_lock(&failure_lock);
	f = do_failure_slot(addr, now, window, failed);
	if (f != NULL)
	{
		do_roll_window(f, now, window);
		if (id->charged)
		{
			for (i = 0; i < INFLIGHT_KEYS; i++)
				if (f->inflight[i] &&
					memcmp(f->inflight_key[i], id->key, KV_AUTH_KEY_LEN) == 0)
					f->inflight[i] = false;
			if (!failed && f->failures > 0)
				f->failures--;
		}
		else if (failed)
			f->failures++;
	}
	id->charged = false;
	pthread_mutex_unlock(&failure_lock);
}

/*---- the rate of checks ----*/

/*
 * Take a turn to have credentials checked: a token bucket of
 * CHECKS_PER_SEC, one second deep.  Sleeps until the turn comes; false
 * when it would be more than CHECK_MAX_WAIT_MS away.
 */
static bool
take_check_turn(void)
{
	int64_t		now = kvq_now_ms();
	int64_t		wait_ms;

	pthread_mutex_lock(&check_lock);
	if (check_refilled_ms == 0)
		check_refilled_ms = now;
	check_tokens += (double) (now - check_refilled_ms) * CHECKS_PER_SEC / 1000.0;
	if (check_tokens > CHECKS_PER_SEC)
		check_tokens = CHECKS_PER_SEC;
	check_refilled_ms = now;
	check_tokens -= 1;
	wait_ms = check_tokens >= 0 ? 0 :
		(int64_t) (-check_tokens * 1000.0 / CHECKS_PER_SEC) + 1;
	if (wait_ms > CHECK_MAX_WAIT_MS)
		check_tokens += 1;		/* not taken after all */
	pthread_mutex_unlock(&check_lock);
	if (wait_ms > CHECK_MAX_WAIT_MS)
		return false;
	if (wait_ms > 0)
	{
		struct timespec ts = {wait_ms / 1000, (wait_ms % 1000) * 1000000L};

		while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
			;
	}
	return true;
}

/*---- the Authorization header ----*/

/* Strict base64 (RFC 4648, padded); NUL-terminated result, or NULL. */
static char *
base64_decode(const char *in, size_t len, size_t *out_len)
{
	char	   *out;
	int			n;
	size_t		pad = 0;

	if (len == 0 || len % 4 != 0 || strspn(in, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=") < len)
		return NULL;
	while (pad < 2 && in[len - 1 - pad] == '=')
		pad++;
	if (memchr(in, '=', len - pad) != NULL)
		return NULL;
	out = malloc(len / 4 * 3 + 1);
	if (out == NULL)
		return NULL;
	n = EVP_DecodeBlock((unsigned char *) out, (const unsigned char *) in, (int) len);
	if (n < 0 || (size_t) n < pad)
	{
		free(out);
		return NULL;
	}
	*out_len = (size_t) n - pad;
	out[*out_len] = '\0';
	return out;
}

/* "Basic <base64 of user:password>" */
static bool
parse_basic(const char *b64, KvIdentity *id)
{
	size_t		len;
	char	   *plain = base64_decode(b64, strlen(b64), &len);
	char	   *colon;
	bool		ok = false;

	if (plain == NULL)
		return false;
	colon = memchr(plain, ':', len);
	if (colon != NULL && colon > plain && memchr(plain, '\0', len) == NULL &&
		(size_t) (colon - plain) <= MAX_USER_LEN &&
		len - (colon - plain) - 1 <= MAX_SECRET_LEN &&
		kv_utf8_valid(plain, colon - plain))
	{
		id->kind = KV_AUTH_BASIC;
		id->user = strndup(plain, colon - plain);
		id->secret = strdup(colon + 1);
		ok = id->user != NULL && id->secret != NULL;
	}
	explicit_bzero(plain, len);
	free(plain);
	return ok;
}

/* "Bearer <token>": token68 characters only (RFC 6750). */
static bool
parse_bearer(const char *token, KvIdentity *id)
{
	size_t		len = strlen(token);

	if (len == 0 || len > MAX_SECRET_LEN ||
		strspn(token, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~+/=") != len)
		return false;
	id->kind = KV_AUTH_BEARER;
	id->secret = strdup(token);
	return id->secret != NULL;
}

/* A body we refuse before reading must not be taken for the next request. */
static bool
body_unread(const KvHttpCtx *ctx)
{
	return ctx->chunked || ctx->ri->content_length > 0;
}

static int
send_unauthorized(const KvHttpCtx *ctx, const char *message)
{
	return kv_send_error(ctx, 401, KV_ERR_UNAUTHORIZED, message, NULL,
						 body_unread(ctx));
}

/* 429 with Retry-After: 'seconds'. */
static int
send_too_many(const KvHttpCtx *ctx, int seconds, const char *message)
{
	KvReply		r = {0};
	size_t		len = 0;
	char	   *body = kv_json_error(KV_ERR_TOO_MANY_REQUESTS, message, &len);

	r.status = 429;
	r.content_type = KV_JSON_CONTENT_TYPE;
	r.body = body;
	r.body_len = body ? len : 0;
	r.etag = -1;
	r.cache = -1;
	r.retry_after = seconds;
	r.head = ctx->head;
	r.close = body_unread(ctx);
	kv_send_reply(ctx->conn, &r);
	free(body);
	return 429;
}

/*
 * Find out who is asking.  Returns 0 with *id filled in (and id->verified
 * when the credential cache vouches for it), or the status it answered
 * with: 401 for missing or malformed credentials, 429 for an address that
 * failed too often.
 */
int
kv_auth_identify(const KvHttpCtx *ctx, KvIdentity *id)
{
	int			n;
	const char *auth = kv_find_header(ctx->ri, "Authorization", &n);
	int			wait;

	memset(id, 0, sizeof(*id));
	id->addr = ctx->ri->remote_addr;
	if (n > 1)
		return kv_send_error(ctx, 400, KV_ERR_BAD_REQUEST,
							 "repeated Authorization header", NULL,
							 body_unread(ctx));
	if (auth == NULL)
	{
		if (!__atomic_load_n(&set_anonymous, __ATOMIC_RELAXED))
			return send_unauthorized(ctx, "authentication required: send Basic credentials of a PostgreSQL role, or a Bearer token");
		id->kind = KV_AUTH_ANONYMOUS;
		if (credential_key(id, id->key))
			id->verified = cache_lookup(id);
		return 0;
	}

	if ((wait = blocked_for(id->addr)) > 0)
		return send_too_many(ctx, wait,
							 "too many failed logins from this address; try again later");
	if (strlen(auth) > MAX_HEADER_LEN ||
		!((strncasecmp(auth, "Basic ", 6) == 0 && parse_basic(auth + 6 + strspn(auth + 6, " "), id)) ||
		  (strncasecmp(auth, "Bearer ", 7) == 0 && parse_bearer(auth + 7 + strspn(auth + 7, " "), id))))
	{
		kv_auth_release(id);
		settle_attempt(id->addr, id, true);
		return send_unauthorized(ctx, "malformed Authorization header: use Basic or Bearer");
	}
	if (credential_key(id, id->key))
		id->verified = cache_lookup(id);
	if (id->verified)
		return 0;

	/* to be checked by the main thread: charge it, and wait for a turn */
	if ((wait = charge_attempt(id->addr, id)) > 0)
	{
		kv_auth_release(id);
		return send_too_many(ctx, wait,
							 "too many failed logins from this address; try again later");
	}
	if (!take_check_turn())
	{
		kv_auth_release(id);
		return send_too_many(ctx, 1,
							 "too many logins are being checked; try again in a moment");
	}
	return 0;
}

/* Give the main thread the credentials (and what the cache knows). */
bool
kv_auth_attach(const KvIdentity *id, KvRequest *req)
{
	req->auth_kind = id->kind;
	if (id->verified)
	{
		req->auth_role = id->role;
		req->auth_generation = id->generation;
	}
	if (id->user && (req->auth_user = strdup(id->user)) == NULL)
		return false;
	if (id->secret && (req->auth_secret = strdup(id->secret)) == NULL)
		return false;
	return true;
}

/* After the main thread answered: keep a verified identity, count a failure. */
void
kv_auth_learn(const KvHttpCtx *ctx, const KvRequest *req)
{
	KvIdentity *id = ctx->id;

	if (id == NULL)
		return;
	if (id->kind != KV_AUTH_ANONYMOUS)
		settle_attempt(id->addr, id, req->error == KV_ERR_UNAUTHORIZED);
	if (req->error == KV_ERR_UNAUTHORIZED)
		return;
	if (req->role != 0 && req->role_valid_ms > kvq_now_ms() &&
		(!id->verified || id->generation != req->role_generation))
		cache_store(id->key, req);
}

void
kv_auth_release(KvIdentity *id)
{
	/* an attempt that got no verdict (timed out, refused early) is refunded */
	if (id->charged)
		settle_attempt(id->addr, id, false);
	free(id->user);
	if (id->secret)
	{
		explicit_bzero(id->secret, strlen(id->secret));
		free(id->secret);
	}
	id->user = NULL;
	id->secret = NULL;
}
