/*-------------------------------------------------------------------------
 *
 * http_request.c
 *	  Read a request off a civetweb connection: its method, headers,
 *	  framing, body and preconditions; and the limits that bound them.
 *
 * Everything here treats the request as hostile: framings that let a
 * proxy and this server disagree about where a request ends are refused,
 * a body is never read past the limit plus one byte, and every header we
 * act on must appear at most once.
 *
 * A body left unread by a refusal is drained, within bounds, before the
 * connection closes (kv_linger_body: lingering close).
 *
 * Limits: the worker's main thread publishes the kvserver.* limits with
 * kv_http_set_limits() at start and after SIGHUP; civetweb threads read
 * them with relaxed atomic loads (each is one aligned word, and a request
 * that sees the old limit for a moment is harmless).
 *
 * civetweb side: runs on civetweb threads, no PostgreSQL.
 *
 * IDENTIFICATION
 *	  src/civet/http_request.c
 *
 *-------------------------------------------------------------------------
 */
#include "http_request.h"

#include <civetweb.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "http_parse.h"
#include "http_server.h"
#include "kv_api.h"
#include "request_queue.h"

#ifdef PG_MAJORVERSION
#error "http_request.c runs on civetweb threads: no PostgreSQL headers"
#endif

/*---- limits ----*/

static int	limit_key_length = KV_DEFAULT_MAX_KEY_LENGTH;
static int64_t limit_value_size = KV_DEFAULT_MAX_VALUE_SIZE;
static int	limit_timeout_ms = KV_DEFAULT_REQUEST_TIMEOUT_MS;

void
kv_http_set_limits(int max_key_length, int64_t max_value_size,
				   int request_timeout_ms)
{
	__atomic_store_n(&limit_key_length, max_key_length, __ATOMIC_RELAXED);
	__atomic_store_n(&limit_value_size, max_value_size, __ATOMIC_RELAXED);
	__atomic_store_n(&limit_timeout_ms, request_timeout_ms, __ATOMIC_RELAXED);
}

int
kv_limit_key_length(void)
{
	return __atomic_load_n(&limit_key_length, __ATOMIC_RELAXED);
}

int64_t
kv_limit_value_size(void)
{
	return __atomic_load_n(&limit_value_size, __ATOMIC_RELAXED);
}

int
kv_limit_timeout_ms(void)
{
	return __atomic_load_n(&limit_timeout_ms, __ATOMIC_RELAXED);
}

/*---- method ----*/

/* Indexed by KvMethod; also the "method" label of /metrics. */
static const char *const method_names[KV_NMETHODS] = {
	[KV_METHOD_GET] = "GET",
	[KV_METHOD_HEAD] = "HEAD",
	[KV_METHOD_PUT] = "PUT",
	[KV_METHOD_DELETE] = "DELETE",
	[KV_METHOD_POST] = "POST",
	[KV_METHOD_OTHER] = "other",
};

KvMethod
kv_method_parse(const char *method)
{
	int			m;

	for (m = 0; m < KV_METHOD_OTHER; m++)
		if (strcmp(method, method_names[m]) == 0)
			return (KvMethod) m;
	return KV_METHOD_OTHER;
}

const char *
kv_method_name(KvMethod method)
{
	if ((int) method < 0 || method >= KV_NMETHODS)
		method = KV_METHOD_OTHER;
	return method_names[method];
}

/*---- headers and framing ----*/

/* The first value of header 'name', and how many times it appears. */
const char *
kv_find_header(const struct mg_request_info *ri, const char *name, int *count)
{
	const char *found = NULL;
	int			i;

	*count = 0;
	for (i = 0; i < ri->num_headers; i++)
	{
		if (strcasecmp(ri->http_headers[i].name, name) == 0)
		{
			if (found == NULL)
				found = ri->http_headers[i].value;
			(*count)++;
		}
	}
	return found;
}

/*
 * Refuse the framings that let a proxy and this server disagree about
 * where a request ends (request smuggling): Content-Length together with
 * Transfer-Encoding, conflicting Content-Lengths, unknown codings.
 * Returns a complaint, or NULL with *chunked set.
 */
