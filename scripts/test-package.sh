#!/usr/bin/env bash
# Build and check the Debian packages (debian/) and the PGXN META.json.
#
#   scripts/test-package.sh          as root, from any directory
#
# 1. installs the build dependencies named in debian/control that are missing
#    (apt-get update first only then; never reads stdin)
# 2. copies the checkout, without .git and build outputs, into a temporary
#    directory: dpkg-buildpackage writes ../*.deb next to the tree it builds,
#    so nothing is ever written into the checkout
# 3. builds the source package (dpkg-source -b, from an upstream tarball made
#    of the same tree) and runs `dpkg-buildpackage -us -uc -b` there
# 4. checks the .deb files' contents and control fields (dpkg-deb -c, -I)
# 5. unpacks them into a scratch root (dpkg -x) and checks the files, that the
#    module is a PostgreSQL module (nm -D: _PG_init, Pg_magic_func), that
#    the OpenSSL shims give civetweb TLS, and that kvcli runs
# 6. validates META.json against the PGXN meta spec 1.0.0
#
# Last line: "package: N passed, M failed"; exit 1 if anything failed.  The
# temporary directory is removed on success and kept (and named) on failure;
# KEEP=1 keeps it always.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
START=$SECONDS
PASSED=0
FAILED=0
WORK=

log() { printf 'test-package: %s\n' "$*"; }
ok() { PASSED=$((PASSED + 1)); printf 'ok %d - %s\n' "$((PASSED + FAILED))" "$*"; }
not_ok() { FAILED=$((FAILED + 1)); printf 'not ok %d - %s\n' "$((PASSED + FAILED))" "$*"; }
# bail DESCRIPTION: a failed check after which nothing else can be checked
BAILED=0
bail() { not_ok "$*"; BAILED=1; exit 1; }
# check DESCRIPTION COMMAND...: one check, passed if COMMAND succeeds
check() {
	local desc=$1
	shift
	if "$@"; then ok "$desc"; else not_ok "$desc"; fi
}

finish() {
	local rc=$?
	trap - EXIT
	if [ "$rc" -ne 0 ] && [ "$BAILED" -eq 0 ]; then
		# an unexpected error stopped the script: that is a failure too
		not_ok "script stopped by an error (exit status $rc)"
	fi
	if [ -n "$WORK" ] && [ -d "$WORK" ]; then
		if [ "$FAILED" -eq 0 ] && [ "${KEEP:-0}" != 1 ]; then
			rm -rf "$WORK"
		else
			log "kept the temporary directory $WORK"
		fi
	fi
	log "took $((SECONDS - START)) s"
	echo "package: $PASSED passed, $FAILED failed"
	[ "$FAILED" -eq 0 ] || exit 1
	exit 0
}
trap finish EXIT

if [ "$(id -u)" -ne 0 ]; then
	bail "must run as root (installs build dependencies with apt-get)"
fi

# --- 1. build dependencies -----------------------------------------------------

is_installed() {
	local status
	status=$(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null) || return 1
	[ "$status" = installed ]
}

# Build-Depends of debian/control, without versions, architectures and build
# profiles (first of alternatives; debhelper-compat is provided by debhelper),
# plus what building and this script use.
build_deps() {
	awk '
		/^Build-Depends(-Arch|-Indep)?:/ { on = 1; sub(/^[^:]*:/, ""); print; next }
		on && /^[ \t]/ { print; next }
		{ on = 0 }
	' "$ROOT/debian/control" | tr ',' '\n' | sed -e 's/|.*//' -e 's/([^)]*)//g' \
		-e 's/\[[^]]*\]//g' -e 's/<[^>]*>//g' -e 's/[[:space:]]//g' -e 's/:any$//' \
		| sed -e 's/^debhelper-compat$/debhelper/' | grep -v '^$'
	printf '%s\n' build-essential binutils perl
}

mapfile -t DEPS < <(build_deps | sort -u)
missing=()
for pkg in "${DEPS[@]}"; do
	is_installed "$pkg" || missing+=("$pkg")
