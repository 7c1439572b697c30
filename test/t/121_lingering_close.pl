
# Copyright (c) kvserver authors

# Lingering close (kv_linger_body in src/civet/http_request.c): a request
# refused before its body was read has the rest of its body drained, within
# 64 MiB and 5 s, before the connection closes, so that a client that writes
# the whole body before reading (no "Expect: 100-continue": Python's
# http.client and requests, Perl's HTTP::Tiny) reads the refusal instead of
# a broken pipe or a connection reset.  Without it the server closes with
# unread data, the kernel sends a reset, and the client's write or read
# fails, depending on timing: hence the repetitions.
#
# The node runs with kvserver.request_timeout = '2s' (civetweb's read
# timeout), so that a stalled client is cut off after 2 s and the 5 s bound
# can be seen on its own with a client that keeps trickling.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::RealBin/../lib";

use Errno qw(EAGAIN EINTR EWOULDBLOCK ECONNRESET EPIPE);
use IO::Select;
use KvServerTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);

my $REQUEST_TIMEOUT = 2;    # seconds, kvserver.request_timeout of this node
my $LINGER_TIME = 5;        # seconds, KV_LINGER_MAX_MS
my $LINGER_BYTES = 64 * 1024 * 1024;    # KV_LINGER_MAX_BYTES
my $ROUNDS = 5;

my $kv = KvServerTest->new('lingering_close',
	conf => "kvserver.request_timeout = '${REQUEST_TIMEOUT}s'\n");
my $node = $kv->node;
my $worker_pid = $kv->worker_pid;

# Like Python's http.client: a blocking socket, the headers written, then
# the whole body in a second write, then the response read until EOF.  (One
# write of headers and body together tends to be swallowed whole by the
# kernel's socket buffers on the loopback before the server answers, which
# hides the problem; http.client writes them separately.)  Returns
# { write_error, data, eof, error, timed_out, res }.
sub write_all_then_read
{
	my ($head, $body) = @_;
	local $SIG{PIPE} = 'IGNORE';
	my %r = (data => '', eof => 0, timed_out => 0);
	my $sock = $kv->connect_socket or return { connect_error => "$!" };
	foreach my $piece ($head, $body)
	{
		next unless defined $piece;
		if (!KvServerTest::write_all($sock, $piece))
		{
			$r{write_error} = "$!";
			last;
		}
	}
	KvServerTest::read_until_eof($sock, 15, \%r);
	close $sock;
	$r{res} = parse_response($r{data});
	return \%r;
}

sub describe
{
	my ($r) = @_;
	my @d;
	push @d, "write error: $r->{write_error}" if defined $r->{write_error};
	push @d, "read error: $r->{error}" if defined $r->{error};
	push @d, 'no EOF' if $r->{timed_out};
	push @d, 'received ' . length($r->{data}) . ' bytes'
	  . ($r->{res} ? " (status $r->{res}{status})" : '');
	return join('; ', @d);
}

# --------------------------------------------------------------------------

subtest "a 3 MB PUT written whole before reading gets its 413 ($ROUNDS rounds)" => sub {
	my $body = 'b' x (3 * 1024 * 1024);
	my $head = "PUT /kv/big HTTP/1.1\r\nHost: 127.0.0.1\r\n"
	  . "Content-Type: application/octet-stream\r\n"
	  . 'Content-Length: ' . length($body) . "\r\n\r\n";
	my $good = 0;
	for my $round (1 .. $ROUNDS)
	{
		my $t0 = time();
		my $r = write_all_then_read($head, $body);
		my $took = time() - $t0;
		my $ok = ok(!defined $r->{write_error},
			"round $round: the whole body was written (no broken pipe or reset)")
		  & ok($r->{res} && $r->{res}{complete},
			"round $round: a complete response was read");
		if ($r->{res})
		{
			$ok &= is_error($r->{res}, 413, 'value_too_large', "round $round");
			$ok &= ok($r->{eof}, "round $round: then the server closed the connection");
		}
		diag("round $round: " . describe($r)) unless $ok;
		note(sprintf('round %d: %.2f s', $round, $took));
		$good++ if $ok;
	}
	is($good, $ROUNDS, "all $ROUNDS rounds read the 413");
	is($kv->http('GET', '/kv/big')->{status}, 404, 'nothing stored');
};

