
# Copyright (c) kvserver authors

=pod

=head1 NAME

KvWatch - start an HTTP watch, do something else, then collect its answer

=head1 SYNOPSIS

  my $w = KvWatch::start($kv, '/kv/k?wait=10s', 'If-None-Match' => '"5"');
  $node->safe_psql('postgres', "UPDATE kv_store SET value = 'x' WHERE key = 'k'");
  my $res = KvWatch::finish($w);   # parse_response hash plus elapsed, answered_at
  ok(!KvWatch::answered_within($w, 0.5), 'still waiting');

=head1 DESCRIPTION

A watch holds its request until something changes, so a test writes the
request on its own connection (Connection: close), acts, and reads the
answer later.  Times are Time::HiRes seconds: elapsed is from writing the
request to the end of the answer; answered_at is the absolute end time.

=cut

package KvWatch;

use strict;
use warnings;

use IO::Select;
use KvServerTest;
use Time::HiRes qw(time);

sub start
{
	my ($kv, $path, %headers) = @_;
	my $sock = $kv->connect_socket or die "cannot connect: $!";
	my $req = "GET $path HTTP/1.1\r\nHost: kv\r\nConnection: close\r\n";
	$req .= "$_: $headers{$_}\r\n" foreach sort keys %headers;
	$req .= "\r\n";
	my $t0 = time();
	KvServerTest::write_all($sock, $req) or die "cannot write: $!";
	return { sock => $sock, t0 => $t0 };
}

# Has the server started answering within 'seconds'?  (Does not consume.)
sub answered_within
{
	my ($w, $seconds) = @_;
	return IO::Select->new($w->{sock})->can_read($seconds) ? 1 : 0;
}

sub finish
{
	my ($w, $timeout) = @_;
	my %result = (data => '');
	KvServerTest::read_until_eof($w->{sock}, $timeout || 30, \%result);
	my $end = time();
	close($w->{sock});
	my $res = KvServerTest::parse_response($result{data}) || { status => 0 };
	$res->{elapsed} = $end - $w->{t0};
	$res->{answered_at} = $end;
	$res->{timed_out} = $result{timed_out};
	return $res;
}

1;
