
# Copyright (c) kvserver authors

# Capacity of watches: each waiting watch holds an HTTP thread, so at most
# kvserver.max_watchers wait; beyond that a watch gets 429 with
# Retry-After while ordinary requests (and watches whose answer is ready)
# are served.  Waiting watches are answered at once (503) when the HTTP
# server restarts or the server shuts down.  /metrics shows the watchers
# and leaves their waiting out of the request-duration histogram.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::RealBin/../lib";

use KvServerTest;
use KvWatch;
use PostgreSQL::Test::Cluster;
use Test::More;
use Time::HiRes qw(time usleep);

my $kv = KvServerTest->new('watch_capacity',
	conf => "kvserver.max_watchers = 3\nkvserver.public_metrics = on\n");
my $node = $kv->node;

sub etag_of { return $kv->http('GET', "/kv/$_[0]")->{headers}{etag}; }

sub metric
{
	my ($name) = @_;
	my $body = $kv->http('GET', '/metrics')->{content};
	return $body =~ /^\Q$name\E (\S+)$/m ? $1 : undef;
}

$kv->http('PUT', "/kv/w$_", 'v') for 1 .. 4;
$kv->http('PUT', '/kv/plain', 'served');

subtest '429 past kvserver.max_watchers, while ordinary requests are served' => sub {
	my @w = map { KvWatch::start($kv, "/kv/w$_?wait=20s", 'If-None-Match' => etag_of("w$_")) } 1 .. 3;
	ok(!KvWatch::answered_within($w[$_], 0.2), 'watch ' . ($_ + 1) . ' waits') for 0 .. 2;
	is(metric('kvserver_watchers'), 3, 'kvserver_watchers 3');

	my $r = $kv->http('GET', '/kv/w4?wait=20s', undef, { 'If-None-Match' => etag_of('w4') });
	is_error($r, 429, 'too_many_requests', 'a fourth watch');
	like($r->{headers}{'retry-after'}, qr/^\d+$/, 'with Retry-After');
	$r = $kv->http('GET', '/kv/?prefix=w&index=' . $kv->http('GET', '/kv/?prefix=w')->{headers}{'x-kv-index'} . '&wait=20s');
	is($r->{status}, 429, 'and a prefix watch');

	my $t0 = time();
	$r = $kv->http('GET', '/kv/plain');
	is("$r->{status} $r->{content}", '200 served', 'an ordinary GET is served');
	$r = $kv->http('PUT', '/kv/plain', 'written');
	is($r->{status}, 200, 'an ordinary PUT too');
	$r = $kv->http('GET', '/kv/?prefix=w');
	is($r->{status}, 200, 'and a listing');
	$r = $kv->http('GET', '/kv/w4?wait=20s', undef, { 'If-None-Match' => '"999999"' });
	is($r->{status}, 200, 'a watch whose answer is ready needs no place');
	cmp_ok(time() - $t0, '<', 3, 'all at once');

	$kv->http('PUT', '/kv/w1', 'changed');
	$r = KvWatch::finish($w[0]);
	is($r->{status}, 200, 'the first watch answered');
	my $w4 = KvWatch::start($kv, '/kv/w4?wait=20s', 'If-None-Match' => etag_of('w4'));
	ok(!KvWatch::answered_within($w4, 0.3), 'its place is free for another');
	$kv->http('PUT', "/kv/w$_", 'changed') for 2 .. 4;
	is(KvWatch::finish($_)->{status}, 200, 'answered') for @w[1, 2], $w4;
	is(metric('kvserver_watchers'), 0, 'kvserver_watchers 0');
};

subtest 'waiting is not counted as request time' => sub {
	my $before = metric('kvserver_http_request_duration_seconds_sum');
	my $w = KvWatch::start($kv, '/kv/w1?wait=1500ms', 'If-None-Match' => etag_of('w1'));
	is(KvWatch::finish($w)->{status}, 304, 'a 1.5 s watch');
	my $after = metric('kvserver_http_request_duration_seconds_sum');
	cmp_ok($after - $before, '<', 1, 'adds well under its 1.5 s wait to the duration sum');
};

subtest 'an HTTP server restart answers waiting watches' => sub {
	my @w = (KvWatch::start($kv, '/kv/w1?wait=60s', 'If-None-Match' => etag_of('w1')),
		KvWatch::start($kv, '/kv/?prefix=w&wait=60s&index=' . $kv->http('GET', '/kv/?prefix=w')->{headers}{'x-kv-index'}));
	ok(!KvWatch::answered_within($_, 0.3), 'waits') for @w;
	my $port = PostgreSQL::Test::Cluster::get_free_port();
	$node->safe_psql('postgres', "ALTER SYSTEM SET kvserver.port = $port; SELECT pg_reload_conf()");
	for my $w (@w)
	{
		my $r = KvWatch::finish($w);
		is($r->{status}, 503, 'answered 503');
		cmp_ok($r->{elapsed}, '<', 5, 'promptly');
	}
	$kv->{port} = $port;
	ok($kv->wait_for_health(200, 30), 'serving on the new port');
};

subtest 'shutdown answers waiting watches promptly' => sub {
	my @w = map { KvWatch::start($kv, "/kv/w$_?wait=60s", 'If-None-Match' => etag_of("w$_")) } 1 .. 3;
	ok(!KvWatch::answered_within($_, 0.3), 'waits') for @w;
	my $t0 = time();
	$node->stop('fast');
	cmp_ok(time() - $t0, '<', 10, 'the server stopped');
	for my $w (@w)
	{
		my $r = KvWatch::finish($w, 10);
		is($r->{status}, 503, 'answered 503');
		cmp_ok($r->{answered_at} - $t0, '<', 5, 'within seconds of the stop');
	}
};

done_testing();
