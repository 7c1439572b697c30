
# Copyright (c) kvserver authors

# Requests without credentials run as kvserver.anonymous_role; wrong
# credentials never fall back to it.  And brute force: a client address
# that failed to log in kvserver.auth_max_failures times within
# kvserver.auth_failure_window gets 429 with Retry-After, even with the
# right password, until the window ends, while other addresses are served.
#
# All clients are on loopback: a client "from another address" binds its
# socket to another address of 127.0.0.0/8 (all loopback on Linux) and
# still connects to the server on 127.0.0.1.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::RealBin/../lib";

use HTTP::Tiny;
use IO::Socket::INET;
use KvServerTest;
use MIME::Base64 qw(encode_base64);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);

sub basic { return { Authorization => 'Basic ' . encode_base64("$_[0]:$_[1]", '') }; }

# A request to $kv with headers $h, from local address $from (default: the
# system's choice, 127.0.0.1).
sub req
{
	my ($kv, $method, $path, $h, $body, $from) = @_;
	my $ua = HTTP::Tiny->new(
		keep_alive => 0,
		timeout => 30,
		agent => 'kvserver-tap/1.0',
		($from ? (local_address => $from) : ()));
	my %args = (headers => { %{ $h // {} } });
	$args{content} = $body if defined $body;
	return $ua->request($method, $kv->url($path), \%args);
}

sub poll_until
{
	my ($seconds, $check) = @_;
	my $t0 = time();
	while (1)
	{
		return time() - $t0 if $check->();
		return undef if time() - $t0 > $seconds;
		usleep(100_000);
	}
}

sub create_role
{
	my ($node, $name, $password, $privileges, $attributes) = @_;
	$attributes //= 'LOGIN';
	$node->safe_psql('postgres',
		    "CREATE ROLE $name $attributes PASSWORD "
		  . sql_quote($password) . ";\n"
		  . ($privileges ? "GRANT $privileges ON kv_store TO $name;\n" : '')
		  . "GRANT USAGE ON SEQUENCE kv_store_version_seq TO $name;");
	return;
}

sub is_unauthorized
{
	my ($res, $name) = @_;
	local $Test::Builder::Level = $Test::Builder::Level + 1;
	is_error($res, 401, 'unauthorized', $name);
	is(header($res, 'WWW-Authenticate'), 'Basic realm="kvserver"',
		"$name: WWW-Authenticate");
	return;
}

sub is_too_many
{
	my ($res, $name) = @_;
	local $Test::Builder::Level = $Test::Builder::Level + 1;
	is_error($res, 429, 'too_many_requests', $name);
	like(header($res, 'Retry-After'), qr/^[1-9][0-9]*$/,
		"$name: Retry-After is a positive integer");
	return;
}

my $RW = 'SELECT, INSERT, UPDATE, DELETE';

#---- the anonymous role; default failure limits ----

# kv_anon: NOLOGIN, granted the extension's tables by KvServerTest
my $kv = KvServerTest->new('auth_anon');
my $node = $kv->node;
sub sql { return $node->safe_psql('postgres', $_[0]); }

create_role($node, 'alice', 'alice-pw', $RW);
sql(q{REVOKE INSERT, UPDATE, DELETE ON kv_store FROM kv_anon;
SELECT kv_put('k', 'the value');});

# Keep the failures from 127.0.0.1 below the default limit of 10 here: the
# brute-force checks below use other addresses.
subtest 'requests without credentials run as kvserver.anonymous_role' => sub {
	my $get = req($kv, 'GET', '/kv/k');
	is($get->{status}, 200, 'anonymous GET 200');
	is($get->{content}, 'the value', 'value');
	is(req($kv, 'GET', '/kv/?prefix=')->{status}, 200, 'anonymous listing 200');
	is_error(req($kv, 'PUT', '/kv/anon-new', undef, 'x'), 403, 'forbidden',
		'anonymous PUT: 403 (kv_anon has SELECT only)');
	is_error(req($kv, 'DELETE', '/kv/k'), 403, 'forbidden', 'anonymous DELETE: 403');
	is(sql("SELECT count(*) FROM kv_store WHERE key IN ('anon-new', 'k')"), '1',
		'nothing written, nothing deleted');
	is(req($kv, 'PUT', '/kv/alice-new', basic('alice', 'alice-pw'), 'x')->{status},
		201, 'alice, with credentials, may PUT');
	is(req($kv, 'GET', '/metrics')->{status}, 200,
		'/metrics without credentials: served to the anonymous role');
};

subtest 'wrong credentials never fall back to the anonymous role' => sub {
	my $res = req($kv, 'GET', '/kv/k', basic('alice', 'wrong-pw'));
	is_unauthorized($res, 'wrong password');
	unlike($res->{content}, qr/the value/, 'no value');
	is_unauthorized(req($kv, 'GET', '/kv/k', basic('nobody_here', 'x')), 'unknown role');
	create_role($node, 'nologin_role', 'nologin-pw', 'SELECT', 'NOLOGIN');
	is_unauthorized(req($kv, 'GET', '/kv/k', basic('nologin_role', 'nologin-pw')),
		'NOLOGIN role');
	create_role($node, 'expired_role', 'expired-pw', 'SELECT',
		"LOGIN VALID UNTIL '2001-01-01 00:00:00+00'");
	is_unauthorized(req($kv, 'GET', '/kv/k', basic('expired_role', 'expired-pw')),
		'expired role');
	is_unauthorized(req($kv, 'GET', '/kv/k', { Authorization => 'Bearer kvt_' . ('1' x 64) }),
		'unknown token');
	is_unauthorized(req($kv, 'GET', '/kv/k', { Authorization => 'Basic %%%' }),
		'malformed header');
	is_unauthorized(req($kv, 'GET', '/metrics', basic('alice', 'wrong-pw')),
		'/metrics with a wrong password');
};

#---- brute force, default settings (10 failures, 60 s) ----

subtest 'after 10 failed logins an address gets 429 with Retry-After, even with the right password' => sub {
	my $from = '127.0.0.2';
	is(req($kv, 'GET', '/kv/k', basic('alice', 'alice-pw'), undef, $from)->{status},
		200, "$from can connect and log in");
	for my $i (1 .. 10)
	{
		my $res = req($kv, 'GET', '/kv/k', basic('alice', "wrong-$i"), undef, $from);
		is($res->{status}, 401, "failure $i: 401");
	}
	my $res = req($kv, 'GET', '/kv/k', basic('alice', 'alice-pw'), undef, $from);
	is_too_many($res, 'right password after 10 failures');
	unlike($res->{content}, qr/the value/, 'no value');
	my $retry = header($res, 'Retry-After');
	ok($retry =~ /^\d+$/ && $retry > 3 && $retry <= 60,
		"Retry-After ($retry) is within the default 60 s window");
	is_too_many(req($kv, 'PUT', '/kv/k', basic('alice', 'alice-pw'), 'x', $from),
		'PUT with the right password');
	is(sql("SELECT convert_from(value, 'UTF8') FROM kv_store WHERE key = 'k'"),
		'the value', 'nothing written');
	my $token = sql("SET ROLE alice; SELECT kv_token_create('1 hour')");
	is_too_many(req($kv, 'GET', '/kv/k', { Authorization => "Bearer $token" }, undef, $from),
		'a valid token');
	is_too_many(req($kv, 'GET', '/kv/k', basic('alice', 'wrong-again'), undef, $from),
		'another wrong password');
	is_too_many(req($kv, 'GET', '/metrics', basic('alice', 'alice-pw'), undef, $from),
		'/metrics with the right password');
	is(req($kv, 'GET', '/health', undef, undef, $from)->{status}, 200,
		'/health is still open to it');
};

subtest 'while one address is blocked, other clients are served' => sub {
	my $blocked = '127.0.0.2';
	my $other = '127.0.0.3';
	is(req($kv, 'GET', '/kv/k', basic('alice', 'alice-pw'), undef, $blocked)->{status},
		429, "$blocked is still blocked");
	my $res = req($kv, 'GET', '/kv/k', basic('alice', 'alice-pw'), undef, $other);
	is($res->{status}, 200, "$other: right password 200");
	is($res->{content}, 'the value', "$other: value");
	is_unauthorized(req($kv, 'GET', '/kv/k', basic('alice', 'wrong-pw'), undef, $other),
		"$other: a wrong password is 401, not 429");
	is(req($kv, 'GET', '/kv/k', basic('alice', 'alice-pw'))->{status}, 200,
		'127.0.0.1: right password 200');
	is(req($kv, 'GET', '/kv/k', basic('alice', 'alice-pw'), undef, $blocked)->{status},
		429, "$blocked: still 429");
};

subtest 'concurrent failed logins from one address are limited as well' => sub {
	my $from = '127.0.0.7';
	my $n = 40;
	local $SIG{PIPE} = 'IGNORE';
	# all the guesses are sent before any answer is read
	my @socks;
	for my $i (1 .. $n)
	{
		my $sock = IO::Socket::INET->new(
			PeerAddr => $kv->host,
			PeerPort => $kv->port,
			LocalAddr => $from,
			Proto => 'tcp',
			Timeout => 10);
		next unless $sock;
		my $auth = encode_base64("alice:parallel-wrong-$i", '');
		KvServerTest::write_all($sock,
			"GET /kv/k HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Basic $auth\r\n"
			  . "Connection: close\r\n\r\n");
		push @socks, $sock;
	}
	is(scalar(@socks), $n, "$n connections from $from");
	my %count;
	foreach my $sock (@socks)
	{
		my %r = (data => '');
		KvServerTest::read_until_eof($sock, 30, \%r);
		close($sock);
		my $res = parse_response($r{data});
		$count{ $res ? $res->{status} : 'none' }++;
	}
	note('answers: ' . join(', ', map { "$_: $count{$_}" } sort keys %count));
	is(($count{401} // 0) + ($count{429} // 0), $n, 'every guess got 401 or 429');
	cmp_ok($count{401} // 0, '<=', 10,
		'at most kvserver.auth_max_failures (10) guesses were checked (401), the rest 429');
	is(req($kv, 'GET', '/kv/k', basic('alice', 'alice-pw'), undef, $from)->{status},
		429, 'then the right password is 429');
};

#---- the end of the window: a node with a short window ----

my $kvw = KvServerTest->new(
	'auth_window',
	anonymous_role => '',
	conf => "kvserver.auth_failure_window = '3s'\nkvserver.auth_max_failures = 3\n");
create_role($kvw->node, 'alice', 'alice-pw', $RW);
$kvw->node->safe_psql('postgres', "SELECT kv_put('k', 'window value')");

subtest 'kvserver.auth_max_failures and auth_failure_window: the block ends with the window' => sub {
	my $from = '127.0.0.4';
	my $right = basic('alice', 'alice-pw');
	is(req($kvw, 'GET', '/kv/k', $right, undef, $from)->{status}, 200,
		'right password: 200');
	my $t0 = time();
	for my $i (1 .. 3)
	{
		is(req($kvw, 'GET', '/kv/k', basic('alice', "wrong-$i"), undef, $from)->{status},
			401, "failure $i: 401");
	}
	my $res = req($kvw, 'GET', '/kv/k', $right, undef, $from);
	is_too_many($res, 'after 3 failures (kvserver.auth_max_failures = 3)');
	my $retry = header($res, 'Retry-After');
	ok($retry =~ /^\d+$/ && $retry >= 1 && $retry <= 3,
		"Retry-After ($retry) is within the 3 s window");
	is(req($kvw, 'GET', '/kv/k', $right, undef, '127.0.0.5')->{status}, 200,
		'another address is served meanwhile');

	my $took = poll_until(10, sub {
		$res = req($kvw, 'GET', '/kv/k', $right, undef, $from);
		$res->{status} != 429;
	});
	ok(defined $took, 'the block ends') or diag("last: $res->{status}");
	my $blocked_for = time() - $t0;
	is($res->{status}, 200, 'right password: 200 again');
	is($res->{content}, 'window value', 'value');
	cmp_ok($blocked_for, '>=', 2, sprintf('not before the window ends (%.2f s after the first failure)', $blocked_for));
	cmp_ok($blocked_for, '<=', 8, 'not long after it either');
	is_unauthorized(req($kvw, 'GET', '/kv/k', basic('alice', 'wrong-new'), undef, $from),
		'a failure in the new window is 401 again, not 429');
};

done_testing();
