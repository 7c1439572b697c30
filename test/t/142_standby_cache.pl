
# Copyright (c) kvserver authors

# A hot standby's cache never serves a value older than its replayed state.
#
# Triggers do not fire during replay: the primary writes one WAL record of
# kvserver's resource manager (ID 142) at PRE_COMMIT of every transaction
# that wrote kv_store, and the standby's replay of it removes the keys and
# holds their cache partitions until the transaction's end has been
# replayed (src/pg/rmgr.c).
#
# 1. Every write path on the primary (HTTP PUT and DELETE, kv_put,
#    kv_delete, INSERT, UPDATE, DELETE, ON CONFLICT DO UPDATE, an UPDATE of
#    the key itself, TRUNCATE, a transaction of 3000 keys, savepoints): the
#    old value is cached on the standby (a second read is a hit), the
#    primary writes, replay catches up, the standby reads the new value;
#    then it is cached again (the hold was released).
# 2. A transaction stopped between its kvserver record and its commit
#    record (its COMMIT waits for a lock on its ON COMMIT DELETE ROWS temp
#    table, which PostgreSQL takes after the PRE_COMMIT callbacks): the
#    standby keeps serving the old value, from the table (no hits), then the
#    new one once the commit is replayed.  The same across a standby
#    restart whose replay starts after the record (the record is never
#    seen again), across a crash of the primary (the transaction never
#    commits), and across a promotion.
# 3. Concurrency: writers on the primary (a procedure rotating kv_put,
#    UPDATE and ON CONFLICT, each commit followed by a log of
#    pg_current_wal_insert_lsn(); and HTTP PUTs), three readers on the
#    standby (procedures reading pg_last_wal_replay_lsn() then the counters;
#    and HTTP GETs when the standby's worker serves HTTP): a value may never
#    go backwards nor be older than a write whose commit replay had passed.
#    (Several readers, because one's release of a hold can then fall between
#    another's fill token and its fill: with the generation bump at release
#    removed, this finds stale reads.)
# 4. 700 replayed transactions with nobody reading (the startup process
#    empties the full hold table), and again across a restart, where they
#    are replayed before hot standby begins and overflow it (every
#    partition held until they have all ended).
# 5. pg_walinspect describes the records (and pg_waldump lists them as
#    custom142); each record precedes its transaction's commit record.
# 6. A standby without kvserver in shared_preload_libraries stops at the
#    first kvserver record with "resource manager with ID 142 not
#    registered", and goes on once kvserver is preloaded.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::RealBin/../lib";

use IPC::Run;
use KvServerTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);

my $concurrent_seconds = $ENV{KV_STANDBY_SECONDS} || 10;
my $nreaders = 3;

my $pkv = KvServerTest->new(
	'primary',
	conf => join("\n",
		"wal_level = replica",
		"max_wal_senders = 4",
		"wal_keep_size = '256MB'",
		""));
my $primary = $pkv->node;

# A streaming standby of the primary, with its own HTTP port (the backup
# copies the primary's postgresql.conf); not started.
sub make_standby
{
	my ($name, $backup) = @_;
	my $standby = PostgreSQL::Test::Cluster->new($name);
	$standby->init_from_backup($primary, $backup, has_streaming => 1);
	my $port = PostgreSQL::Test::Cluster::get_free_port();
	$standby->append_conf('postgresql.conf',
		"kvserver.port = $port\nhot_standby_feedback = on\n");
	my $skv = bless {
		node => $standby,
		host => '127.0.0.1',
		port => $port,
		anonymous_role => 'kv_anon'
	}, 'KvServerTest';
	return $skv;
}

$primary->safe_psql('postgres', 'SELECT kv_put(\'before_backup\', \'x\')');
$primary->backup('b1');
my $skv = make_standby('standby', 'b1');
my $standby = $skv->node;
$standby->start;

# Everything the primary has written, flushed and replayed by $node.
sub catch_up
{
	my ($node) = @_;
	$node = $standby unless defined $node;
	$primary->wait_for_catchup($node, 'replay', $primary->lsn('insert'));
	return;
}

# A key's value read on $node through kv_get, '<absent>' for none.
sub sget
{
	my ($key, $node) = @_;
	$node = $standby unless defined $node;
	return $node->safe_psql('postgres',
		'SELECT coalesce(kv_get(' . sql_quote($key) . "), '<absent>')");
}

