
# Copyright (c) kvserver authors

# The dashboard (GET /) against a real node: the page is one self-contained
# HTML file (nothing from elsewhere), and in a real browser (Debian's
# Chromium driven by test/browser/dashboard.mjs through playwright-core)
# its form puts, gets, lists and deletes keys and its live panel follows
# /metrics.  The browser leaves a screenshot in tmp_check/dashboard.png.
#
# Needs /usr/bin/chromium, node and test/browser/node_modules (install them
# with test/browser/setup.sh, as root).  Without them the test is skipped,
# unless KV_REQUIRE_BROWSER is set (CI): then it fails.  CHROMIUM names
# another Chromium binary.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::RealBin/../lib";

use File::Spec;
use IPC::Run;
use KvServerTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $root = File::Spec->rel2abs("$FindBin::RealBin/../..");
my $browser_dir = "$root/test/browser";
my $script = "$browser_dir/dashboard.mjs";
my $chromium = $ENV{CHROMIUM} || '/usr/bin/chromium';
my $require = $ENV{KV_REQUIRE_BROWSER} ? 1 : 0;    # set, and not '' or '0'

my @missing;
push @missing, $chromium unless -x $chromium;
push @missing, 'node (on PATH)'
  unless grep { -x "$_/node" } split /:/, ($ENV{PATH} // '');
push @missing, "$browser_dir/node_modules/playwright-core"
  unless -f "$browser_dir/node_modules/playwright-core/package.json";

if (@missing && !$require)
{
	plan skip_all => 'browser test needs '
	  . join(', ', @missing)
	  . ' (run test/browser/setup.sh as root; set KV_REQUIRE_BROWSER=1 to fail instead)';
}

my $kv = KvServerTest->new('dashboard');

subtest 'GET / is one self-contained HTML page' => sub {
	my $res = $kv->http('GET', '/');
	is($res->{status}, 200, 'status 200');
	like(header($res, 'Content-Type'), qr{^text/html\b}i, 'Content-Type is text/html');
	my $page = $res->{content} // '';
	like($page, qr/<!doctype html>/i, 'an HTML document');
	cmp_ok(length($page), '<', 24 * 1024, 'smaller than 24 KB');
	my @external = $page =~ m{(https?://[^\s"'<>)]*)}gi;
	is_deeply(\@external, [], 'no http:// or https:// anywhere in the page');
	my @relative = $page =~ m{((?:src|href|action)\s*=\s*["']?//[^\s"'>]*|url\(\s*["']?//[^)]*|\@import)}gi;
	is_deeply(\@relative, [], 'no protocol-relative src, href or url(), no @import');
	like($page, qr/\bid="$_"/, "has #$_")
	  foreach qw(key value btn-put btn-get btn-del btn-list btn-watch
	  btn-watch-prefix watch-log output
	  stat-rps stat-hit stat-p99 stat-fill stat-requests);

	my $head = $kv->http('HEAD', '/');
	is($head->{status}, 200, 'HEAD / is 200');
	my $metrics = $kv->http('GET', '/metrics');
	is($metrics->{status}, 200, 'GET /metrics (which the page polls) is 200');
};

if (@missing)
{
	fail('browser tools are there: missing ' . join(', ', @missing)
		  . ' (KV_REQUIRE_BROWSER is set; run test/browser/setup.sh as root)');
	done_testing();
	exit;
}

subtest 'the dashboard in Chromium: put, get, errors, list, delete, live panel' => sub {
	my $shot = "$PostgreSQL::Test::Utils::tmp_check/dashboard.png";
	unlink $shot;
	my @cmd = ('node', $script, $kv->url('/'), $shot);
	note "running: @cmd";
	my ($out, $err) = ('', '');
	my $in = '';
	my $ok = eval {
		IPC::Run::run(\@cmd, '<', \$in, '>', \$out, '2>', \$err,
			IPC::Run::timeout(180));
		1;
	};
	my $rc = $ok ? $? >> 8 : -1;
	note $out if $out ne '';
	diag "node died: $@" unless $ok;
	is($rc, 0, 'dashboard.mjs exits 0')
	  or diag("stderr of dashboard.mjs:\n$err\nstdout:\n$out");
	like($out, qr/^dashboard\.mjs: all checks passed$/m, 'dashboard.mjs says all checks passed');
	like($out, qr/^ok - request total moved: \d+ -> \d+$/m, 'the total request counter moved');

	ok(-s $shot, "screenshot saved: $shot") or return;
	open(my $fh, '<:raw', $shot) or die "open $shot: $!";
	read($fh, my $magic, 8);
	close $fh;
	is($magic, "\x89PNG\r\n\x1a\n", 'the screenshot is a PNG');
	cmp_ok(-s $shot, '>', 20_000, 'the screenshot is not blank');
};

done_testing();
