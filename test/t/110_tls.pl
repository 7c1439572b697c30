
# Copyright (c) kvserver authors

# HTTPS: kvserver.ssl_certificate and kvserver.ssl_key.  A CA and server
# certificates for 127.0.0.1 and localhost are made with the openssl
# command in the test's directory; curl is the client, trusting that CA
# only.  Checked: /health and a binary PUT/GET round trip over HTTPS, TLS 1.2
# minimum and the cipher list, plain HTTP on the port answered by nothing
# and crashing nothing; each bad setting (missing file, not PEM, a key that
# does not match, a key with group access or a passphrase, a key without a
# certificate) logged with the file and the cause while SQL keeps working
# and nothing is served; fixing the setting and reloading serves HTTPS
# again; replaced certificate files are read on reload; '' is plain HTTP.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::RealBin/../lib";

use IPC::Run;
use KvServerTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);

for my $tool ([ 'openssl', 'version' ], [ 'curl', '--version' ])
{
	my ($out, $err);
	IPC::Run::run($tool, '>', \$out, '2>', \$err)
	  or BAIL_OUT("$tool->[0] is needed (scripts/deps.sh test installs it)");
}

my $dir = PostgreSQL::Test::Utils::tempdir;

sub openssl
{
	my @cmd = ('openssl', @_);
	my ($out, $err);
	IPC::Run::run(\@cmd, '<', \undef, '>', \$out, '2>', \$err)
	  or die "@cmd failed: $err";
	return $out;
}

# Our own minimal configuration, whatever the system's openssl.cnf says.
PostgreSQL::Test::Utils::append_to_file("$dir/openssl.cnf", <<'EOF');
[req]
distinguished_name = dn
prompt = no
[dn]
CN = kvserver test
[v3_ca]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[v3_server]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = IP:127.0.0.1, DNS:localhost
EOF

my @ec = ('-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes');

# make_ca(name): name.pem (certificate) and name.key
sub make_ca
{
	my ($name) = @_;
	openssl('req', '-config', "$dir/openssl.cnf", '-x509', @ec,
		'-keyout', "$dir/$name.key", '-out', "$dir/$name.pem", '-days', '30',
		'-extensions', 'v3_ca', '-subj', "/CN=kvserver test $name");
}

# make_server(name, ca): name.crt signed by the CA, name.key (0600)
sub make_server
{
	my ($name, $ca) = @_;
	openssl('req', '-config', "$dir/openssl.cnf", @ec,
		'-keyout', "$dir/$name.key", '-out', "$dir/$name.csr",
		'-subj', '/CN=localhost');
	openssl('x509', '-req', '-in', "$dir/$name.csr", '-CA', "$dir/$ca.pem",
		'-CAkey', "$dir/$ca.key", '-CAcreateserial', '-out', "$dir/$name.crt",
		'-days', '30', '-extfile', "$dir/openssl.cnf", '-extensions', 'v3_server');
	chmod 0600, "$dir/$name.key";
}

make_ca('ca');
make_ca('ca2');
make_server('server', 'ca');
make_server('server2', 'ca2');
make_server('other', 'ca');
# the key inside the certificate file, as kvserver.ssl_key = '' wants it
PostgreSQL::Test::Utils::append_to_file("$dir/combined.pem",
	slurp_file("$dir/server.crt") . slurp_file("$dir/server.key"));
chmod 0600, "$dir/combined.pem";
# a key with a passphrase
openssl('pkey', '-in', "$dir/server.key", '-out', "$dir/locked.key",
	'-aes256', '-passout', 'pass:secret');
chmod 0600, "$dir/locked.key";
PostgreSQL::Test::Utils::append_to_file("$dir/not_pem.crt", "not a certificate\n");

# The first start uses paths relative to the data directory.
my $kv = KvServerTest->new(
	'tls',
	start => 0,
	conf => "kvserver.ssl_certificate = 'kv_server.crt'\n"
	  . "kvserver.ssl_key = 'kv_server.key'\n");
my $node = $kv->node;
my $port = $kv->port;
my $data = $node->data_dir;
PostgreSQL::Test::Utils::append_to_file("$data/kv_server.crt", slurp_file("$dir/server.crt"));
PostgreSQL::Test::Utils::append_to_file("$data/kv_server.key", slurp_file("$dir/server.key"));
chmod 0600, "$data/kv_server.key";

sub sql { return $node->safe_psql('postgres', $_[0], timeout => 60); }

