
# Copyright (c) kvserver authors

# HTTP authentication (README "Security"): who a request runs as.  Basic
# credentials checked against SCRAM-SHA-256 and md5 secrets, LOGIN, VALID
# UNTIL, CONNECT, superusers and kvserver.allow_superuser, GRANTs, the open
# and closed endpoints (/health, /metrics, /) and kvserver.public_metrics,
# and a refused PUT's body.  Bearer tokens: 133_auth_tokens.pl.
#
# The node has no anonymous role: a request without credentials gets 401.
# Its failure limit is raised, so that the many 401s asked for here never
# get this client's address blocked (brute force: 132_auth_anonymous_and_brute_force.pl).
# Row-level security and the cache rule: 131_auth_rls_and_cache.pl.
#
# Every change of the catalog or of a setting is waited for by polling with
# a bound (README: "a change takes effect within about a second").

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
	'auth',
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
sql("SELECT kv_put('shared/1', 'shared value')");

subtest 'without credentials and without an anonymous role, every key request is 401' => sub {
	is_unauthorized(req('GET', '/kv/shared/1'), 'GET');
	is_unauthorized(req('PUT', '/kv/anon-put', undef, 'v'), 'PUT');
	is_unauthorized(req('DELETE', '/kv/shared/1'), 'DELETE');
	is_unauthorized(req('GET', '/kv/?prefix='), 'listing');
	my $head = req('HEAD', '/kv/shared/1');
	is($head->{status}, 401, 'HEAD: 401');
	is(sql("SELECT count(*) FROM kv_store WHERE key = 'anon-put'"), '0',
		'the anonymous PUT wrote nothing');
	is(sql("SELECT convert_from(value, 'UTF8') FROM kv_store WHERE key = 'shared/1'"),
		'shared value', 'the anonymous DELETE deleted nothing');
};

subtest 'Basic credentials of a role with a SCRAM-SHA-256 password are accepted' => sub {
	like(sql("SELECT rolpassword FROM pg_authid WHERE rolname = 'alice'"),
		qr/^SCRAM-SHA-256\$/, 'alice has a SCRAM-SHA-256 secret');
	my $put = req('PUT', '/kv/alice/1', basic('alice', 'alice-pw'), 'from alice');
	is($put->{status}, 201, 'PUT 201');
	my $get = req('GET', '/kv/alice/1', basic('alice', 'alice-pw'));
	is($get->{status}, 200, 'GET 200');
	is($get->{content}, 'from alice', 'GET returns the value');
	is(req('GET', '/kv/shared/1', basic('alice', 'alice-pw'))->{content},
		'shared value', 'GET of a key written in SQL');
};

subtest 'Basic credentials of a role with an md5 password are accepted' => sub {
	sql(qq{SET password_encryption = 'md5';
CREATE ROLE bob LOGIN PASSWORD 'bob-pw';
GRANT $RW ON kv_store TO bob;
GRANT USAGE ON SEQUENCE kv_store_version_seq TO bob;});
	like(sql("SELECT rolpassword FROM pg_authid WHERE rolname = 'bob'"),
		qr/^md5[0-9a-f]{32}$/, 'bob has an md5 secret');
	is(req('PUT', '/kv/bob/1', basic('bob', 'bob-pw'), 'from bob')->{status},
		201, 'PUT 201');
	my $get = req('GET', '/kv/bob/1', basic('bob', 'bob-pw'));
	is($get->{status}, 200, 'GET 200');
	is($get->{content}, 'from bob', 'GET returns the value');
	is_unauthorized(req('GET', '/kv/bob/1', basic('bob', 'not-bob-pw')),
		'md5 role, wrong password');
};

