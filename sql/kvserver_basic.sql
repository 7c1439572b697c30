--
-- kvserver_basic: the SQL API in one session, with the shared cache on
-- (test/regress.conf preloads kvserver with the default cache size).
--
-- quietly: the extension exists when the files run in sequence
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS kvserver;
RESET client_min_messages;

-- The tests assume a UTF-8 database (scripts/test.sh runs with LANG=C.UTF-8).
SELECT getdatabaseencoding() AS encoding;

-- The table starts empty.
SELECT count(*) FROM kv_store;

--
-- Text round trip
--
SELECT kv_put('greeting', 'hello');
SELECT kv_get('greeting');
SELECT kv_put('unicode', 'héllo wörld ✓ 日本語');
SELECT kv_get('unicode');
SELECT kv_get('unicode') = 'héllo wörld ✓ 日本語' AS same;
-- the stored bytes are the UTF-8 bytes of the text
SELECT kv_get_bytea('greeting');
SELECT kv_get_bytea('unicode') = convert_to('héllo wörld ✓ 日本語', 'UTF8') AS same_bytes;
-- a multi-line text value with tabs
SELECT kv_put('multiline', E'line 1\nline\t2\n');
SELECT kv_get('multiline') = E'line 1\nline\t2\n' AS same;

--
-- Binary round trip: all 256 byte values
--
SELECT kv_put('bin', decode(string_agg(lpad(to_hex(i), 2, '0'), '' ORDER BY i), 'hex'))
  FROM generate_series(0, 255) i;
SELECT octet_length(kv_get_bytea('bin')) AS len;
SELECT kv_get_bytea('bin') = decode(string_agg(lpad(to_hex(i), 2, '0'), '' ORDER BY i), 'hex') AS same
  FROM generate_series(0, 255) i;
-- the same value read a second time (now from the cache)
SELECT kv_get_bytea('bin') = decode(string_agg(lpad(to_hex(i), 2, '0'), '' ORDER BY i), 'hex') AS same
  FROM generate_series(0, 255) i;
SELECT kv_get_bytea('bin') = (SELECT value FROM kv_store WHERE key = 'bin') AS same_as_table;
-- a bytea value that happens to be valid UTF-8 can be read as text
SELECT kv_put('bin-utf8', '\x68c3a96c6c6f'::bytea);
SELECT kv_get('bin-utf8');
-- a value of 100000 bytes
SELECT kv_put('big', repeat('0123456789', 10000));
SELECT octet_length(kv_get('big')) AS len, kv_get('big') = repeat('0123456789', 10000) AS same;
SELECT octet_length(kv_get('big')) AS len, kv_get('big') = repeat('0123456789', 10000) AS same;

--
-- Empty values are values, not NULLs
--
SELECT kv_put('empty-text', '');
SELECT kv_get('empty-text') IS NULL AS is_null, kv_get('empty-text') = '' AS is_empty;
SELECT kv_put('empty-bytea', ''::bytea);
SELECT kv_get_bytea('empty-bytea') IS NULL AS is_null, kv_get_bytea('empty-bytea') = '\x'::bytea AS is_empty;
SELECT kv_get('empty-bytea') IS NULL AS is_null, kv_get('empty-bytea') = '' AS is_empty;
SELECT key, octet_length(value) AS len FROM kv_store WHERE key LIKE 'empty-%' ORDER BY key;

--
-- Overwrite
--
SELECT version AS v1, created_at AS c1 FROM kv_store WHERE key = 'greeting' \gset
SELECT kv_put('greeting', 'bonjour');
SELECT kv_get('greeting');
SELECT version > :v1 AS version_increased, created_at = :'c1' AS created_at_kept,
       updated_at >= created_at AS updated_after_created
  FROM kv_store WHERE key = 'greeting';
-- overwrite a cached value: read it twice first
SELECT kv_get('greeting');
SELECT kv_put('greeting', 'hola');
SELECT kv_get('greeting');
-- overwrite text with bytea and back
SELECT kv_put('greeting', '\x00ff'::bytea);
SELECT kv_get_bytea('greeting');
SELECT kv_put('greeting', 'hello again');
SELECT kv_get('greeting');
SELECT count(*) FROM kv_store WHERE key = 'greeting';

