
# Copyright (c) kvserver authors

# Zero acknowledged writes lost when a primary fails over to a synchronous
# standby.  A 2xx for a write means the write is as durable as
# synchronous_commit promises; PostgreSQL ends its wait for the synchronous
# standby without an error when the postmaster dies, so the worker must
# check that the standby confirmed the commit before it answers.
#
# 1. The synchronous standby is stopped, a PUT waits for it, the primary's
#    postmaster is killed: PostgreSQL ends the wait without an error and the
#    commit is local only; the PUT must not get a 2xx (it gets a 503, or no
#    answer when the worker dies first).
# 2. Three failover cycles: 16 HTTP writers on the primary
#    (synchronous_commit = remote_apply, the standby synchronous), kill -9
#    of the primary's postmaster, promotion of the standby; every
#    acknowledged write must be on the promoted node.  The promoted node is
#    the next cycle's primary, with a new standby made from a fresh base
#    backup of it.

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

my $nwriters = 16;
my $load_seconds = 3;
my $dir = PostgreSQL::Test::Utils::tempdir();

my $primary_kv = KvServerTest->new(
	'sync_primary',
	conf => join("\n",
		"fsync = on",
		"wal_level = replica",
		"max_wal_senders = 10",
		"wal_keep_size = '256MB'",
		"synchronous_commit = remote_apply",
		"kvserver.request_timeout = '20s'",
		""));

# synchronous_standby_names on a node, applied by a reload.
sub set_sync_names
{
	my ($node, $names) = @_;
	$node->safe_psql('postgres',
		"ALTER SYSTEM SET synchronous_standby_names = '$names'");
	$node->safe_psql('postgres', 'SELECT pg_reload_conf()');
	return;
}

# A streaming standby of $kv's node, with its own HTTP port; started.
my $standby_count = 0;

sub make_standby
{
	my ($kv) = @_;
	my $primary = $kv->node;
	$standby_count++;
	my $backup = "b$standby_count";
	$primary->backup($backup);
	my $standby = PostgreSQL::Test::Cluster->new("sync_standby$standby_count");
	$standby->init_from_backup($primary, $backup, has_streaming => 1);
	my $port = PostgreSQL::Test::Cluster::get_free_port();
	$standby->append_conf('postgresql.conf', "kvserver.port = $port\n");
	$standby->start;
	set_sync_names($primary, '*');
	my $skv = bless { node => $standby, host => '127.0.0.1', port => $port,
		anonymous_role => 'kv_anon' }, 'KvServerTest';
	# the standby must be the synchronous one before the test relies on it
	my $deadline = time() + 60;
	while (time() < $deadline)
	{
		my $state = $primary->safe_psql('postgres',
			"SELECT sync_state FROM pg_stat_replication WHERE application_name = '"
			  . $standby->name . "'");
		return $skv if $state eq 'sync';
		usleep(100_000);
	}
	die "standby " . $standby->name . " never became synchronous\n";
}

