
# Copyright (c) kvserver authors

# kvcli watch KEY and kvcli watch --prefix P print each change as it comes:
# the key's new values (one per line), "created KEY", "deleted KEY" and
# "changed P".  Run in the background against a real node; the test writes
# through SQL and HTTP and reads what kvcli printed.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::RealBin/../lib";

use IPC::Run;
use KvServerTest;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);

my $kvcli =
    defined $ENV{KVCLI} && $ENV{KVCLI} ne '' ? $ENV{KVCLI}
  : defined $ENV{TESTDIR} && $ENV{TESTDIR} ne '' ? "$ENV{TESTDIR}/kvcli/kvcli"
  :   "$FindBin::RealBin/../../kvcli/kvcli";
if (!-x $kvcli)
{
	if ($ENV{KV_REQUIRE_KVCLI})
	{
		fail("kvcli binary $kvcli is there and executable (build it: make kvcli)");
		done_testing();
		exit;
	}
	plan skip_all => "kvcli is not built (make kvcli); set KV_REQUIRE_KVCLI=1 to fail instead";
}

my $kv = KvServerTest->new('watch_kvcli');
my $node = $kv->node;

sub sql { return $node->safe_psql('postgres', $_[0]); }

# Start kvcli with these arguments in the background.
sub start_kvcli
{
	my (@args) = @_;
	my %h = (out => '', err => '');
	local %ENV = %ENV;
	delete $ENV{$_} foreach qw(KVSERVER_URL KVSERVER_USER KVSERVER_TOKEN KVSERVER_CACERT);
	$h{run} = IPC::Run::start([ $kvcli, '--url', $kv->url(''), @args ],
		'<', \undef, '>', \$h{out}, '2>', \$h{err});
	return \%h;
}

# Wait until kvcli's output matches 're'; true if it did within 'secs'.
sub wait_output
{
	my ($h, $re, $stream, $secs) = @_;
	my $deadline = time() + ($secs || 10);
	while (time() < $deadline)
	{
		$h->{run}->pump_nb;
		return 1 if $h->{ $stream || 'out' } =~ $re;
		usleep(20_000);
	}
	note "kvcli printed: out=[$h->{out}] err=[$h->{err}]";
	return 0;
}

sub stop_kvcli
{
	my ($h) = @_;
	$h->{run}->kill_kill;
}

subtest 'kvcli watch KEY' => sub {
	$kv->http('PUT', '/kv/k', 'first');
	my $h = start_kvcli('watch', 'k');
	ok(wait_output($h, qr/\Afirst\n\z/), 'prints the value');
	sql("UPDATE kv_store SET value = 'second' WHERE key = 'k'");
	ok(wait_output($h, qr/\Afirst\nsecond\n\z/), 'then the value SQL wrote');
	$kv->http('PUT', '/kv/k', 'third');
	ok(wait_output($h, qr/\nthird\n\z/), 'then the value HTTP wrote');
	sql("BEGIN; UPDATE kv_store SET value = 'never' WHERE key = 'k'; ROLLBACK");
	$kv->http('DELETE', '/kv/k');
	ok(wait_output($h, qr/k does not exist/, 'err'), 'a delete is reported');
	unlike($h->{out}, qr/never/, 'a rollback printed nothing');
	sql("SELECT kv_put('k', 'reborn')");
	ok(wait_output($h, qr/\nreborn\n\z/), 'and the key created again');
	stop_kvcli($h);
};

subtest 'kvcli watch --prefix P' => sub {
	$kv->http('PUT', '/kv/p/a', 'x');
	my $h = start_kvcli('watch', '--prefix', 'p/');
	usleep(300_000);
	$kv->http('PUT', '/kv/p/b', 'y');
	ok(wait_output($h, qr/\Acreated p\/b\n\z/), 'a created key');
	sql("UPDATE kv_store SET value = 'z' WHERE key = 'p/a'");
	ok(wait_output($h, qr/\nchanged p\/\n\z/), 'a changed value');
	$kv->http('PUT', '/kv/q/other', 'elsewhere');
	sql("DELETE FROM kv_store WHERE key = 'p/a'");
	ok(wait_output($h, qr/\ndeleted p\/a\n\z/), 'a deleted key');
	is($h->{out}, "created p/b\nchanged p/\ndeleted p/a\n", 'and nothing for the key elsewhere');
	stop_kvcli($h);
};

subtest 'usage' => sub {
	my ($out, $err) = ('', '');
	IPC::Run::run([ $kvcli, 'watch' ], '>', \$out, '2>', \$err);
	is($? >> 8, 2, 'watch without a key: usage error');
	IPC::Run::run([ $kvcli, 'list', '--prefix', 'x' ], '>', \$out, '2>', \$err);
	is($? >> 8, 2, '--prefix outside watch: usage error');
};

done_testing();
