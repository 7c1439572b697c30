/*-------------------------------------------------------------------------
 *
 * http_server.c
 *	  The civetweb glue: start and stop the server, and route each request
 *	  to its handler.
 *
 * The handlers live by resource in http_keys.c and http_admin.c; request
 * reading in http_request.c; reply writing in http_reply.c.  This file
 * parses the method once, refuses ambiguous framings before anything else
 * looks at the request, and counts every request for /metrics.
 *
 * civetweb side: runs on civetweb threads, which must never call into
 * PostgreSQL; every file under src/civet/ refuses to compile if a
 * PostgreSQL header is included (cache_fastpath.c and cache_shared.h take
 * c.h for the atomics and refuse postgres.h), and the test suite checks their object
 * files for PostgreSQL symbols.  Everything they need from the server side
 * arrives through request_queue.h (requests out, replies back) and
 * kv_http_set_limits() (settings).
 *
 * civetweb is started with every signal blocked in the calling thread, so
 * its threads inherit a full mask and signals reach the main thread only.
 *
 * IDENTIFICATION
 *	  src/civet/http_server.c
 *
 *-------------------------------------------------------------------------
 */
#include "http_server.h"

#include <civetweb.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "http_auth.h"
#include "http_handlers.h"
#include "http_parse.h"
#include "http_reply.h"
#include "http_request.h"
#include "metrics.h"
#include "watch_wait.h"

#ifdef PG_MAJORVERSION
#error "http_server.c runs on civetweb threads: no PostgreSQL headers"
#endif

static struct mg_context *http_ctx;

/*
 * Requests inside handle_request() (not counting the drain of a refused
 * body): kv_http_stop() lets them write their answers before mg_stop(),
 * since civetweb stops writing once its stop flag is set.
 */
static atomic_int active_requests;

/* How long kv_http_stop() lets those requests finish, at most. */
#define STOP_GRACE_MS	1000

/* Endpoints open to anyone: /health, and /metrics and / when configured. */
static bool
route_is_open(KvRoute route)
{
	return route == KV_ROUTE_HEALTH || route == KV_ROUTE_NOT_FOUND ||
		((route == KV_ROUTE_METRICS || route == KV_ROUTE_DASHBOARD) &&
		 kv_auth_public_metrics());
}

static int
route_to_handler(const KvHttpCtx *ctx, KvRoute route, const char *key_raw)
{
	switch (route)
	{
		case KV_ROUTE_KEY:
			return kv_handle_key(ctx, key_raw);
		case KV_ROUTE_COLLECTION:
			return kv_handle_collection(ctx);
		case KV_ROUTE_HEALTH:
			return kv_handle_health(ctx);
		case KV_ROUTE_METRICS:
			return kv_handle_metrics(ctx);
		case KV_ROUTE_DASHBOARD:
			return kv_handle_dashboard(ctx);
		case KV_ROUTE_TXN:
			return kv_handle_txn(ctx);
		case KV_ROUTE_NOT_FOUND:
			break;
	}
	return kv_send_error(ctx, 404, KV_ERR_NOT_FOUND,
						 "no such endpoint: use /kv/{key}, /kv/, /txn or /health",
						 NULL, false);
}

/* Route a request, first finding out who asks unless the endpoint is open. */
static int
dispatch(KvHttpCtx *ctx)
{
	const char *path = ctx->ri->local_uri_raw;
	const char *key_raw;
	KvRoute		route;
	KvIdentity	id;
	int			status;

	if (path == NULL)
		return kv_send_error(ctx, 400, KV_ERR_BAD_REQUEST,
							 "request target must be a path", NULL, true);

	/* a body we will not read must not be taken for the next request */
	if ((ctx->chunked || ctx->ri->content_length > 0) &&
		ctx->method != KV_METHOD_PUT && ctx->method != KV_METHOD_POST)
		mg_disable_connection_keep_alive(ctx->conn);

	route = kv_route(path, &key_raw);
	if (route_is_open(route))
		return route_to_handler(ctx, route, key_raw);
	if ((status = kv_auth_identify(ctx, &id)) != 0)
		return status;
	ctx->id = &id;
	status = route_to_handler(ctx, route, key_raw);
	ctx->id = NULL;
	kv_auth_release(&id);
	return status;
}

