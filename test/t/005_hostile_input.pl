
# Copyright (c) kvserver authors

# Hostile input never crashes or wedges the worker: malformed requests,
# lying or ambiguous framing, huge headers, idle and stalled connections.
# Every case ends with the same worker process still answering.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::RealBin/../lib";

use IO::Select;
use KvServerTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);

# A crash must not take the postmaster down with it: the later subtests still
# run, and the final one reports the new worker pid.
my $kv = KvServerTest->new('hostile_input', conf => 'restart_after_crash = on');
my $node = $kv->node;

my $worker_pid = $kv->worker_pid;
like($worker_pid, qr/^\d+$/, "the worker shows in pg_stat_activity as backend_type kvserver (pid $worker_pid)");

# All responses in a byte stream: parse one, then the bytes after it, ...
sub all_responses
{
	my ($data) = @_;
	my @res;
	while (length $data)
	{
		my $r = parse_response($data);
		last unless $r && $r->{complete};
		push @res, $r;
		$data = $r->{extra};
	}
	return @res;
}

# Send a hostile request; the server must answer with one of the allowed
# statuses (4xx unless told otherwise) or close the connection without a
# response, and must not leave it hanging.  Never a 2xx.
sub refused_ok
{
	my ($name, $request, %opts) = @_;
	local $Test::Builder::Level = $Test::Builder::Level + 1;
	my $allowed = $opts{allowed} || qr/^4\d\d$/;
	my $raw = $kv->raw_http($request, timeout => $opts{timeout} || 15, %opts);
	ok(!$raw->{timed_out}, "$name: the server answered or closed within 15 s")
	  or return;
	my $res = parse_response($raw->{data});
	if ($res)
	{
		like($res->{status}, $allowed, "$name: refused with $res->{status}");
	}
	else
	{
		is($raw->{data}, '', "$name: closed without a response (no partial one)");
	}
	return $res;
}

subtest 'garbage request lines are refused' => sub {
	refused_ok('word', "GARBAGE\r\n\r\n");
	refused_ok('binary junk', "\x00\x01\x02\xff\xfe junk \x7f\r\n\r\n");
	refused_ok('method only', "GET\r\n\r\n");
	refused_ok('no target', "GET  HTTP/1.1\r\nHost: x\r\n\r\n");
	refused_ok('absolute-form junk', "GET http://[::1 HTTP/1.1\r\nHost: x\r\n\r\n");
	refused_ok('header without colon',
		"GET /health HTTP/1.1\r\nHost x\r\nno colon here\r\n\r\n",
		allowed => qr/^4\d\d$/);
	is($kv->http('GET', '/health')->{status}, 200, '/health still 200');
};

subtest 'a non-numeric, negative or huge Content-Length on PUT is never accepted' => sub {
	my %cl = (
		'non-numeric' => 'abc',
		'negative' => '-1',
		'huge' => '99999999999999999999',
		'two numbers' => '1 2',
		'hex' => '0x10',);
	foreach my $what (sort keys %cl)
	{
		refused_ok(
			"Content-Length $what ($cl{$what})",
			"PUT /kv/hostile-cl HTTP/1.1\r\nHost: x\r\n"
			  . "Content-Length: $cl{$what}\r\nConnection: close\r\n\r\nhello",
			allowed => qr/^(400|411|413)$/);
	}
	is($kv->http('GET', '/kv/hostile-cl')->{status}, 404, 'nothing stored');
};

subtest 'a 200 KB header is refused' => sub {
	refused_ok('200 KB header',
		"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " . ('a' x 200_000) . "\r\n\r\n");
	refused_ok('200 KB header on PUT',
		"PUT /kv/big-header HTTP/1.1\r\nHost: x\r\nX-Big: " . ('a' x 200_000)
		  . "\r\nContent-Length: 1\r\n\r\nx");
	refused_ok('100 KB request target',
		"GET /kv/" . ('k' x 100_000) . " HTTP/1.1\r\nHost: x\r\n\r\n");
	is($kv->http('GET', '/kv/big-header')->{status}, 404, 'nothing stored');
	is($kv->http('GET', '/health')->{status}, 200, '/health still 200');
};

# civetweb parses a fixed number of headers (64); what lies beyond must not
# be dropped silently: a Content-Length there would leave the body to be
# parsed as the next request.
subtest 'more headers than the parser keeps are refused, never half-read' => sub {
	is($kv->http('PUT', '/kv/victim', 'alive')->{status}, 201, 'PUT victim');
	my $inner = "DELETE /kv/victim HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
	my $raw = $kv->raw_http("PUT /kv/many-headers HTTP/1.1\r\nHost: x\r\n"
		  . join('', map { "X-H$_: $_\r\n" } 1 .. 100)
		  . 'Content-Length: ' . length($inner) . "\r\n\r\n" . $inner,
		timeout => 8);
	my @res = all_responses($raw->{data});
	is(scalar(grep { $_->{status} =~ /^2/ } @res), 0,
		'no 2xx: neither the PUT nor its body as a request')
	  or diag('responses: ' . join(', ', map { $_->{status} } @res));
	is($kv->http('GET', '/kv/victim')->{content}, 'alive',
		'the body was not run as a DELETE');
	is($kv->http('GET', '/kv/many-headers')->{status}, 404, 'nothing stored');
	is($kv->http('GET', '/health')->{status}, 200, '/health still 200');
};

