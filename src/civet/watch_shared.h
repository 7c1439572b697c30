/*-------------------------------------------------------------------------
 *
 * watch_shared.h
 *	  Layout of the watch state in shared memory: the change index of
 *	  kv_store and a ring of the keys its recent commits changed.  Written
 *	  by committing PostgreSQL processes (src/pg/watch.c), read lock-free by
 *	  civetweb threads (src/civet/watch_ring.c).
 *
 * Include "c.h" (or "postgres.h") before this file: it uses pg_atomic_*
 * types and nothing else from PostgreSQL (cache_shared.h refuses emulated
 * atomics, and this file includes it for that check).
 *
 *	  index		  the change index: moves forward once per committed
 *				  transaction that wrote kv_store (and on kv_cache_reset), to
 *				  at least the end of its commit record in WAL, so it also
 *				  moves past every index an earlier run of the server gave
 *				  out; 0 until the first change or the worker's start
 *	  head		  ring slots written since the server started
 *	  forgotten	  changes with an index up to this may be missing from the
 *				  ring (overwritten slots, a cache reset, a restart): a
 *				  watcher whose base is older cannot tell and answers
 *	  ring		  per changed key, the index of its transaction, the key's
 *				  hash and first bytes; or one slot for a whole prefix (the
 *				  common prefix of a transaction's keys when there are many;
 *				  empty for TRUNCATE: every key)
 *
 * Writers hold the "kvserver watch" LWLock, fill the slots of one
 * transaction (each between seq odd and seq even, raising 'forgotten'
 * before a slot is overwritten), then publish the new index.  So a reader
 * that has read the index finds every slot up to it below 'head', or
 * learns from 'forgotten' that it is gone.
 *
 * IDENTIFICATION
 *	  src/civet/watch_shared.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef KVSERVER_WATCH_SHARED_H
#define KVSERVER_WATCH_SHARED_H

#include "cache_shared.h"

#define KVWATCH_RING		4096
#define KVWATCH_KEY_BYTES	104

/* A slot is one key (matched by hash, or by its first bytes) or a prefix. */
#define KVWATCH_SLOT_KEY	1
#define KVWATCH_SLOT_PREFIX 2

typedef struct KvWatchSlot
{
	pg_atomic_uint64 seq;		/* odd while being written */
	uint64		index;			/* change index of the transaction */
	uint64		hash;			/* KEY: kvc_hash() of the whole key */
	uint32		key_len;		/* KEY: length of the whole key */
	uint16		stored;			/* bytes of 'bytes' in use */
	uint16		kind;			/* KVWATCH_SLOT_* */
	char		bytes[KVWATCH_KEY_BYTES];	/* KEY: its first bytes;
											 * PREFIX: the prefix, maybe cut
											 * short (which only widens it) */
} KvWatchSlot;

typedef struct KvWatchShared
{
	pg_atomic_uint64 index;
	pg_atomic_uint64 head;
	pg_atomic_uint64 forgotten;
	KvWatchSlot ring[KVWATCH_RING];
} KvWatchShared;

#endif							/* KVSERVER_WATCH_SHARED_H */