# Read-your-writes across nodes: with the standby synchronous and
# synchronous_commit = remote_apply, a GET on the standby sent right after
# the primary's 2xx returns the new value, every time, whether the standby
# had the old value cached or not, and whichever way the primary wrote.
sub read_your_writes
{
	my ($kv, $skv) = @_;
	my $node = $kv->node;
	my $ua = HTTP::Tiny->new(keep_alive => 1, timeout => 30);
	my $rounds = 200;
	my ($checked, @stale) = (0);
	my $standby_get = sub {
		my ($key) = @_;
		my $r = $ua->request('GET', $skv->url("/kv/$key"));
		return ($r->{status}, $r->{content}, $r->{headers}{'x-cache'} || '');
	};
	my $expect = sub {
		my ($how, $key, $want) = @_;
		my ($status, $body) = $standby_get->($key);
		my $got = $status == 200 ? $body : "($status)";
		$checked++;
		push @stale, "$how $key: got $got, want $want" if $got ne $want;
	};
	my $hits_before = 0;
	foreach my $i (1 .. $rounds)
	{
		my $key = "ryw-$i";
		my $r = $ua->request('PUT', $kv->url("/kv/$key"), { content => "a$i" });
		die "PUT $key: $r->{status}" unless $r->{status} =~ /^20[01]$/;
		$expect->('HTTP PUT (new key)', $key, "a$i");
		# three keys in four have their old value cached on the standby
		if ($i % 4)
		{
			my (undef, undef, $cache) = $standby_get->($key);
			$hits_before++ if $cache eq 'HIT';
		}
		# an overwrite over HTTP
		$r = $ua->request('PUT', $kv->url("/kv/$key"), { content => "b$i" });
		die "PUT $key: $r->{status}" unless $r->{status} == 200;
		$expect->('HTTP PUT (overwrite)', $key, "b$i");
		# the SQL paths: kv_put, then a plain UPDATE
		$node->safe_psql('postgres', "SELECT kv_put('$key', 'c$i')");
		$expect->('kv_put', $key, "c$i");
		$node->safe_psql('postgres',
			"UPDATE kv_store SET value = 'd$i' WHERE key = '$key'");
		$expect->('UPDATE', $key, "d$i");
		# and deletes
		if ($i % 2)
		{
			$r = $ua->request('DELETE', $kv->url("/kv/$key"));
			die "DELETE $key: $r->{status}" unless $r->{status} =~ /^20[04]$/;
		}
		else
		{
			$node->safe_psql('postgres', "DELETE FROM kv_store WHERE key = '$key'");
		}
		$expect->('DELETE', $key, '(404)');
	}
	is(scalar(@stale), 0,
		"read-your-writes on the synchronous standby: $checked reads right after the primary's answer, none stale")
	  or diag(join("\n", @stale[ 0 .. ($#stale > 20 ? 20 : $#stale) ]));
	ok($hits_before > $rounds / 2,
		"the standby served the old values from its cache before the writes ($hits_before hits)");
	note "read-your-writes: $checked standby reads checked, " . scalar(@stale) . ' stale';
	return;
}

subtest 'a write whose synchronous standby never confirmed is not acknowledged' => sub {
	my $kv = $primary_kv;
	my $skv = make_standby($kv);
	my $r = $kv->http('PUT', '/kv/confirmed', 'v1');
	is($r->{status}, 201, 'a PUT with the standby up: 201');
	$kv->node->wait_for_catchup($skv->node, 'replay');
	is($skv->node->safe_psql('postgres',
		"SELECT convert_from(value, 'UTF8') FROM kv_store WHERE key = 'confirmed'"),
		'v1', 'and the standby has it');

	read_your_writes($kv, $skv);

	# stop the synchronous standby: the next commit waits for it forever
	$skv->node->stop('immediate');
	my $out = "$dir/pending.out";
	my $pid = fork();
	die "fork: $!" unless defined $pid;
	if ($pid == 0)
	{
		my $res = HTTP::Tiny->new(timeout => 60)
		  ->request('PUT', $kv->url('/kv/unconfirmed'), { content => 'v2' });
		open(my $fh, '>', $out) or POSIX::_exit(2);
		my $why = $res->{status} == 599 ? $res->{content} : '';
		$why =~ s/\s+/ /g;
		print $fh "$res->{status} $why\n";
		close($fh);
		POSIX::_exit(0);
	}
	# wait until the worker's commit is waiting for the standby
	my $waiting = 0;
	my $deadline = time() + 30;
	while (time() < $deadline)
	{
		$waiting = $kv->node->safe_psql('postgres',
			"SELECT count(*) FROM pg_stat_activity WHERE wait_event = 'SyncRep'");
		last if $waiting > 0;
		usleep(100_000);
	}
	ok($waiting > 0, 'the PUT is waiting for the synchronous standby');
	$kv->node->kill9;
	waitpid($pid, 0);
	open(my $fh, '<', $out) or die "no result from the client: $!";
	chomp(my $status = <$fh>);
	close($fh);
	unlike($status, qr/^2/, "the waiting PUT was not acknowledged (got $status)");
	note "the client got $status";

	# the old primary is gone for good; the standby takes over
	$skv->node->start;
	$skv->node->promote;
	ok($skv->wait_for_health(200, 60), 'the promoted standby serves HTTP');
	set_sync_names($skv->node, '');
	$primary_kv = $skv;
	done_testing();
};

# One writer: PUT f<cycle>-<w>-<seq> until the stop file appears, one
# connection per request; appends "<seq>\n" to its log for every 2xx.
sub writer
{
	my ($kv, $cycle, $w, $stopfile) = @_;
	my $pid = fork();
	die "fork: $!" unless defined $pid;
	return $pid if $pid;
	$SIG{PIPE} = 'IGNORE';
	open(my $log, '>>', "$dir/acked-$cycle-$w") or POSIX::_exit(2);
	$log->autoflush(1);
	my $http = HTTP::Tiny->new(timeout => 30, keep_alive => 0);
	my $seq = 0;
	while (!-e $stopfile)
	{
		$seq++;
		my $res = $http->request('PUT', $kv->url("/kv/f$cycle-$w-$seq"),
			{ content => "v$seq" });
		if ($res->{status} =~ /^2/)
		{
			print $log "$seq\n";
		}
		elsif ($res->{status} == 599)
		{
			usleep(50_000);    # the node is gone: do not spin
		}
	}
	close($log);
	POSIX::_exit(0);
}

# Reads the writers' logs of a cycle and the promoted node's keys: returns
# the number of acknowledged writes and, per writer, the acknowledged keys
# missing there (in the order they were written).
sub count_lost
{
	my ($skv, $cycle) = @_;
	my %present = map { $_ => 1 } split /\n/,
	  $skv->node->safe_psql('postgres',
		"SELECT key FROM kv_store WHERE key LIKE 'f$cycle-%'");
	my ($n, %lost) = (0);
	foreach my $w (1 .. $nwriters)
	{
		open(my $log, '<', "$dir/acked-$cycle-$w") or next;
		while (my $seq = <$log>)
		{
			chomp $seq;
			$n++;
			push @{ $lost{$w} }, $seq unless $present{"f$cycle-$w-$seq"};
		}
		close($log);
	}
	return ($n, \%lost);
}

my $total_acked = 0;
foreach my $cycle (1 .. 3)
{
	subtest "failover cycle $cycle: every acknowledged write survives" => sub {
		my $kv = $primary_kv;
		my $skv = make_standby($kv);
		my $stopfile = "$dir/stop-$cycle";
		my @pids = map { writer($kv, $cycle, $_, $stopfile) } 1 .. $nwriters;

		# load, then kill the primary's postmaster in the middle of it
		my $deadline = time() + 30;
		my $acked = 0;
		while (time() < $deadline && $acked == 0)
		{
			usleep(100_000);
			$acked = $kv->node->safe_psql('postgres',
				"SELECT count(*) FROM kv_store WHERE key LIKE 'f$cycle-%'");
		}
		ok($acked > 0, 'the writers are writing');
		usleep($load_seconds * 1_000_000);
		$kv->node->kill9;
		$skv->node->promote;
		ok($skv->wait_for_health(200, 60), 'the promoted standby serves HTTP');

		# the writers may now reach nobody; stop them
		open(my $fh, '>', $stopfile) or die;
		close($fh);
		waitpid($_, 0) foreach @pids;

		my ($n, $lost) = count_lost($skv, $cycle);
		my @lost = map {
			my $w = $_;
			map { "f$cycle-$w-$_" } @{ $lost->{$w} }
		} sort keys %$lost;
		$total_acked += $n;
		ok($n > 100, "$n acknowledged writes in this cycle");
		is(scalar(@lost), 0, 'no acknowledged write was lost')
		  or diag('lost: ' . join(' ', @lost[ 0 .. ($#lost > 20 ? 20 : $#lost) ]));
		note "cycle $cycle: $n acknowledged, " . scalar(@lost) . ' lost';

		# the promoted node serves writes as the next cycle's primary
		set_sync_names($skv->node, '');
		my $r = $skv->http('PUT', "/kv/after-$cycle", 'x');
		like($r->{status}, qr/^20[01]$/, 'the promoted node takes writes');
		$primary_kv = $skv;
		done_testing();
	};
}
note "acknowledged writes checked over 3 cycles: $total_acked";

# The same with an asynchronous standby, to measure what a failover to it
# loses: a commit is acknowledged once it is flushed locally, so the writes
# the standby had not received yet are gone.  What survives is a prefix of
# the primary's history: for each writer, a lost write is never followed by
# a surviving later one.
subtest 'failover to an asynchronous standby loses only the latest writes' => sub {
	my $cycle = 'async';
	my $kv = $primary_kv;
	$kv->node->safe_psql('postgres',
		"ALTER SYSTEM SET synchronous_commit = 'on'");
	my $skv = make_standby($kv);
	set_sync_names($kv->node, '');
	my $deadline = time() + 30;
	my $state = '';
	while (time() < $deadline && $state ne 'async')
	{
		usleep(100_000);
		$state = $kv->node->safe_psql('postgres',
			"SELECT sync_state FROM pg_stat_replication WHERE application_name = '"
			  . $skv->node->name . "'");
	}
	is($state, 'async', 'the standby is asynchronous');

	my $stopfile = "$dir/stop-$cycle";
	my @pids = map { writer($kv, $cycle, $_, $stopfile) } 1 .. $nwriters;
	my $acked = 0;
	$deadline = time() + 30;
	while (time() < $deadline && $acked == 0)
	{
		usleep(100_000);
		$acked = $kv->node->safe_psql('postgres',
			"SELECT count(*) FROM kv_store WHERE key LIKE 'f$cycle-%'");
	}
	ok($acked > 0, 'the writers are writing');
	usleep($load_seconds * 1_000_000);
	$kv->node->kill9;
	$skv->node->promote;
	ok($skv->wait_for_health(200, 60), 'the promoted standby serves HTTP');
	open(my $fh, '>', $stopfile) or die;
	close($fh);
	waitpid($_, 0) foreach @pids;

	my ($n, $lost) = count_lost($skv, $cycle);
	my %present = map { $_ => 1 } split /\n/,
	  $skv->node->safe_psql('postgres',
		"SELECT key FROM kv_store WHERE key LIKE 'f$cycle-%'");
	my ($nlost, @holes) = (0);
	foreach my $w (sort keys %$lost)
	{
		my @seqs = @{ $lost->{$w} };
		$nlost += @seqs;
		# a surviving write after the first lost one would be a hole
		my $first = $seqs[0];
		my $max = (sort { $b <=> $a } map { /-(\d+)$/ ? $1 : () }
			  grep { /^f$cycle-$w-/ } keys %present)[0] || 0;
		push @holes, "writer $w lost $first but kept $max" if $max > $first;
	}
	ok($n > 100, "$n acknowledged writes");
	is(scalar(@holes), 0, 'what was lost is the tail of each writer\'s writes')
	  or diag(join("\n", @holes));
	note "asynchronous standby: $n acknowledged, $nlost lost on failover";
	$primary_kv = $skv;
	done_testing();
};

done_testing();
