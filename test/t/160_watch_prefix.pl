
# Copyright (c) kvserver authors

# Watching a prefix: every listing answers with X-Kv-Index, which grows with
# every committed change to kv_store (not with a rollback);
# GET /kv/?prefix=P&wait=D&index=N answers as soon as a key under P was
# created, changed or deleted after N (the new page, a newer index), or at
# the deadline with the same page.  When the server cannot tell (an index
# from before a restart or a kv_cache_reset(), one it never gave out) it
# answers at once.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::RealBin/../lib";

use KvServerTest;
use KvWatch;
use Test::More;
use Time::HiRes qw(time usleep);

my $kv = KvServerTest->new('watch_prefix');
my $node = $kv->node;

sub sql { return $node->safe_psql('postgres', $_[0]); }

sub list
{
	my ($prefix) = @_;
	my $r = $kv->http('GET', '/kv/?prefix=' . uri_escape($prefix));
	return (decode_json_body($r), $r->{headers}{'x-kv-index'}, $r);
}

sub keys_of { return join(',', @{ $_[0]->{keys} }); }

$kv->http('PUT', "/kv/p/$_", "v$_") for 1 .. 3;
$kv->http('PUT', '/kv/q/1', 'q');

subtest 'every listing carries X-Kv-Index; commits move it, rollbacks do not' => sub {
	my ($page, $i1) = list('p/');
	is(keys_of($page), 'p/1,p/2,p/3', 'the page');
	like($i1, qr/^\d+$/, 'X-Kv-Index is a number');
	my (undef, $again) = list('p/');
	is($again, $i1, 'unchanged without a commit');
	sql("BEGIN; UPDATE kv_store SET value = 'x'; ROLLBACK");
	(undef, $again) = list('p/');
	is($again, $i1, 'unchanged by a rollback');
	sql("UPDATE kv_store SET value = 'q2' WHERE key = 'q/1'");
	my (undef, $i2) = list('p/');
	cmp_ok($i2, '>', $i1, 'a commit elsewhere moves it too');
	my (undef, $i3) = list('');
	cmp_ok($i3, '>=', $i2, 'it is one counter for every prefix');
	my $r = $kv->http('GET', "/kv/?prefix=p/&index=$i2&wait=0");
	is($r->{headers}{'x-kv-index'}, $i2, 'wait=0 without a change: at once, the same index');
	sql("UPDATE kv_store SET value = 'q3' WHERE key = 'q/1'");
	$r = $kv->http('GET', "/kv/?prefix=p/&index=$i2&wait=0");
	is($r->{headers}{'x-kv-index'}, $i2, 'and after a change elsewhere, still the same index');
	$r = $kv->http('GET', '/kv/?prefix=p/&index=abc&wait=1s');
	is_error($r, 400, 'bad_request', 'a malformed index');
	$r = $kv->http('GET', '/kv/?prefix=p/&index=1&wait=forever');
	is_error($r, 400, 'bad_request', 'a malformed wait');
};

subtest 'a change under the prefix wakes the watch; elsewhere it does not' => sub {
	my ($page, $n) = list('p/');
	my $w = KvWatch::start($kv, "/kv/?prefix=p/&wait=20s&index=$n");
	my $other = KvWatch::start($kv, "/kv/?prefix=q/&wait=1500ms&index=$n");
	ok(!KvWatch::answered_within($w, 0.3), 'waits');
	sql("UPDATE kv_store SET value = 'changed' WHERE key = 'p/2'");
	my $r = KvWatch::finish($w);
	is($r->{status}, 200, 'a value changed under p/: 200');
	cmp_ok($r->{headers}{'x-kv-index'}, '>', $n, 'with a newer index');
	is(keys_of(decode_json_body($r)), 'p/1,p/2,p/3', 'and the page');
	cmp_ok($r->{elapsed}, '<', 5, 'answered at the change, not the deadline');

	$r = KvWatch::finish($other);
	is($r->{status}, 200, 'q/ was not changed: 200 at the deadline');
	cmp_ok($r->{elapsed}, '>=', 1.4, 'after the wait');
	is(keys_of(decode_json_body($r)), 'q/1', 'the same page');
	is($r->{headers}{'x-kv-index'}, $n, 'and the same index');

	$w = KvWatch::start($kv, "/kv/?prefix=q/&wait=1s&index=" . $r->{headers}{'x-kv-index'});
	$r = KvWatch::finish($w);
	cmp_ok($r->{elapsed}, '>=', 0.9, 'watching from that index waits again');

	# longer than kvserver.request_timeout (5s here), which bounds idle
	# connections and database waits, not watches
	$w = KvWatch::start($kv, "/kv/?prefix=q/&wait=7s&index=" . $r->{headers}{'x-kv-index'});
	$r = KvWatch::finish($w);
	is($r->{status}, 200, 'a 7 s watch is answered');
	cmp_ok($r->{elapsed}, '>=', 6.9, 'after its 7 s');
};

