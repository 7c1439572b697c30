/*-------------------------------------------------------------------------
 *
 * http_parse.c
 *	  Routing, key decoding, query strings and JSON for the HTTP API.
 *
 * Everything a client controls passes through here before it reaches the
 * queue, so these functions trust nothing: every length is bounded, every
 * percent-escape checked, every key validated as UTF-8 without NUL.  JSON
 * goes through jansson, after json_depth_ok() has bounded its nesting
 * (jansson parses recursively).  Base64 goes through OpenSSL's libcrypto,
 * behind a strict check of its own.
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
#include <jansson.h>
#include <limits.h>
#include <openssl/evp.h>
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

static bool
ttl_valid(int64_t ttl)
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
	if (!kv_parse_int64(s, strlen(s), ttl) || !ttl_valid(*ttl))
	{
		free(s);
		*why = "ttl must be a whole number of seconds between 1 and 100 years";
		return KV_ERR_BAD_REQUEST;
	}
	free(s);
	return KV_ERR_NONE;
}

/*
 * jansson parses recursively and allows 2048 levels, more than a civetweb
 * thread's stack holds, so deep nesting is refused before it gets there.
 * Brackets inside strings do not count.
 */
static bool
json_depth_ok(const char *s, size_t len, int max_depth)
{
	int			depth = 0;
	bool		in_string = false;
	size_t		i;

	for (i = 0; i < len; i++)
	{
		char		c = s[i];

		if (in_string)
		{
			if (c == '\\')
				i++;
			else if (c == '"')
				in_string = false;
		}
		else if (c == '"')
			in_string = true;
		else if (c == '[' || c == '{')
		{
			if (++depth > max_depth)
				return false;
		}
		else if (c == ']' || c == '}')
			depth--;
	}
	return true;
}

/* POST /kv/: {"key": "...", "value": "...", "ttl": N} */
KvError
kv_parse_create_body(const char *body, size_t len, size_t max_key_len,
					 char **key, size_t *key_len,
					 char **value, size_t *value_len,
					 int64_t *ttl, const char **why)
{
	json_error_t jerr;
	json_t	   *root;
	json_t	   *jkey;
	json_t	   *jvalue;
	json_t	   *jttl;
	const char *name;
	json_t	   *member;
	KvError		err;

	*key = *value = NULL;
	*ttl = 0;
	if (!json_depth_ok(body, len, KV_JSON_MAX_DEPTH))
	{
		*why = "JSON body is nested too deeply";
		return KV_ERR_BAD_REQUEST;
	}
	/* let "\u0000" through, so that the key check reports it as bad_key */
	root = json_loadb(body, len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &jerr);
	if (root == NULL)
	{
		*why = "body is not valid JSON";
		return KV_ERR_BAD_REQUEST;
	}
	if (!json_is_object(root))
	{
		*why = "body must be a JSON object";
		err = KV_ERR_BAD_REQUEST;
		goto done;
	}
	json_object_foreach(root, name, member)
	{
		if (strcmp(name, "key") != 0 && strcmp(name, "value") != 0 &&
			strcmp(name, "ttl") != 0)
		{
			*why = "unknown field: only \"key\", \"value\" and \"ttl\" are accepted";
			err = KV_ERR_BAD_REQUEST;
			goto done;
		}
	}
	jkey = json_object_get(root, "key");
	jvalue = json_object_get(root, "value");
	jttl = json_object_get(root, "ttl");
	if (!json_is_string(jkey) || !json_is_string(jvalue))
	{
		*why = "\"key\" and \"value\" must be JSON strings";
		err = KV_ERR_BAD_REQUEST;
		goto done;
	}
	if (jttl != NULL && !json_is_null(jttl))
	{
		if (!json_is_integer(jttl) || !ttl_valid(json_integer_value(jttl)))
		{
			*why = "\"ttl\" must be a whole number of seconds between 1 and 100 years";
			err = KV_ERR_BAD_REQUEST;
			goto done;
		}
		*ttl = json_integer_value(jttl);
	}
	*key_len = json_string_length(jkey);
	err = kv_check_key(json_string_value(jkey), *key_len, max_key_len);
	if (err != KV_ERR_NONE)
	{
		*why = err == KV_ERR_KEY_TOO_LONG ? "key is too long"
			: "key must be non-empty UTF-8 without NUL";
		goto done;
	}
	*value_len = json_string_length(jvalue);
	*key = malloc(*key_len + 1);
	*value = malloc(*value_len + 1);
	if (*key == NULL || *value == NULL)
	{
		free(*key);
		free(*value);
		*key = *value = NULL;
		*why = "out of memory";
		err = KV_ERR_INTERNAL;
		goto done;
	}
	memcpy(*key, json_string_value(jkey), *key_len + 1);
	memcpy(*value, json_string_value(jvalue), *value_len + 1);
	err = KV_ERR_NONE;

done:
	json_decref(root);
	return err;
}

