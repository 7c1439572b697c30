
# Copyright (c) kvserver authors

# Extension version 1.1 and the content type rule.
#
# (a) Upgrade: 1.0 installed explicitly, keys written over HTTP and SQL and
#     cached, a row with a CR/LF content type written by plain SQL; ALTER
#     EXTENSION kvserver UPDATE refuses with a report (how many, the first
#     keys, the UPDATE that fixes them), the fix from the hint is run, the
#     update succeeds, and every row, value, version and cache entry is as it
#     was; writes after the update are seen by the next GET.
# (b) On 1.1 the CHECK constraint refuses a header-splitting and a 5000-byte
#     content type; with the constraint dropped (rows any SQL role could have
#     written before 1.1), GET still sends one well-formed reply with
#     application/octet-stream, and the worker keeps serving.
# (c) HTTP PUT refuses an invalid Content-Type with 400 before the database;
#     the C validator (through HTTP) and the CHECK constraint (through SQL)
#     give the same verdict on a set of tricky strings and on random ones.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::RealBin/../lib";

use KvServerTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);

my $kv = KvServerTest->new('upgrade', create_extension => 0);
my $node = $kv->node;

sub sql { return $node->safe_psql('postgres', $_[0]); }

# Runs SQL that may fail; returns (exit code, stdout, stderr), stderr with
# SQLSTATEs (VERBOSITY verbose).
sub try_sql
{
	my ($query) = @_;
	my ($stdout, $stderr);
	my $rc = $node->psql('postgres', "\\set VERBOSITY verbose\n$query",
		stdout => \$stdout, stderr => \$stderr);
	return ($rc, $stdout, $stderr);
}

# A string of characters as UTF-8 bytes.
sub utf8_bytes
{
	my ($s) = @_;
	utf8::encode($s);
	return $s;
}

# A string as an SQL expression that survives any character in it.
sub sql_text
{
	my ($s) = @_;
	return "convert_from('\\x" . unpack('H*', utf8_bytes($s)) . "'::bytea, 'UTF8')";
}

# Every row as key => "value-hex content_type version expires_at".
sub snapshot
{
	my %rows;
	foreach my $line (split /\n/, sql(
		"SELECT encode(convert_to(key, 'UTF8'), 'hex'), encode(value, 'hex'),"
		  . " coalesce(encode(convert_to(content_type, 'UTF8'), 'hex'), 'null'),"
		  . " version, coalesce(expires_at::text, 'never') FROM kv_store"))
	{
		my ($key, @rest) = split /\|/, $line;
		$rows{ pack('H*', $key) } = join(' ', @rest);
	}
	return \%rows;
}

