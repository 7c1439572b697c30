/*-------------------------------------------------------------------------
 *
 * store.h
 *	  Table access for kv_store through kept SPI plans (src/pg/store.c).
 *
 * Every function expects an open transaction, an active snapshot and an
 * SPI connection.  Results point into SPI memory: copy them before the
 * next store call or SPI_finish.
 *
 * IDENTIFICATION
 *	  src/pg/store.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef KVSERVER_STORE_H
#define KVSERVER_STORE_H

#include "datatype/timestamp.h"

#include "request_queue.h"

typedef struct KvRow
{
	bool		found;
	const char *value;
	size_t		value_len;
	char	   *content_type;	/* NULL: none */
	int64		version;
	TimestampTz expires_at;		/* 0: never */
} KvRow;

typedef enum KvPutResult
{
	KV_PUT_CREATED,
	KV_PUT_REPLACED,
	KV_PUT_EXISTS,				/* create-only and the key is live */
	KV_PUT_NO_MATCH				/* If-Match and the version differs */
} KvPutResult;

typedef enum KvDeleteResult
{
	KV_DELETE_DONE,
	KV_DELETE_ABSENT,
	KV_DELETE_NO_MATCH
} KvDeleteResult;

extern Oid	store_namespace_of_extension(void);
extern Oid	store_prepare(Oid nspid);
extern bool store_is_plain(Oid relid);
extern void store_get(const char *key, size_t key_len, KvRow *row);

typedef void (*KvRowCallback) (void *arg, const char *key, size_t key_len,
							   const KvRow *row);
extern void store_get_many(const char *const *keys, const size_t *key_lens,
						   int nkeys, KvRowCallback callback, void *arg);
extern void store_lock(const char *const *keys, const size_t *key_lens,
					   int nkeys, KvRowCallback callback, void *arg);
extern bool store_version(const char *key, size_t key_len, int64 *version);
/* One row of a store_put_many(): what the upsert of 'key' gave. */
typedef void (*KvPutCallback) (void *arg, const char *key, size_t key_len,
							   int64 version, bool created);

extern void store_put_many(const char *const *keys, const size_t *key_lens,
						   const char *const *values, const size_t *value_lens,
						   const char *const *content_types,
						   const TimestampTz *expires_at, int n,
						   KvPutCallback callback, void *arg);
extern KvPutResult store_put(const char *key, size_t key_len,
							 const char *value, size_t value_len,
							 const char *content_type, TimestampTz expires_at,
							 bool create_only, int64 if_match, int64 *version);
extern KvDeleteResult store_delete(const char *key, size_t key_len,
								   int64 if_match);
extern int64 store_delete_expired(int limit);
extern int	store_list(const char *prefix, const char *after, int limit,
					   char ***keys);

#endif							/* KVSERVER_STORE_H */
