
# Copyright (c) kvserver authors

# Expiry (TTL): PUT ?ttl=, "ttl" in POST /kv/, kv_put(..., interval).
#
# An expired key is never returned, whatever the path (GET, HEAD, listing,
# kv_get, kv_keys, the lock-free cache hits), and the worker deletes the
# rows of expired keys every kvserver.expire_interval.
#
# The node starts with kvserver.expire_interval = 0, so the first part sees
# expired rows still in kv_store and hidden by the reads alone (lazy
# expiry); then the interval is set to 1s with a reload and the reaper has to
# delete them.
#
# Nothing here depends on the scheduler being quick: a 200 before expiry is
# asserted only when the GET completed well inside the TTL (measured, not
# assumed), and expiry is awaited by polling with generous bounds.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::RealBin/../lib";

use JSON::PP;
use KvServerTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);
use Time::Local qw(timegm);

my $kv = KvServerTest->new('ttl', conf => "kvserver.expire_interval = 0");
my $node = $kv->node;

# An old build does not know the setting: say so plainly.
my ($rc, $setting, $err) =
  $node->psql('postgres', 'SHOW kvserver.expire_interval');
BAIL_OUT("kvserver.expire_interval is unknown to the installed kvserver "
	  . "(old build?): $err")
  if $rc != 0;
is($setting, '0', 'kvserver.expire_interval is 0 for the lazy-expiry part');

# seconds since the epoch of an RFC 3339 UTC time as we send it, or undef
sub parse_rfc3339
{
	my ($s) = @_;
	return undef
	  unless defined $s
	  && $s =~ /^(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)Z$/;
	return timegm($6, $5, $4, $3, $2 - 1, $1);
}

# kv_store.expires_at of a key as the server formats X-Expires-At
sub sql_expires_at
{
	my ($key) = @_;
	return $node->safe_psql('postgres',
		"SELECT to_char(expires_at AT TIME ZONE 'UTC', "
		  . "'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') FROM kv_store WHERE key = "
		  . sql_quote($key));
}

sub rows_of
{
	my ($key) = @_;
	return $node->safe_psql('postgres',
		'SELECT count(*) FROM kv_store WHERE key = ' . sql_quote($key));
}

# GET the key until it answers 404 or $seconds pass.  Returns the first 404
# (with {t_start, t_end} added) or undef, and the statuses seen before it.
sub wait_for_404
{
	my ($path, $seconds) = @_;
	my $deadline = time() + $seconds;
	my @seen;
	while (time() < $deadline)
	{
		my $t0 = time();
		my $res = $kv->http('GET', $path);
		my $t1 = time();
		if ($res->{status} == 404)
		{
			$res->{t_start} = $t0;
			$res->{t_end} = $t1;
			return ($res, \@seen);
		}
		push @seen, $res->{status};
		usleep(50_000);
	}
	return (undef, \@seen);
}

sub list_keys
{
	my ($prefix) = @_;
	my $res = $kv->http('GET', '/kv/?prefix=' . uri_escape($prefix));
	is($res->{status}, 200, "listing of $prefix: 200");
	my $json = decode_json_body($res);
	return ref $json eq 'HASH' ? $json->{keys} : undef;
}

sub sql_keys
{
	my ($prefix) = @_;
	return $node->safe_psql('postgres',
		'SELECT coalesce(string_agg(k, \',\' ORDER BY k), \'\') FROM kv_keys('
		  . sql_quote($prefix) . ') AS k');
}