sub hits
{
	my ($node) = @_;
	$node = $standby unless defined $node;
	return $node->safe_psql('postgres', 'SELECT hits FROM kv_stats()');
}

sub pput
{
	my ($key, $value) = @_;
	$primary->safe_psql('postgres',
		'SELECT kv_put(' . sql_quote($key) . ', ' . sql_quote($value) . ')');
	return;
}

# Does the standby's worker serve HTTP (hot standby serving)?
my $standby_http = $skv->wait_for_health(200, 3);
note $standby_http
  ? 'the standby serves HTTP: HTTP GETs are checked too'
  : 'the standby does not serve HTTP (yet): reads are SQL kv_get only';

my %count = (cached => 0, stale_checks => 0, stale => 0, recached => 0);

# Reads $key on the standby until it is served from the cache: the value
# read must be $want.  Returns true when a read was a hit.
sub cache_on_standby
{
	my ($key, $want, $name) = @_;
	my $got_hit = 0;
	for my $try (1 .. 20)
	{
		my $before = hits();
		my $v = sget($key);
		is($v, $want, "$name: the standby reads " . ($want eq '<absent>' ? 'nothing' : "'$want'"))
		  if $try == 1;
		$count{stale}++ if $v ne $want;
		if (hits() > $before)
		{
			$got_hit = 1;
			last;
		}
		usleep(50_000);
	}
	if ($standby_http)
	{
		my $r;
		for (1 .. 2)
		{
			$r = $skv->http('GET', key_path($key));
			my $v = $r->{status} == 404 ? '<absent>' : $r->{content};
			is($v, $want, "$name: HTTP GET on the standby agrees");
			$count{stale}++ if $v ne $want;
		}
		is(header($r, 'X-Cache'), 'HIT', "$name: and is a cache hit there too")
		  if $got_hit && $want ne '<absent>';
	}
	return $got_hit;
}

# One write path: $key holds $old (written by $setup on the primary) and is
# cached on the standby; $write changes it; the standby must read $new.
sub check_path
{
	my ($name, $key, $setup, $write, $old, $new) = @_;
	$setup->();
	catch_up();
	if ($old ne '<absent>')
	{
		ok(cache_on_standby($key, $old, "$name, before"),
			"$name: the old value is served from the standby's cache");
		$count{cached}++;
	}
	else
	{
		is(sget($key), '<absent>', "$name: absent on the standby before");
	}
	$write->();
	catch_up();
	my $v = sget($key);
	is($v, $new, "$name: after replay the standby reads the new value");
	$count{stale_checks}++;
	$count{stale}++ if $v ne $new;
	if ($new ne '<absent>')
	{
		ok(cache_on_standby($key, $new, "$name, after"),
			"$name: and then serves it from its cache again");
		$count{recached}++;
	}
	return;
}

my $sql = sub {
	my ($q) = @_;
	return sub { $primary->safe_psql('postgres', $q); };
};

