/*-------------------------------------------------------------------------
 *
 * http_parse.c
 *	  Routing, key decoding, query strings, durations and entity tags for
 *	  the HTTP API (JSON bodies: json_body.c; JSON replies: json_reply.c).
 *
 * Everything a client controls passes through here before it reaches the
 * queue, so these functions trust nothing: every length is bounded, every
 * percent-escape checked, every key validated as UTF-8 without NUL.
 *
 * No PostgreSQL, no civetweb, no shared state: safe on any thread.
 *
 * IDENTIFICATION
 *	  src/civet/http_parse.c
 *
 *-------------------------------------------------------------------------
 */
#include "http_parse.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#ifdef PG_MAJORVERSION
#error "http_parse.c runs on civetweb threads: no PostgreSQL headers"
#endif

KvRoute
kv_route(const char *path, const char **key_raw)
{
	*key_raw = NULL;
	if (strcmp(path, "/kv") == 0 || strcmp(path, "/kv/") == 0)
		return KV_ROUTE_COLLECTION;
	if (strncmp(path, "/kv/", 4) == 0)
	{
		*key_raw = path + 4;
		return KV_ROUTE_KEY;
	}
	if (strcmp(path, "/health") == 0)
		return KV_ROUTE_HEALTH;
	if (strcmp(path, "/metrics") == 0)
		return KV_ROUTE_METRICS;
	if (strcmp(path, "/") == 0)
		return KV_ROUTE_DASHBOARD;
	if (strcmp(path, "/txn") == 0)
		return KV_ROUTE_TXN;
	return KV_ROUTE_NOT_FOUND;
}

static int
hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/*
 * Percent-decode src[0..len) once into a new NUL-terminated buffer.
 * 'plus_is_space' for query strings.  Returns NULL on a bad escape.
 */
static char *
percent_decode(const char *src, size_t len, bool plus_is_space,
			   size_t *out_len)
{
	char	   *out = malloc(len + 1);
	size_t		i;
	size_t		o = 0;

	if (out == NULL)
		return NULL;
	for (i = 0; i < len; i++)
	{
		if (src[i] == '%')
		{
			int			hi,
						lo;

			if (len - i < 3)
			{
				free(out);
				return NULL;
			}
			hi = hexval(src[i + 1]);
			lo = hexval(src[i + 2]);
			if (hi < 0 || lo < 0)
			{
				free(out);
				return NULL;
			}
			out[o++] = (char) (hi * 16 + lo);
			i += 2;
		}
		else if (plus_is_space && src[i] == '+')
			out[o++] = ' ';
		else
			out[o++] = src[i];
	}
	out[o] = '\0';
	*out_len = o;
	return out;
}

/* Decode and validate the raw key text of /kv/{key}. */
KvError
kv_decode_key(const char *raw, size_t max_key_len, char **key,
			  size_t *key_len)
{
	KvError		err;

	*key = percent_decode(raw, strlen(raw), false, key_len);
	if (*key == NULL)
		return KV_ERR_BAD_KEY;
	err = kv_check_key(*key, *key_len, max_key_len);
	if (err != KV_ERR_NONE)
	{
		free(*key);
		*key = NULL;
	}
	return err;
}

/* A whole decimal integer, optional leading '-', no spaces, no overflow. */
bool
kv_parse_int64(const char *s, size_t len, int64_t *out)
{
	char		buf[32];
	char	   *end;
	long long	v;

	if (len == 0 || len >= sizeof(buf))
		return false;
	memcpy(buf, s, len);
	buf[len] = '\0';
	if (!(buf[0] == '-' || (buf[0] >= '0' && buf[0] <= '9')))
		return false;
	errno = 0;
	v = strtoll(buf, &end, 10);
	if (errno != 0 || *end != '\0')
		return false;
	*out = (int64_t) v;
	return true;
}

/*
 * Find 'name' in a query string and decode its value.  *value is NULL when
 * the parameter is absent; a repeated parameter is a bad request, since
 * which one wins would be a guess.
 */
