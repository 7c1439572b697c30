
# Copyright (c) kvserver authors

# Transactions: POST /txn runs checks, gets, puts and deletes in one
# PostgreSQL transaction, in order, all or nothing.  Results per operation;
# a failed check is 412 with the operation's index and changes nothing, as
# does a failing operation (with its own error); validation (400, 413,
# 405, kvserver.max_txn_ops); roles, GRANTs and row-level security; a row
# locked by another session (the transaction waits and retries); the cache
# after a transaction; then concurrent transactions moving amounts between
# two counters while readers check that no state is ever torn (sum of both
# in one read transaction) and that no key's version ever goes backwards,
# across read transactions and single GETs (cache hits included).

use strict;
use warnings;

use FindBin;
use lib "$FindBin::RealBin/../lib";

use JSON::PP;
use KvServerTest;
use MIME::Base64 qw(encode_base64 decode_base64);
use POSIX ();
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);

my $kv = KvServerTest->new('txn',
	conf => join("\n",
		"kvserver.auth_max_failures = 0",
		"wal_level = replica",
		"max_wal_senders = 10",
		"hot_standby = on",
		""));
my $node = $kv->node;
my $json = JSON::PP->new->utf8->canonical;

sub sql { return $node->safe_psql('postgres', $_[0]); }

