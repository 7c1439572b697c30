
# Copyright (c) kvserver authors

# Conditional requests: If-Match / If-None-Match on PUT, DELETE, GET and
# HEAD, each with its status and error code; 304 without a body; malformed
# tags; then optimistic concurrency: forked clients doing read-modify-write
# increments with If-Match must not lose an update.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::RealBin/../lib";

use JSON::PP;
use KvServerTest;
use POSIX ();
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);

my $kv = KvServerTest->new('conditional');
my $node = $kv->node;

# the current ETag and value of a key, or ('', undef) when absent
sub current
{
	my ($key) = @_;
	my $res = $kv->http('GET', key_path($key));
	return ('', undef) unless $res->{status} == 200;
	return (header($res, 'ETag'), $res->{content});
}

sub put_ok
{
	my ($key, $value, $status) = @_;
	local $Test::Builder::Level = $Test::Builder::Level + 1;
	my $res = $kv->http('PUT', key_path($key), $value,
		{ 'Content-Type' => 'text/plain' });
	is($res->{status}, $status, "PUT $key: $status");
	return header($res, 'ETag');
}

# A request over a raw socket, parsed; any bytes after the response show up
# in {extra}.
sub raw
{
	my ($method, $key, $headers, $body) = @_;
	my $req = "$method " . key_path($key) . " HTTP/1.1\r\nHost: 127.0.0.1\r\n";
	$req .= "$_\r\n" foreach @$headers;
	$req .= 'Content-Length: ' . length($body) . "\r\n" if defined $body;
	$req .= "Connection: close\r\n\r\n";
	$req .= $body if defined $body;
	my $r = $kv->raw_http($req);
	return parse_response($r->{data}, head => $method eq 'HEAD', eof => $r->{eof});
}

subtest 'PUT If-None-Match: * creates only' => sub {
	my $res = $kv->http('PUT', key_path('c/create'), 'one',
		{ 'If-None-Match' => '*' });
	is($res->{status}, 201, 'absent key: 201');
	my $etag = header($res, 'ETag');
	my $json = decode_json_body($res);
	is($etag, qq{"$json->{version}"}, 'ETag is "<version>" of the reply');

	$res = $kv->http('PUT', key_path('c/create'), 'two', { 'If-None-Match' => '*' });
	is_error($res, 412, 'precondition_failed', 'existing key');
	is(header($res, 'ETag'), '', 'a 412 carries no ETag');
	my ($now, $value) = current('c/create');
	is($value, 'one', 'value unchanged');
	is($now, $etag, 'ETag unchanged');
};

subtest 'PUT If-Match: "<etag>" replaces only that version' => sub {
	my $v1 = put_ok('c/match', 'v1', 201);
	my $res = $kv->http('PUT', key_path('c/match'), 'v2', { 'If-Match' => $v1 });
	is($res->{status}, 200, 'current ETag: 200');
	my $v2 = header($res, 'ETag');
	like($v2, qr/^"\d+"$/, 'new ETag');
	isnt($v2, $v1, 'ETag changed');
	is((current('c/match'))[0], $v2, 'GET reports the new ETag');

	$res = $kv->http('PUT', key_path('c/match'), 'v3', { 'If-Match' => $v1 });
	is_error($res, 412, 'precondition_failed', 'old ETag');
	my ($etag, $value) = current('c/match');
	is($value, 'v2', 'value unchanged');
	is($etag, $v2, 'ETag unchanged');

	# a version that never was
	is_error($kv->http('PUT', key_path('c/match'), 'v4',
		{ 'If-Match' => '"999999999"' }),
		412, 'precondition_failed', 'unknown version');

	# the ETag of another key does not do
	my $other = put_ok('c/match-other', 'o', 201);
	is_error($kv->http('PUT', key_path('c/match'), 'v5', { 'If-Match' => $other }),
		412, 'precondition_failed', "another key's ETag");
	is((current('c/match'))[1], 'v2', 'value still unchanged');

	# absent key: 412 and not created
	is_error($kv->http('PUT', key_path('c/absent'), 'x', { 'If-Match' => $v2 }),
		412, 'precondition_failed', 'absent key with an ETag');
	is($kv->http('GET', key_path('c/absent'))->{status}, 404, 'not created');

	# a deleted and re-created key has a new version: the old ETag fails
	my $d1 = put_ok('c/recreated', 'a', 201);
	is($kv->http('DELETE', key_path('c/recreated'))->{status}, 204, 'DELETE');
	my $d2 = put_ok('c/recreated', 'b', 201);
	isnt($d2, $d1, 're-created key has a new ETag');
	is_error($kv->http('PUT', key_path('c/recreated'), 'c', { 'If-Match' => $d1 }),
		412, 'precondition_failed', 'ETag from before the re-creation');
};