subtest 'PUT ?ttl=1: served until it expires, then 404 everywhere' => sub {
	my $key = 'ttl1/short';
	my $path = key_path($key);

	my $t_put = time();
	my $put = $kv->http('PUT', $path . '?ttl=1', 'short-lived',
		{ 'Content-Type' => 'text/plain' });
	my $t_put_end = time();
	is($put->{status}, 201, 'PUT ?ttl=1: 201');

	# The row's expiry was computed while the PUT was in the server, so it
	# lies in [t_put + 1, t_put_end + 1].
	my $t_get = time();
	my $get = $kv->http('GET', $path);
	my $t_get_end = time();
	my $get2 = $kv->http('GET', $path);
	my $t_get2_end = time();
	if ($t_get_end < $t_put + 0.8)
	{
		is($get->{status}, 200, sprintf(
				'GET %.3f s after the PUT began (well within the ttl): 200',
				$t_get_end - $t_put));
		is($get->{content}, 'short-lived', '... with the value');
		my $xe = header($get, 'X-Expires-At');
		like($xe, qr/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/,
			'X-Expires-At is an RFC 3339 UTC time');
		my $e = parse_rfc3339($xe);
		# the header is truncated to the second
		ok( defined $e
			  && $e >= int($t_put + 1) - 1
			  && $e <= $t_put_end + 1,
			sprintf('X-Expires-At is ~1 s after the PUT (%s, PUT at %.3f)',
				$xe, $t_put));
	}
	else
	{
		note sprintf('first GET ended %.3f s after the PUT: too late to '
			  . 'insist on 200 (got %d)', $t_get_end - $t_put,
			$get->{status});
	}
	if ($t_get2_end < $t_put + 0.8)
	{
		is($get2->{status}, 200, 'second GET within the ttl: 200');
	}

	my ($gone, $seen) = wait_for_404($path, 10);
	ok($gone, 'GET answers 404 within 10 s')
	  or diag('statuses seen: ' . join(',', @$seen));
  SKIP:
	{
		skip 'never expired', 3 unless $gone;
		cmp_ok($gone->{t_end}, '>=', $t_put + 1,
			sprintf('not expired early: first 404 ended %.3f s after the PUT began',
				$gone->{t_end} - $t_put));
		is_error($gone, 404, 'not_found', 'expired key');
		is(header($gone, 'X-Expires-At'), '', 'a 404 has no X-Expires-At');
	}
	my @bad = grep { $_ != 200 } @$seen;
	is_deeply(\@bad, [], 'only 200s before the first 404');

	# stays gone, however it is asked for (the cache may have held it)
	is($kv->http('GET', $path)->{status}, 404, 'GET again: 404');
	my $raw = $kv->raw_http("HEAD $path HTTP/1.1\r\nHost: 127.0.0.1\r\n"
		  . "Connection: close\r\n\r\n");
	my $head = parse_response($raw->{data}, head => 1);
	is($head && $head->{status}, 404, 'HEAD: 404');
	is($head && $head->{extra}, '', 'HEAD: no body');

	is_deeply(list_keys('ttl1/'), [], 'listing leaves out the expired key');
	is($node->safe_psql('postgres',
		'SELECT kv_get(' . sql_quote($key) . ') IS NULL'),
		't', 'kv_get of the expired key is NULL');
	is($node->safe_psql('postgres',
		'SELECT kv_get_bytea(' . sql_quote($key) . ') IS NULL'),
		't', 'kv_get_bytea of the expired key is NULL');
	is(sql_keys('ttl1/'), '', 'kv_keys leaves out the expired key');

	# expire_interval = 0: the row is still there, hidden by the reads alone
	is(rows_of($key), '1', 'with expire_interval = 0 the row stays in kv_store');
};

subtest 'X-Expires-At of a long ttl is ~ttl s ahead and matches kv_store' => sub {
	my $key = 'ttl2/long';
	my $path = key_path($key);
	my $t0 = time();
	is($kv->http('PUT', $path . '?ttl=3600', 'stays')->{status}, 201,
		'PUT ?ttl=3600: 201');
	my $t1 = time();
	my $get = $kv->http('GET', $path);
	is($get->{status}, 200, 'GET: 200');
	my $xe = header($get, 'X-Expires-At');
	my $e = parse_rfc3339($xe);
	ok(defined $e && $e >= int($t0) + 3600 - 1 && $e <= $t1 + 3600,
		sprintf('X-Expires-At %s is ~3600 s after the PUT (%.0f)', $xe, $t0));
	is($xe, sql_expires_at($key), 'X-Expires-At is kv_store.expires_at');

	# a cache hit carries it too, and HEAD
	my $hit = $kv->http('GET', $path);
	is(header($hit, 'X-Cache'), 'HIT', 'second GET is a cache hit');
	is(header($hit, 'X-Expires-At'), $xe, 'the hit carries the same X-Expires-At');
	my $raw = $kv->raw_http("HEAD $path HTTP/1.1\r\nHost: 127.0.0.1\r\n"
		  . "Connection: close\r\n\r\n");
	my $head = parse_response($raw->{data}, head => 1);
	is($head && $head->{headers}{'x-expires-at'}, $xe, 'HEAD carries it too');

	# no ttl, no header
	is($kv->http('PUT', key_path('ttl2/none'), 'x')->{status}, 201, 'PUT without ttl');
	is(header($kv->http('GET', key_path('ttl2/none')), 'X-Expires-At'), '',
		'no X-Expires-At without a ttl');
	is($node->safe_psql('postgres',
		"SELECT expires_at IS NULL FROM kv_store WHERE key = 'ttl2/none'"),
		't', 'expires_at NULL without a ttl');

	# a PUT without ttl over a key with one replaces it: no expiry any more
	is($kv->http('PUT', key_path('ttl2/cleared') . '?ttl=3600', 'x')->{status},
		201, 'PUT ?ttl=3600');
	isnt(header($kv->http('GET', key_path('ttl2/cleared')), 'X-Expires-At'),
		'', 'has X-Expires-At');
	is($kv->http('PUT', key_path('ttl2/cleared'), 'y')->{status}, 200,
		'PUT again without ttl: 200');
	is(header($kv->http('GET', key_path('ttl2/cleared')), 'X-Expires-At'), '',
		'the expiry is gone with the replaced value');
};

