#!/usr/bin/env bash
# make bench-watch: the watch wake-up latency benchmark (bench/watch_latency.pl)
# against the installed kvserver, on a scratch node, as postgres.
#
#   bench/watch.sh      (as root or postgres; ROUNDS, IDLE_SECS, WATCHERS as
#                        bench/watch_latency.pl says)
# Prints the table; writes bench/out/watch.json.
set -euo pipefail
exec </dev/null

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
PGBIN=/usr/lib/postgresql/15/bin
PGXS_PERL=/usr/lib/postgresql/15/lib/pgxs/src/test/perl
WORK=$(mktemp -d /tmp/kvserver-bench-watch.XXXXXX)
trap 'rm -rf "$WORK"' EXIT

mkdir -p "$WORK/bench" "$WORK/test"
cp "$ROOT/bench/watch_latency.pl" "$WORK/bench/"
cp -r "$ROOT/test/lib" "$WORK/test/"
RUN=()
if [ "$(id -u)" = 0 ]; then
	chown -R postgres: "$WORK"
	RUN=(runuser -u postgres --)
fi
cd "$WORK"
# PostgreSQL::Test::Utils notes every background_psql query on stdout: the
# table is in bench/out/watch.txt
"${RUN[@]}" env PATH="$PGBIN:/usr/bin:/bin" \
	PG_REGRESS=/usr/lib/postgresql/15/lib/pgxs/src/test/regress/pg_regress \
	ROUNDS="${ROUNDS:-200}" IDLE_SECS="${IDLE_SECS:-10}" WATCHERS="${WATCHERS:-100}" \
	perl -I "$PGXS_PERL" bench/watch_latency.pl >/dev/null
mkdir -p "$ROOT/bench/out"
cp "$WORK/bench/out/watch.json" "$WORK/bench/out/watch.txt" "$ROOT/bench/out/"
echo "kvserver watch wake-up latency ($(nproc) CPUs):"
cat "$ROOT/bench/out/watch.txt"
