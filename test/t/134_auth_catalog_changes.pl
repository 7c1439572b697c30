
# Copyright (c) kvserver authors

# Catalog changes reach the HTTP threads' cache of verified identities
# within a few seconds (README "How fast changes take effect"): REVOKE and
# GRANT on kv_store, REVOKE of a membership, ALTER ROLE PASSWORD, NOLOGIN
# and VALID UNTIL, DROP ROLE; and a VALID UNTIL that passes needs no change
# at all.  Each role is first served real cache hits (answered on the HTTP
# threads from its cached identity), then the change is made, then its
# requests are polled, with a bound, until they get the new answer.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::RealBin/../lib";

use KvServerTest;
use MIME::Base64 qw(encode_base64);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);

# No anonymous role; the failure limit out of the way of the many 401s here.
my $kv = KvServerTest->new(
	'auth_catalog',
	anonymous_role => '',
	conf => "kvserver.auth_max_failures = 100000\n");
my $node = $kv->node;

sub sql { return $node->safe_psql('postgres', $_[0]); }

sub basic { return { Authorization => 'Basic ' . encode_base64("$_[0]:$_[1]", '') }; }

# A request as role $as ([name, password]) or with headers $as (a hash).
sub req
{
	my ($method, $path, $as, $body) = @_;
	my $h = ref $as eq 'ARRAY' ? basic(@$as) : { %{ $as // {} } };
	return $kv->http($method, $path, $body, $h);
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
	my ($name, $password, $privileges, $attributes) = @_;
	$attributes //= 'LOGIN';
	sql(    "CREATE ROLE $name $attributes PASSWORD "
		  . sql_quote($password) . ";\n"
		  . ($privileges ? "GRANT $privileges ON kv_store TO $name;\n" : '')
		  . "GRANT USAGE ON SEQUENCE kv_store_version_seq TO $name;");
	return;
}

# GET until X-Cache: HIT (the first may be a MISS that fills the cache)
sub get_until_hit
{
	my ($key, $as) = @_;
	my $res;
	for (1 .. 5)
	{
		$res = req('GET', "/kv/$key", $as);
		last if header($res, 'X-Cache') eq 'HIT';
	}
	return $res;
}

sql(q{SELECT kv_put('secret/1', 'top secret one');});

subtest 'REVOKE SELECT from a role with cache hits: its GETs turn 403 within seconds; GRANT restores them' => sub {
	create_role('hitter', 'hitter-pw', 'SELECT');
	my @as = ('hitter', 'hitter-pw');
	my $hit = get_until_hit('secret/1', \@as);
	is(header($hit, 'X-Cache'), 'HIT', 'hitter gets hits');

	sql('REVOKE SELECT ON kv_store FROM hitter');
	my $res;
	my $took = poll_until(5, sub {
		$res = req('GET', '/kv/secret/1', \@as);
		$res->{status} == 403;
	});
	ok(defined $took, 'GET turns 403') or diag("last: $res->{status}");
	note(sprintf('REVOKE took effect after %.2f s', $took // -1));
	is_error($res, 403, 'forbidden', 'GET after REVOKE');
	for my $i (1 .. 5)
	{
		my $again = req('GET', '/kv/secret/1', \@as);
		is($again->{status}, 403, "GET $i after REVOKE: 403");
		unlike($again->{content}, qr/top secret/, "GET $i: no value");
	}
	is(req('HEAD', '/kv/secret/1', \@as)->{status}, 403, 'HEAD after REVOKE: 403');

	sql('GRANT SELECT ON kv_store TO hitter');
	ok(defined poll_until(5, sub {
		$res = req('GET', '/kv/secret/1', \@as);
		$res->{status} == 200;
	}), 'GET turns 200 again after GRANT') or diag("last: $res->{status}");
	is($res->{content}, 'top secret one', 'value');
	is(header(get_until_hit('secret/1', \@as), 'X-Cache'), 'HIT', 'and hits again');
};

subtest 'REVOKE of a group role\'s membership takes its privileges away' => sub {
	sql(q{CREATE ROLE readers NOLOGIN;
GRANT SELECT ON kv_store TO readers;
CREATE ROLE member LOGIN PASSWORD 'member-pw';
GRANT readers TO member;});
	my @as = ('member', 'member-pw');
	my $res = get_until_hit('secret/1', \@as);
	is($res->{status}, 200, 'a member of readers: GET 200');
	is(header($res, 'X-Cache'), 'HIT', 'a member of readers: hits');
	sql('REVOKE readers FROM member');
	ok(defined poll_until(5, sub {
		$res = req('GET', '/kv/secret/1', \@as);
		$res->{status} == 403;
	}), 'GET turns 403 after REVOKE readers FROM member')
	  or diag("last: $res->{status}");
	unlike($res->{content}, qr/top secret/, 'no value');
};

subtest 'ALTER ROLE PASSWORD: the old password turns 401, the new one works' => sub {
	create_role('pwrole', 'old-pw', 'SELECT');
	my $hit = get_until_hit('secret/1', [ 'pwrole', 'old-pw' ]);
	is($hit->{status}, 200, 'old password: 200');
	is(header($hit, 'X-Cache'), 'HIT', 'old password: cached identity and hits');

	sql("ALTER ROLE pwrole PASSWORD 'new-pw'");
	my $res;
	my $took = poll_until(5, sub {
		$res = req('GET', '/kv/secret/1', [ 'pwrole', 'old-pw' ]);
		$res->{status} == 401;
	});
	ok(defined $took, 'old password turns 401') or diag("last: $res->{status}");
	note(sprintf('took %.2f s', $took // -1));
	is_error($res, 401, 'unauthorized', 'old password');
	unlike($res->{content}, qr/top secret/, 'no value');
	my $new = req('GET', '/kv/secret/1', [ 'pwrole', 'new-pw' ]);
	is($new->{status}, 200, 'new password: 200');
	is($new->{content}, 'top secret one', 'new password: value');
	is(req('GET', '/kv/secret/1', [ 'pwrole', 'old-pw' ])->{status}, 401,
		'old password still 401');
};

subtest 'ALTER ROLE NOLOGIN: its password and its token turn 401' => sub {
	create_role('loginrole', 'login-pw', 'SELECT');
	my $token = sql("SET ROLE loginrole; SELECT kv_token_create('1 hour')");
	my @as = ('loginrole', 'login-pw');
	is(header(get_until_hit('secret/1', \@as), 'X-Cache'), 'HIT', 'password: hits');
	is(header(get_until_hit('secret/1', { Authorization => "Bearer $token" }), 'X-Cache'),
		'HIT', 'token: hits');

	sql('ALTER ROLE loginrole NOLOGIN');
	my $res;
	ok(defined poll_until(5, sub {
		$res = req('GET', '/kv/secret/1', \@as);
		$res->{status} == 401;
	}), 'password turns 401') or diag("last: $res->{status}");
	is_error($res, 401, 'unauthorized', 'NOLOGIN role');
	ok(defined poll_until(5, sub {
		$res = req('GET', '/kv/secret/1', { Authorization => "Bearer $token" });
		$res->{status} == 401;
	}), 'token turns 401') or diag("last: $res->{status}");
	unlike($res->{content}, qr/top secret/, 'no value');
};

subtest 'ALTER ROLE VALID UNTIL in the past turns 401' => sub {
	create_role('validrole', 'valid-pw', 'SELECT');
	my @as = ('validrole', 'valid-pw');
	is(header(get_until_hit('secret/1', \@as), 'X-Cache'), 'HIT', 'hits first');
	sql("ALTER ROLE validrole VALID UNTIL '2001-01-01 00:00:00+00'");
	my $res;
	ok(defined poll_until(5, sub {
		$res = req('GET', '/kv/secret/1', \@as);
		$res->{status} == 401;
	}), 'turns 401') or diag("last: $res->{status}");
	is_error($res, 401, 'unauthorized', 'expired role');
};

subtest 'a VALID UNTIL that passes while the identity is cached turns 401' => sub {
	create_role('shortrole', 'short-pw', 'SELECT');
	sql("ALTER ROLE shortrole VALID UNTIL '" . sql("SELECT now() + interval '4 seconds'") . "'");
	my @as = ('shortrole', 'short-pw');
	my $first = get_until_hit('secret/1', \@as);
	is($first->{status}, 200, 'accepted before VALID UNTIL');
	is(header($first, 'X-Cache'), 'HIT', 'with hits');
	my $res;
	ok(defined poll_until(12, sub {
		$res = req('GET', '/kv/secret/1', \@as);
		$res->{status} == 401;
	}), 'refused once VALID UNTIL has passed, no catalog change needed')
	  or diag("last: $res->{status}");
	is(sql("SELECT rolvaliduntil < now() FROM pg_authid WHERE rolname = 'shortrole'"), 't',
		'VALID UNTIL has passed indeed');
};

subtest 'DROP ROLE: its credentials turn 401' => sub {
	create_role('dropme', 'dropme-pw', 'SELECT');
	my @as = ('dropme', 'dropme-pw');
	is(header(get_until_hit('secret/1', \@as), 'X-Cache'), 'HIT', 'hits first');
	sql(q{REVOKE ALL ON kv_store FROM dropme;
REVOKE ALL ON SEQUENCE kv_store_version_seq FROM dropme;
DROP ROLE dropme;});
	my $res;
	ok(defined poll_until(5, sub {
		$res = req('GET', '/kv/secret/1', \@as);
		$res->{status} == 401;
	}), 'turns 401') or diag("last: $res->{status} $res->{content}");
	is_error($res, 401, 'unauthorized', 'dropped role');
	unlike($res->{content}, qr/top secret/, 'no value');
};

done_testing();
