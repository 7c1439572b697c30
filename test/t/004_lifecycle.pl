
# Copyright (c) kvserver authors

# The worker's life: 503 until CREATE EXTENSION, serving after it without a
# restart, 503 again after DROP EXTENSION; acknowledged writes survive a
# restart and a crash; a fast shutdown under load is quick and clean.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::RealBin/../lib";

use KvServerTest;
use POSIX ();
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);

my $kv = KvServerTest->new('lifecycle', create_extension => 0);
my $node = $kv->node;

sub sql { return $node->safe_psql('postgres', $_[0], timeout => 60); }

# The 503 of README: "unavailable", a message that says what to do, Retry-After.
sub is_unavailable
{
	my ($res, $name, $need_create_hint) = @_;
	local $Test::Builder::Level = $Test::Builder::Level + 1;
	is_error($res, 503, 'unavailable', $name);
	like(header($res, 'Retry-After'), qr/^\d+$/, "$name: Retry-After header");
	if ($need_create_hint)
	{
		my $json = decode_json_body($res);
		like($json && $json->{message} // '', qr/CREATE EXTENSION/i,
			"$name: message mentions CREATE EXTENSION");
	}
}

subtest 'before CREATE EXTENSION every request is 503 unavailable' => sub {
	is_unavailable($kv->http('GET', '/health'), 'GET /health', 1);
	is_unavailable($kv->http('GET', '/kv/x'), 'GET /kv/x', 1);
	is_unavailable($kv->http('PUT', '/kv/x', 'v'), 'PUT /kv/x', 1);
	is_unavailable($kv->http('GET', '/kv/'), 'GET /kv/', 1);
};

my $worker_pid = $kv->worker_pid;
like($worker_pid, qr/^\d+$/, "the worker is running (pid $worker_pid)");

subtest 'CREATE EXTENSION: the worker serves within 15 s, without a restart' => sub {
	sql('CREATE EXTENSION kvserver');
	ok($kv->wait_for_health(200, 15), '/health 200 within 15 s');
	is($kv->http('PUT', '/kv/x', 'after create')->{status}, 201, 'PUT 201');
	my $get = $kv->http('GET', '/kv/x');
	is($get->{status}, 200, 'GET 200');
	is($get->{content}, 'after create', 'value');
	is($kv->worker_pid, $worker_pid, 'same worker process');
};

subtest 'DROP EXTENSION: 503 unavailable again' => sub {
	sql('DROP EXTENSION kvserver');
	ok($kv->wait_for_health(503, 15), '/health 503 within 15 s');
	is_unavailable($kv->http('GET', '/health'), 'GET /health', 1);
	is_unavailable($kv->http('GET', '/kv/x'), 'GET /kv/x (was cached)', 1);
	is_unavailable($kv->http('PUT', '/kv/y', 'v'), 'PUT /kv/y', 1);
	is($kv->worker_pid, $worker_pid, 'same worker process');
};

subtest 'CREATE EXTENSION again: serving again, on the new empty table' => sub {
	sql('CREATE EXTENSION kvserver');
	ok($kv->wait_for_health(200, 15), '/health 200 within 15 s');
	is($kv->http('GET', '/kv/x')->{status}, 404,
		'the key of the dropped table is gone (not served from the cache)');
	is($kv->http('PUT', '/kv/x', 'recreated')->{status}, 201, 'PUT 201');
	is($kv->http('GET', '/kv/x')->{content}, 'recreated', 'GET');
	is(sql("SELECT kv_get('x')"), 'recreated', 'SQL agrees');
};

subtest 'acknowledged writes survive a restart' => sub {
	is($kv->http('PUT', '/kv/durable', 'kept')->{status}, 201, 'PUT 201');
	$node->restart;
	ok($kv->wait_for_health(200, 30), '/health 200 after restart');
	my $get = $kv->http('GET', '/kv/durable');
	is($get->{status}, 200, 'GET 200');
	is($get->{content}, 'kept', 'value kept');
};

subtest 'acknowledged writes survive an immediate stop (crash)' => sub {
	my $acked = 0;
	for my $i (1 .. 50)
	{
		$acked++ if $kv->http('PUT', "/kv/crash/$i", "c$i")->{status} == 201;
	}
	is($acked, 50, '50 PUTs acknowledged');
	$node->stop('immediate');
	$node->start;
	ok($kv->wait_for_health(200, 30), '/health 200 after crash recovery');
	is(sql("SELECT count(*) FROM kv_store WHERE key LIKE 'crash/%'"), '50',
		'all 50 rows there');
	is($kv->http('GET', '/kv/crash/50')->{content}, 'c50', 'GET the last one');
};

