--
-- kvserver_txn: the SQL functions are transactional, and the shared cache
-- never serves a value that this session should not see.
--
-- The cache counters (kv_stats) are shared by the whole instance; nothing
-- else reads kv_store while pg_regress runs, so after kv_cache_reset() they
-- count this file's reads exactly.  "Cached" below means: read twice, the
-- second read being a hit.
--
-- quietly: the extension exists when the files run in sequence
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS kvserver;
RESET client_min_messages;
-- errors raised inside the functions' SPI statements would show that SQL
\set SHOW_CONTEXT never
TRUNCATE kv_store;

--
-- A rolled-back kv_put leaves no trace, in the table or in the cache
--
SELECT kv_cache_reset();
SELECT kv_get('rb') IS NULL AS absent_before;
BEGIN;
SELECT kv_put('rb', 'uncommitted');
-- a transaction reads its own write (from the table: it bypasses the cache)
SELECT kv_get('rb');
SELECT kv_get('rb');
SELECT * FROM kv_keys('rb');
ROLLBACK;
SELECT kv_get('rb') IS NULL AS absent_after;
SELECT kv_get('rb') IS NULL AS absent_after;
SELECT * FROM kv_keys('rb');
SELECT count(*) FROM kv_store WHERE key = 'rb';
-- three misses outside the transaction, none inside it, nothing cached
SELECT entries, hits, misses FROM kv_stats();

--
-- Rolling back an overwrite of a cached key restores the old value
--
SELECT kv_put('ow', 'old');
SELECT version AS v_old FROM kv_store WHERE key = 'ow' \gset
SELECT kv_cache_reset();
SELECT kv_get('ow');
SELECT kv_get('ow');
SELECT entries, hits, misses FROM kv_stats();
BEGIN;
SELECT kv_put('ow', 'new');
SELECT kv_get('ow');
SELECT kv_get_bytea('ow');
ROLLBACK;
SELECT kv_get('ow');
SELECT version = :v_old AS same_version FROM kv_store WHERE key = 'ow';
-- the reads inside the transaction did not touch the cache; the old entry
-- stayed (nothing is invalidated at abort) and the last read was a hit
SELECT entries, hits, misses FROM kv_stats();

-- the same with kv_delete of a cached key
BEGIN;
SELECT kv_delete('ow');
SELECT kv_get('ow') IS NULL AS deleted_inside;
SELECT kv_delete('ow');
ROLLBACK;
SELECT kv_get('ow');

-- and with a plain SQL write of a cached key: kv_get in the same
-- transaction must not answer from the cache
BEGIN;
UPDATE kv_store SET value = 'sql-new' WHERE key = 'ow';
SELECT kv_get('ow');
ROLLBACK;
SELECT kv_get('ow');

-- a committed overwrite of a cached key is seen at once
BEGIN;
SELECT kv_put('ow', 'committed');
SELECT kv_get('ow');
COMMIT;
SELECT kv_get('ow');
SELECT kv_get('ow');

--
-- Savepoints
--
SELECT kv_put('sp', 'zero');
SELECT kv_get('sp');
SELECT kv_get('sp');
BEGIN;
SELECT kv_put('sp', 'one');
SAVEPOINT s1;
SELECT kv_put('sp', 'two');
SELECT kv_put('sp-other', 'x');
SELECT kv_get('sp');
ROLLBACK TO SAVEPOINT s1;
SELECT kv_get('sp');
SELECT kv_get('sp-other') IS NULL AS other_absent;
SAVEPOINT s2;
SELECT kv_put('sp', 'three');
RELEASE SAVEPOINT s2;
SELECT kv_get('sp');
-- an error in a subtransaction rolls back only that subtransaction
SAVEPOINT s3;
SELECT kv_put('sp', 'four');
SELECT kv_put('', 'bad key');
ROLLBACK TO SAVEPOINT s3;
SELECT kv_get('sp');
COMMIT;
SELECT kv_get('sp');
SELECT kv_get('sp-other') IS NULL AS other_absent;

-- the only write of a key is in a subtransaction that is rolled back
SELECT kv_get('sp');
SELECT kv_get('sp');
BEGIN;
SAVEPOINT s1;
SELECT kv_put('sp', 'never');
ROLLBACK TO SAVEPOINT s1;
SELECT kv_get('sp');
COMMIT;
SELECT kv_get('sp');

-- the only write of a cached key is in a released subtransaction
SELECT kv_get('sp');
BEGIN;
SAVEPOINT s1;
SELECT kv_put('sp', 'from released savepoint');
RELEASE SAVEPOINT s1;
COMMIT;
SELECT kv_get('sp');

-- an error aborts the whole transaction, including earlier kv_puts
BEGIN;
SELECT kv_put('err', 'lost');
SELECT kv_put(NULL::text, 'v');
SELECT kv_get('err');
ROLLBACK;
SELECT kv_get('err') IS NULL AS absent;

