
# Copyright (c) kvserver authors

# GET /metrics: Prometheus text format 0.0.4, accepted by
# `promtool check metrics`, and counters that follow what the server did.
#
# promtool is /usr/bin/promtool (Debian package prometheus).  When it is
# missing, its check is skipped unless KV_REQUIRE_PROMTOOL is set (CI sets it),
# in which case its absence is a failure.
#
# The request counters are bumped after the reply is written, so a scrape
# right after a reply may not count it yet (README: "figures from one scrape
# may be a few requests apart"); the request-count checks poll until the
# counter gets there, within a bound.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::RealBin/../lib";

use IPC::Run;
use KvServerTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);

my $PROMTOOL = '/usr/bin/promtool';

my $kv = KvServerTest->new('metrics');
my $node = $kv->node;

# GET /metrics; returns (response, { "name{l1="v1",l2="v2"}" => value })
# with the labels of each sample sorted by name.
sub scrape
{
	my $res = $kv->http('GET', '/metrics');
	my %m;
	foreach my $line (split /\n/, $res->{content} // '')
	{
		next if $line =~ /^#/ || $line !~ /\S/;
		next
		  unless $line =~ /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{([^}]*)\})? (\S+)$/;
		my ($name, $labels, $value) = ($1, $2, $3);
		my @pairs;
		if (defined $labels && length $labels)
		{
			@pairs = sort map { s/^\s+|\s+$//gr } split /,/, $labels;
		}
		my $id = @pairs ? $name . '{' . join(',', @pairs) . '}' : $name;
		$m{$id} = $value eq '+Inf' ? 9**9**9 : $value + 0;
	}
	return ($res, \%m);
}

sub requests_id
{
	my ($method, $code) = @_;
	return qq{kvserver_http_requests_total{code="$code",method="$method"}};
}

# Scrape until $cond->(metrics) holds or $seconds pass; the last scrape.
sub scrape_until
{
	my ($cond, $seconds) = @_;
	my $deadline = time() + $seconds;
	my $m;
	while (1)
	{
		(undef, $m) = scrape();
		return $m if $cond->($m) || time() >= $deadline;
		usleep(50_000);
	}
}

subtest 'GET /metrics: 200, text/plain; version=0.0.4, passes promtool' => sub {
	# something in every family first
	is($kv->http('PUT', '/kv/m/warm', 'x')->{status}, 201, 'PUT');
	$kv->http('GET', '/kv/m/warm') for 1 .. 2;

	my ($res, $m) = scrape();
	is($res->{status}, 200, 'status 200');
	like(header($res, 'Content-Type'), qr{^text/plain; ?version=0\.0\.4(?:;|$)},
		'Content-Type is text/plain; version=0.0.4');
	my $body = $res->{content} // '';
	like($body, qr/\n\z/, 'the page ends with a newline');

	my @families = qw(
	  kvserver_http_requests_total kvserver_http_request_duration_seconds
	  kvserver_cache_hits_total kvserver_cache_misses_total
	  kvserver_cache_evictions_total kvserver_cache_entries kvserver_cache_bytes
	  kvserver_cache_capacity_bytes kvserver_queue_depth
	  kvserver_write_batch_size kvserver_database_errors_total);
	foreach my $f (@families)
	{
		my @type = $body =~ /^# TYPE \Q$f\E (\S+)$/mg;
		is(scalar(@type), 1, "$f: one TYPE line");
	}
	foreach my $method (qw(GET HEAD PUT DELETE POST))
	{
		foreach my $code (qw(1xx 2xx 3xx 4xx 5xx))
		{
			ok(exists $m->{ requests_id($method, $code) },
				"kvserver_http_requests_total{method=\"$method\",code=\"$code\"} present");
		}
	}

  SKIP:
	{
		if (!-x $PROMTOOL)
		{
			fail("$PROMTOOL is missing and KV_REQUIRE_PROMTOOL is set")
			  if $ENV{KV_REQUIRE_PROMTOOL};
			skip "$PROMTOOL is not installed (package prometheus)", 1;
		}
		my ($out, $err) = ('', '');
		my $ok = eval {
			IPC::Run::run([ $PROMTOOL, 'check', 'metrics' ],
				'<', \$body, '>', \$out, '2>', \$err, IPC::Run::timeout(60));
		};
		my $rc = $@ ? "failed to run: $@" : $? >> 8;
		is($rc, 0, 'promtool check metrics accepts the page')
		  or diag("promtool stdout:\n$out\nstderr:\n$err");
	}
};

