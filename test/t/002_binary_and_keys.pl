
# Copyright (c) kvserver authors

# Values are bytes, exactly; keys are percent-decoded once and validated;
# bodies over kvserver.max_value_size are refused, by Content-Length or as
# a chunked body grows.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::RealBin/../lib";

use KvServerTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);

my $kv = KvServerTest->new('binary_and_keys');
my $node = $kv->node;

sub sql { return $node->safe_psql('postgres', $_[0]); }

# the key as SQL sees it, by its UTF-8 bytes in hex
sub sql_has_key_hex
{
	my ($hex) = @_;
	return sql("SELECT count(*) FROM kv_store WHERE key = "
		  . "convert_from('\\x$hex'::bytea, 'UTF8')");
}

subtest 'all 256 byte values round-trip through PUT and GET' => sub {
	my $value = join('', map { chr } 0 .. 255);
	my $put = $kv->http('PUT', '/kv/bytes', $value,
		{ 'Content-Type' => 'application/octet-stream' });
	is($put->{status}, 201, 'PUT 201');
	my $get = $kv->http('GET', '/kv/bytes');
	is($get->{status}, 200, 'GET 200');
	is(length($get->{content}), 256, '256 bytes back');
	is(unpack('H*', $get->{content}), unpack('H*', $value), 'byte for byte');
	is(header($get, 'Content-Length'), '256', 'Content-Length 256');

	# and again from the cache
	my $hit = $kv->http('GET', '/kv/bytes');
	is(header($hit, 'X-Cache'), 'HIT', 'second GET is a cache hit');
	is(unpack('H*', $hit->{content}), unpack('H*', $value),
		'byte for byte from the cache');
};

subtest 'kv_get_bytea returns the bytes written over HTTP' => sub {
	my $value = join('', map { chr } 0 .. 255);
	is(sql("SELECT encode(kv_get_bytea('bytes'), 'hex')"),
		unpack('H*', $value), 'kv_get_bytea equals the 256 bytes');
	is(sql("SELECT encode(value, 'hex') FROM kv_store WHERE key = 'bytes'"),
		unpack('H*', $value), 'the table row holds the same bytes');
};

subtest 'bytes written with kv_put(bytea) come back over HTTP' => sub {
	my $value = join('', map { chr(255 - $_) } 0 .. 255) x 3;
	my $hex = unpack('H*', $value);
	sql("SELECT kv_put('sql-bytes', '\\x$hex'::bytea)");
	my $get = $kv->http('GET', '/kv/sql-bytes');
	is($get->{status}, 200, 'GET 200');
	is(unpack('H*', $get->{content}), $hex, 'byte for byte');
};

subtest 'an empty value round-trips' => sub {
	my $put = $kv->http('PUT', '/kv/empty', '');
	is($put->{status}, 201, 'PUT of an empty body: 201');
	my $get = $kv->http('GET', '/kv/empty');
	is($get->{status}, 200, 'GET 200');
	is($get->{content}, '', 'empty body');
	is(header($get, 'Content-Length'), '0', 'Content-Length 0');
	is(sql("SELECT length(kv_get_bytea('empty'))"), '0',
		'kv_get_bytea is an empty bytea, not NULL');
};

subtest 'a%2Fb and a/b are the same key' => sub {
	is($kv->http('PUT', '/kv/a%2Fb', 'slash')->{status}, 201,
		'PUT a%2Fb: 201');
	my $get = $kv->http('GET', '/kv/a/b');
	is($get->{status}, 200, 'GET a/b: 200');
	is($get->{content}, 'slash', 'same value');
	is(sql("SELECT kv_get('a/b')"), 'slash', "SQL sees key 'a/b'");
	is($kv->http('PUT', '/kv/a/b', 'slash2')->{status}, 200,
		'PUT a/b replaces it: 200');
	is($kv->http('GET', '/kv/a%2fb')->{content}, 'slash2',
		'lower-case escape a%2fb reads it');
	is(sql("SELECT count(*) FROM kv_store WHERE key LIKE 'a%b'"), '1',
		'one row');
};