subtest 'every write path on the primary invalidates the standby cache' => sub {
	check_path('HTTP PUT', 'http_put',
		sub { is($pkv->http('PUT', '/kv/http_put', 'old')->{status}, 201, 'PUT old') },
		sub { is($pkv->http('PUT', '/kv/http_put', 'new')->{status}, 200, 'PUT new') },
		'old', 'new');
	check_path('HTTP DELETE', 'http_del',
		sub { $pkv->http('PUT', '/kv/http_del', 'old') },
		sub { is($pkv->http('DELETE', '/kv/http_del')->{status}, 204, 'DELETE') },
		'old', '<absent>');
	check_path('kv_put', 'sql_put', sub { pput('sql_put', 'old') },
		sub { pput('sql_put', 'new') }, 'old', 'new');
	check_path('kv_put with a TTL', 'sql_put_ttl',
		sub { pput('sql_put_ttl', 'old') },
		$sql->("SELECT kv_put('sql_put_ttl', 'new', interval '1 hour')"),
		'old', 'new');
	check_path('kv_delete', 'sql_del', sub { pput('sql_del', 'old') },
		$sql->("SELECT kv_delete('sql_del')"), 'old', '<absent>');
	check_path('plain INSERT', 'plain_ins', sub { },
		$sql->("INSERT INTO kv_store (key, value) VALUES ('plain_ins', 'new')"),
		'<absent>', 'new');
	check_path('DELETE and INSERT in one transaction', 'plain_delins',
		sub { pput('plain_delins', 'old') },
		$sql->("BEGIN; DELETE FROM kv_store WHERE key = 'plain_delins';"
			  . " INSERT INTO kv_store (key, value) VALUES ('plain_delins', 'new'); COMMIT"),
		'old', 'new');
	check_path('plain UPDATE', 'plain_upd', sub { pput('plain_upd', 'old') },
		$sql->("UPDATE kv_store SET value = 'new' WHERE key = 'plain_upd'"),
		'old', 'new');
	check_path('plain DELETE', 'plain_del', sub { pput('plain_del', 'old') },
		$sql->("DELETE FROM kv_store WHERE key = 'plain_del'"),
		'old', '<absent>');
	check_path('INSERT ... ON CONFLICT DO UPDATE', 'upsert',
		sub { pput('upsert', 'old') },
		$sql->("INSERT INTO kv_store (key, value) VALUES ('upsert', 'new')"
			  . " ON CONFLICT (key) DO UPDATE SET value = excluded.value"),
		'old', 'new');
	check_path('UPDATE of the key itself (old key)', 'ren_a',
		sub { pput('ren_a', 'old') },
		$sql->("UPDATE kv_store SET key = 'ren_b', value = 'moved' WHERE key = 'ren_a'"),
		'old', '<absent>');
	is(sget('ren_b'), 'moved', 'UPDATE of the key itself: the new key has the value');
	check_path('savepoints', 'sp_kept',
		sub { pput('sp_kept', 'old'); pput('sp_undone', 'old') },
		$sql->("BEGIN; SAVEPOINT a; SELECT kv_put('sp_undone', 'never');"
			  . " ROLLBACK TO a; SELECT kv_put('sp_kept', 'new'); COMMIT"),
		'old', 'new');
	is(sget('sp_undone'), 'old', 'savepoints: the rolled-back write left the old value');
	check_path('a rolled-back transaction', 'rolled_back',
		sub { pput('rolled_back', 'old') },
		$sql->("BEGIN; SELECT kv_put('rolled_back', 'never'); ROLLBACK"),
		'old', 'old');

	# more distinct keys than a record names: it empties their partitions
	my @big = map { "big$_" } 1 .. 3000;
	check_path('one transaction of 3000 keys', 'big7',
		$sql->("INSERT INTO kv_store (key, value) SELECT 'big' || i, 'old'"
			  . " FROM generate_series(1, 3000) i"
			  . " ON CONFLICT (key) DO UPDATE SET value = excluded.value"),
		$sql->("UPDATE kv_store SET value = 'new' WHERE key LIKE 'big%'"),
		'old', 'new');
	is(sget('big2999'), 'new', 'one transaction of 3000 keys: another key too');

	# TRUNCATE: everything that was cached is gone
	my @cached = qw(http_put sql_put upsert big7 rolled_back);
	cache_on_standby($_, sget($_), "before TRUNCATE: $_") for @cached;
	$primary->safe_psql('postgres', 'TRUNCATE kv_store');
	catch_up();
	for my $k (@cached)
	{
		my $v = sget($k);
		is($v, '<absent>', "TRUNCATE: $k is gone on the standby");
		$count{stale_checks}++;
		$count{stale}++ if $v ne '<absent>';
	}
	pput('after_truncate', 'v');
	catch_up();
	ok(cache_on_standby('after_truncate', 'v', 'after TRUNCATE'),
		'after TRUNCATE the standby caches again');
};

