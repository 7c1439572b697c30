
# Copyright (c) kvserver authors

# HTTP and SQL share one table and one cache: each sees the other's
# committed writes, plain SQL on kv_store invalidates cached keys at commit,
# and nothing uncommitted or rolled back is ever served.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::RealBin/../lib";

use KvServerTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $kv = KvServerTest->new('sql_http_coherence',
	conf => 'max_prepared_transactions = 2');
my $node = $kv->node;

sub sql { return $node->safe_psql('postgres', $_[0]); }

# PUT a value over HTTP and GET it until it is cached (asserted: the second
# GET is a HIT).  Returns the cached response.
sub put_and_cache
{
	my ($key, $value) = @_;
	local $Test::Builder::Level = $Test::Builder::Level + 1;
	my $put = $kv->http('PUT', "/kv/$key", $value);
	ok($put->{status} == 201 || $put->{status} == 200, "PUT $key")
	  or diag("PUT $key: $put->{status} $put->{content}");
	$kv->http('GET', "/kv/$key");
	my $hit = $kv->http('GET', "/kv/$key");
	is($hit->{content}, $value, "GET $key returns the value");
	is(header($hit, 'X-Cache'), 'HIT', "$key is cached (X-Cache: HIT)");
	return $hit;
}

subtest 'a PUT over HTTP is seen by kv_get in SQL' => sub {
	is($kv->http('PUT', '/kv/from-http', 'hello from http')->{status}, 201,
		'PUT 201');
	is(sql("SELECT kv_get('from-http')"), 'hello from http', 'kv_get');
	put_and_cache('from-http', 'second');
	is(sql("SELECT kv_get('from-http')"), 'second',
		'kv_get after an overwrite of a cached key');
};

subtest 'a kv_put in SQL is seen by GET over HTTP' => sub {
	sql("SELECT kv_put('from-sql', 'hello from sql')");
	my $get = $kv->http('GET', '/kv/from-sql');
	is($get->{status}, 200, 'GET 200');
	is($get->{content}, 'hello from sql', 'value');
	is(header($get, 'ETag'),
		'"' . sql("SELECT version FROM kv_store WHERE key = 'from-sql'") . '"',
		'ETag is the row version');
};

subtest 'a kv_put in SQL replaces a cached value' => sub {
	put_and_cache('sql-put', 'v1');
	sql("SELECT kv_put('sql-put', 'v2')");
	my $get = $kv->http('GET', '/kv/sql-put');
	is($get->{content}, 'v2', 'GET returns the new value');
};

subtest 'a kv_delete in SQL removes a cached key' => sub {
	put_and_cache('sql-del', 'v1');
	is(sql("SELECT kv_delete('sql-del')"), 't', 'kv_delete is true');
	is($kv->http('GET', '/kv/sql-del')->{status}, 404, 'GET 404');
	is(sql("SELECT kv_delete('sql-del')"), 'f', 'second kv_delete is false');
};

subtest 'a plain UPDATE of a cached key is seen by the next GET' => sub {
	put_and_cache('c-update', 'v1');
	sql("UPDATE kv_store SET value = 'v2'::bytea WHERE key = 'c-update'");
	my $get = $kv->http('GET', '/kv/c-update');
	is($get->{status}, 200, 'GET 200');
	is($get->{content}, 'v2', 'GET returns the updated value');
};

subtest 'a plain UPDATE of the value bumps the version and the ETag' => sub {
	my $before = put_and_cache('c-etag', 'v1');
	my $v_before = sql("SELECT version FROM kv_store WHERE key = 'c-etag'");
	is(header($before, 'ETag'), qq{"$v_before"}, 'ETag is the version');
	sql("UPDATE kv_store SET value = 'v2'::bytea WHERE key = 'c-etag'");
	my $v_after = sql("SELECT version FROM kv_store WHERE key = 'c-etag'");
	isnt($v_after, $v_before, 'the UPDATE changed version');
	my $get = $kv->http('GET', '/kv/c-etag');
	is(header($get, 'ETag'), qq{"$v_after"}, 'ETag is the new version');
	isnt(header($get, 'ETag'), header($before, 'ETag'), 'ETag changed');

	# an UPDATE that touches only content_type is a write too
	$kv->http('GET', '/kv/c-etag');
	sql("UPDATE kv_store SET content_type = 'text/x-new' WHERE key = 'c-etag'");
	$get = $kv->http('GET', '/kv/c-etag');
	is(header($get, 'Content-Type'), 'text/x-new', 'new Content-Type served');
	isnt(header($get, 'ETag'), qq{"$v_after"}, 'ETag changed again');
};

