/* kvserver--1.1.sql */

/*
 * Version 1.1: 1.0 plus the CHECK constraint kv_store_content_type_valid.
 * sql/kvserver--1.0--1.1.sql brings a 1.0 installation here.
 */

-- complain if script is sourced in psql, rather than via CREATE EXTENSION
\echo Use "CREATE EXTENSION kvserver" to load this file. \quit

CREATE SEQUENCE kv_store_version_seq;

CREATE TABLE kv_store (
	key          text COLLATE "C" PRIMARY KEY,
	value        bytea       NOT NULL,
	content_type text,
	version      bigint      NOT NULL DEFAULT nextval('kv_store_version_seq'),
	created_at   timestamptz NOT NULL DEFAULT now(),
	updated_at   timestamptz NOT NULL DEFAULT now(),
	expires_at   timestamptz,
	CONSTRAINT kv_store_key_not_empty CHECK (key <> ''),
	/*
	 * A content type is echoed as a reply header, so a row must never be
	 * able to add a header or split a reply: the content type rule of
	 * kv_content_type_valid() in src/civet/kv_api.c, which HTTP applies to
	 * a PUT's Content-Type and to every reply.  1 to 255 bytes of printable
	 * ASCII, type "/" subtype of RFC 7230 token characters, then nothing or
	 * spaces, ";" and any printable ASCII.  NULL: none (served as
	 * application/octet-stream).  sql/kvserver--1.0--1.1.sql adds the same
	 * constraint; keep the three in step.
	 */
	CONSTRAINT kv_store_content_type_valid CHECK (
		octet_length(content_type) <= 255 AND
		content_type ~ '^[!#$%&''*+.^_`|~0-9A-Za-z-]+/[!#$%&''*+.^_`|~0-9A-Za-z-]+( *;[ -~]*)?$')
);

COMMENT ON TABLE kv_store IS 'kvserver keys; plain SQL writes are seen by the HTTP cache at commit';

SELECT pg_catalog.pg_extension_config_dump('kv_store', '');
SELECT pg_catalog.pg_extension_config_dump('kv_store_version_seq', '');

/*
 * Cache coherence: every row change, from any path, invalidates the key's
 * cache entry when its transaction commits.  ENABLE ALWAYS so that logical
 * replication apply (session_replication_role = replica) fires it too.
 */
CREATE FUNCTION kv_store_invalidate()
RETURNS trigger
AS 'MODULE_PATHNAME', 'kv_store_invalidate'
LANGUAGE C;

CREATE TRIGGER kv_store_invalidate_row
	AFTER INSERT OR UPDATE OR DELETE ON kv_store
	FOR EACH ROW EXECUTE FUNCTION kv_store_invalidate();
CREATE TRIGGER kv_store_invalidate_truncate
	AFTER TRUNCATE ON kv_store
	FOR EACH STATEMENT EXECUTE FUNCTION kv_store_invalidate();
ALTER TABLE kv_store ENABLE ALWAYS TRIGGER kv_store_invalidate_row;
ALTER TABLE kv_store ENABLE ALWAYS TRIGGER kv_store_invalidate_truncate;

CREATE FUNCTION kv_get(key text)
RETURNS text
AS 'MODULE_PATHNAME', 'kv_get'
LANGUAGE C STRICT VOLATILE
SET search_path = pg_catalog, pg_temp;

CREATE FUNCTION kv_get_bytea(key text)
RETURNS bytea
AS 'MODULE_PATHNAME', 'kv_get_bytea'
LANGUAGE C STRICT VOLATILE
SET search_path = pg_catalog, pg_temp;

CREATE FUNCTION kv_put(key text, value text, ttl interval DEFAULT NULL)
RETURNS void
AS 'MODULE_PATHNAME', 'kv_put_text'
LANGUAGE C CALLED ON NULL INPUT VOLATILE
SET search_path = pg_catalog, pg_temp;

CREATE FUNCTION kv_put(key text, value bytea, ttl interval DEFAULT NULL)
RETURNS void
AS 'MODULE_PATHNAME', 'kv_put_bytea'
LANGUAGE C CALLED ON NULL INPUT VOLATILE
SET search_path = pg_catalog, pg_temp;

CREATE FUNCTION kv_delete(key text)
RETURNS boolean
AS 'MODULE_PATHNAME', 'kv_delete'
LANGUAGE C STRICT VOLATILE
SET search_path = pg_catalog, pg_temp;

CREATE FUNCTION kv_keys(prefix text DEFAULT '', lim integer DEFAULT 1000)
RETURNS SETOF text
AS 'MODULE_PATHNAME', 'kv_keys'
LANGUAGE C STRICT VOLATILE
SET search_path = pg_catalog, pg_temp;

