
# Copyright (c) kvserver authors

# The executor pool (kvserver.executors): the HTTP requests' SQL runs in
# executor processes, one of which takes reads only.
#
# 1. The pool is there: kvserver.executors processes in pg_stat_activity.
# 2. A write's commit held open (its synchronous standby is stopped): the
#    PUTs wait, while GET misses, listings, HEAD and /health are answered;
#    the PUTs complete once the standby is back.
# 3. An executor that exits (pg_terminate_backend) is replaced: what it
#    held is answered with 503, the pool is whole again, requests served.
# 4. kill -9 of an executor under 8 HTTP writers: the cluster restarts
#    (PostgreSQL's crash recovery), the pool comes back, and every
#    acknowledged write is there.
# 5. Fast shutdown with work in every executor (a table lock keeps reads
#    and writes retrying): every client gets an answer, the stop completes.
# 6. kvserver.executors = 0 serves on the worker's main thread; too few
#    max_worker_processes for the pool is logged and served anyway.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::RealBin/../lib";

use HTTP::Tiny;
use KvServerTest;
use POSIX ();
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);

my $dir = PostgreSQL::Test::Utils::tempdir();

my $kv = KvServerTest->new(
	'executors',
	conf => join("\n",
		"wal_level = replica",
		"max_wal_senders = 4",
		"synchronous_commit = on",
		"restart_after_crash = on",
		"kvserver.request_timeout = '30s'",
		""));
my $node = $kv->node;

sub executor_pids
{
	my ($n) = @_;
	return split /\n/, $n->safe_psql('postgres',
		"SELECT pid FROM pg_stat_activity WHERE backend_type = 'kvserver executor' ORDER BY pid");
}

# Wait until $want executors run; returns their pids.
sub wait_for_pool
{
	my ($n, $want, $seconds) = @_;
	my $deadline = time() + $seconds;
	my @pids;
	while (time() < $deadline)
	{
		@pids = executor_pids($n);
		return @pids if @pids == $want;
		usleep(100_000);
	}
	return @pids;
}

# A request in a child process; its status and body land in a file.
sub background_request
{
	my ($method, $path, $body, $tag) = @_;
	my $pid = fork();
	die "fork: $!" unless defined $pid;
	return $pid if $pid;
	my $t0 = time();
	my $res = HTTP::Tiny->new(timeout => 60, keep_alive => 0)
	  ->request($method, $kv->url($path), defined $body ? { content => $body } : {});
	open(my $fh, '>', "$dir/$tag") or POSIX::_exit(2);
	print $fh "$res->{status}\n$res->{content} (sent at $t0, answered at " . time() . ")";
	close($fh);
	POSIX::_exit(0);
}

sub result_of
{
	my ($tag) = @_;
	open(my $fh, '<', "$dir/$tag") or return undef;
	chomp(my $status = <$fh>);
	close($fh);
	return $status;
}

subtest 'the pool' => sub {
	is($node->safe_psql('postgres', 'SHOW kvserver.executors'), '3',
		'kvserver.executors defaults to 3');
	my @pids = wait_for_pool($node, 3, 30);
	is(scalar(@pids), 3, 'three executor processes run');
	my $r = $kv->http('PUT', '/kv/p', 'one');
	is($r->{status}, 201, 'a PUT through the pool');
	$r = $kv->http('GET', '/kv/p');
	is($r->{content}, 'one', 'a GET through the pool');
	done_testing();
};

# A synchronous standby of the node, started.
my $backup = 'b1';
$node->backup($backup);
my $standby = PostgreSQL::Test::Cluster->new('executors_standby');
$standby->init_from_backup($node, $backup, has_streaming => 1);
$standby->append_conf('postgresql.conf',
	'kvserver.port = ' . PostgreSQL::Test::Cluster::get_free_port() . "\n");
$standby->start;
$node->safe_psql('postgres', "ALTER SYSTEM SET synchronous_standby_names = '*'");
$node->safe_psql('postgres', 'SELECT pg_reload_conf()');
$node->poll_query_until('postgres',
	"SELECT sync_state = 'sync' FROM pg_stat_replication")
  or die 'the standby never became synchronous';

