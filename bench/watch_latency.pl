#!/usr/bin/perl

# Copyright (c) kvserver authors

# make bench-watch: wake-up latency of watches, commit to response, with 100
# watchers, on a scratch node (KvServerTest, as the TAP tests make them).
#
#   one key each   100 watchers GET /kv/w/<i>?wait=60s with If-None-Match,
#                  each on its own key; ROUNDS times, one of the keys is
#                  changed (plain SQL UPDATE, autocommit) and only its watcher
#                  must answer; the others keep waiting (any other answer is
#                  counted as spurious)
#   same key       100 watchers of one key; ROUNDS/10 updates, each waking
#                  all 100
#   prefix         100 watchers of GET /kv/?prefix=p/<i>/&wait=60s&index=N;
#                  a key under one prefix is updated per round
#   idle CPU       the worker's CPU time (utime + stime) over IDLE_SECS with
#                  100 watchers waiting and nothing written, and with none
#
# Latency is measured on this machine's clock, from the moment the writer's
# UPDATE returned (the commit is done: "from commit") and from the moment it
# was sent ("from write start", which also counts the UPDATE itself).  The
# watchers' answers arrive on 100 sockets read with IO::Select.
#
# Run (as root, from the repository, after make install):
#   make bench-watch        [ROUNDS=200 IDLE_SECS=10 WATCHERS=100]
# Writes the table to bench/out/watch.txt, the figures to bench/out/watch.json.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::RealBin/../test/lib";

use IO::Select;
use JSON::PP;
use KvServerTest;
use KvWatch;
use Time::HiRes qw(time usleep);

my $rounds = $ENV{ROUNDS} || 200;
my $idle_secs = $ENV{IDLE_SECS} || 10;
my $n = $ENV{WATCHERS} || 100;

my $kv = KvServerTest->new('bench_watch', conf => "log_min_messages = warning\n");
my $node = $kv->node;
my $psql = $node->background_psql('postgres');
my %results;
my @table;

# PostgreSQL::Test::Utils sends STDOUT to its log: keep the table for a file.
sub report
{
	my ($fmt, @args) = @_;
	my $line = sprintf($fmt, @args);
	push @table, $line;
	print $line;
}

sub etag { return $kv->http('GET', "/kv/$_[0]")->{headers}{etag}; }

sub pct
{
	my ($p, @v) = @_;
	@v = sort { $a <=> $b } @v;
	return undef unless @v;
	my $i = int($p / 100 * $#v + 0.5);
	return $v[$i];
}

sub summary
{
	my ($name, $from_commit, $from_start, %extra) = @_;
	my %s = (
		samples => scalar(@$from_commit),
		p50_ms_from_commit => 1000 * pct(50, @$from_commit),
		p99_ms_from_commit => 1000 * pct(99, @$from_commit),
		max_ms_from_commit => 1000 * pct(100, @$from_commit),
		p50_ms_from_write_start => 1000 * pct(50, @$from_start),
		p99_ms_from_write_start => 1000 * pct(99, @$from_start),
		%extra);
	$results{$name} = \%s;
	report "%-12s %5d samples  from commit p50 %6.2f ms  p99 %6.2f ms  max %6.2f ms   from write start p50 %6.2f  p99 %6.2f%s\n",
	  $name, $s{samples}, $s{p50_ms_from_commit}, $s{p99_ms_from_commit},
	  $s{max_ms_from_commit}, $s{p50_ms_from_write_start},
	  $s{p99_ms_from_write_start},
	  join('', map { "  $_ $extra{$_}" } sort keys %extra);
}

# Write with plain SQL; returns (sent, returned) times.
sub sql_write
{
	my ($sql) = @_;
	my $t0 = time();
	$psql->query_safe($sql);
	return ($t0, time());
}

# Wait for one watch's answer; its arrival time (or undef after 10 s).
sub arrival
{
	my ($w) = @_;
	return undef unless KvWatch::answered_within($w, 10);
	my $t = time();
	KvWatch::finish($w);
	return $t;
}

# --- one key each ---------------------------------------------------------
$psql->query_safe("SELECT kv_put('w/' || i, 'v0') FROM generate_series(0, $n - 1) i");
my @w = map { KvWatch::start($kv, "/kv/w/$_?wait=60s", 'If-None-Match' => etag("w/$_")) } 0 .. $n - 1;
usleep(500_000);
my (@fc, @fs);
my $spurious = 0;
for my $r (1 .. $rounds)
{
	my $i = int(rand($n));
	my ($t0, $t1) = sql_write("UPDATE kv_store SET value = 'r$r' WHERE key = 'w/$i'");
	my $t = arrival($w[$i]);
	die "watcher $i was not woken within 10 s\n" unless defined $t;
	push @fc, $t - $t1;
	push @fs, $t - $t0;
	my @others = grep { $_ != $i && KvWatch::answered_within($w[$_], 0) } 0 .. $n - 1;
	$spurious += @others;
	$w[$_] = KvWatch::start($kv, "/kv/w/$_?wait=60s", 'If-None-Match' => etag("w/$_")) for ($i, @others);
	usleep(5_000);
}
summary('one key each', \@fc, \@fs, spurious => $spurious);

# --- idle CPU, with the watchers of the last run waiting ------------------
sub worker_cpu_ticks
{
	my $pid = $kv->worker_pid;
	open(my $fh, '<', "/proc/$pid/stat") or die "no /proc/$pid/stat";
	my @f = split(' ', (split(/\)/, <$fh>))[-1]);
	close $fh;
	return $f[11] + $f[12];		# utime, stime (fields 14 and 15)
}
my $hz = `getconf CLK_TCK` + 0 || 100;
my $c0 = worker_cpu_ticks();
sleep($idle_secs);
my $busy = (worker_cpu_ticks() - $c0) / $hz / $idle_secs * 100;
KvWatch::finish($_) for map { $kv->http('PUT', "/kv/w/$_", 'done'); $w[$_] } 0 .. $n - 1;
$c0 = worker_cpu_ticks();
sleep($idle_secs);
my $none = (worker_cpu_ticks() - $c0) / $hz / $idle_secs * 100;
$results{idle_cpu} = { watchers => $n, percent_of_a_core => $busy, without_watchers => $none };
report "idle CPU     worker with %d watchers waiting: %.2f%% of a core; with none: %.2f%%\n",
  $n, $busy, $none;