done
if [ "${#missing[@]}" -eq 0 ]; then
	log "all ${#DEPS[@]} build dependencies are installed: ${DEPS[*]}"
else
	log "missing build dependencies: ${missing[*]}"
	t0=$SECONDS
	export DEBIAN_FRONTEND=noninteractive
	# wait for another apt/dpkg run to end rather than fail on its lock
	APT_OPTS=(-q -o DPkg::Lock::Timeout=900)
	log "apt-get update"
	apt-get "${APT_OPTS[@]}" update </dev/null || bail "apt-get update failed"
	log "apt-get install ${missing[*]}"
	apt-get "${APT_OPTS[@]}" install -y --no-install-recommends "${missing[@]}" </dev/null ||
		bail "apt-get install ${missing[*]} failed"
	log "installing took $((SECONDS - t0)) s"
fi
still=()
for pkg in "${DEPS[@]}"; do
	is_installed "$pkg" || still+=("$pkg")
done
if [ "${#still[@]}" -eq 0 ]; then
	ok "build dependencies installed (${#DEPS[@]} packages)"
else
	bail "build dependencies still missing: ${still[*]}"
fi
check "dpkg-checkbuilddeps: Build-Depends of debian/control satisfied" \
	dpkg-checkbuilddeps "$ROOT/debian/control"

# --- 2. copy of the checkout ---------------------------------------------------

WORK=$(mktemp -d "${TMPDIR:-/tmp}/kvserver-package.XXXXXX")
SRC=$WORK/kvserver
mkdir "$SRC"
# no VCS data, no build or test outputs (debian/rules clean would remove most
# of these anyway), no leftovers of a build of debian/ in the checkout.
# tar's status 1 ("file changed as we read it": someone editing the checkout)
# is not an error here; 2 is.
{ tar -C "$ROOT" -cf - --warning=no-file-changed --warning=no-file-removed \
	--exclude=./.git --exclude=./.cluster --exclude='./tmp_check*' \
	--exclude=./results --exclude=./log --exclude='./regression.*' \
	--exclude='*.o' --exclude='*.so' --exclude='*.bc' --exclude='*.deb' \
	--exclude=node_modules --exclude=./bench/out \
	--exclude=dashboard_html.c --exclude=./kvcli/kvcli \
	--exclude=./test/unit/test_cache_core --exclude=./fuzz/fuzz_http_parse \
	--exclude='./debian/postgresql-*-kvserver' --exclude=./debian/kvserver-cli \
	--exclude=./debian/.debhelper --exclude=./debian/files \
	--exclude='./debian/*.substvars' --exclude=./debian/debhelper-build-stamp \
	--exclude='./build-*' \
	. || [ $? -eq 1 ]; } | tar -C "$SRC" -xf -
check "copied the checkout to $SRC" test -f "$SRC/debian/rules"

# The source package too (debian/source/format is 3.0 (quilt), as the version
# has a Debian revision): an upstream tarball of the same tree without debian/.
UPSTREAM_VERSION=$(cd "$ROOT" && dpkg-parsechangelog -S Version | sed 's/-[^-]*$//')
build_source() {
	tar -C "$SRC" --exclude=./debian --transform "s,^\\.,kvserver-$UPSTREAM_VERSION," \
		-cJf "$WORK/kvserver_$UPSTREAM_VERSION.orig.tar.xz" . &&
		(cd "$WORK" && dpkg-source -b kvserver) >"$WORK/source.log" 2>&1 </dev/null
}
if build_source; then
	ok "dpkg-source -b builds the source package (with kvserver_$UPSTREAM_VERSION.orig.tar.xz)"
else
	not_ok "dpkg-source -b failed; last lines of $WORK/source.log:"
	tail -n 20 "$WORK/source.log" | sed 's/^/    /'
fi

# --- 3. dpkg-buildpackage -------------------------------------------------------

