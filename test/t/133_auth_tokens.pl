
# Copyright (c) kvserver authors

# Bearer tokens for the HTTP API (README "Security", "Tokens"):
# kv_token_create() returns "kvt_" and 64 hex digits for current_user; the
# token acts as that role; kv_token_revoke() revokes one of the caller's
# own tokens only; a revoked or expired token is 401; kv_token shows each
# role its own rows, and holds only a hash of each token.
#
# The node has no anonymous role, and its failure limit is raised so that
# the 401s asked for here never get this client's address blocked.  A
# revocation or an expiry is waited for by polling with a bound.

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

my $kv = KvServerTest->new(
	'auth_tokens',
	anonymous_role => '',
	conf => "kvserver.auth_max_failures = 100000\n");
my $node = $kv->node;

sub sql { return $node->safe_psql('postgres', $_[0]); }

# Authorization headers
sub basic { return { Authorization => 'Basic ' . encode_base64("$_[0]:$_[1]", '') }; }
sub bearer { return { Authorization => "Bearer $_[0]" }; }

# One request with the given headers (a hash, or undef for none).
sub req
{
	my ($method, $path, $headers, $body) = @_;
	return $kv->http($method, $path, $body, { %{ $headers // {} } });
}

# Calls $check until it returns true, at most $seconds; the seconds it took,
# or undef.
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

# A role that may log in with a password, with the given privileges on
# kv_store (and its sequence, for writes).
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

# The checks every 401 must pass: the status, the JSON error, the challenge.
sub is_unauthorized
{
	my ($res, $name) = @_;
	local $Test::Builder::Level = $Test::Builder::Level + 1;
	is_error($res, 401, 'unauthorized', $name);
	is(header($res, 'WWW-Authenticate'), 'Basic realm="kvserver"',
		"$name: WWW-Authenticate: Basic realm=\"kvserver\"");
	return;
}

my $RW = 'SELECT, INSERT, UPDATE, DELETE';

create_role('alice', 'alice-pw', $RW);
create_role('bob', 'bob-pw', $RW);
create_role('ro', 'ro-pw', 'SELECT');
sql("SELECT kv_put('shared/1', 'shared value')");

# kv_token_create as the role, through SET ROLE
sub create_token
{
	my ($role, $ttl) = @_;
	return sql("SET ROLE $role; SELECT kv_token_create(" . sql_quote($ttl) . ')');
}

subtest 'kv_token_create returns "kvt_" and 64 hex digits, different each time' => sub {
	my $t1 = create_token('alice', '1 hour');
	my $t2 = create_token('alice', '1 hour');
	like($t1, qr/^kvt_[0-9a-f]{64}$/, 'first token');
	like($t2, qr/^kvt_[0-9a-f]{64}$/, 'second token');
	isnt($t1, $t2, 'two tokens differ');
};

subtest 'a Bearer token acts as the role that created it' => sub {
	my $ro_token = create_token('ro', '1 hour');
	my $get = req('GET', '/kv/shared/1', bearer($ro_token));
	is($get->{status}, 200, "ro's token: GET 200");
	is($get->{content}, 'shared value', "ro's token: value");
	is_error(req('PUT', '/kv/ro/by-token', bearer($ro_token), 'x'), 403, 'forbidden',
		"ro's token: PUT 403 (ro has only SELECT)");

	my $alice_token = create_token('alice', '1 hour');
	is(req('PUT', '/kv/alice/by-token', bearer($alice_token), 'via token')->{status},
		201, "alice's token: PUT 201");
	is(sql("SELECT convert_from(value, 'UTF8') FROM kv_store WHERE key = 'alice/by-token'"),
		'via token', 'the row was written');
	is(req('GET', '/kv/alice/by-token', bearer($alice_token))->{content},
		'via token', "alice's token: GET");
};

subtest 'an unknown or malformed Bearer token is 401' => sub {
	is_unauthorized(req('GET', '/kv/shared/1', bearer('kvt_' . ('0' x 64))),
		'unknown token');
	is_unauthorized(req('GET', '/kv/shared/1', bearer('not a token')),
		'malformed token');
	my $t = create_token('alice', '1 hour');
	is_unauthorized(req('GET', '/kv/shared/1', bearer($t . '0')),
		'a valid token with one more digit');
	is_unauthorized(req('GET', '/kv/shared/1', basic('alice', $t)),
		'a token is not a password');
};

subtest 'kv_token_revoke: false for another role\'s token, true for one\'s own, then 401' => sub {
	my $t = create_token('alice', '1 hour');
	is(req('GET', '/kv/shared/1', bearer($t))->{status}, 200,
		'the token works');
	is(sql("SET ROLE bob; SELECT kv_token_revoke(" . sql_quote($t) . ')'), 'f',
		'bob cannot revoke alice\'s token');
	# bob's attempt changed nothing: still accepted a while later
	usleep(1_500_000);
	is(req('GET', '/kv/shared/1', bearer($t))->{status}, 200,
		'the token still works after bob\'s attempt');
	is(sql("SELECT count(*) FROM kv_token WHERE role_oid = 'alice'::regrole"
		  . " AND token_hash = encode(sha256(convert_to(" . sql_quote($t) . ", 'UTF8')), 'hex')"),
		'1', 'its row is still there');

	is(sql("SET ROLE alice; SELECT kv_token_revoke(" . sql_quote($t) . ')'), 't',
		'alice revokes her own token');
	my $res;
	my $took = poll_until(5, sub {
		$res = req('GET', '/kv/shared/1', bearer($t));
		$res->{status} == 401;
	});
	ok(defined $took, 'the revoked token turns 401')
	  or diag("last: $res->{status} $res->{content}");
	note(sprintf('revocation took effect after %.2f s', $took // -1));
	is_unauthorized($res, 'revoked token');
	is(sql("SET ROLE alice; SELECT kv_token_revoke(" . sql_quote($t) . ')'), 'f',
		'revoking it again: false');
};

subtest 'an expired token is 401' => sub {
	my $t = create_token('alice', '3 seconds');
	my $first = req('GET', '/kv/shared/1', bearer($t));
	is($first->{status}, 200, 'accepted before it expires');
	my $res;
	my $took = poll_until(10, sub {
		$res = req('GET', '/kv/shared/1', bearer($t));
		$res->{status} == 401;
	});
	ok(defined $took, 'refused once expired')
	  or diag("last: $res->{status} $res->{content}");
	is_unauthorized($res, 'expired token');
	is(sql("SELECT count(*) FROM kv_token WHERE token_hash = encode(sha256(convert_to("
		  . sql_quote($t) . ", 'UTF8')), 'hex') AND expires_at <= now()"),
		'1', 'the row is there, expired');
};

subtest 'kv_token shows each role only its own tokens' => sub {
	create_role('tok_a', 'tok-a-pw', 'SELECT');
	create_role('tok_b', 'tok-b-pw', 'SELECT');
	create_token('tok_a', '1 hour') for 1 .. 2;
	create_token('tok_b', '1 hour');
	is(sql("SET ROLE tok_a; SELECT count(*) FROM kv_token"), '2',
		'tok_a sees its 2 tokens');
	is(sql("SET ROLE tok_a; SELECT count(*) FROM kv_token WHERE role_oid <> 'tok_a'::regrole"),
		'0', 'tok_a sees no other role\'s token');
	is(sql("SET ROLE tok_b; SELECT count(*) FROM kv_token"), '1',
		'tok_b sees its 1 token');
	is(sql("SET ROLE tok_b; SELECT count(*) FROM kv_token WHERE role_oid = 'tok_a'::regrole"),
		'0', 'tok_b sees none of tok_a\'s');
	cmp_ok(sql("SELECT count(*) FROM kv_token"), '>', 3,
		'the table holds more tokens than either sees');
	my ($ins) = $node->psql('postgres',
		"SET ROLE tok_a; INSERT INTO kv_token VALUES ('x', 'tok_b'::regrole, now(), now() + interval '1 day')");
	isnt($ins, 0, 'a role cannot insert into kv_token directly');
	my ($del) = $node->psql('postgres', "SET ROLE tok_b; DELETE FROM kv_token");
	isnt($del, 0, 'a role cannot delete from kv_token directly');
	is(sql("SELECT count(*) FROM kv_token WHERE role_oid = 'tok_b'::regrole"), '1',
		'tok_b\'s token is still there');
};

subtest 'only a hash of a token is stored' => sub {
	my $t = create_token('alice', '1 hour');
	(my $hex = $t) =~ s/^kvt_//;
	is(sql("SELECT count(*) FROM kv_token t WHERE strpos(t::text, " . sql_quote($hex) . ") > 0"),
		'0', 'the token\'s digits appear in no row of kv_token');
	is(sql("SELECT count(*) FROM kv_token t WHERE strpos(t::text, " . sql_quote(substr($hex, 0, 16)) . ") > 0"),
		'0', 'nor even its first 16 digits');
	is(sql("SELECT count(*) FROM kv_token WHERE role_oid = 'alice'::regrole"
		  . " AND token_hash = encode(sha256(convert_to(" . sql_quote($t) . ", 'UTF8')), 'hex')"),
		'1', 'its row holds the SHA-256 of the token');
	is(req('GET', '/kv/shared/1', bearer($t))->{status}, 200, 'and the token works');
};


done_testing();