subtest 'an invalid ttl is 400 bad_request and stores nothing' => sub {
	my $key = 'ttl3/bad';
	foreach my $ttl ('0', '-1', 'abc', '1.5', '', '1e3', ' 5',
		# 100 years is the limit
		(100 * 365 * 24 * 3600 + 1))
	{
		is_error($kv->http('PUT', key_path($key) . '?ttl=' . uri_escape($ttl), 'x'),
			400, 'bad_request', "PUT ?ttl=$ttl");
	}
	is_error($kv->http('PUT', key_path($key) . '?ttl=5&ttl=6', 'x'),
		400, 'bad_request', 'PUT with ttl twice');
	is($kv->http('GET', key_path($key))->{status}, 404, 'nothing stored');
	is(rows_of($key), '0', 'no row');

	my $res = $kv->http('PUT', key_path('ttl3/max') . '?ttl=' . (100 * 365 * 24 * 3600),
		'x');
	is($res->{status}, 201, 'ttl of exactly 100 years: 201');
};

subtest 'POST /kv/ with "ttl": 2 expires; a non-integer ttl is 400' => sub {
	my $key = 'ttl4/post';
	my $t_post = time();
	my $res = $kv->http('POST', '/kv/',
		encode_json({ key => $key, value => 'posted', ttl => 2 }),
		{ 'Content-Type' => 'application/json' });
	my $t_post_end = time();
	is($res->{status}, 201, 'POST with "ttl": 2: 201');

	my $get = $kv->http('GET', key_path($key));
	my $t_get_end = time();
	if ($t_get_end < $t_post + 1.5)
	{
		is($get->{status}, 200, 'GET within the ttl: 200');
		is($get->{content}, 'posted', '... with the value');
	}
	else
	{
		note sprintf('GET ended %.3f s after the POST: not insisting on 200',
			$t_get_end - $t_post);
	}
	my $xe = header($get, 'X-Expires-At');
	if ($get->{status} == 200)
	{
		my $e = parse_rfc3339($xe);
		ok(defined $e && $e >= int($t_post + 2) - 1 && $e <= $t_post_end + 2,
			"X-Expires-At $xe is ~2 s after the POST");
	}

	my ($gone, $seen) = wait_for_404(key_path($key), 10);
	ok($gone, 'expired within 10 s') or diag('statuses: ' . join(',', @$seen));
	cmp_ok($gone ? $gone->{t_end} : 0, '>=', $t_post + 2, 'not before its 2 s');

	foreach my $bad ('"x"', '"2"', '0', '-1', '1.5', 'true', '[2]', '{}')
	{
		is_error($kv->http('POST', '/kv/',
			qq({"key":"ttl4/bad","value":"v","ttl":$bad}),
			{ 'Content-Type' => 'application/json' }),
			400, 'bad_request', qq(POST with "ttl": $bad));
	}
	is($kv->http('GET', key_path('ttl4/bad'))->{status}, 404, 'nothing stored');
	is(rows_of('ttl4/bad'), '0', 'no row');
};

