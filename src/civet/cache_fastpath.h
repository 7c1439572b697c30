/*-------------------------------------------------------------------------
 *
 * cache_fastpath.h
 *	  Lock-free cache reads for civetweb threads (src/civet/cache_fastpath.c).
 *
 * IDENTIFICATION
 *	  src/civet/cache_fastpath.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef KVSERVER_CACHE_FASTPATH_H
#define KVSERVER_CACHE_FASTPATH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct KvFastValue
{
	char	   *value;			/* malloc'd */
	size_t		value_len;
	char	   *content_type;	/* malloc'd; NULL: none */
	int64_t		version;
	int64_t		expires_at;		/* PostgreSQL timestamptz; 0: never */
} KvFastValue;

typedef struct KvFastStats
{
	uint64_t	hits;
	uint64_t	misses;
	uint64_t	evictions;
	uint64_t	entries;
	uint64_t	used_bytes;
	uint64_t	capacity_bytes;
} KvFastStats;

extern void kvfast_attach(void *shared);
extern void kvfast_stats(KvFastStats *stats);
extern bool kvfast_get(const char *key, size_t key_len, KvFastValue *out);

#endif							/* KVSERVER_CACHE_FASTPATH_H */