/*---- POST /txn ----*/

static bool
base64_char(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
		(c >= '0' && c <= '9') || c == '+' || c == '/';
}

/*
 * Strict base64 (RFC 4648: padded, no whitespace, no line breaks) into a
 * malloc'd, NUL-terminated buffer; NULL when 'in' is not that (*oom: or
 * when memory ran out).  EVP_DecodeBlock() alone would skip surrounding
 * whitespace and count the padding as decoded zero bytes, so the alphabet
 * and the padding are checked here and the padding taken off its count.
 */
static char *
base64_decode(const char *in, size_t len, size_t *out_len, bool *oom)
{
	size_t		pad = 0;
	size_t		i;
	char	   *out;
	int			n;

	*oom = false;
	*out_len = 0;
	if (len % 4 != 0 || len > INT_MAX)
		return NULL;
	while (len > 0 && pad < 2 && in[len - 1 - pad] == '=')
		pad++;
	for (i = 0; i < len - pad; i++)
		if (!base64_char(in[i]))
			return NULL;
	out = malloc(len / 4 * 3 + 1);
	if (out == NULL)
	{
		*oom = true;
		return NULL;
	}
	n = len == 0 ? 0 : EVP_DecodeBlock((unsigned char *) out,
									   (const unsigned char *) in, (int) len);
	if (n < 0 || (size_t) n < pad)
	{
		free(out);
		return NULL;
	}
	*out_len = (size_t) n - pad;
	out[*out_len] = '\0';
	return out;
}

/* A JSON string holding the base64 of in[0..len); NULL on failure. */
static json_t *
base64_string(const char *in, size_t len)
{
	size_t		out_len;
	char	   *out;
	json_t	   *str;

	if (len > (size_t) INT_MAX / 4 * 3 - 3)
		return NULL;
	out_len = 4 * ((len + 2) / 3);
	out = malloc(out_len + 1);
	if (out == NULL)
		return NULL;
	EVP_EncodeBlock((unsigned char *) out, (const unsigned char *) in, (int) len);
	str = json_stringn(out, out_len);
	free(out);
	return str;
}

/* Is the JSON string 's' exactly 'lit'?  (A JSON string may hold a NUL.) */
static bool
json_string_is(const json_t *s, const char *lit)
{
	size_t		len = strlen(lit);

	return json_is_string(s) && json_string_length(s) == len &&
		memcmp(json_string_value(s), lit, len) == 0;
}

static bool
name_is(const char *name, size_t name_len, const char *lit)
{
	return name_len == strlen(lit) && memcmp(name, lit, name_len) == 0;
}

/* May an operation of this kind have a field of this name? */
static bool
txn_field_allowed(KvTxnOpKind kind, const char *name, size_t name_len)
{
	if (name_is(name, name_len, "op") || name_is(name, name_len, "key"))
		return true;
	switch (kind)
	{
		case KV_TXN_CHECK:
			return name_is(name, name_len, "version");
		case KV_TXN_PUT:
			return name_is(name, name_len, "value") ||
				name_is(name, name_len, "value_base64") ||
				name_is(name, name_len, "content_type") ||
				name_is(name, name_len, "ttl");
		case KV_TXN_GET:
		case KV_TXN_DELETE:
			break;
	}
	return false;
}