--
-- Plain SQL on kv_store is seen by kv_get, even for a key cached just before
--
SELECT kv_put(k, 'v-' || k) FROM unnest(ARRAY['c-upd', 'c-del', 'c-ups', 'c-ren', 'c-exp', 'c-trunc']) AS k;
SELECT kv_cache_reset();
SELECT kv_get(k) FROM unnest(ARRAY['c-upd', 'c-del', 'c-ups', 'c-ren', 'c-exp', 'c-trunc']) AS k;
SELECT kv_get(k) FROM unnest(ARRAY['c-upd', 'c-del', 'c-ups', 'c-ren', 'c-exp', 'c-trunc']) AS k;
SELECT entries, hits, misses FROM kv_stats();
-- UPDATE
UPDATE kv_store SET value = 'updated by sql' WHERE key = 'c-upd';
SELECT kv_get('c-upd');
-- DELETE
DELETE FROM kv_store WHERE key = 'c-del';
SELECT kv_get('c-del') IS NULL AS absent;
-- INSERT ... ON CONFLICT
INSERT INTO kv_store (key, value) VALUES ('c-ups', 'upserted by sql')
  ON CONFLICT (key) DO UPDATE SET value = excluded.value;
SELECT kv_get('c-ups');
-- UPDATE of the key itself: the old key is gone, the new one is there
UPDATE kv_store SET key = 'c-renamed' WHERE key = 'c-ren';
SELECT kv_get('c-ren') IS NULL AS old_absent, kv_get('c-renamed') AS new_value;
-- UPDATE of expires_at
UPDATE kv_store SET expires_at = now() - interval '1 s' WHERE key = 'c-exp';
SELECT kv_get('c-exp') IS NULL AS expired;
-- plain INSERT of a key that was just read as absent
SELECT kv_get('c-new') IS NULL AS absent;
INSERT INTO kv_store (key, value) VALUES ('c-new', 'inserted by sql');
SELECT kv_get('c-new');
-- COPY
COPY kv_store (key, value, content_type) FROM stdin;
c-copy	\\x636f70696564	text/plain; charset=utf-8
\.
SELECT kv_get('c-copy');
-- a write in a multi-statement transaction, with a read of the cache in between
SELECT kv_get('c-upd');
SELECT kv_get('c-upd');
BEGIN;
UPDATE kv_store SET value = 'second update' WHERE key = 'c-upd';
SELECT kv_get('c-upd');
COMMIT;
SELECT kv_get('c-upd');
-- TRUNCATE drops every cached key
SELECT kv_get('c-trunc');
SELECT kv_get('c-ups');
SELECT entries > 0 AS has_entries FROM kv_stats();
TRUNCATE kv_store;
SELECT entries FROM kv_stats();
SELECT kv_get('c-trunc') IS NULL AS absent, kv_get('c-ups') IS NULL AS absent;
SELECT count(*) FROM kv_keys();
-- a rolled-back TRUNCATE changes nothing
SELECT kv_put('c-keep', 'kept');
SELECT kv_get('c-keep');
BEGIN;
TRUNCATE kv_store;
SELECT kv_get('c-keep') IS NULL AS absent_inside;
ROLLBACK;
SELECT kv_get('c-keep');

--
-- A plain SQL write and kv_get in the same statement (a data-modifying WITH):
-- kv_get sees the statement's own write, as it does without a cache, and
-- an uncommitted value never gets into the cache
--
SELECT kv_put('cte-cached', 'old');
SELECT kv_put('cte-rb', 'committed');
SELECT kv_cache_reset();
-- a cached key, updated by the same statement
SELECT kv_get('cte-cached');
SELECT kv_get('cte-cached');
WITH u AS (UPDATE kv_store SET value = 'new' WHERE key = 'cte-cached' RETURNING key)
SELECT kv_get(key) FROM u;
SELECT kv_get('cte-cached');
-- a key not cached, updated by the same statement in a transaction that rolls back
BEGIN;
WITH u AS (UPDATE kv_store SET value = 'rolled back' WHERE key = 'cte-rb' RETURNING key)
SELECT kv_get(key) FROM u;
ROLLBACK;
SELECT convert_from(value, 'UTF8') AS table_value FROM kv_store WHERE key = 'cte-rb';
SELECT kv_get('cte-rb');
SELECT kv_get('cte-rb');
SELECT kv_cache_reset();

--
-- Another session's commits, through dblink
--
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS dblink;
RESET client_min_messages;
SELECT dblink_connect('other',
         format('dbname=%s host=%s port=%s', current_database(),
                split_part(current_setting('unix_socket_directories'), ',', 1),
                current_setting('port')));
