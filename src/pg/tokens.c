/*-------------------------------------------------------------------------
 *
 * tokens.c
 *	  Bearer tokens for the HTTP API: kv_token_create(), kv_token_revoke(),
 *	  the trigger that announces a revocation, and the worker's lookup.
 *
 * A token is "kvt_" and 64 hex digits: 256 bits from pg_strong_random().
 * Only its SHA-256 is stored (kv_token.token_hash), with the role that
 * created it (current_user) and its expiry; the token itself is shown once,
 * to its creator.  Row-level security on kv_token shows every role its own
 * tokens only.
 *
 * The SQL functions run as their caller, who cannot write kv_token
 * directly: they switch to the table's owner for the one statement that
 * writes it (SECURITY_LOCAL_USERID_CHANGE, undone by the transaction's
 * abort on error), and that statement names the caller's role itself, so
 * a role can only ever create and revoke its own tokens.
 *
 * A revocation (or any UPDATE, DELETE or TRUNCATE of kv_token) sends a
 * relcache invalidation for kv_token at commit; the worker then drops
 * every cached verdict (src/pg/auth.c).
 *
 * IDENTIFICATION
 *	  src/pg/tokens.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/pg_class.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "common/cryptohash.h"
#include "common/sha2.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"

#include "auth.h"

PG_FUNCTION_INFO_V1(kv_token_create);
PG_FUNCTION_INFO_V1(kv_token_revoke);
PG_FUNCTION_INFO_V1(kv_token_invalidate);

#define TOKEN_PREFIX		"kvt_"
#define TOKEN_RANDOM_BYTES	32

/* SHA-256 of 'token' as 64 hex digits in 'hex' (65 bytes). */
static void
token_hash(const char *token, char *hex)
{
	pg_cryptohash_ctx *ctx = pg_cryptohash_create(PG_SHA256);
	uint8		digest[PG_SHA256_DIGEST_LENGTH];

	if (ctx == NULL ||
		pg_cryptohash_init(ctx) < 0 ||
		pg_cryptohash_update(ctx, (const uint8 *) token, strlen(token)) < 0 ||
		pg_cryptohash_final(ctx, digest, sizeof(digest)) < 0)
		elog(ERROR, "kvserver: could not compute SHA-256: %s",
			 pg_cryptohash_error(ctx));
	pg_cryptohash_free(ctx);
	hex_encode((const char *) digest, sizeof(digest), hex);
	hex[2 * PG_SHA256_DIGEST_LENGTH] = '\0';
}

Oid
kv_token_relid(Oid nspid)
{
	return get_relname_relid("kv_token", nspid);
}

static char *
qualified_token_table(Oid nspid)
{
	char	   *nspname = get_namespace_name(nspid);

	if (nspname == NULL || !OidIsValid(kv_token_relid(nspid)))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("kvserver table kv_token does not exist"),
				 errhint("Update the extension: ALTER EXTENSION kvserver UPDATE.")));
	return psprintf("%s.kv_token", quote_identifier(nspname));
}

static Oid
token_table_owner(Oid nspid)
{
	HeapTuple	tup = SearchSysCache1(RELOID, ObjectIdGetDatum(kv_token_relid(nspid)));
	Oid			owner;

	if (!HeapTupleIsValid(tup))
		elog(ERROR, "kvserver: kv_token has no pg_class row");
	owner = ((Form_pg_class) GETSTRUCT(tup))->relowner;
	ReleaseSysCache(tup);
	return owner;
}

/*
 * Run one statement on kv_token as the table's owner, for the calling
 * role 'caller'.  Returns SPI_processed.
 */
static uint64
write_as_owner(Oid nspid, const char *sql, int nargs, Oid *types, Datum *values)
{
	Oid			save_user;
	int			save_sec;
	Oid			owner;
	int			rc;
	uint64		n;

	owner = token_table_owner(nspid);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "kvserver: SPI_connect failed");
	GetUserIdAndSecContext(&save_user, &save_sec);
	SetUserIdAndSecContext(owner, save_sec | SECURITY_LOCAL_USERID_CHANGE);
	rc = SPI_execute_with_args(sql, nargs, types, values, NULL, false, 0);
	SetUserIdAndSecContext(save_user, save_sec);
	if (rc < 0)
		elog(ERROR, "kvserver: token statement failed: %s",
			 SPI_result_code_string(rc));
	n = SPI_processed;
	SPI_finish();
	return n;
}

