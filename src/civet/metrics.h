/*-------------------------------------------------------------------------
 *
 * metrics.h
 *	  Counters of the HTTP server and the worker, rendered as Prometheus
 *	  text for GET /metrics (src/civet/metrics.c).
 *
 * IDENTIFICATION
 *	  src/civet/metrics.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef KVSERVER_METRICS_H
#define KVSERVER_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "http_request.h"

extern void kv_metrics_request(KvMethod method, int status,
							   int64_t elapsed_ns);
extern void kv_metrics_batch(int nrequests);
extern void kv_metrics_db_error(void);
extern char *kv_metrics_render(size_t *len);

#endif							/* KVSERVER_METRICS_H */