# curl(ca => name, url => ..., args => [...]): { rc, status, body, err }.
# The body goes to a file so that its bytes arrive exactly.
my $n = 0;
sub curl
{
	my (%o) = @_;
	my $out = "$dir/body." . $n++;
	my @cmd = ('curl', '-sS', '--max-time', '20', '-o', $out, '-w', '%{http_code}',
		'--cacert', "$dir/" . ($o{ca} // 'ca') . '.pem',
		@{ $o{args} // [] }, $o{url} // "https://127.0.0.1:$port/health");
	my ($code, $err);
	IPC::Run::run(\@cmd, '<', \undef, '>', \$code, '2>', \$err);
	my %r = (rc => $? >> 8, status => $code // '', err => $err // '');
	$r{body} = -e $out ? slurp_file($out) : '';
	unlink $out;
	return \%r;
}

# Poll /health over HTTPS until it is 200; true on success.
sub wait_for_https
{
	my ($seconds, %o) = @_;
	for (1 .. $seconds * 4)
	{
		return 1 if curl(%o)->{status} eq '200';
		usleep(250_000);
	}
	return 0;
}

sub reload_with
{
	my (@settings) = @_;
	sql("ALTER SYSTEM $_") for @settings;
	sql('SELECT pg_reload_conf()');
}

$node->start;
# with HTTP authentication, requests without credentials need this role
$kv->create_anonymous_role if $kv->can('create_anonymous_role');
sql('CREATE EXTENSION kvserver');
ok(wait_for_https(30), 'HTTPS /health answers 200 with relative paths to the data directory');
like(slurp_file($node->logfile), qr{kvserver listening on https://127\.0\.0\.1:\Q$port\E/},
	'the log says https://');

subtest 'GET /health over HTTPS' => sub {
	my $r = curl(args => [ '-D', "$dir/headers" ]);
	is($r->{rc}, 0, 'curl verifies the certificate against the CA');
	is($r->{status}, '200', 'status 200');
	like(slurp_file("$dir/headers"), qr{^Content-Type: application/json}mi, 'JSON');
	is(decode_json_body({ content => $r->{body} })->{status}, 'ok', '{"status":"ok"}');
	my $wrong = curl(ca => 'ca2');
	isnt($wrong->{rc}, 0, 'a client trusting another CA refuses the certificate');
};

subtest 'PUT then GET over HTTPS round-trips the bytes' => sub {
	my $bytes = join('', map { chr($_ % 256) } 0 .. 70_000);
	open(my $fh, '>:raw', "$dir/value.bin") or die $!;
	print $fh $bytes;
	close($fh);
	my $url = "https://127.0.0.1:$port/kv/tls%2Fbinary";
	my $put = curl(url => $url, args => [ '-X', 'PUT',
		'-H', 'Content-Type: application/octet-stream', '--data-binary', "\@$dir/value.bin" ]);
	is($put->{status}, '201', 'PUT 201');
	my $get = curl(url => $url);
	is($get->{status}, '200', 'GET 200');
	ok($get->{body} eq $bytes, 'the same ' . length($bytes) . ' bytes back');
	is(sql("SELECT length(kv_get_bytea('tls/binary'))"), length($bytes), 'SQL sees the value');
};

subtest 'TLS 1.2 at least, AEAD ciphers only' => sub {
	# SECLEVEL=0 lets curl offer TLS 1.1, so the refusal is the server's
	my $old = curl(args => [ '--tls-max', '1.1', '--ciphers', 'DEFAULT:@SECLEVEL=0' ]);
	isnt($old->{rc}, 0, 'TLS 1.1 fails');
	like($old->{err}, qr/protocol version/i, '... with a protocol version alert')
	  or diag($old->{err});
	is(curl(args => [ '--tls-max', '1.1' ])->{status}, '000', 'curl --tls-max 1.1 gets no response');
	is(curl(args => [ '--tlsv1.2', '--tls-max', '1.2' ])->{status}, '200', 'TLS 1.2 works');
	is(curl(args => ['--tlsv1.3'])->{status}, '200', 'TLS 1.3 works');
	my $cbc = curl(args => [ '--tls-max', '1.2', '--ciphers', 'ECDHE-ECDSA-AES128-SHA' ]);
	isnt($cbc->{rc}, 0, 'a CBC cipher is refused');
};

subtest 'plain HTTP on the HTTPS port crashes nothing' => sub {
	my $pid = $kv->worker_pid;
	my $plain = curl(url => "http://127.0.0.1:$port/health");
	isnt($plain->{status}, '200', 'http:// gets no HTTP answer');
	my $raw = $kv->raw_http("GET /health HTTP/1.1\r\nHost: x\r\n\r\n", timeout => 5);
	unlike($raw->{data}, qr{HTTP/1\.}, 'a plain HTTP request gets no HTTP response');
	$raw = $kv->raw_http("\x16\x03\x01\x00\x04abcd" . ("\0" x 100), timeout => 5);
	ok(1, 'a broken TLS record is survived');
	is(curl()->{status}, '200', 'HTTPS still serves');
	is($kv->worker_pid, $pid, 'same worker process');
};

# A bad setting: the error is logged with the file and the cause, SQL
# keeps working, the port serves nothing (never plain HTTP).
sub bad_setting
{
	my ($name, $log_re, @settings) = @_;
	subtest "bad setting: $name" => sub {
		my $offset = -s $node->logfile;
		reload_with(@settings);
		ok(eval { $node->wait_for_log($log_re, $offset); 1 }, "logged: $log_re")
		  or diag(slurp_file($node->logfile, $offset));
		is(sql('SELECT 1'), '1', 'SQL works');
		is(curl()->{status}, '000', 'no HTTPS');
		isnt(curl(url => "http://127.0.0.1:$port/health")->{status}, '200', 'no plain HTTP either');
	};
}

bad_setting('missing certificate file',
	qr/ERROR:  could not open kvserver\.ssl_certificate file "\Q$dir\E\/missing\.pem": No such file.*\n.*HINT:  Set kvserver\.ssl_certificate to a PEM file/,
	"SET kvserver.ssl_certificate = '$dir/missing.pem'");

subtest 'while HTTPS is down, the rest of PostgreSQL is fine' => sub {
	sql("SELECT kv_put('while_down', 'written with SQL')");
	is(sql("SELECT kv_get('while_down')"), 'written with SQL', 'kv_put and kv_get');
	my $log = slurp_file($node->logfile);
	like($log, qr/background worker "kvserver" \(PID \d+\) exited with exit code 1/,
		'the worker exited with an error');
	unlike($log, qr/terminated by signal|was terminated/, 'no process crashed');
};

subtest 'fixing the setting and reloading serves HTTPS again' => sub {
	reload_with("SET kvserver.ssl_certificate = '$dir/server.crt'",
		"SET kvserver.ssl_key = '$dir/server.key'");
	ok(wait_for_https(30), 'HTTPS /health 200');
	my $r = curl(url => "https://127.0.0.1:$port/kv/while_down");
	is($r->{body}, 'written with SQL', 'the key written with SQL, over HTTPS');
};

bad_setting('certificate not PEM',
	qr/ERROR:  kvserver cannot serve HTTPS: could not load the certificate chain from "\Q$dir\E\/not_pem\.crt"/,
	"SET kvserver.ssl_certificate = '$dir/not_pem.crt'");
bad_setting('key of another certificate',
	qr/ERROR:  kvserver cannot serve HTTPS: the private key in "\Q$dir\E\/other\.key" does not match the certificate in "\Q$dir\E\/server\.crt"/,
	"SET kvserver.ssl_certificate = '$dir/server.crt'",
	"SET kvserver.ssl_key = '$dir/other.key'");
bad_setting('key with a passphrase',
	qr/ERROR:  kvserver cannot serve HTTPS: the private key in "\Q$dir\E\/locked\.key" is protected by a passphrase/,
	"SET kvserver.ssl_key = '$dir/locked.key'");
chmod 0644, "$dir/other.key";
bad_setting('key readable by others',
	qr/ERROR:  private key file "\Q$dir\E\/other\.key" has group or world access/,
	"SET kvserver.ssl_key = '$dir/other.key'");
bad_setting('key without a certificate',
	qr/ERROR:  kvserver\.ssl_key is set but kvserver\.ssl_certificate is empty/,
	"SET kvserver.ssl_certificate = ''",
	"SET kvserver.ssl_key = '$dir/server.key'");

subtest 'the key in the certificate file (kvserver.ssl_key empty)' => sub {
	reload_with("SET kvserver.ssl_certificate = '$dir/combined.pem'",
		"SET kvserver.ssl_key = ''");
	ok(wait_for_https(30), 'HTTPS /health 200');
};

subtest 'replaced certificate files are read on reload' => sub {
	my $offset = -s $node->logfile;
	# same path, another certificate (from another CA) and key
	unlink "$dir/combined.pem";
	PostgreSQL::Test::Utils::append_to_file("$dir/combined.pem",
		slurp_file("$dir/server2.crt") . slurp_file("$dir/server2.key"));
	chmod 0600, "$dir/combined.pem";
	is(curl()->{status}, '200', 'the old certificate until the reload');
	sql('SELECT pg_reload_conf()');
	$node->wait_for_log(qr/kvserver restarting its HTTP server/, $offset);
	ok(wait_for_https(30, ca => 'ca2'), 'the new certificate after it');
	isnt(curl()->{rc}, 0, 'the old CA no longer verifies it');
};

subtest "kvserver.ssl_certificate = '' is plain HTTP again" => sub {
	reload_with("SET kvserver.ssl_certificate = ''", "SET kvserver.ssl_key = ''");
	ok($kv->wait_for_health(200, 30), 'http:// /health 200');
	is(curl()->{status}, '000', 'https:// gets nothing');
};

done_testing();
