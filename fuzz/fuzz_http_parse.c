/*-------------------------------------------------------------------------
 *
 * fuzz_http_parse.c
 *	  libFuzzer target for src/http_parse.c: routing, key decoding, query
 *	  strings, JSON request bodies and JSON replies.
 *
 * Input layout (all parts optional):
 *
 *	  PATH '\n' QUERY '\n' BODY
 *
 * PATH  -> kv_route, then kv_decode_key on the key part (or, when the path
 *			is not /kv/..., on the whole path) with several max lengths,
 *			and on each '/'-separated segment.
 * QUERY -> kv_query_param (fixed names and one name taken from the input),
 *			kv_parse_list_query, kv_parse_ttl, kv_parse_watch_query (and
 *			kv_parse_duration on its wait), kv_parse_int64.  With no
 *			second '\n' the query is NULL, as civetweb gives it.  The
 *			query line (and the path) also go to kv_parse_etag as an
 *			If-Match / If-None-Match header value.
 * BODY  -> kv_parse_create_body and kv_parse_txn_body (POST /txn, under
 *			three sets of limits; what it accepts then goes through
 *			kv_json_txn_results with made-up results), each on a
 *			not NUL-terminated, exact-size buffer, on a thread with
 *			civetweb's stack size (100 KiB), as in the server, so nesting
 *			that gets past the depth limit into jansson's recursive parser
 *			overflows the stack here too.
 * Then kv_json_error, kv_json_keys,
 * kv_json_write_reply and kv_json_health on what was decoded (and on raw,
 * possibly invalid, bytes).
 *
 * Every C string handed to the code under test sits in its own malloc'd
 * buffer of exactly strlen + 1 bytes, and the body in one of exactly its
 * length, so AddressSanitizer sees any over-read.  Everything returned is
 * freed, so LeakSanitizer sees any leak.
 *
 * Besides the sanitizers, each function is checked against a small, plainly
 * written reference implementation in this file (differential fuzzing), and
 * against invariants: decoded keys are non-empty, NUL-free, strict UTF-8
 * and within the max length; limit is in 1..KV_LIST_MAX_LIMIT; ttl is 0 or
 * in 1..KV_MAX_TTL_SECONDS; a transaction's operations keep every rule and
 * match the JSON, base64 against a reference decoder; JSON replies are
 * ASCII and parse back to what went in.  A failed check prints what differed and aborts, which libFuzzer
 * records as a crash-* file.
 *
 *-------------------------------------------------------------------------
 */
#include "http_parse.h"

#include <inttypes.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_KEYS 16

/* libcivetweb 1.15 (Debian 12) starts its threads with 0x19000 bytes */
#ifndef CIVETWEB_STACK_SIZE
#define CIVETWEB_STACK_SIZE 102400
#endif

/* ----------------------------------------------------------------------
 * helpers
 * ---------------------------------------------------------------------- */

static void
dump_bytes(const char *what, const char *s, size_t n)
{
	size_t		i;

	fprintf(stderr, "  %s (%zu bytes): ", what, n);
	if (s == NULL)
	{
		fprintf(stderr, "NULL\n");
		return;
	}
	for (i = 0; i < n; i++)
		fprintf(stderr, "%02x", (unsigned char) s[i]);
	fprintf(stderr, "\n");
}