--
-- Missing keys
--
SELECT kv_get('no-such-key') IS NULL AS is_null;
SELECT kv_get('no-such-key') IS NULL AS is_null;
SELECT kv_get_bytea('no-such-key') IS NULL AS is_null;
-- the functions are STRICT: NULL in, NULL out
SELECT kv_get(NULL) IS NULL AS is_null, kv_get_bytea(NULL) IS NULL AS is_null,
       kv_delete(NULL) IS NULL AS is_null;

--
-- Delete
--
SELECT kv_delete('greeting');
SELECT kv_delete('greeting');
SELECT kv_get('greeting') IS NULL AS is_null;
SELECT kv_delete('no-such-key');
-- a deleted cached key is gone
SELECT kv_get('unicode') IS NOT NULL AS present;
SELECT kv_get('unicode') IS NOT NULL AS present;
SELECT kv_delete('unicode');
SELECT kv_get('unicode') IS NULL AS is_null;
-- delete then put again: a fresh row with a new version
SELECT version AS v_old FROM kv_store WHERE key = 'bin-utf8' \gset
SELECT kv_delete('bin-utf8');
SELECT kv_put('bin-utf8', 'back');
SELECT kv_get('bin-utf8'), version > :v_old AS newer_version
  FROM kv_store WHERE key = 'bin-utf8';

--
-- Listing: byte order, prefix, limit, defaults
--
TRUNCATE kv_store;
SELECT kv_put(k, 'v') FROM unnest(ARRAY['b', 'é', 'a/b', 'Z', 'ab', 'a', 'éa', 'a0']) AS k;
SELECT * FROM kv_keys();
SELECT * FROM kv_keys('');
SELECT * FROM kv_keys('', 3);
SELECT * FROM kv_keys('a');
SELECT * FROM kv_keys('a', 2);
SELECT * FROM kv_keys('a', 1);
SELECT * FROM kv_keys('a/');
SELECT * FROM kv_keys('ab');
SELECT * FROM kv_keys('abc');
SELECT * FROM kv_keys('é');
SELECT * FROM kv_keys('Z');
SELECT * FROM kv_keys('z');
SELECT * FROM kv_keys('x');
SELECT * FROM kv_keys(prefix => 'a', lim => 3);
SELECT * FROM kv_keys(lim => 2);
-- the order is byte order, not the database collation
SELECT array_agg(k) = (SELECT array_agg(key ORDER BY convert_to(key, 'UTF8')) FROM kv_store) AS byte_order
  FROM kv_keys() AS k;