subtest 'a request stuck behind a lock is 503 after request_timeout; service resumes' => sub {
	is($kv->http('PUT', '/kv/hot', 'cached')->{status}, 201, 'PUT hot');
	$kv->http('GET', '/kv/hot');
	is(header($kv->http('GET', '/kv/hot'), 'X-Cache'), 'HIT', 'hot is cached');
	my $bg = $node->background_psql('postgres');
	$bg->query_safe('BEGIN');
	$bg->query_safe('LOCK TABLE kv_store IN ACCESS EXCLUSIVE MODE');
	my $hit = $kv->http('GET', '/kv/hot');
	is($hit->{status}, 200, 'a cache hit is served while kv_store is locked');
	is(header($hit, 'X-Cache'), 'HIT', '... from the cache');
	my $res = $kv->http('PUT', '/kv/locked', 'v', undef, timeout => 60);
	is_unavailable($res, 'PUT while kv_store is locked', 0);
	$bg->query_safe('ROLLBACK');
	$bg->quit;
	ok($kv->wait_for_health(200, 30), '/health 200 once the lock is gone');
	is($kv->http('PUT', '/kv/unlocked', 'w')->{status}, 201, 'PUT 201');
	is($kv->http('GET', '/kv/unlocked')->{content}, 'w', 'GET');
};

# ---------------------------------------------------------------------------
# Fast shutdown with requests in flight.
#
# 20 children PUT and GET their own keys over raw sockets (Connection: close)
# and log every outcome.  A response must be complete (headers and exactly
# Content-Length bytes) or absent (refused, reset, closed before a byte):
# never a truncated one.
# ---------------------------------------------------------------------------

my $nclients = 20;
my $dir = PostgreSQL::Test::Utils::tempdir();