# One GET or HEAD over a raw socket: the exact bytes, parsed.
sub raw_get
{
	my ($path, $method) = @_;
	$method ||= 'GET';
	my $raw = $kv->raw_http(
		"$method $path HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
	my $res = parse_response($raw->{data}, eof => $raw->{eof}, head => $method eq 'HEAD');
	return ($res, $raw);
}

# A PUT with exactly this Content-Type header (characters, sent as UTF-8);
# returns the status ('none' without a response) and the error message.
sub put_with_type
{
	my ($path, $type) = @_;
	my $raw = $kv->raw_http("PUT $path HTTP/1.1\r\nHost: 127.0.0.1\r\n"
		  . 'Content-Type: ' . utf8_bytes($type)
		  . "\r\nContent-Length: 1\r\nConnection: close\r\n\r\nv");
	my $res = parse_response($raw->{data});
	return ('none', '') unless $res;
	my $json = decode_json_body($res);
	return ($res->{status}, ref $json eq 'HASH' ? $json->{message} // '' : '');
}

my $worker_pid;

# --------------------------------------------------------------------------
# (a) 1.0 -> 1.1

my %bad = (
	'bad-crlf' => "text/plain\r\nSet-Cookie: evil=1",
	"it's\n\"bad\"\\" => 'text',    # a key to quote: quote, newline, backslash
);

subtest '1.0 installed explicitly, keys written over HTTP and SQL and cached' => sub {
	sql("CREATE EXTENSION kvserver VERSION '1.0'");
	is(sql("SELECT extversion FROM pg_extension WHERE extname = 'kvserver'"),
		'1.0', 'extversion 1.0');
	ok($kv->wait_for_health(200, 30), '/health 200');
	$worker_pid = $kv->worker_pid;

	is($kv->http('PUT', '/kv/h-text', 'over http',
			{ 'Content-Type' => 'text/plain; charset=utf-8' })->{status},
		201, 'HTTP PUT text');
	is($kv->http('PUT', '/kv/h-bin', join('', map { chr } 0 .. 255),
			{ 'Content-Type' => 'application/octet-stream' })->{status},
		201, 'HTTP PUT binary');
	is($kv->http('PUT', '/kv/h-ttl?ttl=3600', 'for an hour',
			{ 'Content-Type' => 'text/x-ttl' })->{status},
		201, 'HTTP PUT with a TTL');
	sql("SELECT kv_put('s-text', 'over sql')");
	sql("SELECT kv_put('s-bytea', '\\xdeadbeef00ff'::bytea)");
	sql("SELECT kv_put('s-ttl', 'sql for an hour', interval '1 hour')");
	is($kv->http('POST', '/kv/', '{"key":"h-post","value":"posted"}',
			{ 'Content-Type' => 'application/json' })->{status},
		201, 'HTTP POST');

	foreach my $key (qw(h-text h-bin h-ttl s-text s-bytea s-ttl h-post))
	{
		$kv->http('GET', "/kv/$key");
		is(header($kv->http('GET', "/kv/$key"), 'X-Cache'), 'HIT', "$key is cached");
	}

	# 1.0 has no constraint: plain SQL can store anything
	foreach my $key (sort keys %bad)
	{
		sql('INSERT INTO kv_store (key, value, content_type) VALUES ('
			  . sql_text($key) . ", 'evil', " . sql_text($bad{$key}) . ')');
	}
	my ($res, $raw) = raw_get('/kv/bad-crlf');
	is($res && $res->{status}, 200, 'on 1.0, GET of the CR/LF row: 200');
	is($res && $res->{headers}{'content-type'}, 'application/octet-stream',
		'served as application/octet-stream');
	unlike($raw->{data}, qr/Set-Cookie/i, 'no Set-Cookie on the wire');
};

my $before = snapshot();

subtest 'ALTER EXTENSION kvserver UPDATE refuses, with a report' => sub {
	my ($rc, $out, $err) = try_sql('ALTER EXTENSION kvserver UPDATE');
	isnt($rc, 0, 'the update fails');
	like($err, qr/ERROR:\s+23514: cannot update kvserver to 1\.1: 2 row\(s\) of kv_store/,
		'check_violation, saying how many rows') or diag($err);
	like($err, qr/DETAIL:.*"bad-crlf"/, 'DETAIL names a key');
	like($err, qr/DETAIL:.*"it's\\n\\"bad\\"\\\\"/,
		'a key with a quote, newline and backslash is JSON-quoted')
	  or diag($err);
	like($err, qr/HINT:.*(UPDATE \S+\.kv_store SET content_type = NULL WHERE .*;)\s*$/m,
		'HINT gives the UPDATE') or diag($err);
	is(sql("SELECT extversion FROM pg_extension WHERE extname = 'kvserver'"),
		'1.0', 'still 1.0');
	is(sql("SELECT count(*) FROM pg_constraint WHERE conname = 'kv_store_content_type_valid'"),
		'0', 'no constraint left behind');
	is_deeply(snapshot(), $before, 'every row unchanged');

	# fix the rows exactly as the hint says
	my ($update) = $err =~ /HINT:.*(UPDATE \S+\.kv_store SET content_type = NULL WHERE .*;)\s*$/m;
	ok(defined $update, 'the UPDATE is in the hint');
	note("hint: $update");
	($rc, $out, $err) = try_sql($update);
	is($rc, 0, 'the UPDATE from the hint runs') or diag($err);
	is(sql('SELECT count(*) FROM kv_store WHERE content_type IS NULL AND value = \'evil\''),
		'2', 'it fixed the two rows');
};

subtest 'the update succeeds then, and keeps every row and the cache' => sub {
	my ($rc, $out, $err) = try_sql('ALTER EXTENSION kvserver UPDATE');
	is($rc, 0, 'ALTER EXTENSION kvserver UPDATE') or diag($err);
	is(sql("SELECT extversion FROM pg_extension WHERE extname = 'kvserver'"),
		'1.1', 'extversion 1.1');

	my $after = snapshot();
	is_deeply([ sort keys %$after ], [ sort keys %$before ], 'the same keys');
	foreach my $key (sort keys %$before)
	{
		my ($value, $type, $version, $expires) = split / /, $before->{$key};
		my ($value2, $type2, $version2, $expires2) = split / /, ($after->{$key} // '');
		if ($bad{$key})
		{
			is("$value2 $type2 $expires2", "$value null $expires",
				"fixed row: same value, content_type NULL");
		}
		else
		{
			is($after->{$key}, $before->{$key},
				"$key: same value, content type, version and expiry");
		}
	}

	foreach my $key (grep { !$bad{$_} } sort keys %$before)
	{
		my ($value, $type, $version) = split / /, $before->{$key};
		my $res = $kv->http('GET', key_path($key));
		is($res->{status}, 200, "GET $key: 200");
		is(unpack('H*', $res->{content}), $value, "GET $key: same value");
		is(header($res, 'ETag'), qq{"$version"}, "GET $key: same ETag");
		is(header($res, 'Content-Type'),
			$type eq 'null' ? 'application/octet-stream' : pack('H*', $type),
			"GET $key: same Content-Type");
		note("$key: X-Cache " . header($res, 'X-Cache'));
	}
	my ($res, $raw) = raw_get('/kv/bad-crlf');
	is($res && $res->{status}, 200, 'the fixed row: 200');
	is($res && $res->{content}, 'evil', 'the fixed row: same value');
	is($res && $res->{headers}{'content-type'}, 'application/octet-stream',
		'the fixed row: application/octet-stream');
};

subtest 'after the update, writes are seen by the next GET' => sub {
	is(header($kv->http('GET', '/kv/h-text'), 'X-Cache'), 'HIT', 'h-text cached');
	my $put = $kv->http('PUT', '/kv/h-text', 'changed over http',
		{ 'Content-Type' => 'text/plain' });
	is($put->{status}, 200, 'HTTP PUT replaces');
	my $get = $kv->http('GET', '/kv/h-text');
	is($get->{content}, 'changed over http', 'GET sees the HTTP PUT');
	is(header($get, 'ETag'), header($put, 'ETag'), 'with its ETag');

	is(header($kv->http('GET', '/kv/s-text'), 'X-Cache'), 'HIT', 's-text cached');
	sql("UPDATE kv_store SET value = 'changed over sql' WHERE key = 's-text'");
	is($kv->http('GET', '/kv/s-text')->{content}, 'changed over sql',
		'GET sees the SQL UPDATE');
	is(sql("SELECT kv_get('h-text')"), 'changed over http', 'kv_get sees the HTTP PUT');
	is(sql("SELECT extversion FROM pg_extension WHERE extname = 'kvserver'"),
		'1.1', 'SELECT extversion FROM pg_extension: 1.1');
};

subtest 'an upgraded 1.0 has the same objects and constraint as a fresh 1.1' => sub {
	sql('CREATE DATABASE fresh');
	$node->safe_psql('fresh', 'CREATE EXTENSION kvserver');
	is($node->safe_psql('fresh', "SELECT extversion FROM pg_extension WHERE extname = 'kvserver'"),
		'1.1', 'CREATE EXTENSION installs 1.1');
	my $members = "SELECT pg_describe_object(classid, objid, 0) FROM pg_depend"
	  . " WHERE refclassid = 'pg_extension'::regclass AND deptype = 'e'"
	  . " AND refobjid = (SELECT oid FROM pg_extension WHERE extname = 'kvserver') ORDER BY 1";
	is(sql($members), $node->safe_psql('fresh', $members), 'the same member objects');
	my $constraints = "SELECT conname, pg_get_constraintdef(oid), convalidated FROM pg_constraint"
	  . " WHERE conrelid = 'kv_store'::regclass ORDER BY conname";
	is(sql($constraints), $node->safe_psql('fresh', $constraints),
		'the same constraints on kv_store');
	like(sql($constraints), qr/kv_store_content_type_valid/, 'including the content type rule');
	sql('DROP DATABASE fresh');
};

# --------------------------------------------------------------------------
# (c) the content type rule: HTTP and SQL agree

my $T = "!#\$%&'*+-.^_`|~";
my @tricky_valid = (
	'text/plain', 'text/plain; charset=utf-8', 'text/plain;charset=utf-8',
	'text/plain ;x', 'text/plain;', 'text/plain;  ;', 'text/plain; a="b;c"',
	'application/vnd.example+json; charset=utf-8', "$T/$T", 'a/b',
	'text/plain; x=\\', 'a/' . ('b' x 253));
my @tricky = (
	@tricky_valid,
	'text', '/plain', 'text/', 'text /plain', 'text/ plain', 'text/plain extra',
	'text/pl@in', 'text/plain/x', 'te(x)t/plain', 'text/pl,ain', 'te:xt/plain',
	"text/plain;\x01", "text/pl\x7fain", "text/plain; caf\x{e9}", "text/plain;\tq=1",
	"text\t/plain", 'text/plain"', '{a}/b', 'a/' . ('b' x 254), "text/\x{2603}",
);

# Random strings, mostly almost valid: pieces of media types from an alphabet
# with token characters, separators and a few bytes outside printable ASCII.
# No CR, LF or NUL (they cannot travel in a header) and no whitespace at
# either end (civetweb trims it from header values).
srand(20261130);
my @alphabet = (('a' .. 'e'), ('0' .. '2'), split(//, $T), '/', '/', ';', ';', ' ', ' ',
	'"', '=', '@', '(', ',', ':', '\\', '[', "\x01", "\x1f", "\x7f", "\x{e9}", "\t");
sub random_type
{
	my $piece = sub {
		my ($n) = @_;
		join('', map { $alphabet[ int(rand(@alphabet)) ] } 1 .. $n);
	};
	my $s;
	my $shape = rand();
	if ($shape < 0.4)
	{
		$s = $piece->(1 + int(rand(6))) . '/' . $piece->(1 + int(rand(6)));
	}
	elsif ($shape < 0.8)
	{
		$s = join('', map { ('a' .. 'z')[ int(rand(26)) ] } 1 .. 1 + int(rand(5))) . '/'
		  . join('', map { ('a' .. 'z')[ int(rand(26)) ] } 1 .. 1 + int(rand(5)))
		  . (' ' x int(rand(2))) . $piece->(int(rand(8)));
	}
	else
	{
		$s = $piece->(1 + int(rand(12)));
	}
	$s = 'x/' . ('y' x (249 + int(rand(8)))) . $s if rand() < 0.05;
	$s =~ s/^[ \t]+|[ \t]+$//g;
	return length($s) ? $s : 'x';
}
my @random = map { random_type() } 1 .. 300;

# Sent over HTTP as a PUT's Content-Type (the validator on the request side).
my @cases = (@tricky, @random);
# Stored through SQL and read back with GET (the validator on the reply
# side): those, plus strings that cannot travel in a request header.
my @stored = (@cases, "text/plain\r\nSet-Cookie: a=1", "text/plain\n", "text/\rplain",
	"a/b;\r\n", "\n", "text/plain;\x01", "text/plain;\t", "a/b\x7f");
# 't' or 'f' for each of @stored, from the CHECK constraint itself
my @sql_verdict;

subtest 'HTTP PUT refuses an invalid Content-Type with 400 before the database' => sub {
	# civetweb 1.15 itself refuses control bytes in a header value, DEL and
	# TAB included ("Malformed message", 400 bad_request), before any
	# handler runs; the validator is the second line there
	foreach my $case (
		[ 'a control byte (0x01)', "text/plain\x01", 0 ],
		[ 'a control byte (TAB)', "text/plain;\tcharset=utf-8", 0 ],
		[ 'a control byte (DEL)', "text/pl\x7fain", 0 ],
		[ 'no slash', 'textplain', 1 ],
		[ '256 bytes', 'a/' . ('b' x 254), 1 ],
		[ 'non-ASCII', "text/caf\x{e9}", 1 ])
	{
		my ($what, $type, $ours) = @$case;
		my $raw = $kv->raw_http("PUT /kv/ct-refused HTTP/1.1\r\nHost: 127.0.0.1\r\n"
			  . 'Content-Type: ' . utf8_bytes($type)
			  . "\r\nContent-Length: 1\r\nConnection: close\r\n\r\nv");
		my $res = parse_response($raw->{data});
		ok($res, "$what: a response") or next;
		is_error($res, 400, 'bad_request', "$what");
		# the validator's own message, not a database error passed on
		like(decode_json_body($res)->{message} // '', qr/^Content-Type must be/,
			"$what: refused by the content type rule on the HTTP thread")
		  if $ours;
	}
	is($kv->http('GET', '/kv/ct-refused')->{status}, 404, 'nothing stored');
	my $raw = $kv->raw_http("PUT /kv/ct-refused HTTP/1.1\r\nHost: 127.0.0.1\r\n"
		  . "Content-Type: text/plain\r\nContent-Type: text/html\r\n"
		  . "Content-Length: 1\r\nConnection: close\r\n\r\nv");
	my $res = parse_response($raw->{data});
	is($res && $res->{status}, 400, 'two Content-Type headers: 400');
	is((put_with_type('/kv/ct-255', 'a/' . ('b' x 253)))[0], 201, '255 bytes: 201');
	is(header($kv->http('GET', '/kv/ct-255'), 'Content-Type'), 'a/' . ('b' x 253),
		'and served as stored');
};

subtest 'the C validator (HTTP) and the CHECK constraint (SQL) agree' => sub {
	sql(q{CREATE FUNCTION ct_accepted(ct text) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
	INSERT INTO kv_store (key, value, content_type) VALUES ('ct-probe', '', ct);
	RAISE EXCEPTION USING ERRCODE = 'P0001';    -- undo the insert
EXCEPTION
	WHEN check_violation THEN RETURN false;
	WHEN raise_exception THEN RETURN true;
END $$});
	@sql_verdict = split /\n/, sql('SELECT ct_accepted(t) FROM (VALUES '
		  . join(', ', map { '(' . sql_text($stored[$_]) . ", $_)" } 0 .. $#stored)
		  . ') AS c(t, i) ORDER BY i');
	is(scalar @sql_verdict, scalar @stored, scalar(@stored) . ' verdicts from SQL');
	my @sql = @sql_verdict[ 0 .. $#cases ];
	my ($agree, $valid, @differ) = (0, 0);
	for my $i (0 .. $#cases)
	{
		my $type = $cases[$i];
		# refused by the validator, or by civetweb before it (control bytes);
		# a refusal by the database would hide a validator that is too lax
		my ($status, $message) = put_with_type('/kv/ct-http', $type);
		my $http = $status =~ /^20[01]$/ ? 't'
		  : $status eq '400' && $message =~ /^(Content-Type must be|Malformed message)/ ? 'f'
		  : "status $status ($message)";
		if ($http eq ($sql[$i] // ''))
		{
			$agree++;
			$valid++ if $http eq 't';
		}
		else
		{
			push @differ, sprintf('%s: HTTP %s, SQL %s',
				join('', map { /[\x20-\x7e]/ ? $_ : sprintf('\\x{%x}', ord) } split //, $type),
				$http, $sql[$i] // 'none');
		}
	}
	is($agree, scalar @cases, "the same verdict on all " . scalar(@cases)
		  . " strings ($valid valid)") or diag(join("\n", @differ));
	# the tricky ones are what they say they are
	my $nvalid = scalar @tricky_valid;
	is(join('', map { ($_ // '') eq 't' ? 1 : 0 } @sql[ 0 .. $#tricky ]),
		('1' x $nvalid) . ('0' x (@tricky - $nvalid)),
		"the tricky strings: the first $nvalid valid, the rest not");
	cmp_ok($valid, '>', 30, 'the random strings include valid ones');
	cmp_ok(@cases - $valid, '>', 30, 'and invalid ones');
	sql('DROP FUNCTION ct_accepted(text)');
	sql("DELETE FROM kv_store WHERE key = 'ct-http'");
};

# --------------------------------------------------------------------------
# (b) on 1.1: the constraint, and replies that never trust stored data

my $crlf = "text/plain\r\nSet-Cookie: evil=1";
my $long = 'text/' . ('a' x 4995);

subtest 'the constraint refuses a header-splitting and a 5000-byte content type' => sub {
	foreach my $case ([ 'CR/LF', $crlf ], [ '5000 bytes', $long ])
	{
		my ($what, $type) = @$case;
		my ($rc, $out, $err) = try_sql(
			"INSERT INTO kv_store (key, value, content_type) VALUES ('evil', 'x', "
			  . sql_text($type) . ')');
		isnt($rc, 0, "$what: INSERT refused");
		like($err, qr/ERROR:\s+23514: .*kv_store_content_type_valid/,
			"$what: check_violation of kv_store_content_type_valid") or diag($err);
	}
	is(sql("SELECT count(*) FROM kv_store WHERE key = 'evil'"), '0', 'nothing stored');
};

subtest 'rows written without the constraint: GET sends a whole, clean reply' => sub {
	# as if any SQL role had written them before 1.1
	sql('ALTER TABLE kv_store DROP CONSTRAINT kv_store_content_type_valid');
	sql("INSERT INTO kv_store (key, value, content_type) VALUES ('evil-crlf', 'crlf body', "
		  . sql_text($crlf) . "), ('evil-long', 'long body', " . sql_text($long) . ')');
	foreach my $case ([ 'evil-crlf', 'crlf body' ], [ 'evil-long', 'long body' ])
	{
		my ($key, $body) = @$case;
		foreach my $round ('MISS', 'HIT')
		{
			my ($res, $raw) = raw_get("/kv/$key");
			ok($res, "$key, $round: a response") or next;
			is($res->{status}, 200, "$key, $round: status 200");
			ok($res->{complete} && $raw->{eof}, "$key, $round: complete, then EOF");
			is($res->{content}, $body, "$key, $round: exact body");
			is($res->{extra}, '', "$key, $round: nothing after it");
			is($res->{headers}{'content-type'}, 'application/octet-stream',
				"$key, $round: Content-Type application/octet-stream");
			is($res->{headers}{'x-cache'}, $round, "$key, $round: X-Cache $round");
			ok(!exists $res->{headers}{'set-cookie'}, "$key, $round: no Set-Cookie header");
			unlike($raw->{data}, qr/Set-Cookie|a{300}/i, "$key, $round: not on the wire at all");
		}
		my ($res, $raw) = raw_get("/kv/$key", 'HEAD');
		is($res && $res->{headers}{'content-type'}, 'application/octet-stream',
			"$key: HEAD too");
	}
	is(sql("SELECT kv_get('evil-crlf')"), 'crlf body', 'kv_get still reads it');
};

subtest 'the reply writer (C) and the CHECK constraint (SQL) agree on stored content types' => sub {
	sql('INSERT INTO kv_store (key, value, content_type) VALUES '
		  . join(', ', map { "('ct-stored-$_', 'v', " . sql_text($stored[$_]) . ')' } 0 .. $#stored));
	my ($agree, $valid, @differ) = (0, 0);
	for my $i (0 .. $#stored)
	{
		my ($res, $raw) = raw_get("/kv/ct-stored-$i");
		my $sent = $res && $res->{complete} ? $res->{headers}{'content-type'} // '(none)' : '(no reply)';
		my $reply = $sent eq utf8_bytes($stored[$i]) ? 't'
		  : $sent eq 'application/octet-stream' ? 'f' : "sent \"$sent\"";
		if ($reply eq ($sql_verdict[$i] // ''))
		{
			$agree++;
			$valid++ if $reply eq 't';
		}
		else
		{
			push @differ, sprintf('%s: reply %s, SQL %s',
				join('', map { /[\x20-\x7e]/ ? $_ : sprintf('\\x{%x}', ord) } split //, $stored[$i]),
				$reply, $sql_verdict[$i] // 'none');
		}
	}
	is($agree, scalar @stored, 'the same verdict on all ' . scalar(@stored)
		  . " stored content types ($valid echoed, the rest sent as application/octet-stream)")
	  or diag(join("\n", @differ));
	sql("DELETE FROM kv_store WHERE key LIKE 'ct-stored-%'");
};

subtest 'the worker keeps serving' => sub {
	is($kv->http('GET', '/health')->{status}, 200, '/health 200');
	is($kv->http('GET', '/kv/h-text')->{content}, 'changed over http', 'another GET works');
	is($kv->worker_pid, $worker_pid, 'the same worker pid');
	unlike(slurp_file($node->logfile),
		qr/terminated by signal|PANIC|background worker "kvserver" \(PID \d+\) exited/,
		'no crash in the server log');
};

done_testing();
