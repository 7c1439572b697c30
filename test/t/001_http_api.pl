
# Copyright (c) kvserver authors

# The HTTP API of README.md, endpoint by endpoint and status by status.

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

# no reaper at first: the expiry test needs expired rows that are still there
my $kv = KvServerTest->new('http_api', conf => "kvserver.expire_interval = 0");
my $node = $kv->node;

# "<version>" from a JSON {"key","version"} reply
sub json_version
{
	my ($res) = @_;
	my $json = decode_json_body($res);
	return ref $json eq 'HASH' ? $json->{version} : undef;
}

# A HEAD request over a raw socket, so that any body bytes would be seen.
sub raw_head
{
	my ($path) = @_;
	my $raw = $kv->raw_http(
		"HEAD $path HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
	return parse_response($raw->{data}, head => 1);
}

subtest 'PUT of a new key answers 201 with JSON {key, version} and an ETag' => sub {
	my $res = $kv->http('PUT', '/kv/alpha', 'first',
		{ 'Content-Type' => 'text/plain' });
	is($res->{status}, 201, 'status 201');
	my $json = decode_json_body($res);
	is(ref $json, 'HASH', 'body is a JSON object')
	  or diag("body: $res->{content}");
	is($json->{key}, 'alpha', 'key echoed');
	like($json->{version} // '', qr/^\d+$/, 'version is an integer');
	is(header($res, 'ETag'), qq{"$json->{version}"}, 'ETag is "<version>"');
};

subtest 'PUT of an existing key answers 200 with a new version and ETag' => sub {
	my $before = header($kv->http('GET', '/kv/alpha'), 'ETag');
	my $res = $kv->http('PUT', '/kv/alpha', 'second',
		{ 'Content-Type' => 'text/plain' });
	is($res->{status}, 200, 'status 200');
	my $json = decode_json_body($res);
	is($json->{key}, 'alpha', 'key echoed');
	like($json->{version} // '', qr/^\d+$/, 'version is an integer');
	is(header($res, 'ETag'), qq{"$json->{version}"}, 'ETag is "<version>"');
	isnt(header($res, 'ETag'), $before, 'ETag changed on overwrite');
};

subtest 'GET returns the stored bytes, Content-Type and ETag "<version>"' => sub {
	my $put = $kv->http('PUT', '/kv/beta', '{"a":1}',
		{ 'Content-Type' => 'application/vnd.example+json; charset=utf-8' });
	is($put->{status}, 201, 'PUT 201');
	my $version = json_version($put);
	my $res = $kv->http('GET', '/kv/beta');
	is($res->{status}, 200, 'status 200');
	is($res->{content}, '{"a":1}', 'body is the value');
	is(header($res, 'Content-Type'),
		'application/vnd.example+json; charset=utf-8',
		'Content-Type round trip');
	is(header($res, 'ETag'), qq{"$version"}, 'ETag equals the PUT version');
	is(header($res, 'Content-Length'), '7', 'Content-Length is the value length');
};

subtest 'GET of a value stored without Content-Type is application/octet-stream' => sub {
	# HTTP::Tiny would add a Content-Type itself: send the PUT raw.
	my $raw = $kv->raw_http("PUT /kv/no-type HTTP/1.1\r\nHost: 127.0.0.1\r\n"
		  . "Content-Length: 3\r\nConnection: close\r\n\r\nabc");
	my $put = parse_response($raw->{data});
	ok($put, 'got a response') or diag("raw: $raw->{data}");
	is($put->{status}, 201, 'PUT without Content-Type: 201') if $put;
	my $res = $kv->http('GET', '/kv/no-type');
	is($res->{status}, 200, 'GET 200');
	is($res->{content}, 'abc', 'body');
	is(header($res, 'Content-Type'), 'application/octet-stream',
		'default Content-Type');
};

subtest 'ETag changes on every overwrite and matches the version' => sub {
	my %seen;
	my $last;
	for my $i (1 .. 3)
	{
		my $put = $kv->http('PUT', '/kv/etag', "v$i");
		ok($put->{status} == 201 || $put->{status} == 200, "PUT $i ok");
		my $get = $kv->http('GET', '/kv/etag');
		my $etag = header($get, 'ETag');
		like($etag, qr/^"\d+"$/, "ETag $i is a quoted integer");
		is($etag, header($put, 'ETag'), "GET ETag $i equals PUT ETag");
		is($get->{content}, "v$i", "GET $i returns the new value");
		ok(!$seen{$etag}++, "ETag $i is new");
		$last = $etag;
	}
	my $version = $node->safe_psql('postgres',
		"SELECT version FROM kv_store WHERE key = 'etag'");
	is($last, qq{"$version"}, 'ETag is the version column');
};

subtest 'X-Cache: HIT after a PUT; after the cache is emptied, MISS then HIT' => sub {
	is($kv->http('PUT', '/kv/cached', 'c')->{status}, 201, 'PUT 201');
	my $after_put = $kv->http('GET', '/kv/cached');
	is(header($after_put, 'X-Cache'), 'HIT', 'GET after the PUT: HIT (write-through)');
	is($after_put->{content}, 'c', 'with the value');
	$kv->node->safe_psql('postgres', 'SELECT kv_cache_reset()');
	my $first = $kv->http('GET', '/kv/cached');
	my $second = $kv->http('GET', '/kv/cached');
	is($first->{status}, 200, 'first GET 200');
	is(header($first, 'X-Cache'), 'MISS', 'first GET: X-Cache MISS');
	is($second->{status}, 200, 'second GET 200');
	is(header($second, 'X-Cache'), 'HIT', 'second GET: X-Cache HIT');
	is($second->{content}, 'c', 'hit returns the value');
	is(header($second, 'ETag'), header($first, 'ETag'), 'same ETag on hit');
	is(header($after_put, 'ETag'), header($first, 'ETag'), 'and on the write-through hit');
};

subtest 'HEAD answers the GET headers without a body' => sub {
	my $get = $kv->http('GET', '/kv/beta');
	my $res = raw_head('/kv/beta');
	ok($res, 'got a complete response head');
	return unless $res;
	is($res->{status}, 200, 'status 200');
	is($res->{extra}, '', 'no body bytes follow the headers');
	is($res->{headers}{etag}, header($get, 'ETag'), 'ETag as GET');
	is($res->{headers}{'content-type'}, header($get, 'Content-Type'),
		'Content-Type as GET');
	is($res->{headers}{'content-length'}, length($get->{content}),
		'Content-Length is the value length');
	like($res->{headers}{'x-cache'} // '', qr/^(HIT|MISS)$/, 'X-Cache present');
};

subtest 'HEAD of an absent key is 404 without a body' => sub {
	my $res = raw_head('/kv/absent-head');
	ok($res, 'got a complete response head');
	return unless $res;
	is($res->{status}, 404, 'status 404');
	is($res->{extra}, '', 'no body bytes follow the headers');
};

subtest 'HEAD /health and HEAD /kv/ are allowed: 200 without a body' => sub {
	foreach my $path ('/health', '/kv/')
	{
		my $res = raw_head($path);
		ok($res, "HEAD $path: complete response head");
		next unless $res;
		is($res->{status}, 200, "HEAD $path: 200");
		is($res->{extra}, '', "HEAD $path: no body bytes");
	}
};

subtest 'DELETE answers 204, then the key is gone and DELETE answers 404' => sub {
	is($kv->http('PUT', '/kv/doomed', 'x')->{status}, 201, 'PUT 201');
	is($kv->http('GET', '/kv/doomed')->{status}, 200, 'GET 200 before');
	my $res = $kv->http('DELETE', '/kv/doomed');
	is($res->{status}, 204, 'DELETE 204');
	is($res->{content} // '', '', '204 has no body');
	is_error($kv->http('GET', '/kv/doomed'), 404, 'not_found',
		'GET after DELETE');
	is_error($kv->http('DELETE', '/kv/doomed'), 404, 'not_found',
		'second DELETE');
	is($node->safe_psql('postgres',
		"SELECT count(*) FROM kv_store WHERE key = 'doomed'"),
		'0', 'row deleted');
};

subtest 'GET of an absent key is 404 {"error":"not_found","message":...}' => sub {
	my $res = $kv->http('GET', '/kv/never-written');
	is_error($res, 404, 'not_found', 'GET absent key');
	my $json = decode_json_body($res);
	is_deeply([ sort keys %{ $json || {} } ], [ 'error', 'message' ],
		'exactly the fields error and message');
};

subtest 'POST /kv/ creates a text value with 201, then 409 conflict' => sub {
	my $body = '{"key":"greeting","value":"h\u00e9llo"}';
	my $res = $kv->http('POST', '/kv/', $body,
		{ 'Content-Type' => 'application/json' });
	is($res->{status}, 201, 'POST 201');
	my $get = $kv->http('GET', '/kv/greeting');
	is($get->{status}, 200, 'GET 200');
	is($get->{content}, "h\xC3\xA9llo", 'value stored as UTF-8 text');
	is(header($get, 'Content-Type'), 'text/plain; charset=utf-8',
		'Content-Type text/plain; charset=utf-8');
	my $again = $kv->http('POST', '/kv/',
		'{"key":"greeting","value":"other"}',
		{ 'Content-Type' => 'application/json' });
	is_error($again, 409, 'conflict', 'POST of an existing key');
	is($kv->http('GET', '/kv/greeting')->{content},
		"h\xC3\xA9llo", 'value unchanged by the conflicting POST');
};

subtest 'POST /kv/ with malformed JSON, no key or a non-string value is 400' => sub {
	my %bodies = (
		'malformed JSON' => '{"key": "p1", "value": ',
		'not an object' => '["p2", "v"]',
		'missing key' => '{"value": "v"}',
		'missing value' => '{"key": "p3"}',
		'numeric value' => '{"key": "p4", "value": 42}',
		'object value' => '{"key": "p5", "value": {"a": 1}}',
		'numeric key' => '{"key": 7, "value": "v"}',
		'empty body' => '',);
	foreach my $what (sort keys %bodies)
	{
		my $res = $kv->http('POST', '/kv/', $bodies{$what},
			{ 'Content-Type' => 'application/json' });
		is_error($res, 400, 'bad_request', "POST with $what");
	}
	is($node->safe_psql('postgres',
		"SELECT count(*) FROM kv_store WHERE key IN ('p1','p2','p3','p4','p5','7')"),
		'0', 'nothing stored');
};

subtest 'PUT, POST and kv_put with a ttl: served with X-Expires-At, never after expiry' => sub {
	my $put = $kv->http('PUT', '/kv/ttl/put?ttl=3', 'soon gone');
	is($put->{status}, 201, 'PUT ?ttl=3 201');
	my $post = $kv->http('POST', '/kv/',
		'{"key":"ttl/post","value":"x","ttl":3}',
		{ 'Content-Type' => 'application/json' });
	is($post->{status}, 201, 'POST with ttl 201');
	$node->safe_psql('postgres', "SELECT kv_put('ttl/sql', 'y', interval '3 seconds')");
	is($kv->http('PUT', '/kv/ttl/reap?ttl=3', 'z')->{status}, 201, 'PUT ttl/reap 201');
	is($kv->http('PUT', '/kv/ttl/forever', 'stays')->{status}, 201,
		'PUT without ttl 201');

	my $get = $kv->http('GET', '/kv/ttl/put');
	is($get->{status}, 200, 'served before expiry');
	like(header($get, 'X-Expires-At'), qr/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/,
		'X-Expires-At is an RFC 3339 UTC time');
	my $head = raw_head('/kv/ttl/put');
	like($head && $head->{headers}{'x-expires-at'} // '', qr/^\d{4}-/,
		'HEAD carries X-Expires-At too');
	is(header($kv->http('GET', '/kv/ttl/forever'), 'X-Expires-At'), '',
		'no X-Expires-At without a ttl');
	is($node->safe_psql('postgres',
		"SELECT count(*) FROM kv_store WHERE key LIKE 'ttl/%' AND expires_at > now()"),
		'4', 'expires_at set in the future for the four');

	my @keys = ('ttl/put', 'ttl/post', 'ttl/sql', 'ttl/reap');
	my $deadline = time() + 20;
	my %status;
	while (time() < $deadline)
	{
		%status = map { $_ => $kv->http('GET', "/kv/$_")->{status} } @keys;
		last unless grep { $status{$_} != 404 } @keys;
		usleep(200_000);
	}
	is($status{$_}, 404, "$_ expired: GET 404") foreach @keys;
	is_error($kv->http('GET', '/kv/ttl/put'), 404, 'not_found', 'expired key');
	my $h = raw_head('/kv/ttl/post');
	is($h && $h->{status}, 404, 'expired key: HEAD 404');
	my $list = decode_json_body($kv->http('GET', '/kv/?prefix=ttl%2F'));
	is_deeply($list && $list->{keys}, ['ttl/forever'],
		'listing leaves out expired keys');
	is($node->safe_psql('postgres', "SELECT string_agg(k, ',') FROM kv_keys('ttl/') AS k"),
		'ttl/forever', 'kv_keys leaves out expired keys');
	is($node->safe_psql('postgres',
		"SELECT kv_get('ttl/put') IS NULL AND kv_get('ttl/sql') IS NULL"),
		't', 'kv_get of expired keys is NULL');
	is($node->safe_psql('postgres',
		"SELECT count(*) FROM kv_store WHERE key LIKE 'ttl/%'"),
		'5', 'kvserver.expire_interval = 0 leaves the expired rows');
};

subtest 'an expired key is absent for writers too: PUT 201, POST 201, If-None-Match: * 201' => sub {
	is($kv->http('PUT', '/kv/ttl/put', 'reborn')->{status}, 201,
		'PUT over an expired key: 201 created');
	is($kv->http('GET', '/kv/ttl/put')->{content}, 'reborn', 'and serves it');
	is($kv->http('POST', '/kv/', '{"key":"ttl/post","value":"again"}',
		{ 'Content-Type' => 'application/json' })->{status},
		201, 'POST over an expired key: 201, not 409');
	is($kv->http('PUT', '/kv/ttl/sql', 'new', { 'If-None-Match' => '*' })->{status},
		201, 'PUT If-None-Match: * over an expired key: 201, not 412');
	is_error($kv->http('PUT', '/kv/ttl/reap', 'x', { 'If-Match' => '*' }),
		412, 'precondition_failed', 'PUT If-Match: * over an expired key');
	is_error($kv->http('DELETE', '/kv/ttl/reap'), 404, 'not_found',
		'DELETE of an expired key');
};

subtest 'kvserver.expire_interval set on reload: the worker deletes expired rows' => sub {
	$node->append_conf('postgresql.conf', "kvserver.expire_interval = '1s'\n");
	$node->reload;
	my $deadline = time() + 30;
	my $left;
	while (time() < $deadline)
	{
		$left = $node->safe_psql('postgres',
			"SELECT count(*) FROM kv_store WHERE key = 'ttl/reap'");
		last if $left eq '0';
		usleep(200_000);
	}
	is($left, '0', 'the expired row is deleted');
	is($node->safe_psql('postgres',
		"SELECT count(*) FROM kv_store WHERE key = 'ttl/forever'"),
		'1', 'a key without ttl stays');
};

subtest 'an invalid ttl is 400 bad_request' => sub {
	foreach my $ttl ('0', '-1', 'abc', '1.5')
	{
		is_error($kv->http('PUT', "/kv/bad-ttl?ttl=$ttl", 'x'),
			400, 'bad_request', "PUT ?ttl=$ttl");
	}
	is_error($kv->http('POST', '/kv/',
		'{"key":"bad-ttl","value":"x","ttl":-5}',
		{ 'Content-Type' => 'application/json' }),
		400, 'bad_request', 'POST with ttl -5');
	is($kv->http('GET', '/kv/bad-ttl')->{status}, 404, 'nothing stored');
};

# ETag of a key as the server reports it
sub etag_of { return header($kv->http('GET', "/kv/$_[0]"), 'ETag'); }

subtest 'PUT with If-None-Match: * creates only: 201, then 412' => sub {
	my $res = $kv->http('PUT', '/kv/cond/create', 'one', { 'If-None-Match' => '*' });
	is($res->{status}, 201, 'absent key: 201');
	$res = $kv->http('PUT', '/kv/cond/create', 'two', { 'If-None-Match' => '*' });
	is_error($res, 412, 'precondition_failed', 'existing key');
	is($kv->http('GET', '/kv/cond/create')->{content}, 'one', 'value unchanged');
};

subtest 'PUT with If-Match replaces only that version, else 412' => sub {
	is($kv->http('PUT', '/kv/cond/match', 'v1')->{status}, 201, 'PUT 201');
	my $v1 = etag_of('cond/match');
	my $res = $kv->http('PUT', '/kv/cond/match', 'v2', { 'If-Match' => $v1 });
	is($res->{status}, 200, 'If-Match current ETag: 200');
	my $v2 = header($res, 'ETag');
	isnt($v2, $v1, 'new ETag');
	$res = $kv->http('PUT', '/kv/cond/match', 'v3', { 'If-Match' => $v1 });
	is_error($res, 412, 'precondition_failed', 'If-Match old ETag');
	is($kv->http('GET', '/kv/cond/match')->{content}, 'v2', 'value unchanged');
	is($kv->http('PUT', '/kv/cond/match', 'v4', { 'If-Match' => '*' })->{status},
		200, 'If-Match: * on an existing key: 200');
	is_error($kv->http('PUT', '/kv/cond/absent', 'x', { 'If-Match' => '*' }),
		412, 'precondition_failed', 'If-Match: * on an absent key');
	is_error($kv->http('PUT', '/kv/cond/absent', 'x', { 'If-Match' => '"1"' }),
		412, 'precondition_failed', 'If-Match: "1" on an absent key');
	is($kv->http('GET', '/kv/cond/absent')->{status}, 404, 'absent key not created');
};

subtest 'DELETE with If-Match deletes only that version, else 412' => sub {
	is($kv->http('PUT', '/kv/cond/del', 'v1')->{status}, 201, 'PUT 201');
	my $v1 = etag_of('cond/del');
	is($kv->http('PUT', '/kv/cond/del', 'v2')->{status}, 200, 'PUT 200');
	is_error($kv->http('DELETE', '/kv/cond/del', undef, { 'If-Match' => $v1 }),
		412, 'precondition_failed', 'DELETE If-Match old ETag');
	is($kv->http('GET', '/kv/cond/del')->{content}, 'v2', 'still there');
	my $res = $kv->http('DELETE', '/kv/cond/del', undef,
		{ 'If-Match' => etag_of('cond/del') });
	is($res->{status}, 204, 'DELETE If-Match current ETag: 204');
	is($kv->http('GET', '/kv/cond/del')->{status}, 404, 'gone');
};

subtest 'GET with If-None-Match of the current ETag is 304 without a body' => sub {
	is($kv->http('PUT', '/kv/cond/get', 'v1')->{status}, 201, 'PUT 201');
	my $v1 = etag_of('cond/get');
	my $raw = $kv->raw_http("GET /kv/cond/get HTTP/1.1\r\nHost: 127.0.0.1\r\n"
		  . "If-None-Match: $v1\r\nConnection: close\r\n\r\n");
	my $res = parse_response($raw->{data});
	is($res && $res->{status}, 304, 'current ETag: 304');
	is($res && $res->{extra}, '', '304 has no body');
	is($kv->http('PUT', '/kv/cond/get', 'v2')->{status}, 200, 'PUT 200');
	my $get = $kv->http('GET', '/kv/cond/get', undef, { 'If-None-Match' => $v1 });
	is($get->{status}, 200, 'old ETag: 200');
	is($get->{content}, 'v2', 'with the new value');
};

subtest 'a list or a malformed entity tag is 400 bad_request' => sub {
	is($kv->http('PUT', '/kv/cond/bad', 'v')->{status}, 201, 'PUT 201');
	my $etag = etag_of('cond/bad');
	my %bad = (
		'a list in If-Match' => [ 'PUT', { 'If-Match' => qq{$etag, "999999"} } ],
		'an unquoted tag in If-Match' => [ 'PUT', { 'If-Match' => '17' } ],
		'a list in If-None-Match' => [ 'GET', { 'If-None-Match' => qq{$etag, "1"} } ],
		'an unterminated tag' => [ 'DELETE', { 'If-Match' => '"17' } ],);
	foreach my $what (sort keys %bad)
	{
		my ($method, $headers) = @{ $bad{$what} };
		is_error($kv->http($method, '/kv/cond/bad', $method eq 'PUT' ? 'new' : undef,
			$headers), 400, 'bad_request', "$method with $what");
	}
	is($kv->http('GET', '/kv/cond/bad')->{content}, 'v', 'value unchanged');
};

subtest 'other methods get 405 with an Allow header' => sub {
	my @cases = (
		[ 'PATCH', '/kv/x' ],
		[ 'POST', '/kv/x' ],
		[ 'DELETE', '/health' ],
		[ 'PUT', '/health' ],
		[ 'POST', '/health' ],
		[ 'DELETE', '/kv/' ],
		[ 'PUT', '/kv/' ],);
	foreach my $c (@cases)
	{
		my ($method, $path) = @$c;
		my $res = $kv->http($method, $path, $method =~ /^(PUT|POST|PATCH)$/ ? 'x' : undef);
		is_error($res, 405, 'method_not_allowed', "$method $path");
		like(header($res, 'Allow'), qr/\bGET\b/, "$method $path: Allow lists GET");
		unlike(header($res, 'Allow'), qr/\b\Q$method\E\b/,
			"$method $path: Allow does not list $method");
	}
	is($kv->http('GET', '/kv/x')->{status}, 404, 'PATCH/POST stored nothing');
};

subtest 'unknown paths are 404 not_found' => sub {
	foreach my $path ('/nope', '/kvx', '/health/extra', '/KV/x')
	{
		is_error($kv->http('GET', $path), 404, 'not_found', "GET $path");
	}
};

# Listing: 25 keys under list/, chosen so that byte order differs from
# case-insensitive and from code-point-unaware orders, plus neighbours that
# the prefix must exclude.
my @list_keys = (
	(map { sprintf('list/k%02d', $_) } 0 .. 19),
	'list/A', 'list/Z', 'list/_', 'list/~', "list/\xC3\xA9");
my @sorted = sort { $a cmp $b } @list_keys;    # bytes: byte order

# GET /kv/?... and return (status, [keys as UTF-8 bytes], next as bytes)
sub list_page
{
	my ($query) = @_;
	my $res = $kv->http('GET', "/kv/?$query");
	my $json = decode_json_body($res);
	return ($res->{status}, undef, undef, $res) unless ref $json eq 'HASH';
	my @keys = map { my $k = $_; utf8::encode($k); $k } @{ $json->{keys} || [] };
	my $next = $json->{next};
	utf8::encode($next) if defined $next;
	return ($res->{status}, \@keys, $next, $res, $json);
}

subtest 'listing pages through a prefix in byte order with limit and after' => sub {
	foreach my $k (@list_keys, 'lisu', 'list', 'lista', 'lis')
	{
		my $res = $kv->http('PUT', key_path($k), "value of $k");
		is($res->{status}, 201, "PUT $k") or diag($res->{content});
	}

	my @got;
	my ($status, $keys, $next, $res, $json) = list_page('prefix=list%2F&limit=10');
	is($status, 200, 'page 1: 200');
	like(header($res, 'Content-Type'), qr{^application/json}, 'JSON');
	ok(exists $json->{next}, 'page 1 has "next"');
	is(scalar @{ $keys || [] }, 10, 'page 1: 10 keys');
	ok(defined $next, 'page 1: next is set');
	push @got, @{ $keys || [] };

	($status, $keys, $next) =
	  list_page('prefix=list%2F&limit=10&after=' . uri_escape($next // ''));
	is($status, 200, 'page 2: 200');
	is(scalar @{ $keys || [] }, 10, 'page 2: 10 keys');
	ok(defined $next, 'page 2: next is set');
	push @got, @{ $keys || [] };

	($status, $keys, $next, $res, $json) =
	  list_page('prefix=list%2F&limit=10&after=' . uri_escape($next // ''));
	is($status, 200, 'page 3: 200');
	is(scalar @{ $keys || [] }, 5, 'page 3: 5 keys');
	ok(exists $json->{next} && !defined $json->{next}, 'page 3: next is null');
	push @got, @{ $keys || [] };

	is_deeply(\@got, \@sorted, 'the pages together are all keys in byte order');

	($status, $keys, $next) = list_page('prefix=list%2F');
	is_deeply($keys, \@sorted, 'without limit: all 25 (default limit 100)');
	ok(!defined $next, 'without limit: next null');

	($status, $keys) = list_page('prefix=list%2Fk1&limit=100');
	is_deeply($keys, [ map { sprintf('list/k%02d', $_) } 10 .. 19 ],
		'a longer prefix selects only its keys');

	($status, $keys, $next) = list_page('prefix=no-such-prefix%2F');
	is($status, 200, 'empty listing: 200');
	is_deeply($keys, [], 'empty listing: no keys');
	ok(!defined $next, 'empty listing: next null');
};

subtest 'listing limit must be a positive integer: 0, -1, abc are 400' => sub {
	foreach my $limit ('0', '-1', 'abc', '', '1e3')
	{
		is_error($kv->http('GET', "/kv/?prefix=list%2F&limit=$limit"),
			400, 'bad_request', "limit=$limit");
	}
};

subtest 'listing limit is capped at 1000 and defaults to 100' => sub {
	$node->safe_psql('postgres',
		q{INSERT INTO kv_store (key, value)
		  SELECT 'cap/' || lpad(i::text, 5, '0'), '\x00'::bytea
		  FROM generate_series(1, 1100) AS i});
	my ($status, $keys, $next) = list_page('prefix=cap%2F&limit=100000');
	is($status, 200, 'limit=100000: 200');
	is(scalar @{ $keys || [] }, 1000, 'limit=100000 returns 1000 keys');
	is($keys->[0], 'cap/00001', 'first key');
	is($keys->[999], 'cap/01000', 'last key of the capped page');
	ok(defined $next, 'next is set after a capped page');

	($status, $keys, $next) =
	  list_page('prefix=cap%2F&limit=100000&after=' . uri_escape($next // ''));
	is(scalar @{ $keys || [] }, 100, 'the rest: 100 keys');
	is($keys->[0], 'cap/01001', 'continues after the capped page');
	ok(!defined $next, 'then next is null');

	($status, $keys, $next) = list_page('prefix=cap%2F');
	is(scalar @{ $keys || [] }, 100, 'default limit: 100 keys');
	ok(defined $next, 'default limit: next is set');
};

subtest 'GET /metrics is Prometheus text with the kvserver_ metrics of the README' => sub {
	$kv->http('GET', '/kv/cached');
	my $res = $kv->http('GET', '/metrics');
	is($res->{status}, 200, 'status 200');
	like(header($res, 'Content-Type'), qr{^text/plain}, 'Content-Type text/plain');
	my $body = $res->{content} // '';
	my @bad = grep { !/^#/ && !/^[a-zA-Z_:][a-zA-Z0-9_:]*(\{[^}]*\})? [-+0-9.eEInfa]+( \d+)?$/ }
	  grep { length } split /\n/, $body;
	is_deeply(\@bad, [], 'every sample line is "name{labels} value"');
	my @names = map { /^([a-zA-Z_:][a-zA-Z0-9_:]*)/ ? $1 : () }
	  grep { !/^#/ && length } split /\n/, $body;
	is_deeply([ grep { !/^kvserver_/ } @names ], [], 'every name starts with kvserver_');
	foreach my $m (qw(kvserver_cache_hits_total kvserver_cache_misses_total
		kvserver_cache_evictions_total kvserver_cache_entries kvserver_cache_bytes
		kvserver_cache_capacity_bytes kvserver_queue_depth
		kvserver_database_errors_total))
	{
		like($body, qr/^\Q$m\E(\{[^}]*\})? /m, "$m present");
	}
	foreach my $h (qw(kvserver_http_request_duration_seconds kvserver_write_batch_size))
	{
		like($body, qr/^\Q$h\E_bucket\{[^}]*le="\+Inf"[^}]*\} /m, "$h histogram: +Inf bucket");
		like($body, qr/^\Q$h\E_sum(\{[^}]*\})? /m, "$h histogram: _sum");
		like($body, qr/^\Q$h\E_count(\{[^}]*\})? /m, "$h histogram: _count");
	}
	like($body, qr/^kvserver_http_requests_total\{(?=[^}]*method="GET")(?=[^}]*code="2xx")[^}]*\} [1-9]/m,
		'kvserver_http_requests_total{method="GET",code="2xx"} counts requests');
	my ($before) = $body =~ /^kvserver_http_requests_total\{(?=[^}]*method="GET")(?=[^}]*code="4xx")[^}]*\} (\d+)/m;
	$kv->http('GET', '/kv/metrics-absent') for 1 .. 3;
	# a request is counted just after its reply is written: poll, bounded
	my $after;
	my $deadline = time() + 10;
	do
	{
		my $after_body = $kv->http('GET', '/metrics')->{content} // '';
		($after) = $after_body =~ /^kvserver_http_requests_total\{(?=[^}]*method="GET")(?=[^}]*code="4xx")[^}]*\} (\d+)/m;
	} while (($after // 0) - ($before // 0) < 3 && time() < $deadline);
	cmp_ok(($after // 0) - ($before // 0), '>=', 3, 'three 404s counted as GET 4xx');
};

subtest 'GET / is the self-contained dashboard page' => sub {
	my $res = $kv->http('GET', '/');
	is($res->{status}, 200, 'status 200');
	like(header($res, 'Content-Type'), qr{^text/html}, 'Content-Type text/html');
	like($res->{content} // '', qr/<html/i, 'an HTML document');
	unlike($res->{content} // '', qr/<(script|link|img)\b[^>]*\b(src|href)\s*=\s*["']?(https?:)?\/\//i,
		'loads nothing from elsewhere');
};

subtest 'GET /health is 200 {"status":"ok","role":"primary","database":...}' => sub {
	my $res = $kv->http('GET', '/health');
	is($res->{status}, 200, 'status 200');
	like(header($res, 'Content-Type'), qr{^application/json}, 'JSON');
	my $json = decode_json_body($res);
	is($json->{status}, 'ok', 'status ok');
	is($json->{role}, 'primary', 'role primary');
	is($json->{database}, 'postgres', 'database is kvserver.database');
};

done_testing();