# one request; returns (kind, status, content, detail) with kind one of
# 'response', 'conn_error', 'bad'
sub one_request
{
	my ($method, $path, $body) = @_;
	my $req = "$method $path HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n";
	$req .= 'Content-Length: ' . length($body) . "\r\n" if defined $body;
	$req .= "\r\n";
	$req .= $body if defined $body;
	my $raw = $kv->raw_http($req, timeout => 30);
	return ('conn_error', 0, undef, $raw->{connect_error})
	  if defined $raw->{connect_error};
	return ('conn_error', 0, undef, $raw->{error} // 'closed')
	  if $raw->{data} eq '';
	return ('bad', 0, undef, 'no response within 30 s, connection open')
	  if $raw->{timed_out};
	my $res = parse_response($raw->{data});
	return ('bad', 0, undef, 'truncated or malformed header: '
		  . substr($raw->{data}, 0, 80))
	  unless $res;
	return ('bad', $res->{status}, undef,
		"truncated body: Content-Length $res->{headers}{'content-length'}, "
		  . length($res->{content}) . ' bytes')
	  unless $res->{complete};
	return ('bad', $res->{status}, undef, 'bytes after the response')
	  if length $res->{extra};
	return ('response', $res->{status}, $res->{content}, '');
}

sub client_loop
{
	my ($id) = @_;
	open(my $log, '>', "$dir/client$id.log") or POSIX::_exit(2);
	$log->autoflush(1);
	my $i = 0;
	while (!-e "$dir/stop")
	{
		$i++;
		my $key = "load/$id/$i";
		my $value = "value $id $i " . ('x' x ($i % 300));
		my ($kind, $status, $content, $detail) =
		  one_request('PUT', "/kv/$key", $value);
		print $log "PUT $key $kind $status\n";
		print $log "BAD PUT $key: $detail\n" if $kind eq 'bad';
		if ($kind eq 'conn_error')
		{
			usleep(20_000);
			next;
		}
		($kind, $status, $content, $detail) = one_request('GET', "/kv/$key");
		print $log "GET $key $kind $status\n";
		print $log "BAD GET $key: $detail\n" if $kind eq 'bad';
		print $log "BAD GET $key: 200 with the wrong value\n"
		  if $kind eq 'response' && $status == 200 && $content ne $value;
	}
	close($log);
	POSIX::_exit(0);
}

sub count_acked_puts
{
	my $n = 0;
	foreach my $f (glob("$dir/client*.log"))
	{
		open(my $fh, '<', $f) or next;
		while (<$fh>)
		{
			$n++ if /^PUT \S+ response 20[01]\n/;
		}
		close($fh);
	}
	return $n;
}

subtest 'fast shutdown with 20 clients in flight is bounded and clean' => sub {
	my @pids;
	for my $id (1 .. $nclients)
	{
		my $pid = fork();
		die "fork: $!" unless defined $pid;
		client_loop($id) if $pid == 0;    # never returns
		push @pids, $pid;
	}

	# let the load run until plenty of writes were acknowledged
	my $deadline = time() + 30;
	usleep(50_000) while count_acked_puts() < 200 && time() < $deadline;
	cmp_ok(count_acked_puts(), '>=', 200, 'clients got writes acknowledged');

	my $t0 = time();
	my $stopped = $node->stop('fast', fail_ok => 1);
	my $elapsed = time() - $t0;
	ok($stopped, 'pg_ctl stop -m fast succeeded');
	cmp_ok($elapsed, '<', 30, sprintf('stop returned in %.1f s (< 30 s)', $elapsed));

	open(my $fh, '>', "$dir/stop") or die "stop file: $!";
	close($fh);
	foreach my $pid (@pids)
	{
		waitpid($pid, 0);
		is($? >> 8, 0, "client $pid exited cleanly") if $?;
	}

	# what did the clients see?
	my (%acked, @bad, %statuses);
	foreach my $f (sort glob("$dir/client*.log"))
	{
		open(my $in, '<', $f) or die "$f: $!";
		while (my $line = <$in>)
		{
			chomp $line;
			if ($line =~ /^BAD /)
			{
				push @bad, $line;
			}
			elsif (my ($method, $key, $status) =
				$line =~ /^(PUT|GET) (\S+) response (\d+)$/)
			{
				$statuses{"$method $status"}++;
				$acked{$key} = 1 if $method eq 'PUT' && $status =~ /^2/;
			}
			elsif ($line =~ /^(PUT|GET) (\S+) conn_error/)
			{
				$statuses{"$1 connection error"}++;
			}
		}
		close($in);
	}
	note('outcomes: ' . join(', ', map { "$_: $statuses{$_}" } sort keys %statuses));
	is(scalar(@bad), 0,
		'every response was complete, or the connection failed without one')
	  or diag(join("\n", @bad[ 0 .. ($#bad < 20 ? $#bad : 19) ]));
	my @odd = grep { /^(PUT|GET) (\d+)$/ && $2 >= 500 && $2 != 503 } keys %statuses;
	is_deeply(\@odd, [], 'failures during shutdown are 503, never another 5xx');

	# every acknowledged write is in the table
	$node->stop('immediate', fail_ok => 1) unless $stopped;
	ok($node->start(fail_ok => 1), 'node starts again');
	ok($kv->wait_for_health(200, 30), '/health 200 after the restart');
	my %stored;
	foreach my $line (split /\n/,
		sql("SELECT key || ' ' || convert_from(value, 'UTF8') FROM kv_store WHERE key LIKE 'load/%'"))
	{
		my ($k, $v) = split / /, $line, 2;
		$stored{$k} = $v;
	}
	my @lost = grep { !exists $stored{$_} } sort keys %acked;
	is(scalar(@lost), 0,
		scalar(keys %acked) . ' acknowledged writes are all in the table')
	  or diag("lost: @lost[0 .. ($#lost < 20 ? $#lost : 19)]");
	my @wrong = grep {
		my ($id, $i) = m{^load/(\d+)/(\d+)$};
		exists $stored{$_} && $stored{$_} ne "value $id $i " . ('x' x ($i % 300))
	} sort keys %acked;
	is(scalar(@wrong), 0, 'with the values written') or diag("wrong: @wrong");
};

subtest 'after the fast shutdown the server serves again' => sub {
	is($kv->http('GET', '/health')->{status}, 200, '/health 200');
	is($kv->http('PUT', '/kv/after-stop', 'ok')->{status}, 201, 'PUT 201');
	is($kv->http('GET', '/kv/after-stop')->{content}, 'ok', 'GET');
	is($kv->http('GET', '/kv/durable')->{content}, 'kept', 'old data kept');
};

done_testing();
