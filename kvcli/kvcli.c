/*-------------------------------------------------------------------------
 *
 * kvcli.c
 *	  Command-line client for kvserver's HTTP API.
 *
 * NAME
 *	  kvcli - read, write, delete and list kvserver keys over HTTP
 *
 * SYNOPSIS
 *	  kvcli [--url URL[,URL...]] [--primary] get KEY
 *	  kvcli [--url URL[,URL...]] put KEY [VALUE] [--ttl SECONDS] [--content-type TYPE]
 *	  kvcli [--url URL[,URL...]] del KEY
 *	  kvcli [--url URL[,URL...]] [--primary] list [PREFIX]
 *	  kvcli [--url URL[,URL...]] [--primary] stats
 *	  kvcli [--url URL[,URL...]] txn [FILE]
 *	  kvcli [--url URL[,URL...]] [--primary] watch KEY
 *	  kvcli [--url URL[,URL...]] [--primary] watch --prefix PREFIX
 *	  kvcli --help
 *
 * DESCRIPTION
 *	  get writes the value's bytes to standard output exactly as stored: no
 *	  newline is added and any byte may appear.  Nothing is written unless
 *	  the whole value arrived.
 *
 *	  put stores VALUE, or, when VALUE is absent, everything read from
 *	  standard input up to end of file (any bytes, possibly none).  The value
 *	  is sent with Content-Type: application/octet-stream unless
 *	  --content-type says otherwise; --ttl SECONDS makes it expire.  Nothing
 *	  is printed on success.  A PUT whose connection breaks while sending
 *	  is tried once more (see cmd_put).
 *
 *	  del deletes a key.
 *
 *	  list prints every key that starts with PREFIX (all keys when PREFIX is
 *	  absent), one per line, in the server's byte order.  It asks for pages
 *	  of 1000 keys and follows "next" until the server says there are no
 *	  more; keys are printed page by page as they arrive.  A key that itself
 *	  contains a newline is printed as is, so such keys are ambiguous here.
 *
 *	  stats prints the server's GET /health reply (a JSON object).
 *
 *	  watch KEY prints the key's value, then each new value as it is
 *	  written, each followed by a newline, until interrupted; while the key
 *	  does not exist (deleted, expired) it says so on standard error.  It
 *	  waits with GET /kv/KEY?wait= and If-None-Match, so nothing is polled.
 *	  watch --prefix PREFIX prints a line per change under PREFIX: "created
 *	  KEY", "deleted KEY", or "changed PREFIX" when keys kept their names
 *	  but some value changed (a listing does not say which) or the server
 *	  could not tell what changed (after its restart, say); it waits with
 *	  GET /kv/?prefix=&wait=&index= and lists every page again on a change.
 *	  Both wait WATCH_WAIT at a time (below the stall timeout) and start
 *	  again; a 429 (kvserver.max_watchers) or 503 waits Retry-After first.
 *
 *	  txn sends a transaction: the JSON document in FILE, or on standard
 *	  input when FILE is absent or "-", {"ops": [...]} as POST /txn takes
 *	  it, is posted as it is, and the server's {"results": [...]} is
 *	  printed, followed by a newline.  A check that did not hold exits 6,
 *	  with the index of the operation on stderr.  It goes to the primary
 *	  (it may write), and is not retried: it need not be idempotent.
 *
 *	  Keys (and the list prefix) are sent percent-encoded: every byte
 *	  outside A-Z a-z 0-9 - . _ ~ is written as %XX, '/' included.  The
 *	  server decodes exactly once, so "a/b" names the same key however it is
 *	  sent; encoding '/' keeps keys such as "..", "a//b" or "x/../y" away
 *	  from any path normalization on the way.
 *
 *	  Options may appear anywhere; "--" ends them, for a KEY or VALUE that
 *	  starts with '-'.
 *
 *	  Several servers (a primary and its hot standbys): --url A,B,... (or
 *	  KVSERVER_URL with commas).  Before the command, kvcli asks each node's
 *	  GET /health, in the given order, as libpq's target_session_attrs
 *	  does: put, del and txn go to the first node that says "role":
 *	  "primary"; get, list and stats to the first that answers 200 at all,
 *	  or, with --primary, to the first primary.  A node that cannot be
 *	  reached, or answers anything but 200, is passed over.  The command
 *	  then runs on that one node (every page of a list included).  With a
 *	  single URL nothing is asked first, unless --primary is given.
 *
 * OPTIONS
 *	  --url URL[,URL...]   server base URL; a trailing '/' is ignored and any
 *						   path in it is kept as a prefix (for a proxy).
 *						   Several, separated by commas: see above
 *	  --primary			   get, list, stats: only from a node whose /health
 *						   says it is the primary (read your own writes
 *						   when the others are standbys)
 *	  --ttl SECONDS		   put only: expire after SECONDS (a positive integer)
 *	  --content-type TYPE  put only: the Content-Type to store
 *	  --user USER:PASSWORD a PostgreSQL role and its password (HTTP Basic)
 *	  --token TOKEN		   a token from kv_token_create() (HTTP Bearer)
 *	  --cacert FILE		   CA certificate(s) to verify an https:// server with
 *	  -h, --help		   usage on standard output, exit 0
 *
 * ENVIRONMENT
 *	  KVSERVER_URL		   base URL(s) when --url is not given; when unset
 *						   or empty, http://127.0.0.1:8080
 *	  KVSERVER_USER		   USER:PASSWORD when --user is not given
 *	  KVSERVER_TOKEN	   token when --token is not given (a token wins over
 *						   a user)
 *	  KVSERVER_CACERT	   CA file when --cacert is not given
 *	  libcurl's usual proxy variables (http_proxy, no_proxy, ...) apply.
 *	  Credentials are better passed in the environment than on the command
 *	  line, where other users may see them in the process list.
 *
 * EXIT STATUS
 *	  0  success (get: the key exists and its value was written)
 *	  1  not found: get or del of a key that does not exist (HTTP 404)
 *	  2  usage error: bad arguments or an unusable URL
 *	  3  server or HTTP error: any other 4xx, any 5xx, an unexpected status
 *		 or a malformed reply; the server's JSON message goes to stderr.
 *		 With several URLs: no node was primary (or, for a read, healthy),
 *		 though some answered
 *	  4  connection error: server unreachable, timed out, or no reply (with
 *		 several URLs: none could be reached)
 *	  5  local error: standard input or output failed, or out of memory
 *	  6  txn: a check of the transaction did not hold (HTTP 412); nothing
 *		 was changed
 *
 * IDENTIFICATION
 *	  kvcli/kvcli.c
 *
 *-------------------------------------------------------------------------
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <jansson.h>

#define EXIT_OK			0
#define EXIT_NOT_FOUND	1
#define EXIT_USAGE		2
#define EXIT_SERVER		3
#define EXIT_CONNECT	4
#define EXIT_LOCAL		5
#define EXIT_CHECK		6

#define DEFAULT_URL		"http://127.0.0.1:8080"
#define LIST_PAGE_SIZE	1000
#define MAX_URLS		32

/* how long to wait for a connection, and for a stalled transfer to move */
#define CONNECT_TIMEOUT_S	10L
#define STALL_TIMEOUT_S		60L

