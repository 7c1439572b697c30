
# Copyright (c) kvserver authors

# Crash durability under concurrent load: "a write is answered 2xx only
# after its transaction has committed" must hold through every kind of crash.
#
# A node with fsync = on.  Each cycle starts 16 writer processes, each PUTting
# its own 50 keys (w<writer>-<seq % 50>) over one keep-alive connection as
# fast as it can, with values unique across the whole test (w<writer>-<seq>),
# and logging the outcome of every write.  After a few seconds of load the
# node is crashed:
#
#   A  kill -9 of the postmaster (the old children are waited for, then the
#      node is started again)
#   B  kill -9 of the kvserver worker alone (the postmaster restarts all
#      backends by itself)
#   C  pg_ctl stop -m immediate, then start
#
# Once /health answers 200 again, every key is checked against the writers'
# logs: its value must be the last acknowledged (200/201) write of the key,
# or a later write of the same writer whose outcome was unknown (no status,
# connection error, timeout, 5xx) or that was in flight at the crash.  If no
# write of the key was acknowledged in the cycle, the value may also be the
# one it had before the cycle.  Anything else means an acknowledged write was
# lost (or a value appeared that nobody wrote).

use strict;
use warnings;

use FindBin;
use lib "$FindBin::RealBin/../lib";

use Cwd qw(realpath);
use Errno qw(EAGAIN EINTR EWOULDBLOCK);
use IO::Select;
use IO::Socket::INET;
use KvServerTest;
use POSIX ();
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Socket ();
use Test::More;
use Time::HiRes qw(time usleep);

my $t_start = time();

my $nwriters = 16;
my $nkeys = 50;               # keys per writer
my $load_seconds = 2.5;       # load after the first acknowledgements
my $request_timeout = 10;     # a writer's limit for one request
my @cycles = qw(A B C A B);

my $kv = KvServerTest->new(
	'crash_durability',
	# Cluster.pm turns fsync and restart_after_crash off
	conf => "fsync = on\nsynchronous_commit = on\nrestart_after_crash = on\n");
my $node = $kv->node;
my $dir = PostgreSQL::Test::Utils::tempdir();
my $datadir = realpath($node->data_dir);

sub sql { return $node->safe_psql('postgres', $_[0], timeout => 120); }

is(sql('SHOW fsync'), 'on', 'fsync is on');
is(sql('SHOW synchronous_commit'), 'on', 'synchronous_commit is on');
is(sql('SHOW restart_after_crash'), 'on', 'restart_after_crash is on');

# ---------------------------------------------------------------------------
# The writers
# ---------------------------------------------------------------------------

# Reads one HTTP response from $sock (keep-alive: by Content-Length).
# Returns (status, close_after) or (undef, reason).
sub read_response
{
	my ($sock, $deadline) = @_;
	my $sel = IO::Select->new($sock);
	my $buf = '';
	my ($status, $len, $close, $hdr_end);
	while (1)
	{
		if (!defined $hdr_end)
		{
			my $e = index($buf, "\r\n\r\n");
			if ($e >= 0)
			{
				$hdr_end = $e + 4;
				my $head = substr($buf, 0, $e);
				return (undef, 'bad status line')
				  unless $head =~ m{^HTTP/1\.[01] (\d{3})};
				$status = $1;
				$len = $head =~ /\r\ncontent-length:[ \t]*(\d+)/i ? $1 : undef;
				$close = $head =~ /\r\nconnection:[ \t]*close/i ? 1 : 0;
				# every answer of kvserver has a Content-Length
				return (undef, "no Content-Length (status $status)")
				  unless defined $len;
			}
		}
		return ($status, $close)
		  if defined $hdr_end && length($buf) >= $hdr_end + $len;

		my $left = $deadline - time();
		return (undef, 'timeout') if $left <= 0;
		next unless $sel->can_read($left);
		my $n = sysread($sock, $buf, 65536, length($buf));
		if (!defined $n)
		{
			next if $! == EINTR || $! == EAGAIN || $! == EWOULDBLOCK;
			return (undef, "read: $!");
		}
		return (undef, length($buf) ? 'EOF in response' : 'EOF') if $n == 0;
	}
}

