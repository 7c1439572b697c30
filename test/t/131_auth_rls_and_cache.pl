
# Copyright (c) kvserver authors

# HTTP requests run as their role, so row-level security applies to GET,
# HEAD, PUT, POST, DELETE and listings; and the shared cache serves a hit
# only to a role that may read the whole table (table SELECT, RLS not
# applying to it: RLS disabled, or BYPASSRLS), so a role limited by a policy
# never receives a value the policy hides, whoever cached it.
#
# ENABLE ROW LEVEL SECURITY and ALTER ROLE NOBYPASSRLS reach the HTTP
# threads' credential cache within a few seconds: each is waited for by
# polling with a bound.  Other catalog changes: 134_auth_catalog_changes.pl.

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
	'auth_rls',
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

sub value_of
{
	my ($key) = @_;
	return sql("SELECT convert_from(value, 'UTF8') FROM kv_store WHERE key = "
		  . sql_quote($key));
}

sub list_keys
{
	my ($prefix, $as) = @_;
	my $res = req('GET', '/kv/?prefix=' . uri_escape($prefix), $as);
	my $json = decode_json_body($res);
	return ($res, ref $json eq 'HASH' ? $json->{keys} : undef);
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

my $RW = 'SELECT, INSERT, UPDATE, DELETE';
my @limited = ('limited', 'limited-pw');
my @reader = ('reader', 'reader-pw');
my @writer = ('writer', 'writer-pw');

create_role('limited', 'limited-pw', $RW);
create_role('reader', 'reader-pw', 'SELECT', 'LOGIN BYPASSRLS');
create_role('writer', 'writer-pw', $RW, 'LOGIN BYPASSRLS');
sql(q{SELECT kv_put('pub/1', 'public one');
SELECT kv_put('pub/2', 'public two');
SELECT kv_put('secret/0', 'secret zero');
SELECT kv_put('secret/1', 'top secret one');
SELECT kv_put('secret/2', 'top secret two');});

#---- row-level security off: cache hits served ----

subtest 'without row-level security, a role with table SELECT is served cache hits' => sub {
	my $res = get_until_hit('secret/0', \@limited);
	is($res->{status}, 200, 'limited: GET 200');
	is($res->{content}, 'secret zero', 'limited: value');
	is(header($res, 'X-Cache'), 'HIT', 'limited gets X-Cache: HIT');
	# cached now, for the checks with RLS on below
	is(header(get_until_hit('secret/1', \@reader), 'X-Cache'), 'HIT',
		'reader: secret/1 is cached');
	is(header(get_until_hit('pub/1', \@reader), 'X-Cache'), 'HIT',
		'reader: pub/1 is cached');
};

#---- row-level security on ----

subtest 'enabling RLS stops the cache hits of a role it now limits (within a few seconds)' => sub {
	is(header(get_until_hit('secret/0', \@limited), 'X-Cache'), 'HIT',
		'limited still gets hits of secret/0 before');
	sql(q{ALTER TABLE kv_store ENABLE ROW LEVEL SECURITY;
CREATE POLICY limited_pub ON kv_store TO limited
	USING (key LIKE 'pub/%') WITH CHECK (key LIKE 'pub/%');});
	my $res;
	my $took = poll_until(5, sub {
		$res = req('GET', '/kv/secret/0', \@limited);
		$res->{status} != 200;
	});
	ok(defined $took, 'limited\'s GET of secret/0 stops being served')
	  or diag("last: $res->{status} " . header($res, 'X-Cache'));
	note(sprintf('took %.2f s', $took // -1));
	is($res->{status}, 404, 'now 404');
	for my $i (1 .. 5)
	{
		my $again = req('GET', '/kv/secret/0', \@limited);
		is($again->{status}, 404, "GET $i: 404");
		unlike($again->{content}, qr/secret zero/, "GET $i: no value");
	}
};

subtest 'a BYPASSRLS role is served cache hits while RLS is enabled' => sub {
	my $res = get_until_hit('secret/2', \@reader);
	is($res->{status}, 200, 'reader: GET 200');
	is($res->{content}, 'top secret two', 'reader: value');
	is(header($res, 'X-Cache'), 'HIT', 'reader (table SELECT, BYPASSRLS): X-Cache: HIT');
};

subtest 'KEY: a value cached by a privileged role is never served to a role RLS limits' => sub {
	my $hit = get_until_hit('secret/1', \@reader);
	is($hit->{status}, 200, 'reader (BYPASSRLS): GET 200');
	is($hit->{content}, 'top secret one', 'reader: value');
	is(header($hit, 'X-Cache'), 'HIT', 'reader: X-Cache: HIT, secret/1 is cached');
	# whatever the line above says, secret/1 was cached before RLS was on
	cmp_ok(sql('SELECT entries FROM kv_stats()'), '>', 0, 'the cache holds entries');

	for my $i (1 .. 10)
	{
		my $res = req('GET', '/kv/secret/1', \@limited);
		is($res->{status}, 404, "limited GET $i: 404");
		unlike($res->{content}, qr/top secret/, "limited GET $i: no value");
		isnt(header($res, 'X-Cache'), 'HIT', "limited GET $i: not a cache hit");
	}
	for my $i (1 .. 3)
	{
		my $raw = $kv->raw_http("HEAD /kv/secret/1 HTTP/1.1\r\nHost: 127.0.0.1\r\n"
			  . 'Authorization: Basic ' . encode_base64('limited:limited-pw', '')
			  . "\r\nConnection: close\r\n\r\n");
		my $res = parse_response($raw->{data}, head => 1);
		is($res && $res->{status}, 404, "limited HEAD $i: 404");
		isnt($res && $res->{headers}{etag},
			'"' . sql("SELECT version FROM kv_store WHERE key = 'secret/1'") . '"',
			"limited HEAD $i: not the row's ETag");
		unlike($raw->{data}, qr/top secret/, "limited HEAD $i: no value");
	}
	my ($lres, $keys) = list_keys('secret/', \@limited);
	is($lres->{status}, 200, 'limited listing of secret/: 200');
	is_deeply($keys, [], 'limited listing of secret/: empty');
	unlike($lres->{content}, qr/top secret/, 'no value in the listing');

	is(req('GET', '/kv/secret/1', \@reader)->{content}, 'top secret one',
		'reader still reads it');
	is(req('GET', '/kv/secret/1', \@limited)->{status}, 404,
		'and limited still 404 after that');
};

subtest 'a role RLS limits reads the keys it may see, never from the cache' => sub {
	# pub/1 was cached by reader before RLS was on
	for my $i (1 .. 3)
	{
		my $res = req('GET', '/kv/pub/1', \@limited);
		is($res->{status}, 200, "limited GET $i of pub/1: 200");
		is($res->{content}, 'public one', "limited GET $i: value");
		is(header($res, 'X-Cache'), 'MISS', "limited GET $i: X-Cache: MISS");
	}
};

subtest 'a limited role\'s reads do not fill the cache' => sub {
	sql("SELECT kv_put('pub/fresh', 'fresh value')");
	is(req('GET', '/kv/pub/fresh', \@limited)->{content}, 'fresh value',
		'limited reads pub/fresh') for 1 .. 3;
	my $res = req('GET', '/kv/pub/fresh', \@reader);
	is($res->{content}, 'fresh value', 'reader: value');
	is(header($res, 'X-Cache'), 'MISS', 'reader\'s first GET is a MISS');
	is(header(req('GET', '/kv/pub/fresh', \@reader), 'X-Cache'), 'HIT',
		'reader\'s second GET is a HIT (reader filled it)');
};

subtest 'RLS applies to GET and HEAD' => sub {
	my $pub = req('GET', '/kv/pub/2', \@limited);
	is($pub->{status}, 200, 'GET of a visible key: 200');
	is($pub->{content}, 'public two', 'value');
	is(req('HEAD', '/kv/pub/2', \@limited)->{status}, 200, 'HEAD of a visible key: 200');
	is_error(req('GET', '/kv/secret/2', \@limited), 404, 'not_found',
		'GET of a hidden key');
	is(req('HEAD', '/kv/secret/2', \@limited)->{status}, 404, 'HEAD of a hidden key: 404');
	is(req('GET', '/kv/secret/2', \@writer)->{content}, 'top secret two',
		'a BYPASSRLS role sees it');
};

subtest 'RLS applies to listings: only visible keys are listed' => sub {
	my ($res, $keys) = list_keys('', \@limited);
	is($res->{status}, 200, 'limited listing: 200');
	ok(ref $keys eq 'ARRAY' && @$keys > 0, 'limited sees some keys');
	is_deeply([ grep { !m{^pub/} } @{ $keys // [] } ], [],
		'every key limited sees is pub/');
	is(scalar(@{ $keys // [] }),
		sql("SELECT count(*) FROM kv_store WHERE key LIKE 'pub/%'"),
		'limited lists exactly the pub/ rows');
	my ($rres, $rkeys) = list_keys('', \@reader);
	ok((grep { $_ eq 'secret/1' } @{ $rkeys // [] }), 'reader (BYPASSRLS) lists secret/1');
};

subtest 'a PUT or POST refused by a WITH CHECK policy is 403' => sub {
	is(req('PUT', '/kv/pub/new', \@limited, 'allowed')->{status}, 201,
		'PUT of pub/new: 201');
	is(value_of('pub/new'), 'allowed', 'pub/new written');
	is_error(req('PUT', '/kv/secret/new', \@limited, 'sneaky'), 403, 'forbidden',
		'PUT of secret/new');
	is_error(
		req('POST', '/kv/', { %{ basic(@limited) }, 'Content-Type' => 'application/json' },
			'{"key":"secret/posted","value":"sneaky"}'),
		403, 'forbidden', 'POST of secret/posted');
	is(sql("SELECT count(*) FROM kv_store WHERE key IN ('secret/new', 'secret/posted')"),
		'0', 'neither was created');
	is(req('POST', '/kv/', { %{ basic(@limited) }, 'Content-Type' => 'application/json' },
			'{"key":"pub/posted","value":"fine"}')->{status},
		201, 'POST of pub/posted: 201');
};

subtest 'a PUT cannot overwrite a row RLS hides' => sub {
	my $res = req('PUT', '/kv/secret/2', \@limited, 'overwritten');
	is_error($res, 403, 'forbidden', 'PUT over the hidden secret/2');
	is(value_of('secret/2'), 'top secret two', 'secret/2 unchanged');
	unlike($res->{content}, qr/top secret/, 'no value in the error');
};

subtest 'RLS applies to DELETE' => sub {
	is_error(req('DELETE', '/kv/secret/2', \@limited), 404, 'not_found',
		'DELETE of a hidden key');
	is(value_of('secret/2'), 'top secret two', 'secret/2 still there');
	is(req('DELETE', '/kv/pub/new', \@limited)->{status}, 204,
		'DELETE of a visible key: 204');
	is(sql("SELECT count(*) FROM kv_store WHERE key = 'pub/new'"), '0', 'pub/new gone');
};

subtest 'ALTER ROLE NOBYPASSRLS: RLS applies to the role within a few seconds' => sub {
	create_role('bypasser', 'bypasser-pw', 'SELECT', 'LOGIN BYPASSRLS');
	my @as = ('bypasser', 'bypasser-pw');
	my $res = get_until_hit('secret/1', \@as);
	is($res->{status}, 200, 'bypasser: GET 200');
	is($res->{content}, 'top secret one', 'bypasser: value');
	note('bypasser X-Cache: ' . header($res, 'X-Cache'));
	sql('ALTER ROLE bypasser NOBYPASSRLS');
	ok(defined poll_until(5, sub {
		$res = req('GET', '/kv/secret/1', \@as);
		$res->{status} == 404;
	}), 'GET turns 404 (no policy for bypasser: it sees nothing)')
	  or diag("last: $res->{status} " . header($res, 'X-Cache'));
	for my $i (1 .. 3)
	{
		my $again = req('GET', '/kv/secret/1', \@as);
		is($again->{status}, 404, "GET $i: 404");
		unlike($again->{content}, qr/top secret/, "GET $i: no value");
	}
};

done_testing();