subtest 'PUT If-Match: * replaces only an existing key' => sub {
	my $v1 = put_ok('c/any', 'v1', 201);
	my $res = $kv->http('PUT', key_path('c/any'), 'v2', { 'If-Match' => '*' });
	is($res->{status}, 200, 'existing key: 200');
	isnt(header($res, 'ETag'), $v1, 'new ETag');
	is((current('c/any'))[1], 'v2', 'replaced');

	is_error($kv->http('PUT', key_path('c/any-absent'), 'x', { 'If-Match' => '*' }),
		412, 'precondition_failed', 'absent key');
	is($kv->http('GET', key_path('c/any-absent'))->{status}, 404, 'not created');
};

subtest 'DELETE If-Match deletes only that version' => sub {
	my $v1 = put_ok('c/del', 'v1', 201);
	my $v2 = put_ok('c/del', 'v2', 200);
	is_error($kv->http('DELETE', key_path('c/del'), undef, { 'If-Match' => $v1 }),
		412, 'precondition_failed', 'old ETag');
	my ($etag, $value) = current('c/del');
	is($value, 'v2', 'still there');
	is($etag, $v2, 'same ETag');

	my $res = $kv->http('DELETE', key_path('c/del'), undef, { 'If-Match' => $v2 });
	is($res->{status}, 204, 'current ETag: 204');
	is($res->{content} // '', '', '204 without a body');
	is($kv->http('GET', key_path('c/del'))->{status}, 404, 'gone');

	is_error($kv->http('DELETE', key_path('c/del'), undef, { 'If-Match' => $v2 }),
		412, 'precondition_failed', 'the same ETag again, key absent');

	put_ok('c/del-any', 'x', 201);
	is($kv->http('DELETE', key_path('c/del-any'), undef, { 'If-Match' => '*' })
		  ->{status}, 204, 'If-Match: * on an existing key: 204');
	is_error($kv->http('DELETE', key_path('c/del-any'), undef, { 'If-Match' => '*' }),
		412, 'precondition_failed', 'If-Match: * on an absent key');

	# unconditional DELETE is unaffected
	is_error($kv->http('DELETE', key_path('c/del-any')), 404, 'not_found',
		'plain DELETE of the absent key');
};

subtest 'GET/HEAD If-None-Match: 304 without a body, with the ETag' => sub {
	my $v1 = put_ok('c/get', 'the value', 201);

	# the PUT installed the value in the cache; empty it, so that the first
	# GET goes through the worker (cache miss) and the next ones are
	# lock-free cache hits: both paths must answer 304
	$kv->node->safe_psql('postgres', 'SELECT kv_cache_reset()');
	foreach my $path_kind ('MISS', 'HIT')
	{
		my $res = raw('GET', 'c/get', ["If-None-Match: $v1"]);
		ok($res, "$path_kind: a parsable response");
		next unless $res;
		is($res->{status}, 304, "$path_kind: current ETag: 304");
		is($res->{headers}{etag}, $v1, "$path_kind: 304 carries the ETag");
		is($res->{extra}, '', "$path_kind: 304 has no body");
		ok(!exists $res->{headers}{'content-type'},
			"$path_kind: 304 has no Content-Type");
		my $cl = $res->{headers}{'content-length'};
		ok(!defined $cl || $cl eq '0', "$path_kind: no non-zero Content-Length");
		is($res->{headers}{'x-cache'}, $path_kind, "X-Cache: $path_kind");
	}

	my $res = raw('GET', 'c/get', ['If-None-Match: *']);
	is($res && $res->{status}, 304, 'If-None-Match: *: 304');
	is($res && $res->{extra}, '', '... without a body');

	$res = raw('GET', 'c/get', [qq{If-None-Match: W/$v1}]);
	is($res && $res->{status}, 304, 'weak form of the current ETag: 304');

	$res = raw('HEAD', 'c/get', ["If-None-Match: $v1"]);
	is($res && $res->{status}, 304, 'HEAD with the current ETag: 304');
	is($res && $res->{extra}, '', '... nothing after the headers');
	is($res && $res->{headers}{etag}, $v1, '... with the ETag');

	# HTTP::Tiny too
	$res = $kv->http('GET', key_path('c/get'), undef, { 'If-None-Match' => $v1 });
	is($res->{status}, 304, 'HTTP::Tiny sees 304');
	is($res->{content} // '', '', 'and no content');

	# another version: 200 with the body
	$res = $kv->http('GET', key_path('c/get'), undef,
		{ 'If-None-Match' => '"999999999"' });
	is($res->{status}, 200, 'another ETag: 200');
	is($res->{content}, 'the value', 'with the value');

	my $v2 = put_ok('c/get', 'new value', 200);
	foreach my $n (1 .. 2)
	{
		$res = $kv->http('GET', key_path('c/get'), undef, { 'If-None-Match' => $v1 });
		is($res->{status}, 200, "after a PUT, the old ETag ($n): 200");
		is($res->{content}, 'new value', '... with the new value');
		is(header($res, 'ETag'), $v2, '... and the new ETag');
	}
	$res = raw('GET', 'c/get', ["If-None-Match: $v2"]);
	is($res && $res->{status}, 304, 'the new ETag: 304');

	# absent key: 404, whatever the condition
	is_error($kv->http('GET', key_path('c/get-absent'), undef,
		{ 'If-None-Match' => '*' }),
		404, 'not_found', 'If-None-Match: * on an absent key');
	is_error($kv->http('GET', key_path('c/get-absent'), undef,
		{ 'If-None-Match' => $v1 }),
		404, 'not_found', 'If-None-Match: <etag> on an absent key');
};

subtest 'malformed If-Match / If-None-Match: 400 bad_request, nothing changes' => sub {
	my $etag = put_ok('c/bad', 'v', 201);
	my ($num) = $etag =~ /(\d+)/;
	my @cases = (
		[ 'PUT', 'If-Match', $num, 'unquoted tag' ],
		[ 'PUT', 'If-Match', '"abc"', 'non-numeric tag' ],
		[ 'PUT', 'If-Match', '""', 'empty tag' ],
		[ 'PUT', 'If-Match', '"0"', 'version 0' ],
		[ 'PUT', 'If-Match', '"-1"', 'negative version' ],
		[ 'PUT', 'If-Match', qq{"$num}, 'unterminated tag' ],
		[ 'PUT', 'If-Match', qq{$etag, "999999"}, 'a list' ],
		[ 'PUT', 'If-Match', '**', 'two stars' ],
		[ 'PUT', 'If-Match', '', 'empty header' ],
		[ 'PUT', 'If-None-Match', $etag, 'If-None-Match with a tag (only * is allowed on PUT)' ],
		[ 'PUT', 'If-None-Match', 'abc', 'garbage If-None-Match' ],
		[ 'DELETE', 'If-Match', $num, 'unquoted tag' ],
		[ 'DELETE', 'If-Match', qq{"$num}, 'unterminated tag' ],
		[ 'DELETE', 'If-Match', qq{$etag, $etag}, 'a list' ],
		[ 'GET', 'If-None-Match', $num, 'unquoted tag' ],
		[ 'GET', 'If-None-Match', qq{$etag, "1"}, 'a list' ],
		[ 'GET', 'If-None-Match', '"x"', 'non-numeric tag' ],
		[ 'HEAD', 'If-None-Match', '"x"', 'non-numeric tag' ],
	);
	foreach my $c (@cases)
	{
		my ($method, $name, $value, $what) = @$c;
		my $body = $method eq 'PUT' ? 'changed' : undef;
		my $res = raw($method, 'c/bad', ["$name: $value"], $body);
		ok($res, "$method $name: $what: a response") or next;
		if ($method eq 'HEAD')
		{
			is($res->{status}, 400, "$method $name: $what: 400");
			is($res->{extra}, '', "$method: no body");
		}
		else
		{
			is_error($res, 400, 'bad_request', "$method $name: $value ($what)");
		}
	}

	# two of the same header, each fine alone
	my $res = raw('PUT', 'c/bad', [ "If-Match: $etag", "If-Match: $etag" ], 'changed');
	is_error($res, 400, 'bad_request', 'PUT with If-Match twice');
	$res = raw('GET', 'c/bad', [ "If-None-Match: $etag", "If-None-Match: $etag" ]);
	is_error($res, 400, 'bad_request', 'GET with If-None-Match twice');
	$res = raw('DELETE', 'c/bad', [ "If-Match: $etag", "If-Match: *" ]);
	is_error($res, 400, 'bad_request', 'DELETE with If-Match twice');

	# If-None-Match: * with If-Match on one PUT
	$res = raw('PUT', 'c/bad', [ 'If-None-Match: *', "If-Match: $etag" ], 'changed');
	is_error($res, 400, 'bad_request', 'PUT with If-None-Match: * and If-Match');

	my ($now, $value) = current('c/bad');
	is($value, 'v', 'value unchanged by all of that');
	is($now, $etag, 'ETag unchanged');
};

subtest 'concurrent read-modify-write with If-Match loses no update' => sub {
	my $key = 'c/counter';
	my $nclients = 4;
	my $attempts = 50;
	my $dir = "$PostgreSQL::Test::Utils::tmp_check/conditional_rmw";
	mkdir $dir;
	unlink glob("$dir/*");

	my $initial = 1000;
	my $e0 = put_ok($key, $initial, 201);

	my @pids;
	for my $id (1 .. $nclients)
	{
		my $pid = fork();
		die "fork: $!" unless defined $pid;
		if ($pid == 0)
		{
			# child: never returns, never runs END blocks
			my $ok = open(my $log, '>', "$dir/client$id.log");
			POSIX::_exit(2) unless $ok;
			$log->autoflush(1);
			usleep(10_000) until -e "$dir/go" || !-d $dir;
			for my $i (1 .. $attempts)
			{
				my $get = $kv->http('GET', key_path($key));
				if ($get->{status} != 200)
				{
					print $log "GETFAIL $get->{status}\n";
					next;
				}
				my $etag = header($get, 'ETag');
				my $v = $get->{content};
				if ($v !~ /^\d+$/)
				{
					print $log "BADVALUE $v\n";
					next;
				}
				my $put = $kv->http('PUT', key_path($key), $v + 1,
					{ 'If-Match' => $etag, 'Content-Type' => 'text/plain' });
				my $st = $put->{status};
				if ($st == 200)
				{
					printf $log "OK %s %s %d\n", $etag, header($put, 'ETag'), $v + 1;
				}
				elsif ($st == 412)
				{
					print $log "412\n";
				}
				else
				{
					my $c = $put->{content} // '';
					$c =~ s/\s+/ /g;
					print $log "OTHER $st $c\n";
				}
			}
			close($log);
			POSIX::_exit(0);
		}
		push @pids, $pid;
	}
	open(my $go, '>', "$dir/go") or die "go: $!";
	close($go);
	foreach my $pid (@pids)
	{
		waitpid($pid, 0);
		is($?, 0, "client $pid exited cleanly");
	}

	my ($ok, $failed, @other, %next_of, @dup);
	$ok = $failed = 0;
	foreach my $f (sort glob("$dir/client*.log"))
	{
		open(my $fh, '<', $f) or die "$f: $!";
		while (my $line = <$fh>)
		{
			chomp $line;
			if ($line =~ /^OK (\S+) (\S+) (\d+)$/)
			{
				$ok++;
				push @dup, "$1 used twice" if exists $next_of{$1};
				$next_of{$1} = [ $2, $3 ];
			}
			elsif ($line eq '412') { $failed++; }
			else { push @other, "$f: $line"; }
		}
		close($fh);
	}
	note "$ok successful increments, $failed 412s";
	is_deeply(\@other, [], 'every attempt was a 200 or a 412');
	is($ok + $failed, $nclients * $attempts, 'every attempt is accounted for');
	cmp_ok($ok, '>', 0, 'some increments succeeded');
	is_deeply(\@dup, [], 'no two successes replaced the same version');

	my ($final_etag, $final) = current($key);
	is($final, $initial + $ok, "final value is initial + successes ($initial + $ok)");
	is($node->safe_psql('postgres',
		"SELECT convert_from(value, 'UTF8') FROM kv_store WHERE key = " . sql_quote($key)),
		$initial + $ok, 'kv_store agrees');

	# the successes form one chain of versions from the first to the last
	my ($e, $n, $expect, $chain_ok) = ($e0, 0, $initial, 1);
	while (exists $next_of{$e})
	{
		my ($next, $value) = @{ $next_of{$e} };
		$expect++;
		if ($value != $expect)
		{
			$chain_ok = 0;
			diag "version $e was replaced by $value, expected $expect";
		}
		$e = $next;
		$n++;
		last if $n > $ok;
	}
	ok($chain_ok, 'each success wrote one more than the version it replaced');
	is($n, $ok, 'the successes chain from the first version to the last');
	is($e, $final_etag, 'the chain ends at the current ETag');
};

done_testing();
