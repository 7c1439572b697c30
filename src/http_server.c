/*-------------------------------------------------------------------------
 *
 * http_server.c
 *	  The civetweb glue: accept HTTP requests, validate and bound them,
 *	  hand them to the worker's main thread, and write the replies.
 *
 * Runs on civetweb's threads, which must never call into PostgreSQL: this
 * file refuses to compile if postgres.h is included.  Everything it needs
 * from the server side arrives through request_queue.h (requests out,
 * replies back) and kv_http_set_limits() (settings, read with atomic
 * loads because the main thread changes them on SIGHUP).
 *
 * civetweb is started with every signal blocked in the calling thread, so
 * its threads inherit a full mask and signals reach the main thread only.
 *
 * GET and HEAD try the lock-free cache read of cache_fastpath.c first; only
 * a miss goes to the main thread.
 *
 * A reply is assembled in one buffer and written with one mg_write(), so a
 * client sees a whole response or a closed connection, never half a reply
 * that looks complete.
 *
 * IDENTIFICATION
 *	  src/http_server.c
 *
 *-------------------------------------------------------------------------
 */
#include "http_server.h"

#include <civetweb.h>
#include <inttypes.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "cache_fastpath.h"
#include "http_parse.h"
#include "metrics.h"
#include "request_queue.h"

#ifdef PG_MAJORVERSION
#error "http_server.c runs on civetweb threads: no PostgreSQL headers"
#endif

/* Settings published by the main thread; read with __atomic_load_n. */
static int	limit_key_length = 1024;
static int64_t limit_value_size = 1024 * 1024;
static int	limit_timeout_ms = 5000;

static struct mg_context *http_ctx;

typedef struct Reply
{
	int			status;
	const char *content_type;
	const char *body;
	size_t		body_len;
	int64_t		etag;			/* < 0: none */
	int64_t		expires_at;		/* PostgreSQL timestamptz; 0: none */
	int			cache;			/* -1: no header, 0: MISS, 1: HIT */
	const char *allow;
	bool		head;			/* HEAD: headers only */
	bool		close;			/* close the connection afterwards */
} Reply;

static const char *
status_text(int status)
{
	switch (status)
	{
		case 200:
			return "OK";
		case 201:
			return "Created";
		case 204:
			return "No Content";
		case 304:
			return "Not Modified";
		case 400:
			return "Bad Request";
		case 404:
			return "Not Found";
		case 405:
			return "Method Not Allowed";
		case 409:
			return "Conflict";
		case 411:
			return "Length Required";
		case 412:
			return "Precondition Failed";
		case 413:
			return "Payload Too Large";
		case 500:
			return "Internal Server Error";
		case 503:
			return "Service Unavailable";
		case 505:
			return "HTTP Version Not Supported";
	}
	return "Error";
}