subtest 'two different Content-Length headers are 400 bad_request' => sub {
	my $raw = $kv->raw_http("PUT /kv/smuggle-cl HTTP/1.1\r\nHost: x\r\n"
		  . "Content-Length: 5\r\nContent-Length: 6\r\nConnection: close\r\n\r\nhello!");
	my $res = parse_response($raw->{data});
	ok($res, 'got a response') or diag(explain $raw);
	is_error($res, 400, 'bad_request', 'two Content-Lengths') if $res;
	is($kv->http('GET', '/kv/smuggle-cl')->{status}, 404, 'nothing stored');
};

subtest 'Content-Length with Transfer-Encoding: chunked is 400 bad_request' => sub {
	my $raw = $kv->raw_http("PUT /kv/smuggle-te HTTP/1.1\r\nHost: x\r\n"
		  . "Content-Length: 5\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
		  . "5\r\nhello\r\n0\r\n\r\n");
	my $res = parse_response($raw->{data});
	ok($res, 'got a response') or diag(explain $raw);
	is_error($res, 400, 'bad_request', 'Content-Length and Transfer-Encoding')
	  if $res;
	is($kv->http('GET', '/kv/smuggle-te')->{status}, 404, 'nothing stored');

	refused_ok('Transfer-Encoding: gzip',
		"PUT /kv/smuggle-gz HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n"
		  . "Connection: close\r\n\r\nhello");
	is($kv->http('GET', '/kv/smuggle-gz')->{status}, 404, 'nothing stored');
};

subtest 'malformed chunked bodies are refused, never stored' => sub {
	my %bodies = (
		'non-hex chunk size' => "zz\r\nhello\r\n0\r\n\r\n",
		'chunk size overflowing 64 bits' => "ffffffffffffffffffff\r\nhello\r\n0\r\n\r\n",
		'negative chunk size' => "-5\r\nhello\r\n0\r\n\r\n",
		'chunk longer than its size' => "5\r\nhelloXX\r\n0\r\n\r\n",
		'chunk shorter than its declared size' => "50\r\nhello\r\n0\r\n\r\n",);
	foreach my $what (sort keys %bodies)
	{
		refused_ok("chunked: $what",
			"PUT /kv/bad-chunks HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
			  . "Connection: close\r\n\r\n$bodies{$what}");
		is($kv->http('GET', '/kv/bad-chunks')->{status}, 404,
			"chunked: $what: nothing stored");
	}
};

