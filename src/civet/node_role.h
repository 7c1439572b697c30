/*-------------------------------------------------------------------------
 *
 * node_role.h
 *	  Whether this node is a primary or a hot standby, as the worker's
 *	  main thread last saw it, for civetweb threads (src/civet/node_role.c).
 *
 * The main thread publishes; civetweb threads read.  Plain C types, so
 * both sides include it.
 *
 * IDENTIFICATION
 *	  src/civet/node_role.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef KVSERVER_NODE_ROLE_H
#define KVSERVER_NODE_ROLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* What the main thread last published (kv_node_get). */
typedef struct KvNodeState
{
	bool		standby;		/* in recovery: a hot standby */
	uint64_t	replay_lsn;		/* standby: last WAL position replayed */
	int64_t		last_replayed_xact; /* standby: PostgreSQL timestamptz of
									 * the last commit replayed; 0: none */
} KvNodeState;

/* main thread */
extern void kv_node_publish(bool standby, uint64_t replay_lsn,
							int64_t last_replayed_xact);
extern void kv_node_set_primary_url(const char *url);

/* civetweb threads */
extern bool kv_node_is_standby(void);
extern void kv_node_get(KvNodeState *state);
extern bool kv_node_location(const char *path, const char *query,
							 char *buf, size_t buflen);
extern bool kv_node_primary_url(char *buf, size_t buflen);

#endif							/* KVSERVER_NODE_ROLE_H */