subtest 'a plain DELETE of a cached key: the next GET is 404' => sub {
	put_and_cache('c-delete', 'v1');
	sql("DELETE FROM kv_store WHERE key = 'c-delete'");
	is_error($kv->http('GET', '/kv/c-delete'), 404, 'not_found',
		'GET after DELETE');
};

subtest 'INSERT ... ON CONFLICT DO UPDATE of a cached key is seen' => sub {
	put_and_cache('c-upsert', 'v1');
	sql(q{INSERT INTO kv_store (key, value) VALUES ('c-upsert', 'v2')
		  ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value});
	is($kv->http('GET', '/kv/c-upsert')->{content}, 'v2',
		'GET returns the upserted value');
};

subtest 'a plain INSERT of a key that was just 404 is seen' => sub {
	is($kv->http('GET', '/kv/c-insert')->{status}, 404, 'first GET 404');
	is($kv->http('GET', '/kv/c-insert')->{status}, 404, 'second GET 404');
	sql("INSERT INTO kv_store (key, value) VALUES ('c-insert', 'new')");
	my $get = $kv->http('GET', '/kv/c-insert');
	is($get->{status}, 200, 'GET 200 after INSERT');
	is($get->{content}, 'new', 'value');
};

subtest 'COPY into kv_store is seen' => sub {
	is($kv->http('GET', '/kv/c-copy')->{status}, 404, 'GET 404 before');
	sql("COPY kv_store (key, value) FROM STDIN;\nc-copy\tcopied\n\\.\n");
	is($kv->http('GET', '/kv/c-copy')->{content}, 'copied',
		'GET after COPY');
};

subtest 'a rolled-back kv_put leaves the cached value, ETag and cache intact' => sub {
	my $before = put_and_cache('rb-put', 'old');
	sql("BEGIN; SELECT kv_put('rb-put', 'new'); ROLLBACK;");
	my $get = $kv->http('GET', '/kv/rb-put');
	is($get->{status}, 200, 'GET 200');
	is($get->{content}, 'old', 'old value');
	is(header($get, 'ETag'), header($before, 'ETag'), 'old ETag');
	like(header($get, 'X-Cache'), qr/^(HIT|MISS)$/, 'X-Cache present');
	is(header($kv->http('GET', '/kv/rb-put'), 'X-Cache'), 'HIT',
		'the key is cached afterwards');
	is(sql("SELECT kv_get('rb-put')"), 'old', 'kv_get: old value');
};

subtest 'a rolled-back kv_put of a new key leaves no key' => sub {
	sql("BEGIN; SELECT kv_put('rb-new', 'ghost'); ROLLBACK;");
	is($kv->http('GET', '/kv/rb-new')->{status}, 404, 'GET 404');
	is(sql("SELECT kv_get('rb-new') IS NULL"), 't', 'kv_get NULL');
	is(sql("SELECT count(*) FROM kv_store WHERE key = 'rb-new'"), '0',
		'no row');
};

subtest 'a rolled-back kv_delete and plain UPDATE leave the cached value' => sub {
	my $before = put_and_cache('rb-update', 'old');
	sql("BEGIN; UPDATE kv_store SET value = 'new'::bytea WHERE key = 'rb-update'; ROLLBACK;");
	my $get = $kv->http('GET', '/kv/rb-update');
	is($get->{content}, 'old', 'old value after rolled-back UPDATE');
	is(header($get, 'ETag'), header($before, 'ETag'), 'old ETag');
	sql("BEGIN; SELECT kv_delete('rb-update'); ROLLBACK;");
	is($kv->http('GET', '/kv/rb-update')->{content}, 'old',
		'old value after rolled-back kv_delete');
	is(header($kv->http('GET', '/kv/rb-update'), 'X-Cache'), 'HIT',
		'the key is cached afterwards');
};

subtest 'an uncommitted write is not served until it commits' => sub {
	put_and_cache('in-flight', 'committed');
	my $bg = $node->background_psql('postgres');
	$bg->query_safe("BEGIN");
	$bg->query_safe("UPDATE kv_store SET value = 'uncommitted'::bytea WHERE key = 'in-flight'");
	my $during = $kv->http('GET', '/kv/in-flight');
	is($during->{status}, 200, 'GET during the transaction: 200');
	is($during->{content}, 'committed', 'GET during the transaction: old value');
	is($kv->http('GET', '/kv/in-flight')->{content}, 'committed',
		'again: old value');
	$bg->query_safe("COMMIT");
	is($kv->http('GET', '/kv/in-flight')->{content}, 'uncommitted',
		'GET after COMMIT: new value');

	$bg->query_safe("BEGIN");
	$bg->query_safe("SELECT kv_put('in-flight', 'second')");
	is($kv->http('GET', '/kv/in-flight')->{content}, 'uncommitted',
		'GET during an open kv_put: old value');
	$bg->query_safe("COMMIT");
	is($kv->http('GET', '/kv/in-flight')->{content}, 'second',
		'GET after COMMIT of the kv_put: new value');
	$bg->quit;
};