subtest 'a password with a colon and non-ASCII characters is accepted' => sub {
	my $pw = "p\x{e4}ss:w\x{f6}rd:";
	my $pw_bytes = $pw;
	utf8::encode($pw_bytes);
	$node->safe_psql('postgres',
		"CREATE ROLE carol LOGIN PASSWORD " . sql_quote($pw_bytes)
		  . "; GRANT SELECT ON kv_store TO carol;");
	my $res = req('GET', '/kv/shared/1', basic('carol', $pw_bytes));
	is($res->{status}, 200, 'GET 200');
	is($res->{content}, 'shared value', 'value');
	is_unauthorized(req('GET', '/kv/shared/1', basic('carol', "p\xc3\xa4ss")),
		'only the part before the second colon: 401');
};

# The body of each kind of failure, compared below: all must be the same.
my %failure_body;

subtest 'a wrong password is 401' => sub {
	my $res = req('GET', '/kv/shared/1', basic('alice', 'wrong-pw'));
	is_unauthorized($res, 'wrong password');
	unlike($res->{content}, qr/shared value/, 'no value');
	is_unauthorized(req('PUT', '/kv/alice/wrong', basic('alice', 'wrong-pw'), 'x'),
		'PUT with a wrong password');
	is(sql("SELECT count(*) FROM kv_store WHERE key = 'alice/wrong'"), '0',
		'nothing written');
	is_unauthorized(req('GET', '/kv/shared/1', basic('alice', '')),
		'empty password');
	$failure_body{'wrong password'} = $res->{content};
};

subtest 'an unknown role is 401' => sub {
	my $res = req('GET', '/kv/shared/1', basic('nobody_here', 'alice-pw'));
	is_unauthorized($res, 'unknown role');
	$failure_body{'unknown role'} = $res->{content};
};

subtest 'a NOLOGIN role is 401, even with its right password' => sub {
	create_role('nologin_role', 'nologin-pw', $RW, 'NOLOGIN');
	my $res = req('GET', '/kv/shared/1', basic('nologin_role', 'nologin-pw'));
	is_unauthorized($res, 'NOLOGIN role');
	$failure_body{'NOLOGIN role'} = $res->{content};
};

subtest 'a role whose VALID UNTIL has passed is 401, even with its right password' => sub {
	create_role('expired_role', 'expired-pw', $RW,
		"LOGIN VALID UNTIL '2001-01-01 00:00:00+00'");
	my $res = req('GET', '/kv/shared/1', basic('expired_role', 'expired-pw'));
	is_unauthorized($res, 'expired role');
	$failure_body{'expired role'} = $res->{content};
};

subtest 'a role whose VALID UNTIL is in the future is accepted' => sub {
	create_role('future_role', 'future-pw', $RW,
		"LOGIN VALID UNTIL '2999-01-01 00:00:00+00'");
	my $res = req('GET', '/kv/shared/1', basic('future_role', 'future-pw'));
	is($res->{status}, 200, 'GET 200');
	is($res->{content}, 'shared value', 'value');
};

subtest 'wrong password, unknown role, NOLOGIN and expired role get the same answer' => sub {
	is(scalar(keys %failure_body), 4, 'four failures were recorded');
	my $ref = $failure_body{'wrong password'} // '';
	like($ref, qr/"error"\s*:\s*"unauthorized"/, 'the body is the unauthorized error');
	foreach my $kind (sort keys %failure_body)
	{
		is($failure_body{$kind}, $ref, "$kind: same body as a wrong password");
	}
};

subtest 'a malformed Authorization header is 401' => sub {
	is_unauthorized(req('GET', '/kv/shared/1', { Authorization => 'Basic !!!notbase64' }),
		'Basic with bad base64');
	is_unauthorized(
		req('GET', '/kv/shared/1',
			{ Authorization => 'Basic ' . encode_base64('no-colon', '') }),
		'Basic without a colon');
	is_unauthorized(req('GET', '/kv/shared/1', { Authorization => 'Digest abc' }),
		'unknown scheme');
};