# A session whose COMMIT stops after the PRE_COMMIT callbacks (so after the
# kvserver record) and before the commit record: PreCommit_on_commit_actions
# empties its ON COMMIT DELETE ROWS temp table, which needs a lock that
# another session holds.
sub stopped_commit
{
	my ($key, $value) = @_;
	my $b = $primary->background_psql('postgres');
	$b->query_safe('CREATE TEMP TABLE hold_t (x int) ON COMMIT DELETE ROWS');
	my $ns = $b->query_safe(
		'SELECT nspname FROM pg_namespace WHERE oid = pg_my_temp_schema()');
	my $a = $primary->background_psql('postgres');
	$a->query_safe("BEGIN; LOCK TABLE $ns.hold_t IN ACCESS SHARE MODE");
	$b->query_safe('BEGIN; INSERT INTO hold_t VALUES (1); SELECT kv_put('
		  . sql_quote($key) . ', ' . sql_quote($value) . ')');
	$b->query_until(qr/committing/, "\\echo committing\nCOMMIT;\n");
	$primary->poll_query_until('postgres',
		"SELECT count(*) = 1 FROM pg_stat_activity"
		  . " WHERE wait_event_type = 'Lock' AND query = 'COMMIT;'")
	  or die "the COMMIT never waited for the lock";
	# another commit flushes the WAL, the kvserver record included
	$primary->safe_psql('postgres', 'SELECT txid_current()');
	return ($a, $b);
}

sub finish_commit
{
	my ($a, $b) = @_;
	$a->query_safe('COMMIT');
	$b->query_safe('SELECT 1');
	$a->quit;
	$b->quit;
	return;
}

# Two reads of $key on $node: both $want, and neither a hit.
sub reads_bypass_cache
{
	my ($key, $want, $name, $node) = @_;
	$node = $standby unless defined $node;
	my $before = hits($node);
	my $ok = 1;
	for (1 .. 3)
	{
		my $v = sget($key, $node);
		$count{stale_checks}++;
		$count{stale}++ if $v ne $want;
		$ok &&= is($v, $want, "$name: reads '$want'");
	}
	is(hits($node), $before, "$name: no read was a cache hit (the partition is held)");
	if ($standby_http && $node == $standby && $skv->wait_for_health(200, 30))
	{
		# the fast path too sees writers > 0 and hands the GET to the
		# worker's main thread, whose lookup misses as well
		for (1 .. 3)
		{
			my $r = $skv->http('GET', key_path($key));
			my $v = $r->{status} == 404 ? '<absent>' : $r->{content};
			$count{stale_checks}++;
			$count{stale}++ if $v ne $want;
			is($v, $want, "$name: HTTP GET reads '$want'");
			is(header($r, 'X-Cache'), 'MISS', "$name: HTTP GET is not a cache hit");
		}
	}
	return $ok;
}

subtest 'between the record and the commit: held; after: the new value' => sub {
	pput('window', 'old');
	catch_up();
	ok(cache_on_standby('window', 'old', 'window, before'), 'cached on the standby');
	my ($a, $b) = stopped_commit('window', 'new');
	catch_up();
	reads_bypass_cache('window', 'old', 'record replayed, commit not yet');
	finish_commit($a, $b);
	catch_up();
	my $v = sget('window');
	is($v, 'new', 'commit replayed: the new value');
	$count{stale_checks}++;
	$count{stale}++ if $v ne 'new';
	ok(cache_on_standby('window', 'new', 'window, after'),
		'and the hold is released: cached again');
};

subtest 'a standby restart whose replay begins after the record' => sub {
	pput('restart', 'old');
	catch_up();
	ok(cache_on_standby('restart', 'old', 'restart, before'), 'cached on the standby');
	my ($a, $b) = stopped_commit('restart', 'new');
	# a checkpoint after the record: the standby's restartpoint there makes
	# its next replay start after the record, which it then never sees
	$primary->safe_psql('postgres', 'CHECKPOINT');
	catch_up();
	$standby->safe_psql('postgres', 'CHECKPOINT');
	my $redo = $standby->safe_psql('postgres',
		'SELECT redo_lsn FROM pg_control_checkpoint()');
	$standby->restart;
	note "standby restarted; its replay began at $redo";
	reads_bypass_cache('restart', 'old', 'restarted standby, commit not yet replayed');
	finish_commit($a, $b);
	catch_up();
	my $v = sget('restart');
	is($v, 'new', 'restarted standby: commit replayed, the new value');
	$count{stale_checks}++;
	$count{stale}++ if $v ne 'new';
	ok(cache_on_standby('restart', 'new', 'restart, after'),
		'restarted standby: cached again');
};

