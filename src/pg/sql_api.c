/*-------------------------------------------------------------------------
 *
 * sql_api.c
 *	  The SQL functions: kv_get, kv_get_bytea, kv_put, kv_delete, kv_keys,
 *	  kv_stats, kv_cache_reset.
 *
 * They run in the caller's transaction, with the caller's privileges, on
 * the same table and cache as the HTTP worker.  Reads use the cache only
 * when it cannot be wrong for this session: not at REPEATABLE READ or
 * SERIALIZABLE (the snapshot may be older than the cache), and not once
 * this transaction has written anything (the cache does not have our own
 * uncommitted writes, and a row trigger fires only at the end of its
 * statement, so "has an XID" is the test that cannot come too late).  And
 * only for a caller who may read the whole table without row-level
 * security: the cache must not hand out what a SELECT would refuse.  Writes go to the table only; the triggers in
 * invalidate.c take care of the cache at commit.
 *
 * IDENTIFICATION
 *	  src/pg/sql_api.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/xact.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/rls.h"
#include "utils/timestamp.h"

#include "cache.h"
#include "kvserver.h"
#include "store.h"
#include "watch.h"

PG_FUNCTION_INFO_V1(kv_get);
PG_FUNCTION_INFO_V1(kv_get_bytea);
PG_FUNCTION_INFO_V1(kv_put_text);
PG_FUNCTION_INFO_V1(kv_put_bytea);
PG_FUNCTION_INFO_V1(kv_delete);
PG_FUNCTION_INFO_V1(kv_keys);
PG_FUNCTION_INFO_V1(kv_stats);
PG_FUNCTION_INFO_V1(kv_cache_reset);

/*
 * The key rule of the HTTP API (kv_check_key, shared with it), so that
 * every key written here is addressable there.
 */
static void
check_key(const char *key, size_t len)
{
	switch (kv_check_key(key, len, (size_t) kvserver_max_key_length))
	{
		case KV_ERR_NONE:
			return;
		case KV_ERR_KEY_TOO_LONG:
			ereport(ERROR,
					(errcode(ERRCODE_STRING_DATA_RIGHT_TRUNCATION),
					 errmsg("key is %zu bytes long, more than kvserver.max_key_length (%d)",
							len, kvserver_max_key_length),
					 errhint("Use a shorter key or raise kvserver.max_key_length.")));
			break;
		default:
			if (len == 0)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("key must not be empty")));
			ereport(ERROR,
					(errcode(ERRCODE_CHARACTER_NOT_IN_REPERTOIRE),
					 errmsg("key must be valid UTF-8"),
					 errhint("kvserver keys are UTF-8 text, as in the HTTP API.")));
	}
}

static void *
palloc_fn(Size size)
{
	return palloc(size);
}

/* May this session read (and fill) the shared cache for 'relid' now? */
static bool
cache_usable(Oid relid)
{
	return kvcache_available() &&
		!IsolationUsesXactSnapshot() &&
		!kv_xact_wrote_store() &&
		!TransactionIdIsValid(GetTopTransactionIdIfAny()) &&
		kvcache_usable_by(relid, GetUserId());
}

/*
 * SPI-connect and point the plans at the extension's table; the schema is
 * the one this very function lives in.
 */
static Oid
connect_store(FunctionCallInfo fcinfo)
{
	Oid			relid;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "kvserver: SPI_connect failed");
	relid = store_prepare(get_func_namespace(fcinfo->flinfo->fn_oid));
	kvcache_bind_table(relid);
	return relid;
}

/*
 * Read a key, from the cache when allowed, else from the table (and then
 * fill the cache).  Returns a bytea in the caller's memory context, or
 * NULL when the key is absent or expired.
 */
static bytea *
lookup_value(FunctionCallInfo fcinfo, text *key)
{
	const char *k = VARDATA_ANY(key);
	size_t		klen = VARSIZE_ANY_EXHDR(key);
	bool		use_cache;
	MemoryContext caller_cxt = CurrentMemoryContext;
	KvCachedValue cached;
	KvRow		row;
	uint64		token = 0;
	bytea	   *result = NULL;
	Oid			relid;

	relid = connect_store(fcinfo);
	use_cache = cache_usable(relid);
	if (use_cache && kvcache_lookup(relid, k, klen, palloc_fn, &cached))
	{
		/* cached.value lives in SPI memory: copy it out before SPI_finish */
		result = MemoryContextAlloc(caller_cxt, VARHDRSZ + cached.value_len);
		SET_VARSIZE(result, VARHDRSZ + cached.value_len);
		memcpy(VARDATA(result), cached.value, cached.value_len);
		SPI_finish();
		return result;
	}
	if (use_cache)
		token = kvcache_fill_token(k, klen);
	store_get(k, klen, &row);
	if (row.found)
	{
		if (use_cache)
			kvcache_fill(relid, k, klen, token, row.value, row.value_len,
						 row.content_type, row.version, row.expires_at);
		result = MemoryContextAlloc(caller_cxt, VARHDRSZ + row.value_len);
		SET_VARSIZE(result, VARHDRSZ + row.value_len);
		memcpy(VARDATA(result), row.value, row.value_len);
	}
	SPI_finish();
	return result;
}

