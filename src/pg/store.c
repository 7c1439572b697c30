/*-------------------------------------------------------------------------
 *
 * store.c
 *	  Reads and writes of the kv_store table, through SPI plans prepared
 *	  once per backend and kept (SPI_keepplan).
 *
 * Used by the worker's main thread and by the SQL functions, in whatever
 * transaction the caller has open.  The SQL text is fixed; the only thing
 * spliced in is the extension's schema name, read from the catalog and
 * quoted with quote_identifier.  Request data always travels as
 * parameters.
 *
 * The table is found through the extension's schema.  Plans are rebuilt
 * when that schema changes (extension dropped and created elsewhere); a
 * table dropped and re-created in the same schema is handled by the plan
 * cache, which re-plans kept plans on invalidation.
 *
 * IDENTIFICATION
 *	  src/pg/store.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "catalog/indexing.h"
#include "catalog/namespace.h"
#include "catalog/pg_extension.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "lib/stringinfo.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/relcache.h"

#include "store.h"

typedef enum StorePlan
{
	PLAN_GET,
	PLAN_GET_MANY,
	PLAN_UPSERT,
	PLAN_UPSERT_MANY,
	PLAN_CREATE,
	PLAN_DELETE,
	PLAN_UPDATE_IF,
	PLAN_DELETE_IF,
	PLAN_EXPIRE,
	PLAN_LIST_ALL,
	PLAN_LIST_PREFIX,
	PLAN_LOCK,
	PLAN_VERSION,
	NUM_PLANS
} StorePlan;

static SPIPlanPtr plans[NUM_PLANS];
static Oid	plans_nspid = InvalidOid;

#define LIVE "(expires_at IS NULL OR expires_at > pg_catalog.clock_timestamp())"

/*
 * The schema kvserver is installed in, or InvalidOid when the extension is
 * not created in this database.  A catalog scan, like get_extension_oid(),
 * because PG 15 does not export get_extension_schema().
 */
Oid
store_namespace_of_extension(void)
{
	Relation	rel;
	SysScanDesc scan;
	ScanKeyData key;
	HeapTuple	tuple;
	Oid			nspid = InvalidOid;

	rel = table_open(ExtensionRelationId, AccessShareLock);
	ScanKeyInit(&key, Anum_pg_extension_extname, BTEqualStrategyNumber,
				F_NAMEEQ, CStringGetDatum("kvserver"));
	scan = systable_beginscan(rel, ExtensionNameIndexId, true, NULL, 1, &key);
	tuple = systable_getnext(scan);
	if (HeapTupleIsValid(tuple))
		nspid = ((Form_pg_extension) GETSTRUCT(tuple))->extnamespace;
	systable_endscan(scan);
	table_close(rel, AccessShareLock);
	return nspid;
}

/*
 * Does a write through our statements leave exactly the row it asked for?
 * Not when someone added a trigger (which may change NEW or write again)
 * or a rule to kv_store: only kvserver's own triggers (invalidation, and
 * the version stamp of plain UPDATEs) may be there.  Write-through
 * (batch.c) relies on it.
 */
bool
store_is_plain(Oid relid)
{
	Relation	rel = RelationIdGetRelation(relid);
	bool		plain;
	int			i;

	if (!RelationIsValid(rel))
		return false;
	plain = rel->rd_rules == NULL;
	for (i = 0; plain && rel->trigdesc != NULL && i < rel->trigdesc->numtriggers; i++)
	{
		char	   *fn = get_func_name(rel->trigdesc->triggers[i].tgfoid);

		plain = fn != NULL &&
			(strcmp(fn, "kv_store_invalidate") == 0 ||
			 strcmp(fn, "kv_store_stamp") == 0);
	}
	RelationClose(rel);
	return plain;
}

static SPIPlanPtr
prepare(const char *sql, int nargs, Oid *argtypes)
{
	SPIPlanPtr	plan = SPI_prepare(sql, nargs, argtypes);

	if (plan == NULL)
		elog(ERROR, "kvserver: SPI_prepare failed: %s",
			 SPI_result_code_string(SPI_result));
	SPI_keepplan(plan);
	return plan;
}

/*
 * Make the plans point at kv_store in schema 'nspid'; return the table's
 * OID, which the cache binds to.
 */