subtest 'the primary crashes between the record and the commit' => sub {
	pput('crash', 'old');
	catch_up();
	ok(cache_on_standby('crash', 'old', 'crash, before'), 'cached on the standby');
	my ($a, $b) = stopped_commit('crash', 'never');
	catch_up();
	reads_bypass_cache('crash', 'old', 'record replayed, then the primary crashes');
	$primary->stop('immediate');
	eval { $a->quit; $b->quit; };
	$primary->start;
	$pkv->wait_for_health(200, 30);
	catch_up();
	# the restarted primary's running-xacts record tells the standby that
	# the transaction is gone
	my $hit = cache_on_standby('crash', 'old', 'crash, after');
	ok($hit, 'the never-committed transaction no longer holds the partition');
	$count{stale_checks}++;
};

subtest 'concurrent writers on the primary, readers on the standby' => sub {
	$primary->safe_psql('postgres', q{
SELECT kv_put('ctr', '0');
SELECT kv_put('ctr_http', '0');
CREATE TABLE ctr_log (v int, lsn pg_lsn);
CREATE PROCEDURE ctr_writer(seconds float8) LANGUAGE plpgsql AS $$
DECLARE
	i int := 0;
	stop timestamptz := clock_timestamp() + seconds * interval '1 second';
BEGIN
	WHILE clock_timestamp() < stop LOOP
		i := i + 1;
		CASE i % 3
			WHEN 0 THEN PERFORM kv_put('ctr', i::text);
			WHEN 1 THEN UPDATE kv_store SET value = convert_to(i::text, 'UTF8') WHERE key = 'ctr';
			ELSE INSERT INTO kv_store (key, value) VALUES ('ctr', convert_to(i::text, 'UTF8'))
				ON CONFLICT (key) DO UPDATE SET value = excluded.value;
		END CASE;
		COMMIT;
		INSERT INTO ctr_log VALUES (i, pg_current_wal_insert_lsn());
		COMMIT;
	END LOOP;
END $$;
CREATE PROCEDURE ctr_reader(seconds float8) LANGUAGE plpgsql AS $$
DECLARE
	stop timestamptz := clock_timestamp() + seconds * interval '1 second';
	l pg_lsn;
	v1 text;
	v2 text;
	n int := 0;
	buf text := '';
BEGIN
	WHILE clock_timestamp() < stop LOOP
		l := pg_last_wal_replay_lsn();
		v1 := kv_get('ctr');
		v2 := kv_get('ctr_http');
		buf := buf || l::text || ' ' || coalesce(v1, '-') || ' ' || coalesce(v2, '-') || E'\n';
		n := n + 1;
		IF n % 2000 = 0 THEN
			RAISE NOTICE E'READS\n%', buf;
			buf := '';
		END IF;
		COMMIT;
	END LOOP;
	RAISE NOTICE E'READS\n%', buf;
END $$;
});
	catch_up();
	my $hits0 = hits();

	# output to files: a pipe nobody reads while the loop below runs would
	# stop the reader in RAISE NOTICE
	my $dir = PostgreSQL::Test::Utils::tempdir();
	my $writer = IPC::Run::start(
		[ 'psql', '-XAtq', '-d', $primary->connstr('postgres'),
		  '-c', "CALL ctr_writer($concurrent_seconds)" ],
		'>', "$dir/writer.out", '2>', "$dir/writer.err");
	# several readers, so that one's release of a hold can fall between
	# another's fill token and its fill
	my @readers = map {
		IPC::Run::start(
			[ 'psql', '-XAtq', '-d', $standby->connstr('postgres'),
			  '-c', "CALL ctr_reader($concurrent_seconds)" ],
			'>', "$dir/reader$_.out", '2>', "$dir/reader$_.err")
	} 1 .. $nreaders;

	# meanwhile, HTTP PUTs of ctr_http on the primary (each followed by the
	# insert LSN) and, when the standby serves HTTP, GETs there (each after
	# its replay LSN)
	my $plsn = LsnSession->new($primary, 'pg_current_wal_insert_lsn()');
	my $slsn = LsnSession->new($standby, 'pg_last_wal_replay_lsn()');
	my (@http_log, @http_reads);
	my $i = 0;
	my $stop = time() + $concurrent_seconds;
	while (time() < $stop)
	{
		$i++;
		my $r = $pkv->http('PUT', '/kv/ctr_http', "$i");
		if ($r->{status} == 200 || $r->{status} == 201)
		{
			push @http_log, [ $plsn->get, $i ];
		}
		if ($standby_http)
		{
			my $l = $slsn->get;
			my $g1 = $skv->http('GET', '/kv/ctr');
			my $g2 = $skv->http('GET', '/kv/ctr_http');
			push @http_reads,
			  [ $l, $g1->{status} == 200 ? $g1->{content} : '-',
				$g2->{status} == 200 ? $g2->{content} : '-' ];
		}
	}
	$plsn->quit;
	$slsn->quit;
	$writer->finish;
	$_->finish for @readers;
	my $werr = slurp_file("$dir/writer.err");
	is($writer->result(0), 0, 'the writer procedure ran') or diag $werr;
	my $hits = hits() - $hits0;
	catch_up();

	my @sql_log = map { [ (split /\|/)[1, 0] ] } split /\n/,
	  $primary->safe_psql('postgres', 'SELECT v, lsn FROM ctr_log ORDER BY v');
	cmp_ok(scalar @sql_log, '>', 100, 'the primary wrote ctr ' . scalar(@sql_log) . ' times');
	cmp_ok(scalar @http_log, '>', 0, 'and ctr_http ' . scalar(@http_log) . ' times over HTTP');

	my ($nreads, $bad, $checked) = (0, 0, 0);
	for my $n (1 .. $nreaders)
	{
		my $rerr = slurp_file("$dir/reader$n.err");
		is($readers[ $n - 1 ]->result(0), 0, "reader $n ran")
		  or diag substr($rerr, 0, 2000);
		my @reads = map { [ split / / ] }
		  grep { m{^[0-9A-F]+/[0-9A-F]+ \S+ \S+$} } split /\n/, $rerr;
		cmp_ok(scalar @reads, '>', 100, "reader $n read the counters " . scalar(@reads) . ' times');
		for my $c ([ 1, \@sql_log, 'ctr' ], [ 2, \@http_log, 'ctr_http' ])
		{
			my ($b, $k) = check_history(\@reads, @$c);
			$bad += $b;
			$checked += $k;
		}
		$nreads += scalar @reads;
	}
	is($bad, 0, "SQL reads on the standby: no value older than replay or going backwards"
		  . " ($checked reads had a replayed write to be at least as new as)");
	$count{stale_checks} += $checked;
	$count{stale} += $bad;
	if ($standby_http)
	{
		my ($bad3, $checked3) = check_history(\@http_reads, 1, \@sql_log, 'ctr');
		my ($bad4, $checked4) = check_history(\@http_reads, 2, \@http_log, 'ctr_http');
		is($bad3 + $bad4, 0, 'HTTP reads on the standby: the same'
			  . " ($checked3 + $checked4 checked reads)");
		$count{stale_checks} += $checked3 + $checked4;
		$count{stale} += $bad3 + $bad4;
	}
	cmp_ok($hits, '>', 0, "the standby served $hits of those reads from its cache");
	note sprintf('concurrency: %d standby SQL reads by %d readers (%d HTTP), %d + %d writes, %d cache hits',
		$nreads, $nreaders, scalar @http_reads, scalar @sql_log, scalar @http_log, $hits);
	$count{concurrent_reads} = $nreads + scalar @http_reads;
	$count{concurrent_hits} = $hits;
};

