/*-------------------------------------------------------------------------
 *
 * rmgr.h
 *	  kvserver's custom WAL resource manager: cache invalidations that
 *	  travel in WAL to hot standbys (src/pg/rmgr.c).
 *
 * IDENTIFICATION
 *	  src/pg/rmgr.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef KVSERVER_RMGR_H
#define KVSERVER_RMGR_H

#include "access/transam.h"

#include "cache_shared.h"

/*
 * Resource manager ID, in the range PostgreSQL leaves to extensions
 * (RM_MIN_CUSTOM_ID 128 .. RM_MAX_CUSTOM_ID 255).  Every node that replays
 * kvserver's WAL must preload kvserver, or replay stops at the first record
 * ("resource manager with ID 142 not registered").
 */
#define RM_KVSERVER_ID			142
#define KV_RMGR_NAME			"kvserver"

/* xl_info (the high four bits are the resource manager's) */
#define XLOG_KVSERVER_INVALIDATE	0x10

/*
 * Past this many distinct key hashes, a record asks to empty the partitions
 * it touched instead of naming keys, so a record stays under 8 kB.
 */
#define KV_WAL_MAX_HASHES		1024

/*
 * Written at PRE_COMMIT by every transaction that wrote kv_store, before its
 * commit record.  'partitions' are the cache partitions it wrote keys of
 * (bit i: partition i); 'cleared' those of them to empty entirely
 * (TRUNCATE, DROP, or too many keys); then 'nhashes' uint64 key hashes.
 */
typedef struct xl_kvserver_invalidate
{
	TransactionId xid;			/* top-level transaction */
	uint16		partitions;
	uint16		cleared;
	uint32		nhashes;
	/* uint64 hashes[nhashes] follow */
} xl_kvserver_invalidate;

#define SizeOfKvInvalidate	(offsetof(xl_kvserver_invalidate, nhashes) + sizeof(uint32))

StaticAssertDecl(KVCACHE_PARTITIONS <= 16,
				 "partition masks of kvserver's WAL records are 16 bits");

extern void kv_rmgr_register(void);
extern bool kv_wal_logging(void);
extern void kv_wal_log_invalidation(const uint64 *hashes, int nhashes,
									bool remove_all);

/* The standby's holds: shared memory, and their release */
extern Size kv_holds_shmem_size(void);
extern void kv_holds_shmem_request(void);
extern void kv_holds_shmem_startup(void);
extern void kv_holds_release(void);

#endif							/* KVSERVER_RMGR_H */
