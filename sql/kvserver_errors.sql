--
-- kvserver_errors: argument checks, undecodable values, privileges.
--
-- quietly: the extension exists when the files run in sequence
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS kvserver;
RESET client_min_messages;
-- errors raised inside the functions' SPI statements would show that SQL
\set SHOW_CONTEXT never
TRUNCATE kv_store;

--
-- NULL arguments to kv_put (it is not STRICT, so that it can say why)
--
SELECT kv_put(NULL::text, 'v'::text);
SELECT kv_put(NULL::text, '\x00'::bytea);
SELECT kv_put(NULL, 'v');
SELECT kv_put('k', NULL::text);
SELECT kv_put('k', NULL::bytea);
SELECT kv_put('k', NULL::text, interval '1 hour');
SELECT kv_put(NULL::text, NULL::text);
SELECT count(*) FROM kv_store;

--
-- Keys: not empty, at most kvserver.max_key_length bytes
--
SELECT kv_put('', 'v');
SELECT kv_put('', ''::bytea);
SELECT kv_put(repeat('k', 1025), 'v');
SELECT kv_put(repeat('k', 1025), '\x01'::bytea);
-- the limit is in bytes: 513 two-byte characters are 1026 bytes
SELECT kv_put(repeat('é', 513), 'v');
-- 1024 bytes is still fine
SELECT kv_put(repeat('k', 1024), 'v');
SELECT count(*) FROM kv_store;
SELECT kv_delete(repeat('k', 1024));
-- the limit is a reload-time setting, not settable in a session
SET kvserver.max_key_length = 10;
-- the table refuses an empty key too
\set VERBOSITY terse
INSERT INTO kv_store (key, value) VALUES ('', 'v');
\set VERBOSITY default
SELECT count(*) FROM kv_store;

--
-- TTL must be positive
--
SELECT kv_put('k', 'v', interval '0 seconds');
SELECT kv_put('k', 'v', interval '-1 second');
SELECT kv_put('k', 'v', interval '-1 day');
SELECT kv_put('k', '\x01'::bytea, interval '0');
SELECT kv_put('k', '\x01'::bytea, interval '-5 minutes');
SELECT count(*) FROM kv_store;
-- a tiny positive ttl is accepted
SELECT kv_put('k', 'v', interval '1 microsecond');
SELECT count(*) FROM kv_store WHERE expires_at IS NOT NULL;
SELECT kv_delete('k');

--
-- kv_keys: lim must be at least 1
--
SELECT * FROM kv_keys('', 0);
SELECT * FROM kv_keys('a', -1);
SELECT * FROM kv_keys(lim => 0);
-- STRICT: a NULL argument gives no rows
SELECT count(*) FROM kv_keys(NULL);
SELECT count(*) FROM kv_keys('', NULL);

--
-- kv_get on a value that is not valid UTF-8
--
SELECT kv_put('binary', '\xff'::bytea);
SELECT kv_get('binary');
SELECT kv_get('binary');
SELECT kv_get_bytea('binary');
-- a truncated multi-byte sequence
SELECT kv_put('truncated', '\x68c3'::bytea);
SELECT kv_get('truncated');
SELECT kv_get_bytea('truncated');
-- a NUL byte is not valid in text either
SELECT kv_put('nul', '\x610062'::bytea);
SELECT kv_get('nul');
SELECT kv_get_bytea('nul');
-- cached or not, the answer is the same
SELECT kv_put('nul', '\x610062'::bytea);
SELECT kv_get_bytea('nul');
SELECT kv_get_bytea('nul');
SELECT kv_get('nul');
-- the error does not break the session or the cache
SELECT kv_put('binary', 'now text');
SELECT kv_get('binary');

--
-- Read-only transactions
--
BEGIN READ ONLY;
SELECT kv_put('ro', 'v');
ROLLBACK;
BEGIN READ ONLY;
SELECT kv_delete('binary');
ROLLBACK;
SELECT kv_get('binary');

--
-- Privileges: CREATE EXTENSION grants nothing to PUBLIC
--
SELECT kv_put('secret', 'classified');
SELECT kv_get('secret');
SELECT kv_get('secret');
CREATE ROLE regress_kv_nobody;
SET ROLE regress_kv_nobody;
SELECT kv_get('secret');
SELECT kv_get_bytea('secret');
SELECT kv_put('secret', 'overwritten');
SELECT kv_put('secret', '\x00'::bytea);
SELECT kv_delete('secret');
SELECT * FROM kv_keys();
SELECT * FROM kv_stats();
SELECT kv_cache_reset();
SELECT * FROM kv_store;
UPDATE kv_store SET value = 'x';
RESET ROLE;