subtest 'reads are answered while commits wait for a stopped synchronous standby' => sub {
	# rows written by SQL are not in the cache: GETs of them are misses
	$node->safe_psql('postgres',
		"INSERT INTO kv_store (key, value) SELECT 'm' || i, convert_to('v' || i, 'UTF8') FROM generate_series(1, 50) i");
	$standby->stop('immediate');

	my @writers = map { background_request('PUT', "/kv/w$_", "x$_", "put$_") } 1 .. 4;
	my $deadline = time() + 30;
	my $waiting = 0;
	while (time() < $deadline && $waiting < 2)
	{
		$waiting = $node->safe_psql('postgres',
			"SELECT count(*) FROM pg_stat_activity WHERE wait_event = 'SyncRep' AND backend_type = 'kvserver executor'");
		usleep(100_000);
	}
	is($waiting, 2, 'both write executors wait for the standby in their commit');

	my $ua = HTTP::Tiny->new(timeout => 10, keep_alive => 0);
	my ($misses, $ok) = (0, 0);
	foreach my $i (1 .. 50)
	{
		my $r = $ua->get($kv->url("/kv/m$i"));
		$ok++ if $r->{status} == 200 && $r->{content} eq "v$i";
		$misses++ if ($r->{headers}{'x-cache'} || '') eq 'MISS';
	}
	is($ok, 50, 'all 50 GETs answered with their values meanwhile');
	is($misses, 50, 'and they were cache misses, served by the read executor');
	my $r = $ua->get($kv->url('/kv/?prefix=m&limit=5'));
	is($r->{status}, 200, 'a listing is answered');
	like($r->{content}, qr/"m1"/, 'with the keys');
	$r = $ua->request('HEAD', $kv->url('/kv/m7'));
	is($r->{status}, 200, 'HEAD is answered');
	$r = $ua->get($kv->url('/health'));
	is($r->{status}, 200, '/health is answered');
	is(scalar(grep { defined result_of("put$_") } 1 .. 4), 0,
		'no PUT has been answered: none is confirmed');

	$standby->start;
	waitpid($_, 0) foreach @writers;
	is(join(',', map { result_of("put$_") } 1 .. 4), '201,201,201,201',
		'the PUTs are answered 201 once the standby confirms');
	is($kv->http('GET', '/kv/w3')->{content}, 'x3', 'and their values are there');
	done_testing();
};

$node->safe_psql('postgres', "ALTER SYSTEM SET synchronous_standby_names = ''");
$node->safe_psql('postgres', 'SELECT pg_reload_conf()');

subtest 'an executor that exits is replaced' => sub {
	my @before = wait_for_pool($node, 3, 30);
	my $victim = $before[1];
	$node->safe_psql('postgres', "SELECT pg_terminate_backend($victim)");
	my $deadline = time() + 30;
	my @after;
	while (time() < $deadline)
	{
		@after = executor_pids($node);
		last if @after == 3 && !grep { $_ == $victim } @after;
		usleep(100_000);
	}
	is(scalar(@after), 3, 'the pool is whole again');
	ok(!grep({ $_ == $victim } @after), 'with a new process');
	my $ok = 0;
	foreach my $i (1 .. 20)
	{
		$ok++ if $kv->http('PUT', "/kv/after-exit-$i", "v$i")->{status} == 201;
		$ok++ if $kv->http('GET', "/kv/after-exit-$i")->{content} eq "v$i";
	}
	is($ok, 40, 'writes and reads are served');
	ok($node->log_contains(qr/kvserver executor \d exited/), 'the exit was logged');
	done_testing();
};

# One writer: PUT e<w>-<seq> until the stop file appears; logs each 2xx.
sub writer
{
	my ($w, $stopfile) = @_;
	my $pid = fork();
	die "fork: $!" unless defined $pid;
	return $pid if $pid;
	$SIG{PIPE} = 'IGNORE';
	open(my $log, '>>', "$dir/acked-$w") or POSIX::_exit(2);
	$log->autoflush(1);
	my $http = HTTP::Tiny->new(timeout => 30, keep_alive => 0);
	my $seq = 0;
	while (!-e $stopfile)
	{
		$seq++;
		my $res = $http->request('PUT', $kv->url("/kv/e$w-$seq"), { content => "v$seq" });
		if ($res->{status} =~ /^2/)
		{
			print $log "$seq\n";
		}
		else
		{
			usleep(50_000);
		}
	}
	close($log);
	POSIX::_exit(0);
}

