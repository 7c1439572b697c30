/*-------------------------------------------------------------------------
 *
 * auth.c
 *	  Verify the identity of HTTP requests on the worker's main thread,
 *	  and keep the HTTP threads' credential cache honest.
 *
 * Every request to a key runs as a PostgreSQL role, so GRANTs and
 * row-level security apply to HTTP exactly as to SQL.  The role is:
 *	- Basic credentials: the role of that name, its password checked
 *	  against its stored SCRAM-SHA-256 or md5 secret by PostgreSQL's own
 *	  plain_crypt_verify() (so SASLprep and every secret format behave as
 *	  for a psql login); it must have LOGIN and a VALID UNTIL in the future;
 *	- a Bearer token: the role that created it with kv_token_create(), if
 *	  the token has not expired or been revoked, with the same checks;
 *	- no credentials: kvserver.anonymous_role when set (it may be NOLOGIN).
 * In every case the role needs CONNECT on the database, and a superuser is
 * refused unless kvserver.allow_superuser is on.  pg_hba.conf does not
 * apply.  A wrong password, an unknown role, a NOLOGIN role or an expired
 * one get the same 401 and take about as long (an unknown role's
 * "password" is checked against a dummy secret).
 *
 * The HTTP threads cache verdicts (src/civet/http_auth.c).  Each verdict
 * carries the auth generation it was reached at, and this file bumps the
 * generation whenever PostgreSQL announces a change that could alter one:
 * pg_authid (passwords, LOGIN, VALID UNTIL, SUPERUSER, DROP ROLE),
 * pg_auth_members, pg_database (CONNECT), pg_namespace (USAGE on the
 * schema), and the relcache of kv_store
 * (GRANT/REVOKE, ROW LEVEL SECURITY, policies) and of kv_token
 * (revocations).  The main thread processes invalidations at every
 * transaction and at least once a second, so a change takes effect within
 * about a second.  A verdict is also never reused past KV_AUTH_REUSE_MS,
 * the role's VALID UNTIL or the token's expiry.
 *
 * State: the generation lives in shared memory (an atomic counter), since
 * the executors (executor.c) verify identities and see catalog changes in
 * their own processes: any process that sees a change bumps it, and a
 * verdict is trusted only at the generation it was reached at.  The
 * watched relations are per process.  The HTTP threads see the generation
 * through an atomic store the worker's main thread makes
 * (kv_http_set_auth_generation, at every turn of its loop).
 *
 * IDENTIFICATION
 *	  src/pg/auth.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/xact.h"
#include "catalog/pg_authid.h"
#include "libpq/crypt.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "storage/shmem.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"

#include "auth.h"
#include "cache.h"
#include "http_server.h"
#include "kvserver.h"
#include "store.h"

/* In shared memory; NULL where kvserver was not preloaded. */
static pg_atomic_uint64 *shared_generation = NULL;
static Oid	watched_store = InvalidOid;
static Oid	watched_tokens = InvalidOid;

/*
 * What an unknown role's "password" is checked against, so that it takes
 * as long as a real check: a SCRAM secret of a random password nobody
 * kept.  Matching it grants nothing (the role stays invalid).
 */
static const char dummy_secret[] =
"SCRAM-SHA-256$4096:H3kfcL1BuUJnIk5hSQlKEQ==$n1ZIogBe4GAEavs3dOeO7orZVQxSDDLWs3ITbQRYlh0=:JN3EfG4Uuybthpw5yX1dilIfx7QwJyF/a1qKQniLGfs=";

Size
kv_auth_shmem_size(void)
{
	return MAXALIGN(sizeof(pg_atomic_uint64));
}

/* shmem_startup_hook, with AddinShmemInitLock held. */
void
kv_auth_shmem_startup(void)
{
	bool		found;

	shared_generation = ShmemInitStruct("kvserver auth generation",
										kv_auth_shmem_size(), &found);
	if (!found)
		pg_atomic_init_u64(shared_generation, 1);
}

static uint64
generation(void)
{
	return shared_generation ? pg_atomic_read_u64(shared_generation) : 1;
}

/* Every verdict reached so far is to be reached again. */
static void
bump_generation(void)
{
	if (shared_generation)
		pg_atomic_fetch_add_u64(shared_generation, 1);
}

static void
syscache_changed(Datum arg, int cacheid, uint32 hashvalue)
{
	bump_generation();
}

static void
relcache_changed(Datum arg, Oid relid)
{
	if (!OidIsValid(relid) || relid == watched_store || relid == watched_tokens)
		bump_generation();
}

