/*-------------------------------------------------------------------------
 *
 * kv_api.c
 *	  The key rule, UTF-8 validation, error code names and the current
 *	  time as a PostgreSQL timestamp: the API facts that both the HTTP
 *	  threads and the SQL functions apply.
 *
 * One key rule for every way in: a key is 1 to kvserver.max_key_length
 * bytes of valid UTF-8 without NUL.  kv_put() in SQL and PUT/POST over
 * HTTP call the same kv_check_key(), so any key SQL can write is one
 * HTTP can address, and the other way round.
 *
 * One content type rule likewise (kv_content_type_valid): a PUT's
 * Content-Type, every content type a reply echoes, and, as the CHECK
 * constraint kv_store_content_type_valid, every row of kv_store.
 *
 * Timestamps sent to clients are formatted here once (kv_format_timestamp).
 *
 * And the rule for kvserver.primary_url (kv_primary_url_problem): the GUC's
 * check hook applies it, and a standby echoes the URL in a Location header.
 *
 * No PostgreSQL and no shared state: safe on any thread.
 *
 * IDENTIFICATION
 *	  src/civet/kv_api.c
 *
 *-------------------------------------------------------------------------
 */
#include "kv_api.h"

#include <string.h>
#include <strings.h>
#include <time.h>

#ifdef PG_MAJORVERSION
#error "kv_api.c runs on civetweb threads: no PostgreSQL headers"
#endif

const char *
kv_error_code(KvError error)
{
	switch (error)
	{
		case KV_ERR_NONE:
			return "none";
		case KV_ERR_BAD_REQUEST:
			return "bad_request";
		case KV_ERR_BAD_KEY:
			return "bad_key";
		case KV_ERR_KEY_TOO_LONG:
			return "key_too_long";
		case KV_ERR_NOT_FOUND:
			return "not_found";
		case KV_ERR_METHOD_NOT_ALLOWED:
			return "method_not_allowed";
		case KV_ERR_CONFLICT:
			return "conflict";
		case KV_ERR_PRECONDITION_FAILED:
			return "precondition_failed";
		case KV_ERR_VALUE_TOO_LARGE:
			return "value_too_large";
		case KV_ERR_UNAVAILABLE:
			return "unavailable";
		case KV_ERR_INTERNAL:
			return "internal";
		case KV_ERR_UNAUTHORIZED:
			return "unauthorized";
		case KV_ERR_FORBIDDEN:
			return "forbidden";
		case KV_ERR_TOO_MANY_REQUESTS:
			return "too_many_requests";
		case KV_ERR_READ_ONLY:
			return "read_only";
	}
	return "internal";
}