/* one watch request waits this long, well within STALL_TIMEOUT_S */
#define WATCH_WAIT			"50s"

static const char *progname = "kvcli";

/* A growable byte buffer; data is always NUL-terminated for convenience. */
typedef struct Buffer
{
	char	   *data;
	size_t		len;
	size_t		cap;
} Buffer;

/* One HTTP exchange's outcome: the status and the body. */
typedef struct Response
{
	long		status;
	Buffer		body;
	char		etag[64];		/* ETag, "" when none */
	char		kv_index[32];	/* X-Kv-Index, "" when none */
	long		retry_after;	/* Retry-After seconds, 0 when none */
} Response;

/* The parsed command line. */
typedef struct Options
{
	const char *url;			/* base URL, no trailing '/': the node used */
	const char *urls[MAX_URLS];	/* all of them, in the order given */
	int			nurls;
	bool		primary_only;	/* --primary */
	const char *command;
	const char *args[2];		/* positional arguments after the command */
	int			nargs;
	const char *ttl;			/* --ttl, or NULL */
	const char *content_type;	/* --content-type, or NULL */
	const char *watch_prefix;	/* watch --prefix, or NULL */
} Options;

/* Who we are and whom we trust: for every request (see parse_args). */
static const char *auth_user;	/* "user:password", or NULL */
static const char *auth_token;	/* bearer token, or NULL */
static const char *ca_file;		/* CA certificates for https, or NULL */
static const char *if_none_match;	/* watch: sent with the next GETs */

static void usage_error(const char *fmt,...)
			__attribute__((format(printf, 1, 2), noreturn));
static void die(int code, const char *fmt,...)
			__attribute__((format(printf, 2, 3), noreturn));

static void
print_help(FILE *out)
{
	fprintf(out,
			"%s - command-line client for the kvserver HTTP API\n"
			"\n"
			"Usage:\n"
			"  %s [--url URL[,URL...]] [--primary] get KEY\n"
			"  %s [--url URL[,URL...]] put KEY [VALUE] [--ttl SECONDS] [--content-type TYPE]\n"
			"  %s [--url URL[,URL...]] del KEY\n"
			"  %s [--url URL[,URL...]] [--primary] list [PREFIX]\n"
			"  %s [--url URL[,URL...]] [--primary] stats\n"
			"  %s [--url URL[,URL...]] [--primary] watch KEY | --prefix PREFIX\n"
			"  %s [--url URL[,URL...]] txn [FILE]\n"
			"  %s --help\n"
			"\n"
			"Commands:\n"
			"  get KEY          write the value's bytes to standard output, exactly\n"
			"                   (no newline added)\n"
			"  put KEY [VALUE]  store VALUE, or all of standard input when VALUE is\n"
			"                   not given\n"
			"  del KEY          delete KEY\n"
			"  list [PREFIX]    print the keys starting with PREFIX, one per line, in\n"
			"                   byte order (all pages)\n"
			"  stats            print the server's GET /health reply (JSON)\n"
			"  watch KEY        print the value, then each new value as it is\n"
			"                   written (a line each), until interrupted\n"
			"  watch --prefix PREFIX\n"
			"                   print \"created KEY\", \"deleted KEY\" or \"changed\n"
			"                   PREFIX\" as keys under PREFIX change\n"
			"  txn [FILE]       post the transaction {\"ops\": [...]} in FILE (or\n"
			"                   standard input) to /txn and print its results (JSON)\n"
			"\n"
			"Options:\n"
			"  --url URL[,URL...]   server base URL (default: $KVSERVER_URL, else\n"
			"                       " DEFAULT_URL "); with several (a primary and\n"
			"                       its standbys), put, del and txn go to the first\n"
			"                       whose /health says primary, reads to the first\n"
			"                       healthy one; unreachable nodes are passed over\n"
			"  --primary            get, list, stats: from the primary only\n"
			"  --ttl SECONDS        put: the key expires after SECONDS\n"
			"  --content-type TYPE  put: Content-Type to store\n"
			"                       (default application/octet-stream)\n"
			"  --user USER:PASSWORD a PostgreSQL role and its password (default:\n"
			"                       $KVSERVER_USER)\n"
			"  --token TOKEN        a token from kv_token_create() (default:\n"
			"                       $KVSERVER_TOKEN)\n"
			"  --cacert FILE        CA certificates for an https:// URL (default:\n"
			"                       $KVSERVER_CACERT)\n"
			"  -h, --help           show this help and exit\n"
			"  --                   end of options, for a KEY or VALUE starting with '-'\n"
			"\n"
			"Exit status:\n"
			"  0  success (get: key found)\n"
			"  1  not found: get or del of a key that does not exist (HTTP 404)\n"
			"  2  usage error (bad arguments or URL)\n"
			"  3  server or HTTP error: other 4xx, 5xx or a malformed reply; the\n"
			"     server's message is printed to standard error; with several\n"
			"     URLs, no node was primary (or healthy) though some answered\n"
			"  4  connection error: server unreachable, timed out or no reply\n"
			"     (with several URLs: none could be reached)\n"
			"  5  local error: reading standard input or writing standard output\n"
			"     failed, or out of memory\n"
			"  6  txn: a check did not hold (HTTP 412); nothing was changed\n",
			progname, progname, progname, progname, progname, progname, progname,
			progname, progname);
}

static void
usage_error(const char *fmt,...)
{
	va_list		ap;

	fprintf(stderr, "%s: ", progname);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\nTry \"%s --help\" for more information.\n", progname);
	exit(EXIT_USAGE);
}

static void
die(int code, const char *fmt,...)
{
	va_list		ap;

	fprintf(stderr, "%s: ", progname);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(code);
}

/*
 * Buffer helpers.  Running out of memory ends the program: there is nothing
 * useful a one-shot client can do instead.
 */