# One writer: PUT until the stop file appears; one log line per write whose
# request was (at least partly) sent: "<seq> <status>" with status the HTTP
# status, or "U" plus a reason when there was none.  The log is written
# unbuffered, so a writer killed with SIGKILL loses at most the line of the
# write in flight; the checker treats the seq after the last logged one as
# in flight.
sub writer_main
{
	my ($w, $first_seq, $logfile, $stopfile) = @_;
	$SIG{PIPE} = 'IGNORE';
	open(my $log, '>>', $logfile) or POSIX::_exit(2);
	my $sock;
	my $seq = $first_seq - 1;
	while (!-e $stopfile)
	{
		if (!$sock)
		{
			$sock = IO::Socket::INET->new(
				PeerAddr => $kv->host,
				PeerPort => $kv->port,
				Proto => 'tcp',
				Timeout => 5);
			if (!$sock)
			{
				# nothing sent: not a write at all
				usleep(20_000);
				next;
			}
			$sock->autoflush(1);
			setsockopt($sock, Socket::IPPROTO_TCP(), Socket::TCP_NODELAY(), 1);
		}
		$seq++;
		my $key = "w$w-" . ($seq % $nkeys);
		my $value = "w$w-$seq";
		my $req =
		    "PUT /kv/$key HTTP/1.1\r\nHost: 127.0.0.1\r\n"
		  . "Content-Type: text/plain\r\n"
		  . 'Content-Length: ' . length($value) . "\r\n\r\n" . $value;
		my $deadline = time() + $request_timeout;
		my ($status, $info);
		if (!KvServerTest::write_all($sock, $req))
		{
			$info = "write: $!";
		}
		else
		{
			($status, $info) = read_response($sock, $deadline);
		}
		if (defined $status)
		{
			syswrite($log, "$seq $status\n");
			if ($info)    # Connection: close
			{
				close($sock);
				undef $sock;
			}
		}
		else
		{
			$info =~ s/\s+/_/g;
			syswrite($log, "$seq U $info\n");
			close($sock);
			undef $sock;
		}
	}
	close($log);
	POSIX::_exit(0);
}

# ---------------------------------------------------------------------------
# Process helpers
# ---------------------------------------------------------------------------

# pids of every live (not zombie) process running in the data directory:
# the postmaster and all its children chdir there.
sub node_processes
{
	my @pids;
	opendir(my $dh, '/proc') or die "/proc: $!";
	foreach my $pid (grep { /^\d+$/ } readdir($dh))
	{
		my $cwd = readlink("/proc/$pid/cwd");
		next unless defined $cwd && $cwd eq $datadir;
		my $stat;
		if (open(my $fh, '<', "/proc/$pid/stat"))
		{
			$stat = <$fh>;
			close($fh);
		}
		next unless defined $stat;
		next if $stat =~ /^\d+ \(.*\) [ZX] /s;
		push @pids, $pid;
	}
	closedir($dh);
	return @pids;
}

sub pid_alive
{
	my ($pid) = @_;
	return 0 unless kill(0, $pid);
	open(my $fh, '<', "/proc/$pid/stat") or return 0;
	my $stat = <$fh>;
	close($fh);
	return !(defined $stat && $stat =~ /^\d+ \(.*\) [ZX] /s);
}

# Polls $cond every 50 ms until it is true or $seconds pass.
sub wait_until
{
	my ($seconds, $cond) = @_;
	my $deadline = time() + $seconds;
	while (time() < $deadline)
	{
		return 1 if $cond->();
		usleep(50_000);
	}
	return $cond->() ? 1 : 0;
}