subtest 'pipelined requests on one connection get one response each' => sub {
	my $raw = $kv->raw_http("GET /health HTTP/1.1\r\nHost: x\r\n\r\n"
		  . "GET /kv/pipelined HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
	my @res = all_responses($raw->{data});
	is(scalar @res, 2, 'two responses');
	is($res[0] && $res[0]{status}, 200, 'first: /health 200');
	is($res[1] && $res[1]{status}, 404, 'second: absent key 404');
};

# The body of a request that is refused before its body is read must be
# skipped or the connection closed: it must never be parsed as the next
# request.  The body arrives after the response, so it cannot have been
# buffered with the headers.
subtest 'an unread request body is never parsed as a request' => sub {
	my $inner = "PUT /kv/smuggled HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nevil";
	my $len = length $inner;
	my @cases = (
		[ 'PUT /kv/ (405)', "PUT /kv/ HTTP/1.1" ],
		[ 'POST /kv/key (405)', "POST /kv/some-key HTTP/1.1" ],
		[ 'PUT /health (405)', "PUT /health HTTP/1.1" ],
		[ 'PUT with a bad key (400)', "PUT /kv/a%zz HTTP/1.1" ],
		[ 'PUT with a bad ttl (400)', "PUT /kv/k?ttl=abc HTTP/1.1" ],
		[ 'GET with a body', "GET /kv/some-key HTTP/1.1" ],
		[ 'DELETE with a body', "DELETE /kv/some-key HTTP/1.1" ],);
	local $SIG{PIPE} = 'IGNORE';

	# all cases at once: headers, a pause so that each is answered before
	# its body arrives, the bodies, then up to 3 s for a second response
	my @socks = map { $kv->connect_socket } @cases;
	foreach my $i (0 .. $#cases)
	{
		KvServerTest::write_all($socks[$i],
			"$cases[$i][1]\r\nHost: x\r\nContent-Length: $len\r\n\r\n");
	}
	usleep(300_000);
	KvServerTest::write_all($_, $inner) foreach @socks;
	my $deadline = time() + 3;
	foreach my $i (0 .. $#cases)
	{
		my $name = $cases[$i][0];
		my %r = (data => '', eof => 0, timed_out => 0);
		my $left = $deadline - time();
		KvServerTest::read_until_eof($socks[$i], $left > 0 ? $left : 0.01, \%r);
		close($socks[$i]);
		my @res = all_responses($r{data});
		ok(@res >= 1, "$name: answered");
		is(scalar @res, 1, "$name: exactly one response")
		  or diag("responses: " . join(', ', map { $_->{status} } @res));
	}
	is($kv->http('GET', '/kv/smuggled')->{status}, 404,
		'no body was run as a PUT');
};

subtest '200 idle connections: a new client is served within 1 s' => sub {
	my @idle;
	for (1 .. 200)
	{
		my $s = $kv->connect_socket;
		push @idle, $s if $s;
	}
	is(scalar @idle, 200, '200 idle connections open');

	# Up to 3 tries, so that one scheduling hiccup on a busy machine is not a
	# failure; a server wedged by the idle connections would miss all three,
	# and they are checked to be still open afterwards.
	my ($res, @times);
	for (1 .. 3)
	{
		my $t0 = time();
		$res = $kv->http('GET', '/health', undef, undef, timeout => 10);
		push @times, time() - $t0;
		last if $res->{status} == 200 && $times[-1] < 1.0;
	}
	is($res->{status}, 200, 'GET /health 200 with 200 idle connections');
	cmp_ok($times[-1], '<', 1.0,
		'answered within 1 s (' . join(', ', map { sprintf('%.3f s', $_) } @times) . ')');
	my @ready = IO::Select->new(@idle)->can_read(0);
	is(scalar @ready, 0, 'the 200 idle connections were all still open');

	is($kv->http('PUT', '/kv/while-idle', 'busy')->{status}, 201,
		'PUT 201 while they are open');
	is($kv->http('GET', '/kv/while-idle')->{content}, 'busy', 'GET');
	close($_) foreach @idle;
};

subtest 'a client stalled mid-request does not block others and is dropped' => sub {
	local $SIG{PIPE} = 'IGNORE';
	my $body_stall = $kv->connect_socket;
	my $head_stall = $kv->connect_socket;
	ok($body_stall && $head_stall, 'connected');
	KvServerTest::write_all($body_stall,
		"PUT /kv/stalled HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nabc");
	KvServerTest::write_all($head_stall, "GET /health HTTP/1.1\r\nHost:");

	is($kv->http('PUT', '/kv/meanwhile', 'served')->{status}, 201,
		'another client: PUT 201');
	my $get = $kv->http('GET', '/kv/meanwhile');
	is($get->{content}, 'served', 'another client: GET');
	is($kv->http('GET', '/health')->{status}, 200, 'another client: /health');
	ok(!IO::Select->new($body_stall, $head_stall)->can_read(0),
		'the stalled connections were still open meanwhile');

	# kvserver.request_timeout (5 s) closes stalled connections
	foreach my $c ([ 'body', $body_stall ], [ 'header', $head_stall ])
	{
		my ($what, $sock) = @$c;
		my %r = (data => '', eof => 0, timed_out => 0);
		KvServerTest::read_until_eof($sock, 30, \%r);
		ok(!$r{timed_out}, "stalled $what: the server closed the connection");
		my $res = parse_response($r{data});
		unlike($res ? $res->{status} : 'none', qr/^2/,
			"stalled $what: no 2xx");
		close($sock);
	}
	is($kv->http('GET', '/kv/stalled')->{status}, 404,
		'the stalled PUT stored nothing');
};

subtest 'deeply nested JSON in POST /kv/ is 400 bad_request' => sub {
	is_error($kv->http('POST', '/kv/', '[' x 100_000,
		{ 'Content-Type' => 'application/json' }), 400, 'bad_request',
		'100000 open brackets');
	is_error($kv->http('POST', '/kv/',
		'{"key":"deep","value":' . ('[' x 50_000) . (']' x 50_000) . '}',
		{ 'Content-Type' => 'application/json' }), 400, 'bad_request',
		'value nested 50000 deep');
	is($kv->http('GET', '/kv/deep')->{status}, 404, 'nothing stored');
	# after a crash, give the postmaster its restart before going on
	ok($kv->wait_for_health(200, 30), '/health 200 afterwards');
};

subtest 'after all of that the same worker still serves' => sub {
	is(eval { $kv->worker_pid } // 'no worker', $worker_pid,
		'worker pid unchanged');
	my $health = $kv->http('GET', '/health');
	is($health->{status}, 200, '/health 200');
	is(decode_json_body($health)->{status}, 'ok', 'status ok');
	is($kv->http('PUT', '/kv/final', 'done')->{status}, 201, 'PUT 201');
	is($kv->http('GET', '/kv/final')->{content}, 'done', 'GET');
	my $log = slurp_file($node->logfile);
	unlike($log, qr/terminated by signal|was terminated|PANIC/,
		'no process crashed (server log)');
};

done_testing();