static void
buf_reserve(Buffer *buf, size_t extra)
{
	size_t		need;
	size_t		cap;
	char	   *data;

	if (extra > SIZE_MAX - buf->len - 1)
		die(EXIT_LOCAL, "out of memory");
	need = buf->len + extra + 1;
	if (need <= buf->cap)
		return;
	cap = buf->cap ? buf->cap : 256;
	while (cap < need)
		cap = cap > SIZE_MAX / 2 ? need : cap * 2;
	data = realloc(buf->data, cap);
	if (data == NULL)
		die(EXIT_LOCAL, "out of memory");
	buf->data = data;
	buf->cap = cap;
}

static void
buf_append(Buffer *buf, const void *data, size_t len)
{
	buf_reserve(buf, len);
	if (len > 0)
		memcpy(buf->data + buf->len, data, len);
	buf->len += len;
	buf->data[buf->len] = '\0';
}

static void
buf_append_str(Buffer *buf, const char *str)
{
	buf_append(buf, str, strlen(str));
}

static void
buf_reset(Buffer *buf)
{
	buf->len = 0;
	if (buf->data)
		buf->data[0] = '\0';
}

static void
buf_free(Buffer *buf)
{
	free(buf->data);
	buf->data = NULL;
	buf->len = buf->cap = 0;
}

/*
 * Append the bytes percent-encoded: everything but the RFC 3986 unreserved
 * characters becomes %XX, '/' included (see the header comment).
 */
static void
buf_append_escaped(Buffer *buf, const char *str, size_t len)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t		i;

	buf_reserve(buf, len * 3);
	for (i = 0; i < len; i++)
	{
		unsigned char c = (unsigned char) str[i];

		if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
			(c >= '0' && c <= '9') ||
			c == '-' || c == '.' || c == '_' || c == '~')
			buf->data[buf->len++] = (char) c;
		else
		{
			buf->data[buf->len++] = '%';
			buf->data[buf->len++] = hex[c >> 4];
			buf->data[buf->len++] = hex[c & 0x0F];
		}
	}
	buf->data[buf->len] = '\0';
}

/*
 * Read all of file descriptor fd, whatever the bytes; 'what' names it in
 * errors.
 */
static void
read_fd(int fd, const char *what, Buffer *buf)
{
	for (;;)
	{
		ssize_t		n;

		buf_reserve(buf, 65536);
		n = read(fd, buf->data + buf->len, 65536);
		if (n < 0)
		{
			if (errno == EINTR)
				continue;
			die(EXIT_LOCAL, "could not read %s: %s", what, strerror(errno));
		}
		if (n == 0)
			break;
		buf->len += (size_t) n;
	}
	buf->data[buf->len] = '\0';
}

/* Read all of standard input, whatever the bytes. */
static void
read_stdin(Buffer *buf)
{
	read_fd(STDIN_FILENO, "standard input", buf);
}

/* Write bytes to standard output; a failure ends the program. */
static void
write_stdout(const void *data, size_t len)
{
	if (len > 0 && fwrite(data, 1, len, stdout) != len)
		die(EXIT_LOCAL, "could not write standard output: %s", strerror(errno));
}

static void
finish_stdout(void)
{
	if (fflush(stdout) != 0 || ferror(stdout))
		die(EXIT_LOCAL, "could not write standard output: %s", strerror(errno));
}

/* libcurl write callback: collect the body. */
static size_t
collect_body(char *ptr, size_t size, size_t nmemb, void *userdata)
{
	Buffer	   *buf = (Buffer *) userdata;

	buf_append(buf, ptr, size * nmemb);
	return size * nmemb;
}

/*
 * Perform one request and fill in resp; returns libcurl's result, with
 * errbuf (CURL_ERROR_SIZE bytes) describing a failure.  body may be NULL
 * (no body); otherwise it is sent as is, body_len bytes, with the given
 * Content-Type.  With expect_continue the body waits for the server's
 * "100 Continue" (or libcurl's one-second timeout); see cmd_put.
 */
/* Keep the headers a watch needs: ETag, X-Kv-Index, Retry-After. */
static size_t
collect_header(char *ptr, size_t size, size_t nmemb, void *userdata)
{
	Response   *resp = (Response *) userdata;
	size_t		len = size * nmemb;
	char		line[128];
	char	   *value;

	if (len >= sizeof(line))
		return len;
	memcpy(line, ptr, len);
	line[len] = '\0';
	line[strcspn(line, "\r\n")] = '\0';
	if ((value = strchr(line, ':')) == NULL)
		return len;
	*value++ = '\0';
	value += strspn(value, " ");
	if (strcasecmp(line, "ETag") == 0 && strlen(value) < sizeof(resp->etag))
		strcpy(resp->etag, value);
	else if (strcasecmp(line, "X-Kv-Index") == 0 &&
			 strlen(value) < sizeof(resp->kv_index))
		strcpy(resp->kv_index, value);
	else if (strcasecmp(line, "Retry-After") == 0)
		resp->retry_after = atol(value);
	return len;
}

static CURLcode
http_perform(CURL *curl, const char *method, const char *url,
			 const char *body, size_t body_len, const char *content_type,
			 bool expect_continue, Response *resp, char *errbuf)
{
	struct curl_slist *headers = NULL;
	Buffer		ctype = {0};
	CURLcode	rc;

	buf_reset(&resp->body);
	buf_append(&resp->body, "", 0);
	resp->status = 0;
	resp->etag[0] = '\0';
	resp->kv_index[0] = '\0';
	resp->retry_after = 0;
	errbuf[0] = '\0';

	/* reset keeps the connection cache, so list's pages share a connection */
	curl_easy_reset(curl);
	curl_easy_setopt(curl, CURLOPT_URL, url);
	curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(curl, CURLOPT_PATH_AS_IS, 1L);
	curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, errbuf);
	curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT, CONNECT_TIMEOUT_S);
	curl_easy_setopt(curl, CURLOPT_LOW_SPEED_LIMIT, 1L);
	curl_easy_setopt(curl, CURLOPT_LOW_SPEED_TIME, STALL_TIMEOUT_S);
	curl_easy_setopt(curl, CURLOPT_USERAGENT, "kvcli/1.0");
	if (ca_file != NULL)
		curl_easy_setopt(curl, CURLOPT_CAINFO, ca_file);
	if (auth_token != NULL)
	{
		curl_easy_setopt(curl, CURLOPT_HTTPAUTH, (long) CURLAUTH_BEARER);
		curl_easy_setopt(curl, CURLOPT_XOAUTH2_BEARER, auth_token);
	}
	else if (auth_user != NULL)
	{
		curl_easy_setopt(curl, CURLOPT_HTTPAUTH, (long) CURLAUTH_BASIC);
		curl_easy_setopt(curl, CURLOPT_USERPWD, auth_user);
	}
	curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, collect_body);
	curl_easy_setopt(curl, CURLOPT_WRITEDATA, &resp->body);
	curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, collect_header);
	curl_easy_setopt(curl, CURLOPT_HEADERDATA, resp);
	if (body == NULL && if_none_match != NULL)
	{
		buf_append_str(&ctype, "If-None-Match: ");
		buf_append_str(&ctype, if_none_match);
		if ((headers = curl_slist_append(headers, ctype.data)) == NULL)
			die(EXIT_LOCAL, "out of memory");
		curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
	}

	if (strcmp(method, "GET") != 0)
		curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method);
	if (body != NULL)
	{
		/* POSTFIELDS with an explicit size is binary safe, empty included */
		curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t) body_len);
		curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body);
		buf_append_str(&ctype, "Content-Type: ");
		buf_append_str(&ctype, content_type);
		headers = curl_slist_append(headers, ctype.data);
		/* libcurl adds "Expect: 100-continue" to large bodies unless told */
		if (headers != NULL)
			headers = curl_slist_append(headers, expect_continue ?
										"Expect: 100-continue" : "Expect:");
		if (headers == NULL)
			die(EXIT_LOCAL, "out of memory");
		curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
	}

	rc = curl_easy_perform(curl);
	curl_slist_free_all(headers);
	buf_free(&ctype);
	if (rc == CURLE_OK)
		curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &resp->status);
	return rc;
}