# number of acknowledged writes logged so far in this cycle
sub count_acks
{
	my ($cycle) = @_;
	my $n = 0;
	foreach my $w (1 .. $nwriters)
	{
		open(my $fh, '<', "$dir/c$cycle-w$w.log") or next;
		while (<$fh>)
		{
			$n++ if /^\d+ 20[01]$/;
		}
		close($fh);
	}
	return $n;
}

sub log_size { return -s $node->logfile || 0; }

sub log_since
{
	my ($offset) = @_;
	open(my $fh, '<', $node->logfile) or return '';
	seek($fh, $offset, 0);
	local $/;
	my $text = <$fh>;
	close($fh);
	return defined $text ? $text : '';
}

# ---------------------------------------------------------------------------
# The cycles
# ---------------------------------------------------------------------------

# what each key holds after the previous cycle: seq, or undef if absent
my %baseline;
my %totals = (
	cycles => 0,
	acked => 0,
	checked_keys => 0,
	lost => 0,
	phantom => 0,
	unknown => 0,
	in_flight => 0,
	other_status => 0,
	unknown_applied => 0,
	bind_failures => 0);

my $cycle = 0;
foreach my $type (@cycles)
{
	$cycle++;
	my $name = "cycle $cycle ($type)";
	my $t_cycle = time();
	my $stopfile = "$dir/stop$cycle";
	# seqs unique across the test; multiples of $nkeys so that seq % 50 is
	# the key's index
	my $first_seq = $cycle * 10_000_000;

	my $old_worker = $kv->worker_pid;
	like($old_worker, qr/^\d+$/, "$name: kvserver worker running (pid $old_worker)");

	my @writers;
	foreach my $w (1 .. $nwriters)
	{
		my $pid = fork();
		die "fork: $!" unless defined $pid;
		writer_main($w, $first_seq, "$dir/c$cycle-w$w.log", $stopfile)
		  if $pid == 0;
		push @writers, $pid;
	}

	# load: until writes are being acknowledged, then a few seconds more
	ok(wait_until(60, sub { count_acks($cycle) >= 2 * $nwriters }),
		"$name: writers get writes acknowledged");
	my $load_end = time() + $load_seconds;
	usleep(50_000) while time() < $load_end;

	# crash
	my $log_offset = log_size();
	my $t_crash = time();
	if ($type eq 'A')
	{
		my @before = node_processes();
		$node->kill9;
		ok(wait_until(60, sub { !grep { pid_alive($_) } @before }),
			"$name: postmaster and its " . (@before - 1) . ' children are gone');
		# A new postmaster refuses to start while the old one's pid exists,
		# even as a zombie: wait until init has reaped them all (here it
		# takes a second or two).
		wait_until(60, sub { !grep { kill(0, $_) } @before })
		  or note "$name: old processes not reaped after 60 s";
	}
	elsif ($type eq 'B')
	{
		ok(kill('KILL', $old_worker), "$name: SIGKILL to worker $old_worker");
		ok(wait_until(30, sub { !pid_alive($old_worker) }),
			"$name: worker $old_worker is gone");
	}
	else
	{
		ok($node->stop('immediate', fail_ok => 1), "$name: pg_ctl stop -m immediate");
	}

	# stop the writers: they see errors and leave; kill the ones that don't
	open(my $sfh, '>', $stopfile) or die "$stopfile: $!";
	close($sfh);
	my %running = map { $_ => 1 } @writers;
	wait_until(
		$request_timeout + 10,
		sub {
			foreach my $pid (keys %running)
			{
				delete $running{$pid} if waitpid($pid, POSIX::WNOHANG()) != 0;
			}
			return !%running;
		});
	if (%running)
	{
		note "$name: killing " . scalar(keys %running) . ' writers that did not stop';
		kill('KILL', keys %running);
		waitpid($_, 0) foreach keys %running;
	}

	# back up
	if ($type ne 'B')
	{
		my $started = 0;
		foreach my $try (1 .. 5)
		{
			last if ($started = $node->start(fail_ok => 1));
			note "$name: start attempt $try failed, retrying";
			# a failed start leaves Cluster.pm believing in the pid of
			# postmaster.pid; forget it once that process is gone
			my $stale = $node->{_pid};
			wait_until(30, sub { !defined $stale || !kill(0, $stale) });
			$node->{_pid} = undef;
		}
		ok($started, "$name: node started again") or last;
	}
	if (!ok($kv->wait_for_health(200, 90), "$name: /health 200 again"))
	{
		my @tail = split /\n/, log_since($log_offset);
		splice(@tail, 0, @tail - 40) if @tail > 40;
		diag("server log since the crash:\n" . join("\n", @tail));
		last;
	}
	my $t_up = time();
	my $new_worker = $kv->worker_pid;
	isnt($new_worker, $old_worker, "$name: a new worker (pid $new_worker)");
	my $srvlog = log_since($log_offset);
	like($srvlog, qr/all server processes terminated; reinitializing/,
		"$name: the postmaster did a crash restart")
	  if $type eq 'B';
	my @bind = $srvlog =~ /^.*could not start its HTTP server.*$/mg;
	if (@bind)
	{
		$totals{bind_failures} += @bind;
		diag "$name: the restarted worker could not bind its HTTP port:\n"
		  . join("\n", @bind);
	}

	# what the writers saw
	my %acked_last;    # key => highest acknowledged seq
	my %allowed;       # key => { seq => 1 } unknown outcome / in flight
	my ($c_acked, $c_unknown, $c_inflight, $c_other) = (0, 0, 0, 0);
	foreach my $w (1 .. $nwriters)
	{
		my $max = $first_seq - 1;
		open(my $fh, '<', "$dir/c$cycle-w$w.log") or die "log of writer $w: $!";
		while (my $line = <$fh>)
		{
			chomp $line;
			# a writer killed while writing its line: treated as in flight
			next unless $line =~ /^(\d+) (\d{3}|U)(?: .*)?$/;
			my ($seq, $st) = ($1, $2);
			my $key = "w$w-" . ($seq % $nkeys);
			$max = $seq if $seq > $max;
			if ($st eq '200' || $st eq '201')
			{
				$c_acked++;
				$acked_last{$key} = $seq
				  if !defined $acked_last{$key} || $seq > $acked_last{$key};
			}
			else
			{
				# a 4xx would mean "not written"; none is expected, and
				# allowing it can only hide nothing an ack promised
				$st =~ /^(U|5\d\d)$/ ? $c_unknown++ : $c_other++;
				$allowed{$key}{$seq} = 1;
			}
		}
		close($fh);
		# the write in flight when the writer was stopped or killed
		my $next = $max + 1;
		$allowed{ "w$w-" . ($next % $nkeys) }{$next} = 1;
		$c_inflight++;
	}

	# what the table holds
	my %stored;
	foreach my $row (split /\n/,
		sql("SELECT key || ' ' || convert_from(value, 'UTF8') FROM kv_store WHERE key LIKE 'w%'"))
	{
		my ($k, $v) = split / /, $row, 2;
		$stored{$k} = $v;
	}

	my (@lost, @phantom);
	my $applied = 0;
	foreach my $w (1 .. $nwriters)
	{
		foreach my $i (0 .. $nkeys - 1)
		{
			my $key = "w$w-$i";
			my $v = $stored{$key};
			my $seq;
			if (defined $v)
			{
				if ($v =~ /^w$w-(\d+)$/ && $1 % $nkeys == $i)
				{
					$seq = $1;
				}
				else
				{
					push @phantom, "$key = '$v' (not a value of this key)";
					next;
				}
			}
			my $last = $acked_last{$key};
			if (defined $last)
			{
				if (defined $seq && $seq == $last)
				{
					next;
				}
				elsif (defined $seq && $seq > $last && $allowed{$key}{$seq})
				{
					$applied++;
					next;
				}
				elsif (!defined $seq || $seq < $last)
				{
					push @lost,
					  "$key: last acknowledged w$w-$last, table has "
					  . (defined $v ? "'$v'" : 'no row');
				}
				else
				{
					push @phantom, "$key = '$v' (newer than w$w-$last but never sent)";
				}
			}
			else
			{
				# nothing acknowledged for this key in this cycle
				my $before = $baseline{$key};
				next if !defined $seq && !defined $before;
				next if defined $seq && defined $before && $seq == $before;
				if (defined $seq && $allowed{$key}{$seq})
				{
					$applied++;
					next;
				}
				push @phantom,
				  "$key: had "
				  . (defined $before ? "w$w-$before" : 'no row')
				  . ', nothing acknowledged, table has '
				  . (defined $v ? "'$v'" : 'no row');
			}
		}
	}
	my $n_checked = scalar(keys %acked_last);
	is(scalar(@lost), 0,
		"$name: no acknowledged write lost ($c_acked acknowledged, "
		  . "$n_checked keys with a last acknowledged write)")
	  or diag("LOST:\n" . join("\n", @lost[ 0 .. ($#lost < 30 ? $#lost : 29) ]));
	is(scalar(@phantom), 0, "$name: no value that was never written or an older one")
	  or diag(join("\n", @phantom[ 0 .. ($#phantom < 30 ? $#phantom : 29) ]));

	# counts the lost ones as what the table now holds, for the next cycle
	foreach my $w (1 .. $nwriters)
	{
		foreach my $i (0 .. $nkeys - 1)
		{
			my $key = "w$w-$i";
			$baseline{$key} =
			  defined $stored{$key} && $stored{$key} =~ /^w$w-(\d+)$/ ? $1 : undef;
		}
	}

	note sprintf(
		"%s: %d acknowledged, %d unknown outcome (+%d possibly in flight), %d other status, "
		  . "%d keys checked, %d unknown-outcome writes found applied, %d lost; "
		  . "load %.1f s, crash to /health 200 %.1f s, cycle %.1f s",
		$name, $c_acked, $c_unknown, $c_inflight, $c_other, $n_checked,
		$applied, scalar(@lost), $t_crash - ($load_end - $load_seconds),
		$t_up - $t_crash, time() - $t_cycle);

	$totals{cycles}++;
	$totals{acked} += $c_acked;
	$totals{checked_keys} += $n_checked;
	$totals{lost} += @lost;
	$totals{phantom} += @phantom;
	$totals{unknown} += $c_unknown;
	$totals{in_flight} += $c_inflight;
	$totals{other_status} += $c_other;
	$totals{unknown_applied} += $applied;
}

is($totals{cycles}, scalar(@cycles), 'all ' . scalar(@cycles) . ' crash cycles ran');
cmp_ok($totals{acked}, '>', 0, 'writes were acknowledged');
is($totals{lost}, 0, 'no acknowledged write lost in any cycle');
is($totals{bind_failures}, 0,
	'the restarted worker could bind its HTTP port at once every time');

note sprintf(
	"totals: %d cycles (%s), %d acknowledged writes (%d keys checked against "
	  . "their last acknowledged write), %d lost, %d unknown-outcome writes "
	  . "(+%d possibly in flight at the stop; %d of these found applied), %d other "
	  . "status, %d phantom, %d HTTP bind failures; %.1f s",
	$totals{cycles}, join(' ', @cycles[ 0 .. $totals{cycles} - 1 ]),
	$totals{acked}, $totals{checked_keys}, $totals{lost},
	$totals{unknown}, $totals{in_flight}, $totals{unknown_applied},
	$totals{other_status}, $totals{phantom}, $totals{bind_failures},
	time() - $t_start);

done_testing();
