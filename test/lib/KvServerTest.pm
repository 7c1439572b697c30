
# Copyright (c) kvserver authors

=pod

=head1 NAME

KvServerTest - a PostgreSQL node running kvserver, and HTTP clients for it

=head1 SYNOPSIS

  use FindBin;
  use lib "$FindBin::RealBin/../lib";
  use KvServerTest;

  my $kv = KvServerTest->new('http_api');       # started, extension created, /health 200
  my $res = $kv->http('PUT', '/kv/a', 'value', { 'Content-Type' => 'text/plain' });
  is($res->{status}, 201);
  my $raw = $kv->raw_http("GET /health HTTP/1.1\r\nHost: x\r\n\r\n");
  my $parsed = KvServerTest::parse_response($raw->{data});

=head1 DESCRIPTION

Every TAP test of kvserver talks to a real node over real HTTP.  This module
creates that node (kvserver preloaded, its HTTP port a free one), waits for
the worker to answer, and offers two clients:

=over

=item http(method, path, body, headers)

HTTP::Tiny, one connection per request (no keep-alive, so a connection the
server closed while idle is never reused).  Returns HTTP::Tiny's hash:
status, reason, headers (lower-case names), content.  Status 599 means no
response (connection refused, reset, timed out, truncated).

=item raw_http(string, timeout => seconds, chunks => [...])

Writes exactly the given bytes to a new TCP connection and reads until the
server closes it or the timeout passes.  For malformed requests, HEAD bodies,
chunked uploads, and any check of the exact bytes on the wire.

=back

Forked children must leave with POSIX::_exit: PostgreSQL::Test::Cluster's END
block would otherwise stop the node when a child exits.

=cut

package KvServerTest;

use strict;
use warnings;

use Carp;
use Exporter qw(import);
use Errno qw(EAGAIN EINTR EWOULDBLOCK);
use HTTP::Tiny;
use IO::Select;
use IO::Socket::INET;
use JSON::PP;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);

our @EXPORT = qw(is_error decode_json_body key_path uri_escape header
  parse_response sql_quote);

# A request that hangs in the server must not hang the test.
our $HTTP_TIMEOUT = 30;

=pod

=head1 METHODS

=over

=item KvServerTest->new(name, %opts)

Creates, configures and starts a node.  Options:

  create_extension => 0     do not CREATE EXTENSION (and do not wait for 200)
  conf => "..."             more postgresql.conf lines
  start => 0                only init and configure (then call
                            $kv->create_anonymous_role after starting)
  anonymous_role => 'name'  the role requests without credentials run as
                            (default 'kv_anon', created NOLOGIN with
                            SELECT/INSERT/UPDATE/DELETE/TRUNCATE on the
                            extension's tables through default privileges,
                            so it survives DROP/CREATE EXTENSION); '' for
                            none: every key request then needs credentials

=cut

sub new
{
	my ($class, $name, %opts) = @_;
	my $create = exists $opts{create_extension} ? $opts{create_extension} : 1;
	my $start = exists $opts{start} ? $opts{start} : 1;
	my $anon = exists $opts{anonymous_role} ? $opts{anonymous_role} : 'kv_anon';

	my $node = PostgreSQL::Test::Cluster->new($name);

	# UTF8 whatever the caller's locale: keys are UTF-8 text.
	$node->init(extra => [ '--encoding=UTF8', '--locale=C' ]);
	my $http_port = PostgreSQL::Test::Cluster::get_free_port();
	$node->append_conf(
		'postgresql.conf', qq{
shared_preload_libraries = 'kvserver'
kvserver.port = $http_port
kvserver.database = 'postgres'
kvserver.request_timeout = '5s'
kvserver.anonymous_role = '$anon'
});
	$node->append_conf('postgresql.conf', $opts{conf}) if defined $opts{conf};

	my $self = bless {
		node => $node,
		host => '127.0.0.1',
		port => $http_port,
		anonymous_role => $anon,
	}, $class;

	return $self unless $start;
	$node->start;
	$self->create_anonymous_role;
	if ($create)
	{
		$node->safe_psql('postgres', 'CREATE EXTENSION kvserver');
		$self->wait_for_health(200, 30)
		  or die "kvserver on port $http_port never answered /health with 200\n";
	}
	else
	{
		$self->wait_for_listener(30)
		  or die "kvserver never listened on port $http_port\n";
	}
	return $self;
}