subtest "a 3 MB chunked PUT written whole before reading gets its 413 ($ROUNDS rounds)" => sub {
	my $chunk = 'c' x 65536;
	my $head = "PUT /kv/big-chunked HTTP/1.1\r\nHost: 127.0.0.1\r\n"
	  . "Transfer-Encoding: chunked\r\n\r\n";
	my $body = ("10000\r\n$chunk\r\n" x 48) . "0\r\n\r\n";
	for my $round (1 .. $ROUNDS)
	{
		my $r = write_all_then_read($head, $body);
		ok(!defined $r->{write_error}, "round $round: the whole body was written")
		  or diag(describe($r));
		if (ok($r->{res}, "round $round: a response was read"))
		{
			is_error($r->{res}, 413, 'value_too_large', "round $round");
		}
		else
		{
			diag(describe($r));
		}
	}
	is($kv->http('GET', '/kv/big-chunked')->{status}, 404, 'nothing stored');
};

subtest 'a refusal that keeps the connection open: the drained body is not taken for a request' => sub {
	# 400 bad_key does not ask to close; once the 3 MB body is drained the
	# connection stays usable, and the next request on it is answered
	my $body = 'k' x (3 * 1024 * 1024);
	my $r = write_all_then_read(
		"PUT /kv/%FF HTTP/1.1\r\nHost: 127.0.0.1\r\n"
		  . 'Content-Length: ' . length($body) . "\r\n\r\n",
		$body . "GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
	ok(!defined $r->{write_error}, 'both requests written') or diag(describe($r));
	my $first = $r->{res};
	if (ok($first, 'a response to the PUT'))
	{
		is_error($first, 400, 'bad_key', 'the PUT');
	}
	else
	{
		diag(describe($r));
	}
	my $second = $first ? parse_response($first->{extra}) : undef;
	is($second && $second->{status}, 200, 'then GET /health on the same connection: 200')
	  or diag(describe($r));
};

subtest 'a GET with a body it does not read still works' => sub {
	my $r = write_all_then_read("GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n"
		  . "Content-Length: 11\r\n\r\n", 'hello world');
	is($r->{res} && $r->{res}{status}, 200, 'GET /health with a body: 200')
	  or diag(describe($r));
	ok($r->{eof} && !$r->{timed_out}, 'then the connection is closed');
	is($r->{res} ? $r->{res}{extra} : '', '', 'the body was not taken for a request');
};

subtest 'the server still serves after the refusals' => sub {
	is($kv->http('GET', '/health')->{status}, 200, '/health 200');
	is($kv->http('PUT', '/kv/after', 'fine')->{status}, 201, 'PUT 201');
	is($kv->http('GET', '/kv/after')->{content}, 'fine', 'GET returns it');
};

# --------------------------------------------------------------------------
# The bounds.  Each of these clients claims a 100 MB body.

my $HEAD_100MB = "PUT /kv/huge HTTP/1.1\r\nHost: 127.0.0.1\r\n"
  . "Content-Length: 100000000\r\n\r\n";

# Read what is there without blocking; returns 'eof', 'reset' or ''.
sub poll_read
{
	my ($sock, $sel, $r, $wait) = @_;
	while ($sel->can_read($wait))
	{
		$wait = 0;
		my $buf;
		my $n = sysread($sock, $buf, 65536);
		if (!defined $n)
		{
			next if $! == EINTR || $! == EAGAIN || $! == EWOULDBLOCK;
			return 'reset';
		}
		return 'eof' if $n == 0;
		$r->{data} .= $buf;
		$r->{first_byte_at} //= time();
	}
	return '';
}

subtest "a client that claims 100 MB and stalls is cut off after request_timeout" => sub {
	local $SIG{PIPE} = 'IGNORE';
	my $sock = $kv->connect_socket;
	my $sel = IO::Select->new($sock);
	my %r = (data => '');
	my $t0 = time();
	KvServerTest::write_all($sock, $HEAD_100MB . ('s' x 1000));
	my $end = '';
	while (!$end && time() - $t0 < 20)
	{
		$end = poll_read($sock, $sel, \%r, 0.5);
	}
	my $closed_after = time() - $t0;
	close $sock;
	my $res = parse_response($r{data});
	if (ok($res, 'a response'))
	{
		is_error($res, 413, 'value_too_large', '100 MB claimed');
	}
	cmp_ok(($r{first_byte_at} // 99) - $t0, '<', 1, 'the 413 is sent at once (within 1 s)');
	ok($end, "then the connection is closed ($end)");
	cmp_ok($closed_after, '<', $REQUEST_TIMEOUT + 2,
		sprintf('after request_timeout (%d s) + slack: %.2f s', $REQUEST_TIMEOUT, $closed_after));
	diag(sprintf('stalled client cut off after %.2f s', $closed_after));
};

subtest "a client that claims 100 MB and trickles is cut off after $LINGER_TIME s" => sub {
	local $SIG{PIPE} = 'IGNORE';
	my $sock = $kv->connect_socket;
	my $sel = IO::Select->new($sock);
	my %r = (data => '');
	my $t0 = time();
	KvServerTest::write_all($sock, $HEAD_100MB);
	my ($end, $sent) = ('', 0);
	# 1 kB every 50 ms: never idle for request_timeout, so only the
	# lingering time bound ends it
	while (!$end && time() - $t0 < 30)
	{
		my $n = syswrite($sock, 't' x 1024);
		if (!defined $n)
		{
			$end = $! == EPIPE ? 'broken pipe' : $! == ECONNRESET ? 'reset' : "write error $!";
			last;
		}
		$sent += $n;
		$end = poll_read($sock, $sel, \%r, 0.05);
	}
	my $closed_after = time() - $t0;
	close $sock;
	my $res = parse_response($r{data});
	ok($res && $res->{status} == 413, 'the 413 was sent at once')
	  or diag("got: $r{data}");
	ok($end, "the server closed the connection ($end)");
	cmp_ok($closed_after, '>', $REQUEST_TIMEOUT + 1,
		'later than a stalled client would have been (it kept sending)');
	cmp_ok($closed_after, '<', $LINGER_TIME + $REQUEST_TIMEOUT + 2,
		sprintf('within %d s + one read + slack: %.2f s, %d bytes sent',
			$LINGER_TIME, $closed_after, $sent));
	diag(sprintf('trickling client cut off after %.2f s, having sent %d bytes',
			$closed_after, $sent));
};

# Kernel buffers on both sides can take tens of MB more than the server
# drained, so this client claims 1 GB and gives up at 200 MB.
subtest 'a client that claims 1 GB and sends fast is cut off after 64 MiB' => sub {
	local $SIG{PIPE} = 'IGNORE';
	my $sock = $kv->connect_socket;
	my $block = 'f' x (1024 * 1024);
	my $t0 = time();
	my $sent = 0;
	my $ok = KvServerTest::write_all($sock, "PUT /kv/huge HTTP/1.1\r\nHost: 127.0.0.1\r\n"
		  . "Content-Length: 1000000000\r\n\r\n");
	while ($ok && $sent < 200 * 1024 * 1024)
	{
		$ok = KvServerTest::write_all($sock, $block);
		$sent += length($block) if $ok;
	}
	my $took = time() - $t0;
	close $sock;
	ok(!$ok, sprintf('the server closed the connection before 200 MiB were sent (%.1f MiB)',
			$sent / 1024 / 1024));
	cmp_ok($sent, '>=', $LINGER_BYTES - 1024 * 1024,
		sprintf('after it drained about 64 MiB (%.1f MiB sent)', $sent / 1024 / 1024));
	cmp_ok($took, '<', $LINGER_TIME + $REQUEST_TIMEOUT + 2, sprintf('in %.2f s', $took));
};

subtest 'the same worker still serves' => sub {
	is($kv->http('GET', '/health')->{status}, 200, '/health 200');
	is($kv->worker_pid, $worker_pid, 'the same worker pid');
	unlike(slurp_file($node->logfile),
		qr/terminated by signal|PANIC|background worker "kvserver" \(PID \d+\) exited/,
		'no crash in the server log');
};

done_testing();