static const char *
txn_fields_message(KvTxnOpKind kind)
{
	switch (kind)
	{
		case KV_TXN_CHECK:
			return "unknown field: a check takes \"op\", \"key\" and \"version\"";
		case KV_TXN_PUT:
			return "unknown field: a put takes \"op\", \"key\", \"value\" or \"value_base64\", \"content_type\" and \"ttl\"";
		case KV_TXN_GET:
			return "unknown field: a get takes \"op\" and \"key\"";
		case KV_TXN_DELETE:
			return "unknown field: a delete takes \"op\" and \"key\"";
	}
	return "unknown field";
}

/*
 * The value of a put: "value" (text, recorded as text/plain; charset=utf-8
 * as POST /kv/ does) or "value_base64" (bytes, recorded without a content
 * type, as a PUT without Content-Type); "content_type" overrides either,
 * null meaning none.
 */
static KvError
parse_txn_value(json_t *jop, int64_t max_value_size, KvTxnOp *op,
				const char **why)
{
	json_t	   *jtext = json_object_get(jop, "value");
	json_t	   *jb64 = json_object_get(jop, "value_base64");
	json_t	   *jct = json_object_get(jop, "content_type");
	const char *ct = NULL;
	bool		oom = false;

	if ((jtext == NULL) == (jb64 == NULL))
	{
		*why = "a put needs one of \"value\" (a string) and \"value_base64\" (base64 of the bytes)";
		return KV_ERR_BAD_REQUEST;
	}
	if (!json_is_string(jtext ? jtext : jb64))
	{
		*why = "\"value\" and \"value_base64\" must be JSON strings";
		return KV_ERR_BAD_REQUEST;
	}
	if (jtext != NULL)
	{
		op->value_len = json_string_length(jtext);
		if ((int64_t) op->value_len <= max_value_size)
		{
			op->value = malloc(op->value_len + 1);
			oom = op->value == NULL;
			if (!oom)
				memcpy(op->value, json_string_value(jtext), op->value_len + 1);
		}
	}
	else
	{
		size_t		b64_len = json_string_length(jb64);

		/* decoded, base64 is 3/4 of its length less the padding */
		if ((int64_t) (b64_len / 4 * 3) - 2 > max_value_size)
			op->value_len = b64_len / 4 * 3;	/* too large: not decoded */
		else
		{
			op->value = base64_decode(json_string_value(jb64), b64_len,
									  &op->value_len, &oom);
			if (op->value == NULL && !oom)
			{
				*why = "\"value_base64\" is not base64 (RFC 4648, with padding, without line breaks)";
				return KV_ERR_BAD_REQUEST;
			}
		}
	}
	if (oom)
	{
		*why = "out of memory";
		return KV_ERR_INTERNAL;
	}
	if ((int64_t) op->value_len > max_value_size)
	{
		*why = "value is larger than kvserver.max_value_size";
		return KV_ERR_VALUE_TOO_LARGE;
	}

	if (jct != NULL && !json_is_null(jct))
	{
		if (!json_is_string(jct) ||
			!kv_content_type_valid(json_string_value(jct), json_string_length(jct)))
		{
			*why = "\"content_type\" must be type/subtype of token characters, optionally followed by ; and parameters: 1 to 255 bytes of printable ASCII";
			return KV_ERR_BAD_REQUEST;
		}
		ct = json_string_value(jct);
	}
	else if (jct == NULL && jtext != NULL)
		ct = KV_TEXT_CONTENT_TYPE;
	if (ct != NULL && (op->content_type = strdup(ct)) == NULL)
	{
		*why = "out of memory";
		return KV_ERR_INTERNAL;
	}
	return KV_ERR_NONE;
}