subtest 'a role without CONNECT on the database is 403' => sub {
	create_role('noconnect', 'noconnect-pw', $RW);
	my $before = req('GET', '/kv/shared/1', basic('noconnect', 'noconnect-pw'));
	is($before->{status}, 200, 'with CONNECT (from PUBLIC): 200');

	sql(q{REVOKE CONNECT ON DATABASE postgres FROM PUBLIC;
REVOKE CONNECT ON DATABASE postgres FROM noconnect;
GRANT CONNECT ON DATABASE postgres TO alice;});
	my $res;
	my $took = poll_until(5, sub {
		$res = req('GET', '/kv/shared/1', basic('noconnect', 'noconnect-pw'));
		return $res->{status} == 403;
	});
	ok(defined $took, 'GET turns 403 after REVOKE CONNECT')
	  or diag("last: $res->{status} $res->{content}");
	is_error($res, 403, 'forbidden', 'GET without CONNECT');
	unlike($res->{content}, qr/shared value/, 'no value');
	is_error(req('PUT', '/kv/noconnect/1', basic('noconnect', 'noconnect-pw'), 'x'),
		403, 'forbidden', 'PUT without CONNECT');
	is(sql("SELECT count(*) FROM kv_store WHERE key = 'noconnect/1'"), '0',
		'nothing written');
	my $alice = req('GET', '/kv/shared/1', basic('alice', 'alice-pw'));
	is($alice->{status}, 200, 'a role granted CONNECT itself: 200');

	sql('GRANT CONNECT ON DATABASE postgres TO PUBLIC');
	ok(defined poll_until(5, sub {
		req('GET', '/kv/shared/1', basic('noconnect', 'noconnect-pw'))->{status} == 200;
	}), 'GRANT CONNECT TO PUBLIC again: 200');
};

subtest 'a superuser is 403 while kvserver.allow_superuser is off' => sub {
	create_role('su', 'su-pw', undef, 'SUPERUSER LOGIN');
	my $res = req('GET', '/kv/shared/1', basic('su', 'su-pw'));
	is_error($res, 403, 'forbidden', 'superuser GET');
	unlike($res->{content}, qr/shared value/, 'no value');
	is_error(req('PUT', '/kv/su/1', basic('su', 'su-pw'), 'x'), 403, 'forbidden',
		'superuser PUT');
	is(sql("SELECT count(*) FROM kv_store WHERE key = 'su/1'"), '0', 'nothing written');
	is_unauthorized(req('GET', '/kv/shared/1', basic('su', 'not-su-pw')),
		'superuser with a wrong password: still 401');
};

subtest 'kvserver.allow_superuser = on (ALTER SYSTEM, reload) lets a superuser in, off again refuses' => sub {
	sql("ALTER SYSTEM SET kvserver.allow_superuser = on; SELECT pg_reload_conf();");
	my $res;
	ok(defined poll_until(10, sub {
		$res = req('GET', '/kv/shared/1', basic('su', 'su-pw'));
		$res->{status} == 200;
	}), 'superuser GET turns 200') or diag("last: $res->{status} $res->{content}");
	is($res->{content}, 'shared value', 'value');
	is(req('PUT', '/kv/su/1', basic('su', 'su-pw'), 'x')->{status}, 201,
		'superuser PUT 201');

	sql("ALTER SYSTEM RESET kvserver.allow_superuser; SELECT pg_reload_conf();");
	ok(defined poll_until(10, sub {
		$res = req('GET', '/kv/shared/1', basic('su', 'su-pw'));
		$res->{status} == 403;
	}), 'after RESET: superuser GET is 403 again')
	  or diag("last: $res->{status} $res->{content}");
	is_error($res, 403, 'forbidden', 'superuser GET after RESET');
};