=pod

=item $kv->create_anonymous_role

Creates the anonymous role (if one is configured and it does not exist),
with default privileges on whatever the bootstrap superuser creates later,
CREATE EXTENSION kvserver included.

=cut

sub create_anonymous_role
{
	my ($self) = @_;
	my $role = $self->{anonymous_role};
	return if !defined $role || $role eq '';
	$self->{node}->safe_psql(
		'postgres', qq{
DO \$\$ BEGIN
	IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$role') THEN
		CREATE ROLE "$role" NOLOGIN;
	END IF;
END \$\$;
ALTER DEFAULT PRIVILEGES GRANT SELECT, INSERT, UPDATE, DELETE, TRUNCATE ON TABLES TO "$role";
ALTER DEFAULT PRIVILEGES GRANT USAGE, SELECT ON SEQUENCES TO "$role";
GRANT SELECT, INSERT, UPDATE, DELETE, TRUNCATE ON ALL TABLES IN SCHEMA public TO "$role";
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO "$role";
});
	return;
}

=pod

=item $kv->node, $kv->port, $kv->host, $kv->url(path)

=cut

sub node { return $_[0]->{node}; }
sub port { return $_[0]->{port}; }
sub host { return $_[0]->{host}; }

sub url
{
	my ($self, $path) = @_;
	return "http://$self->{host}:$self->{port}$path";
}

=pod

=item $kv->http(method, path, body, headers, %opts)

One HTTP request through HTTP::Tiny.  Note that HTTP::Tiny adds
C<Content-Type: application/octet-stream> to any non-empty body unless a
Content-Type is given; use raw_http to send a body without one.

=cut

sub http
{
	my ($self, $method, $path, $body, $headers, %opts) = @_;
	my $ua = HTTP::Tiny->new(
		keep_alive => 0,
		timeout => $opts{timeout} || $HTTP_TIMEOUT,
		agent => 'kvserver-tap/1.0');
	my %args;
	$args{headers} = $headers if defined $headers;
	$args{content} = $body if defined $body;
	return $ua->request($method, $self->url($path), \%args);
}

=pod

=item $kv->raw_http(string, %opts)

Opens a TCP connection, writes the string (or each of C<chunks>, with
C<pause> seconds between them), then reads until EOF or C<timeout> (10 s).
Returns { data => bytes read, eof => 1 if the server closed the connection,
timed_out => 1 if it did not within the timeout, error => socket error text,
connect_error => text if it never connected }.  SIGPIPE is ignored for the
duration, so a server that closes early shows up as a write error.

=cut

sub raw_http
{
	my ($self, $request, %opts) = @_;
	my $timeout = defined $opts{timeout} ? $opts{timeout} : 10;
	my @chunks = defined $opts{chunks} ? @{ $opts{chunks} } : ($request);
	my %result = (data => '', eof => 0, timed_out => 0);

	local $SIG{PIPE} = 'IGNORE';
	my $sock = $self->connect_socket;
	if (!$sock)
	{
		$result{connect_error} = "$!";
		return \%result;
	}

	my $first = 1;
	foreach my $chunk (@chunks)
	{
		usleep(1_000_000 * $opts{pause}) if !$first && $opts{pause};
		$first = 0;
		if (!write_all($sock, $chunk))
		{
			$result{write_error} = "$!";
			last;
		}
	}

	read_until_eof($sock, $timeout, \%result);
	close($sock);
	return \%result;
}

=pod

=item $kv->connect_socket