/* Worker start: listen for the catalog changes that can alter a verdict. */
void
kv_auth_worker_init(void)
{
	CacheRegisterSyscacheCallback(AUTHOID, syscache_changed, (Datum) 0);
	CacheRegisterSyscacheCallback(AUTHMEMMEMROLE, syscache_changed, (Datum) 0);
	CacheRegisterSyscacheCallback(DATABASEOID, syscache_changed, (Datum) 0);
	CacheRegisterSyscacheCallback(NAMESPACEOID, syscache_changed, (Datum) 0);
	CacheRegisterRelcacheCallback(relcache_changed, (Datum) 0);
}

/* The relations whose changes matter, as found by this transaction. */
void
kv_auth_bind(Oid store_relid, Oid token_relid)
{
	if (store_relid != watched_store || token_relid != watched_tokens)
		bump_generation();
	watched_store = store_relid;
	watched_tokens = token_relid;
}

/* Tell the HTTP threads the settings and the current generation. */
void
kv_auth_publish(void)
{
	kv_http_set_auth(kvserver_anonymous_role[0] != '\0',
					 kvserver_public_metrics,
					 kvserver_auth_max_failures,
					 kvserver_auth_failure_window_s);
	kv_http_set_auth_generation(generation());
}

/* After a configuration reload: every verdict is to be reached again. */
void
kv_auth_reload(void)
{
	bump_generation();
	kv_auth_publish();
}

/*
 * Between batches: read the catalog invalidations that arrived (starting
 * a transaction does), at least every KV_AUTH_TICK_MS, so that a REVOKE or
 * ALTER ROLE reaches the HTTP threads' cache even when no request comes.
 */
void
kv_auth_tick(void)
{
	static TimestampTz last = 0;
	TimestampTz now = GetCurrentTimestamp();

	if (TimestampDifferenceExceeds(last, now, KV_AUTH_TICK_MS))
	{
		Oid			nspid;

		StartTransactionCommand();

		/*
		 * Watch the tables here too: with executors, this process may never
		 * run a request itself, yet it is the one that must hear of a token
		 * revoked or a GRANT changed while every request is a cache hit.
		 */
		nspid = store_namespace_of_extension();
		if (OidIsValid(nspid))
			kv_auth_bind(get_relname_relid("kv_store", nspid),
						 kv_token_relid(nspid));
		CommitTransactionCommand();
		last = now;
	}
	kv_auth_publish();
}

static void
fail(KvRequest *req, int status, KvError error, const char *message)
{
	kvq_set_error(req, status, error, message);
	req->role = 0;
}

/* Accept 'role' for 'req': until when, and whether hits are allowed. */
static void
accept_role(KvRequest *req, Oid role, Oid store_relid, TimestampTz until,
			uint64 gen)
{
	long		ms = KV_AUTH_REUSE_MS;

	if (until != 0)
		ms = Min(ms, TimestampDifferenceMilliseconds(GetCurrentTimestamp(), until));
	req->role = role;
	req->role_may_hit = kvcache_usable_by(store_relid, role);
	req->role_generation = gen;
	req->role_valid_ms = kvq_now_ms() + ms;
	/* a retried request (lock wait) need not be verified again */
	req->auth_role = role;
	req->auth_generation = req->role_generation;
}

/*
 * A request whose identity the HTTP thread's cache vouched for at the
 * current generation needs no verification: nothing that could change
 * the verdict has happened since.
 */
bool
kv_auth_trusted(KvRequest *req, Oid store_relid)
{
	if (req->op == KV_OP_HEALTH)
		return true;
	if (req->auth_role == 0 || req->auth_generation != generation())
		return false;
	req->role = req->auth_role;
	req->role_may_hit = kvcache_usable_by(store_relid, req->role);
	req->role_generation = generation();
	req->role_valid_ms = 0;		/* the HTTP thread's entry stands */
	return true;
}

/*
 * The role's login attributes: LOGIN and VALID UNTIL.  Returns false for a
 * role that may not log in now; *until is its VALID UNTIL (0: none).
 */
static bool
role_may_log_in(Oid role, TimestampTz *until)
{
	HeapTuple	tup = SearchSysCache1(AUTHOID, ObjectIdGetDatum(role));
	bool		isnull;
	Datum		d;
	bool		ok;

	*until = 0;
	if (!HeapTupleIsValid(tup))
		return false;
	ok = ((Form_pg_authid) GETSTRUCT(tup))->rolcanlogin;
	d = SysCacheGetAttr(AUTHOID, tup, Anum_pg_authid_rolvaliduntil, &isnull);
	if (!isnull)
	{
		*until = DatumGetTimestampTz(d);
		if (*until <= GetCurrentTimestamp())
			ok = false;
	}
	ReleaseSysCache(tup);
	return ok;
}

