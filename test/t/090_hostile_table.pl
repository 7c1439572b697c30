
# Copyright (c) kvserver authors

# The table of hostile requests in test/hostile/requests.tsv, each sent on a
# fresh TCP connection and held to the answer the table expects (one test per
# row); then a slow sender, and 1000 idle connections against 256 threads.
# Throughout, the same worker process keeps serving.
#
# The node runs with kvserver.request_timeout = '2s' so that stalled rows and
# idle connections are dropped quickly.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::RealBin/../lib";

use Errno qw(EAGAIN EINTR EWOULDBLOCK ECONNRESET);
use IO::Poll qw(POLLIN POLLHUP POLLERR);
use IO::Select;
use JSON::PP;
use KvServerTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);

my $REQUEST_TIMEOUT = 2;    # seconds, kvserver.request_timeout of this node
my $HTTP_THREADS = 256;     # kvserver.http_threads (the default)

# How long a row may take.  A stalled request is dropped after
# request_timeout, and a stalled body read can take two of them (one per
# civetweb read), so 2 * 2 s plus slack.
my $ROW_TIMEOUT = 2 * $REQUEST_TIMEOUT + 2;

# After a complete response on a connection the server keeps open, how long
# to listen for a second one (which would mean a body was run as a request).
my $GRACE = 0.25;

my $TABLE = "$FindBin::RealBin/../hostile/requests.tsv";

# --------------------------------------------------------------------------
# The table

# \r \n \t \\ \0 \xHH and \{N*TEXT} (TEXT repeated N times, TEXT escaped too)
sub decode_raw
{
	my ($s) = @_;
	my $out = '';
	pos($s) = 0;
	while (pos($s) < length($s))
	{
		if ($s =~ /\G([^\\]+)/gc) { $out .= $1; }
		elsif ($s =~ /\G\\r/gc) { $out .= "\r"; }
		elsif ($s =~ /\G\\n/gc) { $out .= "\n"; }
		elsif ($s =~ /\G\\t/gc) { $out .= "\t"; }
		elsif ($s =~ /\G\\\\/gc) { $out .= "\\"; }
		elsif ($s =~ /\G\\0/gc) { $out .= "\0"; }
		elsif ($s =~ /\G\\x([0-9A-Fa-f]{2})/gc) { $out .= chr(hex($1)); }
		elsif ($s =~ /\G\\\{(\d+)\*([^}]*)\}/gc) { $out .= decode_raw($2) x $1; }
		else
		{
			die "bad escape at: " . substr($s, pos($s), 12) . "\n";
		}
	}
	return $out;
}

# "400 bad_request|close" -> ({ status => 400, code => 'bad_request' }, { close => 1 })
sub parse_expect
{
	my ($text) = @_;
	my @alts;
	foreach my $alt (split /\|/, $text)
	{
		if ($alt eq 'close') { push @alts, { close => 1, text => $alt }; }
		elsif ($alt eq '4xx') { push @alts, { class => 4, text => $alt }; }
		elsif ($alt =~ /^([1-5]\d\d)(?: ([a-z_]+))?$/)
		{
			push @alts, { status => $1, code => $2, text => $alt };
		}
		else { die "bad expectation \"$alt\"\n"; }
	}
	die "empty expectation\n" unless @alts;
	return \@alts;
}