Oid
store_prepare(Oid nspid)
{
	char	   *nspname;
	const char *schema;
	Oid			relid;
	StringInfoData sql;
	Oid			get_args[1] = {TEXTOID};
	Oid			get_many_args[1] = {TEXTARRAYOID};
	Oid			put_args[4] = {TEXTOID, BYTEAOID, TEXTOID, TIMESTAMPTZOID};
	Oid			put_many_args[4] = {TEXTARRAYOID, BYTEAARRAYOID, TEXTARRAYOID,
	TIMESTAMPTZARRAYOID};
	Oid			list_args[3] = {TEXTOID, TEXTOID, INT4OID};
	Oid			prefix_args[4] = {TEXTOID, TEXTOID, INT4OID, TEXTOID};
	Oid			update_args[5] = {TEXTOID, BYTEAOID, TEXTOID, TIMESTAMPTZOID, INT8OID};
	Oid			delete_args[2] = {TEXTOID, INT8OID};
	Oid			expire_args[1] = {INT4OID};
	int			i;

	nspname = get_namespace_name(nspid);
	relid = nspname ? get_relname_relid("kv_store", nspid) : InvalidOid;
	if (!OidIsValid(relid))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("kvserver table kv_store does not exist"),
				 errhint("Recreate the extension with DROP EXTENSION kvserver; CREATE EXTENSION kvserver.")));
	if (nspid == plans_nspid)
		return relid;

	for (i = 0; i < NUM_PLANS; i++)
	{
		if (plans[i])
			SPI_freeplan(plans[i]);
		plans[i] = NULL;
	}
	plans_nspid = InvalidOid;
	schema = quote_identifier(nspname);
	initStringInfo(&sql);

	appendStringInfo(&sql,
					 "SELECT value, content_type, version, expires_at"
					 " FROM %s.kv_store WHERE key = $1 AND " LIVE, schema);
	plans[PLAN_GET] = prepare(sql.data, 1, get_args);

	resetStringInfo(&sql);
	appendStringInfo(&sql,
					 "SELECT value, content_type, version, expires_at, key"
					 " FROM %s.kv_store WHERE key = ANY ($1) AND " LIVE, schema);
	plans[PLAN_GET_MANY] = prepare(sql.data, 1, get_many_args);

	/*
	 * xmax = 0 tells an inserted row from an updated one: ON CONFLICT DO
	 * UPDATE leaves our own xid in the row's xmax.  Replacing an expired row
	 * is a creation too, as far as the client can tell.
	 */
	resetStringInfo(&sql);
	appendStringInfo(&sql,
					 "WITH old AS (SELECT expires_at <= pg_catalog.clock_timestamp() AS expired"
					 " FROM %s.kv_store WHERE key = $1)"
					 " INSERT INTO %s.kv_store AS t (key, value, content_type, expires_at)"
					 " VALUES ($1, $2, $3, $4)"
					 " ON CONFLICT (key) DO UPDATE SET value = excluded.value,"
					 " content_type = excluded.content_type,"
					 " expires_at = excluded.expires_at,"
					 " version = pg_catalog.nextval('%s.kv_store_version_seq'),"
					 " updated_at = pg_catalog.now()"
					 " RETURNING version,"
					 " (xmax = 0 OR coalesce((SELECT expired FROM old), false)) AS created",
					 schema, schema, schema);
	plans[PLAN_UPSERT] = prepare(sql.data, 4, put_args);

	/*
	 * The same for several distinct keys in one statement, from arrays (the
	 * batch's plain PUTs): one executor start, one constraint check set-up
	 * and no subtransaction per key.  Rows are written in key order, so two
	 * batches that share keys lock them in the same order.
	 */
	resetStringInfo(&sql);
	appendStringInfo(&sql,
					 "WITH input AS (SELECT * FROM ROWS FROM (pg_catalog.unnest($1),"
					 " pg_catalog.unnest($2), pg_catalog.unnest($3),"
					 " pg_catalog.unnest($4)) AS u(key, value, content_type, expires_at)),"
					 " old AS (SELECT o.key FROM %s.kv_store o WHERE o.key = ANY ($1)"
					 " AND o.expires_at <= pg_catalog.clock_timestamp())"
					 " INSERT INTO %s.kv_store AS t (key, value, content_type, expires_at)"
					 " SELECT key, value, content_type, expires_at FROM input ORDER BY key"
					 " ON CONFLICT (key) DO UPDATE SET value = excluded.value,"
					 " content_type = excluded.content_type,"
					 " expires_at = excluded.expires_at,"
					 " version = pg_catalog.nextval('%s.kv_store_version_seq'),"
					 " updated_at = pg_catalog.now()"
					 " RETURNING t.key, t.version,"
					 " (t.xmax = 0 OR t.key IN (SELECT key FROM old)) AS created",
					 schema, schema, schema);
	plans[PLAN_UPSERT_MANY] = prepare(sql.data, 4, put_many_args);

	/* create-only: replaces a row only when it has expired */
	resetStringInfo(&sql);
	appendStringInfo(&sql,
					 "INSERT INTO %s.kv_store AS t (key, value, content_type, expires_at)"
					 " VALUES ($1, $2, $3, $4)"
					 " ON CONFLICT (key) DO UPDATE SET value = excluded.value,"
					 " content_type = excluded.content_type,"
					 " expires_at = excluded.expires_at,"
					 " version = pg_catalog.nextval('%s.kv_store_version_seq'),"
					 " created_at = pg_catalog.now(), updated_at = pg_catalog.now()"
					 " WHERE t.expires_at IS NOT NULL AND t.expires_at <= pg_catalog.clock_timestamp()"
					 " RETURNING version",
					 schema, schema);
	plans[PLAN_CREATE] = prepare(sql.data, 4, put_args);

	resetStringInfo(&sql);
	appendStringInfo(&sql,
					 "DELETE FROM %s.kv_store WHERE key = $1 RETURNING " LIVE,
					 schema);
	plans[PLAN_DELETE] = prepare(sql.data, 1, get_args);

	/* If-Match: replace only that version ($5 NULL: any live version) */
	resetStringInfo(&sql);
	appendStringInfo(&sql,
					 "UPDATE %s.kv_store SET value = $2, content_type = $3,"
					 " expires_at = $4,"
					 " version = pg_catalog.nextval('%s.kv_store_version_seq'),"
					 " updated_at = pg_catalog.now()"
					 " WHERE key = $1 AND ($5 IS NULL OR version = $5) AND " LIVE
					 " RETURNING version",
					 schema, schema);
	plans[PLAN_UPDATE_IF] = prepare(sql.data, 5, update_args);

	resetStringInfo(&sql);
	appendStringInfo(&sql,
					 "DELETE FROM %s.kv_store"
					 " WHERE key = $1 AND ($2 IS NULL OR version = $2) AND " LIVE
					 " RETURNING true", schema);
	plans[PLAN_DELETE_IF] = prepare(sql.data, 2, delete_args);

	/* expiry in small batches, through the partial index on expires_at */
	resetStringInfo(&sql);
	appendStringInfo(&sql,
					 "DELETE FROM %s.kv_store WHERE key IN"
					 " (SELECT key FROM %s.kv_store"
					 "  WHERE expires_at <= pg_catalog.clock_timestamp()"
					 "  LIMIT $1 FOR UPDATE SKIP LOCKED)",
					 schema, schema);
	plans[PLAN_EXPIRE] = prepare(sql.data, 1, expire_args);

	/* keys are COLLATE "C": byte order, and ranges use the primary key */
	resetStringInfo(&sql);
	appendStringInfo(&sql,
					 "SELECT key FROM %s.kv_store WHERE key >= $1 AND key > $2 AND " LIVE
					 " ORDER BY key LIMIT $3", schema);
	plans[PLAN_LIST_ALL] = prepare(sql.data, 3, list_args);

	resetStringInfo(&sql);
	appendStringInfo(&sql,
					 "SELECT key FROM %s.kv_store WHERE key >= $1 AND key > $2"
					 " AND key < $4 AND pg_catalog.starts_with(key, $1) AND " LIVE
					 " ORDER BY key LIMIT $3", schema);
	plans[PLAN_LIST_PREFIX] = prepare(sql.data, 4, prefix_args);

	/*
	 * A transaction's rows (POST /txn, txn.c), live or expired, locked in
	 * key order: LockRows sits above the sort, so every transaction takes
	 * its locks in the same order and two of them never deadlock on rows
	 * that exist.  FOR UPDATE, the strength a DELETE and an upsert's
	 * DO UPDATE take anyway.
	 */
	resetStringInfo(&sql);
	appendStringInfo(&sql,
					 "SELECT key FROM %s.kv_store WHERE key = ANY ($1)"
					 " ORDER BY key FOR UPDATE", schema);
	plans[PLAN_LOCK] = prepare(sql.data, 1, get_many_args);

	resetStringInfo(&sql);
	appendStringInfo(&sql,
					 "SELECT version FROM %s.kv_store WHERE key = $1 AND " LIVE,
					 schema);
	plans[PLAN_VERSION] = prepare(sql.data, 1, get_args);

	pfree(sql.data);
	plans_nspid = nspid;
	return relid;
}