/* kv_token_create(ttl interval DEFAULT '1 day') RETURNS text */
Datum
kv_token_create(PG_FUNCTION_ARGS)
{
	Oid			nspid = get_func_namespace(fcinfo->flinfo->fn_oid);
	Oid			caller = GetUserId();
	Interval   *ttl;
	TimestampTz now = GetCurrentTransactionStartTimestamp();
	TimestampTz expires;
	uint8		raw[TOKEN_RANDOM_BYTES];
	char		token[sizeof(TOKEN_PREFIX) + 2 * TOKEN_RANDOM_BYTES];
	char		hash[2 * PG_SHA256_DIGEST_LENGTH + 1];
	Oid			types[3] = {TEXTOID, OIDOID, TIMESTAMPTZOID};
	Datum		values[3];
	char	   *sql;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("token lifetime must not be null"),
				 errhint("Omit the argument for the default of one day.")));
	ttl = PG_GETARG_INTERVAL_P(0);
	expires = DatumGetTimestampTz(DirectFunctionCall2(timestamptz_pl_interval,
													  TimestampTzGetDatum(now),
													  IntervalPGetDatum(ttl)));
	if (expires <= now)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("token lifetime must be positive"),
				 errhint("Pass an interval such as '1 hour'.")));

	if (!pg_strong_random(raw, sizeof(raw)))
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("could not generate a random token")));
	strcpy(token, TOKEN_PREFIX);
	hex_encode((const char *) raw, sizeof(raw), token + strlen(TOKEN_PREFIX));
	token[sizeof(token) - 1] = '\0';
	explicit_bzero(raw, sizeof(raw));
	token_hash(token, hash);

	sql = psprintf("INSERT INTO %s (token_hash, role_oid, expires_at) VALUES ($1, $2, $3)",
				   qualified_token_table(nspid));
	values[0] = CStringGetTextDatum(hash);
	values[1] = ObjectIdGetDatum(caller);
	values[2] = TimestampTzGetDatum(expires);
	write_as_owner(nspid, sql, 3, types, values);
	PG_RETURN_TEXT_P(cstring_to_text(token));
}

/* kv_token_revoke(token text) RETURNS boolean: one of the caller's own. */
Datum
kv_token_revoke(PG_FUNCTION_ARGS)
{
	Oid			nspid = get_func_namespace(fcinfo->flinfo->fn_oid);
	char	   *token = text_to_cstring(PG_GETARG_TEXT_PP(0));
	char		hash[2 * PG_SHA256_DIGEST_LENGTH + 1];
	Oid			types[2] = {TEXTOID, OIDOID};
	Datum		values[2];
	char	   *sql;

	token_hash(token, hash);
	sql = psprintf("DELETE FROM %s WHERE token_hash = $1 AND role_oid = $2",
				   qualified_token_table(nspid));
	values[0] = CStringGetTextDatum(hash);
	values[1] = ObjectIdGetDatum(GetUserId());
	PG_RETURN_BOOL(write_as_owner(nspid, sql, 2, types, values) > 0);
}

/* Statement trigger on kv_token: tell the worker to forget verdicts. */
Datum
kv_token_invalidate(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;

	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("kv_token_invalidate() must be called as a trigger")));
	CacheInvalidateRelcacheByRelid(RelationGetRelid(trigdata->tg_relation));
	return PointerGetDatum(NULL);
}

/*
 * The worker's lookup of a presented token (as the worker's own role,
 * which may read every row).  False when no such token exists.
 */
bool
kv_token_lookup(Oid nspid, const char *token, Oid *role, TimestampTz *expires_at)
{
	char		hash[2 * PG_SHA256_DIGEST_LENGTH + 1];
	Oid			types[1] = {TEXTOID};
	Datum		values[1];
	char	   *sql;
	bool		isnull;
	int			rc;

	if (!OidIsValid(kv_token_relid(nspid)))
		return false;
	token_hash(token, hash);
	sql = psprintf("SELECT role_oid, expires_at FROM %s WHERE token_hash = $1",
				   qualified_token_table(nspid));
	values[0] = CStringGetTextDatum(hash);
	rc = SPI_execute_with_args(sql, 1, types, values, NULL, true, 1);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "kvserver: token lookup failed: %s",
			 SPI_result_code_string(rc));
	if (SPI_processed == 0)
		return false;
	*role = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[0],
										   SPI_tuptable->tupdesc, 1, &isnull));
	*expires_at = DatumGetTimestampTz(SPI_getbinval(SPI_tuptable->vals[0],
													SPI_tuptable->tupdesc, 2,
													&isnull));
	return true;
}
