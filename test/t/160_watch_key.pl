
# Copyright (c) kvserver authors

# Blocking GET of a key: GET /kv/{key}?wait=DURATION with If-None-Match
# answers as soon as the key's state differs from that version (200 with the
# new value and ETag; 404 when deleted or expired), or 304 at the deadline.
# Woken by every path that writes (HTTP, kv_put, plain SQL, TRUNCATE),
# never before the commit, never by a rollback.  Malformed durations are
# 400; kvserver.max_wait caps them.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::RealBin/../lib";

use KvServerTest;
use KvWatch;
use Test::More;
use Time::HiRes qw(time usleep);

my $kv = KvServerTest->new('watch_key');
my $node = $kv->node;

sub etag_of
{
	my ($key) = @_;
	my $r = $kv->http('GET', "/kv/$key");
	return $r->{headers}{etag};
}

sub sql { return $node->safe_psql('postgres', $_[0]); }

$kv->http('PUT', '/kv/k', 'one');
my $etag = etag_of('k');
like($etag, qr/^"\d+"$/, 'a key with an ETag');

subtest 'without If-None-Match, or with a stale one, it answers at once' => sub {
	my $t0 = time();
	my $r = $kv->http('GET', '/kv/k?wait=10s');
	is($r->{status}, 200, 'no If-None-Match: 200 at once');
	is($r->{content}, 'one', 'with the value');
	$r = $kv->http('GET', '/kv/k?wait=10s', undef, { 'If-None-Match' => '"999999"' });
	is($r->{status}, 200, 'another version named: 200 at once');
	$r = $kv->http('GET', '/kv/absent?wait=10s', undef, { 'If-None-Match' => $etag });
	is($r->{status}, 404, 'an absent key: 404 at once');
	$r = $kv->http('GET', '/kv/k?wait=0', undef, { 'If-None-Match' => $etag });
	is($r->{status}, 304, 'wait=0: 304 at once');
	cmp_ok(time() - $t0, '<', 5, 'all of them without waiting (10 s)');
};

subtest 'malformed durations are 400' => sub {
	for my $bad ('abc', '-1', '5parsecs', '', '1min30', '1e3', 's')
	{
		my $r = $kv->http('GET', '/kv/k?wait=' . uri_escape($bad), undef,
			{ 'If-None-Match' => $etag });
		is($r->{status}, 400, "wait=$bad: 400");
		is_error($r, 400, 'bad_request', "wait=$bad");
	}
	my $r = $kv->http('GET', '/kv/k?wait=1&wait=2', undef, { 'If-None-Match' => $etag });
	is($r->{status}, 400, 'a repeated wait: 400');
	for my $good ('1', '0.5', '500ms', '1s', '1%20s', '1+sec')
	{
		$r = $kv->http('GET', "/kv/k?wait=$good", undef, { 'If-None-Match' => $etag });
		is($r->{status}, 304, "wait=$good: 304 after the wait");
	}
};

subtest '304 after the wait' => sub {
	my $w = KvWatch::start($kv, '/kv/k?wait=1s', 'If-None-Match' => $etag);
	my $r = KvWatch::finish($w);
	is($r->{status}, 304, '304 Not Modified');
	is($r->{headers}{etag}, $etag, 'with the ETag');
	cmp_ok($r->{elapsed}, '>=', 0.95, 'after the second asked for');
	cmp_ok($r->{elapsed}, '<', 4, 'not much later');

};

# Start a watch on 'k', let it settle, run 'act', and return the answer.
sub watch_through
{
	my ($act, %opts) = @_;
	my $tag = etag_of('k');
	my $w = KvWatch::start($kv, '/kv/k?wait=' . ($opts{wait} || '20s'),
		'If-None-Match' => $tag);
	ok(!KvWatch::answered_within($w, 0.3), 'the watch waits');
	my $t = time();
	$act->();
	my $done = time();
	my $r = KvWatch::finish($w);
	$r->{since_act} = $r->{answered_at} - $done;
	$r->{old_etag} = $tag;
	return $r;
}

subtest 'woken by a plain SQL UPDATE, with the new value' => sub {
	my $r = watch_through(sub { sql("UPDATE kv_store SET value = 'sql' WHERE key = 'k'") });
	is($r->{status}, 200, 'answered 200');
	is($r->{content}, 'sql', 'the new value');
	isnt($r->{headers}{etag}, $r->{old_etag}, 'a new ETag');
	is($r->{headers}{etag}, etag_of('k'), 'the current one');
	# the wake-up takes milliseconds (make bench-watch); this only says "at once"
	cmp_ok($r->{since_act}, '<', 2, 'answered within two seconds of the commit');
	note sprintf('wake-up after the UPDATE returned: %.1f ms', 1000 * $r->{since_act});
};

subtest 'woken by HTTP PUT, kv_put and a multi-statement transaction' => sub {
	my $r = watch_through(sub { $kv->http('PUT', '/kv/k', 'http') });
	is("$r->{status} $r->{content}", '200 http', 'HTTP PUT');
	$r = watch_through(sub { sql("SELECT kv_put('k', 'fn')") });
	is("$r->{status} $r->{content}", '200 fn', 'kv_put');
	$r = watch_through(sub {
		sql("BEGIN; UPDATE kv_store SET value = 'txn' WHERE key = 'k'; SELECT pg_sleep(0.5); COMMIT");
	});
	is("$r->{status} $r->{content}", '200 txn', 'a transaction');
	cmp_ok($r->{since_act}, '<', 2, 'answered once it committed');
};

