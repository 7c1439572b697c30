
# Copyright (c) kvserver authors

# Hot standbys: the worker runs on a streaming standby and serves reads
# there (GET, HEAD, listings, /health, /metrics); writes are refused on
# the civetweb thread, 503 read_only with Retry-After, or 307 to
# kvserver.primary_url with the request's own path and query; SQL writes
# fail with PostgreSQL's read-only error.  A promotion (pg_promote()) is
# noticed by the same worker: /health says primary and a PUT succeeds
# within seconds, while GETs polled throughout never fail.  kvcli with
# several URLs writes to the primary and reads from the first healthy node.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::RealBin/../lib";

use HTTP::Tiny;
use IPC::Run;
use JSON::PP;
use KvServerTest;
use POSIX ();
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);

my $kv = KvServerTest->new(
	'primary',
	conf => join("\n",
		"wal_level = replica",
		"max_wal_senders = 10",
		"wal_keep_size = '128MB'",
		"hot_standby = on",
		""));
my $primary = $kv->node;
my $primary_url = $kv->url('');

sub psql_primary { return $primary->safe_psql('postgres', $_[0]); }

# Keys written on the primary before the standby exists.
is($kv->http('PUT', '/kv/greeting', 'hello', { 'Content-Type' => 'text/plain' })->{status},
	201, 'PUT greeting on the primary');
is($kv->http('PUT', key_path('dir/a b'), 'spaced')->{status},
	201, 'PUT a key with a slash and a space on the primary');
foreach my $i (1 .. 3)
{
	is($kv->http('PUT', "/kv/list%2F$i", "v$i")->{status}, 201, "PUT list/$i");
}

# The standby: a base backup of the primary, streaming from it.  The backup
# copies postgresql.conf with the primary's kvserver.port, so it gets its
# own; kv_anon exists there through replication.
$primary->backup('b');
my $standby = PostgreSQL::Test::Cluster->new('standby');
$standby->init_from_backup($primary, 'b', has_streaming => 1);
my $standby_port = PostgreSQL::Test::Cluster::get_free_port();
$standby->append_conf(
	'postgresql.conf', qq{
kvserver.port = $standby_port
kvserver.public_metrics = on
});
$standby->start;
my $skv = bless {
	node => $standby,
	host => '127.0.0.1',
	port => $standby_port,
	anonymous_role => 'kv_anon'
}, 'KvServerTest';
my $standby_url = $skv->url('');

ok($skv->wait_for_health(200, 60), 'the worker answers /health on the standby');
is($standby->safe_psql('postgres', 'SELECT pg_is_in_recovery()'),
	't', 'the standby is in recovery');

# A commit replayed after the standby started, so the lag is known.
is($kv->http('PUT', '/kv/after', 'standby started')->{status}, 201,
	'PUT a key on the primary after the standby started');
$primary->wait_for_catchup($standby);