subtest 'histograms are cumulative, +Inf equals _count' => sub {
	my (undef, $m) = scrape();
	foreach my $h (qw(kvserver_http_request_duration_seconds kvserver_write_batch_size))
	{
		my @buckets =
		  sort { $a->[0] <=> $b->[0] }
		  map { /le="([^"]+)"/; [ $1 eq '+Inf' ? 9**9**9 : $1, $m->{$_} ] }
		  grep { /^\Q$h\E_bucket\{/ } keys %$m;
		cmp_ok(scalar(@buckets), '>', 1, "$h: has buckets");
		my $mono = 1;
		for my $i (1 .. $#buckets)
		{
			$mono = 0 if $buckets[$i][1] < $buckets[ $i - 1 ][1];
		}
		ok($mono, "$h: bucket counts never decrease");
		is($buckets[-1][0], 9**9**9, "$h: last bucket is +Inf");
		is($buckets[-1][1], $m->{"${h}_count"}, "$h: +Inf bucket equals _count");
		ok(defined $m->{"${h}_sum"} && $m->{"${h}_sum"} >= 0, "$h: _sum >= 0");
	}
	cmp_ok($m->{kvserver_http_request_duration_seconds_count}, '>', 0,
		'requests were timed');
	cmp_ok($m->{kvserver_write_batch_size_count}, '>', 0, 'batches were counted');
};

subtest 'N GETs of a cached key move requests, cache hits and the histogram' => sub {
	my $n = 20;
	is($kv->http('PUT', '/kv/m/hot', 'hot value')->{status}, 201, 'PUT');
	is(header($kv->http('GET', '/kv/m/hot'), 'X-Cache'), 'HIT',
		'first GET: HIT (the PUT installed the value)');

	my $get2xx = requests_id('GET', '2xx');
	my $before = scrape_until(sub { 1 }, 0);
	my $hits = 0;
	for (1 .. $n)
	{
		my $res = $kv->http('GET', '/kv/m/hot');
		is($res->{status}, 200, 'GET 200') if $res->{status} != 200;
		$hits++ if header($res, 'X-Cache') eq 'HIT';
	}
	is($hits, $n, "all $n GETs were cache hits");

	my $after = scrape_until(
		sub {
			$_[0]{$get2xx} - $before->{$get2xx} >= $n
			  && $_[0]{kvserver_http_request_duration_seconds_count}
			  - $before->{kvserver_http_request_duration_seconds_count} >= $n;
		},
		10);
	cmp_ok($after->{$get2xx} - $before->{$get2xx}, '>=', $n,
		"GET 2xx went up by at least $n");
	cmp_ok($after->{kvserver_cache_hits_total} - $before->{kvserver_cache_hits_total},
		'>=', $hits, "cache hits went up by at least $hits");
	cmp_ok(
		$after->{kvserver_http_request_duration_seconds_count}
		  - $before->{kvserver_http_request_duration_seconds_count},
		'>=', $n, "duration histogram _count went up by at least $n");
	cmp_ok(
		$after->{'kvserver_http_request_duration_seconds_bucket{le="+Inf"}'}
		  - $before->{'kvserver_http_request_duration_seconds_bucket{le="+Inf"}'},
		'>=', $n, '... and its +Inf bucket');
	cmp_ok($after->{kvserver_http_request_duration_seconds_sum}, '>',
		$before->{kvserver_http_request_duration_seconds_sum}, '... and its _sum');
	is($after->{kvserver_cache_misses_total}, $before->{kvserver_cache_misses_total},
		'no cache misses from hits');

	# a miss moves the miss counter (a key written by SQL is not cached)
	$kv->node->safe_psql('postgres', "SELECT kv_put('m/cold', 'cold')");
	my $res = $kv->http('GET', '/kv/m/cold');
	is(header($res, 'X-Cache'), 'MISS', 'its first GET is a miss');
	my (undef, $m) = scrape();
	cmp_ok($m->{kvserver_cache_misses_total}, '>', $after->{kvserver_cache_misses_total},
		'cache misses went up');
	cmp_ok($m->{$get2xx}, '>', $before->{$get2xx}, 'GET 2xx never goes down');
};

subtest 'a 404 is counted as GET 4xx, a PUT as PUT 2xx, a 405 as POST 4xx' => sub {
	my $get4xx = requests_id('GET', '4xx');
	my $put2xx = requests_id('PUT', '2xx');
	my $post4xx = requests_id('POST', '4xx');
	my $before = scrape_until(sub { 1 }, 0);

	is($kv->http('GET', '/kv/m/absent')->{status}, 404, 'GET of an absent key: 404');
	is($kv->http('PUT', '/kv/m/counted', 'v')->{status}, 201, 'PUT: 201');

	# 405 for anything but GET and HEAD on /metrics
	my $res = $kv->http('POST', '/metrics', 'x', { 'Content-Type' => 'text/plain' });
	is_error($res, 405, 'method_not_allowed', 'POST /metrics');
	is(header($res, 'Allow'), 'GET, HEAD', 'Allow: GET, HEAD');
	foreach my $method (qw(PUT DELETE))
	{
		is_error($kv->http($method, '/metrics'), 405, 'method_not_allowed',
			"$method /metrics");
	}

	my $after = scrape_until(
		sub {
			$_[0]{$get4xx} - $before->{$get4xx} >= 1
			  && $_[0]{$put2xx} - $before->{$put2xx} >= 1
			  && $_[0]{$post4xx} - $before->{$post4xx} >= 1;
		},
		10);
	cmp_ok($after->{$get4xx} - $before->{$get4xx}, '>=', 1, 'the 404 is in GET 4xx');
	cmp_ok($after->{$put2xx} - $before->{$put2xx}, '>=', 1, 'the PUT is in PUT 2xx');
	cmp_ok($after->{$post4xx} - $before->{$post4xx}, '>=', 1, 'the 405 is in POST 4xx');
	is($after->{ requests_id('GET', '5xx') }, 0, 'no GET 5xx');
	is($after->{ requests_id('PUT', '5xx') }, 0, 'no PUT 5xx');
	is($after->{kvserver_database_errors_total}, 0, 'no database errors');

	# HEAD /metrics: the headers of GET, no body
	my $raw = $kv->raw_http(
		"HEAD /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
	my $head = parse_response($raw->{data}, head => 1);
	is($head && $head->{status}, 200, 'HEAD /metrics: 200');
	is($head && $head->{extra}, '', 'HEAD /metrics: no body');
};

subtest 'cache figures equal kv_stats() at a quiet moment' => sub {
	# a few more entries, so that equality is not 0 = 0
	foreach my $i (1 .. 5)
	{
		$kv->http('PUT', "/kv/m/e$i", "value $i");
		$kv->http('GET', "/kv/m/e$i");
	}
	my $sql = q{SELECT entries, used_bytes, capacity_bytes, hits, misses, evictions
		FROM kv_stats()};
	my %pairs = (
		kvserver_cache_entries => 0,
		kvserver_cache_bytes => 1,
		kvserver_cache_capacity_bytes => 2,
		kvserver_cache_hits_total => 3,
		kvserver_cache_misses_total => 4,
		kvserver_cache_evictions_total => 5);

	# nothing else is running; still, take the figures between two identical
	# kv_stats() readings, and try again if they moved
	my ($s1, $m, $s2);
	for my $try (1 .. 5)
	{
		$s1 = $node->safe_psql('postgres', $sql);
		(undef, $m) = scrape();
		$s2 = $node->safe_psql('postgres', $sql);
		last if $s1 eq $s2;
		usleep(200_000);
	}
	is($s1, $s2, 'kv_stats() did not move around the scrape');
	my @sql = split /\|/, $s1;
	cmp_ok($sql[0], '>=', 5, 'the cache has entries');
	foreach my $name (sort keys %pairs)
	{
		is($m->{$name}, $sql[ $pairs{$name} ], "$name equals kv_stats()");
	}
	is($m->{kvserver_queue_depth}, 0, 'queue depth is 0 when idle');
};

done_testing();