subtest 'a session reads its own uncommitted kv_put, not the cache' => sub {
	put_and_cache('own', 'cached');
	my $out = sql("BEGIN; SELECT kv_put('own', 'mine'); SELECT kv_get('own'); ROLLBACK;");
	my @lines = split /\n/, $out;
	is($lines[-1], 'mine', 'kv_get in the writing transaction sees the write');
	is($kv->http('GET', '/kv/own')->{content}, 'cached',
		'HTTP still serves the committed value');
};

subtest 'a REPEATABLE READ transaction reads its snapshot, not the cache' => sub {
	put_and_cache('rr', 'v1');
	my $bg = $node->background_psql('postgres');
	$bg->query_safe("BEGIN ISOLATION LEVEL REPEATABLE READ");
	is($bg->query_safe("SELECT kv_get('rr')"), 'v1', 'snapshot sees v1');
	put_and_cache('rr', 'v2');
	is($bg->query_safe("SELECT kv_get('rr')"), 'v1',
		'same transaction still sees v1 while the cache holds v2');
	$bg->query_safe("COMMIT");
	is($bg->query_safe("SELECT kv_get('rr')"), 'v2', 'next transaction sees v2');
	$bg->quit;
};

subtest 'PREPARE TRANSACTION after writing kv_store is refused' => sub {
	put_and_cache('prep', 'v1');
	foreach my $write ("SELECT kv_put('prep', 'v2')",
		"UPDATE kv_store SET value = 'v2'::bytea WHERE key = 'prep'")
	{
		my ($ret, $out, $err) = $node->psql('postgres',
			"BEGIN; $write; PREPARE TRANSACTION 'kvprep';");
		like($err, qr/ERROR/, "PREPARE after \"$write\" fails");
		is($node->safe_psql('postgres',
			"SELECT count(*) FROM pg_prepared_xacts WHERE gid = 'kvprep'"),
			'0', 'no prepared transaction left');
		$node->psql('postgres', "ROLLBACK PREPARED 'kvprep'");
		is($kv->http('GET', '/kv/prep')->{content}, 'v1', 'value unchanged');
	}
	my ($ret, $out, $err) = $node->psql('postgres',
		"BEGIN; SELECT kv_get('prep'); PREPARE TRANSACTION 'kvread'; COMMIT PREPARED 'kvread';");
	is($err, '', 'a transaction that only read kv_store can be prepared');
};

subtest 'kv_cache_reset empties the cache: the next GET is a MISS' => sub {
	put_and_cache('reset-me', 'x');
	sql("SELECT kv_cache_reset()");
	is(sql("SELECT hits FROM kv_stats()"), '0', 'hits zeroed');
	my $get = $kv->http('GET', '/kv/reset-me');
	is($get->{content}, 'x', 'value still served');
	is(header($get, 'X-Cache'), 'MISS', 'first GET after reset: MISS');
	is(header($kv->http('GET', '/kv/reset-me'), 'X-Cache'), 'HIT',
		'second GET: HIT');
	is(sql("SELECT cache_enabled AND hits >= 1 AND misses >= 1 FROM kv_stats()"),
		't', 'kv_stats counts the hit and the miss');
};

subtest 'TRUNCATE kv_store: cached keys are 404' => sub {
	put_and_cache('t1', 'one');
	put_and_cache('t2', 'two');
	sql("TRUNCATE kv_store");
	is_error($kv->http('GET', '/kv/t1'), 404, 'not_found', 'GET t1');
	is_error($kv->http('GET', '/kv/t2'), 404, 'not_found', 'GET t2');
	my $list = decode_json_body($kv->http('GET', '/kv/'));
	is_deeply($list && $list->{keys}, [], 'listing is empty');
	is($kv->http('PUT', '/kv/t1', 'again')->{status}, 201,
		'PUT after TRUNCATE: 201');
	is($kv->http('GET', '/kv/t1')->{content}, 'again', 'GET after TRUNCATE');
};

done_testing();
