
# Copyright (c) kvserver authors

# kvcli, the command-line client, against a real node: values are bytes
# both ways, keys are percent-encoded, list follows every page, and each
# outcome has its documented exit code (0 ok, 1 not found, 2 usage,
# 3 server error, 4 connection error).
#
# The binary is $KVCLI, else $TESTDIR/kvcli/kvcli (PGXS sets TESTDIR for
# TAP tests), else kvcli/kvcli relative to this file.  Build it first:
# make kvcli.  Without it the test is skipped, unless KV_REQUIRE_KVCLI is set.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::RealBin/../lib";

use IPC::Run;
use JSON::PP;
use KvServerTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $kvcli =
    defined $ENV{KVCLI} && $ENV{KVCLI} ne '' ? $ENV{KVCLI}
  : defined $ENV{TESTDIR} && $ENV{TESTDIR} ne '' ? "$ENV{TESTDIR}/kvcli/kvcli"
  :   "$FindBin::RealBin/../../kvcli/kvcli";

if (!-x $kvcli)
{
	# kvcli is optional for `make installcheck` (it needs libcurl);
	# scripts/test.sh builds it and sets KV_REQUIRE_KVCLI, so CI fails here
	if ($ENV{KV_REQUIRE_KVCLI})
	{
		fail("kvcli binary $kvcli is there and executable (build it: make kvcli)");
		done_testing();
		exit;
	}
	plan skip_all => "kvcli is not built (make kvcli); set KV_REQUIRE_KVCLI=1 to fail instead";
}
note "kvcli: $kvcli";

my $kv = KvServerTest->new('kvcli');
my $node = $kv->node;
my $url = $kv->url('');

sub sql { return $node->safe_psql('postgres', $_[0]); }

# Run kvcli with the given arguments (--url of the node first, unless
# url => undef or another URL is given).  Returns { rc, out, err }; out and
# err are bytes.
sub kvcli
{
	my ($args, %opts) = @_;
	my @cmd = ($kvcli);
	my $u = exists $opts{url} ? $opts{url} : $url;
	push @cmd, '--url', $u if defined $u;
	push @cmd, @$args;
	my $in = defined $opts{stdin} ? $opts{stdin} : '';
	my ($out, $err) = ('', '');
	local %ENV = %ENV;
	delete $ENV{$_} foreach qw(KVSERVER_URL KVSERVER_USER KVSERVER_TOKEN KVSERVER_CACERT);
	$ENV{KVSERVER_URL} = $opts{env_url} if defined $opts{env_url};
	$ENV{$_} = $opts{env}{$_} foreach keys %{ $opts{env} || {} };
	IPC::Run::run(\@cmd, '<', \$in, '>', \$out, '2>', \$err,
		IPC::Run::timeout(60));
	return { rc => $? >> 8, signal => $? & 127, out => $out, err => $err };
}