KvError
kv_query_param(const char *query, const char *name, char **value)
{
	size_t		name_len = strlen(name);
	const char *p = query;

	*value = NULL;
	while (p != NULL && *p != '\0')
	{
		const char *amp = strchr(p, '&');
		size_t		part_len = amp ? (size_t) (amp - p) : strlen(p);
		const char *eq = memchr(p, '=', part_len);
		size_t		klen = eq ? (size_t) (eq - p) : part_len;

		if (klen == name_len && memcmp(p, name, name_len) == 0)
		{
			size_t		vlen;

			if (*value != NULL)
			{
				free(*value);
				*value = NULL;
				return KV_ERR_BAD_REQUEST;
			}
			*value = eq ? percent_decode(eq + 1, part_len - klen - 1, true, &vlen)
				: strdup("");
			if (*value == NULL)
				return KV_ERR_BAD_REQUEST;
			if (eq && strlen(*value) != vlen)
			{
				/* an encoded NUL */
				free(*value);
				*value = NULL;
				return KV_ERR_BAD_REQUEST;
			}
		}
		p = amp ? amp + 1 : NULL;
	}
	return KV_ERR_NONE;
}

KvError
kv_parse_list_query(const char *query, char **prefix, char **after,
					int *limit, const char **why)
{
	char	   *lim = NULL;
	KvError		err;

	*prefix = NULL;
	*after = NULL;
	*limit = KV_LIST_DEFAULT_LIMIT;
	if (query == NULL)
		query = "";
	if (kv_query_param(query, "prefix", prefix) != KV_ERR_NONE ||
		kv_query_param(query, "after", after) != KV_ERR_NONE ||
		kv_query_param(query, "limit", &lim) != KV_ERR_NONE)
	{
		*why = "malformed query string: bad percent-encoding, NUL or a repeated parameter";
		err = KV_ERR_BAD_REQUEST;
		goto fail;
	}
	if ((*prefix && !kv_utf8_valid(*prefix, strlen(*prefix))) ||
		(*after && !kv_utf8_valid(*after, strlen(*after))))
	{
		*why = "prefix and after must be valid UTF-8";
		err = KV_ERR_BAD_REQUEST;
		goto fail;
	}
	if (lim != NULL)
	{
		int64_t		v;

		if (!kv_parse_int64(lim, strlen(lim), &v) || v < 1)
		{
			*why = "limit must be a positive integer";
			err = KV_ERR_BAD_REQUEST;
			goto fail;
		}
		*limit = v > KV_LIST_MAX_LIMIT ? KV_LIST_MAX_LIMIT : (int) v;
		free(lim);
	}
	if (*prefix == NULL)
		*prefix = strdup("");
	return KV_ERR_NONE;

fail:
	free(lim);
	free(*prefix);
	free(*after);
	*prefix = *after = NULL;
	return err;
}

/* Units of a duration, as PostgreSQL's interval input spells them. */
static const struct
{
	const char *name;
	int64_t		ms;
}			duration_units[] =
{
	{"ms", 1}, {"msec", 1}, {"msecs", 1}, {"millisecond", 1},
	{"milliseconds", 1},
	{"s", 1000}, {"sec", 1000}, {"secs", 1000}, {"second", 1000},
	{"seconds", 1000},
	{"m", 60000}, {"min", 60000}, {"mins", 60000}, {"minute", 60000},
	{"minutes", 60000},
	{"h", 3600000}, {"hour", 3600000}, {"hours", 3600000}
};

/*
 * A duration, in milliseconds: a number of seconds ("30", "2.5"), or
 * PostgreSQL interval style, numbers each followed by a unit, spaces
 * allowed ("30s", "5min", "1 min 30 s", "250ms").  Negative, empty or
 * absurd (over a year) is false.
 */
bool
kv_parse_duration(const char *s, int64_t *ms)
{
	const char *p = s;
	double		total = 0;
	int			parts = 0;

	for (;;)
	{
		double		num = 0;
		double		scale = 0;
		bool		digits = false;
		size_t		ulen;
		size_t		i;

		while (*p == ' ')
			p++;
		if (*p == '\0')
			break;
		for (; (*p >= '0' && *p <= '9') || (*p == '.' && scale == 0); p++)
		{
			if (*p == '.')
				scale = 1;
			else
			{
				digits = true;
				if (scale > 0)
					num += (*p - '0') * (scale /= 10);
				else if ((num = num * 10 + (*p - '0')) > 1e12)
					return false;
			}
		}
		if (!digits)
			return false;
		while (*p == ' ')
			p++;
		for (ulen = 0; (p[ulen] >= 'a' && p[ulen] <= 'z') ||
			 (p[ulen] >= 'A' && p[ulen] <= 'Z'); ulen++)
			;
		if (ulen == 0)
		{
			/* a bare number is seconds, and only on its own */
			if (parts > 0 || *p != '\0')
				return false;
			total = num * 1000;
			parts++;
			break;
		}
		for (i = 0; i < sizeof(duration_units) / sizeof(duration_units[0]); i++)
			if (strlen(duration_units[i].name) == ulen &&
				strncasecmp(duration_units[i].name, p, ulen) == 0)
				break;
		if (i == sizeof(duration_units) / sizeof(duration_units[0]))
			return false;
		total += num * duration_units[i].ms;
		if (total > 366.0 * 24 * 3600 * 1000)
			return false;
		p += ulen;
		parts++;
	}
	if (parts == 0 || total > 366.0 * 24 * 3600 * 1000)
		return false;
	*ms = (int64_t) total;
	return true;
}

