
# Copyright (c) kvserver authors

# No stale reads, proven by a history checker: concurrent HTTP clients
# (GET/PUT/DELETE), SQL clients (kv_get/kv_put/kv_delete) and a plain-SQL
# client (UPDATE kv_store ... / SELECT) hammer a few keys; every operation is
# recorded with invocation and completion times from one monotonic clock,
# and test/lincheck/lincheck.py checks that the history is linearizable
# (Wing & Gong search, per key, register model with an absent state).
#
# LINCHECK_DURATION (seconds, default 12) sets how long the clients run;
# test/lincheck/long_run.sh uses it for a long run.  The histories are kept
# in tmp_check/lincheck_020/.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::RealBin/../lib";

use IPC::Run;
use JSON::PP;
use KvServerTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $lindir = "$FindBin::RealBin/../lincheck";
my $python = $ENV{PYTHON} || 'python3';
my $duration = $ENV{LINCHECK_DURATION} || 12;
my $outdir = "$PostgreSQL::Test::Utils::tmp_check/lincheck_020";
mkdir $outdir;

# Runs a command with a time limit; returns (exit code, stdout, stderr).
# The exit code is -1 when it had to be killed.
sub run_cmd
{
	my ($cmd, $timeout) = @_;
	my ($out, $err) = ('', '');
	my $t = IPC::Run::timeout($timeout);
	my $rc;
	eval {
		IPC::Run::run($cmd, '<', \undef, '>', \$out, '2>', \$err, $t);
		$rc = $? >> 8;
		1;
	} or do {
		$err .= "\n(run failed or timed out after $timeout s: $@)";
		$rc = -1;
	};
	return ($rc, $out, $err);
}

# The tail of a text, for diag.
sub tail_lines
{
	my ($text, $n) = @_;
	my @lines = split /\n/, $text // '';
	@lines = @lines[ -$n .. -1 ] if @lines > $n;
	return join("\n", @lines);
}