# POST /txn with these operations (or this raw body); the response and its
# decoded JSON.
sub txn
{
	my ($ops, %opts) = @_;
	my $body = ref $ops ? $json->encode({ ops => $ops }) : $ops;
	my %h = ('Content-Type' => 'application/json', %{ $opts{headers} // {} });
	my $res = $kv->http('POST', '/txn', $body, \%h);
	return ($res, decode_json_body($res));
}

# A transaction that must succeed: its results.
sub txn_ok
{
	my ($ops, $name, %opts) = @_;
	local $Test::Builder::Level = $Test::Builder::Level + 1;
	my ($res, $j) = txn($ops, %opts);
	is($res->{status}, 200, "$name: 200")
	  or diag($res->{content});
	return ref $j eq 'HASH' ? $j->{results} : undef;
}

# A transaction that must fail with this status, code and operation index
# (undef: no "op" in the answer).
sub txn_fails
{
	my ($ops, $status, $code, $op, $name, %opts) = @_;
	local $Test::Builder::Level = $Test::Builder::Level + 1;
	my ($res, $j) = txn($ops, %opts);
	is_error($res, $status, $code, $name);
	is(ref $j eq 'HASH' ? $j->{op} : 'no body', $op,
		"$name: op is " . ($op // 'absent'));
	return $j;
}

sub get
{
	my ($key) = @_;
	return $kv->http('GET', key_path($key));
}

sub version_of
{
	my ($key) = @_;
	return sql("SELECT version FROM kv_store WHERE key = " . sql_quote($key));
}

sub etag_version
{
	my ($res) = @_;
	my $etag = header($res, 'ETag');
	return $etag =~ /^"(\d+)"$/ ? $1 : undef;
}

subtest 'puts, gets, checks and deletes, in order' => sub {
	my $bytes = "\xff\x00\x01binary\xfe";
	my $r = txn_ok(
		[
			{ op => 'put', key => 't/a', value => 'one' },
			{ op => 'put', key => 't/b', value_base64 => encode_base64($bytes, ''),
				content_type => 'image/x-test' },
			{ op => 'get', key => 't/a' },
			{ op => 'delete', key => 't/never' },
			{ op => 'check', key => 't/never', version => 0 },
			{ op => 'get', key => 't/never' },
		],
		'first transaction');
	is(scalar @$r, 6, 'one result per operation');
	my $va = $r->[0]{version};
	ok($va && $r->[0]{created}, 'put t/a: created, with a version');
	ok($r->[1]{version} && $r->[1]{created}, 'put t/b: created');
	is_deeply($r->[2],
		{ found => JSON::PP::true, version => $va, value => 'one',
			content_type => 'text/plain; charset=utf-8' },
		'get sees the earlier put of the same transaction');
	is_deeply($r->[3], { existed => JSON::PP::false }, 'delete of an absent key');
	is_deeply($r->[4], { found => JSON::PP::false }, 'check version 0 of an absent key');
	is_deeply($r->[5], { found => JSON::PP::false }, 'get of an absent key');

	my $res = get('t/a');
	is("$res->{status} $res->{content}", '200 one', 'GET /kv/t/a after the commit');
	is(etag_version($res), $va, 'its ETag is the version the put reported');
	$res = get('t/b');
	is($res->{content}, $bytes, 'GET /kv/t/b: the decoded bytes');
	is(header($res, 'Content-Type'), 'image/x-test', 'with the content type given');
	is(version_of('t/a'), $va, 'the table has that version');

	$r = txn_ok(
		[
			{ op => 'check', key => 't/a', version => $va + 0 },
			{ op => 'get', key => 't/b' },
			{ op => 'put', key => 't/a', value => 'two', ttl => 60 },
			{ op => 'delete', key => 't/b' },
			{ op => 'get', key => 't/a' },
			{ op => 'get', key => 't/b' },
			{ op => 'put', key => 't/empty', value => '', content_type => undef },
		],
		'second transaction');
	is_deeply($r->[0], { found => JSON::PP::true, version => $va },
		'check: found, at its version');
	is(decode_base64($r->[1]{value_base64} // ''), $bytes,
		'get of bytes that are not UTF-8: value_base64');
	ok(!exists $r->[1]{value}, '... and no value');
	is($r->[1]{content_type}, 'image/x-test', '... with the content type');
	ok($r->[2]{version} > $va, 'put: a new version');
	ok(!$r->[2]{created}, 'put: replaced, not created');
	like($r->[2]{expires_at} // '', qr/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/,
		'put with a ttl: expires_at');
	is_deeply($r->[3], { existed => JSON::PP::true }, 'delete: existed');
	is($r->[4]{value}, 'two', 'get after the put: the new value');
	is($r->[4]{version}, $r->[2]{version}, '... at the new version');
	is($r->[4]{expires_at}, $r->[2]{expires_at}, '... with the expiry');
	is_deeply($r->[5], { found => JSON::PP::false }, 'get after the delete: not found');
	ok($r->[6]{created}, 'an empty value, without content type');

	$res = get('t/a');
	is($res->{content}, 'two', 'GET: the new value');
	like(header($res, 'X-Expires-At'), qr/Z$/, 'with its expiry');
	is(get('t/b')->{status}, 404, 'GET of the deleted key: 404');
	$res = get('t/empty');
	is($res->{status} . '[' . $res->{content} . ']', '200[]', 'empty value');
	is(header($res, 'Content-Type'), 'application/octet-stream',
		'content_type null: none recorded');

	# text with a NUL and non-ASCII characters stays text
	my $text = "caf\x{e9} \x{2603}\x{0}end";
	$r = txn_ok([ { op => 'put', key => 't/text', value => $text },
		{ op => 'get', key => 't/text' } ], 'text with NUL and non-ASCII');
	is($r->[1]{value}, $text, 'read back as the same text');
	my $expected = $text;
	utf8::encode($expected);
	is(get('t/text')->{content}, $expected, 'GET: its UTF-8 bytes');

	# a transaction that only reads
	$r = txn_ok([ { op => 'get', key => 't/a' }, { op => 'check', key => 't/b', version => 0 },
		{ op => 'get', key => 't/a' } ], 'read-only transaction');
	is($r->[0]{value}, 'two', 'read-only: get');
	is_deeply($r->[1], { found => JSON::PP::false }, 'read-only: check');
	is_deeply($r->[2], $r->[0], 'the same key twice: the same answer');
};

subtest 'a failed check changes nothing' => sub {
	my $r = txn_ok([ { op => 'put', key => 'f/x', value => 'x1' },
		{ op => 'put', key => 'f/y', value => 'y1' } ], 'set up');
	my ($vx, $vy) = ($r->[0]{version}, $r->[1]{version});
	# cache both, so that a stale cache would show
	get('f/x') for 1 .. 2;
	get('f/y') for 1 .. 2;

	my $j = txn_fails(
		[
			{ op => 'put', key => 'f/x', value => 'x2' },
			{ op => 'delete', key => 'f/y' },
			{ op => 'put', key => 'f/z', value => 'new' },
			{ op => 'check', key => 'f/y', version => $vy + 1000 },
			{ op => 'put', key => 'f/w', value => 'never' },
		],
		412, 'precondition_failed', 3, 'check of the wrong version after writes');
	like($j->{message} // '', qr/version/, 'the message says why');
	my $res = get('f/x');
	is("$res->{content} " . etag_version($res), "x1 $vx", 'f/x: old value and version');
	$res = get('f/y');
	is("$res->{status} $res->{content}", '200 y1', 'f/y: not deleted');
	is(get('f/z')->{status}, 404, 'f/z: not created');
	is(get('f/w')->{status}, 404, 'f/w: not created');
	is(sql("SELECT string_agg(key || '=' || convert_from(value, 'UTF8') || ':' || version, ',' ORDER BY key) FROM kv_store WHERE key LIKE 'f/%'"),
		"f/x=x1:$vx,f/y=y1:$vy", 'the table: unchanged');

	txn_fails([ { op => 'check', key => 'f/x', version => 0 },
		{ op => 'put', key => 'f/x', value => 'x3' } ],
		412, 'precondition_failed', 0, 'version 0 of an existing key');
	txn_fails([ { op => 'get', key => 'f/x' },
		{ op => 'check', key => 'f/absent', version => $vx + 0 } ],
		412, 'precondition_failed', 1, 'a version of an absent key (read-only)');
	txn_fails([ { op => 'check', key => 'f/x', version => $vx + 0 },
		{ op => 'check', key => 'f/y', version => $vx + 0 },
		{ op => 'delete', key => 'f/x' } ],
		412, 'precondition_failed', 1, 'the second of two checks');
	is(get('f/x')->{content}, 'x1', 'f/x still there');

	# version 0 holds: the put creates
	$r = txn_ok([ { op => 'check', key => 'f/new', version => 0 },
		{ op => 'put', key => 'f/new', value => 'n' } ], 'create after version 0');
	ok($r->[1]{created}, 'created');
};

subtest 'a failing operation answers its error with its index' => sub {
	sql("ALTER TABLE kv_store ADD CONSTRAINT txn_test_no_forbidden CHECK (key NOT LIKE 'forbidden/%')");
	my $j = txn_fails(
		[
			{ op => 'put', key => 'e/1', value => 'a' },
			{ op => 'delete', key => 'f/x' },
			{ op => 'put', key => 'forbidden/1', value => 'b' },
			{ op => 'put', key => 'e/2', value => 'c' },
		],
		400, 'bad_request', 2, 'a put the table refuses');
	like($j->{message} // '', qr/txn_test_no_forbidden/, 'the message is the database\'s');
	is(get('e/1')->{status}, 404, 'the earlier put: rolled back');
	is(get('f/x')->{content}, 'x1', 'the earlier delete: rolled back');
	sql("ALTER TABLE kv_store DROP CONSTRAINT txn_test_no_forbidden");
	txn_ok([ { op => 'put', key => 'forbidden/1', value => 'b' } ], 'without the constraint');
};

subtest 'validation: 400, 413, 405, kvserver.max_txn_ops' => sub {
	my @bad = (
		[ 'not JSON', '{"ops": [', undef ],
		[ 'not an object', '[{"op":"get","key":"a"}]', undef ],
		[ 'no ops', '{}', undef ],
		[ 'ops not an array', '{"ops": {"op":"get"}}', undef ],
		[ 'empty ops', '{"ops": []}', undef ],
		[ 'an unknown top-level field', '{"ops": [{"op":"get","key":"a"}], "atomic": true}', undef ],
		[ 'a duplicate top-level field', '{"ops": [], "ops": [{"op":"get","key":"a"}]}', undef ],
		[ 'an operation that is not an object', [ { op => 'get', key => 'a' }, 'get' ], 1 ],
		[ 'an unknown op', [ { op => 'get', key => 'a' }, { op => 'increment', key => 'a' } ], 1 ],
		[ 'op missing', [ { key => 'a' } ], 0 ],
		[ 'op not a string', [ { op => 1, key => 'a' } ], 0 ],
		[ 'op with a NUL', '{"ops": [{"op":"get\\u0000x","key":"a"}]}', 0 ],
		[ 'key missing', [ { op => 'get', key => 'a' }, { op => 'delete' } ], 1 ],
		[ 'key not a string', [ { op => 'get', key => 5 } ], 0 ],
		[ 'an unknown field', [ { op => 'get', key => 'a', version => 1 } ], 0 ],
		[ 'a field of another kind', [ { op => 'delete', key => 'a', value => 'v' } ], 0 ],
		[ 'check without version', [ { op => 'check', key => 'a' } ], 0 ],
		[ 'check with a negative version', [ { op => 'check', key => 'a', version => -1 } ], 0 ],
		[ 'check with a string version', [ { op => 'check', key => 'a', version => '3' } ], 0 ],
		[ 'put without a value', [ { op => 'put', key => 'a' } ], 0 ],
		[ 'put with both values', [ { op => 'put', key => 'a', value => 'x', value_base64 => 'eA==' } ], 0 ],
		[ 'value not a string', [ { op => 'put', key => 'a', value => 12 } ], 0 ],
		[ 'bad base64', [ { op => 'put', key => 'a', value_base64 => 'eA=' } ], 0 ],
		[ 'base64 with a line break', [ { op => 'put', key => 'a', value_base64 => "eHh4\neHh4" } ], 0 ],
		[ 'base64 with padding inside', [ { op => 'put', key => 'a', value_base64 => 'eA==eA==' } ], 0 ],
		[ 'a bad content type', [ { op => 'put', key => 'a', value => 'x', content_type => "text/plain\r\nX: y" } ], 0 ],
		[ 'ttl 0', [ { op => 'put', key => 'a', value => 'x', ttl => 0 } ], 0 ],
		[ 'ttl not a number', [ { op => 'put', key => 'a', value => 'x', ttl => '60' } ], 0 ],
		[ 'the same key put twice', [ { op => 'put', key => 'a', value => 'x' }, { op => 'get', key => 'a' },
			{ op => 'put', key => 'a', value => 'y' } ], 2 ],
		[ 'a key put and deleted', [ { op => 'delete', key => 'b' }, { op => 'put', key => 'a', value => 'x' },
			{ op => 'put', key => 'b', value => 'y' } ], 2 ],
	);
	foreach my $case (@bad)
	{
		my ($name, $ops, $op) = @$case;
		txn_fails($ops, 400, 'bad_request', $op, $name);
	}
	txn_fails([ { op => 'get', key => 'a' }, { op => 'get', key => '' } ],
		400, 'bad_key', 1, 'an empty key');
	txn_fails('{"ops": [{"op":"get","key":"a\\u0000b"}]}', 400, 'bad_key', 0, 'a key with a NUL');
	txn_fails([ { op => 'get', key => 'k' x 1025 } ], 400, 'key_too_long', 0, 'a key too long');
	txn_fails([ { op => 'get', key => 'a' }, { op => 'put', key => 'big', value => 'v' x (1024 * 1024 + 1) } ],
		413, 'value_too_large', 1, 'a value over kvserver.max_value_size');
	txn_fails([ { op => 'put', key => 'big', value_base64 => encode_base64('v' x (1024 * 1024 + 1), '') } ],
		413, 'value_too_large', 0, 'a base64 value over kvserver.max_value_size');
	my ($res) = txn('{"ops": [' . ('{"op":"get","key":"a"},' x 700_000) . '{"op":"get","key":"a"}]}');
	is_error($res, 413, 'value_too_large', 'a body over the limit');

	# a check and a write of the same key, and gets of a written key, are fine
	txn_ok([ { op => 'check', key => 'v/a', version => 0 }, { op => 'put', key => 'v/a', value => '1' },
		{ op => 'get', key => 'v/a' } ], 'check, put and get of one key');

	foreach my $method ('GET', 'PUT', 'DELETE')
	{
		my $r = $kv->http($method, '/txn');
		is_error($r, 405, 'method_not_allowed', "$method /txn");
		is(header($r, 'Allow'), 'POST', "$method /txn: Allow: POST");
	}

	# kvserver.max_txn_ops, reloaded
	my @four = map { { op => 'get', key => "m/$_" } } 1 .. 4;
	my @five = map { { op => 'get', key => "m/$_" } } 1 .. 5;
	my @max = map { { op => 'get', key => "m/$_" } } 1 .. 128;
	txn_ok(\@max, '128 operations by default');
	txn_fails([ @max, { op => 'get', key => 'm/x' } ], 400, 'bad_request', undef, '129 operations');
	sql("ALTER SYSTEM SET kvserver.max_txn_ops = 4; SELECT pg_reload_conf();");
	my $t0 = time();
	my $st;
	while (time() - $t0 < 10)
	{
		($res) = txn(\@five);
		$st = $res->{status};
		last if $st == 400;
		usleep(100_000);
	}
	is($st, 400, 'after a reload to 4: five operations are 400');
	like(decode_json_body($res)->{message} // '', qr/kvserver\.max_txn_ops/, 'the message names the setting');
	txn_ok(\@four, 'four operations');
	sql("ALTER SYSTEM RESET kvserver.max_txn_ops; SELECT pg_reload_conf();");
	$t0 = time();
	while (time() - $t0 < 10)
	{
		($res) = txn(\@max);
		last if $res->{status} == 200;
		usleep(100_000);
	}
	is($res->{status}, 200, 'reset: 128 again');

	is(sql("SELECT count(*) FROM kv_store WHERE key IN ('a', 'b', 'big', 'm/1')"), '0',
		'no refused transaction wrote anything');
};

subtest 'roles: GRANTs and row-level security apply' => sub {
	sql(q{
CREATE ROLE txn_reader LOGIN PASSWORD 'r-pass';
GRANT SELECT ON kv_store TO txn_reader;
CREATE ROLE txn_alice LOGIN PASSWORD 'a-pass';
GRANT SELECT, INSERT, UPDATE, DELETE ON kv_store TO txn_alice;
GRANT USAGE ON SEQUENCE kv_store_version_seq TO txn_alice;
});
	my $reader = { Authorization => 'Basic ' . encode_base64('txn_reader:r-pass', '') };
	my $alice = { Authorization => 'Basic ' . encode_base64('txn_alice:a-pass', '') };
	txn_ok([ { op => 'put', key => 'r/alice/1', value => 'a' },
		{ op => 'put', key => 'r/bob/1', value => 'b' } ], 'set up (anonymous)');

	my $r = txn_ok([ { op => 'get', key => 'r/bob/1' } ], 'a role with SELECT reads',
		headers => $reader);
	is($r && $r->[0]{value}, 'b', '... the value');
	txn_fails([ { op => 'get', key => 'r/bob/1' }, { op => 'put', key => 'r/bob/1', value => 'no' } ],
		403, 'forbidden', undef, 'a role with SELECT only cannot write',
		headers => $reader);
	is(get('r/bob/1')->{content}, 'b', 'unchanged');
	my ($res) = txn([ { op => 'get', key => 'r/bob/1' } ],
		headers => { Authorization => 'Basic ' . encode_base64('txn_reader:wrong', '') });
	is_error($res, 401, 'unauthorized', 'a wrong password');

	sql(q{
ALTER TABLE kv_store ENABLE ROW LEVEL SECURITY;
CREATE POLICY txn_alice_own ON kv_store TO txn_alice
	USING (key LIKE 'r/alice/%') WITH CHECK (key LIKE 'r/alice/%');
CREATE POLICY txn_anon_all ON kv_store TO kv_anon USING (true) WITH CHECK (true);
});
	# the policy reaches the worker's verdicts within a second or so
	my $t0 = time();
	while (time() - $t0 < 10)
	{
		($res) = txn([ { op => 'get', key => 'r/bob/1' } ], headers => $alice);
		my $j = decode_json_body($res);
		last if $res->{status} == 200 && !$j->{results}[0]{found};
		usleep(100_000);
	}
	$r = decode_json_body($res);
	is_deeply($r->{results}, [ { found => JSON::PP::false } ],
		'a row the policy hides: not found');
	$r = txn_ok([ { op => 'get', key => 'r/alice/1' }, { op => 'check', key => 'r/bob/1', version => 0 } ],
		'the policy applies to every operation', headers => $alice);
	is($r && $r->[0]{value}, 'a', 'her own row');
	txn_fails([ { op => 'put', key => 'r/alice/2', value => 'x' }, { op => 'put', key => 'r/bob/2', value => 'y' } ],
		403, 'forbidden', 1, 'a put the policy refuses', headers => $alice);
	is(get('r/alice/2')->{status}, 404, 'her put before it: rolled back');
	$r = txn_ok([ { op => 'put', key => 'r/alice/2', value => 'x' }, { op => 'delete', key => 'r/bob/1' } ],
		'a delete of a hidden row', headers => $alice);
	is_deeply($r && $r->[1], { existed => JSON::PP::false }, '... deletes nothing');
	is(get('r/bob/1')->{content}, 'b', 'r/bob/1 still there');
	sql(q{
DROP POLICY txn_alice_own ON kv_store;
DROP POLICY txn_anon_all ON kv_store;
ALTER TABLE kv_store DISABLE ROW LEVEL SECURITY;
});
};

subtest 'a row locked by another session: the transaction waits for it' => sub {
	txn_ok([ { op => 'put', key => 'l/a', value => '1' } ], 'set up');
	my $bg = $node->background_psql('postgres');
	$bg->query_safe("BEGIN");
	$bg->query_safe("SELECT 1 FROM kv_store WHERE key = 'l/a' FOR UPDATE");

	# the transaction, in a child: its answer goes to a file
	my $out = PostgreSQL::Test::Utils::tempdir() . '/locked.json';
	my $pid = fork();
	die "fork: $!" unless defined $pid;
	if ($pid == 0)
	{
		my ($res, $j) = txn([ { op => 'get', key => 'l/a' }, { op => 'put', key => 'l/a', value => '2' } ]);
		open(my $fh, '>', $out) or POSIX::_exit(1);
		print $fh encode_json({ status => $res->{status}, body => $j });
		close($fh);
		POSIX::_exit(0);
	}
	usleep(1_000_000);
	is(waitpid($pid, POSIX::WNOHANG()), 0, 'after 1 s with the row locked, it still waits');
	$bg->query_safe("COMMIT");
	$bg->quit;
	waitpid($pid, 0);
	open(my $fh, '<', $out) or die "no answer from the child";
	my $got = decode_json(do { local $/; <$fh> });
	close($fh);
	is($got->{status}, 200, 'once the lock is gone: 200');
	is($got->{body}{results}[0]{value}, '1', 'it read the row');
	is(get('l/a')->{content}, '2', 'and wrote it');
};

subtest 'the cache after a transaction: all of its writes or none' => sub {
	txn_ok([ { op => 'put', key => 'c/1', value => 'old1' }, { op => 'put', key => 'c/2', value => 'old2' },
		{ op => 'put', key => 'c/3', value => 'old3' } ], 'set up');
	foreach my $k ('c/1', 'c/2', 'c/3')
	{
		my $res;
		for (1 .. 5)
		{
			$res = get($k);
			last if header($res, 'X-Cache') eq 'HIT';
		}
		is(header($res, 'X-Cache'), 'HIT', "$k is cached");
	}
	my $r = txn_ok([ { op => 'put', key => 'c/1', value => 'new1' }, { op => 'delete', key => 'c/2' },
		{ op => 'put', key => 'c/3', value => 'new3' } ], 'change all three');
	my $res = get('c/1');
	is("$res->{content} " . etag_version($res), "new1 $r->[0]{version}", 'c/1: new value, new version');
	is(get('c/2')->{status}, 404, 'c/2: gone');
	is(get('c/3')->{content}, 'new3', 'c/3: new value');
	is(header(get('c/1'), 'X-Cache'), 'HIT', 'write-through: the new value is cached');

	txn_fails([ { op => 'put', key => 'c/1', value => 'newer' }, { op => 'check', key => 'c/2', version => 1 } ],
		412, 'precondition_failed', 1, 'a failed transaction');
	# (the rolled-back write still invalidated c/1: an extra miss, never a stale hit)
	$res = get('c/1');
	is("$res->{content} " . etag_version($res), "new1 $r->[0]{version}", 'c/1: its value and version');
};

# Concurrent transfers between two counters.  Writers read both (a read
# transaction), then move an amount with a transaction that checks both
# versions; readers check the sum in read transactions and that versions
# never go backwards, whether read by a transaction or by single GETs
# (mostly cache hits: write-through).
subtest 'concurrent transfers: no torn state, no lost update' => sub {
	my $total = 1000;
	my $r = txn_ok([ { op => 'put', key => 'acct/a', value => '500' },
		{ op => 'put', key => 'acct/b', value => '500' } ], 'two counters');
	my $dir = PostgreSQL::Test::Utils::tempdir();
	# under valgrind (test/valgrind/run.sh) everything is some 20 times slower
	my $slow = $ENV{KV_UNDER_VALGRIND} ? 1 : 0;
	my $seconds = $slow ? 20 : 8;
	my $stop_at = time() + $seconds;
	my @kids;

	my $writer = sub {
		my ($id) = @_;
		srand($id * 7919 + $$);
		my %out = (moved => 0, ok => 0, conflicts => 0, unavailable => 0, errors => [],
			stale_after_commit => 0);
		while (time() < $stop_at)
		{
			my ($res, $j) = txn([ { op => 'get', key => 'acct/a' }, { op => 'get', key => 'acct/b' } ]);
			if ($res->{status} != 200)
			{
				push @{ $out{errors} }, "read $res->{status} $res->{content}";
				next;
			}
			my ($a, $b) = @{ $j->{results} };
			my $amount = int(rand(41)) - 20;
			($res, $j) = txn(
				[
					{ op => 'check', key => 'acct/a', version => $a->{version} },
					{ op => 'check', key => 'acct/b', version => $b->{version} },
					{ op => 'put', key => 'acct/a', value => '' . ($a->{value} - $amount) },
					{ op => 'put', key => 'acct/b', value => '' . ($b->{value} + $amount) },
				]);
			if ($res->{status} == 200)
			{
				$out{ok}++;
				$out{moved} += $amount;
				# every write of the transaction is seen by a later GET
				my ($va, $vb) = ($j->{results}[2]{version}, $j->{results}[3]{version});
				my $ga = etag_version(get('acct/a')) // 0;
				my $gb = etag_version(get('acct/b')) // 0;
				$out{stale_after_commit}++ if $ga < $va || $gb < $vb;
			}
			elsif ($res->{status} == 412)
			{
				$out{conflicts}++;
			}
			elsif ($res->{status} == 503)
			{
				$out{unavailable}++;
			}
			else
			{
				push @{ $out{errors} }, "write $res->{status} $res->{content}";
			}
		}
		return \%out;
	};

	my $reader = sub {
		my %out = (reads => 0, gets => 0, torn => [], backwards => [], errors => []);
		my %seen = ('acct/a' => 0, 'acct/b' => 0);
		my $saw = sub {
			my ($key, $version, $how) = @_;
			push @{ $out{backwards} }, "$key: $how version $version after $seen{$key}"
			  if $version < $seen{$key};
			$seen{$key} = $version if $version > $seen{$key};
		};
		while (time() < $stop_at)
		{
			my ($res, $j) = txn([ { op => 'get', key => 'acct/a' }, { op => 'get', key => 'acct/b' } ]);
			if ($res->{status} != 200)
			{
				push @{ $out{errors} }, "read $res->{status} $res->{content}";
				next;
			}
			$out{reads}++;
			my ($a, $b) = @{ $j->{results} };
			push @{ $out{torn} }, "$a->{value}+$b->{value} (versions $a->{version}, $b->{version})"
			  if $a->{value} + $b->{value} != $total;
			$saw->('acct/a', $a->{version}, 'transaction');
			$saw->('acct/b', $b->{version}, 'transaction');
			foreach my $key ('acct/a', 'acct/b')
			{
				my $g = get($key);
				if ($g->{status} != 200)
				{
					push @{ $out{errors} }, "GET $key $g->{status}";
					next;
				}
				$out{gets}++;
				$saw->($key, etag_version($g), 'GET (X-Cache: ' . header($g, 'X-Cache') . ')');
			}
		}
		return \%out;
	};

	my %role;
	foreach my $i (1 .. 7)
	{
		my $kind = $i <= 4 ? 'writer' : 'reader';
		my $pid = fork();
		die "fork: $!" unless defined $pid;
		if ($pid == 0)
		{
			my $out = eval { $kind eq 'writer' ? $writer->($i) : $reader->() };
			$out = { errors => ["died: $@"] } unless $out;
			open(my $fh, '>', "$dir/$i.json") or POSIX::_exit(1);
			print $fh encode_json($out);
			close($fh);
			POSIX::_exit(0);
		}
		$role{$pid} = [ $i, $kind ];
	}
	waitpid($_, 0) foreach keys %role;

	my (%sum, @torn, @backwards, @errors);
	foreach my $pid (keys %role)
	{
		my ($i, $kind) = @{ $role{$pid} };
		open(my $fh, '<', "$dir/$i.json") or die "no result from $kind $i";
		my $out = decode_json(do { local $/; <$fh> });
		close($fh);
		$sum{$_} += $out->{$_} // 0
		  foreach qw(moved ok conflicts unavailable stale_after_commit reads gets);
		push @torn, @{ $out->{torn} // [] };
		push @backwards, @{ $out->{backwards} // [] };
		push @errors, @{ $out->{errors} // [] };
	}
	note(sprintf('%d transfers committed, %d conflicts (412), %d 503; readers: %d read transactions, %d GETs',
			$sum{ok}, $sum{conflicts}, $sum{unavailable}, $sum{reads}, $sum{gets}));
	ok($sum{ok} >= ($slow ? 5 : 20), "transfers committed ($sum{ok})");
	ok($sum{reads} >= ($slow ? 10 : 50), "read transactions ($sum{reads})");
	is(scalar @torn, 0, 'no read transaction saw a torn state')
	  or diag(join("\n", @torn[ 0 .. ($#torn < 9 ? $#torn : 9) ]));
	is(scalar @backwards, 0, 'no version went backwards, by transaction or GET')
	  or diag(join("\n", @backwards[ 0 .. ($#backwards < 9 ? $#backwards : 9) ]));
	is($sum{stale_after_commit}, 0, 'a GET after a transaction\'s 200 saw both of its writes');
	is(scalar @errors, 0, 'no other errors')
	  or diag(join("\n", @errors[ 0 .. ($#errors < 9 ? $#errors : 9) ]));

	my $final = sql("SELECT string_agg(convert_from(value, 'UTF8'), ',' ORDER BY key) FROM kv_store WHERE key IN ('acct/a', 'acct/b')");
	my ($fa, $fb) = split /,/, $final;
	is($fa + $fb, $total, "the table: the sum is still $total ($fa + $fb)");
	is($fa, 500 - $sum{moved}, 'and every committed transfer is in it, once (no lost update)');
	my $res = get('acct/a');
	is($res->{content}, $fa, 'GET agrees with the table');
};

subtest 'a hot standby runs read transactions, refuses writing ones' => sub {
	txn_ok([ { op => 'put', key => 's/a', value => 'on the primary' } ], 'a key on the primary');
	$node->backup('txn_b');
	my $standby = PostgreSQL::Test::Cluster->new('txn_standby');
	$standby->init_from_backup($node, 'txn_b', has_streaming => 1);
	my $standby_port = PostgreSQL::Test::Cluster::get_free_port();
	$standby->append_conf('postgresql.conf', "kvserver.port = $standby_port\n");
	$standby->start;
	my $skv = bless { node => $standby, host => '127.0.0.1', port => $standby_port,
		anonymous_role => 'kv_anon' }, 'KvServerTest';
	ok($skv->wait_for_health(200, 60), 'the standby answers /health');
	txn_ok([ { op => 'put', key => 's/b', value => 'later' } ], 'another key on the primary');
	$node->wait_for_catchup($standby);

	my $post = sub {
		my ($ops) = @_;
		my $res = $skv->http('POST', '/txn', $json->encode({ ops => $ops }),
			{ 'Content-Type' => 'application/json' });
		return ($res, decode_json_body($res));
	};
	my ($res, $j) = $post->([ { op => 'get', key => 's/a' }, { op => 'get', key => 's/b' },
		{ op => 'check', key => 's/c', version => 0 } ]);
	is($res->{status}, 200, 'a read-only transaction on the standby: 200');
	is(join(',', map { $_->{value} // '-' } @{ $j->{results} // [] }), 'on the primary,later,-',
		'it reads what was replayed');
	($res) = $post->([ { op => 'get', key => 's/a' }, { op => 'delete', key => 's/a' } ]);
	is_error($res, 503, 'read_only', 'a transaction that writes, on the standby');
	is(header($res, 'Retry-After'), '1', 'with Retry-After: 1');

	$standby->append_conf('postgresql.conf', "kvserver.primary_url = '" . $kv->url('') . "'\n");
	$standby->reload;
	my $t0 = time();
	while (time() - $t0 < 10)
	{
		($res) = $post->([ { op => 'delete', key => 's/a' } ]);
		last if $res->{status} == 307;
		usleep(100_000);
	}
	is($res->{status}, 307, 'with kvserver.primary_url: 307');
	is(header($res, 'Location'), $kv->url('/txn'), 'to /txn on the primary');
	is(get('s/a')->{content}, 'on the primary', 'nothing was deleted');
	$standby->stop;
};

subtest 'kvserver.executors = 0: the main thread runs transactions' => sub {
	$node->append_conf('postgresql.conf', "kvserver.executors = 0\n");
	$node->restart;
	ok($kv->wait_for_health(200, 60), 'restarted without executors');
	is(sql("SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'kvserver executor'"), '0',
		'no executor runs');
	my $r = txn_ok([ { op => 'put', key => 'x/1', value => 'a' }, { op => 'get', key => 'x/1' } ],
		'a writing transaction');
	is($r && $r->[1]{value}, 'a', 'reads its own put');
	$r = txn_ok([ { op => 'check', key => 'x/1', version => $r->[0]{version} }, { op => 'get', key => 'x/2' } ],
		'a read-only transaction');
	txn_fails([ { op => 'put', key => 'x/2', value => 'b' }, { op => 'check', key => 'x/1', version => 0 } ],
		412, 'precondition_failed', 1, 'a failed check');
	is(get('x/2')->{status}, 404, 'changed nothing');
};

done_testing();
