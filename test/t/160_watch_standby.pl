
# Copyright (c) kvserver authors

# Watches on a hot standby: replay fires no trigger, so the worker publishes
# the replay position as the change index whenever replay advanced, and
# watchers look again.  A key watch is woken by a write on the primary once
# it is replayed; a prefix watch sees a replayed delete; indexes keep
# growing across the promotion.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::RealBin/../lib";

use KvServerTest;
use KvWatch;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);

my $kv = KvServerTest->new(
	'watch_primary',
	conf => join("\n",
		"wal_level = replica", "max_wal_senders = 10",
		"wal_keep_size = '128MB'", "hot_standby = on", ""));
my $primary = $kv->node;
$kv->http('PUT', '/kv/k', 'one');
$kv->http('PUT', "/kv/p/$_", 'v') for 1 .. 3;

$primary->backup('b');
my $standby = PostgreSQL::Test::Cluster->new('watch_standby');
$standby->init_from_backup($primary, 'b', has_streaming => 1);
my $port = PostgreSQL::Test::Cluster::get_free_port();
$standby->append_conf('postgresql.conf', "kvserver.port = $port\n");
$standby->start;
my $skv = bless { node => $standby, host => '127.0.0.1', port => $port,
	anonymous_role => 'kv_anon' }, 'KvServerTest';
ok($skv->wait_for_health(200, 60), 'the standby serves');
$primary->wait_for_catchup($standby);

my $etag = $skv->http('GET', '/kv/k')->{headers}{etag};

subtest 'a key watch on the standby, woken by a replayed UPDATE' => sub {
	my $w = KvWatch::start($skv, '/kv/k?wait=20s', 'If-None-Match' => $etag);
	ok(!KvWatch::answered_within($w, 0.5), 'waits');
	$primary->safe_psql('postgres', "UPDATE kv_store SET value = 'two' WHERE key = 'k'");
	my $t = time();
	my $r = KvWatch::finish($w);
	is("$r->{status} $r->{content}", '200 two', 'the new value');
	cmp_ok($r->{answered_at} - $t, '<', 5, 'soon after the commit on the primary');

	$etag = $r->{headers}{etag};
	$w = KvWatch::start($skv, '/kv/k?wait=1s', 'If-None-Match' => $etag);
	$primary->safe_psql('postgres', "SELECT kv_put('other', 'x')");
	$r = KvWatch::finish($w);
	is($r->{status}, 304, 'another key replayed: 304 at the deadline');
};

subtest 'a prefix watch on the standby sees a replayed delete' => sub {
	my $r = $skv->http('GET', '/kv/?prefix=p/');
	my $n = $r->{headers}{'x-kv-index'};
	like($n, qr/^\d+$/, 'the standby lists with X-Kv-Index');
	# Anything replayed (a checkpoint's WAL too) wakes a standby's prefix
	# watchers, which then answer with a newer index and maybe the same
	# page: follow the indexes until the delete shows, as a client would.
	my $w = KvWatch::start($skv, "/kv/?prefix=p/&wait=20s&index=$n");
	$primary->safe_psql('postgres', "DELETE FROM kv_store WHERE key = 'p/2'");
	my $deadline = time() + 20;
	my @keys;
	while (1)
	{
		$r = KvWatch::finish($w);
		is($r->{status}, 200, 'answered');
		cmp_ok($r->{headers}{'x-kv-index'}, '>', $n, 'with a newer index');
		$n = $r->{headers}{'x-kv-index'};
		@keys = @{ decode_json_body($r)->{keys} };
		last if @keys == 2 || time() > $deadline;
		$w = KvWatch::start($skv, "/kv/?prefix=p/&wait=20s&index=$n");
	}
	is_deeply(\@keys, [ 'p/1', 'p/3' ], 'the page without the key');

	# promotion: the index goes on growing, and watches keep working
	$standby->promote;
	ok($skv->wait_for_health(200, 30), 'promoted');
	$deadline = time() + 10;
	$r = $skv->http('PUT', '/kv/p/4', 'after promotion');
	while ($r->{status} != 201 && time() < $deadline)
	{
		usleep(200_000);
		$r = $skv->http('PUT', '/kv/p/4', 'after promotion');
	}
	is($r->{status}, 201, 'a write on the promoted node');
	$r = $skv->http('GET', "/kv/?prefix=p/&wait=20s&index=$n");
	is_deeply(decode_json_body($r)->{keys}, [ 'p/1', 'p/3', 'p/4' ], 'the index from the standby: the new key');
	cmp_ok($r->{headers}{'x-kv-index'}, '>', $n, 'and a larger index');
};

done_testing();