-- EXECUTE alone is not enough: the functions run with the caller's privileges
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA public TO regress_kv_nobody;
SET ROLE regress_kv_nobody;
SELECT kv_put('secret', 'overwritten');
SELECT kv_delete('secret');
SELECT * FROM kv_keys();
SELECT kv_get('no-such-key');
-- 'secret' is in the cache (read twice above); the cache must not bypass
-- the table's privileges
SELECT kv_get('secret');
SELECT kv_get_bytea('secret');
RESET ROLE;
SELECT kv_get('secret');

-- with the grants from the README, everything works
GRANT SELECT, INSERT, UPDATE, DELETE ON kv_store TO regress_kv_nobody;
GRANT USAGE ON SEQUENCE kv_store_version_seq TO regress_kv_nobody;
SET ROLE regress_kv_nobody;
SELECT kv_get('secret');
SELECT kv_put('app-key', 'app value');
SELECT kv_put('app-key', 'app value 2', interval '1 hour');
SELECT kv_put('app-bin', '\x0001'::bytea);
SELECT kv_get('app-key'), kv_get_bytea('app-bin');
SELECT * FROM kv_keys('app-');
SELECT kv_delete('app-bin');
UPDATE kv_store SET value = 'updated by app' WHERE key = 'app-key';
SELECT kv_get('app-key');
SELECT cache_enabled FROM kv_stats();
-- TRUNCATE was not granted
TRUNCATE kv_store;
RESET ROLE;

-- a read-only role: EXECUTE on everything, SELECT only on the table
CREATE ROLE regress_kv_reader;
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA public TO regress_kv_reader;
GRANT SELECT ON kv_store TO regress_kv_reader;
SET ROLE regress_kv_reader;
SELECT kv_get('app-key');
SELECT kv_get('app-key');
SELECT * FROM kv_keys('app-');
SELECT kv_put('app-key', 'reader write');
SELECT kv_put('reader-key', 'reader write');
SELECT kv_delete('app-key');
RESET ROLE;
-- a role with no EXECUTE on the writers cannot even call them
REVOKE EXECUTE ON FUNCTION kv_put(text, text, interval), kv_delete(text)
  FROM regress_kv_reader;
SET ROLE regress_kv_reader;
SELECT kv_put('app-key', 'reader write');
SELECT kv_delete('app-key');
SELECT kv_get('app-key');
RESET ROLE;
SELECT kv_get('app-key');

-- clean up
DROP OWNED BY regress_kv_nobody;
DROP OWNED BY regress_kv_reader;
DROP ROLE regress_kv_nobody;
DROP ROLE regress_kv_reader;
SELECT count(*) FROM pg_roles WHERE rolname LIKE 'regress_kv_%';
TRUNCATE kv_store;

-- the content type rule (1.1): CHECK kv_store_content_type_valid, the rule of
-- kv_content_type_valid() on the HTTP side (test/t/120 checks they agree)
SELECT extversion FROM pg_extension WHERE extname = 'kvserver';
\set VERBOSITY terse
INSERT INTO kv_store (key, value, content_type)
  VALUES ('ct-crlf', 'x', E'text/plain\r\nSet-Cookie: a=1');
INSERT INTO kv_store (key, value, content_type)
  VALUES ('ct-256', 'x', 'a/' || repeat('b', 254));
INSERT INTO kv_store (key, value, content_type) VALUES ('ct-no-slash', 'x', 'text');
INSERT INTO kv_store (key, value, content_type) VALUES ('ct-empty', 'x', '');
INSERT INTO kv_store (key, value, content_type) VALUES ('ct-latin', 'x', 'text/café');
\set VERBOSITY default
INSERT INTO kv_store (key, value, content_type) VALUES
  ('ct-255', 'x', 'a/' || repeat('b', 253)),
  ('ct-params', 'x', 'text/plain ; charset="utf-8"'),
  ('ct-none', 'x', NULL);
SELECT kv_put('ct-text', 'kv_put records a valid one');
SELECT key, octet_length(content_type) AS ct_bytes FROM kv_store ORDER BY key;
TRUNCATE kv_store;