# --- same key -------------------------------------------------------------
$kv->http('PUT', '/kv/same', 's0');
(@fc, @fs) = ();
for my $r (1 .. int($rounds / 10) || 1)
{
	my $tag = etag('same');
	@w = map { KvWatch::start($kv, '/kv/same?wait=60s', 'If-None-Match' => $tag) } 1 .. $n;
	usleep(300_000);
	my ($t0, $t1) = sql_write("UPDATE kv_store SET value = 's$r' WHERE key = 'same'");
	my $sel = IO::Select->new(map { $_->{sock} } @w);
	my %pending = map { ($_->{sock} => $_) } @w;
	while (%pending)
	{
		my @ready = $sel->can_read(10) or die "watchers of one key not woken\n";
		my $t = time();
		for my $s (@ready)
		{
			push @fc, $t - $t1;
			push @fs, $t - $t0;
			KvWatch::finish(delete $pending{$s});
			$sel->remove($s);
		}
	}
}
summary('same key', \@fc, \@fs);

# --- prefixes -------------------------------------------------------------
$psql->query_safe("SELECT kv_put('p/' || i || '/k', 'v') FROM generate_series(0, $n - 1) i");
sub prefix_watch
{
	my ($i) = @_;
	my $ix = $kv->http('GET', "/kv/?prefix=p/$i/")->{headers}{'x-kv-index'};
	return KvWatch::start($kv, "/kv/?prefix=p/$i/&wait=60s&index=$ix");
}
@w = map { prefix_watch($_) } 0 .. $n - 1;
usleep(500_000);
(@fc, @fs) = ();
$spurious = 0;
for my $r (1 .. $rounds)
{
	my $i = int(rand($n));
	my ($t0, $t1) = sql_write("UPDATE kv_store SET value = 'r$r' WHERE key = 'p/$i/k'");
	my $t = arrival($w[$i]);
	die "prefix watcher $i was not woken within 10 s\n" unless defined $t;
	push @fc, $t - $t1;
	push @fs, $t - $t0;
	my @others = grep { $_ != $i && KvWatch::answered_within($w[$_], 0) } 0 .. $n - 1;
	$spurious += @others;
	KvWatch::finish($w[$_]) for @others;
	$w[$_] = prefix_watch($_) for ($i, @others);
	usleep(5_000);
}
summary('prefix', \@fc, \@fs, spurious => $spurious);
$kv->http('PUT', "/kv/p/$_/k", 'done') for 0 .. $n - 1;
KvWatch::finish($_) for @w;

$psql->quit;
my $out = "$FindBin::RealBin/out";
mkdir $out;
open(my $fh, '>', "$out/watch.json") or die;
print $fh JSON::PP->new->pretty->canonical->encode(
	{ watchers => $n, rounds => $rounds, cpus => `nproc` + 0, results => \%results });
close $fh;
open($fh, '>', "$out/watch.txt") or die;
print $fh @table;
close $fh;