/*
 * End the program for a request that got no HTTP reply: EXIT_USAGE when
 * the URL itself is unusable, EXIT_LOCAL for our own failures, else
 * EXIT_CONNECT.
 */
static void
http_fail(CURLcode rc, const char *method, const char *url, const char *errbuf)
{
	const char *detail = errbuf[0] ? errbuf : curl_easy_strerror(rc);

	switch (rc)
	{
		case CURLE_UNSUPPORTED_PROTOCOL:
		case CURLE_URL_MALFORMAT:
			usage_error("unusable URL \"%s\": %s", url, detail);
		case CURLE_OUT_OF_MEMORY:
		case CURLE_WRITE_ERROR:
			die(EXIT_LOCAL, "%s %s: %s", method, url, detail);
		default:
			die(EXIT_CONNECT, "%s %s: %s", method, url, detail);
	}
}

/* A request without a body; no HTTP reply ends the program (http_fail). */
static void
http_request(CURL *curl, const char *method, const char *url, Response *resp)
{
	char		errbuf[CURL_ERROR_SIZE];
	CURLcode	rc;

	rc = http_perform(curl, method, url, NULL, 0, NULL, false, resp, errbuf);
	if (rc != CURLE_OK)
		http_fail(rc, method, url, errbuf);
}

/*
 * Report an HTTP error reply on stderr: the server's {"error","message"}
 * when the body is that, else the status and a short excerpt of the body.
 */
static void
report_http_error(const char *what, const Response *resp)
{
	json_t	   *root;
	json_error_t jerr;

	root = json_loadb(resp->body.data, resp->body.len, 0, &jerr);
	if (root != NULL && json_is_object(root))
	{
		const char *code = json_string_value(json_object_get(root, "error"));
		const char *message = json_string_value(json_object_get(root, "message"));

		json_t	   *op = json_object_get(root, "op");

		/* POST /txn names the operation at fault */
		if ((code != NULL || message != NULL) && json_is_integer(op))
		{
			fprintf(stderr, "%s: %s: HTTP %ld %s: operation %" JSON_INTEGER_FORMAT ": %s\n",
					progname, what, resp->status, code ? code : "error",
					json_integer_value(op), message ? message : "(no message)");
			json_decref(root);
			return;
		}
		if (code != NULL || message != NULL)
		{
			fprintf(stderr, "%s: %s: HTTP %ld %s: %s\n", progname, what,
					resp->status, code ? code : "error",
					message ? message : "(no message)");
			json_decref(root);
			return;
		}
	}
	json_decref(root);

	if (resp->body.len > 0)
	{
		int			excerpt = resp->body.len > 200 ? 200 : (int) resp->body.len;

		fprintf(stderr, "%s: %s: HTTP %ld: %.*s\n", progname, what,
				resp->status, excerpt, resp->body.data);
	}
	else
		fprintf(stderr, "%s: %s: HTTP %ld\n", progname, what, resp->status);
}

/*
 * Exit code for a reply that is not the expected success: 1 for a 404 to a
 * command on an existing key (get, del), otherwise 3.  Says why on stderr.
 */
static int
error_exit_code(const char *what, const Response *resp, bool key_command)
{
	if (resp->status == 404 && key_command)
	{
		fprintf(stderr, "%s: %s: not found\n", progname, what);
		return EXIT_NOT_FOUND;
	}
	report_http_error(what, resp);
	return EXIT_SERVER;
}

/* base URL + "/kv/" + the escaped key */
static void
key_url(Buffer *url, const char *base, const char *key)
{
	buf_append_str(url, base);
	buf_append_str(url, "/kv/");
	buf_append_escaped(url, key, strlen(key));
}

static int
cmd_get(CURL *curl, const Options *opts)
{
	Buffer		url = {0};
	Response	resp = {0};
	int			code = EXIT_OK;

	key_url(&url, opts->url, opts->args[0]);
	http_request(curl, "GET", url.data, &resp);
	if (resp.status == 200)
	{
		write_stdout(resp.body.data, resp.body.len);
		finish_stdout();
	}
	else
		code = error_exit_code("get", &resp, true);
	buf_free(&url);
	buf_free(&resp.body);
	return code;
}

static int
cmd_put(CURL *curl, const Options *opts)
{
	Buffer		url = {0};
	Buffer		value = {0};
	Response	resp = {0};
	const char *content_type = opts->content_type ?
		opts->content_type : "application/octet-stream";
	char		errbuf[CURL_ERROR_SIZE];
	CURLcode	rc;
	int			code = EXIT_OK;

	if (opts->nargs > 1)
		buf_append_str(&value, opts->args[1]);
	else
		read_stdin(&value);
	if (value.data == NULL)
		buf_append(&value, "", 0);

	key_url(&url, opts->url, opts->args[0]);
	if (opts->ttl != NULL)
	{
		buf_append_str(&url, "?ttl=");
		buf_append_str(&url, opts->ttl);
	}
	rc = http_perform(curl, "PUT", url.data, value.data, value.len,
					  content_type, false, &resp, errbuf);

	/*
	 * The server refuses a value over kvserver.max_value_size (413) from
	 * Content-Length alone, answers, and closes the connection without
	 * reading the body.  If we were still sending, that close can cost us
	 * the reply (EPIPE while sending, or a reset that discards it), which
	 * would turn an HTTP error into a connection error.  So after a send or
	 * receive failure, try once more, this time holding the body back until
	 * the server asks for it: a 413 then arrives before any of it is sent.
	 * The server does not send "100 Continue", so a body it would accept
	 * goes after libcurl's one-second wait; that is why this is not the
	 * first attempt.  PUT is idempotent, so repeating it is safe.
	 */
	if ((rc == CURLE_SEND_ERROR || rc == CURLE_RECV_ERROR) && value.len > 0)
		rc = http_perform(curl, "PUT", url.data, value.data, value.len,
						  content_type, true, &resp, errbuf);
	if (rc != CURLE_OK)
		http_fail(rc, "PUT", url.data, errbuf);
	if (resp.status != 200 && resp.status != 201)
		code = error_exit_code("put", &resp, false);
	buf_free(&url);
	buf_free(&value);
	buf_free(&resp.body);
	return code;
}