subtest 'a role with only SELECT may GET but not PUT or DELETE (403)' => sub {
	create_role('ro', 'ro-pw', 'SELECT');
	my $auth = basic('ro', 'ro-pw');
	my $get = req('GET', '/kv/shared/1', $auth);
	is($get->{status}, 200, 'GET 200');
	is($get->{content}, 'shared value', 'value');
	is(req('HEAD', '/kv/shared/1', $auth)->{status}, 200, 'HEAD 200');
	my $list = req('GET', '/kv/?prefix=shared/', $auth);
	is($list->{status}, 200, 'listing 200');
	is_deeply(decode_json_body($list)->{keys}, ['shared/1'], 'listing keys');
	is_error(req('PUT', '/kv/shared/1', $auth, 'overwritten'), 403, 'forbidden',
		'PUT of an existing key');
	is_error(req('PUT', '/kv/ro/new', $auth, 'new'), 403, 'forbidden',
		'PUT of a new key');
	is_error(req('DELETE', '/kv/shared/1', $auth), 403, 'forbidden', 'DELETE');
	is_error(
		req('POST', '/kv/', { %$auth, 'Content-Type' => 'application/json' },
			'{"key":"ro/posted","value":"x"}'),
		403, 'forbidden', 'POST');
	is(sql("SELECT convert_from(value, 'UTF8') FROM kv_store WHERE key = 'shared/1'"),
		'shared value', 'shared/1 unchanged');
	is(sql("SELECT count(*) FROM kv_store WHERE key IN ('ro/new', 'ro/posted')"), '0',
		'ro/new and ro/posted not created');
};

subtest 'a role with no privilege on kv_store gets 403 for GET' => sub {
	create_role('nopriv', 'nopriv-pw', undef);
	my $res = req('GET', '/kv/shared/1', basic('nopriv', 'nopriv-pw'));
	is_error($res, 403, 'forbidden', 'GET');
	unlike($res->{content}, qr/shared value/, 'no value');
	is_error(req('GET', '/kv/?prefix=', basic('nopriv', 'nopriv-pw')), 403,
		'forbidden', 'listing');
};

subtest 'a role without USAGE on the schema of kv_store gets 403, for cached keys too' => sub {
	create_role('nousage', 'nousage-pw', 'SELECT');
	sql("SELECT kv_put('usage/cached', 'cached value'); SELECT kv_put('usage/cold', 'cold value')");
	my $alice = basic('alice', 'alice-pw');
	req('GET', '/kv/usage/cached', $alice) for 1 .. 2;
	is(header(req('GET', '/kv/usage/cached', $alice), 'X-Cache'), 'HIT',
		'usage/cached is in the cache');
	sql(q{REVOKE USAGE ON SCHEMA public FROM PUBLIC;
GRANT USAGE ON SCHEMA public TO alice;});
	my ($ret, $out, $err) = $node->psql('postgres',
		"SET ROLE nousage; SELECT value FROM public.kv_store WHERE key = 'usage/cached'");
	like($err, qr/permission denied for schema public/,
		'in SQL, nousage may not read kv_store');
	my $auth = basic('nousage', 'nousage-pw');
	is_error(req('GET', '/kv/usage/cold', $auth), 403, 'forbidden',
		'GET of a key not in the cache');
	my $res = req('GET', '/kv/usage/cached', $auth);
	is($res->{status}, 403, 'GET of a cached key: 403 as well')
	  or diag('X-Cache: ' . header($res, 'X-Cache') . ", body: $res->{content}");
	unlike($res->{content}, qr/cached value/, 'no value');
	sql('GRANT USAGE ON SCHEMA public TO PUBLIC');
};

#---- the endpoints ----

subtest '/health is open without credentials' => sub {
	my $res = req('GET', '/health');
	is($res->{status}, 200, 'GET /health 200');
	like($res->{content}, qr/"status"\s*:\s*"ok"|ok/i, 'it says ok');
	is(req('GET', '/health', basic('alice', 'wrong-pw'))->{status}, 200,
		'/health with wrong credentials: still 200');
};