#define CHECK(cond, ...) \
	do { \
		if (!(cond)) \
		{ \
			fprintf(stderr, "\nfuzz_http_parse: CHECK FAILED at %s:%d: %s\n  ", \
					__FILE__, __LINE__, #cond); \
			fprintf(stderr, __VA_ARGS__); \
			fprintf(stderr, "\n"); \
			abort(); \
		} \
	} while (0)

static void *
xmalloc(size_t n)
{
	void	   *p = malloc(n ? n : 1);

	if (p == NULL)
		abort();
	return p;
}

/* An exact-size NUL-terminated copy of p[0..n), cut at the first NUL. */
static char *
cstr(const uint8_t *p, size_t n)
{
	const uint8_t *z = memchr(p, 0, n);
	char	   *s;

	if (z != NULL)
		n = (size_t) (z - p);
	s = xmalloc(n + 1);
	memcpy(s, p, n);
	s[n] = '\0';
	return s;
}

static char *
xstrdup(const char *s)
{
	return cstr((const uint8_t *) s, strlen(s) + 1);
}

static bool
streq_opt(const char *a, const char *b)
{
	if (a == NULL || b == NULL)
		return a == b;
	return strcmp(a, b) == 0;
}

/* ----------------------------------------------------------------------
 * reference implementations
 * ---------------------------------------------------------------------- */

/*
 * Strict UTF-8 after the Unicode Standard's table 3-7 of well-formed byte
 * sequences: written per lead byte, unlike the code under test.
 */
static bool
ref_utf8_valid(const unsigned char *s, size_t n)
{
	size_t		i = 0;

	while (i < n)
	{
		unsigned char b = s[i];
		unsigned char lo = 0x80,
					hi = 0xBF;
		size_t		need;
		size_t		k;

		if (b <= 0x7F)
		{
			i++;
			continue;
		}
		else if (b >= 0xC2 && b <= 0xDF)
			need = 1;
		else if (b == 0xE0)
			need = 2, lo = 0xA0;
		else if ((b >= 0xE1 && b <= 0xEC) || b == 0xEE || b == 0xEF)
			need = 2;
		else if (b == 0xED)
			need = 2, hi = 0x9F;
		else if (b == 0xF0)
			need = 3, lo = 0x90;
		else if (b >= 0xF1 && b <= 0xF3)
			need = 3;
		else if (b == 0xF4)
			need = 3, hi = 0x8F;
		else
			return false;
		if (n - i <= need)
			return false;
		if (s[i + 1] < lo || s[i + 1] > hi)
			return false;
		for (k = 2; k <= need; k++)
			if (s[i + k] < 0x80 || s[i + k] > 0xBF)
				return false;
		i += need + 1;
	}
	return true;
}

static int
ref_hex(unsigned char c)
{
	static const char digits[] = "0123456789abcdef";
	const char *d;

	if (c >= 'A' && c <= 'F')
		c = (unsigned char) (c - 'A' + 'a');
	if (c == '\0')
		return -1;
	d = strchr(digits, c);
	return d ? (int) (d - digits) : -1;
}

/* Percent-decode; NULL on a bad escape. */
static char *
ref_pct_decode(const char *s, size_t n, bool plus, size_t *olen)
{
	char	   *o = xmalloc(n + 1);
	size_t		i = 0,
				j = 0;

	while (i < n)
	{
		unsigned char c = (unsigned char) s[i];

		if (c == '%')
		{
			int			h,
						l;

			if (i + 2 >= n)
				goto bad;
			h = ref_hex((unsigned char) s[i + 1]);
			l = ref_hex((unsigned char) s[i + 2]);
			if (h < 0 || l < 0)
				goto bad;
			o[j++] = (char) ((h << 4) | l);
			i += 3;
		}
		else
		{
			o[j++] = (plus && c == '+') ? ' ' : (char) c;
			i++;
		}
	}
	o[j] = '\0';
	*olen = j;
	return o;
bad:
	free(o);
	return NULL;
}

static KvError
ref_check_key(const char *k, size_t n, size_t max)
{
	if (n == 0 || memchr(k, 0, n) != NULL ||
		!ref_utf8_valid((const unsigned char *) k, n))
		return KV_ERR_BAD_KEY;
	return n > max ? KV_ERR_KEY_TOO_LONG : KV_ERR_NONE;
}

/* Whole decimal int64: optional '-', 1+ digits, under 32 bytes, no NUL. */
static bool
ref_parse_int64(const char *s, size_t n, int64_t *out)
{
	size_t		i = 0;
	bool		neg = false;
	int64_t		v = 0;			/* accumulated negatively: reaches INT64_MIN */

	if (n == 0 || n >= 32)
		return false;
	if (s[0] == '-')
		neg = true, i = 1;
	if (i == n)
		return false;
	for (; i < n; i++)
	{
		int			d;

		if (s[i] < '0' || s[i] > '9')
			return false;
		d = s[i] - '0';
		if (v < (INT64_MIN + d) / 10)
			return false;
		v = v * 10 - d;
	}
	if (!neg)
	{
		if (v == INT64_MIN)
			return false;
		v = -v;
	}
	*out = v;
	return true;
}

/* Query parameter by splitting on '&' with strsep(). */
static KvError
ref_query_param(const char *query, const char *name, char **value)
{
	char	   *copy = xstrdup(query);
	char	   *rest = copy;
	char	   *part;
	int			found = 0;
	KvError		err = KV_ERR_NONE;

	*value = NULL;
	while ((part = strsep(&rest, "&")) != NULL)
	{
		char	   *eq = strchr(part, '=');
		size_t		vlen;

		if (eq != NULL)
			*eq = '\0';
		if (strcmp(part, name) != 0)
			continue;
		if (++found > 1)
		{
			err = KV_ERR_BAD_REQUEST;
			break;
		}
		if (eq == NULL)
		{
			*value = xstrdup("");
			continue;
		}
		*value = ref_pct_decode(eq + 1, strlen(eq + 1), true, &vlen);
		if (*value == NULL || strlen(*value) != vlen)
		{
			err = KV_ERR_BAD_REQUEST;
			break;
		}
	}
	free(copy);
	if (err != KV_ERR_NONE)
	{
		free(*value);
		*value = NULL;
	}
	return err;
}

/* ----------------------------------------------------------------------
 * the targets
 * ---------------------------------------------------------------------- */

typedef struct Keys
{
	char	   *k[MAX_KEYS];	/* owned, valid UTF-8, NUL-free */
	int			n;
} Keys;

static void
keys_add(Keys *keys, const char *s)
{
	if (s != NULL && keys->n < MAX_KEYS)
		keys->k[keys->n++] = xstrdup(s);
}

static const size_t key_max_lens[] = {1, 2, 7, 64, 1024, 65536};

static void
fuzz_utf8(const uint8_t *data, size_t size)
{
	char	   *buf = xmalloc(size);
	bool		got;
	bool		want;
	json_t	   *js;

	memcpy(buf, data, size);
	got = kv_utf8_valid(buf, size);
	want = ref_utf8_valid(data, size);
	/* jansson's own check must agree: kv_json_error relies on it */
	js = json_stringn(buf, size);
	CHECK(got == want, "kv_utf8_valid=%d, reference=%d", got, want);
	CHECK(got == (js != NULL), "kv_utf8_valid=%d, jansson accepts=%d",
		  got, js != NULL);
	json_decref(js);
	free(buf);
}

static void
fuzz_route(const char *path, const char **key_raw_out)
{
	const char *key_raw = (const char *) 0x1;
	KvRoute		r = kv_route(path, &key_raw);
	KvRoute		want = KV_ROUTE_NOT_FOUND;

	if (strcmp(path, "/kv") == 0 || strcmp(path, "/kv/") == 0)
		want = KV_ROUTE_COLLECTION;
	else if (strncmp(path, "/kv/", 4) == 0)
		want = KV_ROUTE_KEY;
	else if (strcmp(path, "/health") == 0)
		want = KV_ROUTE_HEALTH;
	else if (strcmp(path, "/metrics") == 0)
		want = KV_ROUTE_METRICS;
	else if (strcmp(path, "/") == 0)
		want = KV_ROUTE_DASHBOARD;
	else if (strcmp(path, "/txn") == 0)
		want = KV_ROUTE_TXN;
	CHECK(r == want, "kv_route(\"%s\") = %d, want %d", path, r, want);
	if (r == KV_ROUTE_KEY)
		CHECK(key_raw == path + 4 && *key_raw != '\0',
			  "KEY route with key_raw %p, path %p", (void *) key_raw,
			  (void *) path);
	else
		CHECK(key_raw == NULL, "non-KEY route %d left key_raw set", r);
	*key_raw_out = key_raw;
}

/* Returns the decoded key for the largest max length, or NULL. */
static char *
fuzz_decode_key(const char *raw)
{
	size_t		want_len = 0;
	char	   *want = ref_pct_decode(raw, strlen(raw), false, &want_len);
	char	   *result = NULL;
	size_t		i;

	for (i = 0; i < sizeof(key_max_lens) / sizeof(key_max_lens[0]); i++)
	{
		size_t		max = key_max_lens[i];
		char	   *key = (char *) 0x1;
		size_t		key_len = (size_t) -1;
		KvError		err = kv_decode_key(raw, max, &key, &key_len);
		KvError		want_err = want ? ref_check_key(want, want_len, max)
			: KV_ERR_BAD_KEY;

		CHECK(err == want_err, "kv_decode_key(max=%zu) = %s, reference %s",
			  max, kv_error_code(err), kv_error_code(want_err));
		if (err != KV_ERR_NONE)
		{
			CHECK(key == NULL, "kv_decode_key failed (%s) but *key != NULL",
				  kv_error_code(err));
			continue;
		}
		CHECK(key != NULL, "kv_decode_key succeeded with *key == NULL");
		CHECK(key_len >= 1 && key_len <= max,
			  "decoded key length %zu outside 1..%zu", key_len, max);
		CHECK(key[key_len] == '\0' && strlen(key) == key_len,
			  "decoded key not NUL-terminated at key_len %zu (strlen %zu)",
			  key_len, strlen(key));
		CHECK(kv_utf8_valid(key, key_len), "decoded key not valid UTF-8");
		CHECK(key_len == want_len && memcmp(key, want, key_len) == 0,
			  "decoded key differs from reference decoding");
		if (result == NULL)
			result = key;
		else
		{
			CHECK(strcmp(result, key) == 0,
				  "decoded key depends on max length");
			free(key);
		}
	}
	/* the largest max length is last, so result is the longest success */
	free(want);
	return result;
}

static void
fuzz_int64(const uint8_t *p, size_t n)
{
	char	   *buf;
	int64_t		got = 0x5A5A5A5A;
	int64_t		want = 0;
	bool		ok;
	bool		want_ok;

	/* callers pass strlen-derived lengths, so never a NUL inside */
	if (memchr(p, 0, n) != NULL)
		n = (size_t) ((const uint8_t *) memchr(p, 0, n) - p);
	buf = xmalloc(n);			/* exactly n bytes, no terminator */
	memcpy(buf, p, n);
	ok = kv_parse_int64(buf, n, &got);
	want_ok = ref_parse_int64(buf, n, &want);
	CHECK(ok == want_ok, "kv_parse_int64 ok=%d, reference ok=%d", ok, want_ok);
	if (ok)
		CHECK(got == want, "kv_parse_int64 = %" PRId64 ", reference %" PRId64,
			  got, want);
	free(buf);
}

/*
 * If-Match / If-None-Match: optional spaces/tabs around; "*"; or an entity
 * tag ["W/"] '"' decimal version >= 1 '"'.  A weak tag for a strong
 * comparison matches nothing: INT64_MAX.
 */
static KvError
ref_parse_etag(const char *h, bool strong, int64_t *version)
{
	size_t		n = strlen(h);
	size_t		a = strspn(h, " \t");
	bool		weak = false;
	int64_t		v;

	while (n > a && (h[n - 1] == ' ' || h[n - 1] == '\t'))
		n--;
	h += a;
	n -= a;
	if (n == 1 && h[0] == '*')
	{
		*version = KV_MATCH_ANY;
		return KV_ERR_NONE;
	}
	if (n >= 2 && strncmp(h, "W/", 2) == 0)
	{
		weak = true;
		h += 2;
		n -= 2;
	}
	if (n < 3 || h[0] != '"' || h[n - 1] != '"' ||
		!ref_parse_int64(h + 1, n - 2, &v) || v < 1)
		return KV_ERR_BAD_REQUEST;
	*version = (weak && strong) ? INT64_MAX : v;
	return KV_ERR_NONE;
}

static void
fuzz_etag(const char *header)
{
	int			strong;

	for (strong = 0; strong <= 1; strong++)
	{
		int64_t		got = -777;
		int64_t		want = -777;
		KvError		err = kv_parse_etag(header, strong, &got);
		KvError		want_err = ref_parse_etag(header, strong, &want);

		CHECK(err == want_err, "kv_parse_etag(strong=%d) = %s, reference %s",
			  strong, kv_error_code(err), kv_error_code(want_err));
		if (err == KV_ERR_NONE)
		{
			CHECK(got == KV_MATCH_ANY || got >= 1,
				  "kv_parse_etag: version %" PRId64 " is neither * nor >= 1", got);
			CHECK(got == want, "kv_parse_etag(strong=%d) = %" PRId64
				  ", reference %" PRId64, strong, got, want);
		}
	}
}

static void
fuzz_query_param(const char *query, const char *name, Keys *keys)
{
	char	   *got = (char *) 0x1;
	char	   *want = NULL;
	KvError		err = kv_query_param(query, name, &got);
	KvError		want_err = ref_query_param(query, name, &want);

	CHECK(err == want_err, "kv_query_param(\"%s\") = %s, reference %s", name,
		  kv_error_code(err), kv_error_code(want_err));
	CHECK(err == KV_ERR_NONE || err == KV_ERR_BAD_REQUEST,
		  "kv_query_param returned %s", kv_error_code(err));
	if (err != KV_ERR_NONE)
		CHECK(got == NULL, "kv_query_param failed but *value != NULL");
	else
	{
		CHECK(streq_opt(got, want), "kv_query_param(\"%s\") = \"%s\", reference \"%s\"",
			  name, got ? got : "(null)", want ? want : "(null)");
		if (got != NULL && kv_utf8_valid(got, strlen(got)))
			keys_add(keys, got);
	}
	free(got);
	free(want);
}

static void
fuzz_list_query(const char *query, Keys *keys)
{
	char	   *prefix = (char *) 0x1;
	char	   *after = (char *) 0x1;
	int			limit = -12345;
	const char *why = NULL;
	KvError		err = kv_parse_list_query(query, &prefix, &after, &limit, &why);

	/* reference */
	const char *q = query ? query : "";
	char	   *wp = NULL,
			   *wa = NULL,
			   *wl = NULL;
	KvError		want_err = KV_ERR_NONE;
	int			want_limit = KV_LIST_DEFAULT_LIMIT;

	if (ref_query_param(q, "prefix", &wp) != KV_ERR_NONE ||
		ref_query_param(q, "after", &wa) != KV_ERR_NONE ||
		ref_query_param(q, "limit", &wl) != KV_ERR_NONE)
		want_err = KV_ERR_BAD_REQUEST;
	else if ((wp && !ref_utf8_valid((unsigned char *) wp, strlen(wp))) ||
			 (wa && !ref_utf8_valid((unsigned char *) wa, strlen(wa))))
		want_err = KV_ERR_BAD_REQUEST;
	else if (wl != NULL)
	{
		int64_t		v;

		if (!ref_parse_int64(wl, strlen(wl), &v) || v < 1)
			want_err = KV_ERR_BAD_REQUEST;
		else
			want_limit = v > KV_LIST_MAX_LIMIT ? KV_LIST_MAX_LIMIT : (int) v;
	}

	CHECK(err == want_err, "kv_parse_list_query = %s, reference %s",
		  kv_error_code(err), kv_error_code(want_err));
	if (err != KV_ERR_NONE)
	{
		CHECK(prefix == NULL && after == NULL,
			  "kv_parse_list_query failed but left prefix/after set");
		CHECK(why != NULL, "kv_parse_list_query failed without a reason");
	}
	else
	{
		CHECK(prefix != NULL, "kv_parse_list_query: prefix NULL on success");
		CHECK(limit >= 1 && limit <= KV_LIST_MAX_LIMIT,
			  "kv_parse_list_query: limit %d outside 1..%d", limit,
			  KV_LIST_MAX_LIMIT);
		CHECK(limit == want_limit, "limit %d, reference %d", limit, want_limit);
		CHECK(strcmp(prefix, wp ? wp : "") == 0, "prefix differs from reference");
		CHECK(streq_opt(after, wa), "after differs from reference");
		CHECK(kv_utf8_valid(prefix, strlen(prefix)), "prefix not UTF-8");
		CHECK(after == NULL || kv_utf8_valid(after, strlen(after)),
			  "after not UTF-8");
		keys_add(keys, prefix);
		keys_add(keys, after);
		free(prefix);
		free(after);
	}
	free(wp);
	free(wa);
	free(wl);
}

/*
 * ?wait= and &index=: never a crash; a success leaves a duration from -1
 * (absent) to a year, and a failure says why; the wait value alone must
 * parse the same way through kv_parse_duration().
 */
static void
fuzz_watch_query(const char *query)
{
	int64_t		wait_ms = -777;
	int64_t		key_wait_ms = -777;
	uint64_t	index = 777;
	bool		has_index = true;
	const char *why = NULL;
	KvError		err = kv_parse_watch_query(query, &wait_ms, &index, &has_index,
										   &why);
	KvError		key_err = kv_parse_watch_query(query, &key_wait_ms, NULL, NULL,
											   &why);

	if (err != KV_ERR_NONE)
		CHECK(why != NULL && wait_ms == -1,
			  "kv_parse_watch_query failed without a reason or left a wait");
	else
	{
		CHECK(wait_ms >= -1 && wait_ms <= INT64_C(366) * 24 * 3600 * 1000,
			  "kv_parse_watch_query: wait %" PRId64 " ms out of range", wait_ms);
		CHECK(has_index || index == 0, "no index, yet index %" PRIu64, index);
		CHECK(key_err == KV_ERR_NONE && key_wait_ms == wait_ms,
			  "without index the wait parses differently");
	}
	if (query != NULL)
	{
		char	   *s = NULL;
		int64_t		ms = -777;

		if (ref_query_param(query, "wait", &s) == KV_ERR_NONE && s != NULL &&
			kv_parse_duration(s, &ms))
			CHECK(ms >= 0, "kv_parse_duration gave %" PRId64, ms);
		free(s);
	}
}

static void
fuzz_ttl(const char *query)
{
	int64_t		ttl = -777;
	const char *why = NULL;
	KvError		err = kv_parse_ttl(query, &ttl, &why);
	KvError		want_err = KV_ERR_NONE;
	int64_t		want_ttl = 0;

	if (query != NULL)
	{
		char	   *s = NULL;

		if (ref_query_param(query, "ttl", &s) != KV_ERR_NONE)
			want_err = KV_ERR_BAD_REQUEST;
		else if (s != NULL &&
				 (!ref_parse_int64(s, strlen(s), &want_ttl) ||
				  want_ttl < 1 || want_ttl > KV_MAX_TTL_SECONDS))
			want_err = KV_ERR_BAD_REQUEST;
		free(s);
	}
	CHECK(err == want_err, "kv_parse_ttl = %s, reference %s",
		  kv_error_code(err), kv_error_code(want_err));
	if (err != KV_ERR_NONE)
		CHECK(why != NULL, "kv_parse_ttl failed without a reason");
	else
	{
		CHECK(ttl == 0 || (ttl >= 1 && ttl <= KV_MAX_TTL_SECONDS),
			  "ttl %" PRId64 " out of range", ttl);
		CHECK(ttl == want_ttl, "ttl %" PRId64 ", reference %" PRId64,
			  ttl, want_ttl);
	}
}

static const size_t body_max_lens[] = {1, 8, 1024};

static void
fuzz_create_body(const uint8_t *data, size_t size, Keys *keys,
				 const char **why_out)
{
	char	   *body = xmalloc(size);	/* exact size, not NUL-terminated */
	KvError		first_err = KV_ERR_NONE;
	size_t		first_len = 0;
	size_t		i;

	memcpy(body, data, size);
	for (i = 0; i < sizeof(body_max_lens) / sizeof(body_max_lens[0]); i++)
	{
		size_t		max = body_max_lens[i];
		char	   *key = (char *) 0x1;
		char	   *value = (char *) 0x1;
		size_t		key_len = (size_t) -1;
		size_t		value_len = (size_t) -1;
		int64_t		ttl = -777;
		const char *why = NULL;
		KvError		err;

		err = kv_parse_create_body(body, size, max, &key, &key_len,
								   &value, &value_len, &ttl, &why);
		if (err != KV_ERR_NONE)
		{
			CHECK(err == KV_ERR_BAD_REQUEST || err == KV_ERR_BAD_KEY ||
				  err == KV_ERR_KEY_TOO_LONG,
				  "kv_parse_create_body returned %s", kv_error_code(err));
			CHECK(key == NULL && value == NULL,
				  "kv_parse_create_body failed (%s) but left key/value set",
				  kv_error_code(err));
			CHECK(why != NULL, "kv_parse_create_body failed without a reason");
			*why_out = why;
		}
		else
		{
			json_t	   *root;
			json_t	   *jk;
			json_t	   *jv;

			CHECK(key != NULL && value != NULL, "success with NULL key/value");
			CHECK(key_len >= 1 && key_len <= max,
				  "body key length %zu outside 1..%zu", key_len, max);
			CHECK(strlen(key) == key_len, "body key has a NUL (strlen %zu, len %zu)",
				  strlen(key), key_len);
			CHECK(kv_utf8_valid(key, key_len), "body key not UTF-8");
			CHECK(value[value_len] == '\0', "value not NUL-terminated");
			CHECK(kv_utf8_valid(value, value_len), "value not UTF-8");
			CHECK(ttl == 0 || (ttl >= 1 && ttl <= KV_MAX_TTL_SECONDS),
				  "body ttl %" PRId64 " out of range", ttl);

			/*
			 * What came out is what jansson saw.  JSON_ALLOW_NUL: "\u0000"
			 * may reach the key check (bad_key) and may be in a value.
			 */
			root = json_loadb(body, size,
							  JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, NULL);
			CHECK(root != NULL, "accepted a body jansson rejects");
			jk = json_object_get(root, "key");
			jv = json_object_get(root, "value");
			CHECK(jk && json_string_length(jk) == key_len &&
				  memcmp(json_string_value(jk), key, key_len) == 0,
				  "key differs from the JSON");
			CHECK(jv && json_string_length(jv) == value_len &&
				  memcmp(json_string_value(jv), value, value_len) == 0,
				  "value differs from the JSON");
			CHECK(json_object_size(root) <= 3, "accepted extra fields");
			json_decref(root);

			keys_add(keys, key);
			if (strlen(value) == value_len)
				keys_add(keys, value);
			free(key);
			free(value);
		}

		/* only the length limit may depend on max */
		if (i == 0)
		{
			first_err = err;
			first_len = err == KV_ERR_NONE ? key_len : 0;
		}
		else if (first_err == KV_ERR_NONE)
			CHECK(err == KV_ERR_NONE && key_len == first_len,
				  "accepted at max %zu, %s at max %zu", body_max_lens[0],
				  kv_error_code(err), max);
		else if (first_err != KV_ERR_KEY_TOO_LONG)
			CHECK(err == first_err, "%s at max %zu, %s at max %zu",
				  kv_error_code(first_err), body_max_lens[0],
				  kv_error_code(err), max);
		else
			CHECK(err == KV_ERR_NONE || err == KV_ERR_KEY_TOO_LONG,
				  "key_too_long at max %zu, %s at max %zu", body_max_lens[0],
				  kv_error_code(err), max);
	}
	free(body);
}

/*
 * Strict base64 (RFC 4648, padded), written plainly: the reference for the
 * OpenSSL-backed decoder behind "value_base64".  Returns the decoded length,
 * or -1 when 's' is not base64.
 */
static long
ref_base64_decode(const char *s, size_t n, unsigned char *out)
{
	static const char alpha[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	size_t		i;
	long		o = 0;

	if (n % 4 != 0)
		return -1;
	for (i = 0; i < n; i += 4)
	{
		int			v[4];
		int			j;
		int			pad = 0;

		for (j = 0; j < 4; j++)
		{
			const char *p = s[i + j] ? strchr(alpha, s[i + j]) : NULL;

			if (s[i + j] == '=' && i + 4 == n && j >= 2)
			{
				v[j] = 0;
				pad++;
				continue;
			}
			if (p == NULL || pad > 0)
				return -1;
			v[j] = (int) (p - alpha);
		}
		out[o++] = (unsigned char) ((v[0] << 2) | (v[1] >> 4));
		if (pad < 2)
			out[o++] = (unsigned char) (((v[1] & 15) << 4) | (v[2] >> 2));
		if (pad < 1)
			out[o++] = (unsigned char) (((v[2] & 3) << 6) | v[3]);
	}
	return o;
}

/* (max key length, max operations, max value size) */
static const struct
{
	size_t		key;
	int			ops;
	int64_t		value;
}			txn_limits[] = {{1024, 128, 1024 * 1024}, {4, 3, 2}, {64, 1, 0}};

static bool
same_key(const KvTxnOp *a, const KvTxnOp *b)
{
	return a->key_len == b->key_len && memcmp(a->key, b->key, a->key_len) == 0;
}

static bool all_ascii_printable(const char *s, size_t n);

/* Check kv_json_txn_results on the operations, with made-up results. */
static void
fuzz_txn_results(KvTxnOp *ops, int nops)
{
	json_t	   *root;
	json_t	   *arr;
	char	   *out;
	int			i;

	for (i = 0; i < nops; i++)
	{
		KvTxnOp    *op = &ops[i];

		op->found = (i % 3) != 2;
		op->version = (int64_t) i * 1000003 + 1;
		op->expires_at = (i % 2) ? (int64_t) i * 86400000000 : 0;
		if (op->kind == KV_TXN_GET && op->found)
		{
			/* a put's value (maybe not UTF-8), else the key */
			const char *src = op->value ? op->value : op->key;
			size_t		len = op->value ? op->value_len : op->key_len;

			for (int j = 0; j < nops; j++)
				if (ops[j].kind == KV_TXN_PUT && same_key(&ops[j], op))
				{
					src = ops[j].value;
					len = ops[j].value_len;
				}
			op->reply_value = xmalloc(len + 1);
			memcpy(op->reply_value, src, len);
			op->reply_value[len] = '\0';
			op->reply_value_len = len;
			op->reply_content_type = (i % 2) ? xstrdup("text/plain") : NULL;
		}
	}
	out = kv_json_txn_results(ops, nops, NULL);
	/* the expiries made up here can all be formatted */
	CHECK(out != NULL, "kv_json_txn_results returned NULL");
	CHECK(all_ascii_printable(out, strlen(out)), "kv_json_txn_results output not ASCII");
	root = json_loads(out, JSON_ALLOW_NUL, NULL);
	CHECK(root != NULL, "kv_json_txn_results output not JSON: %s", out);
	arr = json_object_get(root, "results");
	CHECK(json_object_size(root) == 1 && json_is_array(arr) &&
		  (int) json_array_size(arr) == nops,
		  "kv_json_txn_results: not {results: [%d]}: %s", nops, out);
	for (i = 0; i < nops; i++)
	{
		const KvTxnOp *op = &ops[i];
		json_t	   *e = json_array_get(arr, i);
		json_t	   *v;

		switch (op->kind)
		{
			case KV_TXN_CHECK:
			case KV_TXN_GET:
				CHECK(json_is_boolean(json_object_get(e, "found")) &&
					  json_is_true(json_object_get(e, "found")) == op->found,
					  "result %d: found differs", i);
				if (!op->found)
				{
					CHECK(json_object_size(e) == 1, "result %d: more than found", i);
					break;
				}
				CHECK(json_integer_value(json_object_get(e, "version")) == op->version,
					  "result %d: version differs", i);
				if (op->kind == KV_TXN_CHECK)
					break;
				if ((v = json_object_get(e, "value")) != NULL)
					CHECK(kv_utf8_valid(op->reply_value, op->reply_value_len) &&
						  json_string_length(v) == op->reply_value_len &&
						  memcmp(json_string_value(v), op->reply_value, op->reply_value_len) == 0,
						  "result %d: value differs", i);
				else
				{
					unsigned char *dec;
					long		n;

					v = json_object_get(e, "value_base64");
					CHECK(json_is_string(v) && !kv_utf8_valid(op->reply_value, op->reply_value_len),
						  "result %d: neither value nor value_base64 (or base64 for UTF-8)", i);
					dec = xmalloc(json_string_length(v) + 1);
					n = ref_base64_decode(json_string_value(v), json_string_length(v), dec);
					CHECK(n == (long) op->reply_value_len &&
						  memcmp(dec, op->reply_value, n) == 0,
						  "result %d: value_base64 does not decode to the value", i);
					free(dec);
				}
				CHECK((op->reply_content_type != NULL) ==
					  (json_object_get(e, "content_type") != NULL),
					  "result %d: content_type", i);
				CHECK((op->expires_at != 0) == (json_object_get(e, "expires_at") != NULL),
					  "result %d: expires_at", i);
				break;
			case KV_TXN_PUT:
				CHECK(json_integer_value(json_object_get(e, "version")) == op->version &&
					  json_is_true(json_object_get(e, "created")) == op->found &&
					  (op->expires_at != 0) == (json_object_get(e, "expires_at") != NULL),
					  "result %d: put differs", i);
				break;
			case KV_TXN_DELETE:
				CHECK(json_object_size(e) == 1 &&
					  json_is_true(json_object_get(e, "existed")) == op->found,
					  "result %d: delete differs", i);
				break;
		}
	}
	json_decref(root);
	free(out);
}

/*
 * POST /txn bodies: kv_parse_txn_body under several limits.  What it
 * accepts must meet every rule (operation count, key rule, value sizes,
 * content types, TTLs, no key written twice) and agree with what jansson
 * sees, base64 included (against ref_base64_decode); what it refuses must
 * come back clean, with a reason and an index in range.
 */
static void
fuzz_txn_body(const uint8_t *data, size_t size)
{
	char	   *body = xmalloc(size);	/* exact size, not NUL-terminated */
	size_t		l;

	memcpy(body, data, size);
	for (l = 0; l < sizeof(txn_limits) / sizeof(txn_limits[0]); l++)
	{
		KvTxnOp    *ops = (KvTxnOp *) 0x1;
		int			nops = -7;
		int			bad_op = -7;
		const char *why = NULL;
		KvError		err;
		json_t	   *root;
		json_t	   *jops;
		int			i;
		int			j;

		err = kv_parse_txn_body(body, size, txn_limits[l].key, txn_limits[l].ops,
								txn_limits[l].value, &ops, &nops, &bad_op, &why);
		if (err != KV_ERR_NONE)
		{
			CHECK(err == KV_ERR_BAD_REQUEST || err == KV_ERR_BAD_KEY ||
				  err == KV_ERR_KEY_TOO_LONG || err == KV_ERR_VALUE_TOO_LARGE,
				  "kv_parse_txn_body returned %s", kv_error_code(err));
			CHECK(ops == NULL && nops == 0, "kv_parse_txn_body failed but left operations");
			CHECK(why != NULL, "kv_parse_txn_body failed without a reason");
			CHECK(bad_op >= -1 && bad_op < txn_limits[l].ops,
				  "bad_op %d outside -1..%d", bad_op, txn_limits[l].ops - 1);
			if (l == 0)
			{
				char	   *e = kv_json_error_op(err, why, bad_op, NULL);
				json_t	   *je = json_loads(e, 0, NULL);

				CHECK(je != NULL && json_object_size(je) == (bad_op >= 0 ? 3 : 2) &&
					  (bad_op < 0 || json_integer_value(json_object_get(je, "op")) == bad_op),
					  "kv_json_error_op: %s", e);
				json_decref(je);
				free(e);
			}
			continue;
		}
		CHECK(ops != NULL && nops >= 1 && nops <= txn_limits[l].ops,
			  "accepted %d operations, limit %d", nops, txn_limits[l].ops);
		root = json_loadb(body, size, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, NULL);
		CHECK(root != NULL, "accepted a body jansson rejects");
		jops = json_object_get(root, "ops");
		CHECK(json_object_size(root) == 1 && (int) json_array_size(jops) == nops,
			  "operations differ from the JSON");
		for (i = 0; i < nops; i++)
		{
			const KvTxnOp *op = &ops[i];
			json_t	   *jop = json_array_get(jops, i);
			json_t	   *jb64 = json_object_get(jop, "value_base64");
			json_t	   *jtext = json_object_get(jop, "value");

			CHECK(op->kind >= KV_TXN_CHECK && op->kind <= KV_TXN_DELETE, "kind %d", op->kind);
			CHECK(op->key != NULL && strlen(op->key) == op->key_len &&
				  kv_check_key(op->key, op->key_len, txn_limits[l].key) == KV_ERR_NONE,
				  "operation %d: key breaks the key rule", i);
			CHECK(json_string_length(json_object_get(jop, "key")) == op->key_len &&
				  memcmp(json_string_value(json_object_get(jop, "key")), op->key, op->key_len) == 0,
				  "operation %d: key differs from the JSON", i);
			if (op->kind == KV_TXN_CHECK)
				CHECK(op->check_version >= 0 &&
					  op->check_version == json_integer_value(json_object_get(jop, "version")),
					  "operation %d: version", i);
			if (op->kind != KV_TXN_PUT)
			{
				CHECK(op->value == NULL && op->content_type == NULL,
					  "operation %d: a value on a non-put", i);
				continue;
			}
			CHECK(op->value != NULL && op->value[op->value_len] == '\0' &&
				  (int64_t) op->value_len <= txn_limits[l].value,
				  "operation %d: value missing, unterminated or too large", i);
			CHECK(op->content_type == NULL ||
				  kv_content_type_valid(op->content_type, strlen(op->content_type)),
				  "operation %d: bad content type", i);
			CHECK(op->ttl_seconds == 0 ||
				  (op->ttl_seconds >= 1 && op->ttl_seconds <= KV_MAX_TTL_SECONDS),
				  "operation %d: ttl", i);
			CHECK((jb64 == NULL) != (jtext == NULL), "operation %d: both values", i);
			if (jtext != NULL)
				CHECK(json_string_length(jtext) == op->value_len &&
					  memcmp(json_string_value(jtext), op->value, op->value_len) == 0,
					  "operation %d: value differs from the JSON", i);
			else
			{
				unsigned char *dec = xmalloc(json_string_length(jb64) + 1);
				long		n = ref_base64_decode(json_string_value(jb64),
												  json_string_length(jb64), dec);

				if (n != (long) op->value_len || memcmp(dec, op->value, n) != 0)
				{
					dump_bytes("value_base64", json_string_value(jb64), json_string_length(jb64));
					dump_bytes("decoded", op->value, op->value_len);
					CHECK(0, "operation %d: value_base64 decoded differently (reference: %ld bytes)", i, n);
				}
				free(dec);
			}
			for (j = 0; j < i; j++)
				CHECK(!((ops[j].kind == KV_TXN_PUT || ops[j].kind == KV_TXN_DELETE) &&
						same_key(&ops[j], op)),
					  "operations %d and %d write the same key", j, i);
		}
		for (i = 0; i < nops; i++)
			if (ops[i].kind == KV_TXN_DELETE)
				for (j = 0; j < i; j++)
					CHECK(!((ops[j].kind == KV_TXN_PUT || ops[j].kind == KV_TXN_DELETE) &&
							same_key(&ops[j], &ops[i])),
						  "operations %d and %d write the same key", j, i);
		json_decref(root);
		fuzz_txn_results(ops, nops);
		kvq_txn_ops_free(ops, nops);
	}
	free(body);
}

/* JSON_ENSURE_ASCII, and control characters escaped (DEL need not be) */
/*
 * One long-lived thread with a civetweb-sized stack runs the body parsing;
 * creating a thread per input costs milliseconds under ASan.
 */
typedef struct BodyJob
{
	const uint8_t *data;
	size_t		size;
	Keys	   *keys;
	const char **why;
	bool		pending;
} BodyJob;

static pthread_mutex_t body_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t body_cv = PTHREAD_COND_INITIALIZER;
static BodyJob body_job;

static void *
body_thread(void *arg)
{
	(void) arg;
	pthread_mutex_lock(&body_lock);
	for (;;)
	{
		while (!body_job.pending)
			pthread_cond_wait(&body_cv, &body_lock);
		pthread_mutex_unlock(&body_lock);
		fuzz_create_body(body_job.data, body_job.size, body_job.keys,
						 body_job.why);
		fuzz_txn_body(body_job.data, body_job.size);
		pthread_mutex_lock(&body_lock);
		body_job.pending = false;
		pthread_cond_broadcast(&body_cv);
	}
	return NULL;
}

static void
start_body_thread(void)
{
	pthread_attr_t attr;
	pthread_t	thread;

	if (pthread_attr_init(&attr) != 0 ||
		pthread_attr_setstacksize(&attr, CIVETWEB_STACK_SIZE) != 0 ||
		pthread_create(&thread, &attr, body_thread, NULL) != 0)
	{
		fprintf(stderr, "fuzz_http_parse: cannot start the body thread\n");
		abort();
	}
	pthread_attr_destroy(&attr);
	pthread_detach(thread);
}

/* Run fuzz_create_body on the civetweb-sized stack and wait for it. */
static void
fuzz_create_body_small_stack(const uint8_t *data, size_t size, Keys *keys,
							 const char **why)
{
	pthread_mutex_lock(&body_lock);
	body_job.data = data;
	body_job.size = size;
	body_job.keys = keys;
	body_job.why = why;
	body_job.pending = true;
	pthread_cond_broadcast(&body_cv);
	while (body_job.pending)
		pthread_cond_wait(&body_cv, &body_lock);
	pthread_mutex_unlock(&body_lock);
}

static bool
all_ascii_printable(const char *s, size_t n)
{
	size_t		i;

	for (i = 0; i < n; i++)
		if ((unsigned char) s[i] < 0x20 || (unsigned char) s[i] > 0x7F)
			return false;
	return true;
}

static void
fuzz_json_error(KvError error, const char *message)
{
	size_t		len = (size_t) -1;
	char	   *out = kv_json_error(error, message, &len);
	json_t	   *root;
	const char *code;
	const char *msg;
	const char *want_msg;

	CHECK(out != NULL, "kv_json_error returned NULL");
	CHECK(len == strlen(out), "kv_json_error len %zu, strlen %zu", len,
		  strlen(out));
	CHECK(all_ascii_printable(out, len), "kv_json_error output not ASCII: %s",
		  out);
	root = json_loads(out, 0, NULL);
	CHECK(root != NULL, "kv_json_error output not JSON: %s", out);
	CHECK(json_unpack(root, "{s:s, s:s !}", "error", &code, "message", &msg) == 0,
		  "kv_json_error output not {error, message}: %s", out);
	CHECK(strcmp(code, kv_error_code(error)) == 0,
		  "error \"%s\", want \"%s\"", code, kv_error_code(error));
	if (message == NULL)
		want_msg = "";
	else if (kv_utf8_valid(message, strlen(message)))
		want_msg = message;
	else
		want_msg = "(message not valid UTF-8)";
	if (strcmp(msg, want_msg) != 0)
	{
		dump_bytes("message", message, message ? strlen(message) : 0);
		CHECK(0, "message came back as \"%s\"", msg);
	}
	json_decref(root);
	free(out);

	/* len is optional */
	out = kv_json_error(error, message, NULL);
	CHECK(out != NULL, "kv_json_error(len NULL) returned NULL");
	free(out);
}

static void
fuzz_json_keys(Keys *keys, const char *next, bool next_raw)
{
	size_t		len = (size_t) -1;
	char	   *out = kv_json_keys(keys->k, keys->n, next, &len);
	json_t	   *root;
	json_t	   *arr;
	json_t	   *jn;
	int			i;

	CHECK(out != NULL, "kv_json_keys returned NULL");
	CHECK(len == strlen(out), "kv_json_keys len %zu, strlen %zu", len,
		  strlen(out));
	CHECK(all_ascii_printable(out, len), "kv_json_keys output not ASCII");
	root = json_loads(out, 0, NULL);
	CHECK(root != NULL, "kv_json_keys output not JSON: %s", out);

	if (next_raw && !kv_utf8_valid(next, strlen(next)))
	{
		/*
		 * Not reachable from the server (next_key comes from the store);
		 * just require well-formed JSON.
		 */
		json_decref(root);
		free(out);
		return;
	}
	arr = json_object_get(root, "keys");
	jn = json_object_get(root, "next");
	CHECK(json_object_size(root) == 2 && json_is_array(arr) && jn != NULL,
		  "kv_json_keys output not {keys, next}: %s", out);
	CHECK((int) json_array_size(arr) == keys->n,
		  "kv_json_keys: %zu keys out, %d in", json_array_size(arr), keys->n);
	for (i = 0; i < keys->n; i++)
	{
		json_t	   *e = json_array_get(arr, i);

		CHECK(json_is_string(e) && strcmp(json_string_value(e), keys->k[i]) == 0,
			  "kv_json_keys: key %d differs", i);
	}
	if (next == NULL)
		CHECK(json_is_null(jn), "next should be null");
	else
		CHECK(json_is_string(jn) && strcmp(json_string_value(jn), next) == 0,
			  "next differs");
	json_decref(root);
	free(out);
}

static void
fuzz_write_reply(const char *key, size_t key_len, int64_t version)
{
	char	   *out = kv_json_write_reply(key, key_len, version);
	json_t	   *root;
	json_t	   *k;
	json_t	   *v;

	CHECK(out != NULL, "kv_json_write_reply returned NULL");
	CHECK(all_ascii_printable(out, strlen(out)),
		  "kv_json_write_reply output not ASCII");
	root = json_loads(out, JSON_ALLOW_NUL, NULL);
	CHECK(root != NULL, "kv_json_write_reply output not JSON: %s", out);
	if (kv_utf8_valid(key, key_len))
	{
		k = json_object_get(root, "key");
		v = json_object_get(root, "version");
		CHECK(json_object_size(root) == 2 && json_is_string(k) &&
			  json_string_length(k) == key_len &&
			  memcmp(json_string_value(k), key, key_len) == 0,
			  "kv_json_write_reply: key differs: %s", out);
		CHECK(json_is_integer(v) && json_integer_value(v) == version,
			  "kv_json_write_reply: version differs: %s", out);
	}
	json_decref(root);
	free(out);
}

static void
fuzz_health(const char *database)
{
	char	   *out = kv_json_health(database, false, 0, -1);
	json_t	   *root;
	json_t	   *lag;
	const char *status;
	const char *role;
	const char *db;
	const char *lsn;
	size_t		len = strlen(database);
	/* a standby's figures, varied by the input */
	uint64_t	replay_lsn = ((uint64_t) len << 32) | 0x3000148;
	int64_t		lag_us = (len % 2) ? -1 : (int64_t) (len % 1000) * 1234567;
	char		want_lsn[32];

	CHECK(out != NULL, "kv_json_health returned NULL");
	root = json_loads(out, 0, NULL);
	CHECK(root != NULL, "kv_json_health output not JSON: %s", out);
	if (kv_utf8_valid(database, len))
	{
		CHECK(json_unpack(root, "{s:s, s:s, s:s !}", "status", &status,
						  "role", &role, "database", &db) == 0 &&
			  strcmp(status, "ok") == 0 && strcmp(role, "primary") == 0 &&
			  strcmp(db, database) == 0,
			  "kv_json_health: unexpected %s", out);
	}
	json_decref(root);
	free(out);

	out = kv_json_health(database, true, replay_lsn, lag_us);
	CHECK(out != NULL, "kv_json_health (standby) returned NULL");
	root = json_loads(out, 0, NULL);
	CHECK(root != NULL, "kv_json_health (standby) output not JSON: %s", out);
	if (kv_utf8_valid(database, len))
	{
		snprintf(want_lsn, sizeof(want_lsn), "%X/%X",
				 (unsigned) (replay_lsn >> 32), (unsigned) replay_lsn);
		CHECK(json_unpack(root, "{s:s, s:s, s:s, s:s, s:o !}", "status", &status,
						  "role", &role, "database", &db, "replay_lsn", &lsn,
						  "replay_lag_seconds", &lag) == 0 &&
			  strcmp(status, "ok") == 0 && strcmp(role, "standby") == 0 &&
			  strcmp(db, database) == 0 && strcmp(lsn, want_lsn) == 0 &&
			  (lag_us < 0 ? json_is_null(lag) :
			   json_is_number(lag) &&
			   llabs((int64_t) (json_number_value(lag) * 1e6 + 0.5) - lag_us) <= 1),
			  "kv_json_health (standby): unexpected %s", out);
	}
	json_decref(root);
	free(out);
}

/* ----------------------------------------------------------------------
 * entry points
 * ---------------------------------------------------------------------- */

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void) argc;
	(void) argv;
	/* jansson seeds its hash from /dev/urandom: keep runs reproducible */
	json_object_seed(1);
	start_body_thread();
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *nl1 = memchr(data, '\n', size);
	const uint8_t *nl2 = nl1 ? memchr(nl1 + 1, '\n', size - (nl1 + 1 - data)) : NULL;
	size_t		path_len = nl1 ? (size_t) (nl1 - data) : size;
	const uint8_t *qp = nl1 ? nl1 + 1 : NULL;
	size_t		q_len = nl1 ? (nl2 ? (size_t) (nl2 - qp) : size - path_len - 1) : 0;
	const uint8_t *bp = nl2 ? nl2 + 1 : data + size;
	size_t		b_len = (size_t) (data + size - bp);
	char	   *path = cstr(data, path_len);
	char	   *query = nl1 ? cstr(qp, q_len) : NULL;
	const char *key_raw;
	char	   *key;
	char	   *seg_name;
	const char *why = NULL;
	Keys		keys = {{0}, 0};
	int			i;
	static const char *const names[] = {"prefix", "after", "limit", "ttl", "k"};

	/* UTF-8 validation, on the whole input: arbitrary bytes, NULs included */
	fuzz_utf8(data, size);

	/* PATH */
	fuzz_route(path, &key_raw);
	key = fuzz_decode_key(key_raw ? key_raw : path);
	keys_add(&keys, key);
	{
		/* each path segment as a key too: "%2F" vs "/" handling */
		char	   *copy = xstrdup(path);
		char	   *rest = copy;
		char	   *seg;

		while ((seg = strsep(&rest, "/")) != NULL)
		{
			char	   *segcopy;
			char	   *k;

			if (*seg == '\0')
				continue;
			segcopy = xstrdup(seg);
			k = fuzz_decode_key(segcopy);
			keys_add(&keys, k);
			free(k);
			free(segcopy);
		}
		free(copy);
	}

	/* QUERY */
	fuzz_ttl(query);
	fuzz_watch_query(query);
	fuzz_list_query(query, &keys);
	if (query != NULL)
	{
		for (i = 0; i < (int) (sizeof(names) / sizeof(names[0])); i++)
			fuzz_query_param(query, names[i], &keys);
		/* a parameter name the fuzzer picks: the path's last segment */
		seg_name = strrchr(path, '/');
		seg_name = xstrdup(seg_name && seg_name[1] ? seg_name + 1 : "x");
		fuzz_query_param(query, seg_name, &keys);
		free(seg_name);
		fuzz_int64((const uint8_t *) query, strlen(query));
	}
	fuzz_int64(data, path_len < 40 ? path_len : 40);

	/* If-Match / If-None-Match */
	if (query != NULL)
		fuzz_etag(query);
	fuzz_etag(path);

	/* BODY */
	fuzz_create_body_small_stack(bp, b_len, &keys, &why);

	/* replies */
	fuzz_json_error((KvError) (size % 12), key);	/* 11: out of range */
	fuzz_json_error(KV_ERR_BAD_REQUEST, path);	/* raw, maybe not UTF-8 */
	fuzz_json_error(KV_ERR_BAD_REQUEST, why);
	if (query != NULL)
		fuzz_json_error(KV_ERR_NOT_FOUND, query);
	fuzz_json_error(KV_ERR_INTERNAL, NULL);

	fuzz_json_keys(&keys, NULL, false);
	if (keys.n > 0)
		fuzz_json_keys(&keys, keys.k[keys.n - 1], false);
	{
		Keys		none = {{0}, 0};

		fuzz_json_keys(&none, key, false);
	}
	fuzz_json_keys(&keys, path, true);	/* next may be invalid UTF-8 */

	/* write and health replies */
	{
		int64_t		version = (int64_t) size * 7919 - 1;

		if (query != NULL)
			(void) kv_parse_int64(query, strlen(query), &version);
		if (key != NULL)
			fuzz_write_reply(key, strlen(key), version);
		fuzz_write_reply(path, strlen(path), INT64_MAX);
		for (i = 0; i < keys.n; i++)
			fuzz_write_reply(keys.k[i], strlen(keys.k[i]), version);
		fuzz_health(path);
	}

	for (i = 0; i < keys.n; i++)
		free(keys.k[i]);
	free(key);
	free(path);
	free(query);
	return 0;
}