static int
cmd_del(CURL *curl, const Options *opts)
{
	Buffer		url = {0};
	Response	resp = {0};
	int			code = EXIT_OK;

	key_url(&url, opts->url, opts->args[0]);
	http_request(curl, "DELETE", url.data, &resp);
	if (resp.status != 204 && resp.status != 200)
		code = error_exit_code("del", &resp, true);
	buf_free(&url);
	buf_free(&resp.body);
	return code;
}

/* Keys collected by watch --prefix, in the server's order. */
typedef struct KeyList
{
	char	  **keys;
	size_t		n;
	size_t		cap;
} KeyList;

static void
keylist_add(KeyList *l, const char *key)
{
	if (l->n == l->cap)
	{
		l->cap = l->cap ? l->cap * 2 : 64;
		l->keys = realloc(l->keys, l->cap * sizeof(char *));
		if (l->keys == NULL)
			die(EXIT_LOCAL, "out of memory");
	}
	if ((l->keys[l->n++] = strdup(key)) == NULL)
		die(EXIT_LOCAL, "out of memory");
}

static void
keylist_free(KeyList *l)
{
	size_t		i;

	for (i = 0; i < l->n; i++)
		free(l->keys[i]);
	free(l->keys);
	memset(l, 0, sizeof(*l));
}

/*
 * Print one page's keys (or, with 'collect', add them to it); set *next to
 * a malloc'd copy of "next", or NULL when it is null.  Returns false
 * (having said why) on a malformed page.
 */
static bool
print_list_page(const Response *resp, char **next, KeyList *collect)
{
	json_t	   *root;
	json_t	   *keys;
	json_t	   *jnext;
	json_error_t jerr;
	size_t		i;

	*next = NULL;
	root = json_loadb(resp->body.data, resp->body.len, 0, &jerr);
	if (root == NULL)
	{
		fprintf(stderr, "%s: list: malformed reply: %s\n", progname, jerr.text);
		return false;
	}
	keys = json_object_get(root, "keys");
	jnext = json_object_get(root, "next");
	if (!json_is_object(root) || !json_is_array(keys) ||
		!(jnext == NULL || json_is_null(jnext) || json_is_string(jnext)))
	{
		fprintf(stderr, "%s: list: malformed reply: not {\"keys\": [...], \"next\": ...}\n",
				progname);
		json_decref(root);
		return false;
	}
	for (i = 0; i < json_array_size(keys); i++)
	{
		json_t	   *key = json_array_get(keys, i);

		if (!json_is_string(key))
		{
			fprintf(stderr, "%s: list: malformed reply: a key is not a string\n",
					progname);
			json_decref(root);
			return false;
		}
		if (collect != NULL)
			keylist_add(collect, json_string_value(key));
		else
		{
			write_stdout(json_string_value(key), json_string_length(key));
			write_stdout("\n", 1);
		}
	}
	if (json_is_string(jnext))
	{
		*next = strdup(json_string_value(jnext));
		if (*next == NULL)
			die(EXIT_LOCAL, "out of memory");
	}
	json_decref(root);
	return true;
}

static int
cmd_list(CURL *curl, const Options *opts)
{
	const char *prefix = opts->nargs > 0 ? opts->args[0] : NULL;
	Buffer		url = {0};
	Response	resp = {0};
	char	   *after = NULL;
	char		limit[16];
	int			code = EXIT_OK;

	snprintf(limit, sizeof(limit), "%d", LIST_PAGE_SIZE);
	for (;;)
	{
		char	   *next;

		buf_reset(&url);
		buf_append_str(&url, opts->url);
		buf_append_str(&url, "/kv/?limit=");
		buf_append_str(&url, limit);
		if (prefix != NULL)
		{
			buf_append_str(&url, "&prefix=");
			buf_append_escaped(&url, prefix, strlen(prefix));
		}
		if (after != NULL)
		{
			buf_append_str(&url, "&after=");
			buf_append_escaped(&url, after, strlen(after));
		}

		http_request(curl, "GET", url.data, &resp);
		if (resp.status != 200)
		{
			code = error_exit_code("list", &resp, false);
			break;
		}
		if (!print_list_page(&resp, &next, NULL))
		{
			code = EXIT_SERVER;
			break;
		}
		if (next == NULL)
			break;
		/* "next" must move forward, or we would loop for ever */
		if (after != NULL && strcmp(next, after) <= 0)
		{
			fprintf(stderr, "%s: list: malformed reply: \"next\" did not advance\n",
					progname);
			free(next);
			code = EXIT_SERVER;
			break;
		}
		free(after);
		after = next;
	}
	finish_stdout();
	free(after);
	buf_free(&url);
	buf_free(&resp.body);
	return code;
}

/*
 * watch: a 429 (too many watchers) or 503 (the server restarting) waits
 * Retry-After and tries again; anything else unexpected ends the watch.
 * Returns true to try again.
 */
static bool
watch_backoff(const char *what, const Response *resp)
{
	struct timespec pause = {1, 0};

	if (resp->status != 429 && resp->status != 503)
		return false;
	if (resp->retry_after > 1 && resp->retry_after < 3600)
		pause.tv_sec = resp->retry_after;
	report_http_error(what, resp);
	nanosleep(&pause, NULL);
	return true;
}

/*
 * The X-Kv-Index of a listing of the keys starting with 'key', waiting for
 * a change after 'wait_index' when that is given: how watch KEY waits for
 * a key that does not exist, which has no version to wait on.
 */