/* One element of "ops". */
static KvError
parse_txn_op(json_t *jop, size_t max_key_len, int64_t max_value_size,
			 KvTxnOp *op, const char **why)
{
	json_t	   *jkind;
	json_t	   *jkey;
	json_t	   *jversion;
	json_t	   *jttl;
	void	   *iter;
	KvError		err;

	if (!json_is_object(jop))
	{
		*why = "each operation must be a JSON object";
		return KV_ERR_BAD_REQUEST;
	}
	jkind = json_object_get(jop, "op");
	if (json_string_is(jkind, "check"))
		op->kind = KV_TXN_CHECK;
	else if (json_string_is(jkind, "get"))
		op->kind = KV_TXN_GET;
	else if (json_string_is(jkind, "put"))
		op->kind = KV_TXN_PUT;
	else if (json_string_is(jkind, "delete"))
		op->kind = KV_TXN_DELETE;
	else
	{
		*why = "\"op\" must be \"check\", \"get\", \"put\" or \"delete\"";
		return KV_ERR_BAD_REQUEST;
	}
	for (iter = json_object_iter(jop); iter != NULL;
		 iter = json_object_iter_next(jop, iter))
	{
		if (!txn_field_allowed(op->kind, json_object_iter_key(iter),
							   json_object_iter_key_len(iter)))
		{
			*why = txn_fields_message(op->kind);
			return KV_ERR_BAD_REQUEST;
		}
	}

	jkey = json_object_get(jop, "key");
	if (!json_is_string(jkey))
	{
		*why = "\"key\" must be a JSON string";
		return KV_ERR_BAD_REQUEST;
	}
	op->key_len = json_string_length(jkey);
	err = kv_check_key(json_string_value(jkey), op->key_len, max_key_len);
	if (err != KV_ERR_NONE)
	{
		*why = err == KV_ERR_KEY_TOO_LONG ? "key is longer than kvserver.max_key_length"
			: "key must be non-empty UTF-8 without NUL";
		return err;
	}
	if ((op->key = strdup(json_string_value(jkey))) == NULL)
	{
		*why = "out of memory";
		return KV_ERR_INTERNAL;
	}

	switch (op->kind)
	{
		case KV_TXN_CHECK:
			jversion = json_object_get(jop, "version");
			if (!json_is_integer(jversion) || json_integer_value(jversion) < 0)
			{
				*why = "a check needs \"version\": the key's version, or 0 for \"the key must not exist\"";
				return KV_ERR_BAD_REQUEST;
			}
			op->check_version = json_integer_value(jversion);
			break;
		case KV_TXN_PUT:
			jttl = json_object_get(jop, "ttl");
			if (jttl != NULL && !json_is_null(jttl))
			{
				if (!json_is_integer(jttl) || !ttl_valid(json_integer_value(jttl)))
				{
					*why = "\"ttl\" must be a whole number of seconds between 1 and 100 years";
					return KV_ERR_BAD_REQUEST;
				}
				op->ttl_seconds = json_integer_value(jttl);
			}
			return parse_txn_value(jop, max_value_size, op, why);
		case KV_TXN_GET:
		case KV_TXN_DELETE:
			break;
	}
	return KV_ERR_NONE;
}

typedef struct TxnKeyRef
{
	const char *key;
	size_t		len;
	int			op;
} TxnKeyRef;

static int
keyref_cmp(const void *a, const void *b)
{
	const TxnKeyRef *x = a;
	const TxnKeyRef *y = b;
	int			c = memcmp(x->key, y->key, x->len < y->len ? x->len : y->len);

	if (c != 0)
		return c;
	if (x->len != y->len)
		return x->len < y->len ? -1 : 1;
	return x->op < y->op ? -1 : x->op > y->op;
}

/*
 * The first write (put or delete) whose key an earlier write named: its
 * index, or -1; -2 when memory ran out.  Sorted, so a long transaction
 * costs n log n, not n^2.
 */