CREATE FUNCTION kv_stats(
	OUT cache_enabled boolean,
	OUT cache_note text,
	OUT capacity_bytes bigint,
	OUT used_bytes bigint,
	OUT entries bigint,
	OUT hits bigint,
	OUT misses bigint,
	OUT evictions bigint,
	OUT fills_skipped bigint,
	OUT partitions integer,
	OUT max_cached_value bigint,
	OUT overhead_bytes_per_entry double precision)
RETURNS record
AS 'MODULE_PATHNAME', 'kv_stats'
LANGUAGE C VOLATILE
SET search_path = pg_catalog, pg_temp;

CREATE FUNCTION kv_cache_reset()
RETURNS void
AS 'MODULE_PATHNAME', 'kv_cache_reset'
LANGUAGE C VOLATILE
SET search_path = pg_catalog, pg_temp;

/* Nothing for PUBLIC: the README shows what to grant. */
REVOKE ALL ON FUNCTION kv_get(text), kv_get_bytea(text),
	kv_put(text, text, interval), kv_put(text, bytea, interval),
	kv_delete(text), kv_keys(text, integer), kv_stats(), kv_cache_reset(),
	kv_store_invalidate()
	FROM PUBLIC;

/*
 * Every write bumps version (the ETag), whichever path it takes: plain SQL
 * UPDATEs that leave version alone get a fresh one here.
 */
CREATE FUNCTION kv_store_stamp()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	IF NEW.version IS NOT DISTINCT FROM OLD.version THEN
		NEW.version := nextval('@extschema@.kv_store_version_seq');
	END IF;
	NEW.updated_at := now();
	RETURN NEW;
END
$$;
REVOKE ALL ON FUNCTION kv_store_stamp() FROM PUBLIC;

CREATE TRIGGER kv_store_stamp
	BEFORE UPDATE ON kv_store
	FOR EACH ROW EXECUTE FUNCTION kv_store_stamp();

/* The worker deletes expired keys through this index (kvserver.expire_interval). */
CREATE INDEX kv_store_expires_at ON kv_store (expires_at) WHERE expires_at IS NOT NULL;

-- tokens (kv_token, kv_token_create, kv_token_revoke): added by the authentication change

/*
 * Bearer tokens for the HTTP API.  Only a token's SHA-256 is stored; the
 * token itself is shown once, by kv_token_create().  Row-level security
 * shows each role its own tokens; only the functions below write the
 * table (as its owner, for the calling role).  Not dumped by pg_dump:
 * tokens are credentials, issued again after a restore.
 */
CREATE TABLE kv_token (
	token_hash text        PRIMARY KEY,
	role_oid   oid         NOT NULL,
	created_at timestamptz NOT NULL DEFAULT now(),
	expires_at timestamptz NOT NULL
);

COMMENT ON TABLE kv_token IS 'kvserver bearer tokens: SHA-256 of each token, its role and expiry';

ALTER TABLE kv_token ENABLE ROW LEVEL SECURITY;
CREATE POLICY kv_token_own ON kv_token
	USING (role_oid = (SELECT oid FROM pg_catalog.pg_roles WHERE rolname = current_user));
GRANT SELECT ON kv_token TO PUBLIC;

/* A revocation reaches the HTTP worker's credential cache at commit. */
CREATE FUNCTION kv_token_invalidate()
RETURNS trigger
AS 'MODULE_PATHNAME', 'kv_token_invalidate'
LANGUAGE C;
REVOKE ALL ON FUNCTION kv_token_invalidate() FROM PUBLIC;

CREATE TRIGGER kv_token_invalidate
	AFTER UPDATE OR DELETE OR TRUNCATE ON kv_token
	FOR EACH STATEMENT EXECUTE FUNCTION kv_token_invalidate();

CREATE FUNCTION kv_token_create(ttl interval DEFAULT '1 day')
RETURNS text
AS 'MODULE_PATHNAME', 'kv_token_create'
LANGUAGE C CALLED ON NULL INPUT VOLATILE
SET search_path = pg_catalog, pg_temp;

CREATE FUNCTION kv_token_revoke(token text)
RETURNS boolean
AS 'MODULE_PATHNAME', 'kv_token_revoke'
LANGUAGE C STRICT VOLATILE
SET search_path = pg_catalog, pg_temp;

/* Any role may create and revoke tokens for itself, and only for itself. */
GRANT EXECUTE ON FUNCTION kv_token_create(interval), kv_token_revoke(text) TO PUBLIC;