/* Strict UTF-8: no overlongs, no surrogates, nothing past U+10FFFF. */
bool
kv_utf8_valid(const char *str, size_t len)
{
	const unsigned char *s = (const unsigned char *) str;
	size_t		i = 0;

	while (i < len)
	{
		unsigned char c = s[i];
		size_t		n;
		uint32_t	cp;
		size_t		k;

		if (c < 0x80)
		{
			i++;
			continue;
		}
		if (c >= 0xC2 && c <= 0xDF)
		{
			n = 1;
			cp = c & 0x1F;
		}
		else if (c >= 0xE0 && c <= 0xEF)
		{
			n = 2;
			cp = c & 0x0F;
		}
		else if (c >= 0xF0 && c <= 0xF4)
		{
			n = 3;
			cp = c & 0x07;
		}
		else
			return false;
		if (len - i - 1 < n)
			return false;
		for (k = 1; k <= n; k++)
		{
			if ((s[i + k] & 0xC0) != 0x80)
				return false;
			cp = (cp << 6) | (s[i + k] & 0x3F);
		}
		if ((n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) ||
			cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
			return false;
		i += n + 1;
	}
	return true;
}

/*
 * The key rule.  Emptiness, NUL and encoding are checked before the length
 * so that a malformed key is always bad_key, whatever its size.
 */
KvError
kv_check_key(const char *key, size_t key_len, size_t max_key_len)
{
	if (key_len == 0)
		return KV_ERR_BAD_KEY;
	if (memchr(key, '\0', key_len) != NULL)
		return KV_ERR_BAD_KEY;
	if (!kv_utf8_valid(key, key_len))
		return KV_ERR_BAD_KEY;
	if (key_len > max_key_len)
		return KV_ERR_KEY_TOO_LONG;
	return KV_ERR_NONE;
}

/* An RFC 7230 token character: ALPHA, DIGIT or one of !#$%&'*+-.^_`|~ */
static bool
is_tchar(unsigned char c)
{
	if ((c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') ||
		(c >= 'a' && c <= 'z'))
		return true;
	return c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

/*
 * The content type rule.  A content type is echoed as a reply header, and
 * a row any role may write must never be able to add a header or split
 * the reply, so only this shape is accepted:
 *
 *	- 1 to KV_MAX_CONTENT_TYPE_LEN (255) bytes, every one printable ASCII
 *	  (0x20-0x7E): no CR, LF, NUL, TAB or other control byte, no DEL, no
 *	  8-bit byte;
 *	- type "/" subtype, each one or more RFC 7230 tchars;
 *	- then nothing, or any number of spaces, ";", and any printable ASCII
 *	  (the parameters, not parsed further).
 *
 * The CHECK constraint kv_store_content_type_valid (sql/kvserver--1.1.sql
 * and sql/kvserver--1.0--1.1.sql) is the same rule as a regular
 * expression, and must stay so:
 *
 *	octet_length(content_type) <= 255 AND content_type ~
 *	  '^[!#$%&''*+.^_`|~0-9A-Za-z-]+/[!#$%&''*+.^_`|~0-9A-Za-z-]+( *;[ -~]*)?$'
 *
 * test/t/120_upgrade_and_content_type.pl checks that both give the same
 * verdict on a set of tricky strings.
 */
bool
kv_content_type_valid(const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *) s;
	size_t		i;
	size_t		start;

	if (s == NULL || len == 0 || len > KV_MAX_CONTENT_TYPE_LEN)
		return false;
	for (i = 0; i < len; i++)
		if (p[i] < 0x20 || p[i] > 0x7E)
			return false;

	/* type "/" subtype */
	for (i = 0; i < len && is_tchar(p[i]); i++)
		;
	if (i == 0 || i == len || p[i] != '/')
		return false;
	start = ++i;
	while (i < len && is_tchar(p[i]))
		i++;
	if (i == start)
		return false;
	if (i == len)
		return true;

	/* spaces, ";", and the rest is already known to be printable */
	while (i < len && p[i] == ' ')
		i++;
	return i < len && p[i] == ';';
}

/*
 * The rule for kvserver.primary_url, where a hot standby redirects writes
 * (307, Location: the URL followed by the request's own path and query).
 * It becomes part of a reply header, so it must be one line of printable
 * ASCII: an http:// or https:// URL (scheme in any case) with a host, at
 * most KV_MAX_PRIMARY_URL_LEN bytes, no space, control byte or byte over
 * 0x7E, and no '?' or '#' (the request's path and query are appended).  A
 * path (a proxy's prefix) is allowed.  Empty means "not set".  Returns
 * NULL when the URL is acceptable, else what is wrong with it, worded to
 * follow "The URL " ("has no host").
 */
const char *
kv_primary_url_problem(const char *url)
{
	const unsigned char *p = (const unsigned char *) url;
	size_t		len;
	size_t		host;
	size_t		i;

	if (url == NULL || url[0] == '\0')
		return NULL;
	len = strnlen(url, KV_MAX_PRIMARY_URL_LEN + 1);
	if (len > KV_MAX_PRIMARY_URL_LEN)
		return "is longer than 1024 bytes";
	for (i = 0; i < len; i++)
		if (p[i] <= 0x20 || p[i] > 0x7E)
			return "must be printable ASCII, without spaces or control characters";
	if (strncasecmp(url, "http://", 7) == 0)
		host = 7;
	else if (strncasecmp(url, "https://", 8) == 0)
		host = 8;
	else
		return "must start with http:// or https://";
	if (host == len || url[host] == '/')
		return "has no host";
	if (strpbrk(url, "?#") != NULL)
		return "must not contain '?' or '#' (the request's own path and query are appended to it)";
	return NULL;
}

/* Now, as a PostgreSQL timestamptz: microseconds since 2000-01-01 UTC. */
int64_t
kv_pg_timestamp_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return ((int64_t) ts.tv_sec - KV_PG_EPOCH_UNIX_SECS) * 1000000 +
		ts.tv_nsec / 1000;
}

/*
 * A PostgreSQL timestamptz (microseconds since 2000) as RFC 3339 UTC,
 * "2026-11-22T10:00:00Z": X-Expires-At, and "expires_at" in the answer of
 * POST /txn.  False when it cannot be formatted into 'buf' (strftime
 * leaves the buffer undefined then, so it must not be sent).
 */
bool
kv_format_timestamp(int64_t pg_ts, char *buf, size_t len)
{
	time_t		secs = (time_t) (pg_ts / 1000000 + KV_PG_EPOCH_UNIX_SECS);
	struct tm	tm;

	if (gmtime_r(&secs, &tm) == NULL)
		return false;
	return strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm) > 0;
}