BUILD_LOG=$WORK/build.log
log "dpkg-buildpackage -us -uc -b in $SRC (log: $BUILD_LOG)"
t0=$SECONDS
if (cd "$SRC" && dpkg-buildpackage -us -uc -b) >"$BUILD_LOG" 2>&1 </dev/null; then
	ok "dpkg-buildpackage -us -uc -b ($((SECONDS - t0)) s)"
	built=1
else
	not_ok "dpkg-buildpackage -us -uc -b failed; last lines of $BUILD_LOG:"
	tail -n 40 "$BUILD_LOG" | sed 's/^/    /'
	built=0
fi

# --- 4. the .deb files -------------------------------------------------------------

# (No `grep -q` at the end of a pipeline: it may stop reading early, and with
# pipefail the writer's SIGPIPE would fail the check.)
# members DEB: the paths in DEB (./usr/...)
members() { dpkg-deb -c "$1" | awk '{ print $6 }'; }
# contains_path DEB PATH: PATH is a member of DEB
contains_path() { members "$1" | grep -xF "$2" >/dev/null; }
# lacks_path_prefix DEB REGEX: no member of DEB matches ^REGEX
lacks_path_prefix() { [ "$(members "$1" | grep -c "^$2" || true)" = 0 ]; }
# no_shlibs DEB: DEB's control area has no shlibs file (the shims' SONAMEs,
# libssl.so and libcrypto.so, must not be offered to other packages)
no_shlibs() { ! dpkg-deb -I "$1" shlibs >/dev/null 2>&1; }
# control_field DEB FIELD
control_field() { dpkg-deb -I "$1" control | sed -n "s/^$2: //p"; }
# depends_on DEB PACKAGE: PACKAGE is one of DEB's Depends
depends_on() { control_field "$1" Depends | tr ',|' '\n' | sed 's/(.*//; s/[[:space:]]//g' | grep -xF "$2" >/dev/null; }
# first_file GLOB-RESULT...: the first argument that is a file, if any
first_file() {
	local f
	for f in "$@"; do
		if [ -f "$f" ]; then echo "$f"; return 0; fi
	done
}
field_is() { [ "$(control_field "$1" "$2")" = "$3" ]; }

VERSION=$(cd "$ROOT" && dpkg-parsechangelog -S Version)
EXT_VERSION=$(sed -n "s/^[[:space:]]*default_version[[:space:]]*=[[:space:]]*'\([^']*\)'.*/\1/p" "$ROOT/kvserver.control")
# every install and upgrade script of the checkout (kvserver--1.1.sql,
# kvserver--1.0--1.1.sql, ...; not the pg_regress files kvserver_*.sql)
mapfile -t SQL_SCRIPTS < <(cd "$ROOT/sql" && ls kvserver--*.sql)
mapfile -t PGVERSIONS < <(cd "$ROOT" && pg_buildext supported-versions)
check "debian/pgversions gives PostgreSQL versions (${PGVERSIONS[*]:-none})" test "${#PGVERSIONS[@]}" -gt 0
check "kvserver.control has a default_version (${EXT_VERSION:-none})" test -n "$EXT_VERSION"
check "sql/ has the install script of the default_version (kvserver--$EXT_VERSION.sql)" \
	test -f "$ROOT/sql/kvserver--$EXT_VERSION.sql"
check "sql/ has an upgrade script to $EXT_VERSION (scripts: ${SQL_SCRIPTS[*]})" \
	test -n "$(cd "$ROOT/sql" && ls kvserver--*--"$EXT_VERSION".sql 2>/dev/null)"
SCRATCH=$WORK/root

