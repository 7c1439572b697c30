#!/usr/bin/env bash
# Copyright (c) kvserver authors
#
# The long linearizability run: test/t/020_linearizability.pl (fresh
# cluster, recorder, lincheck.py) with the clients running DURATION seconds
# (default 120) instead of 12.
#
#   test/lincheck/long_run.sh              120 s
#   DURATION=600 test/lincheck/long_run.sh
#
# As root: copies the checkout (without .git, .cluster, build outputs) to a
# fresh mktemp -d directory owned by postgres and runs prove there as
# postgres (PostgreSQL refuses to run as root).  As another user: runs in
# place (tmp_check/ in the checkout).  Uses the kvserver already installed.
# The histories end up in <dir>/tmp_check/lincheck_020/; on failure the
# scratch directory is kept and its path printed, on success it is removed
# (KEEP=1 keeps it).  Exit code: prove's.
set -euo pipefail
exec </dev/null

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd -P)
PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}
PGXS_DIR=$("$PGBIN/pg_config" --pgxs)
PGXS_DIR=$(dirname "$PGXS_DIR")/..         # .../lib/pgxs/src/makefiles/.. = .../lib/pgxs/src
PERL_LIB="$PGXS_DIR/test/perl"
PG_REGRESS_BIN="$PGXS_DIR/test/regress/pg_regress"
DURATION=${DURATION:-120}
TEST=test/t/020_linearizability.pl
TEST_PATH="$PGBIN:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

case "$DURATION" in
	'' | *[!0-9]*) echo "long_run.sh: DURATION must be whole seconds, got '$DURATION'" >&2; exit 2 ;;
esac

say() { printf '==> %s\n' "$*"; }

run_prove() {	# $1 = directory to run in
	local dir=$1
	(cd "$dir" && env -i \
		PATH="$TEST_PATH" HOME="$dir" USER="$(id -un)" LOGNAME="$(id -un)" LANG=C.UTF-8 \
		TESTDIR="$dir" PG_REGRESS="$PG_REGRESS_BIN" LINCHECK_DURATION="$DURATION" \
		${PG_TEST_TIMEOUT_DEFAULT:+PG_TEST_TIMEOUT_DEFAULT="$PG_TEST_TIMEOUT_DEFAULT"} \
		prove -v --timer -I "$PERL_LIB" "$TEST")
}

if [ "$(id -u)" -ne 0 ]; then
	say "running $TEST in place in $ROOT for $DURATION s"
	run_prove "$ROOT"
	exit $?
fi

WORK=$(mktemp -d /tmp/kvserver-lincheck.XXXXXX)
say "copying the checkout to $WORK"
tar -C "$ROOT" --anchored \
	--exclude=./.git --exclude=./.cluster --exclude=./fuzz --exclude=./bench/out \
	--exclude=./tmp_check --exclude=./tmp_check_regress --exclude=./results \
	--exclude=./log --exclude='*.o' --exclude='*.so' --exclude='*.bc' \
	-cf - . | tar -C "$WORK" --no-same-owner -xf -
chown -R postgres:postgres "$WORK"

say "running $TEST as postgres in $WORK for $DURATION s"
rc=0
cd "$WORK"
runuser -u postgres -- env -i \
	PATH="$TEST_PATH" HOME="$WORK" USER=postgres LOGNAME=postgres LANG=C.UTF-8 \
	TESTDIR="$WORK" PG_REGRESS="$PG_REGRESS_BIN" LINCHECK_DURATION="$DURATION" \
	${PG_TEST_TIMEOUT_DEFAULT:+PG_TEST_TIMEOUT_DEFAULT="$PG_TEST_TIMEOUT_DEFAULT"} \
	prove -v --timer -I "$PERL_LIB" "$TEST" || rc=$?
cd /

if [ "$rc" -ne 0 ] || [ "${KEEP:-0}" = 1 ]; then
	[ "$rc" -ne 0 ] && say "FAILED (prove exit code $rc)"
	say "kept $WORK; histories in $WORK/tmp_check/lincheck_020/, logs in $WORK/tmp_check/log/"
else
	rm -rf "$WORK"
	say "passed (removed $WORK)"
fi
exit "$rc"
