#!/usr/bin/env bash
# The single test command: pg_regress, cache unit tests, TAP tests over real HTTP.
#
# As root (CI, a fresh Debian 12 machine):
#   1. scripts/deps.sh                  install missing packages
#   2. make && make install             in the checkout, as root
#   3. copy the checkout (no .git, .cluster, build outputs) to a fresh mktemp -d
#      directory owned by postgres, and run `make installcheck` there as postgres
#      (PostgreSQL refuses to run as root) with a minimal environment.
#   On success the scratch directory is removed; on failure it is kept and the
#   tails of regression.diffs and of the test logs are printed.
#
# As any other user: no deps, no install; `make installcheck` in place, against
# the kvserver already installed.
#
# --sanitize (as root): build the module with AddressSanitizer and
# UndefinedBehaviorSanitizer (make SANITIZE=1), preload the ASan runtime into
# every process of the run (the server binary is not instrumented, so the
# runtime must come first), run the regression and TAP suites except the
# browser test (Chromium does not run under a preloaded ASan), then put the
# normal build back.  Any ASan or UBSan report aborts the server process
# and fails the test that was talking to it.
#
# Extra arguments are passed to make, e.g.
#   ./scripts/test.sh PROVE_TESTS=test/t/010_http.pl
# Exit code: make installcheck's (or the first failing step's).
set -euo pipefail
exec </dev/null

SANITIZE=0
if [ "${1:-}" = --sanitize ]; then
	SANITIZE=1
	shift
fi

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
PGBIN=/usr/lib/postgresql/15/bin
PG_CONFIG=$PGBIN/pg_config
TEST_PATH="$PGBIN:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
MAKE_ARGS=("PG_CONFIG=$PG_CONFIG" "PROVE_FLAGS=--timer")
SAN_ENV=()
if [ "$SANITIZE" = 1 ]; then
	[ "$(id -u)" -eq 0 ] || { echo "--sanitize needs root" >&2; exit 2; }
	MAKE_ARGS+=("PROVE_TESTS=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && ls test/t/*.pl | grep -v 050_dashboard | tr '\n' ' ')")
	SAN_ENV=(
		"LD_PRELOAD=$(gcc -print-file-name=libasan.so)"
		"ASAN_OPTIONS=detect_leaks=0:abort_on_error=1:verify_asan_link_order=0:detect_odr_violation=0:disable_coredump=1"
		"UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1"
	)
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

say "checking packages (scripts/deps.sh)"
step "$ROOT/scripts/deps.sh"

if [ "$SANITIZE" = 1 ]; then
	say "building with ASan + UBSan: make SANITIZE=1"
	step make -C "$ROOT" clean "PG_CONFIG=$PG_CONFIG"
	step make -C "$ROOT" -j"$(nproc)" SANITIZE=1 "PG_CONFIG=$PG_CONFIG"
	step make -C "$ROOT" install SANITIZE=1 "PG_CONFIG=$PG_CONFIG"
	# whatever happens, leave the normal build installed
	trap 'say "restoring the normal build"; make -C "$ROOT" clean "PG_CONFIG=$PG_CONFIG" >/dev/null && make -C "$ROOT" -j"$(nproc)" "PG_CONFIG=$PG_CONFIG" >/dev/null && make -C "$ROOT" install "PG_CONFIG=$PG_CONFIG" >/dev/null' EXIT
else
	say "building in $ROOT: make"
	step make -C "$ROOT" -j"$(nproc)" "PG_CONFIG=$PG_CONFIG"
	say "installing: make install"
	step make -C "$ROOT" install "PG_CONFIG=$PG_CONFIG"
fi

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
	--exclude='*.o' \
	--exclude='*.so' \
	--exclude='*.bc' \
	-cf - . | tar -C "$WORK" --no-same-owner -xf -
chown -R postgres:postgres "$WORK"

if [ "$SANITIZE" = 1 ]; then
	# reports go to files, so that a report from any process fails the run
	mkdir -p "$WORK/sanitizer"
	chown postgres:postgres "$WORK/sanitizer"
	SAN_ENV=("${SAN_ENV[@]/%disable_coredump=1/disable_coredump=1:log_path=$WORK/sanitizer/asan}")
	SAN_ENV+=("UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1:log_path=$WORK/sanitizer/ubsan")
fi

say "running as postgres in $WORK: make installcheck ${MAKE_ARGS[*]}"
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
	${SAN_ENV[@]+"${SAN_ENV[@]}"} \
	${PG_TEST_TIMEOUT_DEFAULT:+PG_TEST_TIMEOUT_DEFAULT="$PG_TEST_TIMEOUT_DEFAULT"} \
	make installcheck "${MAKE_ARGS[@]}" || rc=$?
cd /

if [ "$SANITIZE" = 1 ]; then
	if [ -n "$(ls -A "$WORK/sanitizer" 2>/dev/null)" ]; then
		say "sanitizer reports:"
		head -n 200 "$WORK"/sanitizer/* || true
		[ "$rc" -ne 0 ] || rc=1
	else
		say "no ASan/UBSan report from any process"
	fi
fi

if [ "$rc" -ne 0 ]; then
	say "FAILED (make exit code $rc)"
	show_failure_logs "$WORK"
	say "kept the test directory: $WORK"
else
	rm -rf "$WORK"
	say "all tests passed (removed $WORK)"
fi
exit "$rc"
