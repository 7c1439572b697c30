
# Copyright (c) kvserver authors

# Write-through: a committed HTTP write installs the key's new state in the
# cache, so the next GET is a hit with exactly what the table has; a
# DELETE leaves nothing; a trigger or rule someone added to kv_store (which
# may change the row) turns it off, and the table's value is served.
# (Coherence under concurrency is t/020's linearizability check, which
# runs against this.)

use strict;
use warnings;

use FindBin;
use lib "$FindBin::RealBin/../lib";

use KvServerTest;
use Test::More;
use Time::HiRes qw(usleep);

my $kv = KvServerTest->new('write_through');
my $node = $kv->node;

sub get
{
	my ($key) = @_;
	my $r = $kv->http('GET', "/kv/$key");
	return ($r->{status}, $r->{content}, $r->{headers}{'x-cache'} || '',
		$r->{headers}{etag} || '', $r->{headers}{'content-type'} || '');
}

subtest 'the next GET after a write is a hit with the new state' => sub {
	my $r = $kv->http('PUT', '/kv/a', 'one', { 'Content-Type' => 'text/plain' });
	is($r->{status}, 201, 'PUT a new key');
	my ($st, $body, $cache, $etag, $ct) = get('a');
	is("$st $body $cache $ct", '200 one HIT text/plain', 'GET: a hit with the value and content type');
	my $version = $node->safe_psql('postgres', "SELECT version FROM kv_store WHERE key = 'a'");
	is($etag, qq{"$version"}, 'and the ETag is the table\'s version');

	$r = $kv->http('PUT', '/kv/a', 'two', { 'Content-Type' => 'application/json' });
	is($r->{status}, 200, 'overwrite');
	($st, $body, $cache, $etag, $ct) = get('a');
	is("$st $body $cache $ct", '200 two HIT application/json', 'GET: a hit with the new value');

	$r = $kv->http('PUT', '/kv/a', 'three', { 'If-Match' => $etag });
	is($r->{status}, 200, 'conditional overwrite');
	($st, $body, $cache) = get('a');
	is("$st $body $cache", '200 three HIT', 'GET: a hit with its value');

	$r = $kv->http('POST', '/kv/', '{"key":"b","value":"created"}',
		{ 'Content-Type' => 'application/json' });
	is($r->{status}, 201, 'POST /kv/ creates');
	($st, $body, $cache, undef, $ct) = get('b');
	is("$st $body $cache $ct", '200 created HIT text/plain; charset=utf-8', 'GET: a hit');

	$r = $kv->http('DELETE', '/kv/a');
	is($r->{status}, 204, 'DELETE');
	($st) = get('a');
	is($st, 404, 'GET after DELETE: 404');

	$r = $kv->http('PUT', '/kv/t?ttl=1', 'short');
	($st, $body, $cache) = get('t');
	is("$st $body $cache", '200 short HIT', 'a key with a TTL: a hit');
	usleep(1_500_000);
	($st) = get('t');
	is($st, 404, 'and 404 once it has expired');

	my $big = 'x' x 600_000;
	$r = $kv->http('PUT', '/kv/big', $big);
	($st, $body, $cache) = get('big');
	is($st, 200, 'a value too big for a cache partition is served');
	is(length($body), 600_000, 'whole');
	is($cache, 'MISS', 'from the table');
	done_testing();
};

subtest 'a trigger someone added turns it off' => sub {
	$node->safe_psql('postgres', q{
CREATE FUNCTION shout() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	NEW.value := convert_to(upper(convert_from(NEW.value, 'UTF8')), 'UTF8');
	RETURN NEW;
END $$;
CREATE TRIGGER shout BEFORE INSERT OR UPDATE ON kv_store
	FOR EACH ROW EXECUTE FUNCTION shout();
});
	my $r = $kv->http('PUT', '/kv/s', 'quiet');
	is($r->{status}, 201, 'PUT');
	my ($st, $body, $cache) = get('s');
	is("$st $body $cache", '200 QUIET MISS', 'GET: the table\'s value, from the table');
	($st, $body, $cache) = get('s');
	is("$st $body $cache", '200 QUIET HIT', 'then cached by the read, as usual');
	$node->safe_psql('postgres', 'DROP TRIGGER shout ON kv_store');

	$node->safe_psql('postgres', q{
CREATE RULE keep_log AS ON DELETE TO kv_store DO ALSO NOTIFY kv_changed});
	$r = $kv->http('PUT', '/kv/s', 'again');
	($st, $body, $cache) = get('s');
	is("$st $body $cache", '200 again MISS', 'with a rule on kv_store: no write-through either');
	$node->safe_psql('postgres', 'DROP RULE keep_log ON kv_store');

	$r = $kv->http('PUT', '/kv/s', 'back');
	($st, $body, $cache) = get('s');
	is("$st $body $cache", '200 back HIT', 'both gone: write-through again');
	done_testing();
};

done_testing();
