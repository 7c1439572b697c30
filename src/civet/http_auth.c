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
 * Failed logins are counted per client address in a fixed window
 * (http_auth_guard.c, with the other limits on checks): once
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
#include <openssl/params.h>
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


typedef struct CachedCredential
{
	unsigned char key[KV_AUTH_KEY_LEN];
	bool		used;
	uint32_t	role;
	bool		may_hit;
	uint64_t	generation;
	int64_t		valid_until_ms;
} CachedCredential;

static pthread_rwlock_t cache_lock = PTHREAD_RWLOCK_INITIALIZER;
static CachedCredential cache[CACHE_SETS][CACHE_WAYS];


static pthread_once_t hmac_once = PTHREAD_ONCE_INIT;

/* Settings and the auth generation, published by the main thread. */
static bool set_anonymous = false;
static bool set_public_metrics = false;
static uint64_t auth_generation = 0;

/*---- settings ----*/

void
kv_http_set_auth(bool anonymous, bool public_metrics, int max_failures,
				 int failure_window_s)
{
	__atomic_store_n(&set_anonymous, anonymous, __ATOMIC_RELAXED);
	__atomic_store_n(&set_public_metrics, public_metrics, __ATOMIC_RELAXED);
	kv_auth_guard_configure(max_failures, failure_window_s);
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

/*
 * HMAC-SHA256 under a key drawn at start.  OpenSSL 3's one-shot HMAC()
 * looks the algorithm up on every call; instead a context with the key
 * already absorbed is made once and copied for each request, which costs
 * a copy and two SHA-256 blocks.
 */
static EVP_MAC_CTX *hmac_template = NULL;

static void
init_hmac(void)
{
	unsigned char key[32];
	size_t		got = 0;
	EVP_MAC    *mac;
	OSSL_PARAM	params[2];

	while (got < sizeof(key))
	{
		ssize_t		n = getrandom(key + got, sizeof(key) - got, 0);

		if (n <= 0)
			return;
		got += n;
	}
	mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
	if (mac == NULL)
		return;
	params[0] = OSSL_PARAM_construct_utf8_string("digest", (char *) "SHA256", 0);
	params[1] = OSSL_PARAM_construct_end();
	hmac_template = EVP_MAC_CTX_new(mac);
	if (hmac_template != NULL &&
		EVP_MAC_init(hmac_template, key, sizeof(key), params) != 1)
	{
		EVP_MAC_CTX_free(hmac_template);
		hmac_template = NULL;
	}
	EVP_MAC_free(mac);
	explicit_bzero(key, sizeof(key));
}

/* HMAC-SHA256(kind, user, NUL, secret) under this process's random key. */
static bool
credential_key(const KvIdentity *id, unsigned char *out)
{
	unsigned char kind = (unsigned char) id->kind;
	EVP_MAC_CTX *ctx;
	size_t		outlen = 0;
	bool		ok;

	pthread_once(&hmac_once, init_hmac);
	if (hmac_template == NULL || (ctx = EVP_MAC_CTX_dup(hmac_template)) == NULL)
		return false;
	ok = EVP_MAC_update(ctx, &kind, 1) == 1 &&
		(id->user == NULL ||
		 EVP_MAC_update(ctx, (const unsigned char *) id->user, strlen(id->user) + 1) == 1) &&
		(id->secret == NULL ||
		 EVP_MAC_update(ctx, (const unsigned char *) id->secret, strlen(id->secret)) == 1) &&
		EVP_MAC_final(ctx, out, &outlen, KV_AUTH_KEY_LEN) == 1 &&
		outlen == KV_AUTH_KEY_LEN;
	EVP_MAC_CTX_free(ctx);
	return ok;
}

/*
 * Every anonymous request has the same credentials, hence the same key:
 * hashed once, not per request (it is on the path of every GET hit).
 */
static pthread_once_t anonymous_once = PTHREAD_ONCE_INIT;
static unsigned char anonymous_key[KV_AUTH_KEY_LEN];
static bool anonymous_key_ok = false;

static void
init_anonymous_key(void)
{
	KvIdentity	anon;

	memset(&anon, 0, sizeof(anon));
	anon.kind = KV_AUTH_ANONYMOUS;
	anonymous_key_ok = credential_key(&anon, anonymous_key);
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
		pthread_once(&anonymous_once, init_anonymous_key);
		if (anonymous_key_ok)
		{
			memcpy(id->key, anonymous_key, KV_AUTH_KEY_LEN);
			id->verified = cache_lookup(id);
		}
		return 0;
	}

	if ((wait = kv_auth_blocked_for(id->addr)) > 0)
		return send_too_many(ctx, wait,
							 "too many failed logins from this address; try again later");
	if (strlen(auth) > MAX_HEADER_LEN ||
		!((strncasecmp(auth, "Basic ", 6) == 0 && parse_basic(auth + 6 + strspn(auth + 6, " "), id)) ||
		  (strncasecmp(auth, "Bearer ", 7) == 0 && parse_bearer(auth + 7 + strspn(auth + 7, " "), id))))
	{
		kv_auth_release(id);
		kv_auth_settle_attempt(id->addr, id, true);
		return send_unauthorized(ctx, "malformed Authorization header: use Basic or Bearer");
	}
	if (credential_key(id, id->key))
	{
		id->verified = cache_lookup(id);
		/* someone is having these very credentials checked: wait for that */
		if (!id->verified && kv_auth_await_check(id))
			id->verified = cache_lookup(id);
	}
	if (id->verified)
		return 0;

	/* to be checked by the main thread: charge it, and wait for a turn */
	if ((wait = kv_auth_charge_attempt(id->addr, id)) > 0)
	{
		kv_auth_release(id);
		return send_too_many(ctx, wait,
							 "too many failed logins from this address; try again later");
	}
	if (!kv_auth_take_check_turn())
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
		kv_auth_settle_attempt(id->addr, id, req->error == KV_ERR_UNAUTHORIZED);
	if (req->error == KV_ERR_UNAUTHORIZED)
		return;
	if (req->role != 0 && req->role_valid_ms > kvq_now_ms() &&
		(!id->verified || id->generation != req->role_generation))
		cache_store(id->key, req);
	if (id->leader)
		kv_auth_end_check(id);
}

void
kv_auth_release(KvIdentity *id)
{
	/* an attempt that got no verdict (timed out, refused early) is refunded */
	if (id->charged)
		kv_auth_settle_attempt(id->addr, id, false);
	if (id->leader)
		kv_auth_end_check(id);
	free(id->user);
	if (id->secret)
	{
		explicit_bzero(id->secret, strlen(id->secret));
		free(id->secret);
	}
	id->user = NULL;
	id->secret = NULL;
}
