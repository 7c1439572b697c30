# kvserver loaded without shared_preload_libraries: the SQL functions work
# (without a cache, no HTTP worker) and kv_stats() says why there is no cache.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('no_preload');
$node->init;
$node->start;

$node->safe_psql('postgres', 'CREATE EXTENSION kvserver');

is($node->safe_psql('postgres',
		"SELECT kv_put('k', 'v'); SELECT kv_get('k')"),
	"\nv", 'kv_put then kv_get without preloading');

is($node->safe_psql('postgres', "SELECT kv_get('k')"),
	'v', 'a new session reads it back');

is($node->safe_psql('postgres',
		'SELECT cache_enabled, cache_note FROM kv_stats()'),
	'f|kvserver is not in shared_preload_libraries: no cache',
	'kv_stats() says there is no cache, and why');

is($node->safe_psql('postgres', "SELECT kv_delete('k'), kv_get('k') IS NULL"),
	't|t', 'kv_delete works');

# once a function has loaded the module in a session, its start-time
# settings are shown (read-only) rather than making the load fail
is($node->safe_psql('postgres',
		"SELECT kv_get('nothing') IS NULL; SHOW kvserver.cache_size"),
	"t\n64MB", 'start-time settings are defined when loaded late');

is($node->safe_psql('postgres',
		"SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'kvserver'"),
	'0', 'no HTTP worker without preloading');

$node->stop;
done_testing();