static Datum
text_datum(const char *s, size_t len)
{
	return PointerGetDatum(cstring_to_text_with_len(s, (int) len));
}

static Datum
bytea_datum(const char *s, size_t len)
{
	bytea	   *b = palloc(VARHDRSZ + len);

	SET_VARSIZE(b, VARHDRSZ + len);
	memcpy(VARDATA(b), s, len);
	return PointerGetDatum(b);
}

static void
execute(StorePlan which, Datum *values, const char *nulls, int expected)
{
	int			rc = SPI_execute_plan(plans[which], values, nulls, false, 0);

	if (rc != expected)
		elog(ERROR, "kvserver: statement failed: %s",
			 SPI_result_code_string(rc));
}

/* Columns value, content_type, version, expires_at of result row 'i'. */
static void
row_from_result(uint64 i, KvRow *row)
{
	bool		isnull;
	Datum		d;
	HeapTuple	tup = SPI_tuptable->vals[i];
	TupleDesc	desc = SPI_tuptable->tupdesc;
	bytea	   *value;

	row->found = true;
	value = DatumGetByteaPP(SPI_getbinval(tup, desc, 1, &isnull));
	row->value = VARDATA_ANY(value);
	row->value_len = VARSIZE_ANY_EXHDR(value);
	d = SPI_getbinval(tup, desc, 2, &isnull);
	row->content_type = isnull ? NULL : TextDatumGetCString(d);
	row->version = DatumGetInt64(SPI_getbinval(tup, desc, 3, &isnull));
	d = SPI_getbinval(tup, desc, 4, &isnull);
	row->expires_at = isnull ? 0 : DatumGetTimestampTz(d);
}