Datum
kv_get(PG_FUNCTION_ARGS)
{
	text	   *key = PG_GETARG_TEXT_PP(0);
	bytea	   *value = lookup_value(fcinfo, key);

	if (value == NULL)
		PG_RETURN_NULL();
	if (!pg_verifymbstr(VARDATA(value), VARSIZE(value) - VARHDRSZ, true))
		ereport(ERROR,
				(errcode(ERRCODE_CHARACTER_NOT_IN_REPERTOIRE),
				 errmsg("value of key \"%s\" is not valid text in encoding \"%s\"",
						text_to_cstring(key), GetDatabaseEncodingName()),
				 errhint("Use kv_get_bytea() for binary values.")));
	/* text and bytea share their varlena layout */
	PG_RETURN_TEXT_P((text *) value);
}

Datum
kv_get_bytea(PG_FUNCTION_ARGS)
{
	bytea	   *value = lookup_value(fcinfo, PG_GETARG_TEXT_PP(0));

	if (value == NULL)
		PG_RETURN_NULL();
	PG_RETURN_BYTEA_P(value);
}

static void
put_common(FunctionCallInfo fcinfo, const char *content_type)
{
	text	   *key;
	struct varlena *value;
	TimestampTz expires_at = 0;
	int64		version;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("key must not be null")));
	if (PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("value must not be null"),
				 errhint("Use kv_delete() to remove a key.")));
	key = PG_GETARG_TEXT_PP(0);
	value = PG_DETOAST_DATUM_PACKED(PG_GETARG_DATUM(1));
	check_key(VARDATA_ANY(key), VARSIZE_ANY_EXHDR(key));

	if (!PG_ARGISNULL(2))
	{
		Interval   *ttl = PG_GETARG_INTERVAL_P(2);
		Interval	zero = {0};

		if (DatumGetInt32(DirectFunctionCall2(interval_cmp,
											  IntervalPGetDatum(ttl),
											  IntervalPGetDatum(&zero))) <= 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("ttl must be positive"),
					 errhint("Pass NULL for a key that never expires.")));
		expires_at = DatumGetTimestampTz(
										 DirectFunctionCall2(timestamptz_pl_interval,
															 TimestampTzGetDatum(GetCurrentTimestamp()),
															 IntervalPGetDatum(ttl)));
	}

	connect_store(fcinfo);
	store_put(VARDATA_ANY(key), VARSIZE_ANY_EXHDR(key),
			  VARDATA_ANY(value), VARSIZE_ANY_EXHDR(value),
			  content_type, expires_at, false, KV_MATCH_NONE, &version);
	SPI_finish();
}

Datum
kv_put_text(PG_FUNCTION_ARGS)
{
	put_common(fcinfo, KV_TEXT_CONTENT_TYPE);
	PG_RETURN_VOID();
}

Datum
kv_put_bytea(PG_FUNCTION_ARGS)
{
	put_common(fcinfo, NULL);
	PG_RETURN_VOID();
}

Datum
kv_delete(PG_FUNCTION_ARGS)
{
	text	   *key = PG_GETARG_TEXT_PP(0);
	bool		deleted;

	connect_store(fcinfo);
	deleted = store_delete(VARDATA_ANY(key), VARSIZE_ANY_EXHDR(key),
						   KV_MATCH_NONE) == KV_DELETE_DONE;
	SPI_finish();
	PG_RETURN_BOOL(deleted);
}

Datum
kv_keys(PG_FUNCTION_ARGS)
{
	char	   *prefix = text_to_cstring(PG_GETARG_TEXT_PP(0));
	int32		lim = PG_GETARG_INT32(1);
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	char	  **keys;
	int			n;
	int			i;

	if (lim < 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("lim must be at least 1")));

	InitMaterializedSRF(fcinfo, MAT_SRF_USE_EXPECTED_DESC);
	connect_store(fcinfo);
	n = store_list(prefix, NULL, lim, &keys);
	for (i = 0; i < n; i++)
	{
		Datum		value = CStringGetTextDatum(keys[i]);
		bool		isnull = false;

		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, &value,
							 &isnull);
	}
	SPI_finish();
	return (Datum) 0;
}

Datum
kv_stats(PG_FUNCTION_ARGS)
{
	TupleDesc	tupdesc;
	KvCacheStats st;
	Datum		values[12];
	bool		nulls[12] = {0};
	const char *note;

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "kv_stats: return type must be a row type");
	kvcache_stats(&st);
	if (!kvcache_attached())
		note = "kvserver is not in shared_preload_libraries: no cache";
	else if (!st.enabled)
		note = "kvserver.cache_size is 0: no cache";
	else
		note = "ok";

	values[0] = BoolGetDatum(st.enabled);
	values[1] = CStringGetTextDatum(note);
	values[2] = Int64GetDatum(st.capacity_bytes);
	values[3] = Int64GetDatum(st.used_bytes);
	values[4] = Int64GetDatum(st.entries);
	values[5] = Int64GetDatum(st.hits);
	values[6] = Int64GetDatum(st.misses);
	values[7] = Int64GetDatum(st.evictions);
	values[8] = Int64GetDatum(st.fills_skipped);
	values[9] = Int32GetDatum(st.enabled ? KVCACHE_PARTITIONS : 0);
	values[10] = Int64GetDatum(st.max_cached_value);
	values[11] = Float8GetDatum(st.overhead_per_entry);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}

Datum
kv_cache_reset(PG_FUNCTION_ARGS)
{
	kvcache_reset();
	/* prefix watchers cannot tell what changed before: they list again */
	kvwatch_reset();
	PG_RETURN_VOID();
}