subtest 'kv_put(key, value, interval) expires; kv_get, kv_keys, HTTP agree' => sub {
	my $t0 = time();
	$node->safe_psql('postgres',
		"SELECT kv_put('ttl5/sql', 'from sql', interval '1 second')");
	$node->safe_psql('postgres',
		"SELECT kv_put('ttl5/sql-long', 'stays', interval '1 hour')");
	my $get = $kv->http('GET', key_path('ttl5/sql-long'));
	is($get->{status}, 200, 'HTTP GET of the 1-hour key: 200');
	is(header($get, 'X-Expires-At'), sql_expires_at('ttl5/sql-long'),
		'its X-Expires-At is kv_store.expires_at');

	my ($gone) = wait_for_404(key_path('ttl5/sql'), 10);
	ok($gone, 'the 1-second key is 404 over HTTP within 10 s');
	cmp_ok($gone ? $gone->{t_end} : 0, '>=', $t0 + 1, 'not before its second');
	is($node->safe_psql('postgres', "SELECT kv_get('ttl5/sql') IS NULL"),
		't', 'kv_get is NULL');
	is(sql_keys('ttl5/'), 'ttl5/sql-long', 'kv_keys has only the live key');
	is_deeply(list_keys('ttl5/'), ['ttl5/sql-long'],
		'the listing has only the live key');
	is($node->safe_psql('postgres', "SELECT kv_get('ttl5/sql-long')"),
		'stays', 'kv_get of the live key');
};

subtest 'an expired key is absent for conditional requests, DELETE and POST' => sub {
	my @keys = map { "ttl6/$_" } qw(post inm im etag del get);
	my %etag;
	foreach my $k (@keys)
	{
		my $res = $kv->http('PUT', key_path($k) . '?ttl=1', "old $k");
		is($res->{status}, 201, "PUT $k ?ttl=1");
		$etag{$k} = header($res, 'ETag');
	}
	foreach my $k (@keys)
	{
		my ($gone) = wait_for_404(key_path($k), 10);
		ok($gone, "$k expired");
	}
	is($node->safe_psql('postgres',
		"SELECT count(*) FROM kv_store WHERE key LIKE 'ttl6/%'"),
		scalar(@keys), 'the expired rows are still in kv_store (lazy expiry)');

	# POST over an expired row creates it: 201, not 409
	my $res = $kv->http('POST', '/kv/',
		encode_json({ key => 'ttl6/post', value => 'new' }),
		{ 'Content-Type' => 'application/json' });
	is($res->{status}, 201, 'POST over an expired key: 201, not 409');
	my $get = $kv->http('GET', key_path('ttl6/post'));
	is($get->{content}, 'new', 'serves the new value');
	is(header($get, 'X-Expires-At'), '', 'without the old expiry');
	isnt(header($get, 'ETag'), $etag{'ttl6/post'}, 'with a new ETag');
	is_error($kv->http('POST', '/kv/',
		encode_json({ key => 'ttl6/post', value => 'again' }),
		{ 'Content-Type' => 'application/json' }),
		409, 'conflict', 'and a second POST is 409');

	# create-only PUT over an expired row: created
	$res = $kv->http('PUT', key_path('ttl6/inm'), 'new', { 'If-None-Match' => '*' });
	is($res->{status}, 201, 'PUT If-None-Match: * over an expired key: 201');
	is($kv->http('GET', key_path('ttl6/inm'))->{content}, 'new', 'serves it');

	# If-Match: * and the old ETag do not match an expired key
	is_error($kv->http('PUT', key_path('ttl6/im'), 'new', { 'If-Match' => '*' }),
		412, 'precondition_failed', 'PUT If-Match: * on an expired key');
	is_error($kv->http('PUT', key_path('ttl6/etag'), 'new',
		{ 'If-Match' => $etag{'ttl6/etag'} }),
		412, 'precondition_failed', 'PUT If-Match: <its old ETag> on an expired key');
	is($kv->http('GET', key_path('ttl6/im'))->{status}, 404, 'still absent');
	is($kv->http('GET', key_path('ttl6/etag'))->{status}, 404, 'still absent');

	# If-None-Match of the old ETag: 404, not 304
	is($kv->http('GET', key_path('ttl6/get'), undef,
		{ 'If-None-Match' => $etag{'ttl6/get'} })->{status},
		404, 'GET If-None-Match: <old ETag> of an expired key: 404, not 304');
	is($kv->http('GET', key_path('ttl6/get'), undef,
		{ 'If-None-Match' => '*' })->{status},
		404, 'GET If-None-Match: * of an expired key: 404');

	is_error($kv->http('DELETE', key_path('ttl6/del')), 404, 'not_found',
		'DELETE of an expired key');
	is_error($kv->http('DELETE', key_path('ttl6/del')), 404, 'not_found',
		'DELETE again');
};