const char *
kv_framing_problem(const struct mg_request_info *ri, bool *chunked)
{
	int			ncl;
	int			nte;
	const char *te = kv_find_header(ri, "Transfer-Encoding", &nte);
	int			i;
	const char *first_cl = kv_find_header(ri, "Content-Length", &ncl);

	*chunked = false;
	/* civetweb keeps MG_MAX_HEADERS and drops the rest without a word */
	if (ri->num_headers >= MG_MAX_HEADERS)
		return "too many header fields";
	if (strcmp(ri->http_version, "1.1") == 0)
	{
		int			nhost;

		(void) kv_find_header(ri, "Host", &nhost);
		if (nhost != 1)
			return "an HTTP/1.1 request needs exactly one Host header";
	}
	else if (nte > 0)
		return "Transfer-Encoding is not allowed before HTTP/1.1";
	if (nte > 0 && ncl > 0)
		return "Content-Length and Transfer-Encoding together are ambiguous";
	if (nte > 1 || (te && strcasecmp(te, "chunked") != 0))
		return "only Transfer-Encoding: chunked is supported";
	*chunked = (te != NULL);
	for (i = 0; i < ri->num_headers && ncl > 0; i++)
	{
		const char *v = ri->http_headers[i].value;
		size_t		digits;

		if (strcasecmp(ri->http_headers[i].name, "Content-Length") != 0)
			continue;
		/* civetweb reads leading digits only: "0x10" would be 0 */
		digits = strspn(v, "0123456789");
		if (digits == 0 || v[digits + strspn(v + digits, " \t")] != '\0')
			return "Content-Length must be a decimal number";
		if (strncmp(v, first_cl, digits) != 0 ||
			strspn(first_cl, "0123456789") != digits)
			return "conflicting Content-Length headers";
	}
	return NULL;
}

/*---- body ----*/

/*
 * A client that asked to be told before sending the body (curl does for
 * large values) would otherwise wait a second for nothing.
 */
static void
send_continue_if_expected(const KvHttpCtx *ctx)
{
	int			nexpect;
	const char *expect = kv_find_header(ctx->ri, "Expect", &nexpect);

	if (expect != NULL && strcasecmp(expect, "100-continue") == 0 &&
		strcmp(ctx->ri->http_version, "1.1") == 0)
		mg_write(ctx->conn, "HTTP/1.1 100 Continue\r\n\r\n", 25);
}

/*
 * The body has been read to its end, or given up on (malformed, or the
 * client closed or stalled): kv_linger_body() leaves it alone.  The
 * handlers see the context as const; this one flag is bookkeeping for
 * handle_request(), which owns the context.
 */
static void
mark_body_consumed(const KvHttpCtx *ctx)
{
	((KvHttpCtx *) ctx)->body_consumed = true;
}

/*
 * Read the body, never more than max + 1 bytes.  Returns 0 with the body
 * (malloc'd, NUL-terminated), 413 when it is over the limit, -1 when it is
 * malformed or the client went away.  After a 413 the rest of the body is
 * still in flight, for kv_linger_body() to drain.
 */
int
kv_read_body(const KvHttpCtx *ctx, int64_t max, char **body, size_t *len)
{
	const struct mg_request_info *ri = ctx->ri;
	bool		chunked = ctx->chunked;
	size_t		cap;
	size_t		used = 0;
	char	   *buf;

	*body = NULL;
	*len = 0;
	if (!chunked && ri->content_length <= 0)
	{
		mark_body_consumed(ctx);
		*body = calloc(1, 1);
		return *body ? 0 : -1;
	}
	if (!chunked && ri->content_length > max)
		return 413;

	send_continue_if_expected(ctx);

	cap = chunked ? 65536 : (size_t) ri->content_length;
	if (cap > (size_t) max + 1)
		cap = (size_t) max + 1;
	buf = malloc(cap + 1);
	if (buf == NULL)
		return -1;
	for (;;)
	{
		int			n;

		if (used == cap)
		{
			char	   *bigger;

			if (!chunked || cap > (size_t) max)
				break;
			cap = cap * 2 > (size_t) max + 1 ? (size_t) max + 1 : cap * 2;
			bigger = realloc(buf, cap + 1);
			if (bigger == NULL)
			{
				free(buf);
				return -1;
			}
			buf = bigger;
		}
		n = mg_read(ctx->conn, buf + used, cap - used);
		if (n < 0)
		{
			mark_body_consumed(ctx);
			free(buf);
			return -1;
		}
		if (n == 0)
			break;
		used += n;
		if (used > (size_t) max)
		{
			free(buf);
			return 413;
		}
	}
	/* all of it, the end of the chunks, or a client that closed or stalled */
	mark_body_consumed(ctx);
	if (!chunked && (int64_t) used != ri->content_length)
	{
		free(buf);
		return -1;				/* the client closed early */
	}
	buf[used] = '\0';
	*body = buf;
	*len = used;
	return 0;
}

/*---- lingering close ----*/

/* Bounds of kv_linger_body(). */
#define KV_LINGER_MAX_MS		5000
#define KV_LINGER_MAX_BYTES		(INT64_C(64) * 1024 * 1024)
#define KV_LINGER_READ_BYTES	4096	/* on a civetweb thread's small stack */