static bool
key_index(CURL *curl, const Options *opts, const char *key,
		  const char *wait_index, char *index, Response *resp)
{
	Buffer		url = {0};

	buf_append_str(&url, opts->url);
	buf_append_str(&url, "/kv/?limit=1&prefix=");
	buf_append_escaped(&url, key, strlen(key));
	if (wait_index != NULL)
	{
		buf_append_str(&url, "&wait=" WATCH_WAIT "&index=");
		buf_append_str(&url, wait_index);
	}
	if_none_match = NULL;
	http_request(curl, "GET", url.data, resp);
	buf_free(&url);
	snprintf(index, sizeof(resp->kv_index), "%s", resp->kv_index);
	return resp->status == 200;
}

/* watch KEY: print its value now and after every change. */
static int
cmd_watch_key(CURL *curl, const Options *opts)
{
	const char *key = opts->args[0];
	Buffer		url = {0};
	Buffer		wait_url = {0};
	Response	resp = {0};
	char		etag[sizeof(resp.etag)] = "";
	char		index[sizeof(resp.kv_index)] = "";
	bool		absent = false;
	int			code;

	key_url(&url, opts->url, key);
	buf_append_str(&wait_url, url.data);
	buf_append_str(&wait_url, "?wait=" WATCH_WAIT);
	for (;;)
	{
		/*
		 * An absent key: note the index before looking, so that a creation
		 * after the look wakes the wait below.
		 */
		if (absent && !key_index(curl, opts, key, NULL, index, &resp))
		{
			if (watch_backoff("watch", &resp))
				continue;
			break;
		}
		if_none_match = etag[0] ? etag : NULL;
		http_request(curl, "GET", etag[0] ? wait_url.data : url.data, &resp);
		if (resp.status == 304)
			continue;
		if (resp.status == 200)
		{
			write_stdout(resp.body.data, resp.body.len);
			write_stdout("\n", 1);
			if (fflush(stdout) != 0)
				die(EXIT_LOCAL, "write to standard output failed");
			snprintf(etag, sizeof(etag), "%s", resp.etag);
			absent = false;
			continue;
		}
		if (resp.status != 404)
		{
			if (watch_backoff("watch", &resp))
				continue;
			break;
		}
		if (!absent)
		{
			fprintf(stderr, "%s: watch: %s does not exist\n", progname, key);
			etag[0] = '\0';
			absent = true;
			continue;			/* note the index, then look again */
		}
		/* still absent: wait for a change of a key starting with it */
		if (!key_index(curl, opts, key, index, index, &resp) &&
			!watch_backoff("watch", &resp))
			break;
	}
	code = error_exit_code("watch", &resp, false);
	if_none_match = NULL;
	buf_free(&url);
	buf_free(&wait_url);
	buf_free(&resp.body);
	return code;
}

/*
 * Every key under 'prefix', all pages, into 'keys'; *index is the first
 * page's X-Kv-Index.  With 'wait_index', the first page waits for a change
 * after it.  False with 'resp' holding an error reply.
 */
static bool
list_all(CURL *curl, const Options *opts, const char *prefix,
		 const char *wait_index, KeyList *keys, char *index, Response *resp)
{
	Buffer		url = {0};
	char	   *after = NULL;
	bool		ok = true;

	for (;;)
	{
		char	   *next;

		buf_reset(&url);
		buf_append_str(&url, opts->url);
		buf_append_str(&url, "/kv/?limit=1000&prefix=");
		buf_append_escaped(&url, prefix, strlen(prefix));
		if (after != NULL)
		{
			buf_append_str(&url, "&after=");
			buf_append_escaped(&url, after, strlen(after));
		}
		else if (wait_index != NULL)
		{
			buf_append_str(&url, "&wait=" WATCH_WAIT "&index=");
			buf_append_str(&url, wait_index);
		}
		http_request(curl, "GET", url.data, resp);
		if (resp->status != 200)
		{
			ok = false;
			break;
		}
		if (after == NULL)
			snprintf(index, sizeof(resp->kv_index), "%s", resp->kv_index);
		if (!print_list_page(resp, &next, keys))
			die(EXIT_SERVER, "watch: malformed listing");
		if (next == NULL || (after != NULL && strcmp(next, after) <= 0))
		{
			free(next);
			break;
		}
		free(after);
		after = next;
	}
	free(after);
	buf_free(&url);
	return ok;
}

/* Print the difference of two sorted key lists; true if there was any. */
static bool
print_key_changes(const KeyList *before, const KeyList *after)
{
	size_t		i = 0;
	size_t		j = 0;
	bool		any = false;

	while (i < before->n || j < after->n)
	{
		int			c = i == before->n ? 1 : j == after->n ? -1 :
			strcmp(before->keys[i], after->keys[j]);

		if (c == 0)
		{
			i++, j++;
			continue;
		}
		printf("%s %s\n", c < 0 ? "deleted" : "created",
			   c < 0 ? before->keys[i++] : after->keys[j++]);
		any = true;
	}
	return any;
}

/* watch --prefix P: print what changes under P as it changes. */
static int
cmd_watch_prefix(CURL *curl, const Options *opts)
{
	const char *prefix = opts->watch_prefix;
	KeyList		keys = {0};
	Response	resp = {0};
	char		index[sizeof(resp.kv_index)] = "";

	while (!list_all(curl, opts, prefix, NULL, &keys, index, &resp))
		if (!watch_backoff("watch", &resp))
			goto fail;
	for (;;)
	{
		KeyList		now = {0};
		char		new_index[sizeof(index)];

		if (!list_all(curl, opts, prefix, index[0] ? index : NULL, &now,
					  new_index, &resp))
		{
			keylist_free(&now);
			if (watch_backoff("watch", &resp))
				continue;
			goto fail;
		}
		/*
		 * Keys that came or went are printed; a new index with the same
		 * keys means a value changed (the same index: the wait ran out)
		 */
		if (!print_key_changes(&keys, &now) && strcmp(new_index, index) != 0)
			printf("changed %s\n", prefix);
		if (fflush(stdout) != 0)
			die(EXIT_LOCAL, "write to standard output failed");
		keylist_free(&keys);
		keys = now;
		snprintf(index, sizeof(index), "%s", new_index);
	}
fail:
	keylist_free(&keys);
	{
		int			code = error_exit_code("watch", &resp, false);

		buf_free(&resp.body);
		return code;
	}
}

/*
 * POST the transaction in FILE (or standard input) to /txn.  Not retried
 * on a broken connection, unlike a PUT: a transaction need not be
 * idempotent (a delete reports whether the key existed).
 */