/* Every request: check its framing, route it, count it for /metrics. */
static int
handle_request(struct mg_connection *conn, void *cbdata)
{
	KvHttpCtx	ctx = {0};
	struct timespec start;
	struct timespec end;
	const char *why;
	int			status;

	(void) cbdata;
	atomic_fetch_add(&active_requests, 1);
	clock_gettime(CLOCK_MONOTONIC, &start);
	ctx.conn = conn;
	ctx.ri = mg_get_request_info(conn);
	ctx.method = kv_method_parse(ctx.ri->request_method);
	ctx.head = (ctx.method == KV_METHOD_HEAD);
	ctx.reads = (ctx.method == KV_METHOD_GET || ctx.head);
	why = kv_framing_problem(ctx.ri, &ctx.chunked);
	if (why != NULL)
		status = kv_send_error(&ctx, 400, KV_ERR_BAD_REQUEST, why, NULL, true);
	else
		status = dispatch(&ctx);
	clock_gettime(CLOCK_MONOTONIC, &end);
	/* a watch's waiting is not service time */
	kv_metrics_request(ctx.method, status,
					   (int64_t) (end.tv_sec - start.tv_sec) * 1000000000 +
					   (end.tv_nsec - start.tv_nsec) -
					   kv_watch_take_waited_ns());
	atomic_fetch_sub(&active_requests, 1);
	kv_linger_body(&ctx);		/* a refused body: drain it, bounded */
	return status;
}

/* civetweb's own protocol errors (bad request line, huge headers) as JSON. */
static int
handle_http_error(struct mg_connection *conn, int status, const char *msg)
{
	KvHttpCtx	ctx = {0};
	KvError		err = status >= 500 ? KV_ERR_INTERNAL : KV_ERR_BAD_REQUEST;

	ctx.conn = conn;
	/* civetweb says 411 for a Content-Length it cannot read: a bad request */
	if (status == 411)
		status = 400;
	/* an HTTP version we do not speak is the client's error, not ours */
	if (status == 505)
		err = KV_ERR_BAD_REQUEST;
	if (status == 404)
		err = KV_ERR_NOT_FOUND;
	else if (status == 405)
		err = KV_ERR_METHOD_NOT_ALLOWED;
	kv_send_error(&ctx, status, err, msg, NULL, true);
	return 0;
}

/*
 * "a, b" + port -> "a:port,b:port"; "*" -> "port" (all IPv4 addresses).
 * With tls, each port ends in "s": civetweb then serves HTTPS only there.
 */
static bool
build_ports(const char *addrs, int port, bool tls, char *out, size_t outlen)
{
	const char *p = addrs;
	const char *s = tls ? "s" : "";
	size_t		used = 0;

	out[0] = '\0';
	while (*p)
	{
		const char *start;
		size_t		len;
		int			n;

		while (*p == ' ' || *p == ',')
			p++;
		start = p;
		while (*p && *p != ',' && *p != ' ')
			p++;
		len = p - start;
		if (len == 0)
			continue;
		if (len == 1 && *start == '*')
			n = snprintf(out + used, outlen - used, "%s%d%s",
						 used ? "," : "", port, s);
		else if (memchr(start, ':', len))
			n = snprintf(out + used, outlen - used, "%s[%.*s]:%d%s",
						 used ? "," : "", (int) len, start, port, s);
		else
			n = snprintf(out + used, outlen - used, "%s%.*s:%d%s",
						 used ? "," : "", (int) len, start, port, s);
		if (n < 0 || (size_t) n >= outlen - used)
			return false;
		used += n;
	}
	return used > 0;
}

/*
 * Start civetweb.  All signals are blocked while it creates its threads so
 * that they inherit a full mask; the caller's mask is restored after.
 */