if [ "$built" = 1 ]; then
	check "debian/rules did not run the test suite" \
		grep -q 'debian/rules: not running the test suite' "$BUILD_LOG"
	CLI_DEB=$(first_file "$WORK"/kvserver-cli_"${VERSION}"_*.deb)
	check "built kvserver-cli_${VERSION}_*.deb" test -n "$CLI_DEB"
	mkdir -p "$SCRATCH"
	for v in "${PGVERSIONS[@]}"; do
		pkg=postgresql-$v-kvserver
		deb=$(first_file "$WORK"/"${pkg}_${VERSION}"_*.deb)
		check "built ${pkg}_${VERSION}_*.deb" test -n "$deb"
		[ -n "$deb" ] || continue
		lib=./usr/lib/postgresql/$v/lib
		share=./usr/share/postgresql/$v/extension
		check "$pkg: dpkg-deb -c has $lib/kvserver.so" contains_path "$deb" "$lib/kvserver.so"
		check "$pkg: dpkg-deb -c has $share/kvserver.control" contains_path "$deb" "$share/kvserver.control"
		for script in "${SQL_SCRIPTS[@]}"; do
			check "$pkg: dpkg-deb -c has $share/$script" contains_path "$deb" "$share/$script"
		done
		check "$pkg: no kvcli, nothing in /usr/local, no /usr/bin" \
			lacks_path_prefix "$deb" './usr/\(local\|bin\)/'
		check "$pkg: dpkg-deb -I Package is $pkg" field_is "$deb" Package "$pkg"
		check "$pkg: dpkg-deb -I Version is $VERSION" field_is "$deb" Version "$VERSION"
		check "$pkg: Depends includes postgresql-$v" depends_on "$deb" "postgresql-$v"
		check "$pkg: Depends includes libcivetweb1 (shlibs)" depends_on "$deb" libcivetweb1
		check "$pkg: Depends includes libjansson4 (shlibs)" depends_on "$deb" libjansson4
		check "$pkg: dpkg-deb -c has $lib/kvserver_libssl.so" contains_path "$deb" "$lib/kvserver_libssl.so"
		check "$pkg: dpkg-deb -c has $lib/kvserver_libcrypto.so" contains_path "$deb" "$lib/kvserver_libcrypto.so"
		check "$pkg: Depends includes libssl3 (shlibs)" depends_on "$deb" libssl3
		check "$pkg: declares no shared library of its own (no shlibs file)" no_shlibs "$deb"
		dpkg -x "$deb" "$SCRATCH"
	done
	if [ -n "$CLI_DEB" ]; then
		check "kvserver-cli: dpkg-deb -c has ./usr/bin/kvcli" contains_path "$CLI_DEB" ./usr/bin/kvcli
		check "kvserver-cli: no files of the extension" lacks_path_prefix "$CLI_DEB" './usr/\(lib\|share\)/postgresql'
		check "kvserver-cli: dpkg-deb -I Package is kvserver-cli" field_is "$CLI_DEB" Package kvserver-cli
		check "kvserver-cli: Depends includes libcurl4 (shlibs)" depends_on "$CLI_DEB" libcurl4
		check "kvserver-cli: Depends includes libjansson4 (shlibs)" depends_on "$CLI_DEB" libjansson4
		dpkg -x "$CLI_DEB" "$SCRATCH"
	fi

	# --- 5. installed into a scratch root ----------------------------------------

	is_elf() { [ "$(head -c 4 "$1" | od -An -c | tr -d ' ')" = '177ELF' ]; }
	has_dynsym() { nm -D --defined-only "$1" | awk '{ print $NF }' | grep -xF "$2" >/dev/null; }
	needs_lib() { readelf -d "$1" | grep "(NEEDED).*\[$2" >/dev/null; }
	control_says() { grep -Eq "$2" "$1"; }
	prints_usage() { "$1" --help </dev/null | grep -i usage >/dev/null; }
	same_files() { cmp -s "$1" "$2" && cmp -s "$3" "$4"; }
	has_soname() { readelf -d "$1" | grep "(SONAME).*\[$2\]" >/dev/null; }
	# civetweb_tls LIBDIR: with the shims of LIBDIR loaded (as src/pg/tls.c
	# does), civetweb's dlopen() names find them and mg_init_library() has TLS
	civetweb_tls() {
		cat >"$WORK/civetweb_tls.c" <<'C'
#include <dlfcn.h>
#include <stdio.h>
#include <civetweb.h>
int main(int argc, char **argv) {
	const char *f[] = {"kvserver_libcrypto.so", "kvserver_libssl.so"};
	const char *soname[] = {"libcrypto.so", "libssl.so"};
	char path[4096];
	for (int i = 0; i < 2; i++) {
		void *h;
		snprintf(path, sizeof(path), "%s/%s", argv[1], f[i]);
		if ((h = dlopen(path, RTLD_NOW | RTLD_LOCAL)) == NULL) { fprintf(stderr, "%s\n", dlerror()); return 1; }
		if (dlopen(soname[i], RTLD_LAZY | RTLD_NOLOAD) != h) { fprintf(stderr, "%s is not %s\n", soname[i], path); return 1; }
	}
	if (!(mg_init_library(MG_FEATURES_TLS) & MG_FEATURES_TLS)) { fprintf(stderr, "no TLS\n"); return 1; }
	return 0;
}
C
		cc -std=gnu99 -o "$WORK/civetweb_tls" "$WORK/civetweb_tls.c" -lcivetweb -ldl &&
			"$WORK/civetweb_tls" "$1"
	}
	for v in "${PGVERSIONS[@]}"; do
		so=$SCRATCH/usr/lib/postgresql/$v/lib/kvserver.so
		ctl=$SCRATCH/usr/share/postgresql/$v/extension/kvserver.control
		sql=$SCRATCH/usr/share/postgresql/$v/extension/kvserver--$EXT_VERSION.sql
		check "dpkg -x: $v kvserver.so is there" test -f "$so"
		check "dpkg -x: $v kvserver.control is there" test -f "$ctl"
		for script in "${SQL_SCRIPTS[@]}"; do
			check "dpkg -x: $v $script is there and is the checkout's" \
				cmp -s "$SCRATCH/usr/share/postgresql/$v/extension/$script" "$ROOT/sql/$script"
		done
		if [ -f "$so" ]; then
			check "kvserver.so is an ELF shared object" is_elf "$so"
			check "kvserver.so: nm -D shows _PG_init" has_dynsym "$so" _PG_init
			check "kvserver.so: nm -D shows Pg_magic_func" has_dynsym "$so" Pg_magic_func
			check "kvserver.so links libcivetweb" needs_lib "$so" libcivetweb.so
			check "kvserver.so links libjansson" needs_lib "$so" libjansson.so
		fi
		libdir=$SCRATCH/usr/lib/postgresql/$v/lib
		check "dpkg -x: $v kvserver_libssl.so has SONAME libssl.so and links libssl.so.3" \
			eval 'has_soname "$libdir/kvserver_libssl.so" libssl.so && needs_lib "$libdir/kvserver_libssl.so" libssl.so.3'
		check "dpkg -x: $v kvserver_libcrypto.so has SONAME libcrypto.so and links libcrypto.so.3" \
			eval 'has_soname "$libdir/kvserver_libcrypto.so" libcrypto.so && needs_lib "$libdir/kvserver_libcrypto.so" libcrypto.so.3'
		check "kvserver_libssl.so: nm -D shows SSL_get_peer_certificate" \
			has_dynsym "$libdir/kvserver_libssl.so" SSL_get_peer_certificate
		check "the packaged shims give civetweb TLS (mg_init_library(MG_FEATURES_TLS))" \
			civetweb_tls "$libdir"
		if [ -f "$ctl" ]; then
			check "kvserver.control: module_pathname is \$libdir/kvserver" \
				control_says "$ctl" "^module_pathname[[:space:]]*=[[:space:]]*'\\\$libdir/kvserver'"
		fi
		if [ -f "$ctl" ] && [ -f "$sql" ]; then
			check "installed control file and SQL script are the checkout's" \
				same_files "$ctl" "$ROOT/kvserver.control" "$sql" "$ROOT/sql/kvserver--$EXT_VERSION.sql"
		fi
	done
	kvcli=$SCRATCH/usr/bin/kvcli
	check "dpkg -x: /usr/bin/kvcli is there and executable" test -x "$kvcli"
	if [ -x "$kvcli" ]; then
		check "kvcli is an ELF executable" is_elf "$kvcli"
		check "kvcli --help runs and prints its usage" prints_usage "$kvcli"
	fi