subtest 'expire_interval = 1s: the worker deletes expired rows' => sub {
	$node->append_conf('postgresql.conf', "kvserver.expire_interval = '1s'");
	$node->reload;
	my $deadline = time() + 10;
	my $setting = '';
	while (time() < $deadline)
	{
		$setting = $node->safe_psql('postgres', 'SHOW kvserver.expire_interval');
		last if $setting eq '1s';
		usleep(100_000);
	}
	is($setting, '1s', 'kvserver.expire_interval is now 1s');

	my $key = 'ttl7/reaped';
	is($kv->http('PUT', key_path($key) . '?ttl=1', 'x')->{status}, 201,
		'PUT ?ttl=1');
	is(rows_of($key), '1', 'its row is in kv_store');

	# it, and the rows left expired by the earlier subtests, go away
	my $left;
	$deadline = time() + 15;
	while (time() < $deadline)
	{
		$left = $node->safe_psql('postgres',
			'SELECT count(*) FROM kv_store WHERE key = ' . sql_quote($key));
		last if $left eq '0';
		usleep(200_000);
	}
	is($left, '0', 'the expired row left kv_store within 15 s');
	$deadline = time() + 15;
	while (time() < $deadline)
	{
		$left = $node->safe_psql('postgres',
			'SELECT count(*) FROM kv_store WHERE expires_at <= clock_timestamp()');
		last if $left eq '0';
		usleep(200_000);
	}
	is($left, '0', 'no expired row is left at all');

	is(rows_of('ttl2/long'), '1', 'the 3600 s key was not touched');
	is($kv->http('GET', key_path('ttl2/long'))->{content}, 'stays',
		'and is still served');
	is(rows_of('ttl5/sql-long'), '1', 'nor the 1-hour kv_put key');
	is_deeply(list_keys('ttl2/'), [ 'ttl2/cleared', 'ttl2/long', 'ttl2/none' ],
		'the listing still has the live keys');

	# the name is free again
	my $res = $kv->http('POST', '/kv/',
		encode_json({ key => $key, value => 'back' }),
		{ 'Content-Type' => 'application/json' });
	is($res->{status}, 201, 'POST of the reaped key: 201');
	is($kv->http('GET', key_path($key))->{content}, 'back', 'serves it');
	is($kv->http('GET', key_path('ttl1/short'))->{status}, 404,
		'the reaped ttl1 key is still 404');

	# the worker logged no trouble with it
	my $log = slurp_file($node->logfile);
	unlike($log, qr/kvserver could not delete expired keys/,
		'no failed expiry rounds in the server log');
};

# README: kvserver.expire_interval takes effect on reload.  Lowering it must
# not wait for the round that the old, longer interval scheduled.
subtest 'lowering expire_interval on reload takes effect without the old wait' => sub {
	my $set = sub {
		my ($value) = @_;
		$node->append_conf('postgresql.conf', "kvserver.expire_interval = '$value'");
		$node->reload;
		my $deadline = time() + 10;
		my $now = '';
		while (time() < $deadline)
		{
			$now = $node->safe_psql('postgres', 'SHOW kvserver.expire_interval');
			last if $now eq $value;
			usleep(100_000);
		}
		is($now, $value, "kvserver.expire_interval is now $value");
	};

	# one more round at 1s, which schedules the next an hour away
	$set->('1h');
	sleep 2;
	$set->('1s');

	my $key = 'ttl8/after-reload';
	is($kv->http('PUT', key_path($key) . '?ttl=1', 'x')->{status}, 201, 'PUT ?ttl=1');
	my $t0 = time();
	my $left;
	while (time() < $t0 + 15)
	{
		$left = rows_of($key);
		last if $left eq '0';
		usleep(200_000);
	}
	is($left, '0', sprintf('the expired row left kv_store within 15 s of the '
		  . 'reload to 1s (waited %.1f s)', time() - $t0));
	is($kv->http('GET', key_path($key))->{status}, 404, 'and it is 404');
};

done_testing();
