#!/usr/bin/env bash
# Memcheck over the TAP suite: every server process runs under valgrind.
#
# AddressSanitizer cannot be used here: with the ASan runtime preloaded,
# every PostgreSQL 15 binary on Debian 12 (postgres -V, psql -V) deadlocks
# in glibc's bindtextdomain() before main() gets anywhere, gcc's and clang's
# runtimes alike.  So the module is checked with valgrind's memcheck, which
# needs no special build.
#
# How: a private bin directory holds links to PostgreSQL's programs, except
# "postgres", which is a wrapper that runs the real one under valgrind
# (bootstrap and single-user runs, i.e. initdb, run without it).  pg_ctl
# starts the "postgres" next to itself, so putting that directory first in
# PATH puts every server started by PostgreSQL::Test::Cluster under
# memcheck, forked backends and the kvserver worker included.  Afterwards any
# memcheck error whose stack passes through kvserver.so (or civetweb or
# jansson, which only our code calls) fails the run.  Errors inside
# PostgreSQL itself are not ours to judge here and are only counted.
#
# Run as postgres from a copy of the checkout (scripts/test.sh --valgrind
# does that), after make install.  Arguments: TAP test files (default: a
# set that covers the HTTP API, keys, coherence, hostile input,
# transactions).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd -P)
PGBIN=/usr/lib/postgresql/15/bin
WORK=$(mktemp -d "${TMPDIR:-/tmp}/kvserver-valgrind.XXXXXX")
VGLOG="$WORK/logs"
mkdir -p "$WORK/bin" "$VGLOG"

# copies, not links: pg_ctl and initdb resolve links to find "postgres"
for f in "$PGBIN"/*; do
	[ "$(basename "$f")" = postgres ] || cp "$f" "$WORK/bin/"
done
cat > "$WORK/bin/postgres" <<WRAP
#!/bin/sh
case " \$* " in
	*" --boot "*|*" --single "*|*" -V "*|*" --version "*|*" -C "*|*" --describe-config "*)
		exec $PGBIN/postgres "\$@" ;;
esac
exec valgrind --quiet --tool=memcheck --trace-children=yes \\
	--undef-value-errors=no --leak-check=no --error-limit=no \\
	--num-callers=30 --log-file=$VGLOG/vg.%p.log $PGBIN/postgres "\$@"
WRAP
chmod +x "$WORK/bin/postgres"

if [ $# -eq 0 ]; then
	set -- test/t/001_http_api.pl test/t/002_binary_and_keys.pl \
		test/t/003_sql_http_coherence.pl test/t/070_conditional.pl \
		test/t/090_hostile_table.pl test/t/170_txn.pl
fi

cd "$ROOT"
rc=0
PATH="$WORK/bin:$PATH" TESTDIR="$ROOT" PG_TEST_TIMEOUT_DEFAULT=300 KV_UNDER_VALGRIND=1 \
	PG_REGRESS=/usr/lib/postgresql/15/lib/pgxs/src/test/regress/pg_regress \
	prove -I /usr/lib/postgresql/15/lib/pgxs/src/test/perl "$@" || rc=$?

# Each error block in a log starts with an "==PID== <kind>" line and ends
# with a blank "==PID==" line; keep the blocks that mention our code.
ours=$(cat "$VGLOG"/vg.*.log 2>/dev/null </dev/null | awk '
	/^==[0-9]+== [A-Z]/ { blk = $0 "\n"; inblk = 1; next }
	inblk && /^==[0-9]+== *$/ { if (blk ~ /kvserver\.so|libcivetweb|libjansson/) printf "%s\n", blk; inblk = 0; next }
	inblk { blk = blk $0 "\n" }' || true)
all=$(cat "$VGLOG"/vg.*.log 2>/dev/null | grep -cE '^==[0-9]+== (Invalid|Mismatched|Syscall param|Source and destination)' || true)
nlogs=$(ls "$VGLOG" | wc -l)
echo "valgrind: $nlogs server processes checked; memcheck errors in all: ${all:-0}"
if [ -n "$ours" ]; then
	echo "valgrind: errors in kvserver code:"
	echo "$ours" | head -n 200
	rc=1
else
	echo "valgrind: no memcheck error in kvserver code"
fi
[ "$rc" -eq 0 ] && rm -rf "$WORK" || echo "valgrind logs kept in $VGLOG"
exit "$rc"