static int
cmd_txn(CURL *curl, const Options *opts)
{
	const char *file = opts->nargs > 0 ? opts->args[0] : "-";
	Buffer		url = {0};
	Buffer		body = {0};
	Response	resp = {0};
	char		errbuf[CURL_ERROR_SIZE];
	CURLcode	rc;
	int			code = EXIT_OK;

	if (strcmp(file, "-") == 0)
		read_stdin(&body);
	else
	{
		int			fd = open(file, O_RDONLY);

		if (fd < 0)
			die(EXIT_LOCAL, "could not open \"%s\": %s", file, strerror(errno));
		read_fd(fd, file, &body);
		close(fd);
	}
	if (body.data == NULL)
		buf_append(&body, "", 0);

	buf_append_str(&url, opts->url);
	buf_append_str(&url, "/txn");
	rc = http_perform(curl, "POST", url.data, body.data, body.len,
					  "application/json", false, &resp, errbuf);
	if (rc != CURLE_OK)
		http_fail(rc, "POST", url.data, errbuf);
	if (resp.status == 200)
	{
		write_stdout(resp.body.data, resp.body.len);
		if (resp.body.len == 0 || resp.body.data[resp.body.len - 1] != '\n')
			write_stdout("\n", 1);
		finish_stdout();
	}
	else
	{
		code = error_exit_code("txn", &resp, false);
		if (resp.status == 412)
			code = EXIT_CHECK;
	}
	buf_free(&url);
	buf_free(&body);
	buf_free(&resp.body);
	return code;
}

static int
cmd_stats(CURL *curl, const Options *opts)
{
	Buffer		url = {0};
	Response	resp = {0};
	int			code = EXIT_OK;

	buf_append_str(&url, opts->url);
	buf_append_str(&url, "/health");
	http_request(curl, "GET", url.data, &resp);
	if (resp.status == 200)
	{
		write_stdout(resp.body.data, resp.body.len);
		if (resp.body.len == 0 || resp.body.data[resp.body.len - 1] != '\n')
			write_stdout("\n", 1);
		finish_stdout();
	}
	else
		code = error_exit_code("stats", &resp, false);
	buf_free(&url);
	buf_free(&resp.body);
	return code;
}

/*
 * A /health reply's role: 1 primary, 0 anything else (a standby), -1 not
 * the JSON object kvserver sends.  No "role" at all counts as primary: a
 * server from before hot standbys were served is always one.
 */
static int
health_role(const Response *resp)
{
	json_t	   *root;
	json_t	   *role;
	json_error_t jerr;
	int			result = -1;

	root = json_loadb(resp->body.data, resp->body.len, 0, &jerr);
	if (root != NULL && json_is_object(root))
	{
		role = json_object_get(root, "role");
		if (role == NULL)
			result = 1;
		else if (json_is_string(role))
			result = strcmp(json_string_value(role), "primary") == 0 ? 1 : 0;
	}
	json_decref(root);
	return result;
}

/*
 * With several URLs, or --primary: the node to run the command on, picked
 * the way libpq's target_session_attrs picks a server.  Each node's GET
 * /health is asked in the order given; one that cannot be reached, or
 * answers anything but 200, is passed over; the first that answers 200
 * (and says "role": "primary", when want_primary) is the one.  When there
 * is none, say what each node said and exit: 4 when no node could be
 * reached at all, else 3.  An unusable URL is a usage error at once.
 */
static const char *
pick_node(CURL *curl, const Options *opts, bool want_primary)
{
	Buffer		url = {0};
	Buffer		why = {0};
	Response	resp = {0};
	bool		answered = false;
	int			i;

	for (i = 0; i < opts->nurls; i++)
	{
		char		errbuf[CURL_ERROR_SIZE];
		char		line[CURL_ERROR_SIZE + 64];
		CURLcode	rc;
		int			role;

		buf_reset(&url);
		buf_append_str(&url, opts->urls[i]);
		buf_append_str(&url, "/health");
		rc = http_perform(curl, "GET", url.data, NULL, 0, NULL, false,
						  &resp, errbuf);
		if (rc == CURLE_UNSUPPORTED_PROTOCOL || rc == CURLE_URL_MALFORMAT ||
			rc == CURLE_OUT_OF_MEMORY || rc == CURLE_WRITE_ERROR)
			http_fail(rc, "GET", url.data, errbuf);
		if (rc != CURLE_OK)
			snprintf(line, sizeof(line), "%s",
					 errbuf[0] ? errbuf : curl_easy_strerror(rc));
		else
		{
			answered = true;
			role = resp.status == 200 ? health_role(&resp) : -1;
			if (role == 1 || (role == 0 && !want_primary))
			{
				buf_free(&url);
				buf_free(&why);
				buf_free(&resp.body);
				return opts->urls[i];
			}
			if (resp.status != 200)
				snprintf(line, sizeof(line), "HTTP %ld", resp.status);
			else if (role == 0)
				snprintf(line, sizeof(line), "not the primary (a standby)");
			else
				snprintf(line, sizeof(line), "malformed /health reply");
		}
		buf_append_str(&why, "  ");
		buf_append_str(&why, url.data);
		buf_append_str(&why, ": ");
		buf_append_str(&why, line);
		buf_append_str(&why, "\n");
	}
	fprintf(stderr, "%s: no %s node among the URLs given:\n%s", progname,
			want_primary ? "primary" : "healthy", why.data ? why.data : "");
	exit(answered ? EXIT_SERVER : EXIT_CONNECT);
}

/*
 * The --url list (or KVSERVER_URL): comma-separated base URLs, each with
 * surrounding spaces and trailing '/'s dropped (paths are built as base +
 * "/kv/...").  The first is the node used unless pick_node() says
 * otherwise.
 */
static void
split_urls(Options *opts, const char *list)
{
	const char *p = list;

	opts->nurls = 0;
	for (;;)
	{
		const char *end = strchr(p, ',');
		size_t		len = end ? (size_t) (end - p) : strlen(p);
		char	   *url;

		while (len > 0 && *p == ' ')
			p++, len--;
		while (len > 0 && (p[len - 1] == '/' || p[len - 1] == ' '))
			len--;
		if (len == 0)
			usage_error("empty URL");
		if (opts->nurls == MAX_URLS)
			usage_error("more than %d URLs", MAX_URLS);
		url = strndup(p, len);
		if (url == NULL)
			die(EXIT_LOCAL, "out of memory");
		opts->urls[opts->nurls++] = url;
		if (end == NULL)
			break;
		p = end + 1;
	}
	opts->url = opts->urls[0];
}

/* A positive decimal integer, digits only (the server checks the range). */
static bool
valid_ttl(const char *s)
{
	bool		nonzero = false;

	if (*s == '\0' || strlen(s) > 18)
		return false;
	for (; *s; s++)
	{
		if (*s < '0' || *s > '9')
			return false;
		if (*s != '0')
			nonzero = true;
	}
	return nonzero;
}

/*
 * "--name VALUE" or "--name=VALUE": true when arg is that option, with
 * *value set (consuming the next argument when needed).
 */