A connected, blocking IO::Socket::INET to the HTTP port, or undef.

=cut

sub connect_socket
{
	my ($self) = @_;
	return IO::Socket::INET->new(
		PeerAddr => $self->{host},
		PeerPort => $self->{port},
		Proto => 'tcp',
		Timeout => 10);
}

# Write all of $data to $sock; false on error.
sub write_all
{
	my ($sock, $data) = @_;
	my $off = 0;
	while ($off < length($data))
	{
		my $n = syswrite($sock, $data, length($data) - $off, $off);
		if (!defined $n)
		{
			next if $! == EINTR;
			return 0;
		}
		$off += $n;
	}
	return 1;
}

# Read from $sock into $result->{data} until EOF, error or timeout.
sub read_until_eof
{
	my ($sock, $timeout, $result) = @_;
	my $sel = IO::Select->new($sock);
	my $deadline = time() + $timeout;

	while (1)
	{
		my $left = $deadline - time();
		if ($left <= 0)
		{
			$result->{timed_out} = 1;
			return;
		}
		next unless $sel->can_read($left);
		my $buf;
		my $n = sysread($sock, $buf, 65536);
		if (!defined $n)
		{
			next if $! == EINTR || $! == EAGAIN || $! == EWOULDBLOCK;
			$result->{error} = "$!";
			return;
		}
		if ($n == 0)
		{
			$result->{eof} = 1;
			return;
		}
		$result->{data} .= $buf;
	}
}

=pod

=item KvServerTest::parse_response(bytes, %opts)

Parses one HTTP/1.x response.  Returns undef when there is no complete status
line and header block; otherwise { status, reason, headers (lower-case name
=> value, repeated ones joined with ", "), header_list ([name, value] pairs),
content, complete, extra }.  complete is true when the body is exactly as
long as Content-Length says (or empty for HEAD / 204 / 304, given
C<head =E<gt> 1>); extra holds any bytes after the body.

=cut