subtest 'the checker passes its own unit tests' => sub {
	my ($rc, $out, $err) =
	  run_cmd([ $python, "$lindir/test_lincheck.py" ], 300);
	is($rc, 0, 'test_lincheck.py exits 0')
	  or diag(tail_lines("$out\n$err", 80));
	my ($ran) = "$out\n$err" =~ /^(Ran \d+ tests? in \S+)$/m;
	note($ran // 'no unittest summary');
};

my $kv = KvServerTest->new('linearizability');
my $node = $kv->node;
my $history = "$outdir/history.jsonl";
unlink $history;

my %summary;
subtest "record a concurrent history for $duration s" => sub {
	my @cmd = (
		$python, "$lindir/recorder.py",
		'--http-host' => $kv->host,
		'--http-port' => $kv->port,
		'--pg-host' => $node->host,
		'--pg-port' => $node->port,
		'--dbname' => 'postgres',
		'--duration' => $duration,
		'--keys' => 3,
		'--http-clients' => 4,
		'--sql-clients' => 2,
		'--update-clients' => 1,
		'--out' => $history,
		'--log-dir' => $outdir);
	note("running: @cmd");
	my ($rc, $out, $err) = run_cmd(\@cmd, $duration + 180);
	is($rc, 0, 'recorder exits 0') or diag(tail_lines("$out\n$err", 40));
	my ($json) = $out =~ /^recorder summary: (.*)$/m;
	ok(defined $json, 'recorder printed a summary') or return;
	%summary = %{ decode_json($json) };
	ok(-s $history, "history written to $history");

	note(sprintf(
		'history: %d ops on %d keys in %.1f s (seed %s); %d unknown outcome, '
		  . '%d failed; HTTP GETs: %d cache HIT, %d MISS',
		$summary{ops}, $summary{keys}, $summary{seconds}, $summary{seed},
		$summary{unknown}, $summary{failed},
		$summary{http_get_hit}, $summary{http_get_miss}));
	note('by kind: '
		  . join(', ', map { "$_=$summary{by_kind}{$_}" } sort keys %{ $summary{by_kind} }));
	note('client errors (' . $summary{error_count} . '): ' . join(' | ', @{ $summary{errors} }))
	  if $summary{error_count};
	is_deeply($summary{fatal}, [], 'every client ran') or diag(join("\n", @{ $summary{fatal} }));

	cmp_ok($summary{ops}, '>=', 300, 'at least 300 operations recorded');
	foreach my $kind (qw(http:get http:put http:delete sql:get sql:put
		sql:delete sql-plain:update sql-plain:get))
	{
		cmp_ok($summary{by_kind}{$kind} // 0, '>', 0, "some $kind operations");
	}
	# the test is about cache coherence: the cache must have been used
	cmp_ok($summary{http_get_hit}, '>', 0, 'some HTTP GETs were cache hits (X-Cache: HIT)');
	cmp_ok($summary{http_get_miss}, '>', 0, 'some HTTP GETs were misses (X-Cache: MISS)');
	# a history made mostly of unknown outcomes would prove little
	cmp_ok($summary{unknown}, '<=', $summary{ops} / 10,
		'at most 10% of the operations have an unknown outcome');

	my $stats = $node->safe_psql('postgres',
		'SELECT hits, misses, fills_skipped FROM kv_stats()');
	note("kv_stats(): hits|misses|fills_skipped = $stats");
};

subtest 'the history is linearizable' => sub {
	plan skip_all => 'no history recorded' unless -s $history;
	my ($rc, $out, $err) = run_cmd(
		[ $python, "$lindir/lincheck.py", '--timeout', 600, $history ], 660);
	is($rc, 0, 'lincheck.py exits 0: every key linearizable')
	  or diag("lincheck exit $rc; history: $history\n"
		  . tail_lines("$out\n$err", 120));
	my ($sum) = $out =~ /^lincheck summary: (.*)$/m;
	note("lincheck: $sum") if defined $sum;
	note($_) foreach grep { /^key / } split /\n/, $out;
};

# A checker that passes everything proves nothing: plant one stale read in
# the real history and require the checker to reject it.
subtest 'the checker rejects the same history with one planted stale read' => sub {
	plan skip_all => 'no history recorded' unless -s $history;
	my $mutated = "$outdir/history_with_planted_stale_read.jsonl";
	my ($rc, $out, $err) = run_cmd(
		[ $python, "$lindir/mutate.py", $history, $mutated ], 120);
	is($rc, 0, 'mutate.py planted a stale read') or diag("$out\n$err");
	note($err);
	return unless $rc == 0;
	($rc, $out, $err) = run_cmd(
		[ $python, "$lindir/lincheck.py", '--timeout', 600, $mutated ], 660);
	is($rc, 1, 'lincheck.py exits 1 on the mutated history')
	  or diag(tail_lines("$out\n$err", 60));
	like($out, qr/NOT linearizable/, 'and reports a violation');
};

# And the whole pipeline (recorder + checker) must see a real incoherent
# cache: with the invalidation triggers disabled (README, Limits: the cache
# does not see such writes) cached GETs go stale, and that must be caught.
subtest 'positive control: with the invalidation triggers disabled, stale reads are caught' => sub {
	my $bad = "$outdir/history_triggers_disabled.jsonl";
	$node->safe_psql('postgres', q{
ALTER TABLE kv_store DISABLE TRIGGER kv_store_invalidate_row;
ALTER TABLE kv_store DISABLE TRIGGER kv_store_invalidate_truncate;
SELECT kv_cache_reset();});
	my ($rc, $out, $err) = run_cmd(
		[
			$python, "$lindir/recorder.py",
			'--http-host' => $kv->host,
			'--http-port' => $kv->port,
			'--pg-host' => $node->host,
			'--pg-port' => $node->port,
			'--duration' => 3,
			'--key-prefix' => 'control/',
			'--out' => $bad,
			'--log-dir' => $outdir
		],
		180);
	$node->safe_psql('postgres', q{
ALTER TABLE kv_store ENABLE ALWAYS TRIGGER kv_store_invalidate_row;
ALTER TABLE kv_store ENABLE ALWAYS TRIGGER kv_store_invalidate_truncate;
SELECT kv_cache_reset();});
	is($rc, 0, 'recorder exits 0') or diag(tail_lines("$out\n$err", 40));
	my ($json) = $out =~ /^recorder summary: (.*)$/m;
	note("recorder: $json") if defined $json;
	($rc, $out, $err) = run_cmd(
		[ $python, "$lindir/lincheck.py", '--timeout', 600, $bad ], 660);
	is($rc, 1, 'lincheck.py exits 1: stale reads found')
	  or diag(tail_lines("$out\n$err", 60));
	my @stale = grep { /NOT linearizable/ } split /\n/, $out;
	note($_) foreach @stale;
	is($node->safe_psql('postgres',
			q{SELECT string_agg(tgname || '=' || tgenabled::text, ',' ORDER BY tgname)
			  FROM pg_trigger WHERE tgrelid = 'kv_store'::regclass AND tgname LIKE 'kv_store_invalidate%'}),
		'kv_store_invalidate_row=A,kv_store_invalidate_truncate=A',
		'invalidation triggers restored to ENABLE ALWAYS');
};

$node->stop;
done_testing();