subtest '%41 decodes to A' => sub {
	is($kv->http('PUT', '/kv/%41bc', 'A!')->{status}, 201, 'PUT %41bc: 201');
	is($kv->http('GET', '/kv/Abc')->{content}, 'A!', 'GET Abc');
	is(sql("SELECT kv_get('Abc')"), 'A!', "SQL sees key 'Abc'");
};

subtest 'keys are decoded exactly once: %2541 is the key %41' => sub {
	is($kv->http('PUT', '/kv/%2541', 'pct')->{status}, 201, 'PUT %2541: 201');
	is(sql("SELECT kv_get('%41')"), 'pct', "SQL sees key '%41'");
	is($kv->http('GET', '/kv/A')->{status}, 404, "not the key 'A'");
};

subtest 'plus and dot segments are literal key bytes' => sub {
	is($kv->http('PUT', '/kv/a+b', 'plus')->{status}, 201, 'PUT a+b: 201');
	is(sql("SELECT kv_get('a+b')"), 'plus', "key is 'a+b', not 'a b'");
	my $raw = $kv->raw_http("PUT /kv/x/../y HTTP/1.1\r\nHost: 127.0.0.1\r\n"
		  . "Content-Length: 4\r\nConnection: close\r\n\r\ndots");
	my $res = parse_response($raw->{data});
	is($res && $res->{status}, 201, 'PUT x/../y: 201');
	is(sql("SELECT kv_get('x/../y')"), 'dots', "key is 'x/../y'");
	is(sql("SELECT count(*) FROM kv_store WHERE key = 'y'"), '0',
		"no key 'y'");
};

subtest 'a UTF-8 key %C3%A9t%C3%A9 is the text été' => sub {
	is($kv->http('PUT', '/kv/%C3%A9t%C3%A9', 'summer')->{status}, 201,
		'PUT 201');
	is(sql("SELECT kv_get(U&'\\00E9t\\00E9')"), 'summer', 'SQL kv_get(été)');
	is(sql_has_key_hex('c3a974c3a9'), '1', 'stored as the UTF-8 bytes');
	is($kv->http('GET', '/kv/%c3%a9t%c3%a9')->{content}, 'summer',
		'lower-case escapes read it');
	my $list = decode_json_body($kv->http('GET', '/kv/?prefix=%C3%A9'));
	is_deeply($list && $list->{keys}, ["\x{e9}t\x{e9}"], 'listed by prefix');
};

subtest 'a key of kvserver.max_key_length (1024) bytes is accepted' => sub {
	my $key = 'k' x 1024;
	is($kv->http('PUT', "/kv/$key", 'long')->{status}, 201, 'PUT 201');
	is($kv->http('GET', "/kv/$key")->{content}, 'long', 'GET');
	is(sql("SELECT count(*) FROM kv_store WHERE length(key) = 1024"), '1',
		'stored');
	my $wide = "\xC3\xA9" x 512;    # 512 characters, 1024 bytes
	is($kv->http('PUT', key_path($wide), 'wide')->{status}, 201,
		'1024-byte key of 2-byte characters: 201');
};

subtest 'a key of 1025 bytes is 400 key_too_long' => sub {
	is_error($kv->http('PUT', '/kv/' . ('k' x 1025), 'x'),
		400, 'key_too_long', 'PUT 1025 ASCII bytes');
	is_error($kv->http('GET', '/kv/' . ('k' x 1025)),
		400, 'key_too_long', 'GET 1025 ASCII bytes');
	is_error($kv->http('PUT', key_path(("\xC3\xA9" x 512) . 'a'), 'x'),
		400, 'key_too_long', 'PUT 513 characters, 1025 bytes');
	is(sql("SELECT count(*) FROM kv_store WHERE octet_length(key) > 1024"),
		'0', 'nothing stored');
};

