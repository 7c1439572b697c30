
# Copyright (c) kvserver authors

# Automatic failover with an existing manager: Debian's pg_auto_failover
# (pg_autoctl).  A monitor and two data nodes on this machine, each data node
# with kvserver preloaded and its own HTTP port; pg_auto_failover makes the
# second node a synchronous standby of the first (synchronous_standby_names
# = 'ANY 1 (...)', synchronous_commit = on).  8 HTTP writers PUT unique keys
# to whichever node's /health says "primary", switching nodes on any error
# as a client following the primary does, and record every 2xx.  The first
# node's whole process group (its pg_autoctl keeper and its postmaster) is
# killed; nobody promotes anything by hand: the monitor notices, the keeper
# of the second node promotes it, its kvserver worker follows (/health says
# primary), and pg_auto_failover lets it take writes.  Then every
# acknowledged write must be served with its value by GET on the new
# primary, and a PUT there must succeed.
#
# The monitor's health-check and timeout settings are lowered (see
# %monitor_settings) so that the failover takes seconds, not a minute.
#
# Everything runs as the calling user without systemd: each pg_autoctl
# call gets its own XDG_CONFIG_HOME, XDG_DATA_HOME and XDG_RUNTIME_DIR, and
# the sockets go to the test's socket directory (PG_REGRESS_SOCK_DIR makes
# pg_autoctl start postgres with -k there).  Each `pg_autoctl run` is
# started in a session of its own, so that one kill reaches the keeper and
# its postmaster; the END block stops them all, also after a failure.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::RealBin/../lib";

use File::Path qw(make_path);
use HTTP::Tiny;
use IPC::Run;
use KvServerTest;
use POSIX ();
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);