sub lsn_num
{
	my ($l) = @_;
	my ($hi, $lo) = split m{/}, $l;
	return hex($hi) * 4294967296 + hex($lo);
}

# $reads: [replay lsn, value1, value2] in read order; $col: which value;
# $log: [lsn after the commit, value] in write order.  Returns (violations,
# reads that had a replayed write to compare with).
sub check_history
{
	my ($reads, $col, $log, $name) = @_;
	my @log = sort { $a->[1] <=> $b->[1] } @$log;
	my ($bad, $checked, $prev, $j, $floor) = (0, 0, -1, 0, -1);
	for my $r (@$reads)
	{
		my $l = lsn_num($r->[0]);
		my $v = $r->[$col];
		$v = -1 if !defined $v || $v eq '-';
		# the newest write whose commit lies before the replay LSN read
		while ($j < @log && lsn_num($log[$j][0]) <= $l)
		{
			$floor = $log[$j][1];
			$j++;
		}
		$checked++ if $floor >= 0;
		if ($v < $floor)
		{
			$bad++;
			diag "$name: read $v at replay $r->[0], but write $floor was replayed"
			  if $bad <= 5;
		}
		if ($v < $prev)
		{
			$bad++;
			diag "$name: read $v after $prev: went backwards" if $bad <= 5;
		}
		$prev = $v if $v > $prev;
	}
	return ($bad, $checked);
}