subtest '/metrics and the dashboard need an identity (401 without)' => sub {
	my $m = req('GET', '/metrics');
	is_unauthorized($m, '/metrics without credentials');
	unlike($m->{content}, qr/kvserver_/, 'no metrics in the body');
	my $d = req('GET', '/');
	is_unauthorized($d, '/ without credentials');
	unlike($d->{content}, qr/<html/i, 'no page in the body');
	is_unauthorized(req('GET', '/metrics', basic('alice', 'wrong-pw')),
		'/metrics with a wrong password');

	my $ok = req('GET', '/metrics', basic('alice', 'alice-pw'));
	is($ok->{status}, 200, '/metrics with credentials: 200');
	like($ok->{content}, qr/^kvserver_/m, 'it has kvserver_ metrics');
	my $page = req('GET', '/', basic('alice', 'alice-pw'));
	is($page->{status}, 200, '/ with credentials: 200');
	like($page->{content}, qr/<html/i, 'it is the dashboard page');
	is(req('GET', '/metrics', bearer(sql("SET ROLE ro; SELECT kv_token_create('1 hour')")))->{status}, 200,
		'/metrics with a token: 200');
};

subtest 'kvserver.public_metrics = on opens /metrics and the dashboard, not the keys' => sub {
	sql("ALTER SYSTEM SET kvserver.public_metrics = on; SELECT pg_reload_conf();");
	my $m;
	ok(defined poll_until(10, sub {
		$m = req('GET', '/metrics');
		$m->{status} == 200;
	}), '/metrics without credentials turns 200') or diag("last: $m->{status}");
	like($m->{content}, qr/^kvserver_/m, 'it has kvserver_ metrics');
	my $d = req('GET', '/');
	is($d->{status}, 200, '/ without credentials: 200');
	like($d->{content}, qr/<html/i, 'the dashboard page');
	is_unauthorized(req('GET', '/kv/shared/1'), 'a key without credentials: still 401');
	is_unauthorized(req('GET', '/kv/?prefix='), 'a listing without credentials: still 401');

	sql("ALTER SYSTEM RESET kvserver.public_metrics; SELECT pg_reload_conf();");
	ok(defined poll_until(10, sub {
		$m = req('GET', '/metrics');
		$m->{status} == 401;
	}), '/metrics is closed again after RESET') or diag("last: $m->{status}");
	is(req('GET', '/')->{status}, 401, '/ is closed again');
};

subtest 'a PUT with a body refused with 401 is answered 401, body unread' => sub {
	my $raw = $kv->raw_http("PUT /kv/refused/1 HTTP/1.1\r\nHost: 127.0.0.1\r\n"
		  . "Content-Type: text/plain\r\nContent-Length: 11\r\n\r\nhello world");
	my $res = parse_response($raw->{data});
	ok($res, 'a complete response') or diag("raw: $raw->{data}");
	is($res->{status}, 401, 'raw PUT: 401');
	is($res->{headers}{'www-authenticate'}, 'Basic realm="kvserver"', 'challenge');
	like($res->{content}, qr/"unauthorized"/, 'unauthorized body');
	is($res->{extra}, '', 'nothing after the response (the body was not taken for a request)');

	# a body the server never reads: the client must still see the 401
	my $big = 'b' x (512 * 1024);
	my $tiny = req('PUT', '/kv/refused/2', undef, $big);
	is($tiny->{status}, 401, 'HTTP::Tiny PUT of 512 kB: 401, not a reset (599)')
	  or diag("content: " . substr($tiny->{content} // '', 0, 200));
	my $wrong = req('PUT', '/kv/refused/3', basic('alice', 'wrong-pw'), $big);
	is($wrong->{status}, 401, 'with a wrong password: 401');
	is(sql("SELECT count(*) FROM kv_store WHERE key LIKE 'refused/%'"), '0',
		'nothing written');
	is(req('GET', '/health')->{status}, 200, 'the server still answers');
};

done_testing();