sub parse_response
{
	my ($data, %opts) = @_;
	return undef unless defined $data;
	my $end = index($data, "\r\n\r\n");
	return undef if $end < 0;
	my $head = substr($data, 0, $end);
	my $rest = substr($data, $end + 4);
	my @lines = split /\r\n/, $head;
	my $status_line = shift @lines;
	return undef
	  unless defined $status_line
	  && $status_line =~ m{^HTTP/1\.[01] (\d{3})(?: (.*))?$};
	my %res = (
		status => $1 + 0,
		reason => defined $2 ? $2 : '',
		headers => {},
		header_list => [],
		complete => 0,
		extra => '');
	foreach my $line (@lines)
	{
		return undef unless $line =~ /^([!#\$%&'*+.^_`|~0-9A-Za-z-]+):[ \t]*(.*?)[ \t]*$/;
		my ($name, $value) = (lc $1, $2);
		push @{ $res{header_list} }, [ $name, $value ];
		$res{headers}{$name} =
		  exists $res{headers}{$name}
		  ? "$res{headers}{$name}, $value"
		  : $value;
	}

	my $no_body = $opts{head} || $res{status} == 204 || $res{status} == 304
	  || $res{status} < 200;
	if ($no_body)
	{
		$res{content} = '';
		$res{extra} = $rest;
		$res{complete} = 1;
	}
	elsif (defined $res{headers}{'content-length'}
		&& $res{headers}{'content-length'} =~ /^\d+$/)
	{
		my $len = $res{headers}{'content-length'};
		$res{content} = substr($rest, 0, $len);
		$res{extra} = length($rest) > $len ? substr($rest, $len) : '';
		$res{complete} = length($rest) >= $len ? 1 : 0;
	}
	else
	{
		# no Content-Length: the body runs to EOF; complete only if the
		# caller saw EOF, which it has to judge itself
		$res{content} = $rest;
		$res{complete} = $opts{eof} ? 1 : 0;
	}
	return \%res;
}

=pod

=item $kv->wait_for_health(status, seconds)

Polls GET /health until it answers with the given status.  True on success.

=cut

sub wait_for_health
{
	my ($self, $want, $seconds) = @_;
	my $deadline = time() + $seconds;
	my $last = 'none';
	while (time() < $deadline)
	{
		my $res = $self->http('GET', '/health', undef, undef, timeout => 5);
		return 1 if $res->{status} == $want;
		$last = $res->{status};
		usleep(100_000);
	}
	note "GET /health did not answer $want within $seconds s (last: $last)";
	return 0;
}

=pod

=item $kv->wait_for_listener(seconds)

Polls until GET /health gets any HTTP response at all (not 599).

=cut

sub wait_for_listener
{
	my ($self, $seconds) = @_;
	my $deadline = time() + $seconds;
	while (time() < $deadline)
	{
		my $res = $self->http('GET', '/health', undef, undef, timeout => 5);
		return 1 if $res->{status} != 599;
		usleep(100_000);
	}
	return 0;
}

=pod

=item $kv->worker_pid

The pid of the kvserver background worker from pg_stat_activity, or ''.

=cut

sub worker_pid
{
	my ($self) = @_;
	return $self->{node}->safe_psql('postgres',
		"SELECT pid FROM pg_stat_activity WHERE backend_type = 'kvserver'");
}

=pod

=back

=head1 FUNCTIONS

=over

=item decode_json_body(res)

The response's content decoded as JSON (UTF-8), or undef if it is not JSON.

=cut

sub decode_json_body
{
	my ($res) = @_;
	return undef unless defined $res && defined $res->{content};
	my $data = eval { JSON::PP->new->utf8->allow_nonref->decode($res->{content}) };
	return $data;
}

=pod

=item is_error(res, status, code, test_name)

One subtest-worthy check of the README's error contract: the status, a
Content-Type of application/json, and a body {"error": code, "message": text}.

=cut

sub is_error
{
	my ($res, $status, $code, $name) = @_;
	local $Test::Builder::Level = $Test::Builder::Level + 1;
	my $ok = 1;
	$ok &&= is($res->{status}, $status, "$name: status $status");
	$ok &&= like(header($res, 'Content-Type'),
		qr{^application/json\b}, "$name: Content-Type is application/json");
	my $json = decode_json_body($res);
	$ok &&= ok(ref $json eq 'HASH', "$name: body is a JSON object")
	  or diag("body: " . ($res->{content} // '(none)'));
	if (ref $json eq 'HASH')
	{
		$ok &&= is($json->{error}, $code, "$name: error code is $code");
		$ok &&= ok(defined $json->{message} && !ref $json->{message}
			  && length $json->{message},
			"$name: message is a non-empty string");
	}
	return $ok;
}

=pod

=item key_path(key_bytes)

/kv/ followed by the key, every byte outside [A-Za-z0-9._~-] percent-encoded
(so "/" is sent as %2F, which the server decodes back).

=item uri_escape(bytes)

Percent-encodes every byte outside [A-Za-z0-9._~-].  Takes bytes: pass
text through utf8::encode first.

=cut

sub uri_escape
{
	my ($s) = @_;
	$s =~ s/([^A-Za-z0-9._~-])/sprintf('%%%02X', ord($1))/ge;
	return $s;
}

sub key_path
{
	my ($key) = @_;
	return '/kv/' . uri_escape($key);
}

=pod

=item header(res, name)

The value of a response header ('' when absent); name is case-insensitive.

=cut

sub header
{
	my ($res, $name) = @_;
	my $v = $res->{headers}{ lc $name };
	$v = join(', ', @$v) if ref $v eq 'ARRAY';
	return defined $v ? $v : '';
}

=pod

=item sql_quote(text)

A SQL string literal.

=cut

sub sql_quote
{
	my ($s) = @_;
	$s =~ s/'/''/g;
	return "'$s'";
}

=pod

=back

=cut

1;