# GET /metrics text as { name => [ [labels, value], ... ] }.
sub metrics
{
	my ($node_kv) = @_;
	my $res = $node_kv->http('GET', '/metrics');
	my %m;
	foreach my $line (split /\n/, $res->{content} // '')
	{
		next if $line =~ /^#/;
		next unless $line =~ /^([a-z_]+)(\{[^}]*\})?\s+(\S+)$/;
		push @{ $m{$1} }, [ $2 // '', $3 ];
	}
	return ($res, \%m);
}

sub metric
{
	my ($m, $name, $labels) = @_;
	foreach my $s (@{ $m->{$name} || [] })
	{
		return $s->[1] if $s->[0] eq ($labels // '');
	}
	return undef;
}

subtest '/health: role standby with replay_lsn and replay_lag_seconds' => sub {
	my $res = $skv->http('GET', '/health');
	is($res->{status}, 200, 'status 200');
	my $h = decode_json_body($res);
	is($h->{status}, 'ok', 'status ok');
	is($h->{role}, 'standby', 'role standby');
	is($h->{database}, 'postgres', 'database');
	like($h->{replay_lsn}, qr{^[0-9A-F]{1,8}/[0-9A-F]{1,8}$}, 'replay_lsn looks like an LSN')
	  or diag($res->{content});
	my $lsn = $h->{replay_lsn} // '0/0';
	is( $standby->safe_psql('postgres',
			"SELECT '$lsn'::pg_lsn > '0/0' AND '$lsn'::pg_lsn <= pg_last_wal_replay_lsn()"),
		't',
		'replay_lsn is replayed WAL, as pg_last_wal_replay_lsn() says');
	ok(defined $h->{replay_lag_seconds} && !ref $h->{replay_lag_seconds}
		  && $h->{replay_lag_seconds} =~ /^[0-9.eE+-]+$/
		  && $h->{replay_lag_seconds} >= 0
		  && $h->{replay_lag_seconds} < 120,
		'replay_lag_seconds is a number of seconds')
	  or diag($res->{content});
	like($res->{content}, qr/"replay_lag_seconds":[0-9.]+[,}]/,
		'replay_lag_seconds is a plain JSON number');

	$res = $kv->http('GET', '/health');
	$h = decode_json_body($res);
	is($h->{role}, 'primary', 'the primary says role primary');
	ok(!exists $h->{replay_lsn} && !exists $h->{replay_lag_seconds},
		'and has no replay fields');
};

subtest 'reads on the standby: GET, HEAD, listing' => sub {
	my $res = $skv->http('GET', '/kv/greeting');
	is($res->{status}, 200, 'GET greeting: 200');
	is($res->{content}, 'hello', 'the value written on the primary');
	is(header($res, 'Content-Type'), 'text/plain', 'its content type');
	my $etag = header($kv->http('GET', '/kv/greeting'), 'ETag');
	is(header($res, 'ETag'), $etag, 'the same ETag as on the primary');

	$res = $skv->http('GET', '/kv/greeting');
	is($res->{status}, 200, 'GET again: 200');
	is(header($res, 'X-Cache'), 'HIT', 'served from the standby\'s cache');

	$res = $skv->http('HEAD', key_path('dir/a b'));
	is($res->{status}, 200, 'HEAD of a key with a slash and a space: 200');
	is(header($res, 'Content-Length'), '6', 'its length');
	is($res->{content} // '', '', 'no body');

	$res = $skv->http('GET', '/kv/?prefix=list/');
	is($res->{status}, 200, 'listing: 200');
	is_deeply(decode_json_body($res),
		{ keys => [ 'list/1', 'list/2', 'list/3' ], next => undef },
		'the three keys, in order');

	$res = $skv->http('GET', '/kv/no-such-key');
	is_error($res, 404, 'not_found', 'GET of an absent key');

	$res = $skv->http('GET', '/kv/after');
	is($res->{content}, 'standby started', 'a key written after the backup');
};

subtest 'writes on the standby: 503 read_only with Retry-After, never queued' => sub {
	my (undef, $m) = metrics($skv);
	my $batches = metric($m, 'kvserver_write_batch_size_count');
	ok(defined $batches, 'the batch count is on /metrics');

	my $res = $skv->http('PUT', '/kv/greeting', 'changed', { 'Content-Type' => 'text/plain' });
	is_error($res, 503, 'read_only', 'PUT');
	is(header($res, 'Retry-After'), '1', 'PUT: Retry-After: 1');
	like(decode_json_body($res)->{message}, qr/standby/, 'PUT: the message says why');

	$res = $skv->http('DELETE', '/kv/greeting');
	is_error($res, 503, 'read_only', 'DELETE');
	is(header($res, 'Retry-After'), '1', 'DELETE: Retry-After: 1');

	$res = $skv->http('POST', '/kv/', '{"key":"posted","value":"v"}',
		{ 'Content-Type' => 'application/json' });
	is_error($res, 503, 'read_only', 'POST');
	is(header($res, 'Retry-After'), '1', 'POST: Retry-After: 1');

	# a large body is refused without being read, and drained
	$res = $skv->http('PUT', '/kv/big', 'x' x 200_000);
	is_error($res, 503, 'read_only', 'PUT of 200 kB');

	(undef, $m) = metrics($skv);
	is(metric($m, 'kvserver_write_batch_size_count'), $batches,
		'no batch reached the main thread: the writes were refused on their civetweb threads');

	is(psql_primary("SELECT kv_get('greeting')"), 'hello',
		'the primary still has the old value');
	is(psql_primary("SELECT count(*) FROM kv_store WHERE key IN ('posted', 'big')"),
		'0', 'and nothing new');
};

# Set kvserver.primary_url on the standby and reload; wait until a PUT
# shows it took effect (307 when set, 503 when empty).
sub set_primary_url
{
	my ($value) = @_;
	$standby->append_conf('postgresql.conf', "kvserver.primary_url = '$value'\n");
	$standby->reload;
	my $want = $value eq '' ? 503 : 307;
	(my $location = $value) =~ s{/$}{};
	$location .= '/kv/probe';
	my $deadline = time() + 10;
	my $status = 0;
	while (time() < $deadline)
	{
		# the new URL, not just any redirect: the old one may still be in use
		my $res = $skv->http('PUT', '/kv/probe', 'x');
		$status = $res->{status};
		return 1 if $status == $want &&
		  ($want == 503 || (header($res, 'Location') // '') eq $location);
		usleep(100_000);
	}
	diag("after setting kvserver.primary_url = '$value', PUT still answers $status");
	return 0;
}

subtest 'kvserver.primary_url set: 307 to the same path and query on the primary' => sub {
	ok(set_primary_url("$primary_url/"), 'the reload took effect');

	my $res = $skv->http('PUT', '/kv/dir%2Fa%20b?ttl=600&x=%41', 'redirected',
		{ 'Content-Type' => 'text/plain' });
	is($res->{status}, 307, 'PUT: 307');
	is($res->{reason}, 'Temporary Redirect', 'reason phrase');
	is(header($res, 'Location'), "$primary_url/kv/dir%2Fa%20b?ttl=600&x=%41",
		'Location: the primary URL (its trailing slash dropped), then the path as sent, still percent-encoded, and the query');
	like(header($res, 'Content-Type'), qr{^application/json}, 'a JSON body');
	is(decode_json_body($res)->{error}, 'read_only', 'error read_only');

	# follow it by hand
	my $ua = HTTP::Tiny->new(keep_alive => 0);
	my $follow = $ua->request('PUT', header($res, 'Location'),
		{ content => 'redirected', headers => { 'Content-Type' => 'text/plain' } });
	is($follow->{status}, 200, 'the same PUT at the Location: 200 (replaced) on the primary');
	is(psql_primary("SELECT convert_from(value, 'UTF8') FROM kv_store WHERE key = 'dir/a b'"),
		'redirected', 'the primary has the value under the decoded key');
	isnt(psql_primary("SELECT expires_at FROM kv_store WHERE key = 'dir/a b'"),
		'', 'and the ttl from the query string');

	$res = $skv->http('DELETE', '/kv/greeting');
	is($res->{status}, 307, 'DELETE: 307');
	is(header($res, 'Location'), "$primary_url/kv/greeting", 'DELETE: Location');

	$res = $skv->http('POST', '/kv/', '{"key":"posted","value":"v"}',
		{ 'Content-Type' => 'application/json' });
	is($res->{status}, 307, 'POST: 307');
	is(header($res, 'Location'), "$primary_url/kv/", 'POST: Location');

	# bytes that cannot go into a header as they are are never echoed
	# (civetweb itself refuses a raw 8-bit byte in the request line)
	my $raw = $skv->raw_http(
		"PUT /kv/caf\xc3\xa9?q=\xff HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nConnection: close\r\n\r\nv");
	my $p = parse_response($raw->{data});
	ok($p && $p->{status} != 307, 'raw 8-bit bytes in the target: no redirect')
	  or diag($raw->{data});
	unlike($raw->{data}, qr/^Location:/mi, 'no Location header');

	# reads are served, not redirected
	is($skv->http('GET', '/kv/greeting')->{status}, 200, 'GET is still served here');

	ok(set_primary_url("$primary_url/proxy"), 'a URL with a path prefix');
	$res = $skv->http('PUT', '/kv/k', 'v');
	is(header($res, 'Location'), "$primary_url/proxy/kv/k", 'the prefix is kept');

	ok(set_primary_url(''), 'kvserver.primary_url emptied again');
	is_error($skv->http('PUT', '/kv/k', 'v'), 503, 'read_only', 'PUT: 503 again');
};

subtest 'kvserver.primary_url is validated' => sub {
	foreach my $bad ('ftp://h:1', 'http://', 'http:///x', 'http://h/a b',
		'http://h/?q=1', 'http://h/#f', '10.0.0.1:8080', "http://h/caf\xc3\xa9")
	{
		my ($rc, $out, $err) = $primary->psql('postgres',
			"ALTER SYSTEM SET kvserver.primary_url = " . sql_quote($bad));
		isnt($rc, 0, "'$bad' is refused");
		like($err, qr/invalid value for parameter "kvserver.primary_url"/,
			"'$bad': says which setting");
	}
	my ($rc, $out, $err) = $primary->psql('postgres',
		"ALTER SYSTEM SET kvserver.primary_url = 'ftp://h'");
	like($err, qr/DETAIL:\s+The URL must start with http:\/\/ or https:\/\//,
		'the detail says why');
	like($err, qr/HINT:/, 'with a hint');
	foreach my $good ('http://10.0.0.1:8080', 'HTTPS://kv.example.com/base/', '')
	{
		($rc, $out, $err) = $primary->psql('postgres',
			"ALTER SYSTEM SET kvserver.primary_url = " . sql_quote($good));
		is($rc, 0, "'$good' is accepted") or diag($err);
	}
	psql_primary('ALTER SYSTEM RESET kvserver.primary_url');
};

subtest 'SQL writes on the standby fail with the read-only error (25006)' => sub {
	my ($rc, $out, $err) = $standby->psql('postgres',
		"SELECT kv_put('sqlkey', 'v')",
		extra_params => [ '-v', 'VERBOSITY=verbose' ]);
	isnt($rc, 0, 'kv_put fails');
	like($err, qr/ERROR:\s+25006: cannot execute .* in a read-only transaction/,
		'with SQLSTATE 25006, read_only_sql_transaction');
	($rc, $out, $err) = $standby->psql('postgres',
		"SELECT kv_delete('greeting')",
		extra_params => [ '-v', 'VERBOSITY=verbose' ]);
	like($err, qr/ERROR:\s+25006/, 'kv_delete too');
	is($standby->safe_psql('postgres', "SELECT kv_get('greeting')"), 'hello',
		'kv_get works');
};

subtest '/metrics: the role, the replay position and lag' => sub {
	my ($res, $m) = metrics($skv);
	is($res->{status}, 200, 'standby: 200');
	is(metric($m, 'kvserver_role', '{role="standby"}'), '1', 'standby: role standby 1');
	is(metric($m, 'kvserver_role', '{role="primary"}'), '0', 'standby: role primary 0');
	my $lsn_bytes = metric($m, 'kvserver_replay_lsn_bytes');
	ok(defined $lsn_bytes && $lsn_bytes > 0, 'kvserver_replay_lsn_bytes')
	  or diag($res->{content});
	my $lsn = $standby->safe_psql('postgres',
		"SELECT pg_last_wal_replay_lsn() - '0/0'::pg_lsn");
	cmp_ok($lsn_bytes, '<=', $lsn, 'at most what pg_last_wal_replay_lsn() says now');
	my $lag = metric($m, 'kvserver_replay_lag_seconds');
	ok(defined $lag && $lag >= 0 && $lag < 120, 'kvserver_replay_lag_seconds')
	  or diag($res->{content});

	my ($pres, $pm) = metrics($kv);
	is(metric($pm, 'kvserver_role', '{role="primary"}'), '1', 'primary: role primary 1');
	is(metric($pm, 'kvserver_role', '{role="standby"}'), '0', 'primary: role standby 0');
	ok(!exists $pm->{kvserver_replay_lsn_bytes} && !exists $pm->{kvserver_replay_lag_seconds},
		'primary: no replay metrics');

  SKIP:
	{
		my $promtool = '/usr/bin/promtool';
		if (!-x $promtool)
		{
			fail('promtool is installed') if $ENV{KV_REQUIRE_PROMTOOL};
			skip 'promtool is not installed', 2;
		}
		foreach my $page ([ 'standby', $res ], [ 'primary', $pres ])
		{
			my ($out, $err) = ('', '');
			my $text = $page->[1]{content};
			IPC::Run::run([ $promtool, 'check', 'metrics' ],
				'<', \$text, '>', \$out, '2>', \$err, IPC::Run::timeout(60));
			is($? >> 8, 0, "promtool check metrics accepts the $page->[0]'s page")
			  or diag("promtool:\n$out\n$err");
		}
	}
};

# kvcli, when it is built (see 040_kvcli.pl)
my $kvcli =
    defined $ENV{KVCLI} && $ENV{KVCLI} ne '' ? $ENV{KVCLI}
  : defined $ENV{TESTDIR} && $ENV{TESTDIR} ne '' ? "$ENV{TESTDIR}/kvcli/kvcli"
  :   "$FindBin::RealBin/../../kvcli/kvcli";

sub kvcli
{
	my ($args, %opts) = @_;
	my ($in, $out, $err) = ('', '', '');
	local %ENV = %ENV;
	delete $ENV{$_} foreach qw(KVSERVER_URL KVSERVER_USER KVSERVER_TOKEN KVSERVER_CACERT);
	$ENV{KVSERVER_URL} = $opts{env_url} if defined $opts{env_url};
	IPC::Run::run([ $kvcli, @$args ], '<', \$in, '>', \$out, '2>', \$err,
		IPC::Run::timeout(60));
	return { rc => $? >> 8, out => $out, err => $err };
}

subtest 'kvcli with several URLs: writes to the primary, reads from the first healthy node' => sub {
	if (!-x $kvcli)
	{
		fail("kvcli is built ($kvcli)") if $ENV{KV_REQUIRE_KVCLI};
		plan skip_all => 'kvcli is not built (make kvcli)';
	}
	my $dead = 'http://127.0.0.1:' . PostgreSQL::Test::Cluster::get_free_port();
	my $both = "$standby_url,$primary_url";

	my $r = kvcli([ '--url', $both, 'put', 'cli/1', 'one' ]);
	is($r->{rc}, 0, 'put with --url standby,primary: exit 0') or diag($r->{err});
	is(psql_primary("SELECT kv_get('cli/1')"), 'one', 'written on the primary');
	$primary->wait_for_catchup($standby);

	$r = kvcli([ '--url', $both, 'get', 'cli/1' ]);
	is($r->{rc}, 0, 'get: exit 0') or diag($r->{err});
	is($r->{out}, 'one', 'get: the value (from the standby, the first healthy node)');
	$r = kvcli([ '--url', $both, 'stats' ]);
	is(eval { decode_json($r->{out})->{role} }, 'standby',
		'stats: the first healthy node answered, the standby');
	$r = kvcli([ '--url', $both, '--primary', 'stats' ]);
	is(eval { decode_json($r->{out})->{role} }, 'primary',
		'stats --primary: the primary answered');
	$r = kvcli([ '--url', $both, '--primary', 'get', 'cli/1' ]);
	is($r->{out}, 'one', 'get --primary: the value');

	$r = kvcli([ '--url', "$dead,$both", 'get', 'cli/1' ]);
	is($r->{rc}, 0, 'an unreachable node first is passed over') or diag($r->{err});
	is($r->{out}, 'one', 'and the next one answers');
	$r = kvcli([ 'put', 'cli/2', 'two' ], env_url => "$dead, $standby_url ,$primary_url/");
	is($r->{rc}, 0, 'KVSERVER_URL with commas (and spaces, a trailing slash): put exit 0')
	  or diag($r->{err});
	is(psql_primary("SELECT kv_get('cli/2')"), 'two', 'written on the primary');

	$r = kvcli([ '--url', $both, 'list', 'cli/' ]);
	is($r->{rc}, 0, 'list: exit 0');
	$primary->wait_for_catchup($standby);
	$r = kvcli([ '--url', $both, 'list', 'cli/' ]);
	is($r->{out}, "cli/1\ncli/2\n", 'list: the keys');
	$r = kvcli([ '--url', $both, 'del', 'cli/2' ]);
	is($r->{rc}, 0, 'del: exit 0') or diag($r->{err});
	is(psql_primary("SELECT count(*) FROM kv_store WHERE key = 'cli/2'"), '0',
		'deleted on the primary');

	$r = kvcli([ '--url', "$dead,$standby_url", 'put', 'cli/3', 'x' ]);
	is($r->{rc}, 3, 'no primary among the nodes that answered: exit 3');
	like($r->{err}, qr/no primary node/, 'says so');
	like($r->{err}, qr/\Q$standby_url\E\/health: not the primary/, 'and what the standby said');
	$r = kvcli([ '--url', "$dead,$dead/x", 'get', 'cli/1' ]);
	is($r->{rc}, 4, 'no node reachable: exit 4');
	$r = kvcli([ '--url', $standby_url, 'put', 'cli/4', 'x' ]);
	is($r->{rc}, 3, 'a single standby URL: the PUT is sent as before, and refused: exit 3');
	like($r->{err}, qr/503 read_only/, 'with the server\'s error');
	$r = kvcli([ '--url', $standby_url, '--primary', 'get', 'cli/1' ]);
	is($r->{rc}, 3, 'a single standby URL with --primary: exit 3');
	is(kvcli([ '--url', "$primary_url,", 'get', 'cli/1' ])->{rc}, 2,
		'an empty URL in the list: usage error');
};

subtest 'promotion: the same worker takes writes, reads never fail' => sub {
	my $worker = $skv->worker_pid;
	like($worker, qr/^\d+$/, 'the standby has a kvserver worker');

	# GETs, one connection each, until told to stop; each status to a file
	my $log = $PostgreSQL::Test::Utils::tmp_check . '/promotion_gets.log';
	my $stop = $PostgreSQL::Test::Utils::tmp_check . '/promotion_gets.stop';
	unlink $log, $stop;
	my $pid = fork();
	die "fork: $!" unless defined $pid;
	if ($pid == 0)
	{
		open(my $fh, '>', $log) or POSIX::_exit(2);
		$fh->autoflush(1);
		my $ua = HTTP::Tiny->new(keep_alive => 0, timeout => 10);
		while (!-e $stop)
		{
			my $res = $ua->get("$standby_url/kv/greeting");
			my $ok = $res->{status} == 200 && $res->{content} eq 'hello';
			printf $fh "%.3f %d %s\n", time(), $res->{status}, $ok ? 'ok' : 'BAD';
			usleep(5_000);
		}
		close($fh);
		POSIX::_exit(0);
	}
	usleep(300_000);

	my $t0 = time();
	is($standby->safe_psql('postgres', 'SELECT pg_promote()'), 't', 'pg_promote()');
	my $promoted_at = time();
	my $role = '';
	while (time() < $promoted_at + 10)
	{
		$role = eval { decode_json_body($skv->http('GET', '/health'))->{role} } // '';
		last if $role eq 'primary';
		usleep(50_000);
	}
	my $noticed = time() - $promoted_at;
	is($role, 'primary', '/health says primary');
	cmp_ok($noticed, '<=', 10, 'within 10 s of pg_promote() returning');
	note(sprintf('noticed %.2f s after pg_promote() returned (%.2f s after it was called)',
			$noticed, time() - $t0));

	my $res = $skv->http('PUT', '/kv/promoted', 'yes');
	is($res->{status}, 201, 'a PUT right after: 201') or diag($res->{content});
	is($standby->safe_psql('postgres', "SELECT kv_get('promoted')"), 'yes',
		'stored on the promoted node');
	is($skv->http('DELETE', '/kv/after')->{status}, 204, 'DELETE: 204');
	is($skv->http('POST', '/kv/', '{"key":"posted2","value":"v"}',
			{ 'Content-Type' => 'application/json' })->{status}, 201, 'POST: 201');

	usleep(500_000);
	open(my $touch, '>', $stop) or die "$stop: $!";
	close($touch);
	waitpid($pid, 0);
	is($?, 0, 'the GET poller ended normally');
	open(my $fh, '<', $log) or die "$log: $!";
	my @lines = <$fh>;
	close($fh);
	my @bad = grep { !/ ok$/ } @lines;
	cmp_ok(scalar(@lines), '>=', 10, 'GETs were polled throughout (' . scalar(@lines) . ')');
	is(scalar(@bad), 0, 'every GET during the promotion was a 200 with the value')
	  or diag(join('', @bad[ 0 .. ($#bad < 9 ? $#bad : 9) ]));

	is($skv->worker_pid, $worker, 'the same worker process, not a restart');
	my ($m);
	(undef, $m) = metrics($skv);
	is(metric($m, 'kvserver_role', '{role="primary"}'), '1', '/metrics: role primary 1');
	ok(!exists $m->{kvserver_replay_lsn_bytes}, '/metrics: no replay figures');
	is($standby->safe_psql('postgres', "SELECT kv_put('sqlkey', 'v'); SELECT kv_get('sqlkey')"),
		"\nv", 'SQL kv_put works on the promoted node');
	ok($standby->log_contains('kvserver noticed that this node was promoted'),
		'the worker said so in the log');
};

$standby->stop;
$primary->stop;
done_testing();