/* Basic: a password checked the way PostgreSQL checks a login. */
static Oid
verify_password(KvRequest *req, TimestampTz *until)
{
	const char *logdetail = NULL;
	char	   *shadow = get_role_password(req->auth_user, &logdetail);
	Oid			role;

	if (shadow == NULL)
	{
		/* no such role, no password, or expired: take as long anyway */
		(void) plain_crypt_verify(req->auth_user, dummy_secret,
								  req->auth_secret, &logdetail);
		role = InvalidOid;
	}
	else if (plain_crypt_verify(req->auth_user, shadow, req->auth_secret,
								&logdetail) != STATUS_OK)
		role = InvalidOid;
	else
		role = get_role_oid(req->auth_user, true);
	if (OidIsValid(role) && !role_may_log_in(role, until))
	{
		logdetail = "The role may not log in (NOLOGIN or VALID UNTIL).";
		role = InvalidOid;
	}
	if (!OidIsValid(role))
		ereport(LOG,
				(errmsg("kvserver: HTTP password authentication failed for user \"%s\"",
						req->auth_user),
				 logdetail ? errdetail_log("%s", logdetail) : 0));
	return role;
}

/* Bearer: a token from kv_token_create(), not expired, not revoked. */
static Oid
verify_token(KvRequest *req, TimestampTz *until)
{
	Oid			nspid = store_namespace_of_extension();
	Oid			role;
	TimestampTz expires;
	TimestampTz role_until;

	if (!OidIsValid(nspid) ||
		!kv_token_lookup(nspid, req->auth_secret, &role, &expires) ||
		expires <= GetCurrentTimestamp() ||
		!role_may_log_in(role, &role_until))
	{
		ereport(LOG,
				(errmsg("kvserver: HTTP token authentication failed"),
				 errdetail_log("The token is unknown, expired or revoked, or its role may not log in.")));
		return InvalidOid;
	}
	*until = (role_until != 0 && role_until < expires) ? role_until : expires;
	return role;
}

/*
 * Verify the identity of 'req' and accept its role, or answer it with
 * 401/403.  May throw (catalog or SPI errors): run it in a subtransaction.
 */
void
kv_auth_verify(KvRequest *req, Oid store_relid)
{
	TimestampTz until = 0;
	Oid			role = InvalidOid;

	/*
	 * Read before the catalog is: a change another process announces while
	 * we look makes this verdict stale at once instead of going unnoticed.
	 */
	uint64		gen = generation();

	switch (req->auth_kind)
	{
		case KV_AUTH_ANONYMOUS:
			if (kvserver_anonymous_role[0] != '\0')
			{
				role = get_role_oid(kvserver_anonymous_role, true);
				if (!OidIsValid(role))
					ereport(WARNING,
							(errcode(ERRCODE_UNDEFINED_OBJECT),
							 errmsg("kvserver.anonymous_role \"%s\" does not exist",
									kvserver_anonymous_role),
							 errhint("Create the role, or change kvserver.anonymous_role.")));
			}
			if (!OidIsValid(role))
			{
				fail(req, 401, KV_ERR_UNAUTHORIZED,
					 "authentication required: send Basic credentials of a PostgreSQL role, or a Bearer token");
				return;
			}
			break;
		case KV_AUTH_BASIC:
			role = verify_password(req, &until);
			break;
		case KV_AUTH_BEARER:
			role = verify_token(req, &until);
			break;
	}
	if (!OidIsValid(role))
	{
		fail(req, 401, KV_ERR_UNAUTHORIZED, "authentication failed");
		return;
	}
	if (superuser_arg(role) && !kvserver_allow_superuser)
	{
		fail(req, 403, KV_ERR_FORBIDDEN,
			 "superuser roles may not use the HTTP API (kvserver.allow_superuser is off)");
		return;
	}
	if (pg_database_aclcheck(MyDatabaseId, role, ACL_CONNECT) != ACLCHECK_OK)
	{
		fail(req, 403, KV_ERR_FORBIDDEN,
			 "permission denied: the role has no CONNECT privilege on the database");
		return;
	}
	accept_role(req, role, store_relid, until, gen);
}