fi

# --- 6. META.json ----------------------------------------------------------------

# Prints "ok - ..." / "not ok - ..." lines, one per check.
validate_meta() {
	perl -MJSON::PP -e '
	use strict;
	use warnings;
	my ($root, $ext_version) = @ARGV;
	my $semver = qr/^(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)(-[0-9A-Za-z-]+(\.[0-9A-Za-z-]+)*)?$/;
	my $spec_url = "https://pgxn.org/meta/spec.txt";
	my @licenses = qw(agpl_3 apache_1_1 apache_2_0 artistic_1 artistic_2 bsd
		freebsd gfdl_1_2 gfdl_1_3 gpl_1 gpl_2 gpl_3 lgpl_2_1 lgpl_3_0 mit
		mozilla_1_0 mozilla_1_1 openssl perl_5 postgresql qpl_1_0 ssleay sun
		zlib open_source restricted unrestricted unknown);
	sub check($$) { my ($ok, $what) = @_; print(($ok ? "ok" : "not ok"), " - META.json: $what\n"); }
	sub is_str { defined $_[0] && !ref $_[0] && length $_[0] }
	# a version range: "0", a version, or comma-separated ">= 1.2.3" and the like
	sub is_range {
		my $r = shift;
		return 0 unless is_str($r);
		for my $part (split /\s*,\s*/, $r) {
			my $v = $part =~ s/^(?:[<>]=?|==|!=)\s*//r;
			return 0 unless $v eq "0" || $v =~ $semver;
		}
		return 1;
	}

	my $meta = eval {
		open my $fh, "<:raw", "$root/META.json" or die "cannot open: $!\n";
		local $/;
		JSON::PP->new->utf8->relaxed(0)->decode(<$fh>);
	};
	check(ref $meta eq "HASH", "parses as a JSON object" . ($@ ? " ($@)" : ""));
	exit 0 unless ref $meta eq "HASH";

	for my $key (qw(name abstract maintainer version license provides meta-spec)) {
		check(exists $meta->{$key}, "has the required key \"$key\"");
	}
	check(is_str($meta->{name}) && length $meta->{name} >= 2 && $meta->{name} !~ m{[/\\\s[:cntrl:]]},
		"name is a string of 2+ characters without slashes, spaces or control characters");
	check(($meta->{name} // "") eq "kvserver", "name is kvserver");
	check(is_str($meta->{abstract}), "abstract is a non-empty string");
	my $m = $meta->{maintainer};
	check(is_str($m) || (ref $m eq "ARRAY" && @$m && !grep { !is_str($_) } @$m),
		"maintainer is a string or a non-empty array of strings");
	check(is_str($meta->{version}) && $meta->{version} =~ $semver, "version is a semantic version");
	check(is_str($meta->{version}) && index("$meta->{version}.", "$ext_version.") == 0,
		"version ($meta->{version}) is the extension default_version ($ext_version) as a semantic version");
	my $lic = $meta->{license};
	my %known = map { $_ => 1 } @licenses;
	check((is_str($lic) && $known{$lic})
		|| (ref $lic eq "ARRAY" && @$lic && !grep { !is_str($_) || !$known{$_} } @$lic),
		"license is a license string from the spec");
	check(is_str($lic) && $lic eq "postgresql", "license is postgresql (as debian/copyright)");

	my $p = $meta->{provides};
	check(ref $p eq "HASH" && %$p, "provides is a non-empty object");
	$p = {} unless ref $p eq "HASH";
	for my $ext (sort keys %$p) {
		my $e = $p->{$ext};
		check(ref $e eq "HASH", "provides.$ext is an object");
		next unless ref $e eq "HASH";
		check(is_str($e->{file}) && -f "$root/$e->{file}", "provides.$ext.file names a file that exists");
		check(is_str($e->{version}) && $e->{version} =~ $semver, "provides.$ext.version is a semantic version");
		check(!exists $e->{abstract} || is_str($e->{abstract}), "provides.$ext.abstract is a string");
		check(!exists $e->{docfile} || (is_str($e->{docfile}) && -f "$root/$e->{docfile}"),
			"provides.$ext.docfile names a file that exists");
	}
	check(ref $p->{kvserver} eq "HASH" && ($p->{kvserver}{file} // "") eq "sql/kvserver--$ext_version.sql",
		"provides.kvserver.file is the install script sql/kvserver--$ext_version.sql");

	my $ms = $meta->{"meta-spec"};
	check(ref $ms eq "HASH" && ($ms->{version} // "") eq "1.0.0", "meta-spec.version is 1.0.0");
	check(ref $ms eq "HASH" && ($ms->{url} // "") eq $spec_url, "meta-spec.url is $spec_url");

	my $pr = $meta->{prereqs};
	my $pr_ok = ref $pr eq "HASH";
	if ($pr_ok) {
		for my $phase (keys %$pr) {
			$pr_ok = 0, last unless $phase =~ /^(configure|build|test|runtime|develop)$/ && ref $pr->{$phase} eq "HASH";
			for my $rel (keys %{$pr->{$phase}}) {
				my $r = $pr->{$phase}{$rel};
				$pr_ok = 0 unless $rel =~ /^(requires|recommends|suggests|conflicts)$/ && ref $r eq "HASH"
					&& !grep { !is_range($r->{$_}) } keys %$r;
			}
		}
	}
	check($pr_ok, "prereqs is phase -> relationship -> name -> version range");
	check($pr_ok && ($pr->{runtime}{requires}{PostgreSQL} // "") eq "15.0.0",
		"prereqs.runtime.requires.PostgreSQL is 15.0.0");

	my $res = $meta->{resources};
	check(!defined $res || (ref $res eq "HASH" && !grep { !/^(homepage|bugtracker|repository|x_.*|X_.*)$/ } keys %$res),
		"resources has only homepage, bugtracker, repository");
	check(is_str($meta->{generated_by}), "generated_by is a string");
	my $tags = $meta->{tags};
	check(ref $tags eq "ARRAY" && @$tags && !grep({ !is_str($_) || length $_ > 255 } @$tags),
		"tags is an array of strings of at most 255 characters");
	check(($meta->{release_status} // "") =~ /^(stable|testing|unstable)$/,
		"release_status is stable, testing or unstable");
	check(!exists $meta->{no_index} || ref $meta->{no_index} eq "HASH", "no_index is an object");

	# no URL anywhere but the meta-spec one
	my @urls;
	my $walk;
	$walk = sub {
		my ($v, $path) = @_;
		if (ref $v eq "HASH") { $walk->($v->{$_}, "$path.$_") for keys %$v }
		elsif (ref $v eq "ARRAY") { $walk->($v->[$_], "$path\[$_\]") for 0 .. $#$v }
		elsif (defined $v && $v =~ m{://} && $path ne ".meta-spec.url") { push @urls, $path }
	};
	$walk->($meta, "");
	check(!@urls, "no URL other than meta-spec.url" . (@urls ? " (found at @urls)" : ""));
	' "$ROOT" "$EXT_VERSION"
}

check "perl has JSON::PP" perl -MJSON::PP -e 1
while IFS= read -r line; do
	case $line in
	"ok - "*) ok "${line#ok - }" ;;
	"not ok - "*) not_ok "${line#not ok - }" ;;
	*) log "$line" ;;
	esac
done < <(validate_meta 2>&1 || echo "not ok - META.json: the validator stopped with an error")