static int
repeated_write(const KvTxnOp *ops, int nops)
{
	TxnKeyRef  *refs = malloc(sizeof(TxnKeyRef) * (nops > 0 ? nops : 1));
	int			n = 0;
	int			found = -1;
	int			i;

	if (refs == NULL)
		return -2;
	for (i = 0; i < nops; i++)
	{
		if (ops[i].kind != KV_TXN_PUT && ops[i].kind != KV_TXN_DELETE)
			continue;
		refs[n].key = ops[i].key;
		refs[n].len = ops[i].key_len;
		refs[n].op = i;
		n++;
	}
	qsort(refs, n, sizeof(TxnKeyRef), keyref_cmp);
	for (i = 1; i < n; i++)
	{
		/* sorted by key, then index: refs[i] repeats a key named earlier */
		if (refs[i].len == refs[i - 1].len &&
			memcmp(refs[i].key, refs[i - 1].key, refs[i].len) == 0 &&
			(found < 0 || refs[i].op < found))
			found = refs[i].op;
	}
	free(refs);
	return found;
}

/*
 * POST /txn: {"ops": [{"op": "check", "key": K, "version": N},
 * {"op": "get", "key": K}, {"op": "put", "key": K, "value": TEXT |
 * "value_base64": B64, "content_type": CT, "ttl": N},
 * {"op": "delete", "key": K}, ...]}.
 *
 * Everything is checked here, before the database sees any of it: 1 to
 * max_ops operations, each with exactly the fields of its kind, every key
 * by the key rule, every value within max_value_size, and no key written
 * twice (which write would win is not worth a rule).  *ops is a malloc'd
 * array of *nops operations.  On an error, *bad_op is the index of the
 * operation at fault, or -1 when the body as a whole is.
 */