void
store_get(const char *key, size_t key_len, KvRow *row)
{
	Datum		args[1];

	memset(row, 0, sizeof(*row));
	args[0] = text_datum(key, key_len);
	execute(PLAN_GET, args, NULL, SPI_OK_SELECT);
	if (SPI_processed > 0)
		row_from_result(0, row);
}

/* The keys as a text[] parameter, for key = ANY($1). */
static Datum
key_array(const char *const *keys, const size_t *key_lens, int nkeys)
{
	Datum	   *elems = palloc(sizeof(Datum) * nkeys);
	int			k;

	for (k = 0; k < nkeys; k++)
		elems[k] = text_datum(keys[k], key_lens[k]);
	return PointerGetDatum(construct_array(elems, nkeys, TEXTOID, -1,
										   false, TYPALIGN_INT));
}

/*
 * Read several keys with one statement; 'callback' sees each live row
 * found, in no particular order.  Keys not found get no call.
 */
void
store_get_many(const char *const *keys, const size_t *key_lens, int nkeys,
			   KvRowCallback callback, void *arg)
{
	Datum		args[1];
	uint64		i;

	args[0] = key_array(keys, key_lens, nkeys);
	execute(PLAN_GET_MANY, args, NULL, SPI_OK_SELECT);
	for (i = 0; i < SPI_processed; i++)
	{
		KvRow		row;
		bool		isnull;
		text	   *key;

		memset(&row, 0, sizeof(row));
		row_from_result(i, &row);
		key = DatumGetTextPP(SPI_getbinval(SPI_tuptable->vals[i],
										   SPI_tuptable->tupdesc, 5, &isnull));
		callback(arg, VARDATA_ANY(key), VARSIZE_ANY_EXHDR(key), &row);
	}
}