subtest 'NUL, invalid UTF-8 and bad percent-encoding are 400 bad_key' => sub {
	my %bad = (
		'NUL %00' => 'a%00b',
		'invalid UTF-8 %FF' => 'a%FFb',
		'lone continuation byte %80' => '%80',
		'overlong encoding %C0%AF' => '%C0%AF',
		'UTF-16 surrogate %ED%A0%80' => '%ED%A0%80',
		'truncated sequence %C3' => 'x%C3',
		'bad escape %zz' => 'a%zz',
		'trailing %4' => 'a%4',
		'trailing %' => 'a%',);
	foreach my $what (sort keys %bad)
	{
		is_error($kv->http('PUT', "/kv/$bad{$what}", 'x'),
			400, 'bad_key', "PUT $what");
	}
	is_error($kv->http('GET', '/kv/a%00b'), 400, 'bad_key', 'GET NUL');
	is_error($kv->http('DELETE', '/kv/a%FF'), 400, 'bad_key', 'DELETE %FF');
	is(sql("SELECT count(*) FROM kv_store WHERE key LIKE 'a%' AND key NOT IN ('a/b', 'a+b')"),
		'0', 'nothing stored');
};

subtest 'PUT /kv/ (an empty key) is 405: PUT is not allowed on the collection' => sub {
	my $res = $kv->http('PUT', '/kv/', 'x');
	is_error($res, 405, 'method_not_allowed', 'PUT /kv/');
	like(header($res, 'Allow'), qr/\bPOST\b/, 'Allow lists POST');
	unlike(header($res, 'Allow'), qr/\bPUT\b/, 'Allow does not list PUT');
};

# From here on values are limited to 64kB, through a reload.
my $limit = 64 * 1024;

subtest 'kvserver.max_value_size takes effect on reload' => sub {
	$node->append_conf('postgresql.conf', "kvserver.max_value_size = '64kB'\n");
	$node->reload;
	my $over = 'o' x ($limit + 1);
	my $deadline = time() + 15;
	my $status;
	while (time() < $deadline)
	{
		$status = $kv->http('PUT', '/kv/reload-probe', $over)->{status};
		last unless $status == 200 || $status == 201;
		usleep(100_000);
	}
	ok($status != 200 && $status != 201,
		"a body of 64kB + 1 is refused within 15 s of the reload (last: $status)");
	$kv->http('DELETE', '/kv/reload-probe');
};

subtest 'a value of exactly kvserver.max_value_size is accepted' => sub {
	my $value = join('', map { chr($_ % 256) } 0 .. $limit - 1);
	my $put = $kv->http('PUT', '/kv/at-limit', $value);
	is($put->{status}, 201, 'PUT 64kB: 201');
	my $get = $kv->http('GET', '/kv/at-limit');
	is(length($get->{content}), $limit, 'GET returns 64kB');
	ok($get->{content} eq $value, 'byte for byte');
};

subtest 'Content-Length over the limit is 413 value_too_large, connection closed' => sub {
	foreach my $cl ($limit + 1, 2_000_000)
	{
		# headers only: the server must decide from Content-Length alone
		my $raw = $kv->raw_http("PUT /kv/too-big HTTP/1.1\r\nHost: 127.0.0.1\r\n"
			  . "Content-Length: $cl\r\n\r\n", timeout => 10);
		my $res = parse_response($raw->{data});
		ok($res, "Content-Length $cl: got a response before sending the body")
		  or diag(explain $raw);
		next unless $res;
		is_error($res, 413, 'value_too_large', "Content-Length $cl");
		ok($raw->{eof} && !$raw->{timed_out},
			"Content-Length $cl: the server closed the connection");
	}
	is($kv->http('GET', '/kv/too-big')->{status}, 404, 'nothing stored');
};