subtest 'never before the commit, never for a rollback' => sub {
	my $tag = etag_of('k');
	my $w = KvWatch::start($kv, '/kv/k?wait=2s', 'If-None-Match' => $tag);
	sql("BEGIN; UPDATE kv_store SET value = 'rolled back' WHERE key = 'k'; ROLLBACK");
	sql("BEGIN; DELETE FROM kv_store WHERE key = 'k'; ROLLBACK");
	sql("SELECT kv_put('k2', 'other key')");
	my $r = KvWatch::finish($w);
	is($r->{status}, 304, 'rollbacks and another key: 304 at the deadline');
	cmp_ok($r->{elapsed}, '>=', 1.9, 'after the whole wait');
	is(etag_of('k'), $tag, 'the key is unchanged');

	# a transaction that stays open: the watch must not answer until COMMIT
	my $psql = $node->background_psql('postgres');
	$w = KvWatch::start($kv, '/kv/k?wait=20s', 'If-None-Match' => $tag);
	$psql->query_safe("BEGIN; UPDATE kv_store SET value = 'later' WHERE key = 'k'");
	ok(!KvWatch::answered_within($w, 1), 'not answered while the writer is open');
	$psql->query_safe('COMMIT');
	$r = KvWatch::finish($w);
	is("$r->{status} $r->{content}", '200 later', 'answered after COMMIT');
	$psql->quit;
};

subtest 'deleted, truncated or expired: 404' => sub {
	my $r = watch_through(sub { sql("DELETE FROM kv_store WHERE key = 'k'") });
	is($r->{status}, 404, 'DELETE: 404');
	is_error($r, 404, 'not_found', 'deleted');

	$kv->http('PUT', '/kv/k', 'back');
	$r = watch_through(sub { sql('TRUNCATE kv_store') });
	is($r->{status}, 404, 'TRUNCATE: 404');

	$kv->http('PUT', '/kv/k?ttl=2', 'short');
	my $tag = etag_of('k');
	my $w = KvWatch::start($kv, '/kv/k?wait=20s', 'If-None-Match' => $tag);
	$r = KvWatch::finish($w);
	is($r->{status}, 404, 'a TTL that runs out: 404');
	cmp_ok($r->{elapsed}, '<', 8, 'when it expires, not at the deadline (20 s)');
};

subtest 'If-None-Match: * waits for the key to go; HEAD works too' => sub {
	$kv->http('PUT', '/kv/k', 'here');
	my $w = KvWatch::start($kv, '/kv/k?wait=20s', 'If-None-Match' => '*');
	ok(!KvWatch::answered_within($w, 0.3), 'waits while it exists');
	$kv->http('PUT', '/kv/k', 'changed');
	ok(!KvWatch::answered_within($w, 0.3), 'a new version still exists');
	$kv->http('DELETE', '/kv/k');
	my $r = KvWatch::finish($w);
	is($r->{status}, 404, 'gone: 404');

	$kv->http('PUT', '/kv/k', 'headed');
	my $tag = etag_of('k');
	my $sock = $kv->connect_socket;
	KvServerTest::write_all($sock,
		"HEAD /kv/k?wait=20s HTTP/1.1\r\nHost: kv\r\nConnection: close\r\nIf-None-Match: $tag\r\n\r\n");
	$w = { sock => $sock, t0 => time() };
	ok(!KvWatch::answered_within($w, 0.3), 'HEAD waits');
	$kv->http('PUT', '/kv/k', 'headed again');
	$r = KvWatch::finish($w);
	is($r->{status}, 200, 'HEAD: 200');
	is($r->{content}, '', 'without a body');
};

subtest 'a transaction of many keys wakes the keys it wrote only' => sub {
	sql("SELECT kv_put('bulk/' || i, 'v') FROM generate_series(1, 20) i");
	$kv->http('PUT', '/kv/k', 'steady');
	my $tag7 = etag_of('bulk/7');
	my $tagk = etag_of('k');
	my $w7 = KvWatch::start($kv, '/kv/bulk/7?wait=20s', 'If-None-Match' => $tag7);
	my $wk = KvWatch::start($kv, '/kv/k?wait=1500ms', 'If-None-Match' => $tagk);
	usleep(200_000);
	sql("UPDATE kv_store SET value = 'w' WHERE key LIKE 'bulk/%'");
	my $r = KvWatch::finish($w7);
	is("$r->{status} $r->{content}", '200 w', 'a key among twenty: woken');
	$r = KvWatch::finish($wk);
	is($r->{status}, 304, 'a key outside them: 304 at its deadline');
};

# last: the worker applies a reload at its next turn, which no later test
# should have to wait for
subtest 'kvserver.max_wait caps the wait' => sub {
	$kv->http('PUT', '/kv/k', 'capped');
	my $tag = etag_of('k');
	sql("ALTER SYSTEM SET kvserver.max_wait = '3s'; SELECT pg_reload_conf()");
	usleep(500_000);
	my $w = KvWatch::start($kv, '/kv/k?wait=5min', 'If-None-Match' => $tag);
	my $r = KvWatch::finish($w);
	is($r->{status}, 304, 'wait=5min: 304');
	cmp_ok($r->{elapsed}, '>=', 2.9, 'after kvserver.max_wait (3s)');
	cmp_ok($r->{elapsed}, '<', 10, 'not after 5 minutes');
};

done_testing();