subtest 'more replayed transactions than the hold table has room for' => sub {
	$primary->safe_psql('postgres', q{
CREATE PROCEDURE many_puts(first int, last int) LANGUAGE plpgsql AS $$
BEGIN
	FOR i IN first .. last LOOP
		PERFORM kv_put('many' || (i % 50), i::text);
		COMMIT;
	END LOOP;
END $$;
CALL many_puts(1, 50);
});
	catch_up();
	ok(cache_on_standby('many7', '7', 'many, before'), 'cached on the standby');

	# in hot standby, nobody reading: the startup process empties the full
	# table itself
	$primary->safe_psql('postgres', 'CALL many_puts(51, 750)');
	catch_up();
	check_value('many7', '707', '700 transactions replayed without readers');
	ok(cache_on_standby('many7', '707', 'many, after'), 'and cached again');

	# before hot standby (a restart replays them again before the standby is
	# consistent): they cannot be released, the table overflows, and every
	# partition is held until they have all ended
	$primary->safe_psql('postgres', 'CHECKPOINT');
	catch_up();
	$standby->safe_psql('postgres', 'CHECKPOINT');
	$primary->safe_psql('postgres', 'CALL many_puts(751, 1450)');
	catch_up();
	my $offset = -s $standby->logfile;
	$standby->restart;
	ok($standby->log_contains(
		qr/kvserver: 512 replayed transactions hold cache partitions; every partition is held until transaction \d+ and all older ones have ended/,
		$offset), 'the restarted standby overflowed its hold table');
	check_value('many7', '1407', 'after the overflow');
	check_value('many49', '1449', 'after the overflow');
	ok(cache_on_standby('many7', '1407', 'many, after the overflow'),
		'the overflow hold is released: cached again');
};

# The standby reads $want for $key.
sub check_value
{
	my ($key, $want, $name) = @_;
	my $v = sget($key);
	is($v, $want, "$name: $key is '$want' on the standby");
	$count{stale_checks}++;
	$count{stale}++ if $v ne $want;
	return;
}

subtest 'the records, as pg_walinspect and pg_waldump see them' => sub {
	$primary->safe_psql('postgres', 'CREATE EXTENSION IF NOT EXISTS pg_walinspect');
	my $start = $primary->lsn('insert');
	pput('inspect', 'v');
	$primary->safe_psql('postgres', 'TRUNCATE kv_store');
	my $end = $primary->lsn('flush');
	my $rows = $primary->safe_psql('postgres', qq{
SELECT k.record_type, k.description, k.start_lsn < c.start_lsn
FROM pg_get_wal_records_info('$start', '$end') k
JOIN pg_get_wal_records_info('$start', '$end') c
  ON c.xid = k.xid AND c.resource_manager = 'Transaction' AND c.record_type = 'COMMIT'
WHERE k.resource_manager = 'kvserver' ORDER BY k.start_lsn});
	my @rows = split /\n/, $rows;
	is(scalar @rows, 2, 'one record per committed writing transaction') or diag $rows;
	like($rows[0], qr/^INVALIDATE\|xid \d+; partitions 0x[0-9a-f]{4}; 1 key hashes: [0-9a-f]{16}\|t$/,
		'kv_put: one key hash, before its commit record');
	like($rows[1], qr/^INVALIDATE\|xid \d+; partitions 0xffff; cleared 0xffff; 0 key hashes\|t$/,
		'TRUNCATE: every partition emptied, before its commit record');

	my ($stdout, $stderr);
	IPC::Run::run [ 'pg_waldump', '-p', $primary->data_dir . '/pg_wal',
		'-s', $start, '-e', $end ], '>', \$stdout, '2>', \$stderr;
	my @dump = grep { /rmgr: custom142/ } split /\n/, $stdout;
	is(scalar @dump, 2, 'pg_waldump lists them as custom142') or diag $stderr;
};