/*
 * Lingering close, as nginx's lingering_close.  A request refused before
 * its body was read (413 decided from Content-Length, a 400 that closes, a
 * 401) leaves the body in flight, and closing a socket with unread data
 * makes the kernel answer with a reset: a client that does not wait for
 * "100 Continue" but writes the whole body first (Python's http.client and
 * requests, Perl's HTTP::Tiny) then sees a broken pipe or a reset instead
 * of the answer already sent.  So, after the answer, the rest of the body
 * is read and thrown away through civetweb (which also undoes chunking),
 * until the first of:
 *
 *	- the end of the body;
 *	- a read that comes back short: mg_read() returns less than it was
 *	  asked for only at the end of the body, when the client closed or
 *	  sent a malformed chunk, or when it sent nothing more for
 *	  kvserver.request_timeout (civetweb's read timeout, as set when the
 *	  HTTP server started), so a client that stalls is cut off after one
 *	  request_timeout;
 *	- KV_LINGER_MAX_BYTES (64 MiB) drained, whatever the body claims;
 *	- KV_LINGER_MAX_MS (5 s) since draining began, checked after each read
 *	  of 4 kB.
 *
 * Bodies that were read (body_consumed) and requests without one are left
 * alone.  The body of a request whose framing was refused is drained as
 * civetweb frames it: its bytes are thrown away, and the connection closes
 * anyway.
 *
 * A body drained to its end lets civetweb keep the connection alive when
 * nobody asked to close it, exactly as if the handler had read it.  A body
 * not drained to its end always closes the connection: civetweb would
 * otherwise go on discarding it itself before the next request, with no
 * bound at all.
 */
void
kv_linger_body(const KvHttpCtx *ctx)
{
	char		buf[KV_LINGER_READ_BYTES];
	int64_t		drained = 0;
	bool		complete = false;
	struct timespec start;
	struct timespec now;

	if (ctx->body_consumed || ctx->conn == NULL || ctx->ri == NULL)
		return;
	if (!ctx->chunked && ctx->ri->content_length <= 0)
		return;
	clock_gettime(CLOCK_MONOTONIC, &start);
	for (;;)
	{
		int			n = mg_read(ctx->conn, buf, sizeof(buf));

		if (n > 0)
			drained += n;
		if (n < (int) sizeof(buf))
		{
			/*
			 * A chunked body's end is a short read (-1 is an error); a
			 * body of known length has ended when all of it came.
			 */
			complete = n >= 0 &&
				(ctx->chunked || drained == ctx->ri->content_length);
			break;
		}
		clock_gettime(CLOCK_MONOTONIC, &now);
		if (drained >= KV_LINGER_MAX_BYTES ||
			(int64_t) (now.tv_sec - start.tv_sec) * 1000 +
			(now.tv_nsec - start.tv_nsec) / 1000000 >= KV_LINGER_MAX_MS)
			break;
	}
	if (!complete)
		mg_disable_connection_keep_alive(ctx->conn);
	mark_body_consumed(ctx);
}

/*---- preconditions ----*/

/*
 * Conditional request headers.  PUT: If-None-Match: * (create only) or
 * If-Match (replace only that version, or any with *).  DELETE: If-Match.
 * GET/HEAD: If-None-Match (304 when it names the current version).
 * Returns a complaint, or NULL.
 */
const char *
kv_parse_preconditions(const KvHttpCtx *ctx, int64_t *if_match,
					   int64_t *if_none_match)
{
	int			n_im;
	int			n_inm;
	const char *im = kv_find_header(ctx->ri, "If-Match", &n_im);
	const char *inm = kv_find_header(ctx->ri, "If-None-Match", &n_inm);

	if (n_im > 1 || n_inm > 1)
		return "repeated If-Match or If-None-Match header";
	if (im != NULL && !ctx->reads &&
		kv_parse_etag(im, true, if_match) != KV_ERR_NONE)
		return "If-Match must be * or one entity tag such as \"42\"";
	if (inm != NULL && ctx->method != KV_METHOD_DELETE &&
		kv_parse_etag(inm, false, if_none_match) != KV_ERR_NONE)
		return "If-None-Match must be * or one entity tag such as \"42\"";
	if (ctx->method == KV_METHOD_PUT && *if_none_match != KV_MATCH_NONE &&
		(*if_none_match != KV_MATCH_ANY || *if_match != KV_MATCH_NONE))
		return "a PUT takes If-None-Match: * alone, or If-Match";
	return NULL;
}