subtest 'a delete, a create, TRUNCATE' => sub {
	my ($page, $n) = list('p/');
	my $w = KvWatch::start($kv, "/kv/?prefix=p/&wait=20s&index=$n");
	ok(!KvWatch::answered_within($w, 0.3), 'waits');
	$kv->http('DELETE', '/kv/p/1');
	my $r = KvWatch::finish($w);
	is($r->{status}, 200, 'DELETE over HTTP wakes it');
	is(keys_of(decode_json_body($r)), 'p/2,p/3', 'the page without the key');
	$n = $r->{headers}{'x-kv-index'};

	$w = KvWatch::start($kv, "/kv/?prefix=p/&wait=20s&index=$n");
	ok(!KvWatch::answered_within($w, 0.3), 'waits from the new index');
	sql("INSERT INTO kv_store (key, value) VALUES ('p/9', 'new')");
	$r = KvWatch::finish($w);
	is(keys_of(decode_json_body($r)), 'p/2,p/3,p/9', 'an INSERT: the new key is listed');
	$n = $r->{headers}{'x-kv-index'};

	$w = KvWatch::start($kv, "/kv/?prefix=p/&wait=20s&index=$n");
	ok(!KvWatch::answered_within($w, 0.3), 'waits');
	sql("DELETE FROM kv_store WHERE key = 'p/9'");
	$r = KvWatch::finish($w);
	is(keys_of(decode_json_body($r)), 'p/2,p/3', 'a plain SQL DELETE: gone');
	$n = $r->{headers}{'x-kv-index'};

	$w = KvWatch::start($kv, "/kv/?prefix=p/&wait=20s&index=$n");
	ok(!KvWatch::answered_within($w, 0.3), 'waits');
	sql('TRUNCATE kv_store');
	$r = KvWatch::finish($w);
	is(keys_of(decode_json_body($r)), '', 'TRUNCATE: an empty page');
};

subtest 'changes already made after the index answer at once' => sub {
	my (undef, $n) = list('p/');
	$kv->http('PUT', '/kv/p/late', 'x');
	my $t0 = time();
	my $r = $kv->http('GET', "/kv/?prefix=p/&wait=20s&index=$n");
	cmp_ok(time() - $t0, '<', 5, 'at once (the wait is 20 s)');
	is(keys_of(decode_json_body($r)), 'p/late', 'with the change');

	(undef, $n) = list('p/');
	$kv->http('PUT', '/kv/q/late', 'x');
	my $w = KvWatch::start($kv, "/kv/?prefix=p/&wait=1s&index=$n");
	$r = KvWatch::finish($w);
	cmp_ok($r->{elapsed}, '>=', 0.9, 'a change elsewhere since then: it waits');

	# many keys in one transaction: the common prefix is remembered
	(undef, $n) = list('p/');
	my $wz = KvWatch::start($kv, "/kv/?prefix=z/&wait=1s&index=$n");
	sql("SELECT kv_put('p/m/' || i, 'v') FROM generate_series(1, 30) i");
	$r = $kv->http('GET', "/kv/?prefix=p/m/2&wait=20s&index=$n");
	is(keys_of(decode_json_body($r)), 'p/m/2,p/m/20,p/m/21,p/m/22,p/m/23,p/m/24,p/m/25,p/m/26,p/m/27,p/m/28,p/m/29',
		'thirty keys in one transaction: a narrower prefix answers at once');
	$r = KvWatch::finish($wz);
	cmp_ok($r->{elapsed}, '>=', 0.9, 'a prefix outside them waits');
};

subtest 'an index it cannot vouch for answers at once' => sub {
	my (undef, $n) = list('p/');
	for my $bad (0, 1, $n + 1_000_000)
	{
		my $t0 = time();
		my $r = $kv->http('GET', "/kv/?prefix=p/&wait=20s&index=$bad");
		is($r->{status}, 200, "index=$bad: 200");
		cmp_ok(time() - $t0, '<', 5, "index=$bad: at once");
		is($r->{headers}{'x-kv-index'}, $n, 'with the current index');
	}

	# kv_cache_reset(): a waiting watch answers, and old indexes are unknown
	my $w = KvWatch::start($kv, "/kv/?prefix=p/&wait=20s&index=$n");
	ok(!KvWatch::answered_within($w, 0.3), 'waits');
	sql('SELECT kv_cache_reset()');
	my $r = KvWatch::finish($w);
	is($r->{status}, 200, 'kv_cache_reset(): the waiting watch answers');
	cmp_ok($r->{elapsed}, '<', 5, 'at once');
	my $after = $r->{headers}{'x-kv-index'};
	cmp_ok($after, '>', $n, 'with a newer index');
	my $t0 = time();
	$r = $kv->http('GET', "/kv/?prefix=p/&wait=20s&index=$n");
	cmp_ok(time() - $t0, '<', 5, 'the index from before the reset: at once');
	$w = KvWatch::start($kv, "/kv/?prefix=p/&wait=1s&index=$after");
	$r = KvWatch::finish($w);
	cmp_ok($r->{elapsed}, '>=', 0.9, 'the new one waits');

	# a restart: indexes go on growing, and older ones answer at once
	$node->restart;
	$kv->wait_for_health(200, 30);
	my (undef, $m) = list('p/');
	cmp_ok($m, '>', $after, 'after a restart the index is still larger');
	$t0 = time();
	$r = $kv->http('GET', "/kv/?prefix=p/&wait=20s&index=$after");
	cmp_ok(time() - $t0, '<', 5, 'an index from before the restart: at once');
	$kv->http('PUT', '/kv/q/after-restart', 'x');
	(undef, $m) = list('p/');
	$w = KvWatch::start($kv, "/kv/?prefix=p/&wait=20s&index=$m");
	ok(!KvWatch::answered_within($w, 0.3), 'a fresh index waits');
	sql("DELETE FROM kv_store WHERE key = 'p/late'");
	$r = KvWatch::finish($w);
	unlike(keys_of(decode_json_body($r)), qr{p/late}, 'and sees the delete');
};

done_testing();