/* PostgreSQL timestamptz (microseconds since 2000) as RFC 3339 UTC. */
static void
format_timestamp(int64_t pg_ts, char *buf, size_t len)
{
	time_t		secs = (time_t) (pg_ts / 1000000 + INT64_C(946684800));
	struct tm	tm;

	gmtime_r(&secs, &tm);
	strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* Assemble status line, headers and body, and write them at once. */
static void
send_reply(struct mg_connection *conn, const Reply *r)
{
	char		head[1024];
	int			n;
	bool		no_body = (r->status == 204 || r->status == 304);
	size_t		body_len = no_body ? 0 : r->body_len;
	char	   *buf;

	n = snprintf(head, sizeof(head), "HTTP/1.1 %d %s\r\n",
				 r->status, status_text(r->status));
	if (!no_body)
		n += snprintf(head + n, sizeof(head) - n,
					  "Content-Length: %zu\r\n", body_len);
	if (r->content_type && !no_body)
		n += snprintf(head + n, sizeof(head) - n, "Content-Type: %s\r\n",
					  r->content_type);
	if (r->etag >= 0)
		n += snprintf(head + n, sizeof(head) - n, "ETag: \"%" PRId64 "\"\r\n",
					  r->etag);
	if (r->cache >= 0)
		n += snprintf(head + n, sizeof(head) - n, "X-Cache: %s\r\n",
					  r->cache ? "HIT" : "MISS");
	if (r->expires_at != 0)
	{
		char		ts[64];

		format_timestamp(r->expires_at, ts, sizeof(ts));
		n += snprintf(head + n, sizeof(head) - n, "X-Expires-At: %s\r\n", ts);
	}
	if (r->allow)
		n += snprintf(head + n, sizeof(head) - n, "Allow: %s\r\n", r->allow);
	if (r->status == 503)
		n += snprintf(head + n, sizeof(head) - n, "Retry-After: 1\r\n");
	if (r->close)
		n += snprintf(head + n, sizeof(head) - n, "Connection: close\r\n");
	n += snprintf(head + n, sizeof(head) - n, "\r\n");
	if (n >= (int) sizeof(head))
		n = sizeof(head) - 1;	/* content types are bounded; cannot happen */

	if (r->close)
		mg_disable_connection_keep_alive(conn);
	if (r->head || body_len == 0)
	{
		mg_write(conn, head, n);
		return;
	}
	buf = malloc(n + body_len);
	if (buf == NULL)
	{
		mg_write(conn, head, n);
		mg_write(conn, r->body, body_len);
		return;
	}
	memcpy(buf, head, n);
	memcpy(buf + n, r->body, body_len);
	mg_write(conn, buf, n + body_len);
	free(buf);
}

static int
send_error(struct mg_connection *conn, int status, KvError error,
		   const char *message, const char *allow, bool head, bool close)
{
	Reply		r = {0};
	char	   *body;

	body = kv_json_error(error, message, &r.body_len);
	r.status = status;
	r.content_type = "application/json";
	r.body = body;
	r.etag = -1;
	r.cache = -1;
	r.allow = allow;
	r.head = head;
	r.close = close;
	send_reply(conn, &r);
	free(body);
	return status;
}

static int
send_json(struct mg_connection *conn, int status, char *body, int64_t etag,
		  bool head)
{
	Reply		r = {0};

	r.status = status;
	r.content_type = "application/json";
	r.body = body;
	r.body_len = body ? strlen(body) : 0;
	r.etag = etag;
	r.cache = -1;
	r.head = head;
	send_reply(conn, &r);
	free(body);
	return status;
}

static const char *
find_header(const struct mg_request_info *ri, const char *name, int *count)
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
 */
static const char *
framing_problem(const struct mg_request_info *ri, bool *chunked)
{
	int			ncl;
	int			nte;
	const char *te = find_header(ri, "Transfer-Encoding", &nte);
	int			i;
	const char *first_cl = find_header(ri, "Content-Length", &ncl);

	*chunked = false;
	/* civetweb keeps MG_MAX_HEADERS and drops the rest without a word */
	if (ri->num_headers >= MG_MAX_HEADERS)
		return "too many header fields";
	if (strcmp(ri->http_version, "1.1") == 0)
	{
		int			nhost;

		(void) find_header(ri, "Host", &nhost);
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

/*
 * Read the body, never more than max + 1 bytes.  Returns 0 with the body,
 * 413 when it is over the limit, -1 when the client went away.
 */
static int
read_body(struct mg_connection *conn, const struct mg_request_info *ri,
		  bool chunked, int64_t max, char **body, size_t *len)
{
	size_t		cap;
	size_t		used = 0;
	char	   *buf;

	*body = NULL;
	*len = 0;
	if (!chunked && ri->content_length <= 0)
	{
		*body = malloc(1);
		return *body ? 0 : -1;
	}
	if (!chunked && ri->content_length > max)
		return 413;

	/*
	 * A client that asked to be told before sending the body (curl does for
	 * large values) would otherwise wait a second for nothing.
	 */
	{
		int			nexpect;
		const char *expect = find_header(ri, "Expect", &nexpect);

		if (expect != NULL && strcasecmp(expect, "100-continue") == 0 &&
			strcmp(ri->http_version, "1.1") == 0)
			mg_write(conn, "HTTP/1.1 100 Continue\r\n\r\n", 25);
	}

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
		n = mg_read(conn, buf + used, cap - used);
		if (n < 0)
		{
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
	if (!chunked && (int64_t) used != ri->content_length)
	{
		free(buf);
		return -1;				/* the client closed early */
	}
	*body = buf;
	*len = used;
	return 0;
}

/*
 * A stored value: 200 with its bytes, or 304 when the client's
 * If-None-Match names its version.
 */
static int
send_value(struct mg_connection *conn, const char *value, size_t len,
		   const char *content_type, int64_t version, int64_t expires_at,
		   bool hit, bool head, int64_t if_none_match)
{
	Reply		r = {0};

	r.status = (if_none_match == KV_MATCH_ANY || if_none_match == version)
		? 304 : 200;
	r.content_type = content_type ? content_type : "application/octet-stream";
	r.body = value;
	r.body_len = len;
	r.etag = version;
	r.expires_at = expires_at;
	r.cache = hit;
	r.head = head;
	send_reply(conn, &r);
	return r.status;
}

/*
 * The body could not be read: malformed chunking, or the client closed or
 * stalled.  Answer 400 and close; if the client is gone, the write fails
 * harmlessly.
 */
static int
send_bad_body(struct mg_connection *conn)
{
	return send_error(conn, 400, KV_ERR_BAD_REQUEST,
					  "request body is malformed or incomplete", NULL, false,
					  true);
}

/* Hand a request to the main thread and write its reply. */
static int
run_request(struct mg_connection *conn, KvRequest *req, bool head)
{
	int			timeout = __atomic_load_n(&limit_timeout_ms, __ATOMIC_RELAXED);
	int			status;

	if (!kvq_submit_and_wait(req, timeout))
		return send_error(conn, 503, KV_ERR_UNAVAILABLE,
						  "request timed out waiting for the database",
						  NULL, head, false);

	status = req->status;
	if (req->error != KV_ERR_NONE)
		send_error(conn, status, req->error, req->message, NULL, head, false);
	else
	{
		switch (req->op)
		{
			case KV_OP_GET:
				status = send_value(conn, req->reply_value, req->reply_value_len,
									req->reply_content_type, req->version,
									req->expires_at, req->cache_hit, head,
									req->if_none_match);
				break;
			case KV_OP_PUT:
			case KV_OP_CREATE:
				send_json(conn, status,
						  kv_json_write_reply(req->key, req->key_len, req->version),
						  req->version, false);
				break;
			case KV_OP_DELETE:
				send_json(conn, 204, NULL, -1, false);
				break;
			case KV_OP_LIST:
				send_json(conn, 200, kv_json_keys(req->keys, req->nkeys,
												  req->next_key, NULL),
						  -1, head);
				break;
			case KV_OP_HEALTH:
				send_json(conn, 200,
						  kv_json_health(req->database ? req->database : ""),
						  -1, head);
				break;
		}
	}
	kvq_request_free(req);
	return status;
}

/*
 * Conditional request headers.  PUT: If-None-Match: * (create only) or
 * If-Match (replace only that version, or any with *).  DELETE: If-Match.
 * GET/HEAD: If-None-Match (304 when it names the current version).
 * Returns a complaint, or NULL.
 */
static const char *
parse_preconditions(const struct mg_request_info *ri, const char *method,
					bool head, int64_t *if_match, int64_t *if_none_match)
{
	int			n_im;
	int			n_inm;
	const char *im = find_header(ri, "If-Match", &n_im);
	const char *inm = find_header(ri, "If-None-Match", &n_inm);
	bool		is_get = head || strcmp(method, "GET") == 0;

	if (n_im > 1 || n_inm > 1)
		return "repeated If-Match or If-None-Match header";
	if (im != NULL && !is_get &&
		kv_parse_etag(im, true, if_match) != KV_ERR_NONE)
		return "If-Match must be * or one entity tag such as \"42\"";
	if (inm != NULL && strcmp(method, "DELETE") != 0 &&
		kv_parse_etag(inm, false, if_none_match) != KV_ERR_NONE)
		return "If-None-Match must be * or one entity tag such as \"42\"";
	if (strcmp(method, "PUT") == 0 && *if_none_match != KV_MATCH_NONE &&
		(*if_none_match != KV_MATCH_ANY || *if_match != KV_MATCH_NONE))
		return "a PUT takes If-None-Match: * alone, or If-Match";
	return NULL;
}

static int
handle_key(struct mg_connection *conn, const struct mg_request_info *ri,
		   const char *key_raw, bool chunked, bool head)
{
	const char *method = ri->request_method;
	KvRequest  *req;
	char	   *key;
	size_t		key_len;
	KvError		err;
	int			max_key = __atomic_load_n(&limit_key_length, __ATOMIC_RELAXED);
	int64_t		if_match = KV_MATCH_NONE;
	int64_t		if_none_match = KV_MATCH_NONE;
	const char *why;

	if (strcmp(method, "GET") != 0 && !head && strcmp(method, "PUT") != 0 &&
		strcmp(method, "DELETE") != 0)
		return send_error(conn, 405, KV_ERR_METHOD_NOT_ALLOWED,
						  "allowed methods for a key are GET, HEAD, PUT and DELETE",
						  "GET, HEAD, PUT, DELETE", false, false);

	err = kv_decode_key(key_raw, max_key, &key, &key_len);
	if (err != KV_ERR_NONE)
		return send_error(conn, 400, err,
						  err == KV_ERR_KEY_TOO_LONG
						  ? "key is longer than kvserver.max_key_length"
						  : "key must be 1 or more bytes of valid UTF-8, without NUL, with valid percent-escapes",
						  NULL, head, false);

	why = parse_preconditions(ri, method, head, &if_match, &if_none_match);
	if (why != NULL)
	{
		free(key);
		return send_error(conn, 400, KV_ERR_BAD_REQUEST, why, NULL, head,
						  strcmp(method, "PUT") == 0);
	}

	/* a cache hit is answered right here, without the main thread */
	if (strcmp(method, "GET") == 0 || head)
	{
		KvFastValue fv;

		if (kvfast_get(key, key_len, &fv))
		{
			int			status = send_value(conn, fv.value, fv.value_len,
											fv.content_type, fv.version,
											fv.expires_at, true, head,
											if_none_match);

			free(fv.value);
			free(fv.content_type);
			free(key);
			return status;
		}
	}

	req = kvq_request_new(KV_OP_GET);
	if (req == NULL)
	{
		free(key);
		return send_error(conn, 500, KV_ERR_INTERNAL, "out of memory", NULL,
						  head, true);
	}
	req->key = key;
	req->key_len = key_len;
	req->if_match = if_match;
	req->if_none_match = if_none_match;

	if (strcmp(method, "PUT") == 0)
	{
		int64_t		max_value = __atomic_load_n(&limit_value_size, __ATOMIC_RELAXED);
		const char *ct;
		int			nct;
		int			rc;

		req->op = KV_OP_PUT;
		req->create_only = (if_none_match == KV_MATCH_ANY);
		req->if_none_match = KV_MATCH_NONE;
		if (kv_parse_ttl(ri->query_string, &req->ttl_seconds, &why) != KV_ERR_NONE)
		{
			kvq_request_free(req);
			return send_error(conn, 400, KV_ERR_BAD_REQUEST, why, NULL, false,
							  true);
		}
		ct = find_header(ri, "Content-Type", &nct);
		if (ct != NULL && strlen(ct) > 255)
		{
			kvq_request_free(req);
			return send_error(conn, 400, KV_ERR_BAD_REQUEST,
							  "Content-Type is longer than 255 bytes", NULL,
							  false, true);
		}
		rc = read_body(conn, ri, chunked, max_value, &req->value,
					   &req->value_len);
		if (rc != 0)
		{
			kvq_request_free(req);
			if (rc == 413)
				return send_error(conn, 413, KV_ERR_VALUE_TOO_LARGE,
								  "value is larger than kvserver.max_value_size",
								  NULL, false, true);
			return send_bad_body(conn);
		}
		if (ct != NULL)
			req->content_type = strdup(ct);
	}
	else if (strcmp(method, "DELETE") == 0)
		req->op = KV_OP_DELETE;

	return run_request(conn, req, head);
}

static int
handle_collection(struct mg_connection *conn,
				  const struct mg_request_info *ri, bool chunked, bool head)
{
	const char *method = ri->request_method;
	const char *why = NULL;
	KvRequest  *req;

	if (strcmp(method, "GET") == 0 || head)
	{
		req = kvq_request_new(KV_OP_LIST);
		if (req == NULL)
			return send_error(conn, 500, KV_ERR_INTERNAL, "out of memory",
							  NULL, head, true);
		if (kv_parse_list_query(ri->query_string, &req->prefix, &req->after,
								&req->limit, &why) != KV_ERR_NONE)
		{
			kvq_request_free(req);
			return send_error(conn, 400, KV_ERR_BAD_REQUEST, why, NULL, head,
							  false);
		}
		return run_request(conn, req, head);
	}
	if (strcmp(method, "POST") == 0)
	{
		char	   *body;
		size_t		len;
		int			rc;
		KvError		err;

		rc = read_body(conn, ri, chunked,
					   __atomic_load_n(&limit_value_size, __ATOMIC_RELAXED) * 6 + 1024,
					   &body, &len);
		if (rc == 413)
			return send_error(conn, 413, KV_ERR_VALUE_TOO_LARGE,
							  "body is too large for kvserver.max_value_size",
							  NULL, false, true);
		if (rc != 0)
			return send_bad_body(conn);
		req = kvq_request_new(KV_OP_CREATE);
		if (req == NULL)
		{
			free(body);
			return send_error(conn, 500, KV_ERR_INTERNAL, "out of memory",
							  NULL, false, true);
		}
		err = kv_parse_create_body(body, len,
								   __atomic_load_n(&limit_key_length, __ATOMIC_RELAXED),
								   &req->key, &req->key_len,
								   &req->value, &req->value_len,
								   &req->ttl_seconds, &why);
		free(body);
		if (err == KV_ERR_NONE &&
			(int64_t) req->value_len > __atomic_load_n(&limit_value_size, __ATOMIC_RELAXED))
		{
			err = KV_ERR_VALUE_TOO_LARGE;
			why = "value is larger than kvserver.max_value_size";
		}
		if (err != KV_ERR_NONE)
		{
			kvq_request_free(req);
			return send_error(conn, err == KV_ERR_VALUE_TOO_LARGE ? 413 : 400,
							  err, why, NULL, false, false);
		}
		req->content_type = strdup("text/plain; charset=utf-8");
		return run_request(conn, req, false);
	}
	return send_error(conn, 405, KV_ERR_METHOD_NOT_ALLOWED,
					  "allowed methods for /kv/ are GET, HEAD and POST",
					  "GET, HEAD, POST", head, false);
}

/* The dashboard page, generated from web/dashboard.html at build time. */
extern const char kv_dashboard_html[];
extern const size_t kv_dashboard_html_len;

static int
send_static(struct mg_connection *conn, const char *content_type,
			const char *body, size_t len, bool head)
{
	Reply		r = {0};

	r.status = 200;
	r.content_type = content_type;
	r.body = body;
	r.body_len = len;
	r.etag = -1;
	r.cache = -1;
	r.head = head;
	send_reply(conn, &r);
	return 200;
}

static int
handle_metrics(struct mg_connection *conn, bool head)
{
	size_t		len;
	char	   *page = kv_metrics_render(&len);
	int			status;

	if (page == NULL)
		return send_error(conn, 500, KV_ERR_INTERNAL, "out of memory", NULL,
						  head, false);
	status = send_static(conn, "text/plain; version=0.0.4; charset=utf-8",
						 page, len, head);
	free(page);
	return status;
}

static int
dispatch(struct mg_connection *conn, const struct mg_request_info *ri)
{
	const char *path = ri->local_uri_raw;
	const char *key_raw;
	const char *why;
	bool		head = strcmp(ri->request_method, "HEAD") == 0;
	bool		get = head || strcmp(ri->request_method, "GET") == 0;
	bool		chunked;
	KvRoute		route;

	why = framing_problem(ri, &chunked);
	if (why != NULL)
		return send_error(conn, 400, KV_ERR_BAD_REQUEST, why, NULL, head, true);
	if (path == NULL)
		return send_error(conn, 400, KV_ERR_BAD_REQUEST,
						  "request target must be a path", NULL, head, true);

	/* a body we will not read must not be taken for the next request */
	if ((chunked || ri->content_length > 0) &&
		strcmp(ri->request_method, "PUT") != 0 &&
		strcmp(ri->request_method, "POST") != 0)
		mg_disable_connection_keep_alive(conn);

	route = kv_route(path, &key_raw);
	switch (route)
	{
		case KV_ROUTE_KEY:
			return handle_key(conn, ri, key_raw, chunked, head);
		case KV_ROUTE_COLLECTION:
			return handle_collection(conn, ri, chunked, head);
		case KV_ROUTE_HEALTH:
			if (strcmp(ri->request_method, "GET") != 0 && !head)
				return send_error(conn, 405, KV_ERR_METHOD_NOT_ALLOWED,
								  "allowed methods for /health are GET and HEAD",
								  "GET, HEAD", false, false);
			{
				KvRequest  *req = kvq_request_new(KV_OP_HEALTH);

				if (req == NULL)
					return send_error(conn, 500, KV_ERR_INTERNAL,
									  "out of memory", NULL, head, true);
				return run_request(conn, req, head);
			}
		case KV_ROUTE_METRICS:
		case KV_ROUTE_DASHBOARD:
			if (!get)
				return send_error(conn, 405, KV_ERR_METHOD_NOT_ALLOWED,
								  "allowed methods here are GET and HEAD",
								  "GET, HEAD", false, false);
			if (route == KV_ROUTE_METRICS)
				return handle_metrics(conn, head);
			return send_static(conn, "text/html; charset=utf-8",
							   kv_dashboard_html, kv_dashboard_html_len, head);
		case KV_ROUTE_NOT_FOUND:
			break;
	}
	return send_error(conn, 404, KV_ERR_NOT_FOUND,
					  "no such endpoint: use /kv/{key}, /kv/ or /health",
					  NULL, head, false);
}

/* Every request: route it, then count it and its latency for /metrics. */
static int
handle_request(struct mg_connection *conn, void *cbdata)
{
	const struct mg_request_info *ri = mg_get_request_info(conn);
	struct timespec start;
	struct timespec end;
	int			status;

	(void) cbdata;
	clock_gettime(CLOCK_MONOTONIC, &start);
	status = dispatch(conn, ri);
	clock_gettime(CLOCK_MONOTONIC, &end);
	kv_metrics_request(ri->request_method, status,
					   (int64_t) (end.tv_sec - start.tv_sec) * 1000000000 +
					   (end.tv_nsec - start.tv_nsec));
	return status;
}

/* civetweb's own protocol errors (bad request line, huge headers) as JSON. */
static int
handle_http_error(struct mg_connection *conn, int status, const char *msg)
{
	KvError		err = status >= 500 ? KV_ERR_INTERNAL : KV_ERR_BAD_REQUEST;

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
	send_error(conn, status, err, msg, NULL, false, true);
	return 0;
}

void
kv_http_set_limits(int max_key_length, int64_t max_value_size,
				   int request_timeout_ms)
{
	__atomic_store_n(&limit_key_length, max_key_length, __ATOMIC_RELAXED);
	__atomic_store_n(&limit_value_size, max_value_size, __ATOMIC_RELAXED);
	__atomic_store_n(&limit_timeout_ms, request_timeout_ms, __ATOMIC_RELAXED);
}

/* "a, b" + port -> "a:port,b:port"; "*" -> "port" (all IPv4 addresses). */
static bool
build_ports(const char *addrs, int port, char *out, size_t outlen)
{
	const char *p = addrs;
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
			n = snprintf(out + used, outlen - used, "%s%d",
						 used ? "," : "", port);
		else if (memchr(start, ':', len))
			n = snprintf(out + used, outlen - used, "%s[%.*s]:%d",
						 used ? "," : "", (int) len, start, port);
		else
			n = snprintf(out + used, outlen - used, "%s%.*s:%d",
						 used ? "," : "", (int) len, start, port);
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

	if (!build_ports(cfg->listen_addresses, cfg->port, ports, sizeof(ports)))
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
	options[i++] = NULL;

	memset(&callbacks, 0, sizeof(callbacks));
	callbacks.http_error = handle_http_error;
	memset(&init, 0, sizeof(init));
	init.callbacks = &callbacks;
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
 */
void
kv_http_stop(void)
{
	if (http_ctx != NULL)
	{
		mg_stop(http_ctx);
		http_ctx = NULL;
	}
}