sub count_lines { return ($_[0] =~ tr/\n//); }

# the key as SQL sees it, by its UTF-8 bytes
sub sql_key { return "convert_from('\\x" . unpack('H*', $_[0]) . "'::bytea, 'UTF8')"; }

subtest '--help prints the usage and the exit codes, exit 0' => sub {
	my $r = kvcli(['--help'], url => undef);
	is($r->{rc}, 0, 'exit 0');
	like($r->{out}, qr/^Usage:/m, 'usage on stdout');
	like($r->{out}, qr/get KEY/, 'mentions get');
	like($r->{out}, qr/list \[PREFIX\]/, 'mentions list');
	like($r->{out}, qr/^\s+4\s+connection error/m, 'documents exit code 4');
	is($r->{err}, '', 'nothing on stderr');
	is(kvcli(['-h'], url => undef)->{rc}, 0, '-h: exit 0');
	is(kvcli([ 'get', 'x', '--help' ])->{rc}, 0, '--help after a command: exit 0');
};

subtest 'usage errors exit 2 with a message on stderr' => sub {
	my @cases = (
		[ [], 'no arguments' ],
		[ ['frobnicate'], 'unknown command' ],
		[ ['put'], 'put without a key' ],
		[ ['get'], 'get without a key' ],
		[ ['del'], 'del without a key' ],
		[ [ 'get', 'a', 'b' ], 'get with two keys' ],
		[ [ 'put', 'a', 'b', 'c' ], 'put with too many arguments' ],
		[ [ 'stats', 'x' ], 'stats with an argument' ],
		[ [ 'get', '' ], 'empty key' ],
		[ [ '--bogus', 'get', 'a' ], 'unknown option' ],
		[ [ 'get', 'a', '--ttl', '5' ], '--ttl on get' ],
		[ [ 'put', 'a', 'v', '--ttl', 'soon' ], '--ttl not a number' ],
		[ [ 'put', 'a', 'v', '--ttl', '0' ], '--ttl 0' ],
		[ [ 'put', 'a', 'v', '--ttl' ], '--ttl without a value' ],
		[ [ '--url', 'ftp://127.0.0.1/', 'get', 'a' ], 'a URL that is not http' ],);
	foreach my $c (@cases)
	{
		my ($args, $name) = @$c;
		my $r = kvcli($args);
		is($r->{rc}, 2, "$name: exit 2") or diag("stderr: $r->{err}");
		like($r->{err}, qr/^kvcli: /, "$name: says why on stderr");
		is($r->{out}, '', "$name: nothing on stdout");
	}
	is(sql("SELECT count(*) FROM kv_store"), '0', 'no usage error wrote anything');
};

subtest 'put KEY VALUE, then get writes exactly the value' => sub {
	my $r = kvcli([ 'put', 'greeting', 'hello world' ]);
	is($r->{rc}, 0, 'put: exit 0') or diag("stderr: $r->{err}");
	is($r->{out}, '', 'put prints nothing');
	is(sql("SELECT kv_get('greeting')"), 'hello world', 'stored, as SQL sees it');
	is(sql("SELECT content_type FROM kv_store WHERE key = 'greeting'"),
		'application/octet-stream', 'default Content-Type');

	$r = kvcli([ 'get', 'greeting' ]);
	is($r->{rc}, 0, 'get: exit 0');
	is($r->{out}, 'hello world', 'the value, no newline added');
	is($r->{err}, '', 'nothing on stderr');

	$r = kvcli([ 'put', 'greeting', 'replaced' ]);
	is($r->{rc}, 0, 'put over an existing key: exit 0');
	is(kvcli([ 'get', 'greeting' ])->{out}, 'replaced', 'get sees the new value');
};

subtest 'put from stdin is binary safe: all 256 bytes round-trip' => sub {
	my $value = join('', map { chr } 0 .. 255) x 4;
	my $r = kvcli([ 'put', 'bytes' ], stdin => $value);
	is($r->{rc}, 0, 'put: exit 0') or diag("stderr: $r->{err}");
	is(sql("SELECT encode(value, 'hex') FROM kv_store WHERE key = 'bytes'"),
		unpack('H*', $value), 'the table holds the 1024 bytes');

	$r = kvcli([ 'get', 'bytes' ]);
	is($r->{rc}, 0, 'get: exit 0');
	is(length($r->{out}), 1024, '1024 bytes on stdout');
	is(unpack('H*', $r->{out}), unpack('H*', $value), 'byte for byte');

	# and again, now from the cache
	$r = kvcli([ 'get', 'bytes' ]);
	is(unpack('H*', $r->{out}), unpack('H*', $value), 'byte for byte, second get');

	$r = kvcli([ 'put', 'empty' ], stdin => '');
	is($r->{rc}, 0, 'put of empty stdin: exit 0');
	is(sql("SELECT length(value) FROM kv_store WHERE key = 'empty'"), '0',
		'an empty value is stored');
	$r = kvcli([ 'get', 'empty' ]);
	is($r->{rc}, 0, 'get of an empty value: exit 0');
	is($r->{out}, '', 'nothing on stdout');
};

subtest 'put --content-type is stored and served' => sub {
	my $r = kvcli([ 'put', '--content-type', 'text/plain; charset=utf-8',
		'typed', 'abc' ]);
	is($r->{rc}, 0, 'put: exit 0') or diag("stderr: $r->{err}");
	my $res = $kv->http('GET', '/kv/typed');
	is(header($res, 'Content-Type'), 'text/plain; charset=utf-8',
		'GET answers with the stored Content-Type');
	$r = kvcli([ 'put', 'typed2', 'abc', '--content-type=application/json' ]);
	is($r->{rc}, 0, '--content-type=TYPE form: exit 0');
	is(sql("SELECT content_type FROM kv_store WHERE key = 'typed2'"),
		'application/json', 'stored');
};

subtest 'keys are percent-encoded: any UTF-8 key round-trips' => sub {
	my @keys = (
		'a/b', 'x/../y', '..', '.', 'a//b', '/lead', 'trail/',
		'sp ace', 'q?x=1&y=2', 'hash#frag', 'pct%2F', 'plus+sign',
		"tab\there", "new\nline", "quote\"'", "\x{43a}\x{43b}\x{44e}\x{447}",
		"emoji \x{1F600}", '-dash');
	foreach my $key (@keys)
	{
		my $bytes = $key;
		utf8::encode($bytes);
		(my $name = $bytes) =~ s/([^\x21-\x7e])/sprintf('\\x%02X', ord($1))/ge;
		my @args = ('put', '--', $bytes, "v:$bytes");
		my $r = kvcli(\@args);
		is($r->{rc}, 0, "put '$name': exit 0") or diag("stderr: $r->{err}");
		is(sql("SELECT encode(value, 'hex') FROM kv_store WHERE key = "
				  . sql_key($bytes)),
			unpack('H*', "v:$bytes"),
			"'$name' is the key SQL sees");
		$r = kvcli([ 'get', '--', $bytes ]);
		is($r->{rc}, 0, "get '$name': exit 0");
		is($r->{out}, "v:$bytes", "get '$name': the value");
	}
	is(kvcli([ 'get', 'a%2Fb' ])->{rc}, 1,
		'a literal % in a key is encoded, not passed through');
};

subtest 'get of a missing key exits 1 with nothing on stdout' => sub {
	my $r = kvcli([ 'get', 'no-such-key' ]);
	is($r->{rc}, 1, 'exit 1');
	is($r->{out}, '', 'nothing on stdout');
	like($r->{err}, qr/not found/, 'says not found on stderr');

	sql("INSERT INTO kv_store (key, value, expires_at) "
		  . "VALUES ('expired', 'old', now() - interval '1 hour')");
	is(kvcli([ 'get', 'expired' ])->{rc}, 1, 'an expired key: exit 1');
};

subtest 'del exits 0, then 1' => sub {
	is(kvcli([ 'put', 'doomed', 'x' ])->{rc}, 0, 'put');
	my $r = kvcli([ 'del', 'doomed' ]);
	is($r->{rc}, 0, 'del: exit 0') or diag("stderr: $r->{err}");
	is($r->{out}, '', 'del prints nothing');
	is(sql("SELECT count(*) FROM kv_store WHERE key = 'doomed'"), '0',
		'the row is gone');
	$r = kvcli([ 'del', 'doomed' ]);
	is($r->{rc}, 1, 'second del: exit 1');
	like($r->{err}, qr/not found/, 'says not found');
	is(kvcli([ 'get', 'doomed' ])->{rc}, 1, 'get after del: exit 1');
};

subtest 'put --ttl sets an expiry' => sub {
	my $r = kvcli([ 'put', 'session', 'tok', '--ttl', '3600' ]);
	is($r->{rc}, 0, 'put --ttl 3600: exit 0') or diag("stderr: $r->{err}");
	is(sql("SELECT expires_at IS NOT NULL FROM kv_store WHERE key = 'session'"),
		't', 'expires_at is set');
	is( sql("SELECT expires_at BETWEEN now() + interval '3500 s' "
			  . "AND now() + interval '3700 s' FROM kv_store WHERE key = 'session'"),
		't',
		'about an hour from now');
	$r = kvcli([ '--ttl=60', 'put', 'session2', 'tok' ]);
	is($r->{rc}, 0, '--ttl=60 before the command: exit 0');
	is(sql("SELECT expires_at IS NOT NULL FROM kv_store WHERE key = 'session2'"),
		't', 'expires_at is set');
	is(sql("SELECT expires_at IS NULL FROM kv_store WHERE key = 'greeting'"),
		't', 'a put without --ttl has no expiry');
	is(kvcli([ 'get', 'session' ])->{out}, 'tok', 'readable before it expires');
};

subtest 'list follows every page' => sub {
	sql("INSERT INTO kv_store (key, value) "
		  . "SELECT 'page/' || i, 'v' FROM generate_series(1, 1500) i");
	my $r = kvcli([ 'list', 'page/' ]);
	is($r->{rc}, 0, 'exit 0') or diag("stderr: $r->{err}");
	my @lines = split /\n/, $r->{out}, -1;
	is(pop @lines, '', 'output ends with a newline');
	is(scalar @lines, 1500, '1500 keys, more than one page of 1000');
	my %seen;
	$seen{$_}++ foreach @lines;
	is(scalar keys %seen, 1500, 'no key twice');
	is(join(',', @lines),
		join(',', split /\n/, sql("SELECT key FROM kv_store WHERE key LIKE 'page/%' ORDER BY key")),
		'the keys, in byte order');

	$r = kvcli([ 'list', 'page/14' ]);
	is($r->{rc}, 0, 'a narrower prefix: exit 0');
	is(count_lines($r->{out}), 111, 'page/14, page/140..149, page/1400..1499');

	$r = kvcli([ 'list', 'nothing-here/' ]);
	is($r->{rc}, 0, 'a prefix with no keys: exit 0');
	is($r->{out}, '', 'prints nothing');

	$r = kvcli(['list']);
	is($r->{rc}, 0, 'list without a prefix: exit 0');
	# one line per key, and one more for each newline inside a key
	my $lines = sql("SELECT sum(1 + length(key) - length(replace(key, E'\\n', ''))) "
		  . "FROM kv_store WHERE expires_at IS NULL OR expires_at > now()");
	is(count_lines($r->{out}), $lines, 'every live key');

	# a prefix that needs encoding, with a key containing UTF-8
	my $k = "p\x{e4} &x/\x{1F600}";
	utf8::encode($k);
	is(kvcli([ 'put', $k, 'v' ])->{rc}, 0, 'put a UTF-8 key');
	$r = kvcli([ 'list', substr($k, 0, 6) ]);
	is($r->{out}, "$k\n", 'listed by an encoded prefix, UTF-8 bytes intact');
};

subtest 'stats prints /health' => sub {
	my $r = kvcli(['stats']);
	is($r->{rc}, 0, 'exit 0') or diag("stderr: $r->{err}");
	my $json = eval { JSON::PP->new->decode($r->{out}) };
	is(ref $json, 'HASH', 'stdout is a JSON object') or diag("stdout: $r->{out}");
	is($json->{status}, 'ok', 'status ok');
};

subtest 'KVSERVER_URL is the default URL; --url wins over it' => sub {
	my $r = kvcli([ 'get', 'greeting' ], url => undef, env_url => $url);
	is($r->{rc}, 0, 'KVSERVER_URL: exit 0');
	is($r->{out}, 'replaced', 'KVSERVER_URL: the value');
	$r = kvcli([ 'get', 'greeting' ], url => "$url/",
		env_url => 'http://127.0.0.1:1');
	is($r->{rc}, 0, '--url (with a trailing slash) overrides KVSERVER_URL');
};

subtest 'a server error exits 3 and prints the server message' => sub {
	my $long = 'k' x 2000;
	my $r = kvcli([ 'put', $long, 'v' ]);
	is($r->{rc}, 3, 'put of a 2000-byte key: exit 3');
	like($r->{err}, qr/400/, 'stderr has the status');
	like($r->{err}, qr/key_too_long/, 'stderr has the error code');
	like($r->{err}, qr/longer|long|max/i, 'stderr has the message');
	is($r->{out}, '', 'nothing on stdout');

	$r = kvcli([ 'get', $long ]);
	is($r->{rc}, 3, 'get of a 2000-byte key: exit 3, not 1');

	$r = kvcli([ 'put', 'bigttl', 'v', '--ttl', '999999999999' ]);
	is($r->{rc}, 3, 'a ttl the server refuses: exit 3');
	like($r->{err}, qr/bad_request/, 'stderr has the error code');

	$r = kvcli(['stats'], url => "$url/not-kvserver");
	is($r->{rc}, 3, 'stats answered 404 (wrong base URL): exit 3');
	$r = kvcli([ 'list', 'x' ], url => "$url/not-kvserver");
	is($r->{rc}, 3, 'list answered 404 (wrong base URL): exit 3');
};

subtest 'values up to max_value_size round-trip; one byte more exits 3' => sub {
	my $max = 1024 * 1024;    # kvserver.max_value_size default
	my $value = join('', map { chr(($_ * 7) % 256) } 0 .. $max - 1);
	my $r = kvcli([ 'put', 'big' ], stdin => $value);
	is($r->{rc}, 0, 'put of 1MB from stdin: exit 0') or diag("stderr: $r->{err}");
	$r = kvcli([ 'get', 'big' ]);
	is($r->{rc}, 0, 'get: exit 0');
	is(length($r->{out}), $max, '1MB back');
	ok($r->{out} eq $value, 'byte for byte');

	# the server answers 413 and closes the connection, maybe before the
	# whole body is sent: still an HTTP error, not a connection error
	$r = kvcli([ 'put', 'too-big' ], stdin => $value . 'x');
	is($r->{rc}, 3, 'put of 1MB + 1 byte: exit 3') or diag("stderr: $r->{err}");
	like($r->{err}, qr/413/, 'stderr has the status');
	is(sql("SELECT count(*) FROM kv_store WHERE key = 'too-big'"), '0',
		'nothing stored');
};

subtest 'credentials: --user, KVSERVER_USER, --token, KVSERVER_TOKEN' => sub {
	sql(q{CREATE ROLE cli_user LOGIN PASSWORD 'cli-pass';
		GRANT SELECT, INSERT, UPDATE, DELETE ON kv_store TO cli_user;
		GRANT USAGE ON SEQUENCE kv_store_version_seq TO cli_user;
		CREATE ROLE cli_reader LOGIN PASSWORD 'reader-pass';
		GRANT SELECT ON kv_store TO cli_reader;});
	my $r = kvcli([ '--user', 'cli_user:cli-pass', 'put', 'auth/1', 'v1' ]);
	is($r->{rc}, 0, 'put with --user: exit 0') or diag("stderr: $r->{err}");
	$r = kvcli([ 'get', 'auth/1' ], env => { KVSERVER_USER => 'cli_user:cli-pass' });
	is($r->{rc}, 0, 'get with KVSERVER_USER: exit 0');
	is($r->{out}, 'v1', 'the value');

	$r = kvcli([ '--user', 'cli_user:wrong', 'get', 'auth/1' ]);
	is($r->{rc}, 3, 'wrong password: exit 3');
	like($r->{err}, qr/401/, 'stderr has the status');
	is($r->{out}, '', 'nothing on stdout');

	$r = kvcli([ '--user', 'cli_reader:reader-pass', 'put', 'auth/2', 'v' ]);
	is($r->{rc}, 3, 'a role without INSERT: exit 3');
	like($r->{err}, qr/403/, 'stderr has 403');

	my $token = sql("SET ROLE cli_user; SELECT kv_token_create('1 hour')");
	like($token, qr/^kvt_[0-9a-f]{64}$/, 'kv_token_create gives a token');
	$r = kvcli([ '--token', $token, 'put', 'auth/3', 'v3' ]);
	is($r->{rc}, 0, 'put with --token: exit 0') or diag("stderr: $r->{err}");
	$r = kvcli([ 'get', 'auth/3' ], env => { KVSERVER_TOKEN => $token });
	is($r->{out}, 'v3', 'get with KVSERVER_TOKEN');
	is(kvcli([ '--user', 'nocolon', 'get', 'a' ])->{rc}, 2,
		'--user without a colon: usage error');
};

subtest 'txn [FILE] posts a transaction and prints its results' => sub {
	my $dir = PostgreSQL::Test::Utils::tempdir();
	my $file = "$dir/txn.json";
	my $ops = { ops => [ { op => 'put', key => 'txn/a', value => 'one' },
		{ op => 'check', key => 'txn/b', version => 0 }, { op => 'get', key => 'txn/a' } ] };
	open(my $fh, '>', $file) or die "$file: $!";
	print $fh encode_json($ops);
	close($fh);
	my $r = kvcli([ 'txn', $file ]);
	is($r->{rc}, 0, 'txn FILE: exit 0') or diag("stderr: $r->{err}");
	my $j = eval { decode_json($r->{out}) };
	is(ref $j eq 'HASH' && scalar @{ $j->{results} }, 3, 'prints the results, one per operation');
	is($j && $j->{results}[2]{value}, 'one', 'the get sees the put');
	like($r->{out}, qr/\n\z/, 'ends with a newline');
	is(kvcli([ 'get', 'txn/a' ])->{out}, 'one', 'the put is there');

	my $version = $j->{results}[0]{version};
	$r = kvcli(['txn'], stdin => encode_json({ ops => [ { op => 'check', key => 'txn/a', version => $version },
		{ op => 'delete', key => 'txn/a' } ] }));
	is($r->{rc}, 0, 'txn from stdin: exit 0') or diag("stderr: $r->{err}");
	$r = kvcli([ 'txn', '-' ], stdin => encode_json({ ops => [ { op => 'put', key => 'txn/c', value => 'x' },
		{ op => 'check', key => 'txn/a', version => $version } ] }));
	is($r->{rc}, 6, 'a check that does not hold: exit 6');
	like($r->{err}, qr/412 precondition_failed: operation 1: /, 'stderr names the operation');
	is($r->{out}, '', 'nothing on stdout');
	is(kvcli([ 'get', 'txn/c' ])->{rc}, 1, 'nothing was written');
	$r = kvcli(['txn'], stdin => '{"ops": [{"op": "frob", "key": "x"}]}');
	is($r->{rc}, 3, 'a malformed transaction: exit 3');
	like($r->{err}, qr/400 bad_request: operation 0: /, 'stderr names the operation');
	is(kvcli([ 'txn', "$dir/none.json" ])->{rc}, 5, 'a file that cannot be read: exit 5');
	is(kvcli([ 'txn', 'a', 'b' ])->{rc}, 2, 'two files: usage error');
	like(kvcli(['--help'], url => undef)->{out}, qr/^\s+6\s+txn: a check did not hold/m,
		'--help documents exit code 6');
};

subtest 'an unreachable server exits 4' => sub {
	my $port = PostgreSQL::Test::Cluster::get_free_port();
	foreach my $args ([ 'get', 'a' ], [ 'put', 'a', 'v' ], [ 'del', 'a' ],
		['list'], ['stats'])
	{
		my $r = kvcli($args, url => "http://127.0.0.1:$port");
		is($r->{rc}, 4, "$args->[0]: exit 4") or diag("stderr: $r->{err}");
		like($r->{err}, qr/^kvcli: /, "$args->[0]: says why");
		is($r->{out}, '', "$args->[0]: nothing on stdout");
	}
};

done_testing();