KvError
kv_parse_txn_body(const char *body, size_t len, size_t max_key_len,
				  int max_ops, int64_t max_value_size,
				  KvTxnOp **ops, int *nops, int *bad_op, const char **why)
{
	json_error_t jerr;
	json_t	   *root;
	json_t	   *jops;
	void	   *iter;
	KvTxnOp    *out = NULL;
	size_t		n = 0;
	size_t		i;
	int			repeated;
	KvError		err = KV_ERR_BAD_REQUEST;

	*ops = NULL;
	*nops = 0;
	*bad_op = -1;
	if (!json_depth_ok(body, len, KV_JSON_MAX_DEPTH))
	{
		*why = "JSON body is nested too deeply";
		return KV_ERR_BAD_REQUEST;
	}
	/* let "\u0000" through, so that the key check reports it as bad_key */
	root = json_loadb(body, len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &jerr);
	if (root == NULL)
	{
		*why = "body is not valid JSON";
		return KV_ERR_BAD_REQUEST;
	}
	if (!json_is_object(root))
	{
		*why = "body must be a JSON object: {\"ops\": [...]}";
		goto fail;
	}
	for (iter = json_object_iter(root); iter != NULL;
		 iter = json_object_iter_next(root, iter))
	{
		if (!name_is(json_object_iter_key(iter), json_object_iter_key_len(iter), "ops"))
		{
			*why = "unknown field: only \"ops\" is accepted";
			goto fail;
		}
	}
	jops = json_object_get(root, "ops");
	if (!json_is_array(jops))
	{
		*why = "\"ops\" must be a JSON array of operations";
		goto fail;
	}
	n = json_array_size(jops);
	if (n == 0 || n > (size_t) max_ops)
	{
		*why = "\"ops\" must hold 1 to kvserver.max_txn_ops operations";
		goto fail;
	}
	out = calloc(n, sizeof(KvTxnOp));
	if (out == NULL)
	{
		*why = "out of memory";
		err = KV_ERR_INTERNAL;
		goto fail;
	}
	for (i = 0; i < n; i++)
	{
		err = parse_txn_op(json_array_get(jops, i), max_key_len,
						   max_value_size, &out[i], why);
		if (err != KV_ERR_NONE)
		{
			*bad_op = (int) i;
			goto fail;
		}
	}
	repeated = repeated_write(out, (int) n);
	if (repeated != -1)
	{
		*bad_op = repeated >= 0 ? repeated : -1;
		*why = repeated >= 0
			? "a transaction may write (put or delete) each key once: an earlier operation already writes this key"
			: "out of memory";
		err = repeated >= 0 ? KV_ERR_BAD_REQUEST : KV_ERR_INTERNAL;
		goto fail;
	}
	json_decref(root);
	*ops = out;
	*nops = (int) n;
	return KV_ERR_NONE;

fail:
	if (err == KV_ERR_NONE)
		err = KV_ERR_BAD_REQUEST;
	kvq_txn_ops_free(out, (int) n);
	json_decref(root);
	return err;
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

static char *
dump_flags(json_t *obj, size_t flags, size_t *len)
{
	char	   *s = obj ? json_dumps(obj, JSON_COMPACT | JSON_ENSURE_ASCII | flags) : NULL;

	json_decref(obj);
	if (s == NULL)
		s = strdup("{\"error\":\"internal\",\"message\":\"out of memory\"}");
	if (s != NULL && len != NULL)
		*len = strlen(s);
	return s;
}

static char *
dump(json_t *obj, size_t *len)
{
	return dump_flags(obj, 0, len);
}

/*
 * {"error": code, "message": text}.  The message may quote client text that
 * is not UTF-8; jansson refuses such strings, so fall back to a fixed one.
 */
char *
kv_json_error(KvError error, const char *message, size_t *len)
{
	return kv_json_error_op(error, message, -1, len);
}

/* The same, with "op": the index of the operation of POST /txn at fault. */
char *
kv_json_error_op(KvError error, const char *message, int op, size_t *len)
{
	json_t	   *msg = json_string(message ? message : "");
	json_t	   *obj;

	if (msg == NULL)
		msg = json_string("(message not valid UTF-8)");
	obj = json_pack("{s:s, s:o}", "error", kv_error_code(error),
					"message", msg);
	if (obj != NULL && op >= 0 &&
		json_object_set_new(obj, "op", json_integer(op)) != 0)
	{
		json_decref(obj);
		obj = NULL;
	}
	return dump(obj, len);
}

char *
kv_json_keys(char **keys, int nkeys, const char *next, size_t *len)
{
	json_t	   *arr = json_array();
	int			i;

	for (i = 0; i < nkeys; i++)
		json_array_append_new(arr, json_string(keys[i]));
	return dump(json_pack("{s:o, s:o}", "keys", arr,
						  "next", next ? json_string(next) : json_null()),
				len);
}

/* {"key": ..., "version": N}, the answer to a write */
char *
kv_json_write_reply(const char *key, size_t key_len, int64_t version)
{
	return dump(json_pack("{s:s%, s:I}", "key", key, key_len,
						  "version", (json_int_t) version), NULL);
}

/* "expires_at" when the key has an expiry; false if it cannot be added. */
static bool
set_expires_at(json_t *obj, int64_t expires_at)
{
	char		ts[64];

	if (expires_at == 0)
		return true;
	return kv_format_timestamp(expires_at, ts, sizeof(ts)) &&
		json_object_set_new(obj, "expires_at", json_string(ts)) == 0;
}

/* One entry of the answer to POST /txn; NULL when out of memory. */
static json_t *
txn_result(const KvTxnOp *op)
{
	/*
	 * Not json_object(): the server binary defines a function of that name
	 * (the SQL json_object()), and the dynamic linker binds ours to it.
	 */
	json_t	   *obj = json_pack("{}");
	bool		ok = obj != NULL;
	const char *value;
	const char *ct;

	switch (op->kind)
	{
		case KV_TXN_CHECK:
		case KV_TXN_GET:
			ok = ok && json_object_set_new(obj, "found", json_boolean(op->found)) == 0;
			if (!op->found)
				break;
			ok = ok && json_object_set_new(obj, "version", json_integer(op->version)) == 0;
			if (op->kind == KV_TXN_CHECK)
				break;
			/* text as a string; anything else as base64 */
			value = op->reply_value ? op->reply_value : "";
			if (kv_utf8_valid(value, op->reply_value_len))
				ok = ok && json_object_set_new(obj, "value",
											   json_stringn(value, op->reply_value_len)) == 0;
			else
				ok = ok && json_object_set_new(obj, "value_base64",
											   base64_string(value, op->reply_value_len)) == 0;
			/* as in replies: one that breaks the rule counts as none */
			ct = op->reply_content_type;
			if (ct != NULL &&
				kv_content_type_valid(ct, strnlen(ct, KV_MAX_CONTENT_TYPE_LEN + 1)))
				ok = ok && json_object_set_new(obj, "content_type",
											   json_string(ct)) == 0;
			ok = ok && set_expires_at(obj, op->expires_at);
			break;
		case KV_TXN_PUT:
			ok = ok && json_object_set_new(obj, "version", json_integer(op->version)) == 0 &&
				json_object_set_new(obj, "created", json_boolean(op->found)) == 0 &&
				set_expires_at(obj, op->expires_at);
			break;
		case KV_TXN_DELETE:
			ok = ok && json_object_set_new(obj, "existed", json_boolean(op->found)) == 0;
			break;
	}
	if (!ok)
	{
		json_decref(obj);
		return NULL;
	}
	return obj;
}

/*
 * {"results": [...]}, one entry per operation of a transaction that
 * committed: check {"found", "version"}; get {"found", "version", "value"
 * (valid UTF-8) or "value_base64", "content_type", "expires_at"}; put
 * {"version", "created", "expires_at"}; delete {"existed"}.  NULL when it
 * cannot be built (out of memory, an expiry that cannot be formatted): the
 * caller answers 500, not a 200 with an error in it.
 */
char *
kv_json_txn_results(const KvTxnOp *ops, int nops, size_t *len)
{
	json_t	   *arr = json_array();
	json_t	   *root;
	char	   *s;
	int			i;

	for (i = 0; arr != NULL && i < nops; i++)
	{
		json_t	   *one = txn_result(&ops[i]);

		if (one == NULL || json_array_append_new(arr, one) != 0)
		{
			json_decref(arr);
			arr = NULL;
		}
	}
	if (arr == NULL || (root = json_pack("{s:o}", "results", arr)) == NULL)
		return NULL;
	s = json_dumps(root, JSON_COMPACT | JSON_ENSURE_ASCII);
	json_decref(root);
	if (s != NULL && len != NULL)
		*len = strlen(s);
	return s;
}

/*
 * {"status": "ok", "role": "primary", "database": ...}; a standby adds
 * "replay_lsn" ("0/3000148", as pg_last_wal_replay_lsn() shows it) and
 * "replay_lag_seconds" (null when unknown).  Reals get 12 significant
 * digits: microseconds for a lag under 10^6 s, without the binary noise of
 * jansson's default 17 ("0.0060000000000000001").
 */
char *
kv_json_health(const char *database, bool standby, uint64_t replay_lsn,
			   int64_t replay_lag_us)
{
	json_t	   *obj;
	char		lsn[32];

	obj = json_pack("{s:s, s:s, s:s}", "status", "ok",
					"role", standby ? "standby" : "primary",
					"database", database);
	if (obj != NULL && standby)
	{
		snprintf(lsn, sizeof(lsn), "%X/%X", (unsigned) (replay_lsn >> 32),
				 (unsigned) replay_lsn);
		if (json_object_set_new(obj, "replay_lsn", json_string(lsn)) != 0 ||
			json_object_set_new(obj, "replay_lag_seconds",
								replay_lag_us >= 0
								? json_real((double) replay_lag_us / 1e6)
								: json_null()) != 0)
		{
			json_decref(obj);
			obj = NULL;
		}
	}
	return dump_flags(obj, JSON_REAL_PRECISION(12), NULL);
}