-- a prefix is literal: LIKE wildcards and backslashes match only themselves
SELECT kv_put(k, 'v') FROM unnest(ARRAY['10_0', '100%', '1000', '10x0', 'p\q', 'p\\q', 'pq']) AS k;
SELECT * FROM kv_keys('10_');
SELECT * FROM kv_keys('100%');
SELECT * FROM kv_keys('10');
SELECT * FROM kv_keys('p\');
SELECT * FROM kv_keys('p');
-- the default limit is 1000
SELECT count(kv_put('many/' || lpad(i::text, 4, '0'), i::text)) FROM generate_series(1, 1005) i;
SELECT count(*) FROM kv_keys('many/');
SELECT count(*) FROM kv_keys('many/', 2000);
SELECT count(*) FROM kv_keys('many/', 1005);
SELECT count(*) FROM kv_keys('many/', 1004);
SELECT min(k), max(k) FROM kv_keys('many/') AS k;
SELECT count(*) FROM kv_keys();
DELETE FROM kv_store WHERE key LIKE 'many/%';
SELECT count(*) FROM kv_keys('many/');

--
-- Edge keys
--
SELECT kv_put('x', 'one char');
SELECT kv_get('x');
SELECT kv_put('with space/and/slashes/100%/?q=1&r=2#frag/ünïcødé ✓', 'odd');
SELECT kv_get('with space/and/slashes/100%/?q=1&r=2#frag/ünïcødé ✓');
SELECT * FROM kv_keys('with space/');
SELECT kv_put('..', 'dots');
SELECT kv_get('..');
SELECT kv_put(E'tab\there\nnewline', 'ctl');
SELECT kv_get(E'tab\there\nnewline');
-- exactly kvserver.max_key_length (1024) bytes, in ASCII and in 2-byte characters
SHOW kvserver.max_key_length;
SELECT kv_put(repeat('k', 1024), 'long ascii key');
SELECT kv_get(repeat('k', 1024));
SELECT kv_put(repeat('é', 512), 'long utf-8 key');
SELECT kv_get(repeat('é', 512));
SELECT octet_length(key) AS bytes, length(key) AS chars, convert_from(value, 'UTF8') AS value
  FROM kv_store WHERE octet_length(key) = 1024 ORDER BY key;
SELECT kv_delete(repeat('k', 1024)), kv_delete(repeat('é', 512));

--
-- The table behind the functions
--
TRUNCATE kv_store;
SELECT kv_put('t-text', 'plain');
SELECT kv_put('t-bytea', '\x0102'::bytea);
SELECT key, value, content_type, version > 0 AS has_version,
       created_at <= updated_at AS times_ok, expires_at
  FROM kv_store ORDER BY key;
-- the content type follows the last put
SELECT kv_put('t-text', '\x03'::bytea);
SELECT kv_put('t-bytea', 'now text');
SELECT key, value, content_type FROM kv_store ORDER BY key;
-- every kv_put takes a new version
SELECT version AS v1 FROM kv_store WHERE key = 't-text' \gset
SELECT kv_put('t-text', 'plain');
SELECT version AS v2 FROM kv_store WHERE key = 't-text' \gset
SELECT kv_put('t-text', 'plain');
SELECT version AS v3 FROM kv_store WHERE key = 't-text' \gset
SELECT :v1 < :v2 AND :v2 < :v3 AS versions_increase;
-- a plain UPDATE that leaves version alone gets a new one from the trigger
UPDATE kv_store SET value = 'updated' WHERE key = 't-text';
SELECT version > :v3 AS version_bumped, updated_at >= created_at AS updated_ok
  FROM kv_store WHERE key = 't-text';
SELECT kv_get('t-text');
-- an UPDATE that sets version keeps the version it set
UPDATE kv_store SET version = 424242 WHERE key = 't-text';
SELECT version FROM kv_store WHERE key = 't-text';
-- a plain INSERT gets defaults
INSERT INTO kv_store (key, value) VALUES ('t-insert', 'inserted');
SELECT key, value, content_type, version > 0 AS has_version, expires_at
  FROM kv_store WHERE key = 't-insert';
SELECT kv_get('t-insert');
-- keys are unique and COLLATE "C"
SELECT attname, format_type(atttypid, atttypmod) AS type, attnotnull,
       (SELECT collname FROM pg_collation WHERE oid = attcollation) AS collation
  FROM pg_attribute
 WHERE attrelid = 'kv_store'::regclass AND attnum > 0 AND NOT attisdropped
 ORDER BY attnum;

--
-- TTL
--
SELECT kv_put('ttl', 'short-lived', interval '1 hour');
SELECT expires_at > now() + interval '50 minutes' AS in_future,
       expires_at <= now() + interval '1 hour' AS at_most_an_hour
  FROM kv_store WHERE key = 'ttl';
SELECT kv_get('ttl');
SELECT kv_get('ttl');
SELECT * FROM kv_keys('ttl');
-- a NULL ttl never expires; a put without ttl clears an expiry
SELECT kv_put('ttl-null', 'forever', NULL);
SELECT expires_at IS NULL AS never_expires FROM kv_store WHERE key = 'ttl-null';
SELECT kv_put('ttl-bytea', '\xbeef'::bytea, interval '2 days');
SELECT expires_at > now() + interval '47 hours' AS in_future FROM kv_store WHERE key = 'ttl-bytea';
SELECT kv_put('ttl-bytea', '\xbeef'::bytea);
SELECT expires_at IS NULL AS never_expires FROM kv_store WHERE key = 'ttl-bytea';
-- expire the (cached) key with plain SQL: it is neither returned nor listed
UPDATE kv_store SET expires_at = now() - interval '1 s' WHERE key = 'ttl';
SELECT kv_get('ttl') IS NULL AS is_null;
SELECT kv_get_bytea('ttl') IS NULL AS is_null;
SELECT * FROM kv_keys('ttl');
SELECT count(*) AS rows_still_there FROM kv_store WHERE key = 'ttl';
-- deleting an expired key reports false (no live key was deleted) and removes the row
SELECT kv_delete('ttl');
SELECT count(*) AS rows_left FROM kv_store WHERE key = 'ttl';
-- putting over an expired row brings the key back, without expiry
SELECT kv_put('ttl', 'expired-row');
UPDATE kv_store SET expires_at = now() - interval '1 s' WHERE key = 'ttl';
SELECT kv_get('ttl') IS NULL AS is_null;
SELECT kv_put('ttl', 'revived');
SELECT kv_get('ttl'), (SELECT expires_at IS NULL FROM kv_store WHERE key = 'ttl') AS never_expires;
-- a key that expires by itself while cached
SELECT kv_put('ttl-short', 'soon gone', interval '3 seconds');
SELECT kv_get('ttl-short');
SELECT kv_get('ttl-short');
SELECT pg_sleep(3.2);
SELECT kv_get('ttl-short') IS NULL AS is_null;
SELECT * FROM kv_keys('ttl-short');

--
-- kv_stats and the cache
--
SELECT cache_enabled, cache_note, capacity_bytes > 0 AS has_capacity,
       used_bytes >= 0 AS used_ok, entries >= 0 AS entries_ok, hits >= 0 AS hits_ok,
       misses >= 0 AS misses_ok, evictions >= 0 AS evictions_ok,
       fills_skipped >= 0 AS skipped_ok, partitions > 0 AS has_partitions,
       max_cached_value > 0 AS has_max, max_cached_value < capacity_bytes AS max_ok
  FROM kv_stats();
SELECT kv_cache_reset();
SELECT entries, used_bytes, hits, misses, evictions, fills_skipped FROM kv_stats();
-- a miss fills the cache, the next read is a hit
SELECT kv_put('hot', 'cached value');
SELECT kv_cache_reset();
SELECT kv_get('hot');
SELECT entries, hits, misses FROM kv_stats();
SELECT kv_get('hot');
SELECT entries, hits, misses, used_bytes > 0 AS uses_memory FROM kv_stats();
-- kv_get_bytea shares the cache with kv_get
SELECT kv_get_bytea('hot');
SELECT entries, hits, misses FROM kv_stats();
-- absent keys are not cached
SELECT kv_get('cold') IS NULL AS is_null;
SELECT kv_get('cold') IS NULL AS is_null;
SELECT entries, hits, misses FROM kv_stats();
-- hits + misses move with every read
SELECT hits + misses AS before FROM kv_stats() \gset
SELECT kv_get('hot'), kv_get('ttl-null'), kv_get('no-such-key');
SELECT hits + misses - :before AS reads FROM kv_stats();
-- a write invalidates at commit: the next read misses and sees the new value
SELECT kv_put('hot', 'new value');
SELECT entries, hits, misses FROM kv_stats();
SELECT kv_get('hot');
SELECT entries, hits, misses FROM kv_stats();
-- kv_cache_reset empties the cache and zeroes the counters, not the table
SELECT kv_cache_reset();
SELECT entries, hits, misses FROM kv_stats();
SELECT kv_get('hot');
-- a value too large for the cache is served from the table, never cached
SELECT max_cached_value AS maxv FROM kv_stats() \gset
SELECT kv_put('huge', decode(repeat('ab', :maxv + 1), 'hex'));
SELECT kv_cache_reset();
SELECT octet_length(kv_get_bytea('huge')) = :maxv + 1 AS full_length;
SELECT octet_length(kv_get_bytea('huge')) = :maxv + 1 AS full_length;
SELECT entries, hits, misses FROM kv_stats();
SELECT kv_delete('huge');