sub load_table
{
	my ($path) = @_;
	open(my $fh, '<:raw', $path) or die "cannot open $path: $!";
	my (@rows, %seen);
	while (my $line = <$fh>)
	{
		chomp $line;
		next if $line =~ /^\s*(#|$)/;
		my @f = split /\t/, $line, -1;
		die "$path line $.: 4 TAB-separated columns expected, got " . scalar(@f) . "\n"
		  unless @f == 4;
		my ($name, $raw, $expect, $note) = @f;
		die "$path line $.: duplicate name $name\n" if $seen{$name}++;
		my $row = eval {
			{
				name => $name,
				raw => decode_raw($raw),
				expect => parse_expect($expect),
				expect_text => $expect,
				note => $note,
				line => $.,
			};
		};
		die "$path line $. ($name): $@" unless $row;
		push @rows, $row;
	}
	close $fh;
	return @rows;
}

# --------------------------------------------------------------------------
# Sending a row and reading its answer

# Printable form of bytes for diagnostics.
sub show
{
	my ($s, $max) = @_;
	$max ||= 300;
	my $cut = length($s) > $max;
	$s = substr($s, 0, $max) if $cut;
	$s =~ s/([^\x20-\x7e])/sprintf('\\x%02X', ord($1))/ge;
	return $s . ($cut ? '...' : '');
}

# One response, skipping any 1xx interim responses first.
sub parse_final
{
	my ($data) = @_;
	while (1)
	{
		my $res = parse_response($data);
		return undef unless $res;
		return $res if $res->{status} >= 200;
		$data = $res->{extra};
	}
}

# Send $raw on a new connection, read the answer.  Returns a hash:
#   connect_error, write_error, data, eof, timed_out, reset, elapsed,
#   res (parsed response or undef), extra (bytes after the response).
sub send_row
{
	my ($kv, $raw) = @_;
	my %o = (data => '', eof => 0, timed_out => 0);
	local $SIG{PIPE} = 'IGNORE';

	my $t0 = time();
	my $sock = $kv->connect_socket;
	if (!$sock)
	{
		$o{connect_error} = "$!";
		return \%o;
	}
	$o{write_error} = "$!" unless KvServerTest::write_all($sock, $raw);

	my $sel = IO::Select->new($sock);
	my $deadline = time() + $ROW_TIMEOUT;
	my $complete_at;
	while (1)
	{
		my $limit = defined $complete_at ? $complete_at + $GRACE : $deadline;
		my $left = $limit - time();
		if ($left <= 0)
		{
			$o{timed_out} = 1 unless defined $complete_at;
			last;
		}
		next unless $sel->can_read($left);
		my $buf;
		my $n = sysread($sock, $buf, 65536);
		if (!defined $n)
		{
			next if $! == EINTR || $! == EAGAIN || $! == EWOULDBLOCK;
			# a server that closes with unread request bytes sends a reset
			$o{reset} = 1 if $! == ECONNRESET;
			$o{read_error} = "$!" unless $! == ECONNRESET;
			last;
		}
		if ($n == 0)
		{
			$o{eof} = 1;
			last;
		}
		$o{data} .= $buf;
		if (!defined $complete_at)
		{
			my $res = parse_final($o{data});
			$complete_at = time() if $res && $res->{complete};
		}
	}
	close $sock;
	$o{elapsed} = time() - $t0;
	$o{res} = parse_final($o{data});
	$o{extra} = $o{res} ? $o{res}{extra} : '';
	return \%o;
}

sub describe
{
	my ($o) = @_;
	return "could not connect: $o->{connect_error}" if defined $o->{connect_error};
	my @what;
	if ($o->{res})
	{
		my $r = $o->{res};
		my $json = decode_json_body($r);
		push @what, "status $r->{status}"
		  . (ref $json eq 'HASH' && defined $json->{error} ? " $json->{error}" : '')
		  . ($r->{complete} ? '' : ' (incomplete)');
	}
	elsif (length $o->{data}) { push @what, 'bytes that are not a response'; }
	else { push @what, 'no bytes'; }
	push @what, 'then EOF' if $o->{eof};
	push @what, 'then a reset' if $o->{reset};
	push @what, "read error $o->{read_error}" if $o->{read_error};
	push @what, "no EOF within ${ROW_TIMEOUT}s" if $o->{timed_out};
	push @what, "write error $o->{write_error}" if $o->{write_error};
	push @what, sprintf('after %.2f s', $o->{elapsed});
	my $d = join(', ', @what);
	$d .= "\n  received: " . show($o->{data}) if length $o->{data};
	return $d;
}

# Does the observation match one alternative?  Returns '' or why not.
sub mismatch
{
	my ($alt, $o) = @_;
	if ($alt->{close})
	{
		return '' if !length($o->{data}) && ($o->{eof} || $o->{reset});
		return 'expected a close without a response';
	}
	my $r = $o->{res};
	return 'expected a complete response' unless $r && $r->{complete};
	if ($alt->{class})
	{
		return "expected a $alt->{class}xx"
		  unless int($r->{status} / 100) == $alt->{class};
	}
	elsif ($r->{status} != $alt->{status})
	{
		return "expected status $alt->{status}";
	}
	if ($r->{status} >= 400)
	{
		my $ct = header($r, 'Content-Type');
		return "error without Content-Type application/json (got '$ct')"
		  unless $ct =~ m{^application/json\b};
		my $json = decode_json_body($r);
		return 'error body is not a JSON object {"error", "message"}'
		  unless ref $json eq 'HASH'
		  && defined $json->{error} && !ref $json->{error}
		  && defined $json->{message} && !ref $json->{message}
		  && length $json->{message};
		return "expected error code $alt->{code}, got $json->{error}"
		  if defined $alt->{code} && $json->{error} ne $alt->{code};
	}
	return '';
}

# --------------------------------------------------------------------------
# Crash detection: the postmaster logs any worker that dies

my $log_offset = 0;

sub new_log_lines
{
	my ($node) = @_;
	my $log = slurp_file($node->logfile);
	my $new = length($log) > $log_offset ? substr($log, $log_offset) : '';
	$log_offset = length($log);
	return $new;
}

sub died_in
{
	my ($text) = @_;
	my @hits = grep {
		/terminated by signal|was terminated|PANIC|background worker "kvserver" \(PID \d+\) exited/
	} split /\n/, $text;
	return join("\n", @hits);
}

# --------------------------------------------------------------------------

my $kv = KvServerTest->new(
	'hostile_table',
	conf => "kvserver.request_timeout = '${REQUEST_TIMEOUT}s'\n"
	  . "kvserver.http_threads = $HTTP_THREADS\n"
	  . "restart_after_crash = on\n");
my $node = $kv->node;
new_log_lines($node);

my $start_pid = $kv->worker_pid;
like($start_pid, qr/^\d+$/, "worker running (pid $start_pid)");

my @rows = load_table($TABLE);
cmp_ok(scalar @rows, '>=', 40, scalar(@rows) . ' rows in test/hostile/requests.tsv');

my $t_table = time();
foreach my $row (@rows)
{
	my $o = send_row($kv, $row->{raw});
	if (defined $o->{connect_error})
	{
		# the previous row took the server down: say so, wait, go on
		diag("$row->{name}: could not connect ($o->{connect_error}); waiting for the server");
		$kv->wait_for_health(200, 60);
		$o = send_row($kv, $row->{raw});
	}

	# a worker that died while handling this row
	usleep(200_000) unless $o->{res};
	my $death = died_in(new_log_lines($node));

	my @why;
	my @misses = map { mismatch($_, $o) } @{ $row->{expect} };
	push @why, join('; ', grep { length } @misses) unless grep { $_ eq '' } @misses;
	push @why, 'a second response followed: ' . show($o->{extra}, 120)
	  if length $o->{extra} && $o->{res} && $o->{res}{complete};
	push @why, "the worker died:\n$death" if length $death;

	ok(!@why, $row->{name})
	  or diag("$row->{name} (line $row->{line}): expected $row->{expect_text}"
		  . ($row->{note} ne '' ? " -- $row->{note}" : '')
		  . "\n  got: " . describe($o)
		  . "\n  " . join("\n  ", @why));

	$kv->wait_for_health(200, 60) if length $death;
}
note(sprintf('table: %d rows in %.1f s', scalar @rows, time() - $t_table));

is(eval { $kv->worker_pid } // 'no worker', $start_pid,
	'after the table: the same worker pid');
is($kv->http('GET', '/health')->{status}, 200, 'after the table: /health 200');

# --------------------------------------------------------------------------
# A slow sender: one byte every 50 ms.  civetweb bounds the whole request
# header by request_timeout (2 s), so this 57-byte header (2.85 s) is cut off:
# it is refused or closed, never served; meanwhile other clients are served
# at once.

subtest 'slow sender: others served meanwhile, the slow header is cut off' => sub {
	local $SIG{PIPE} = 'IGNORE';
	my $hdr = "PUT /kv/ht-slow HTTP/1.1\r\nHost: kv\r\nContent-Length: 4\r\n\r\n";
	my $sock = $kv->connect_socket;
	ok($sock, 'connected');
	my $t0 = time();
	my ($sent, $cut_at, @latency) = (0);
	for my $i (0 .. length($hdr) - 1)
	{
		my $n = syswrite($sock, substr($hdr, $i, 1));
		if (!defined $n || $n != 1)
		{
			$cut_at = time() - $t0;
			last;
		}
		$sent++;
		if ($i % 10 == 5)
		{
			my $t = time();
			my $res = $kv->http('GET', '/health', undef, undef, timeout => 10);
			push @latency, [ $res->{status}, time() - $t ];
		}
		usleep(50_000);
	}
	syswrite($sock, 'slow') if !defined $cut_at;
	my %r = (data => '', eof => 0, timed_out => 0);
	KvServerTest::read_until_eof($sock, 2 * $REQUEST_TIMEOUT + 2, \%r);
	my $closed_at = time() - $t0;
	close $sock;

	ok(@latency >= 3, scalar(@latency) . ' requests from another client while the header trickled in');
	is(scalar(grep { $_->[0] != 200 } @latency), 0, 'all of them 200');
	my $max = 0;
	$max = $_->[1] > $max ? $_->[1] : $max foreach @latency;
	cmp_ok($max, '<', 1.0, sprintf('each within 1 s (slowest %.3f s)', $max));

	my $res = parse_response($r{data});
	ok(!$r{timed_out}, sprintf('the slow connection was closed (%.2f s after its first byte; '
		  . '%d of %d bytes accepted%s)', $closed_at, $sent, length($hdr),
		  defined $cut_at ? sprintf(', writes refused from %.2f s', $cut_at) : ''));
	cmp_ok($closed_at, '<=', 2 * $REQUEST_TIMEOUT + 1,
		'within 2 x request_timeout + 1 s');
	unlike($res ? $res->{status} : 'closed', qr/^2/, 'not served (' . ($res ? $res->{status} : 'closed without a response') . ')');
	if ($res)
	{
		is_error($res, $res->{status}, 'bad_request', 'the refusal') if $res->{status} == 400;
	}
	is($kv->http('GET', '/kv/ht-slow')->{status}, 404, 'nothing stored');
};

# --------------------------------------------------------------------------
# 1000 idle connections against 256 threads.  civetweb gives each accepted
# connection a thread; the ones beyond the thread count wait in its queue
# (or the kernel's backlog) until idle ones time out after request_timeout.
# A new client behind 1000 idle ones is therefore reached after
# ceil(1001 / 256) - 1 = 3 rounds of 2 s, about 6 s: the bound asserted is
# 10 s, 3 rounds plus 4 s of slack for a loaded machine.  All idle
# connections must then be closed by the server without a byte.

subtest '1000 idle connections: a new client is served within 10 s, all idle ones closed' => sub {
	# the bound is about time, which valgrind's memcheck pass stretches
	plan skip_all => 'timing bound not meaningful under valgrind'
	  if $ENV{KV_UNDER_VALGRIND};
	my $n = 1000;
	my $bound = 10;

	# this process needs more than 1000 descriptors
	my $soft = `sh -c 'ulimit -n'`;
	chomp $soft;
	if ($soft ne 'unlimited' && $soft < $n + 100)
	{
		system('prlimit', "--pid=$$", '--nofile=' . ($n + 1024) . ':') == 0
		  or diag("could not raise this process's descriptor limit from $soft with prlimit");
		$soft = `sh -c 'ulimit -n'`;
		chomp $soft;
	}
	note("descriptor limit of the test process: $soft");

	my @idle;
	my $t_open = time();
	for (1 .. $n)
	{
		my $s = $kv->connect_socket;
		last unless $s;
		push @idle, $s;
	}
	is(scalar @idle, $n, "$n idle connections open");

	my $t0 = time();
	my $res = $kv->http('GET', '/health', undef, undef, timeout => 30);
	my $wait = time() - $t0;
	is($res->{status}, 200, 'a new client: GET /health 200');
	cmp_ok($wait, '<', $bound,
		sprintf("served within $bound s behind $n idle connections (took %.2f s)", $wait));
	diag(sprintf('new client behind %d idle connections served after %.2f s', $n, $wait));

	# every idle connection: EOF from the server, no byte
	my $poll = IO::Poll->new;
	my %open = map { fileno($_) => $_ } @idle;
	$poll->mask($_ => POLLIN) foreach @idle;
	my ($closed, $with_bytes, $last) = (0, 0, 0);
	my $deadline = $t_open + 2 * ($n / $HTTP_THREADS + 2) * $REQUEST_TIMEOUT;
	while (%open && time() < $deadline)
	{
		next unless $poll->poll($deadline - time()) > 0;
		foreach my $s ($poll->handles(POLLIN | POLLHUP | POLLERR))
		{
			my $buf;
			my $got = sysread($s, $buf, 4096);
			next if !defined $got && ($! == EINTR || $! == EAGAIN);
			$with_bytes++ if $got;
			$closed++;
			$last = time() - $t_open;
			$poll->remove($s);
			delete $open{ fileno($s) };
		}
	}
	is($closed, $n, sprintf('the server closed all %d idle connections (last after %.1f s)', $n, $last));
	is(scalar keys %open, 0, 'none left open');
	is($with_bytes, 0, 'none of them got a byte');
	close($_) foreach @idle;

	my $t1 = time();
	is($kv->http('GET', '/health')->{status}, 200, 'afterwards: /health 200');
	cmp_ok(time() - $t1, '<', 1.0, 'at once');
};

# --------------------------------------------------------------------------

is(eval { $kv->worker_pid } // 'no worker', $start_pid,
	'at the end: the same worker pid as at the start');
is($kv->http('GET', '/health')->{status}, 200, 'at the end: /health 200');
is(died_in(slurp_file($node->logfile)), '', 'no worker died (server log)');

done_testing();