bool
kv_http_start(const KvHttpConfig *cfg, char *errbuf, size_t errlen)
{
	struct mg_callbacks callbacks;
	struct mg_init_data init;
	struct mg_error_data error;
	unsigned	error_code = 0;
	char		ports[1024];
	char		threads[16];
	char		timeout[16];
	const char *options[32];
	int			i = 0;
	sigset_t	all,
				old;

	if (!build_ports(cfg->listen_addresses, cfg->port, cfg->tls_init != NULL,
					 ports, sizeof(ports)))
	{
		snprintf(errbuf, errlen, "no usable address in \"%s\"",
				 cfg->listen_addresses);
		return false;
	}
	snprintf(threads, sizeof(threads), "%d", cfg->threads);
	snprintf(timeout, sizeof(timeout), "%d", cfg->request_timeout_ms);

	options[i++] = "listening_ports";
	options[i++] = ports;
	options[i++] = "num_threads";
	options[i++] = threads;
	/* keys are opaque: we decode the path ourselves, exactly once */
	options[i++] = "decode_url";
	options[i++] = "no";
	options[i++] = "enable_keep_alive";
	options[i++] = "yes";
	options[i++] = "keep_alive_timeout_ms";
	options[i++] = timeout;
	options[i++] = "request_timeout_ms";
	options[i++] = timeout;
	options[i++] = "tcp_nodelay";
	options[i++] = "1";
	options[i++] = "listen_backlog";
	options[i++] = "1024";
	options[i++] = "connection_queue";
	options[i++] = "1024";
	options[i++] = "enable_directory_listing";
	options[i++] = "no";
	if (cfg->tls_init != NULL)
	{
		/* 4: TLS 1.2 and later (tls_init sets that minimum once more) */
		options[i++] = "ssl_protocol_version";
		options[i++] = "4";
	}
	options[i++] = NULL;

	memset(&callbacks, 0, sizeof(callbacks));
	callbacks.http_error = handle_http_error;
	callbacks.init_ssl = cfg->tls_init;
	memset(&init, 0, sizeof(init));
	init.callbacks = &callbacks;
	init.user_data = cfg->tls_arg;
	init.configuration_options = options;
	memset(&error, 0, sizeof(error));
	error.code = &error_code;
	error.text = errbuf;
	error.text_buffer_size = errlen;
	errbuf[0] = '\0';

	mg_init_library(0);
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	http_ctx = mg_start2(&init, &error);
	/* the watches' ticker thread, with the same full mask */
	if (http_ctx != NULL && !kv_watch_start())
	{
		mg_stop(http_ctx);
		http_ctx = NULL;
		snprintf(errbuf, errlen, "could not start the watch thread");
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (http_ctx == NULL)
	{
		if (errbuf[0] == '\0')
			snprintf(errbuf, errlen, "could not listen on %s", ports);
		return false;
	}
	mg_set_request_handler(http_ctx, "/", handle_request, NULL);
	return true;
}

/*
 * Stop civetweb.  The caller must have closed the request queue first, so
 * no thread is left waiting for an answer and mg_stop() can join them all.
 * Watches are woken here and answer 503 at once.
 */
void
kv_http_stop(void)
{
	kv_watch_stop();
	if (http_ctx != NULL)
	{
		struct timespec pause = {0, 5 * 1000 * 1000};
		int			waited;

		/*
		 * Every waiting thread has been answered (the queue is closed), but
		 * may not have written its answer yet: give them a moment, bounded,
		 * as a client still sending a body may keep its thread longer.
		 */
		for (waited = 0;
			 atomic_load(&active_requests) > 0 && waited < STOP_GRACE_MS;
			 waited += 5)
			nanosleep(&pause, NULL);
		mg_stop(http_ctx);
		http_ctx = NULL;
	}
}

/*
 * Ready civetweb for HTTPS, before kv_http_start() with a tls_init:
 * mg_init_library(MG_FEATURES_TLS) loads OpenSSL (through the shims of
 * src/tls/, loaded by the caller) and must say TLS is available.  civetweb
 * cannot try twice in one process: after a failure it counts OpenSSL as
 * initialised and would serve HTTPS with missing functions, so a failure
 * is final here too.
 */
bool
kv_http_tls_init(char *errbuf, size_t errlen)
{
	static int	state = 0;		/* 1 ready, -1 OpenSSL failed, -2 no TLS */

	if (state == 0)
	{
		if (!mg_check_feature(MG_FEATURES_TLS))
			state = -2;
		else if (mg_init_library(MG_FEATURES_TLS) & MG_FEATURES_TLS)
			state = 1;
		else
			state = -1;
	}
	if (state == -2)
		snprintf(errbuf, errlen, "this libcivetweb was built without TLS");
	else if (state == -1)
		snprintf(errbuf, errlen,
				 "mg_init_library() could not load OpenSSL through \"libssl.so\" and \"libcrypto.so\"");
	return state == 1;
}
