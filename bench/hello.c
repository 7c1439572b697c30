/*-------------------------------------------------------------------------
 *
 * hello.c
 *	  The hit path's ceiling in make bench: civetweb itself, linked from
 *	  the same Debian libcivetweb as kvserver, started with kvserver's
 *	  options (thread count, keep-alive, TCP_NODELAY, queue sizes), and
 *	  answering every request with a fixed 16-byte body.  Whatever
 *	  kvserver's GET hit does beyond this (routing, the key's decoding,
 *	  the cache lookup, identity, metrics) is its own cost.
 *
 *	  hello PORT THREADS TIMEOUT_MS
 *
 *	  Runs until SIGINT or SIGTERM.  Not part of the extension: bench/run.sh
 *	  compiles it with cc ... -lcivetweb.
 *
 * IDENTIFICATION
 *	  bench/hello.c
 *
 *-------------------------------------------------------------------------
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <civetweb.h>

static volatile sig_atomic_t stop;

static void
on_signal(int sig)
{
	(void) sig;
	stop = 1;
}

/*
 * One buffer and one mg_write(), as kvserver's replies are written, so that
 * the comparison is of the work done, not of the number of syscalls.
 */
static int
hello(struct mg_connection *conn, void *arg)
{
	static const char reply[] =
		"HTTP/1.1 200 OK\r\n"
		"Content-Type: application/octet-stream\r\n"
		"Content-Length: 16\r\n"
		"\r\n"
		"0123456789abcdef";

	(void) arg;
	mg_write(conn, reply, sizeof(reply) - 1);
	return 200;
}

int
main(int argc, char **argv)
{
	const char *options[32];
	struct mg_callbacks callbacks;
	struct mg_context *ctx;
	char		ports[64];
	int			i = 0;

	if (argc != 4)
	{
		fprintf(stderr, "usage: %s PORT THREADS TIMEOUT_MS\n", argv[0]);
		return 2;
	}
	snprintf(ports, sizeof(ports), "127.0.0.1:%s", argv[1]);
	options[i++] = "listening_ports";
	options[i++] = ports;
	options[i++] = "num_threads";
	options[i++] = argv[2];
	options[i++] = "decode_url";
	options[i++] = "no";
	options[i++] = "enable_keep_alive";
	options[i++] = "yes";
	options[i++] = "keep_alive_timeout_ms";
	options[i++] = argv[3];
	options[i++] = "request_timeout_ms";
	options[i++] = argv[3];
	options[i++] = "tcp_nodelay";
	options[i++] = "1";
	options[i++] = "listen_backlog";
	options[i++] = "1024";
	options[i++] = "connection_queue";
	options[i++] = "1024";
	options[i++] = "enable_directory_listing";
	options[i++] = "no";
	options[i++] = NULL;

	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	mg_init_library(0);
	memset(&callbacks, 0, sizeof(callbacks));
	ctx = mg_start(&callbacks, NULL, options);
	if (ctx == NULL)
	{
		fprintf(stderr, "hello: civetweb did not start on %s\n", ports);
		return 1;
	}
	mg_set_request_handler(ctx, "/", hello, NULL);
	printf("hello: listening on %s, %s threads\n", ports, argv[2]);
	fflush(stdout);
	/* a signal may land on any thread: look at the flag every 100 ms */
	while (!stop)
		usleep(100 * 1000);
	mg_stop(ctx);
	mg_exit_library();
	return 0;
}