-- the other session's kv_put replaces what this session cached
SELECT kv_put('shared', 'v1');
SELECT kv_get('shared');
SELECT kv_get('shared');
SELECT * FROM dblink('other', $$SELECT kv_put('shared', 'v2')$$) AS t(r text);
SELECT kv_get('shared');
-- ... and what it cached is replaced by this session's kv_put
SELECT * FROM dblink('other', $$SELECT kv_get('shared')$$) AS t(v text);
SELECT * FROM dblink('other', $$SELECT kv_get('shared')$$) AS t(v text);
SELECT kv_put('shared', 'v3');
SELECT * FROM dblink('other', $$SELECT kv_get('shared')$$) AS t(v text);
-- uncommitted writes of the other session are not seen
SELECT dblink_exec('other', 'BEGIN');
SELECT * FROM dblink('other', $$SELECT kv_put('shared', 'v4-uncommitted')$$) AS t(r text);
SELECT * FROM dblink('other', $$SELECT kv_get('shared')$$) AS t(v text);
SELECT kv_get('shared');
SELECT kv_get('shared');
SELECT dblink_exec('other', 'ROLLBACK');
SELECT kv_get('shared');

--
-- REPEATABLE READ sees its snapshot, whatever the cache holds
--
SELECT kv_put('rr', 'before');
SELECT kv_cache_reset();
BEGIN ISOLATION LEVEL REPEATABLE READ;
SELECT kv_get('rr');
-- another session commits a new value and caches it
SELECT * FROM dblink('other', $$SELECT kv_put('rr', 'after')$$) AS t(r text);
SELECT * FROM dblink('other', $$SELECT kv_get('rr')$$) AS t(v text);
SELECT * FROM dblink('other', $$SELECT kv_get('rr')$$) AS t(v text);
-- the snapshot still says 'before', for kv_get, kv_get_bytea and kv_keys
SELECT kv_get('rr');
SELECT kv_get_bytea('rr');
SELECT * FROM dblink('other', $$SELECT kv_put('rr-new', 'x')$$) AS t(r text);
SELECT * FROM kv_keys('rr');
COMMIT;
-- one miss and one hit, both in the other session: the REPEATABLE READ
-- transaction never used the cache
SELECT entries, hits, misses FROM kv_stats();
SELECT kv_get('rr');
SELECT * FROM kv_keys('rr');

-- the snapshot's old value must not be put into the cache either
SELECT kv_cache_reset();
BEGIN ISOLATION LEVEL REPEATABLE READ;
SELECT kv_get('rr');
SELECT * FROM dblink('other', $$SELECT kv_put('rr', 'newest')$$) AS t(r text);
SELECT kv_get('rr');
SELECT kv_get('rr');
COMMIT;
SELECT kv_get('rr');
SELECT kv_get('rr');
SELECT * FROM dblink('other', $$SELECT kv_get('rr')$$) AS t(v text);

-- SERIALIZABLE likewise
BEGIN ISOLATION LEVEL SERIALIZABLE;
SELECT kv_get('rr');
SELECT * FROM dblink('other', $$SELECT kv_put('rr', 'serializable-other')$$) AS t(r text);
SELECT kv_get('rr');
COMMIT;
SELECT kv_get('rr');

-- READ COMMITTED sees each new commit, statement by statement
BEGIN;
SELECT kv_get('rr');
SELECT kv_get('rr');
SELECT * FROM dblink('other', $$SELECT kv_put('rr', 'read committed')$$) AS t(r text);
SELECT kv_get('rr');
COMMIT;

SELECT dblink_disconnect('other');
DROP EXTENSION dblink;

--
-- PREPARE TRANSACTION after writing kv_store is refused by kvserver
-- (pg_regress's temporary instance allows prepared transactions)
--
-- should a PREPARE succeed, fail on its row locks instead of waiting forever
SET lock_timeout = '10s';
SELECT current_setting('max_prepared_transactions')::int > 0 AS prepared_xacts_allowed;
SELECT kv_put('prep', 'cached');
SELECT kv_get('prep');
BEGIN;
SELECT kv_put('prep', 'prepared');
PREPARE TRANSACTION 'kv_prep';
-- the transaction was rolled back
SELECT kv_get('prep');
SELECT count(*) FROM pg_prepared_xacts;
-- the same for a write by plain SQL, and for one in a rolled-back savepoint
BEGIN;
DELETE FROM kv_store WHERE key = 'prep';
PREPARE TRANSACTION 'kv_prep';
BEGIN;
SAVEPOINT s1;
SELECT kv_put('prep', 'in savepoint');
ROLLBACK TO SAVEPOINT s1;
PREPARE TRANSACTION 'kv_prep';
SELECT kv_get('prep');
SELECT count(*) FROM pg_prepared_xacts;
-- after a refused PREPARE this session uses the cache again
SELECT kv_cache_reset();
SELECT kv_get('prep');
SELECT kv_get('prep');
SELECT hits, misses FROM kv_stats();
-- a transaction that did not write kv_store can be prepared
BEGIN;
SELECT kv_get('prep');
SELECT count(*) FROM kv_store;
PREPARE TRANSACTION 'kv_prep_read';
SELECT gid FROM pg_prepared_xacts;
COMMIT PREPARED 'kv_prep_read';
SELECT count(*) FROM pg_prepared_xacts;
RESET lock_timeout;

--
-- A read-only transaction cannot write
--
BEGIN READ ONLY;
SELECT kv_get('prep');
SELECT kv_put('prep', 'read only');
ROLLBACK;
SELECT kv_get('prep');

TRUNCATE kv_store;