subtest 'a standby without kvserver preloaded stops at the first record' => sub {
	$primary->backup('b2');
	my $nkv = make_standby('standby_nopreload', 'b2');
	my $node = $nkv->node;
	$node->append_conf('postgresql.conf', "shared_preload_libraries = ''\n");
	pput('after_backup', 'v');
	$node->start(fail_ok => 1);
	$node->wait_for_log(qr/resource manager with ID 142 not registered/);
	ok($node->log_contains(
		qr/(?:FATAL|ERROR|PANIC):  resource manager with ID 142 not registered\n.*HINT:  Include the extension module that implements this resource manager in shared_preload_libraries\./s),
		'the startup process fails loudly, naming shared_preload_libraries');
	my $stopped = 0;
	for (1 .. 100)
	{
		if (system('pg_ctl', 'status', '-D', $node->data_dir) >> 8 == 3)
		{
			$stopped = 1;
			last;
		}
		usleep(100_000);
	}
	ok($stopped, 'and the server shuts down');
	ok($node->log_contains(qr/aborting startup due to startup process failure|shutting down/),
		'the log says why it stopped');
	$node->_update_pid(-1);
	$node->append_conf('postgresql.conf', "shared_preload_libraries = 'kvserver'\n");
	$node->start;
	catch_up($node);
	is(sget('after_backup', $node), 'v', 'preloaded, it replays on');
	$node->stop;
};

subtest 'promotion releases every hold' => sub {
	pput('promote', 'old');
	catch_up();
	ok(cache_on_standby('promote', 'old', 'promote, before'), 'cached on the standby');
	my ($a, $b) = stopped_commit('promote', 'never');
	catch_up();
	reads_bypass_cache('promote', 'old', 'record replayed, commit not');
	$standby->promote;
	$standby->poll_query_until('postgres', 'SELECT NOT pg_is_in_recovery()')
	  or die 'the standby never left recovery';
	my $before = hits();
	my $v = sget('promote');
	is($v, 'old', 'promoted: the transaction never committed here');
	$count{stale_checks}++;
	$count{stale}++ if $v ne 'old';
	sget('promote');
	cmp_ok(hits(), '>', $before, 'promoted: the partition is no longer held');
	$standby->safe_psql('postgres', "SELECT kv_put('promote', 'on the new primary')");
	is(sget('promote'), 'on the new primary', 'promoted: its own writes are seen');
	eval { finish_commit($a, $b) };
};

note sprintf('stale-read checks: %d, stale reads: %d; old values cached before a write: %d;'
	  . ' new values cached again after: %d; concurrent reads: %d (%d cache hits)',
	$count{stale_checks}, $count{stale}, $count{cached}, $count{recached},
	$count{concurrent_reads} // 0, $count{concurrent_hits} // 0);
is($count{stale}, 0, "no stale read in $count{stale_checks} checks");

done_testing();

# One psql session that answers "SELECT <expr>" at each get(), quietly (no
# log line per query, unlike BackgroundPsql).
package LsnSession;

sub new
{
	my ($class, $node, $expr) = @_;
	my ($in, $out, $err) = ('', '', '');
	my $self = bless { in => \$in, out => \$out, expr => $expr }, $class;
	$self->{timer} = IPC::Run::timeout($PostgreSQL::Test::Utils::timeout_default);
	$self->{h} = IPC::Run::start(
		[ 'psql', '-XAtq', '-d', $node->connstr('postgres') ],
		'<', \$in, '>', \$out, '2>', \$err, $self->{timer});
	return $self;
}

sub get
{
	my ($self) = @_;
	${ $self->{out} } = '';
	${ $self->{in} } .= "SELECT $self->{expr};\n";
	$self->{timer}->start;
	$self->{h}->pump until ${ $self->{out} } =~ /\n/;
	my $r = ${ $self->{out} };
	chomp $r;
	return $r;
}

sub quit
{
	my ($self) = @_;
	${ $self->{in} } .= "\\q\n";
	$self->{h}->finish;
	return;
}