# An executable in PATH, or undef.
sub which
{
	my ($prog) = @_;
	foreach my $dir (split /:/, $ENV{PATH} // '')
	{
		return "$dir/$prog" if $dir ne '' && -x "$dir/$prog" && !-d "$dir/$prog";
	}
	return undef;
}

my $pg_autoctl = which('pg_autoctl');
if (!defined $pg_autoctl)
{
	# scripts/test.sh installs it and sets KV_REQUIRE_AUTOCTL: CI fails here
	if ($ENV{KV_REQUIRE_AUTOCTL})
	{
		fail('pg_autoctl is not installed (Debian: pg-auto-failover-cli, postgresql-15-auto-failover)');
		done_testing();
		exit 1;
	}
	plan skip_all =>
	  'pg_autoctl is not installed (Debian: pg-auto-failover-cli, postgresql-15-auto-failover); set KV_REQUIRE_AUTOCTL=1 to fail instead';
}
# pg_autoctl runs the pg_ctl it is given and the postgres next to it: the
# PostgreSQL of this test run (the Makefile puts its bindir first in PATH)
my $pg_ctl = which('pg_ctl') or die "pg_ctl is not in PATH\n";

my $nwriters = 8;
my $load_seconds = 2;
my $main_pid = $$;
my $dir = PostgreSQL::Test::Utils::tempdir();
my $log_path = $PostgreSQL::Test::Utils::log_path;
my $stopfile = "$dir/stop";    # the writers stop when it exists
my @writers;                   # their pids

# the END block stops everything, also when the test is interrupted
$SIG{$_} = sub { die "killed by SIG$_[0]\n" } foreach qw(INT TERM HUP);

# The monitor's settings (PGC_SIGHUP GUCs of the pgautofailover extension),
# lowered from 5 s / 5 s / 2 / 2 s / 20 s / 30 s / 10 s.  A node is failed
# over when its keeper has not reported for node_considered_unhealthy_timeout
# (a keeper reports every second) and the monitor's health checks fail; the
# promoted node takes writes once primary_demote_timeout has passed.
my %monitor_settings = (
	'pgautofailover.health_check_period' => 1000,
	'pgautofailover.health_check_timeout' => 2000,
	'pgautofailover.health_check_max_retries' => 1,
	'pgautofailover.health_check_retry_delay' => 500,
	'pgautofailover.node_considered_unhealthy_timeout' => 5000,
	'pgautofailover.primary_demote_timeout' => 5000,
	'pgautofailover.startup_grace_period' => 1000,
);

# The three nodes.  PostgreSQL::Test::Cluster objects only for their port,
# socket directory, data directory and psql: pg_autoctl creates, starts and
# stops them (the Cluster never starts them, so its END block leaves them
# alone and only removes their directories after a passing run).
my $monitor = PostgreSQL::Test::Cluster->new('monitor');
my $node1 = PostgreSQL::Test::Cluster->new('node1');
my $node2 = PostgreSQL::Test::Cluster->new('node2');
my %http_port = map { $_->name => PostgreSQL::Test::Cluster::get_free_port() } ($node1, $node2);
my $monitor_uri = 'postgres://autoctl_node@127.0.0.1:' . $monitor->port
  . '/pg_auto_failover?sslmode=disable';

# The KvServerTest HTTP clients of the data nodes.
my %kv = map {
	$_->name => bless {
		node => $_,
		host => '127.0.0.1',
		port => $http_port{ $_->name },
		anonymous_role => 'kv_anon'
	  },
	  'KvServerTest'
} ($node1, $node2);

# The environment of every pg_autoctl process of a node.
sub autoctl_env
{
	my ($node) = @_;
	my $xdg = $node->basedir . '/xdg';
	my %env = (
		XDG_CONFIG_HOME => "$xdg/config",
		XDG_DATA_HOME => "$xdg/data",
		XDG_RUNTIME_DIR => "$xdg/run",
		PGHOST => $node->host,
		PG_REGRESS_SOCK_DIR => $node->host,
	);
	if (!-d "$xdg/run")
	{
		make_path("$xdg/config", "$xdg/data", "$xdg/run");
		chmod 0700, "$xdg/run";
	}
	return %env;
}

# Runs one pg_autoctl command for a node and waits for it; dies with its
# output on failure.  The output goes to the node's pg_autoctl log too.
sub autoctl
{
	my ($node, @args) = @_;
	local %ENV = (%ENV, autoctl_env($node));
	delete $ENV{PGAPPNAME};
	my ($in, $out) = ('', '');
	my $t0 = time();
	my $ok = IPC::Run::run([ $pg_autoctl, @args ],
		'<', \$in, '>&', \$out, IPC::Run::timeout(180));
	my $rc = $?;
	my $logfile = "$log_path/143_autoctl_" . $node->name . '.log';
	if (open(my $fh, '>>', $logfile))
	{
		print $fh "\$ pg_autoctl @args\n$out(exit status $rc)\n";
		close($fh);
	}
	note sprintf('pg_autoctl %s %s (%s): %.1f s', $args[0], $args[1] // '', $node->name,
		time() - $t0);
	die "pg_autoctl @args failed (status $rc):\n$out" unless $ok;
	return $out;
}

# `pg_autoctl run` for a node, in a session (and process group) of its own.
my @keepers;

sub start_keeper
{
	my ($node) = @_;
	my $logfile = "$log_path/143_autoctl_" . $node->name . '.log';
	my %env = autoctl_env($node);
	my $pid = fork();
	die "fork: $!" unless defined $pid;
	if ($pid == 0)
	{
		POSIX::setsid();
		open(STDIN, '<', '/dev/null') or POSIX::_exit(126);
		open(STDOUT, '>>', $logfile) or POSIX::_exit(126);
		open(STDERR, '>&', \*STDOUT) or POSIX::_exit(126);
		%ENV = (%ENV, %env);
		delete $ENV{PGAPPNAME};
		{ no warnings 'exec'; exec($pg_autoctl, 'run', '--pgdata', $node->data_dir); }
		POSIX::_exit(127);
	}
	push @keepers, { pid => $pid, name => $node->name, alive => 1 };
	return $pid;
}

# Signals a keeper's whole process group (its pid is the group id, by
# setsid; the pid itself too, in case the child has not called setsid yet).
sub signal_keeper
{
	my ($k, $sig) = @_;
	kill $sig, -$k->{pid};
	kill $sig, $k->{pid};
	return;
}

# Reaps the keepers that have exited; true when none is left.
sub reap_keepers
{
	foreach my $k (grep { $_->{alive} } @keepers)
	{
		$k->{alive} = 0 if waitpid($k->{pid}, POSIX::WNOHANG()) != 0;
	}
	return !grep { $_->{alive} } @keepers;
}

# Stops every keeper still running: SIGINT to its group (pg_autoctl and
# postgres both take it as a fast shutdown), then SIGKILL after 20 s.  A
# postmaster's own children are group leaders of their own; they exit when
# their postmaster is gone.
sub stop_keepers
{
	signal_keeper($_, 'INT') foreach grep { $_->{alive} } @keepers;
	my $deadline = time() + 20;
	usleep(100_000) while !reap_keepers() && time() < $deadline;
	foreach my $k (grep { $_->{alive} } @keepers)
	{
		diag("pg_autoctl run of $k->{name} did not stop within 20 s: killing its group");
		signal_keeper($k, 'KILL');
		waitpid($k->{pid}, 0);
		$k->{alive} = 0;
	}
	return;
}

# Stops the writers still running (after a failure).
sub stop_writers
{
	return unless @writers;
	if (open(my $fh, '>', $stopfile)) { close($fh); }
	my $deadline = time() + 20;
	while (@writers && time() < $deadline)
	{
		@writers = grep { waitpid($_, POSIX::WNOHANG()) == 0 } @writers;
		usleep(100_000) if @writers;
	}
	kill 'KILL', @writers;
	waitpid($_, 0) foreach @writers;
	@writers = ();
	return;
}

END
{
	# (runs before PostgreSQL::Test::Cluster's END, which removes the
	# directories: END blocks run in reverse order of compilation)
	if ($$ == $main_pid)
	{
		my $rc = $?;
		local $SIG{$_} = 'IGNORE' foreach qw(INT TERM HUP);
		stop_writers();
		stop_keepers();
		$? = $rc;
	}
}

# Polls until $check returns true, at most $seconds; returns its last value.
sub wait_until
{
	my ($seconds, $check) = @_;
	my $deadline = time() + $seconds;
	while (1)
	{
		my $v = $check->();
		return $v if $v || time() >= $deadline;
		usleep(200_000);
	}
}

# The role a node's /health reports ('' when it does not answer 200).
sub role_of
{
	my ($kv) = @_;
	my $res = $kv->http('GET', '/health', undef, undef, timeout => 3);
	return '' unless $res->{status} == 200;
	my $h = decode_json_body($res);
	return ref $h eq 'HASH' && defined $h->{role} ? $h->{role} : '';
}

# The formation as the monitor sees it: "node1:primary/primary,..."
# (name:reported/goal state).
sub formation_state
{
	my ($rc, $out) = $monitor->psql('pg_auto_failover',
		"SELECT string_agg(nodename || ':' || reportedstate || '/' || goalstate, ','
		   ORDER BY nodeid) FROM pgautofailover.node");
	return $rc == 0 ? $out : '';
}

# The tail of a node's newest server log, for diagnostics.
sub server_log_tail
{
	my ($node) = @_;
	my @logs = sort glob($node->data_dir . '/log/*');
	return '(no server log)' unless @logs;
	my @lines = split /\n/, slurp_file($logs[-1]);
	my $from = @lines > 30 ? @lines - 30 : 0;
	return "$logs[-1]:\n" . join("\n", @lines[ $from .. $#lines ]);
}

########################################################################
# The monitor.

autoctl($monitor, 'create', 'monitor', '--pgctl', $pg_ctl,
	'--pgdata', $monitor->data_dir, '--pgport', $monitor->port,
	'--hostname', '127.0.0.1', '--auth', 'trust', '--no-ssl');
# pg_autoctl includes its own postgresql-auto-failover.conf at the top of
# postgresql.conf and never rewrites postgresql.conf: lines appended here win
$monitor->append_conf('postgresql.conf',
	join('', map { "$_ = $monitor_settings{$_}\n" } sort keys %monitor_settings));
start_keeper($monitor);
ok( $monitor->poll_query_until('pg_auto_failover',
		"SELECT current_setting('pgautofailover.primary_demote_timeout') = '5s'"),
	'the monitor runs, with the lowered timeouts');

########################################################################
# Node 1: the first node is the primary.  kvserver's lines are appended to
# postgresql.conf after `create` and before the first `run`.

sub create_data_node
{
	my ($node) = @_;
	my $name = $node->name;
	autoctl($node, 'create', 'postgres', '--pgctl', $pg_ctl,
		'--pgdata', $node->data_dir, '--pgport', $node->port,
		'--listen', '127.0.0.1', '--hostname', '127.0.0.1', '--name', $name,
		'--dbname', 'postgres', '--monitor', $monitor_uri,
		'--auth', 'trust', '--no-ssl');
	$node->append_conf(
		'postgresql.conf', qq{
shared_preload_libraries = 'kvserver'
kvserver.port = $http_port{$name}
kvserver.database = 'postgres'
kvserver.anonymous_role = 'kv_anon'
kvserver.request_timeout = '10s'
});
	start_keeper($node);
	return;
}

create_data_node($node1);
ok($node1->poll_query_until('postgres', 'SELECT NOT pg_is_in_recovery()'),
	'node 1 runs, read-write');
# the README's set-up: the anonymous role with the privileges a client needs
$node1->safe_psql(
	'postgres', q{
CREATE ROLE kv_anon NOLOGIN;
CREATE EXTENSION kvserver;
GRANT SELECT, INSERT, UPDATE, DELETE ON kv_store TO kv_anon;
GRANT USAGE ON SEQUENCE kv_store_version_seq TO kv_anon;
});
ok($kv{node1}->wait_for_health(200, 60), 'kvserver answers /health on node 1');

########################################################################
# Node 2: pg_autoctl makes it a standby of node 1 (pg_basebackup, during
# `create`, so node 1's keeper must be running).  The base backup copies
# node 1's postgresql.conf, kvserver.port included: node 2's own lines,
# appended after it, win.  (The standby that `create` starts for a moment
# with node 1's port logs that it could not listen on it.)  pg_basebackup
# asks for a spread checkpoint: one done now leaves it nothing to spread.

$node1->safe_psql('postgres', 'CHECKPOINT');
create_data_node($node2);
my $state = wait_until(120,
	sub { formation_state() eq 'node1:primary/primary,node2:secondary/secondary' });
ok($state, 'the formation is primary + secondary')
  or diag('formation: ' . formation_state());
like($node1->safe_psql('postgres', 'SHOW synchronous_standby_names'),
	qr/^ANY 1 \(pgautofailover_standby_\d+\)$/,
	'node 1 has the standby as its synchronous standby (ANY 1)');
is($node1->safe_psql('postgres', 'SHOW synchronous_commit'), 'on', 'synchronous_commit = on');
ok( $node1->poll_query_until('postgres',
		"SELECT count(*) = 1 FROM pg_stat_replication WHERE sync_state IN ('sync', 'quorum')"),
	'the standby streams as a synchronous (quorum) standby');
ok(wait_until(60, sub { role_of($kv{node2}) eq 'standby' }),
	'kvserver on node 2 says role standby');
is(role_of($kv{node1}), 'primary', 'kvserver on node 1 says role primary');
is($kv{node1}->http('PUT', '/kv/before', 'b')->{status}, 201, 'a PUT on node 1');

########################################################################
# The writers: PUT a<w>-<seq> = v<w>-<seq>, to the node whose /health says
# primary; on anything but a 2xx, look for the primary again (both nodes'
# /health) and retry the next key.  Every 2xx is logged: "<seq> <node>".

my @urls = map { [ $_, $kv{$_}->url('') ] } qw(node1 node2);

sub writer
{
	my ($w) = @_;
	my $pid = fork();
	die "fork: $!" unless defined $pid;
	return $pid if $pid;
	$SIG{PIPE} = 'IGNORE';
	$SIG{$_} = 'DEFAULT' foreach qw(INT TERM HUP);
	open(my $log, '>', "$dir/acked-$w") or POSIX::_exit(2);
	$log->autoflush(1);
	open(my $errlog, '>', "$dir/errors-$w") or POSIX::_exit(2);
	$errlog->autoflush(1);
	my $http = HTTP::Tiny->new(timeout => 15, keep_alive => 0);
	my $target = $urls[0];
	my $seq = 0;
	while (!-e $stopfile)
	{
		if (!defined $target)
		{
			foreach my $u (@urls)
			{
				my $res = $http->request('GET', "$u->[1]/health");
				if ($res->{status} == 200 && $res->{content} =~ /"role"\s*:\s*"primary"/)
				{
					$target = $u;
					last;
				}
			}
			if (!defined $target)
			{
				usleep(100_000);
				next;
			}
		}
		$seq++;
		my $res = $http->request('PUT', "$target->[1]/kv/a$w-$seq",
			{ content => "v$w-$seq" });
		if ($res->{status} =~ /^2\d\d$/)
		{
			print $log "$seq $target->[0]\n";
			next;
		}
		my $why = $res->{content} // '';
		$why =~ s/\s+/ /g;
		printf $errlog "%.3f %s %s %s\n", time(), $target->[0], $res->{status},
		  substr($why, 0, 80);
		undef $target;
		usleep(50_000);
	}
	close($log);
	close($errlog);
	POSIX::_exit(0);
}

# Acknowledged writes so far: [ [key, value, node], ... ]
sub read_acked
{
	my @acked;
	foreach my $w (1 .. $nwriters)
	{
		open(my $log, '<', "$dir/acked-$w") or next;
		while (my $line = <$log>)
		{
			next unless $line =~ /^(\d+) (\S+)\n\z/;    # a complete line only
			push @acked, [ "a$w-$1", "v$w-$1", $2 ];
		}
		close($log);
	}
	return \@acked;
}

@writers = map { writer($_) } 1 .. $nwriters;
ok(wait_until(30, sub { @{ read_acked() } >= 50 }), 'the writers are writing to node 1');
usleep($load_seconds * 1_000_000);

########################################################################
# Kill node 1: its keeper and its postmaster, in one kill of the group.

my ($k1) = grep { $_->{name} eq 'node1' } @keepers;
my $acked_before_kill = scalar @{ read_acked() };
my $t_kill = time();
signal_keeper($k1, 'KILL');
waitpid($k1->{pid}, 0);
$k1->{alive} = 0;
note "killed node 1's process group with $acked_before_kill writes acknowledged";

# No promotion by hand: wait for pg_auto_failover and kvserver.
my $promoted = wait_until(90, sub { role_of($kv{node2}) eq 'primary' });
my $t_promoted = time();
ok($promoted, "node 2's /health says role primary, promoted automatically")
  or diag('formation: ' . formation_state() . "\n" . server_log_tail($node2));
is($node2->safe_psql('postgres', 'SELECT pg_is_in_recovery()'), 'f',
	'node 2 is out of recovery');

# pg_auto_failover keeps the promoted node read-only (stop_replication)
# until the old primary's demote timeout has passed (wait_primary).
my $writable = wait_until(60,
	sub { $kv{node2}->http('PUT', '/kv/probe', 'p', undef, timeout => 5)->{status} =~ /^2/ });
my $t_writable = time();
ok($writable, 'node 2 takes writes');
# (the keeper reports its new state to the monitor right after the change)
ok( wait_until(30,
		sub { formation_state() =~ /node2:(wait_primary|primary)\/(wait_primary|primary)/ }),
	'the monitor has made node 2 the primary')
  or diag('formation: ' . formation_state());
note sprintf('node 2 said primary %.1f s after the kill, took writes after %.1f s',
	$t_promoted - $t_kill, $t_writable - $t_kill);

# let the writers find the new primary and write there for a second
ok( wait_until(30, sub { grep { $_->[2] eq 'node2' } @{ read_acked() } }),
	'the writers follow the primary to node 2');
usleep(1_000_000);
open(my $stop, '>', $stopfile) or die "$stopfile: $!";
close($stop);
foreach my $pid (@writers)
{
	waitpid($pid, 0);
	is($? >> 8, 0, "writer $pid ended normally");
}
@writers = ();

########################################################################
# Every acknowledged write is on the new primary, with its value.

my $acked = read_acked();
my ($present, @lost) = (0);
my %by_node = (node1 => 0, node2 => 0);
foreach my $a (@$acked)
{
	my ($key, $value, $node) = @$a;
	$by_node{$node}++;
	my $res = $kv{node2}->http('GET', "/kv/$key");
	if ($res->{status} == 200 && $res->{content} eq $value)
	{
		$present++;
	}
	else
	{
		push @lost, "$key (acknowledged by $node; GET: $res->{status} "
		  . substr($res->{content} // '', 0, 60) . ')';
	}
}
my $n = scalar @$acked;
cmp_ok($by_node{node1}, '>=', 50, "acknowledged writes by node 1: $by_node{node1}");
cmp_ok($by_node{node2}, '>', 0, "acknowledged writes by node 2: $by_node{node2}");
is($present, $n, "every acknowledged write is served by node 2 with its value ($n)");
is(scalar(@lost), 0, 'no acknowledged write was lost')
  or diag('lost: ' . join("\n", @lost[ 0 .. ($#lost > 20 ? 20 : $#lost) ]));

# the errors the writers saw, by node and status, with the first answer
my (%errors, %example);
foreach my $w (1 .. $nwriters)
{
	open(my $fh, '<', "$dir/errors-$w") or next;
	while (my $line = <$fh>)
	{
		next unless $line =~ /^\S+ (\S+) (\d+) ?(.*)$/;
		$errors{"$1 $2"}++;
		$example{"$1 $2"} //= $3;
	}
	close($fh);
}
note "acknowledged: $n (node 1: $by_node{node1}, node 2: $by_node{node2}); present: $present; lost: "
  . scalar(@lost);
note "writers' errors: $_ x $errors{$_} (e.g. $example{$_})" foreach sort keys %errors;

# and the new primary takes a PUT and serves it
my $res = $kv{node2}->http('PUT', '/kv/after-failover', 'still here');
is($res->{status}, 201, 'a PUT on the new primary: 201') or diag($res->{content});
$res = $kv{node2}->http('GET', '/kv/after-failover');
is($res->{content}, 'still here', 'and a GET returns it');
is($kv{node2}->http('GET', '/kv/before')->{content}, 'b', 'the write made before the load is there');

stop_keepers();
done_testing();