/*
 * Lock the rows of these keys, live or expired, until the transaction
 * ends; 'callback' sees each key that has a row (with a NULL row).
 */
void
store_lock(const char *const *keys, const size_t *key_lens, int nkeys,
		   KvRowCallback callback, void *arg)
{
	Datum		args[1];
	uint64		i;

	args[0] = key_array(keys, key_lens, nkeys);
	execute(PLAN_LOCK, args, NULL, SPI_OK_SELECT);
	for (i = 0; i < SPI_processed; i++)
	{
		bool		isnull;
		text	   *key = DatumGetTextPP(SPI_getbinval(SPI_tuptable->vals[i],
													   SPI_tuptable->tupdesc,
													   1, &isnull));

		callback(arg, VARDATA_ANY(key), VARSIZE_ANY_EXHDR(key), NULL);
	}
}

/* The version of a live key; false when it is absent or expired. */
bool
store_version(const char *key, size_t key_len, int64 *version)
{
	Datum		args[1];
	bool		isnull;

	args[0] = text_datum(key, key_len);
	execute(PLAN_VERSION, args, NULL, SPI_OK_SELECT);
	if (SPI_processed == 0)
		return false;
	*version = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0],
										   SPI_tuptable->tupdesc, 1, &isnull));
	return true;
}

KvPutResult
store_put(const char *key, size_t key_len, const char *value,
		  size_t value_len, const char *content_type, TimestampTz expires_at,
		  bool create_only, int64 if_match, int64 *version)
{
	Datum		args[5];
	char		nulls[5] = {' ', ' ', ' ', ' ', ' '};
	bool		isnull;
	HeapTuple	tup;
	TupleDesc	desc;

	args[0] = text_datum(key, key_len);
	args[1] = bytea_datum(value, value_len);
	if (content_type)
		args[2] = CStringGetTextDatum(content_type);
	else
	{
		args[2] = (Datum) 0;
		nulls[2] = 'n';
	}
	args[3] = TimestampTzGetDatum(expires_at);
	if (expires_at == 0)
		nulls[3] = 'n';

	if (if_match != KV_MATCH_NONE)
	{
		args[4] = Int64GetDatum(if_match);
		if (if_match == KV_MATCH_ANY)
			nulls[4] = 'n';
		execute(PLAN_UPDATE_IF, args, nulls, SPI_OK_UPDATE_RETURNING);
		if (SPI_processed == 0)
			return KV_PUT_NO_MATCH;
		*version = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0],
											   SPI_tuptable->tupdesc, 1, &isnull));
		return KV_PUT_REPLACED;
	}
	execute(create_only ? PLAN_CREATE : PLAN_UPSERT, args, nulls,
			SPI_OK_INSERT_RETURNING);
	if (SPI_processed == 0)
		return KV_PUT_EXISTS;
	tup = SPI_tuptable->vals[0];
	desc = SPI_tuptable->tupdesc;
	*version = DatumGetInt64(SPI_getbinval(tup, desc, 1, &isnull));
	if (create_only)
		return KV_PUT_CREATED;
	return DatumGetBool(SPI_getbinval(tup, desc, 2, &isnull))
		? KV_PUT_CREATED : KV_PUT_REPLACED;
}

/*
 * Upsert n distinct keys with one statement (as store_put without
 * conditions); 'callback' sees each key's new version and whether it was
 * created, in key order.  NULL content types and expires_at 0 are NULLs.
 */
