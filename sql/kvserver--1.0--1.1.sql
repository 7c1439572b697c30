/* kvserver--1.0--1.1.sql */

-- complain if script is sourced in psql, rather than via ALTER EXTENSION
\echo Use "ALTER EXTENSION kvserver UPDATE TO '1.1'" to load this file. \quit

/*
 * 1.1 adds the CHECK constraint kv_store_content_type_valid: the content
 * type rule of kv_content_type_valid() in src/civet/kv_api.c, the same
 * expression as in kvserver--1.1.sql.
 *
 * Rows written under 1.0 may break it (plain SQL could store anything).
 * They are reported, never changed behind the owner's back: the constraint
 * is added NOT VALID, every row is checked against the constraint's own
 * expression, and if any fails the update stops with how many, the first
 * few keys and the UPDATE that fixes them.  ALTER EXTENSION runs in one
 * transaction, so a failed update leaves 1.0 exactly as it was, and running
 * it again after the fix works.
 *
 * Nothing is rewritten: the table keeps its OID and every row its value
 * and version, so the cache stays bound and every cached entry stays
 * right.  The fix in the hint is an ordinary UPDATE, which bumps the
 * versions of the rows it fixes and invalidates their cache entries
 * through the triggers, like any other write.
 */
ALTER TABLE @extschema@.kv_store ADD CONSTRAINT kv_store_content_type_valid CHECK (
	octet_length(content_type) <= 255 AND
	content_type ~ '^[!#$%&''*+.^_`|~0-9A-Za-z-]+/[!#$%&''*+.^_`|~0-9A-Za-z-]+( *;[ -~]*)?$')
	NOT VALID;

DO $$
DECLARE
	store		regclass := '@extschema@.kv_store';
	store_name	text;
	rule		text;
	bad			bigint;
	examples	text;
BEGIN
	SELECT pg_catalog.format('%I.%I', n.nspname, c.relname)
	  INTO STRICT store_name
	  FROM pg_catalog.pg_class c
	  JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
	 WHERE c.oid = store;
	SELECT pg_catalog.pg_get_expr(con.conbin, con.conrelid)
	  INTO STRICT rule
	  FROM pg_catalog.pg_constraint con
	 WHERE con.conrelid = store
	   AND con.conname = 'kv_store_content_type_valid';

	EXECUTE pg_catalog.format('SELECT pg_catalog.count(*) FROM %s WHERE NOT (%s)',
							  store_name, rule)
	   INTO bad;
	IF bad = 0 THEN
		RETURN;
	END IF;

	/* keys may hold quotes, backslashes, control characters: JSON-quote them */
	EXECUTE pg_catalog.format(
		'SELECT pg_catalog.string_agg(pg_catalog.to_json(k)::text, '', '')'
		' FROM (SELECT pg_catalog."left"(key, 64) AS k FROM %s'
		'        WHERE NOT (%s) ORDER BY key LIMIT 5) AS first_keys',
		store_name, rule)
	   INTO examples;

	RAISE EXCEPTION 'cannot update kvserver to 1.1: % row(s) of kv_store have a content_type that breaks the content type rule', bad
		USING ERRCODE = 'check_violation',
			  DETAIL = pg_catalog.format('First keys, JSON-quoted and cut at 64 characters: %s.  A content type must be 1 to 255 bytes of printable ASCII: type/subtype of RFC 7230 token characters, then nothing or spaces, ";" and parameters.', examples),
			  HINT = pg_catalog.format('To serve those values as application/octet-stream, run this UPDATE and then ALTER EXTENSION kvserver UPDATE again: UPDATE %s SET content_type = NULL WHERE NOT (%s);', store_name, rule);
END
$$;

ALTER TABLE @extschema@.kv_store VALIDATE CONSTRAINT kv_store_content_type_valid;

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