subtest 'a chunked body passing the limit is 413 before it ends' => sub {
	my $chunk = 'c' x 16384;
	my $head = "PUT /kv/chunked-big HTTP/1.1\r\nHost: 127.0.0.1\r\n"
	  . "Transfer-Encoding: chunked\r\n\r\n";
	# 4 chunks reach the limit exactly; the 5th passes it.  The terminating
	# 0-chunk is never sent: the 413 must not wait for it.  The close comes
	# later: the server drains the rest of the body (lingering close) until
	# the client has sent nothing for kvserver.request_timeout (5 s here).
	my $raw = $kv->raw_http('',
		chunks => [ $head . ("4000\r\n$chunk\r\n" x 4), "4000\r\n$chunk\r\n" ],
		timeout => 10);
	my $res = parse_response($raw->{data});
	ok($res, 'got a response while the body was still open')
	  or diag(explain { %$raw, data => substr($raw->{data}, 0, 300) });
	if ($res)
	{
		is_error($res, 413, 'value_too_large', 'chunked body over the limit');
		ok($raw->{eof}, 'the server closed the connection');
	}
	is($kv->http('GET', '/kv/chunked-big')->{status}, 404, 'nothing stored');
};

subtest 'a complete chunked body over the limit is 413' => sub {
	my $chunk = 'd' x 16384;
	my $raw = $kv->raw_http("PUT /kv/chunked-big2 HTTP/1.1\r\nHost: 127.0.0.1\r\n"
		  . "Transfer-Encoding: chunked\r\n\r\n"
		  . ("4000\r\n$chunk\r\n" x 5) . "0\r\n\r\n", timeout => 10);
	my $res = parse_response($raw->{data});
	ok($res, 'got a response') or diag(explain { %$raw, data => substr($raw->{data}, 0, 300) });
	is_error($res, 413, 'value_too_large', 'chunked body over the limit')
	  if $res;
	is($kv->http('GET', '/kv/chunked-big2')->{status}, 404, 'nothing stored');
};

subtest 'a chunked body under the limit is stored exactly' => sub {
	my $raw = $kv->raw_http('',
		chunks => [
			"PUT /kv/chunked HTTP/1.1\r\nHost: 127.0.0.1\r\n"
			  . "Transfer-Encoding: chunked\r\nContent-Type: text/x-chunks\r\n"
			  . "Connection: close\r\n\r\n5\r\nhello\r\n",
			"6\r\n world\r\n",
			"3\r\n\x00\xff\n\r\n",
			"0\r\n\r\n" ],
		pause => 0.05);
	my $res = parse_response($raw->{data});
	is($res && $res->{status}, 201, 'chunked PUT: 201')
	  or diag(explain $raw);
	my $get = $kv->http('GET', '/kv/chunked');
	is($get->{content}, "hello world\x00\xff\n", 'value is the chunks joined');
	is(header($get, 'Content-Type'), 'text/x-chunks', 'Content-Type kept');

	my $chunk = 'e' x 16384;
	$raw = $kv->raw_http("PUT /kv/chunked-limit HTTP/1.1\r\nHost: 127.0.0.1\r\n"
		  . "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
		  . ("4000\r\n$chunk\r\n" x 4) . "0\r\n\r\n");
	$res = parse_response($raw->{data});
	is($res && $res->{status}, 201, 'chunked body of exactly the limit: 201');
	is(length($kv->http('GET', '/kv/chunked-limit')->{content}), $limit,
		'stored whole');
};

subtest 'POST /kv/ with a value over the limit is 413 value_too_large' => sub {
	my $res = $kv->http('POST', '/kv/',
		'{"key":"big-post","value":"' . ('p' x ($limit + 1)) . '"}',
		{ 'Content-Type' => 'application/json' });
	is_error($res, 413, 'value_too_large', 'POST over the limit');
	is($kv->http('GET', '/kv/big-post')->{status}, 404, 'nothing stored');
};

subtest 'after the 413s the server still serves' => sub {
	is($kv->http('GET', '/health')->{status}, 200, '/health 200');
	my $put = $kv->http('PUT', '/kv/after-413', 'fine');
	is($put->{status}, 201, 'PUT 201');
	is($kv->http('GET', '/kv/after-413')->{content}, 'fine', 'GET');
	is(unpack('H*', $kv->http('GET', '/kv/bytes')->{content}),
		unpack('H*', join('', map { chr } 0 .. 255)), 'old values intact');
};

done_testing();
