
# Copyright (c) kvserver authors

# Plain PUTs that meet in one batch are written with one statement (one
# INSERT ... ON CONFLICT over arrays) instead of one statement and one
# subtransaction each.  Their answers must be what one-by-one writes give:
# 201 for a new key and for a key whose row had expired, 200 for an
# overwrite, the row's version as ETag, the cache's write-through; and a
# PUT the table rejects fails alone (the group is then written one by one).
# A held table lock gathers the PUTs into batches.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::RealBin/../lib";

use File::Temp qw(tempdir);
use HTTP::Tiny;
use KvServerTest;
use POSIX ();
use Test::More;
use Time::HiRes qw(usleep);

my $kv = KvServerTest->new('put_groups', conf => "log_min_messages = debug1\n");
my $node = $kv->node;
my $dir = tempdir(CLEANUP => 1);

# A PUT in a child process; status, ETag and body land in a file.
sub background_put
{
	my ($key, $value) = @_;
	my $pid = fork();
	die "fork: $!" unless defined $pid;
	return $pid if $pid;
	my $res = HTTP::Tiny->new(timeout => 30, keep_alive => 0)
	  ->request('PUT', $kv->url("/kv/$key"), { content => $value });
	open(my $fh, '>', "$dir/$key") or POSIX::_exit(2);
	print $fh join("\n", $res->{status}, $res->{headers}{etag} // '', $res->{content});
	close($fh);
	POSIX::_exit(0);
}

sub result_of
{
	my ($key) = @_;
	open(my $fh, '<', "$dir/$key") or return ('none', '', '');
	local $/;
	my ($status, $etag, $body) = split(/\n/, <$fh>, 3);
	close($fh);
	return ($status, $etag, $body // '');
}

# What a wave of concurrent PUTs, held back by a lock, was answered.
sub wave
{
	my ($round, @keys) = @_;
	unlink glob("$dir/*");
	my $locker = $node->background_psql('postgres');
	$locker->query_safe('BEGIN; LOCK TABLE kv_store IN SHARE MODE');
	my @pids = map { background_put($_, "v$round-$_") } @keys;
	usleep(1_500_000);    # all of them queued behind the lock
	$locker->query_safe('COMMIT');
	$locker->quit;
	waitpid($_, 0) for @pids;
	return map { $_ => [ result_of($_) ] } @keys;
}

$node->safe_psql('postgres', q{
	ALTER TABLE kv_store ADD CONSTRAINT test_no_bad_keys CHECK (key !~ '^bad');
	INSERT INTO kv_store(key, value) SELECT 'old' || g, 'before' FROM generate_series(1, 10) g;
	INSERT INTO kv_store(key, value, expires_at)
	  SELECT 'gone' || g, 'expired', now() - interval '1 hour' FROM generate_series(1, 5) g;
});
# cache the old values, so that a wrong write-through would show
for my $g (1 .. 10)
{
	my $r = $kv->http('GET', "/kv/old$g");
	is($r->{content}, 'before', "old$g cached before the wave") if $g == 1;
}

my $log_offset = -s $node->logfile;
my @new = map { "new$_" } 1 .. 15;
my @old = map { "old$_" } 1 .. 10;
my @gone = map { "gone$_" } 1 .. 5;
my %res = wave(1, @new, @old, @gone);

is(join(',', map { $res{$_}[0] } @new), join(',', ('201') x @new), 'new keys: 201 each');
is(join(',', map { $res{$_}[0] } @old), join(',', ('200') x @old), 'overwrites: 200 each');
is(join(',', map { $res{$_}[0] } @gone), join(',', ('201') x @gone),
	'keys whose rows had expired: 201 each (created, as one by one)');

# every answer agrees with the table, and the cache with the table
sub check_rows
{
	my ($round, @keys) = @_;
	my %rows = map { my ($k, $v, $ver, $exp) = split /\|/, $_, 4; $k => [ $v, $ver, $exp ] }
	  split /\n/, $node->safe_psql('postgres',
		q{SELECT key, convert_from(value, 'UTF8'), version, coalesce(expires_at::text, '') FROM kv_store
		  WHERE key ~ '^(new|old|gone|bad)'});
	my ($wrong_etag, $wrong_value, $wrong_get) = (0, 0, 0);
	my %versions;
	for my $k (@keys)
	{
		$wrong_value++ unless ($rows{$k}[0] // '') eq "v$round-$k" && $rows{$k}[2] eq '';
		$wrong_etag++ unless $res{$k}[1] eq qq{"$rows{$k}[1]"};
		$versions{ $rows{$k}[1] }++;
		my $r = $kv->http('GET', "/kv/$k");
		$wrong_get++ unless $r->{status} == 200 && $r->{content} eq "v$round-$k"
		  && ($r->{headers}{etag} // '') eq qq{"$rows{$k}[1]"};
	}
	is($wrong_value, 0, "wave $round: every key holds its new value, without an expiry");
	is($wrong_etag, 0, "wave $round: every PUT's ETag is its row's version");
	is($wrong_get, 0, "wave $round: every GET answers the new value and version");
	is(scalar(keys %versions), scalar(@keys), "wave $round: each write got its own version");
	return %rows;
}
check_rows(1, @new, @old, @gone);

my $log = slurp_from($node->logfile, $log_offset);
my @groups = $log =~ /kvserver wrote (\d+) PUTs with one statement/g;
ok(@groups > 0, 'PUTs were written several with one statement (' . join(' ', @groups) . ')');

# a second wave, with two keys the table rejects among the overwrites
$log_offset = -s $node->logfile;
%res = wave(2, @new, @old, 'bad1', 'bad2');
is(join(',', map { $res{$_}[0] } @new, @old), join(',', ('200') x (@new + @old)),
	'second wave: 200 for every overwrite');
for my $bad ('bad1', 'bad2')
{
	is($res{$bad}[0], '400', "$bad, rejected by the table's CHECK constraint: 400");
	like($res{$bad}[2], qr/test_no_bad_keys/, "$bad: the answer names the constraint");
}
my %rows = check_rows(2, @new, @old);
ok(!exists $rows{bad1} && !exists $rows{bad2}, 'the rejected keys were not written');
$log = slurp_from($node->logfile, $log_offset);
my $redone = () = $log =~ /the statement for \d+ PUTs failed; writing them one by one/g;
ok($redone > 0, "a group with a rejected PUT was written again one by one ($redone)");

sub slurp_from
{
	my ($file, $offset) = @_;
	open(my $fh, '<', $file) or die "open $file: $!";
	seek($fh, $offset, 0);
	local $/;
	my $text = <$fh>;
	close($fh);
	return $text;
}

$node->stop;
done_testing();