/*
 * ?wait=DURATION (*wait_ms = -1 when absent) and, for listings (a non-NULL
 * 'index'), &index=N (*has_index false when absent).
 */
KvError
kv_parse_watch_query(const char *query, int64_t *wait_ms, uint64_t *index,
					 bool *has_index, const char **why)
{
	char	   *w = NULL;
	char	   *ix = NULL;
	KvError		err = KV_ERR_NONE;

	*wait_ms = -1;
	if (index != NULL)
	{
		*index = 0;
		*has_index = false;
	}
	if (query == NULL)
		return KV_ERR_NONE;
	if (kv_query_param(query, "wait", &w) != KV_ERR_NONE ||
		(index != NULL &&
		 kv_query_param(query, "index", &ix) != KV_ERR_NONE))
	{
		*why = "malformed query string: bad percent-encoding, NUL or a repeated parameter";
		err = KV_ERR_BAD_REQUEST;
	}
	else if (w != NULL && !kv_parse_duration(w, wait_ms))
	{
		*why = "wait must be a duration: seconds, or a number with a unit such as 30s, 500ms or 5min";
		err = KV_ERR_BAD_REQUEST;
	}
	else if (ix != NULL)
	{
		int64_t		v;

		if (!kv_parse_int64(ix, strlen(ix), &v) || v < 0)
		{
			*why = "index must be a whole number, as sent in X-Kv-Index";
			err = KV_ERR_BAD_REQUEST;
		}
		else
		{
			*index = (uint64_t) v;
			*has_index = true;
		}
	}
	free(w);
	free(ix);
	if (err != KV_ERR_NONE)
		*wait_ms = -1;
	return err;
}

/* A TTL in seconds that kvserver accepts (the query's and a body's). */
bool
kv_ttl_valid(int64_t ttl)
{
	return ttl >= 1 && ttl <= KV_MAX_TTL_SECONDS;
}

/* ?ttl=SECONDS on a PUT; *ttl = 0 when absent. */
KvError
kv_parse_ttl(const char *query, int64_t *ttl, const char **why)
{
	char	   *s = NULL;

	*ttl = 0;
	if (query == NULL)
		return KV_ERR_NONE;
	if (kv_query_param(query, "ttl", &s) != KV_ERR_NONE)
	{
		*why = "malformed query string";
		return KV_ERR_BAD_REQUEST;
	}
	if (s == NULL)
		return KV_ERR_NONE;
	if (!kv_parse_int64(s, strlen(s), ttl) || !kv_ttl_valid(*ttl))
	{
		free(s);
		*why = "ttl must be a whole number of seconds between 1 and 100 years";
		return KV_ERR_BAD_REQUEST;
	}
	free(s);
	return KV_ERR_NONE;
}

/*
 * An If-Match / If-None-Match value: "*" (KV_MATCH_ANY) or one entity tag
 * "<version>" as we send them, optionally weak (W/).  Lists of tags are
 * not supported and are a bad request, as is anything else malformed.
 * If-Match compares strongly (RFC 9110 13.1.1): a weak tag never matches,
 * which we express as a version that no row has.
 */
KvError
kv_parse_etag(const char *header, bool strong, int64_t *version)
{
	bool		weak = false;
	const char *p = header;
	const char *end;
	int64_t		v;

	while (*p == ' ' || *p == '\t')
		p++;
	end = p + strlen(p);
	while (end > p && (end[-1] == ' ' || end[-1] == '\t'))
		end--;
	if (end - p == 1 && *p == '*')
	{
		*version = KV_MATCH_ANY;
		return KV_ERR_NONE;
	}
	if (end - p >= 2 && p[0] == 'W' && p[1] == '/')
	{
		weak = true;
		p += 2;
	}
	if (end - p < 3 || *p != '"' || end[-1] != '"')
		return KV_ERR_BAD_REQUEST;
	if (!kv_parse_int64(p + 1, end - p - 2, &v) || v < 1)
		return KV_ERR_BAD_REQUEST;
	*version = (weak && strong) ? INT64_MAX : v;
	return KV_ERR_NONE;
}
