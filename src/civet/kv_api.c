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
 * No PostgreSQL and no shared state: safe on any thread.
 *
 * IDENTIFICATION
 *	  src/civet/kv_api.c
 *
 *-------------------------------------------------------------------------
 */
#include "kv_api.h"

#include <string.h>
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

/* Now, as a PostgreSQL timestamptz: microseconds since 2000-01-01 UTC. */
int64_t
kv_pg_timestamp_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return ((int64_t) ts.tv_sec - KV_PG_EPOCH_UNIX_SECS) * 1000000 +
		ts.tv_nsec / 1000;
}