void
store_put_many(const char *const *keys, const size_t *key_lens,
			   const char *const *values, const size_t *value_lens,
			   const char *const *content_types,
			   const TimestampTz *expires_at, int n,
			   KvPutCallback callback, void *arg)
{
	Datum		args[4];
	Datum	   *vals = palloc(sizeof(Datum) * n);
	Datum	   *types = palloc(sizeof(Datum) * n);
	Datum	   *expiry = palloc(sizeof(Datum) * n);
	bool	   *type_nulls = palloc(sizeof(bool) * n);
	bool	   *expiry_nulls = palloc(sizeof(bool) * n);
	int			dims[1] = {n};
	int			lbs[1] = {1};
	uint64		i;
	int			k;

	for (k = 0; k < n; k++)
	{
		vals[k] = bytea_datum(values[k], value_lens[k]);
		type_nulls[k] = content_types[k] == NULL;
		types[k] = type_nulls[k] ? (Datum) 0 : CStringGetTextDatum(content_types[k]);
		expiry_nulls[k] = expires_at[k] == 0;
		expiry[k] = TimestampTzGetDatum(expires_at[k]);
	}
	args[0] = key_array(keys, key_lens, n);
	args[1] = PointerGetDatum(construct_array(vals, n, BYTEAOID, -1, false,
											  TYPALIGN_INT));
	args[2] = PointerGetDatum(construct_md_array(types, type_nulls, 1, dims, lbs,
												 TEXTOID, -1, false,
												 TYPALIGN_INT));
	args[3] = PointerGetDatum(construct_md_array(expiry, expiry_nulls, 1, dims,
												 lbs, TIMESTAMPTZOID, 8,
												 FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
	execute(PLAN_UPSERT_MANY, args, NULL, SPI_OK_INSERT_RETURNING);
	for (i = 0; i < SPI_processed; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		bool		isnull;
		text	   *key = DatumGetTextPP(SPI_getbinval(tup, desc, 1, &isnull));

		callback(arg, VARDATA_ANY(key), VARSIZE_ANY_EXHDR(key),
				 DatumGetInt64(SPI_getbinval(tup, desc, 2, &isnull)),
				 DatumGetBool(SPI_getbinval(tup, desc, 3, &isnull)));
	}
}

/*
 * Delete a key.  Without a condition an expired row is removed too but
 * reported absent; with If-Match only a live row of that version goes.
 */
KvDeleteResult
store_delete(const char *key, size_t key_len, int64 if_match)
{
	Datum		args[2];
	char		nulls[2] = {' ', ' '};
	bool		isnull;

	args[0] = text_datum(key, key_len);
	if (if_match != KV_MATCH_NONE)
	{
		args[1] = Int64GetDatum(if_match);
		if (if_match == KV_MATCH_ANY)
			nulls[1] = 'n';
		execute(PLAN_DELETE_IF, args, nulls, SPI_OK_DELETE_RETURNING);
		return SPI_processed > 0 ? KV_DELETE_DONE : KV_DELETE_NO_MATCH;
	}
	execute(PLAN_DELETE, args, NULL, SPI_OK_DELETE_RETURNING);
	if (SPI_processed == 0)
		return KV_DELETE_ABSENT;
	return DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0],
									  SPI_tuptable->tupdesc, 1, &isnull))
		? KV_DELETE_DONE : KV_DELETE_ABSENT;
}

/* Delete up to 'limit' expired rows; returns how many. */
int64
store_delete_expired(int limit)
{
	Datum		args[1];

	args[0] = Int32GetDatum(limit);
	execute(PLAN_EXPIRE, args, NULL, SPI_OK_DELETE);
	return (int64) SPI_processed;
}

/*
 * Keys in byte order that start with 'prefix' and sort after 'after' (NULL:
 * from the start), at most 'limit'.  With a prefix, the scan is bounded
 * above by the prefix with its last byte incremented, so it stops at the
 * end of the prefix's range instead of reading to the end of the index.
 */
int
store_list(const char *prefix, const char *after, int limit, char ***keys)
{
	Datum		args[4];
	size_t		plen = strlen(prefix);
	uint64		i;

	args[0] = CStringGetTextDatum(prefix);
	args[1] = CStringGetTextDatum(after ? after : "");
	args[2] = Int32GetDatum(limit);
	if (plen == 0)
		execute(PLAN_LIST_ALL, args, NULL, SPI_OK_SELECT);
	else
	{
		char	   *upper = pnstrdup(prefix, plen);

		/* valid UTF-8 never contains 0xFF, so this cannot overflow */
		upper[plen - 1] = (char) ((unsigned char) upper[plen - 1] + 1);
		args[3] = text_datum(upper, plen);
		execute(PLAN_LIST_PREFIX, args, NULL, SPI_OK_SELECT);
	}

	*keys = palloc(sizeof(char *) * (SPI_processed + 1));
	for (i = 0; i < SPI_processed; i++)
		(*keys)[i] = SPI_getvalue(SPI_tuptable->vals[i],
								  SPI_tuptable->tupdesc, 1);
	return (int) SPI_processed;
}
