#!/usr/bin/env bash
# The single test command: pg_regress, the thread-boundary check, cache unit
# tests, TAP tests over real HTTP, the fuzz smoke pass, and the Debian package.
#
# As root (CI, a fresh Debian 12 machine):
#   1. scripts/deps.sh test             install missing packages (test tools too)
#   2. make && make install, make kvcli in the checkout, as root
#   3. copy the checkout (no .git, .cluster, build outputs) to a fresh mktemp -d
#      directory owned by postgres, and run `make installcheck fuzzcheck` there
#      as postgres (PostgreSQL refuses to run as root) with a minimal
#      environment.
#   4. scripts/test-package.sh: build the Debian package and check its files.
#   On success the scratch directory is removed; on failure it is kept and the
#   tails of regression.diffs and of the test logs are printed.
#
# As any other user: no deps, no install; `make installcheck` in place, against
# the kvserver already installed.
#
# --valgrind (as root): instead of the suites, run test/valgrind/run.sh as
# postgres in the scratch copy: a set of TAP tests with every server process
# under valgrind's memcheck; any error in kvserver's code fails it.  (ASan
# cannot run inside PostgreSQL 15 here: see that script.)
#
# Extra arguments are passed to make, e.g.
#   ./scripts/test.sh PROVE_TESTS=test/t/001_http_api.pl
# Exit code: make installcheck's (or the first failing step's).
set -euo pipefail
exec </dev/null

VALGRIND=0
if [ "${1:-}" = --valgrind ]; then
	VALGRIND=1
	shift
fi

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
PGBIN=/usr/lib/postgresql/15/bin
PG_CONFIG=$PGBIN/pg_config
TEST_PATH="$PGBIN:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
MAKE_ARGS=("PG_CONFIG=$PG_CONFIG" "PROVE_FLAGS=--timer")
if [ "$VALGRIND" = 1 ] && [ "$(id -u)" -ne 0 ]; then
	echo "--valgrind needs root" >&2
	exit 2
fi
MAKE_ARGS+=("$@")
MAX_LOG_LINES=${KV_TEST_LOG_LINES:-400}

say() { printf '==> %s\n' "$*"; }

# Run a setup step; on failure say which and exit with its code.
step() {
	local rc=0
	"$@" || rc=$?
	if [ "$rc" -ne 0 ]; then
		say "FAILED: $* (exit code $rc)"
		exit "$rc"
	fi
}

# Print the interesting tails of a failed run's logs in $1, at most MAX_LOG_LINES.
show_failure_logs() {
	local dir=$1 f
	{
		if [ -s "$dir/regression.diffs" ]; then
			printf '\n----- tail of %s -----\n' "$dir/regression.diffs"
			tail -n 150 "$dir/regression.diffs"
		fi
		for f in "$dir"/tmp_check/log/* "$dir"/log/*; do
			[ -f "$f" ] || continue
			printf '\n----- tail of %s -----\n' "$f"
			tail -n 40 "$f"
		done
	} | head -n "$MAX_LOG_LINES" || true
	printf '\n(output limited to %s lines; full logs are in %s)\n' "$MAX_LOG_LINES" "$dir"
}

if [ "$(id -u)" -ne 0 ]; then
	say "not running as root: skipping scripts/deps.sh and make install"
	say "testing the kvserver already installed in $("$PG_CONFIG" --pkglibdir 2>/dev/null || echo '?')"
	say "make installcheck in place, in $ROOT"
	cd "$ROOT"
	rc=0
	PATH="$TEST_PATH" make installcheck "${MAKE_ARGS[@]}" || rc=$?
	if [ "$rc" -ne 0 ]; then
		say "FAILED (make exit code $rc)"
		show_failure_logs "$ROOT"
	else
		say "all tests passed"
	fi
	exit "$rc"
fi

say "checking packages (scripts/deps.sh test)"
step "$ROOT/scripts/deps.sh" test

say "building in $ROOT: make, make kvcli"
step make -C "$ROOT" -j"$(nproc)" "PG_CONFIG=$PG_CONFIG"
step make -C "$ROOT" kvcli "PG_CONFIG=$PG_CONFIG"
say "installing: make install"
step make -C "$ROOT" install "PG_CONFIG=$PG_CONFIG"

WORK=$(mktemp -d /tmp/kvserver-test.XXXXXX)
say "copying the checkout to $WORK (without .git, .cluster, build outputs)"
# Patterns are anchored to the member names ("./src/x.o"); '*' also matches '/'.
tar -C "$ROOT" --anchored \
	--exclude=./.git \
	--exclude=./.cluster \
	--exclude=./results \
	--exclude=./regression.diffs \
	--exclude=./regression.out \
	--exclude=./tmp_check \
	--exclude=./tmp_check_regress \
	--exclude=./log \
	--exclude=./test/unit/test_cache_core \
	--exclude=./bench/out \
	--exclude=./fuzz/work \
	--exclude=./fuzz/fuzz_http_parse \
	--exclude='*.o' \
	--exclude='*.so' \
	--exclude='*.bc' \
	-cf - . | tar -C "$WORK" --no-same-owner -xf -
chown -R postgres:postgres "$WORK"

RUN=(make installcheck fuzzcheck "${MAKE_ARGS[@]}")
if [ "$VALGRIND" = 1 ]; then
	RUN=(test/valgrind/run.sh "$@")
fi

say "running as postgres in $WORK: ${RUN[*]}"
cd "$WORK"
rc=0
runuser -u postgres -- env -i \
	PATH="$TEST_PATH" \
	HOME="$WORK" \
	USER=postgres \
	LOGNAME=postgres \
	LANG=C.UTF-8 \
	KV_REQUIRE_BROWSER=1 \
	KV_REQUIRE_PROMTOOL=1 \
	KV_REQUIRE_KVCLI=1 \
	KV_REQUIRE_AUTOCTL=1 \
	${PG_TEST_TIMEOUT_DEFAULT:+PG_TEST_TIMEOUT_DEFAULT="$PG_TEST_TIMEOUT_DEFAULT"} \
	"${RUN[@]}" || rc=$?
cd /

if [ "$rc" -ne 0 ]; then
	say "FAILED (make exit code $rc)"
	show_failure_logs "$WORK"
	say "kept the test directory: $WORK"
	exit "$rc"
fi
rm -rf "$WORK"

if [ "$VALGRIND" = 0 ]; then
	say "the Debian package (scripts/test-package.sh)"
	step "$ROOT/scripts/test-package.sh"
fi
say "all tests passed (removed $WORK)"
exit 0