static bool
match_option(const char *name, int argc, char **argv, int *i, const char **value)
{
	const char *arg = argv[*i];
	size_t		len = strlen(name);

	if (strncmp(arg, name, len) != 0)
		return false;
	if (arg[len] == '=')
	{
		*value = arg + len + 1;
		return true;
	}
	if (arg[len] != '\0')
		return false;
	if (*i + 1 >= argc)
		usage_error("option %s needs a value", name);
	*value = argv[++*i];
	return true;
}

static void
parse_args(int argc, char **argv, Options *opts)
{
	const char *env_url = getenv("KVSERVER_URL");
	const char *positional[4];
	int			npos = 0;
	bool		options_done = false;
	int			min_args;
	int			max_args;
	int			i;

	memset(opts, 0, sizeof(*opts));
	opts->url = (env_url != NULL && env_url[0] != '\0') ? env_url : DEFAULT_URL;
	auth_user = getenv("KVSERVER_USER");
	auth_token = getenv("KVSERVER_TOKEN");
	ca_file = getenv("KVSERVER_CACERT");

	for (i = 1; i < argc; i++)
	{
		const char *arg = argv[i];
		const char *value;

		if (!options_done && arg[0] == '-' && arg[1] != '\0')
		{
			if (strcmp(arg, "--") == 0)
				options_done = true;
			else if (strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0)
			{
				print_help(stdout);
				finish_stdout();
				exit(EXIT_OK);
			}
			else if (strcmp(arg, "--primary") == 0)
				opts->primary_only = true;
			else if (match_option("--url", argc, argv, &i, &value))
				opts->url = value;
			else if (match_option("--ttl", argc, argv, &i, &value))
				opts->ttl = value;
			else if (match_option("--content-type", argc, argv, &i, &value))
				opts->content_type = value;
			else if (match_option("--user", argc, argv, &i, &value))
				auth_user = value;
			else if (match_option("--token", argc, argv, &i, &value))
				auth_token = value;
			else if (match_option("--cacert", argc, argv, &i, &value))
				ca_file = value;
			else if (match_option("--prefix", argc, argv, &i, &value))
				opts->watch_prefix = value;
			else
				usage_error("unknown option \"%s\"", arg);
			continue;
		}
		if (npos == (int) (sizeof(positional) / sizeof(positional[0])))
			usage_error("too many arguments");
		positional[npos++] = arg;
	}

	if (auth_user != NULL && auth_user[0] == '\0')
		auth_user = NULL;
	if (auth_token != NULL && auth_token[0] == '\0')
		auth_token = NULL;
	if (ca_file != NULL && ca_file[0] == '\0')
		ca_file = NULL;
	if (auth_user != NULL && strchr(auth_user, ':') == NULL)
		usage_error("--user takes USER:PASSWORD");

	if (npos == 0)
		usage_error("no command given");
	opts->command = positional[0];
	if (strcmp(opts->command, "get") == 0 || strcmp(opts->command, "del") == 0)
		min_args = max_args = 1;
	else if (strcmp(opts->command, "put") == 0)
		min_args = 1, max_args = 2;
	else if (strcmp(opts->command, "list") == 0)
		min_args = 0, max_args = 1;
	else if (strcmp(opts->command, "txn") == 0)
		min_args = 0, max_args = 1;
	else if (strcmp(opts->command, "stats") == 0)
		min_args = max_args = 0;
	else if (strcmp(opts->command, "watch") == 0)
		min_args = max_args = (opts->watch_prefix != NULL ? 0 : 1);
	else
		usage_error("unknown command \"%s\"", opts->command);

	opts->nargs = npos - 1;
	if (opts->nargs < min_args)
		usage_error("%s: missing KEY", opts->command);
	if (opts->nargs > max_args)
		usage_error("%s: too many arguments", opts->command);
	for (i = 0; i < opts->nargs; i++)
		opts->args[i] = positional[i + 1];

	if (strcmp(opts->command, "txn") == 0 && opts->nargs > 0 &&
		opts->args[0][0] == '\0')
		usage_error("txn: FILE must not be empty");
	else if (strcmp(opts->command, "list") != 0 && opts->nargs > 0 &&
			 opts->args[0][0] == '\0')
		usage_error("%s: KEY must not be empty", opts->command);
	if (strcmp(opts->command, "put") != 0 &&
		(opts->ttl != NULL || opts->content_type != NULL))
		usage_error("--ttl and --content-type apply to put only");
	if (opts->ttl != NULL && !valid_ttl(opts->ttl))
		usage_error("--ttl must be a positive whole number of seconds, not \"%s\"",
					opts->ttl);
	if (opts->watch_prefix != NULL && strcmp(opts->command, "watch") != 0)
		usage_error("--prefix applies to watch only");
	if (opts->content_type != NULL &&
		(opts->content_type[0] == '\0' ||
		 strpbrk(opts->content_type, "\r\n") != NULL))
		usage_error("--content-type must be a non-empty single line");

	split_urls(opts, opts->url);
}

int
main(int argc, char **argv)
{
	Options		opts;
	CURL	   *curl;
	int			code;
	int			i;

	parse_args(argc, argv, &opts);

	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		die(EXIT_LOCAL, "could not initialize libcurl");
	curl = curl_easy_init();
	if (curl == NULL)
		die(EXIT_LOCAL, "could not initialize libcurl");

	/* writes go to the primary; a single URL is used as it is */
	if (opts.nurls > 1 || opts.primary_only)
		opts.url = pick_node(curl, &opts,
							 opts.primary_only ||
							 strcmp(opts.command, "put") == 0 ||
							 strcmp(opts.command, "del") == 0 ||
							 strcmp(opts.command, "txn") == 0);

	if (strcmp(opts.command, "get") == 0)
		code = cmd_get(curl, &opts);
	else if (strcmp(opts.command, "put") == 0)
		code = cmd_put(curl, &opts);
	else if (strcmp(opts.command, "del") == 0)
		code = cmd_del(curl, &opts);
	else if (strcmp(opts.command, "list") == 0)
		code = cmd_list(curl, &opts);
	else if (strcmp(opts.command, "txn") == 0)
		code = cmd_txn(curl, &opts);
	else if (strcmp(opts.command, "watch") == 0)
		code = opts.watch_prefix != NULL ? cmd_watch_prefix(curl, &opts)
			: cmd_watch_key(curl, &opts);
	else
		code = cmd_stats(curl, &opts);

	curl_easy_cleanup(curl);
	curl_global_cleanup();
	for (i = 0; i < opts.nurls; i++)
		free((char *) opts.urls[i]);
	return code;
}