subtest 'kill -9 of an executor under load: nothing acknowledged is lost' => sub {
	my @pids = wait_for_pool($node, 3, 30);
	my $stopfile = "$dir/stop-kill";
	my @writers = map { writer($_, $stopfile) } 1 .. 8;
	usleep(1_500_000);
	kill 'KILL', $pids[2];
	ok($kv->wait_for_health(200, 60), 'kvserver answers again after the crash restart');
	usleep(1_500_000);
	open(my $fh, '>', $stopfile) or die;
	close($fh);
	waitpid($_, 0) foreach @writers;

	my %present = map { $_ => 1 } split /\n/,
	  $node->safe_psql('postgres', "SELECT key FROM kv_store WHERE key LIKE 'e%'");
	my ($n, @lost) = (0);
	foreach my $w (1 .. 8)
	{
		open(my $log, '<', "$dir/acked-$w") or next;
		while (my $seq = <$log>)
		{
			chomp $seq;
			$n++;
			push @lost, "e$w-$seq" unless $present{"e$w-$seq"};
		}
		close($log);
	}
	ok($n > 50, "$n acknowledged writes");
	is(scalar(@lost), 0, 'every acknowledged write is there')
	  or diag("lost: @lost[0 .. ($#lost > 10 ? 10 : $#lost)]");
	my @after = wait_for_pool($node, 3, 30);
	is(scalar(@after), 3, 'the pool is back');
	ok($node->log_contains(qr/was terminated by signal 9/), 'PostgreSQL restarted after the crash');
	done_testing();
};

subtest 'fast shutdown with work in every executor' => sub {
	wait_for_pool($node, 3, 30);
	$node->safe_psql('postgres',
		"INSERT INTO kv_store (key, value) SELECT 's' || i, 'x' FROM generate_series(1, 20) i");
	# a table lock: every read and write meets it and is retried meanwhile
	my $locker = $node->background_psql('postgres');
	$locker->query_safe('BEGIN; LOCK TABLE kv_store IN ACCESS EXCLUSIVE MODE');
	my @clients;
	foreach my $i (1 .. 6)
	{
		push @clients, background_request('GET', "/kv/s$i", undef, "sget$i");
		push @clients, background_request('PUT', "/kv/s$i", 'y', "sput$i");
	}
	# every client has sent its request (forks take a moment), and every
	# executor holds retried work
	usleep(2_000_000);
	my $deadline = time() + 20;
	my $busy = 0;
	while (time() < $deadline && $busy < 3)
	{
		$busy = $node->safe_psql('postgres',
			"SELECT count(DISTINCT pid) FROM pg_locks WHERE relation = 'kv_store'::regclass AND NOT granted");
		usleep(20_000);
	}
	ok($busy >= 2, "the executors are waiting for the lock ($busy seen at once)");
	my $t0 = time();
	note "stopping at $t0";
	$node->stop('fast');
	my $took = time() - $t0;
	waitpid($_, 0) foreach @clients;
	my @statuses = map { (result_of("sget$_"), result_of("sput$_")) } 1 .. 6;
	is(scalar(grep { defined $_ && /^(200|201|503)$/ } @statuses), 12,
		'every client got an answer (' . join(',', map { $_ // 'none' } @statuses) . ')')
	  or diag(join("\n", map { slurp_file("$dir/$_") } grep { -e "$dir/$_" } map { ("sget$_", "sput$_") } 1 .. 6));
	note sprintf('fast shutdown took %.1f s', $took);
	eval { $locker->quit };
	done_testing();
};

subtest 'kvserver.executors = 0, and too few worker processes' => sub {
	$node->append_conf('postgresql.conf', "kvserver.executors = 0\n");
	$node->start;
	ok($kv->wait_for_health(200, 30), 'kvserver answers with no executors');
	is(scalar(executor_pids($node)), 0, 'no executor runs');
	is($kv->http('PUT', '/kv/zero', 'z')->{status}, 201, 'a PUT on the main thread');
	is($kv->http('GET', '/kv/zero')->{content}, 'z', 'and a GET');
	$node->stop('fast');

	# the worker, one executor, and nothing left for the other two
	$node->append_conf('postgresql.conf',
		"kvserver.executors = 3\nmax_worker_processes = 2\n");
	$node->start;
	ok($kv->wait_for_health(200, 30), 'kvserver answers');
	is($kv->http('PUT', '/kv/few', 'f')->{status}, 201, 'a PUT');
	is($kv->http('GET', '/kv/few')->{content}, 'f', 'and a GET');
	ok($node->log_contains(qr/could not start executor \d: no background worker slot is free/),
		'the missing executors are logged');
	done_testing();
};

done_testing();
