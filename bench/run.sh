#!/usr/bin/env bash
# make bench: kvserver against civetweb's hello-world, nginx, webdis+Redis and
# pgbench, side by side in one run.
#
#   bench/run.sh              (as root, from anywhere; reads no stdin; CI-safe)
#   QUICK=1 bench/run.sh      1 round of ~3 s per run instead of 3 rounds of ~8 s
#
# 1. installs what is missing from Debian (wrk, nginx-light, redis-server, webdis,
#    gnuplot-nox, pgbench, python3, the build deps of scripts/deps.sh), then
#    make && make install (PG_CONFIG=/usr/lib/postgresql/15/bin/pg_config), and
#    compiles bench/hello.c against libcivetweb.
# 2. starts, on 127.0.0.1 and free private ports, with state in a mktemp
#    directory: a PostgreSQL 15 cluster owned by postgres (Unix socket only;
#    fsync and synchronous_commit on; shared_preload_libraries = 'kvserver'),
#    civetweb's hello-world (bench/hello.c: kvserver's civetweb options and
#    thread count, a fixed 16-byte body), nginx (1 worker, fixed 16-byte body for
#    any /kv/<key>), redis-server (appendonly, appendfsync always, no RDB saves)
#    and webdis in front of it.
# 3. runs the workloads, wrk -t1 with keep-alive and bench/wrk.lua, pgbench -j 2
#    -M prepared.  Side by side: in each round every target runs at c16 and then
#    at c64, targets one after the other (A16 A64 B16 B64 ...); a target's
#    figure in a round is its better concurrency (a user runs a peer at its best:
#    pgbench behind a pool, not 64 backends on two cores), and the ratios the
#    targets are checked against are the medians of the per-round ratios:
#      GET hit            kvserver /kv/<key> | civetweb hello | nginx | webdis /GET/<key>
#      PUT new, overwrite kvserver PUT | pgbench upsert | webdis PUT /SET/<key>
#      GET miss           kvserver, the cache emptied before each run, MISS_KEYS
#                         keys | pgbench prepared SELECT of the same rows
#      mixed 90/10 Zipf   kvserver c64 at three cache sizes, hit ratio from kv_stats()
#      GET hit, auth      kvserver anonymous | Basic (SCRAM) | Bearer token, c16/c64
#      auth flood         kvserver GET hit c16 (anonymous, and Basic), without and
#                         with an attacker sending ATTACK_RATE wrong passwords/s
#                         from one other loopback address (401s, then 429s)
#      standby            a streaming hot standby (pg_basebackup): GET hit on it
#                         vs the primary (c16, c64); the primary's PUT overwrite
#                         with no standby, async, sync (on, remote_apply); the
#                         same with kvserver's WAL record compiled out (a
#                         scratch build swapped in and out of pkglibdir, A B A
#                         B); how long after a PUT's answer the standby serves
#                         the value, under PUT load (and /health replay lag)
#      slow commit        the standby synchronous with synchronous_commit =
#                         remote_apply and recovery_min_apply_delay = SLOW_DELAY:
#                         GET miss and GET hit (SLOW_CONNS connections each)
#                         alone, then alongside SLOW_CONNS PUT writers; PUT and
#                         GET p50/p99
#    and records the worker's VmRSS and kv_stats() overhead per entry, also for
#    a cache filled with DENSITY_KEYS keys of 10-20 bytes and 16-byte values.
#    HTTP runs as a role: bench.conf sets kvserver.anonymous_role = kv_bench_anon
#    (NOLOGIN; the workloads without credentials run as it); kv_bench_user (LOGIN,
#    a random SCRAM password, and a kv_token_create('1 day') token) has the same
#    grants: SELECT, INSERT, UPDATE, DELETE on kv_store, USAGE on its sequence.
# 4. prints one table and the targets' checks, writes bench/out/results.json,
#    results.md, chart.png; raw wrk/pgbench output in bench/out/raw/, server logs
#    in bench/out/logs/.
# Everything it started is stopped on exit, also on failure or Ctrl-C.
#
# Environment (defaults in brackets):
#   QUICK=1            ROUNDS=1 DURATION=3 WARMUP=1 [ROUNDS=3 DURATION=8 WARMUP=2]
#   ROUNDS, DURATION   rounds per workload, seconds per measured run
#   WARMUP             seconds of unrecorded load per target before a workload
#   WORKLOADS          subset of "get_hit put get_miss mixed density standby
#                      slow_commit get_hit_auth auth_flood"
#                      [get_hit put get_miss mixed density standby slow_commit]
#   ATTACK_RATE [100]  wrong-password requests per second of the auth_flood attacker
#   FLOOD_VARIANTS [keepalive fresh control]  the attacker's connections: one
#                      keep-alive connection, and/or a new connection (fresh source
#                      port) each; "control": the same paced new connections from
#                      another address but without credentials (200s), to tell the
#                      cost of a second client on these shared cores from that of
#                      the failed logins
#   HIT_KEYS [1000] OVER_KEYS [10000] MISS_KEYS [1000000] MIX_KEYS [200000]
#                      key-set sizes (the mixed workload's keys are the first
#                      MIX_KEYS of the miss keys)
#   DENSITY_KEYS [200000]  keys of the density fill
#   MIX_PUT_PCT [10]   share of PUTs in the mixed workload
#   SLOW_DELAY [200ms] SLOW_CONNS [4]   the slow-commit workload's apply delay
#                      and connections per client
#   STANDBY_PUT_CONFIGS [none async sync remote_apply]  the primary's replication
#                      settings the standby workload's PUT runs go through
#                      (none: the standby stopped; sync: synchronous_standby_names
#                      names it, synchronous_commit = on; remote_apply: the same
#                      with synchronous_commit = remote_apply)
#   STANDBY_RECORD_CONFIGS [none async]  the replication settings the WAL
#                      record's A/B runs go through (none: the record's cost to the
#                      primary alone; async: with the standby replaying on the
#                      same cores)
#   STALE_GAP_MS [20]  pause of the staleness probe between two samples
#   STALE_IDLE_SAMPLES [100]  staleness samples with no other load, before the
#                      loaded ones (0: none)
#   SMALL_CACHE [1MB] MID_CACHE [4MB] MAIN_CACHE [64MB]    kvserver.cache_size of
#                      the three cluster starts (GET miss runs with SMALL_CACHE;
#                      GET hit, PUT, density, standby and slow commit with
#                      MAIN_CACHE; mixed with all three)
#   SKIP_BUILD=1       use the kvserver already installed (no make / make install;
#                      the standby workload still builds its two scratch variants)
#   SKIP_INSTALL=1     do not apt-get anything (fail if something is missing)
#   KEEP_RUN=1         keep the mktemp state directory (data dirs) afterwards
set -euo pipefail
exec </dev/null

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
BENCH=$ROOT/bench
OUT=$BENCH/out
PGBIN=/usr/lib/postgresql/15/bin
PG_CONFIG=$PGBIN/pg_config
PG_USER=postgres

QUICK=${QUICK:-0}
if [ "$QUICK" = 1 ]; then
	ROUNDS=${ROUNDS:-1}
	DURATION=${DURATION:-3}
	WARMUP=${WARMUP:-1}
else
	ROUNDS=${ROUNDS:-3}
	DURATION=${DURATION:-8}
	WARMUP=${WARMUP:-2}
fi
WORKLOADS=${WORKLOADS:-"get_hit put get_miss mixed density standby slow_commit"}
HIT_KEYS=${HIT_KEYS:-1000}
OVER_KEYS=${OVER_KEYS:-10000}
MISS_KEYS=${MISS_KEYS:-1000000}
MIX_KEYS=${MIX_KEYS:-200000}
DENSITY_KEYS=${DENSITY_KEYS:-200000}
SLOW_DELAY=${SLOW_DELAY:-200ms}
SLOW_CONNS=${SLOW_CONNS:-4}
SMALL_CACHE=${SMALL_CACHE:-1MB}
MID_CACHE=${MID_CACHE:-4MB}
MAIN_CACHE=${MAIN_CACHE:-64MB}
MIX_PUT_PCT=${MIX_PUT_PCT:-10}
ATTACK_RATE=${ATTACK_RATE:-100}
FLOOD_VARIANTS=${FLOOD_VARIANTS:-"keepalive fresh control"}
STANDBY_PUT_CONFIGS=${STANDBY_PUT_CONFIGS:-"none async sync remote_apply"}
STANDBY_RECORD_CONFIGS=${STANDBY_RECORD_CONFIGS:-"none async"}
STALE_GAP_MS=${STALE_GAP_MS:-20}
STALE_IDLE_SAMPLES=${STALE_IDLE_SAMPLES:-100}
SB_NAME=kvbench_standby # the standby's application_name and replication slot
ANON_ROLE=kv_bench_anon # NOLOGIN, kvserver.anonymous_role
AUTH_ROLE=kv_bench_user # LOGIN, SCRAM password
AUTH_PASS=              # random, set when the cluster is first started
AUTH_TOKEN=             # kv_token_create('1 day') as AUTH_ROLE
VALUE=0123456789abcdef # 16 bytes
VALUE_HEX=30313233343536373839616263646566
WRK_TIMEOUT=5s # as kvserver.request_timeout

START_TS=$(date +%s)
say() { printf '[bench %4ss] %s\n' "$(($(date +%s) - START_TS))" "$*"; }
die() {
	printf 'bench/run.sh: error: %s\n' "$*" >&2
	exit 1
}
as_pg() { runuser -u "$PG_USER" -- "$@"; }
have() { command -v "$1" >/dev/null 2>&1; }
wants() { case " $WORKLOADS " in *" $1 "*) return 0 ;; esac; return 1; }

for v in ROUNDS DURATION WARMUP HIT_KEYS OVER_KEYS MISS_KEYS MIX_KEYS MIX_PUT_PCT ATTACK_RATE \
	STALE_GAP_MS STALE_IDLE_SAMPLES; do
	case ${!v} in '' | *[!0-9]*) die "$v must be a whole number, got '${!v}'" ;; esac
done
[ "$MIX_KEYS" -le "$MISS_KEYS" ] || die "MIX_KEYS ($MIX_KEYS) must not be above MISS_KEYS ($MISS_KEYS): the mixed keys are miss keys"
for w in $WORKLOADS; do
	case $w in get_hit | put | get_miss | mixed | density | standby | slow_commit | get_hit_auth | auth_flood) ;; *) die "unknown workload '$w' in WORKLOADS" ;; esac
done
for v in $STANDBY_PUT_CONFIGS; do
	case $v in none | async | sync | remote_apply) ;; *) die "unknown configuration '$v' in STANDBY_PUT_CONFIGS" ;; esac
done
for v in $STANDBY_RECORD_CONFIGS; do
	case $v in none | async) ;; *) die "unknown configuration '$v' in STANDBY_RECORD_CONFIGS (none, async)" ;; esac
done
for v in $FLOOD_VARIANTS; do
	case $v in keepalive | fresh | control) ;; *) die "unknown attacker variant '$v' in FLOOD_VARIANTS" ;; esac
done
[ "$ATTACK_RATE" -gt 0 ] || die "ATTACK_RATE must be at least 1"
[ "$(id -u)" -eq 0 ] || die "run this as root (it installs packages and runs the cluster as '$PG_USER')"

# --- cleanup: stop everything we started, whatever happens ----------------------
RUN=
PIDS=()           # daemons started here: nginx master, redis-server, webdis
CHILD=            # the wrk/pgbench/curl currently running
ATTACKER=         # the auth_flood attacker, while it runs
PROBE=            # the standby workload's staleness probe, while it runs
HELLO_PID=        # civetweb's hello-world, once started (also in PIDS)
SLOW_PIDS=()      # the slow-commit workload's concurrent clients, while they run
PG_STARTED=no
SB_STARTED=no     # the standby workload's hot standby
SO_SWAPPED=no     # yes while pkglibdir holds a scratch build of kvserver.so
SO_ORIG=          # a copy of the kvserver.so installed before the swaps
PKGLIB=           # pg_config --pkglibdir, once the swaps begin
POLICY_RC_CREATED=no

cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	set +e
	if [ -n "$CHILD" ]; then
		kill -TERM "$CHILD" 2>/dev/null
		wait "$CHILD" 2>/dev/null
	fi
	if [ -n "$ATTACKER" ]; then
		kill -TERM "$ATTACKER" 2>/dev/null
		wait "$ATTACKER" 2>/dev/null
	fi
	if [ -n "$PROBE" ]; then
		kill -TERM "$PROBE" 2>/dev/null
		wait "$PROBE" 2>/dev/null
	fi
	if [ "${#SLOW_PIDS[@]}" -gt 0 ]; then
		pkill -TERM -P "$(IFS=,; echo "${SLOW_PIDS[*]}")" 2>/dev/null
		kill -TERM "${SLOW_PIDS[@]}" 2>/dev/null
		wait "${SLOW_PIDS[@]}" 2>/dev/null
	fi
	# the primary first: a synchronous standby stopped first would leave commits waiting
	if [ "$PG_STARTED" = yes ]; then
		say "stopping PostgreSQL"
		as_pg "$PGBIN/pg_ctl" -D "$RUN/pg" -m fast -w -t 60 stop >/dev/null 2>&1 ||
			as_pg "$PGBIN/pg_ctl" -D "$RUN/pg" -m immediate -w -t 30 stop >/dev/null 2>&1
	fi
	if [ "$SB_STARTED" = yes ]; then
		say "stopping the standby"
		as_pg "$PGBIN/pg_ctl" -D "$RUN/standby" -m fast -w -t 60 stop >/dev/null 2>&1 ||
			as_pg "$PGBIN/pg_ctl" -D "$RUN/standby" -m immediate -w -t 30 stop >/dev/null 2>&1
	fi
	if [ "$SO_SWAPPED" = yes ]; then
		say "restoring the kvserver.so installed before the standby workload"
		so_install "$SO_ORIG" || say "WARNING: could not restore $PKGLIB/kvserver.so from $SO_ORIG"
	fi
	local pid
	if [ "${#PIDS[@]}" -gt 0 ]; then
		say "stopping civetweb hello, nginx, redis-server, webdis"
		for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null; done
		for _ in $(seq 1 50); do
			local alive=no
			for pid in "${PIDS[@]}"; do kill -0 "$pid" 2>/dev/null && alive=yes; done
			[ "$alive" = no ] && break
			sleep 0.1
		done
		for pid in "${PIDS[@]}"; do
			if kill -0 "$pid" 2>/dev/null; then
				kill -KILL "$pid" 2>/dev/null
			fi
			wait "$pid" 2>/dev/null
		done
	fi
	if [ "$POLICY_RC_CREATED" = yes ]; then
		rm -f /usr/sbin/policy-rc.d
	fi
	if [ -n "$RUN" ] && [ -d "$RUN" ]; then
		mkdir -p "$OUT/logs"
		cp -f "$RUN/pg/server.log" "$OUT/logs/postgresql.log" 2>/dev/null
		cp -f "$RUN/nginx/error.log" "$OUT/logs/nginx-error.log" 2>/dev/null
		cp -f "$RUN/redis/redis.log" "$OUT/logs/redis.log" 2>/dev/null
		cp -f "$RUN/webdis/webdis.log" "$OUT/logs/webdis.log" 2>/dev/null
		cp -f "$RUN/standby/server.log" "$OUT/logs/postgresql-standby.log" 2>/dev/null
		if [ "${KEEP_RUN:-0}" = 1 ]; then
			say "state kept in $RUN"
		else
			rm -rf "$RUN"
		fi
	fi
	if [ "$rc" -ne 0 ]; then
		say "FAILED (exit code $rc); logs in $OUT/logs, raw output in $OUT/raw"
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Put FILE in place of the installed kvserver.so: a new inode renamed over the
# old one, so running servers keep the library they mapped.
so_install() {
	install -m 755 "$1" "$PKGLIB/.kvserver.so.bench-$$" &&
		mv -f "$PKGLIB/.kvserver.so.bench-$$" "$PKGLIB/kvserver.so"
}

# Run a client in the background and wait for it, so a signal is handled at once.
run_child() {
	local rc=0
	"$@" &
	CHILD=$!
	wait "$CHILD" || rc=$?
	CHILD=
	return "$rc"
}

# --- 1. packages and build -------------------------------------------------------
apt_install() {
	export DEBIAN_FRONTEND=noninteractive
	# keep package scripts from starting system-wide nginx/redis/webdis services
	if [ ! -e /usr/sbin/policy-rc.d ]; then
		printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
		chmod 755 /usr/sbin/policy-rc.d
		POLICY_RC_CREATED=yes
	fi
	say "apt-get update"
	apt-get update -q -o DPkg::Lock::Timeout=600 >/dev/null
	local pkgs=() p
	for p in "$@"; do
		# gnuplot-nox is gone from some releases: take gnuplot there
		if [ "$p" = gnuplot-nox ] && ! apt-cache policy gnuplot-nox 2>/dev/null | grep -q 'Candidate: [0-9]'; then
			p=gnuplot
		fi
		pkgs+=("$p")
	done
	say "apt-get install ${pkgs[*]}"
	apt-get install -y -q --no-install-recommends -o DPkg::Lock::Timeout=600 "${pkgs[@]}"
	if [ "$POLICY_RC_CREATED" = yes ]; then
		rm -f /usr/sbin/policy-rc.d
		POLICY_RC_CREATED=no
	fi
}

missing=()
have wrk || missing+=(wrk)
[ -x /usr/sbin/nginx ] || missing+=(nginx-light)
{ have redis-server && have redis-cli; } || missing+=(redis-server)
have webdis || missing+=(webdis)
have gnuplot || missing+=(gnuplot-nox)
# Debian 12 ships pgbench in postgresql-15 (postgresql-contrib-15 is a virtual
# package it provides); check the binary rather than the package name.
[ -x "$PGBIN/pgbench" ] || missing+=(postgresql-contrib-15)
# Debian's python3: a version manager's shim (pyenv) can take most of a second per call
[ -x /usr/bin/python3 ] || missing+=(python3)
have curl || missing+=(curl)
if [ "${#missing[@]}" -gt 0 ]; then
	[ "${SKIP_INSTALL:-0}" = 1 ] && die "missing: ${missing[*]} (and SKIP_INSTALL=1)"
	apt_install "${missing[@]}"
else
	say "bench tools present: wrk nginx redis-server webdis gnuplot pgbench python3"
fi
[ -x "$PGBIN/pgbench" ] || die "no $PGBIN/pgbench after installing"

if [ "${SKIP_BUILD:-0}" = 1 ]; then
	say "SKIP_BUILD=1: using the installed kvserver"
else
	if [ -x "$ROOT/scripts/deps.sh" ] && [ "${SKIP_INSTALL:-0}" != 1 ]; then
		say "build dependencies (scripts/deps.sh)"
		"$ROOT/scripts/deps.sh"
	fi
	say "make && make install (PG_CONFIG=$PG_CONFIG)"
	make -C "$ROOT" -j"$(nproc)" "PG_CONFIG=$PG_CONFIG" >"$BENCH/.build.log" 2>&1 ||
		{ tail -n 40 "$BENCH/.build.log"; die "make failed"; }
	make -C "$ROOT" install "PG_CONFIG=$PG_CONFIG" >>"$BENCH/.build.log" 2>&1 ||
		{ tail -n 40 "$BENCH/.build.log"; die "make install failed"; }
	mkdir -p "$OUT"
	mv -f "$BENCH/.build.log" "$OUT/build.log"
fi
id "$PG_USER" >/dev/null 2>&1 || die "user '$PG_USER' does not exist (it comes with postgresql-15)"

# --- 2. private state, ports, servers -------------------------------------------
mkdir -p "$OUT"
rm -rf "$OUT/raw" "$OUT/logs" "$OUT"/*.jsonl "$OUT/results.json" "$OUT/results.md" \
	"$OUT/chart.png" "$OUT/chart.dat" "$OUT/chart.gp"
mkdir -p "$OUT/raw" "$OUT/logs"
RUN=$(mktemp -d /tmp/kvbench.XXXXXX) # short: the Postgres socket lives here
chmod 755 "$RUN"
cd "$RUN"
PY=/usr/bin/python3
REPORT=("$PY" "$BENCH/report.py")
RUNS=$OUT/runs.jsonl
MEM=$OUT/memory.jsonl
META=$OUT/meta.jsonl
STALE=$OUT/stale.jsonl

# civetweb's hello-world (bench/hello.c), against the libcivetweb kvserver links
cc -O2 -Wall -o "$RUN/hello" "$BENCH/hello.c" -lcivetweb >"$OUT/logs/hello-build.log" 2>&1 ||
	{ cat "$OUT/logs/hello-build.log"; die "could not compile bench/hello.c (libcivetweb-dev missing?)"; }

ZIPF_STEP=$("$PY" -c 'import math,sys; n=int(sys.argv[1]); s=7919
while math.gcd(s, n) != 1: s += 2
print(s)' "$MIX_KEYS")

# Eight distinct free loopback ports, chosen by the kernel.
read -r PG_PORT KV_PORT NGINX_PORT REDIS_PORT WEBDIS_PORT SB_PG_PORT SB_KV_PORT HELLO_PORT < <("$PY" - <<'EOF'
import socket
socks = []
for _ in range(8):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
EOF
)
say "state in $RUN; ports: postgres $PG_PORT (Unix socket only), kvserver $KV_PORT, civetweb hello $HELLO_PORT, nginx $NGINX_PORT, redis $REDIS_PORT, webdis $WEBDIS_PORT"
wants standby && say "standby ports: postgres $SB_PG_PORT (Unix socket only), kvserver $SB_KV_PORT"

"${REPORT[@]}" note "$META" "date=$(date -u +%Y-%m-%dT%H:%MZ)" "quick=$QUICK" "rounds=$ROUNDS" \
	"duration=$DURATION" "warmup=$WARMUP" "cores=$(nproc)" \
	"kvserver=$(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo unknown)" \
	"postgres=$("$PGBIN/postgres" --version)" "wrk=$(wrk -v 2>&1 | head -n 1 | cut -d' ' -f1-2)" \
	"nginx=$(/usr/sbin/nginx -v 2>&1)" "redis=$(redis-server --version | cut -d' ' -f1-3)" \
	"webdis=$(dpkg-query -W -f='${Version}' webdis 2>/dev/null || echo unknown)" \
	"hit_keys=$HIT_KEYS" "over_keys=$OVER_KEYS" "miss_keys=$MISS_KEYS" "mix_keys=$MIX_KEYS" \
	"caches=$SMALL_CACHE $MID_CACHE $MAIN_CACHE"

wait_http() { # url, seconds; any HTTP answer will do unless $3 = 200
	local url=$1 secs=$2 want=${3:-any} code
	for _ in $(seq 1 $((secs * 10))); do
		code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$url" || true)
		if [ "$want" = 200 ]; then
			[ "$code" = 200 ] && return 0
		else
			[ "$code" != 000 ] && return 0
		fi
		sleep 0.1
	done
	return 1
}

# PostgreSQL 15 + kvserver
PGDATA=$RUN/pg
install -d -o "$PG_USER" -g "$PG_USER" -m 700 "$PGDATA"
install -d -o "$PG_USER" -g "$PG_USER" -m 755 "$RUN/pgb"
say "initdb"
as_pg "$PGBIN/initdb" -D "$PGDATA" -U "$PG_USER" -E UTF8 --locale=C.UTF-8 --auth=trust \
	>"$OUT/logs/initdb.log" 2>&1 || { cat "$OUT/logs/initdb.log"; die "initdb failed"; }
printf "\ninclude 'bench.conf'\n" >>"$PGDATA/postgresql.conf"

psql_q() {
	as_pg "$PGBIN/psql" -h "$PGDATA" -p "$PG_PORT" -d postgres -XAtq -v ON_ERROR_STOP=1 -c "$1"
}

CUR_CACHE=
pg_start() { # cache size
	CUR_CACHE=$1
	cat >"$PGDATA/bench.conf" <<EOF
listen_addresses = ''
port = $PG_PORT
unix_socket_directories = '$PGDATA'
max_connections = 120
shared_buffers = 256MB
fsync = on
synchronous_commit = on
max_wal_size = 4GB
wal_level = replica
shared_preload_libraries = 'kvserver'
kvserver.listen_addresses = '127.0.0.1'
kvserver.port = $KV_PORT
kvserver.database = 'postgres'
kvserver.cache_size = '$CUR_CACHE'
kvserver.anonymous_role = '$ANON_ROLE'
EOF
	chown "$PG_USER:$PG_USER" "$PGDATA/bench.conf"
	say "starting PostgreSQL with kvserver.cache_size = $CUR_CACHE"
	PG_STARTED=yes
	as_pg "$PGBIN/pg_ctl" -D "$PGDATA" -l "$PGDATA/server.log" -w -t 120 start >/dev/null ||
		{ tail -n 30 "$PGDATA/server.log"; die "PostgreSQL did not start"; }
	psql_q "SET client_min_messages = warning; CREATE EXTENSION IF NOT EXISTS kvserver" >/dev/null
	[ -n "$AUTH_TOKEN" ] || setup_roles
	wait_http "http://127.0.0.1:$KV_PORT/health" 30 200 || die "kvserver /health is not 200"
	WORKER_PID=$(worker_pid)
}
# Once per cluster: the anonymous role, the LOGIN role, its password and token.
setup_roles() {
	AUTH_PASS=kvb-$("$PY" -c 'import secrets; print(secrets.token_hex(12))')
	say "roles: $ANON_ROLE (NOLOGIN, kvserver.anonymous_role), $AUTH_ROLE (LOGIN, SCRAM password, token)"
	psql_q "SET client_min_messages = warning;
		CREATE ROLE $ANON_ROLE NOLOGIN;
		SET password_encryption = 'scram-sha-256';
		CREATE ROLE $AUTH_ROLE LOGIN PASSWORD '$AUTH_PASS';
		GRANT SELECT, INSERT, UPDATE, DELETE ON kv_store TO $ANON_ROLE, $AUTH_ROLE;
		GRANT USAGE ON SEQUENCE kv_store_version_seq TO $ANON_ROLE, $AUTH_ROLE" >/dev/null
	[ "$(psql_q "SELECT rolpassword LIKE 'SCRAM-SHA-256\$%' FROM pg_authid WHERE rolname = '$AUTH_ROLE'")" = t ] ||
		die "$AUTH_ROLE's password is not stored as SCRAM-SHA-256"
	AUTH_TOKEN=$(psql_q "SET ROLE $AUTH_ROLE; SELECT kv_token_create('1 day')")
	case $AUTH_TOKEN in kvt_?*) ;; *) die "kv_token_create() as $AUTH_ROLE returned '$AUTH_TOKEN'" ;; esac
	"${REPORT[@]}" note "$META" "anonymous_role=$ANON_ROLE" "auth_role=$AUTH_ROLE" "attack_rate=$ATTACK_RATE" \
		"auth_max_failures=$(psql_q "SHOW kvserver.auth_max_failures")" \
		"auth_failure_window=$(psql_q "SHOW kvserver.auth_failure_window")"
}

pg_stop() {
	say "stopping PostgreSQL"
	as_pg "$PGBIN/pg_ctl" -D "$PGDATA" -m fast -w -t 120 stop >/dev/null
	PG_STARTED=no
}

WORKER_PID= # the kvserver worker of the current cluster start
SB_WORKER_PID= # the standby's kvserver worker (standby workload)
# The standby workload's hot standby (its own data directory, ports, socket).
SBDATA=$RUN/standby
psql_sb() {
	as_pg "$PGBIN/psql" -h "$SBDATA" -p "$SB_PG_PORT" -d postgres -XAtq -v ON_ERROR_STOP=1 -c "$1"
}
# psql_q, or psql_sb for the standby's targets (kvserver_standby)
psql_node() { # target sql
	case $1 in kvserver_standby) psql_sb "$2" ;; *) psql_q "$2" ;; esac
}
kv_hits() { psql_node "${1:-kvserver}" "SELECT hits || ' ' || misses || ' ' || fills_skipped || ' ' || evictions FROM kv_stats()"; }
worker_pid() { psql_node "${1:-kvserver}" "SELECT pid FROM pg_stat_activity WHERE backend_type = 'kvserver' LIMIT 1"; }

mem_note() { # point label
	local pid rss anon shm row
	pid=$(worker_pid)
	rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$pid/status" 2>/dev/null || echo)
	anon=$(awk '/^RssAnon:/ {print $2}' "/proc/$pid/status" 2>/dev/null || echo)
	shm=$(awk '/^RssShmem:/ {print $2}' "/proc/$pid/status" 2>/dev/null || echo)
	row=$(psql_q "SELECT entries, coalesce(round(overhead_bytes_per_entry::numeric, 1)::text, ''),
		used_bytes, capacity_bytes FROM kv_stats()")
	IFS='|' read -r entries overhead used cap <<<"$row"
	"${REPORT[@]}" note "$MEM" "point=$1" "t=$(date +%s.%N)" "cache_size=$CUR_CACHE" "pid=$pid" "rss_kb=$rss" \
		"rss_anon_kb=$anon" "rss_shmem_kb=$shm" "entries=$entries" "overhead=$overhead" \
		"used_bytes=$used" "capacity_bytes=$cap"
	say "memory [$1]: worker pid $pid VmRSS ${rss} kB (anon ${anon}, shmem ${shm}); cache $entries entries, overhead ${overhead:-?} B/entry"
}

# nginx: fixed 16-byte body for any /kv/<key>, keep-alive, no access log
mkdir -p "$RUN/nginx/tmp"
cat >"$RUN/nginx/nginx.conf" <<EOF
daemon off;
master_process on;
worker_processes 1;
pid $RUN/nginx/nginx.pid;
error_log $RUN/nginx/error.log warn;
events { worker_connections 1024; }
http {
    access_log off;
    keepalive_timeout 65s;
    keepalive_requests 100000000;
    client_body_temp_path $RUN/nginx/tmp/body;
    proxy_temp_path $RUN/nginx/tmp/proxy;
    server {
        listen 127.0.0.1:$NGINX_PORT;
        location /kv/ {
            default_type application/octet-stream;
            return 200 "$VALUE";
        }
    }
}
EOF
NGINX=(/usr/sbin/nginx -p "$RUN/nginx/" -c "$RUN/nginx/nginx.conf" -e "$RUN/nginx/error.log")
"${NGINX[@]}" -t -q || die "nginx -t failed"
say "starting nginx, redis-server, webdis"
"${NGINX[@]}" >>"$RUN/nginx/error.log" 2>&1 &
PIDS+=($!)

# redis-server: durable SETs (appendfsync always), no RDB snapshots
mkdir -p "$RUN/redis"
redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --dir "$RUN/redis" --daemonize no \
	--appendonly yes --appendfsync always --save '' --logfile "$RUN/redis/redis.log" \
	>"$RUN/redis/stdout.log" 2>&1 &
PIDS+=($!)

# webdis (Debian's /usr/bin/webdis CONFIG.json)
mkdir -p "$RUN/webdis"
cat >"$RUN/webdis/webdis.json" <<EOF
{
    "redis_host": "127.0.0.1",
    "redis_port": $REDIS_PORT,
    "redis_auth": null,
    "http_host": "127.0.0.1",
    "http_port": $WEBDIS_PORT,
    "threads": 2,
    "pool_size": 20,
    "daemonize": false,
    "websockets": false,
    "database": 0,
    "verbosity": 1,
    "logfile": "$RUN/webdis/webdis.log"
}
EOF
for _ in $(seq 1 100); do
	redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null | grep -q PONG && break
	sleep 0.1
done
redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping | grep -q PONG || die "redis-server did not answer"
webdis "$RUN/webdis/webdis.json" >>"$RUN/webdis/webdis.log" 2>&1 &
PIDS+=($!)
wait_http "http://127.0.0.1:$NGINX_PORT/kv/x" 20 200 || die "nginx did not answer"
wait_http "http://127.0.0.1:$WEBDIS_PORT/PING" 20 200 || die "webdis did not answer"
[ "$(curl -s "http://127.0.0.1:$NGINX_PORT/kv/x")" = "$VALUE" ] || die "nginx body is not '$VALUE'"

# --- 3. workloads ------------------------------------------------------------------
url_of() {
	case $1 in
	kvserver_standby) echo "http://127.0.0.1:$SB_KV_PORT" ;;
	kvserver*) echo "http://127.0.0.1:$KV_PORT" ;;
	hello) echo "http://127.0.0.1:$HELLO_PORT" ;;
	nginx) echo "http://127.0.0.1:$NGINX_PORT" ;;
	webdis) echo "http://127.0.0.1:$WEBDIS_PORT" ;;
	esac
}
lua_target() { case $1 in kvserver*) echo kv ;; hello) echo nginx ;; *) echo "$1" ;; esac; }
is_kv() { case $1 in kvserver*) return 0 ;; esac; return 1; }
# The credentials wrk.lua sends for a target: kvserver_basic and kvserver_bearer
# authenticate as AUTH_ROLE; every other target sends none (kvserver: anonymous).
auth_env() {
	case $1 in
	kvserver_basic) echo "BENCH_BASIC=$AUTH_ROLE:$AUTH_PASS" ;;
	kvserver_bearer) echo "BENCH_TOKEN=$AUTH_TOKEN" ;;
	*) echo "BENCH_AUTH_NONE=1" ;;
	esac
}

# auth_flood's attacker: ATTACK_RATE requests/s of GET /kv/h1 with Basic
# credentials of AUTH_ROLE and a different wrong password each, from its own
# loopback address (bound with source_address), on one keep-alive connection
# ("keepalive"; reopened only if the server closes it) or on a new connection,
# so a fresh source port, for each request ("fresh"); "control" is "fresh"
# without an Authorization header (anonymous GETs: 200).  Paced (never bursts
# to catch up), bounded: at most ATTACK_RATE x seconds requests, stops after
# the given seconds, 2 s socket timeouts.  Writes a JSON summary.
cat >"$RUN/attacker.py" <<'EOF'
import base64, http.client, json, sys, time
host, port, bind, user, mode = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
rate, secs, out = float(sys.argv[6]), float(sys.argv[7]), sys.argv[8]
limit = int(rate * secs)
status, lat, errors, retry_after = {}, {}, {}, set()
conns = sent = 0
first_429 = None
conn = None
start = time.monotonic()
deadline = start + secs
nxt = start
while sent < limit:
    now = time.monotonic()
    if now >= deadline:
        break
    if nxt > now:
        time.sleep(nxt - now)
    nxt = max(nxt + 1.0 / rate, time.monotonic() - 0.5 / rate)
    cred = base64.b64encode(("%s:wrong-%d" % (user, sent)).encode()).decode()
    sent += 1
    t0 = time.monotonic()
    try:
        if conn is None:
            conn = http.client.HTTPConnection(host, port, timeout=2, source_address=(bind, 0))
            conn.connect()
            conns += 1
        conn.request("GET", "/kv/h1", headers={} if mode == "control" else {"Authorization": "Basic " + cred})
        r = conn.getresponse()
        r.read()
        code = str(r.status)
        status[code] = status.get(code, 0) + 1
        lat.setdefault(code, []).append((time.monotonic() - t0) * 1000.0)
        if r.status == 429:
            retry_after.add(r.getheader("Retry-After"))
            if first_429 is None:
                first_429 = sent
        if mode != "keepalive" or r.will_close:
            conn.close()
            conn = None
    except (OSError, http.client.HTTPException) as e:
        errors[type(e).__name__] = errors.get(type(e).__name__, 0) + 1
        if conn is not None:
            conn.close()
        conn = None
if conn is not None:
    conn.close()
elapsed = time.monotonic() - start


def pct(v, p):
    v = sorted(v)
    return round(v[min(len(v) - 1, max(0, -(-len(v) * p // 100) - 1))], 3) if v else None


res = {"mode": mode, "addr": bind, "sent": sent, "seconds": round(elapsed, 3),
       "rate": round(sent / elapsed, 1) if elapsed else None, "conns": conns,
       "s401": status.get("401", 0), "s429": status.get("429", 0),
       "other": sum(n for c, n in status.items() if c not in ("401", "429")),
       "statuses": status, "errors": sum(errors.values()), "error_kinds": errors,
       "first_429": first_429, "retry_after": sorted(x for x in retry_after if x),
       "p50_401_ms": pct(lat.get("401", []), 50), "max_401_ms": pct(lat.get("401", []), 100),
       "p50_429_ms": pct(lat.get("429", []), 50), "p99_429_ms": pct(lat.get("429", []), 99)}
with open(out, "w") as f:
    json.dump(res, f, sort_keys=True)
print(json.dumps(res, sort_keys=True))
EOF
ATTACK_MODE= # empty: no attacker in wrk_run; else keepalive | fresh
RUN_VARIANT= # an extra part of a run's id and grouping key (auth_flood)
ATTACK_N=0   # attacker runs so far: each gets its own address 127.0.0.(2+n)

# Around each kvserver run: the machine's CPU (/proc/stat), the worker's and
# its main thread's CPU, the CPU of this shell's finished children (wrk, the
# attacker), so that report.py can tell how much CPU something else on the
# machine took meanwhile; and /metrics (server-side status classes, latency
# histogram).  CPU_SNAP and the files are overwritten by each call.  The
# worker, its executors (kvserver.executors: they run the SQL) and the
# /metrics are SNAP_PID's, SNAP_DATA's and SNAP_URL's (wrk_run sets them: the
# primary's, or the standby's for kvserver_standby).  With SNAP_CLUSTERS=1
# (standby workload) also the CPU of every other process of both clusters
# (walsender, walreceiver, replay, walwriter, autovacuum...), so that it does
# not count as "other".
SNAP_PID=
SNAP_DATA=
SNAP_URL=
SNAP_CLUSTERS=
SKIP_HITS=
pm_of() { [ -f "$1/postmaster.pid" ] && head -n 1 "$1/postmaster.pid"; }
ticks_of() { # pid...: "pid:ticks,..." (utime + stime)
	local p out=''
	for p in "$@"; do out+="$p:$(awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null || echo 0),"; done
	echo "${out%,}"
}
executor_ticks() { # data directory
	local pm
	pm=$(pm_of "$1") || return 0
	# shellcheck disable=SC2046 # one pid per word
	ticks_of $(ps -o pid=,args= --ppid "$pm" 2>/dev/null | awk '/kvserver executor/ {print $1}')
}
cluster_ticks() { # the postmasters and their children but the workers and executors
	local pms=() pm
	for pm in "$PGDATA" "$SBDATA"; do pm=$(pm_of "$pm") && pms+=("$pm"); done
	[ "${#pms[@]}" -gt 0 ] || return 0
	# shellcheck disable=SC2046 # one pid per word
	ticks_of "${pms[@]}" $(ps -o pid=,args= --ppid "$(IFS=,; echo "${pms[*]}")" 2>/dev/null |
		awk -v w="$WORKER_PID" -v s="$SB_WORKER_PID" '$1 != w && $1 != s && !/kvserver executor/ {print $1}')
}
cpu_snap() { # prefix (0 or 1)
	local cpu rest
	read -r cpu rest </proc/stat
	CPU_SNAP+=("ts$1=$(date +%s.%N)" "cpu$1=$rest")
	CPU_SNAP+=("wk$1=$(awk '{print $14 + $15}' "/proc/$SNAP_PID/stat" 2>/dev/null || echo)")
	CPU_SNAP+=("mt$1=$(awk '{print $14 + $15}' "/proc/$SNAP_PID/task/$SNAP_PID/stat" 2>/dev/null || echo)")
	CPU_SNAP+=("ex$1=$(executor_ticks "$SNAP_DATA")")
	[ -n "$SNAP_CLUSTERS" ] && CPU_SNAP+=("pg$1=$(cluster_ticks)")
	times >"$RUN/times"
	CPU_SNAP+=("ch$1=$(sed -n 2p "$RUN/times")")
	curl -s --max-time 5 -o "$RUN/metrics$1" "$SNAP_URL/metrics" || : >"$RUN/metrics$1"
	CPU_SNAP+=("metrics$1=$RUN/metrics$1")
}

# wrk_run WORKLOAD LABEL TARGET CONNS ROUND MODE DIST PREFIX NKEYS
# (ROUND=warm: WARMUP seconds, recorded but left out of the table)
wrk_run() {
	local workload=$1 label=$2 target=$3 conns=$4 round=$5 mode=$6 dist=$7 prefix=$8 nkeys=$9
	local id=${workload}_c${conns}_${target}${RUN_VARIANT:+_$RUN_VARIANT}_r${round} secs=$DURATION
	local hb='' mb='' fb='' eb='' ha='' ma='' fa='' ea=''
	local res=$OUT/raw/$id.json log=$OUT/raw/$id.txt rc=0
	[ "$round" = warm ] && secs=$WARMUP
	[ "$secs" -gt 0 ] || return 0
	rm -f "$res"
	SNAP_PID=$WORKER_PID
	SNAP_DATA=$PGDATA
	SNAP_URL=$(url_of "$target")
	if [ "$target" = kvserver_standby ]; then SNAP_PID=$SB_WORKER_PID SNAP_DATA=$SBDATA; fi
	# (concurrent runs share the counters: SKIP_HITS=1 leaves them out)
	if is_kv "$target" && [ "$round" != warm ] && [ -z "$SKIP_HITS" ]; then read -r hb mb fb eb <<<"$(kv_hits "$target")"; fi
	CPU_SNAP=()
	if is_kv "$target" && [ "$round" != warm ]; then cpu_snap 0; fi
	local attack=() ares=$OUT/raw/$id.attack.json arc=0
	if [ -n "$ATTACK_MODE" ] && [ "$round" != warm ]; then
		local addr=127.0.0.$((2 + ATTACK_N % 240))
		ATTACK_N=$((ATTACK_N + 1))
		say "$label c$conns $target round $round (${secs}s), second client ($ATTACK_MODE) from $addr at $ATTACK_RATE/s"
		rm -f "$ares"
		timeout $((secs + 15)) "$PY" "$RUN/attacker.py" 127.0.0.1 "$KV_PORT" "$addr" "$AUTH_ROLE" \
			"$ATTACK_MODE" "$ATTACK_RATE" "$secs" "$ares" >"$OUT/raw/$id.attack.txt" 2>&1 &
		ATTACKER=$!
		attack=("attack=$ATTACK_MODE" "attack_json=$ares")
	else
		say "$label c$conns $target round $round (${secs}s)"
	fi
	local t0
	t0=$(date +%s.%N)
	run_child env BENCH_TARGET="$(lua_target "$target")" BENCH_MODE="$mode" BENCH_DIST="$dist" \
		BENCH_PREFIX="$prefix" BENCH_NKEYS="$nkeys" BENCH_VALUE="$VALUE" BENCH_PUT_PCT="$MIX_PUT_PCT" \
		BENCH_TAG="${id}x$RANDOM" BENCH_RESULT="$res" BENCH_ZIPF_STEP="$ZIPF_STEP" "$(auth_env "$target")" \
		timeout $((secs + 60)) wrk -t1 -c"$conns" -d"${secs}s" --timeout "$WRK_TIMEOUT" --latency \
		-s "$BENCH/wrk.lua" "$(url_of "$target")" >"$log" 2>&1 || rc=$?
	[ "$rc" -eq 0 ] || say "wrk exited with $rc (see $log)"
	local t1
	t1=$(date +%s.%N)
	if [ -n "$ATTACKER" ]; then
		wait "$ATTACKER" || arc=$?
		ATTACKER=
		[ "$arc" -eq 0 ] || say "attacker exited with $arc (see $OUT/raw/$id.attack.txt)"
	fi
	t1=$(date +%s.%N)
	local extra=("${attack[@]}")
	if is_kv "$target" && [ "$round" != warm ]; then
		cpu_snap 1
		[ -n "$hb" ] && read -r ha ma fa ea <<<"$(kv_hits "$target")"
		# a worker that restarted (crash) has a new pid
		extra+=("${CPU_SNAP[@]}" "worker_pid=$SNAP_PID" "worker_pid_after=$(worker_pid "$target")")
	fi
	[ -n "$RUN_VARIANT" ] && extra+=("variant=$RUN_VARIANT")
	[ -n "$hb" ] && extra+=("hits_before=$hb" "misses_before=$mb" "hits_after=$ha" "misses_after=$ma"
		"fills_skipped=$((fa - fb))" "evictions=$((ea - eb))")
	"${REPORT[@]}" wrk "$RUNS" "$res" "$log" "workload=$workload" "label=$label" \
		"target=$target" "conns=$conns" "round=$round" "cache_size=$CUR_CACHE" \
		"mode=$mode" "dist=$dist" "nkeys=$nkeys" "wrk_exit=$rc" "t_start=$t0" "t_end=$t1" "${extra[@]}"
}

# pgbench_run WORKLOAD LABEL CONNS ROUND SCRIPT NKEYS  (ROUND=warm: WARMUP s, not recorded)
pgbench_run() {
	local workload=$1 label=$2 conns=$3 round=$4 script=$5 nkeys=$6
	local id=${workload}_c${conns}_pgbench_r${round} secs=$DURATION rc=0
	local log=$OUT/raw/$id.txt prefix=$RUN/pgb/$id
	[ "$round" = warm ] && secs=$WARMUP
	[ "$secs" -gt 0 ] || return 0
	say "$label c$conns pgbench round $round (${secs}s)"
	local logargs=(-l "--log-prefix=$prefix")
	[ "$round" = warm ] && logargs=()
	run_child timeout $((secs + 120)) runuser -u "$PG_USER" -- "$PGBIN/pgbench" -h "$PGDATA" \
		-p "$PG_PORT" -n -M prepared -c "$conns" -j 2 -T "$secs" -D "nkeys=$nkeys" \
		"${logargs[@]}" -f "$script" postgres >"$log" 2>&1 || rc=$?
	[ "$rc" -eq 0 ] || say "pgbench exited with $rc (see $log)"
	[ "$round" = warm ] && return 0
	"${REPORT[@]}" pgbench "$RUNS" "$log" "$prefix" "workload=$workload" "label=$label" \
		"target=pgbench" "conns=$conns" "round=$round" "cache_size=$CUR_CACHE" \
		"pgbench_exit=$rc"
}

# pgbench scripts: the same statements an application would send
cat >"$RUN/pgb/upsert_new.sql" <<EOF
\set k random(1, 1000000000000)
INSERT INTO kv_store(key, value) VALUES ('pn' || :k::text, '\\x$VALUE_HEX') ON CONFLICT (key) DO UPDATE SET value = excluded.value, version = nextval('kv_store_version_seq');
EOF
cat >"$RUN/pgb/upsert_over.sql" <<EOF
\set k random(1, :nkeys)
INSERT INTO kv_store(key, value) VALUES ('o' || :k::text, '\\x$VALUE_HEX') ON CONFLICT (key) DO UPDATE SET value = excluded.value, version = nextval('kv_store_version_seq');
EOF
cat >"$RUN/pgb/select.sql" <<EOF
\set k random(1, :nkeys)
SELECT value FROM kv_store WHERE key = 'm' || :k::text;
EOF
chmod 644 "$RUN"/pgb/*.sql

load_data() {
	say "loading kv_store: $HIT_KEYS hit keys, $OVER_KEYS overwrite keys, $MISS_KEYS miss/mixed keys"
	psql_q "INSERT INTO kv_store(key, value)
		SELECT 'h' || g, '\\x$VALUE_HEX'::bytea FROM generate_series(1, $HIT_KEYS) g
		UNION ALL SELECT 'o' || g, '\\x$VALUE_HEX'::bytea FROM generate_series(1, $OVER_KEYS) g
		UNION ALL SELECT 'm' || g, '\\x$VALUE_HEX'::bytea FROM generate_series(1, $MISS_KEYS) g
		ON CONFLICT (key) DO NOTHING" >/dev/null
	psql_q "VACUUM ANALYZE kv_store" >/dev/null
	psql_q "CHECKPOINT" >/dev/null
	say "loading redis: $HIT_KEYS hit keys, $OVER_KEYS overwrite keys"
	"$PY" - "$HIT_KEYS" "$OVER_KEYS" "$VALUE" <<'EOF' | redis-cli -h 127.0.0.1 -p "$REDIS_PORT" >/dev/null
import sys
hit, over, value = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
for prefix, n in (("h", hit), ("o", over)):
    for start in range(1, n + 1, 1000):
        print("MSET " + " ".join("%s%d %s" % (prefix, i, value) for i in range(start, min(n, start + 999) + 1)))
EOF
	local n
	n=$(redis-cli -h 127.0.0.1 -p "$REDIS_PORT" dbsize)
	[ "$n" -ge $((HIT_KEYS + OVER_KEYS)) ] || die "redis holds $n keys, expected $((HIT_KEYS + OVER_KEYS))"
}

# GET every hit key once, so each is in the cache; check one says X-Cache: HIT.
warm_hit_keys() { # [target: kvserver (the primary) or kvserver_standby]
	local target=${1:-kvserver} base
	say "warming the cache of $target with the $HIT_KEYS hit keys"
	base=$(url_of "$target")
	seq 1 "$HIT_KEYS" | sed "s|.*|url = \"$base/kv/h&\"|" >"$RUN/warm.curl"
	curl -s --fail -K "$RUN/warm.curl" >/dev/null || die "warming GETs failed"
	curl -s -D - -o /dev/null "$base/kv/h1" | grep -qi '^X-Cache: HIT' ||
		say "WARNING: GET /kv/h1 after warming is not X-Cache: HIT"
}

# Every target answers what the workloads ask, with the right bytes.
sanity_checks() {
	local kv web got
	kv=$(url_of kvserver)
	web=$(url_of webdis)
	got=$(curl -s "$kv/kv/h1")
	[ "$got" = "$VALUE" ] || die "kvserver GET /kv/h1 answered '$got'"
	got=$(curl -s "$web/GET/h1")
	[ "$got" = "{\"GET\":\"$VALUE\"}" ] || die "webdis GET /GET/h1 answered '$got'"
	got=$(curl -s -o /dev/null -w '%{http_code}' -X PUT --data-binary "$VALUE" "$kv/kv/sanity")
	case $got in 200 | 201) ;; *) die "kvserver PUT /kv/sanity answered $got" ;; esac
	got=$(curl -s -X PUT --data-binary "$VALUE" "$web/SET/sanity")
	[ "$got" = '{"SET":[true,"OK"]}' ] || die "webdis PUT /SET/sanity answered '$got'"
	[ "$(redis-cli -h 127.0.0.1 -p "$REDIS_PORT" get sanity)" = "$VALUE" ] || die "webdis PUT did not store the value"
	[ "$(psql_q "SELECT convert_from(value, 'UTF8') FROM kv_store WHERE key = 'sanity'")" = "$VALUE" ] ||
		die "kvserver PUT did not store the value"
}

# Anonymous, Basic and Bearer GETs all answer 200 with the value, and an
# authenticated repeat is a cache hit; a wrong password is 401 (sent from
# 127.0.0.250, so that 127.0.0.1's failure count stays at zero).
auth_sanity() {
	local kv got t
	kv=$(url_of kvserver)
	for t in anonymous basic bearer; do
		local args=()
		case $t in
		basic) args=(-u "$AUTH_ROLE:$AUTH_PASS") ;;
		bearer) args=(-H "Authorization: Bearer $AUTH_TOKEN") ;;
		esac
		got=$(curl -s "${args[@]}" "$kv/kv/h1")
		[ "$got" = "$VALUE" ] || die "kvserver GET /kv/h1 ($t) answered '$got'"
		curl -s "${args[@]}" -D - -o /dev/null "$kv/kv/h1" | grep -qi '^X-Cache: HIT' ||
			say "WARNING: GET /kv/h1 ($t, repeated) is not X-Cache: HIT"
	done
	got=$(curl -s --interface 127.0.0.250 -o /dev/null -w '%{http_code}' -u "$AUTH_ROLE:wrong" "$kv/kv/h1")
	[ "$got" = 401 ] || die "kvserver GET /kv/h1 with a wrong password answered $got, not 401"
	say "auth sanity: anonymous, Basic, Bearer GET 200 (cache hits); wrong password 401"
}

# civetweb's hello-world, with kvserver's thread count (kvserver.http_threads).
hello_start() {
	[ -z "$HELLO_PID" ] || return 0
	local threads
	threads=$(psql_q "SHOW kvserver.http_threads")
	"$RUN/hello" "$HELLO_PORT" "$threads" 5000 >"$OUT/logs/hello.log" 2>&1 &
	HELLO_PID=$!
	PIDS+=("$HELLO_PID")
	wait_http "$(url_of hello)/kv/x" 20 200 || die "civetweb hello did not answer"
	[ "$(curl -s "$(url_of hello)/kv/h1")" = "$VALUE" ] || die "civetweb hello's body is not '$VALUE'"
	"${REPORT[@]}" note "$META" "hello_threads=$threads"
	say "civetweb hello-world on port $HELLO_PORT with $threads threads"
}

# One run of a target: wrk, or pgbench for target pgbench (with PGB_SCRIPT).
# BEFORE_KV, if set, is called before each kvserver run (get_miss: empty the
# cache).
PGB_SCRIPT=
BEFORE_KV=
run_target() { # as wrk_run
	if [ "$3" = pgbench ]; then
		pgbench_run "$1" "$2" "$4" "$5" "$PGB_SCRIPT" "$9"
	else
		if is_kv "$3" && [ -n "$BEFORE_KV" ]; then "$BEFORE_KV"; fi
		wrk_run "$@"
	fi
}

# side_by_side WORKLOAD LABEL MODE DIST NKEYS TARGET:PREFIX...
# A warm-up of each target (c64), then ROUNDS rounds in which every target
# runs at c16 and then at c64, one target after the other.  report.py keeps
# a target's better concurrency per round and takes the median over rounds
# of the per-round ratios.
side_by_side() {
	local workload=$1 label=$2 mode=$3 dist=$4 nkeys=$5 spec r conns
	shift 5
	for spec in "$@"; do
		run_target "$workload" "$label" "${spec%%:*}" 64 warm "$mode" "$dist" "${spec#*:}" "$nkeys"
	done
	for r in $(seq 1 "$ROUNDS"); do
		for spec in "$@"; do
			for conns in 16 64; do
				run_target "$workload" "$label" "${spec%%:*}" "$conns" "$r" "$mode" "$dist" "${spec#*:}" "$nkeys"
			done
		done
	done
}

workload_get_hit() {
	hello_start
	side_by_side get_hit "GET hit" get uniform "$HIT_KEYS" kvserver:h hello:h nginx:h webdis:h
}

# GET hit as three kinds of client: anonymous, Basic (SCRAM role), Bearer token.
workload_get_hit_auth() {
	local conns t r
	for conns in 16 64; do
		for t in kvserver kvserver_basic kvserver_bearer; do
			wrk_run get_hit_auth "GET hit, auth" "$t" "$conns" warm get uniform h "$HIT_KEYS"
		done
		for r in $(seq 1 "$ROUNDS"); do
			for t in kvserver kvserver_basic kvserver_bearer; do
				wrk_run get_hit_auth "GET hit, auth" "$t" "$conns" "$r" get uniform h "$HIT_KEYS"
			done
		done
	done
}

# Normal clients (wrk c16 from 127.0.0.1, anonymous, then Basic) without and
# with the attacker; each attacker run has a fresh address, so each sees the
# 401s of an address not yet blocked, then 429s.
workload_auth_flood() {
	local t r v label
	RUN_VARIANT=none
	ATTACK_MODE=
	for t in kvserver kvserver_basic; do
		wrk_run auth_flood "auth flood, no attacker" "$t" 16 warm get uniform h "$HIT_KEYS"
	done
	for r in $(seq 1 "$ROUNDS"); do
		for t in kvserver kvserver_basic; do
			for v in none $FLOOD_VARIANTS; do
				RUN_VARIANT=$v
				case $v in
				none) ATTACK_MODE= label="auth flood, no attacker" ;;
				keepalive) ATTACK_MODE=$v label="auth flood, attacker keep-alive" ;;
				fresh) ATTACK_MODE=$v label="auth flood, attacker new conn each" ;;
				control) ATTACK_MODE=$v label="auth flood, control: new conn each, no credentials" ;;
				esac
				wrk_run auth_flood "$label" "$t" 16 "$r" get uniform h "$HIT_KEYS"
			done
		done
	done
	RUN_VARIANT=
	ATTACK_MODE=
}

workload_put() {
	# new keys: every request creates a key
	PGB_SCRIPT=$RUN/pgb/upsert_new.sql
	side_by_side put_new "PUT new key" put_new uniform 0 kvserver:n pgbench:- webdis:wn
	# overwrites of the OVER_KEYS existing keys, uniformly at random
	PGB_SCRIPT=$RUN/pgb/upsert_over.sql
	side_by_side put_over "PUT overwrite" put_over uniform "$OVER_KEYS" kvserver:o pgbench:- webdis:o
	PGB_SCRIPT=
}

# Misses: MISS_KEYS keys uniformly at random, the cache emptied before each
# kvserver run (SMALL_CACHE keeps it from holding much of the key set).
cache_reset() { psql_q "SELECT kv_cache_reset()" >/dev/null; }
workload_get_miss() {
	PGB_SCRIPT=$RUN/pgb/select.sql
	BEFORE_KV=cache_reset
	side_by_side get_miss "GET miss" get uniform "$MISS_KEYS" kvserver:m pgbench:-
	BEFORE_KV=
	PGB_SCRIPT=
}

# Before each mixed run: kv_cache_reset(), then fill the cache through kv_get()
# with the hottest keys it can hold (capacity / 80 B: an entry of a 2-8 byte
# key and a 16-byte value takes 70-80 bytes with its overhead), coldest of
# them first, so that LRU starts near its steady state instead of measuring
# a cold start (a run touches only a fraction of the 1M keys once each).  The
# rank -> key mapping is the one bench/wrk.lua uses.  The hit ratio is the
# kv_stats() delta over the measured run only.
prefill_zipf() {
	local n
	n=$(psql_q "SELECT least($MIX_KEYS, capacity_bytes / 80) FROM kv_stats()")
	psql_q "SELECT count(kv_get_bytea('m' || (((r::bigint - 1) * $ZIPF_STEP) % $MIX_KEYS + 1)))
		FROM generate_series($n, 1, -1) r" >/dev/null
	say "cache reset, then filled with the $n hottest keys: $(psql_q "SELECT entries || ' entries, ' || round(used_bytes / 1048576.0, 1) || ' MB used' FROM kv_stats()")"
}

workload_mixed() {
	local r
	for r in $(seq 1 "$ROUNDS"); do
		psql_q "SELECT kv_cache_reset()" >/dev/null
		prefill_zipf
		wrk_run "mixed_$CUR_CACHE" "mixed $((100 - MIX_PUT_PCT))/$MIX_PUT_PCT zipf, cache $CUR_CACHE" kvserver 64 "$r" \
			mixed zipf m "$MIX_KEYS"
	done
	mem_note "after mixed, cache $CUR_CACHE"
}

# --- the standby workload -------------------------------------------------------------
# A streaming hot standby of the primary, made by pg_basebackup with a physical
# replication slot (so that the primary keeps the WAL while the standby is
# stopped), in $SBDATA: its own bench.conf (port, socket, kvserver.port,
# hot_standby = on, primary_conninfo with application_name = SB_NAME).
standby_create() {
	say "pg_basebackup: a hot standby of the primary in $SBDATA (slot $SB_NAME)"
	install -d -o "$PG_USER" -g "$PG_USER" -m 700 "$SBDATA"
	as_pg "$PGBIN/pg_basebackup" -h "$PGDATA" -p "$PG_PORT" -U "$PG_USER" -D "$SBDATA" \
		-X stream -c fast -C -S "$SB_NAME" -N >"$OUT/logs/pg_basebackup.log" 2>&1 ||
		{ cat "$OUT/logs/pg_basebackup.log"; die "pg_basebackup failed"; }
	rm -f "$SBDATA/server.log" # the primary's
	as_pg touch "$SBDATA/standby.signal"
	cat >"$SBDATA/bench.conf" <<EOF
listen_addresses = ''
port = $SB_PG_PORT
unix_socket_directories = '$SBDATA'
max_connections = 120
shared_buffers = 256MB
fsync = on
synchronous_commit = on
max_wal_size = 4GB
wal_level = replica
hot_standby = on
primary_conninfo = 'host=$PGDATA port=$PG_PORT user=$PG_USER application_name=$SB_NAME'
primary_slot_name = '$SB_NAME'
wal_retrieve_retry_interval = 500ms
shared_preload_libraries = 'kvserver'
kvserver.listen_addresses = '127.0.0.1'
kvserver.port = $SB_KV_PORT
kvserver.database = 'postgres'
kvserver.cache_size = '$MAIN_CACHE'
kvserver.anonymous_role = '$ANON_ROLE'
EOF
	chown "$PG_USER:$PG_USER" "$SBDATA/bench.conf"
	"${REPORT[@]}" note "$META" "standby=pg_basebackup, streaming, slot, hot_standby = on, cache $MAIN_CACHE"
}

standby_start() {
	say "starting the standby"
	SB_STARTED=yes
	as_pg "$PGBIN/pg_ctl" -D "$SBDATA" -l "$SBDATA/server.log" -w -t 120 start >/dev/null ||
		{ tail -n 30 "$SBDATA/server.log"; die "the standby did not start"; }
	wait_http "$(url_of kvserver_standby)/health" 60 200 || die "the standby's kvserver /health is not 200"
	SB_WORKER_PID=$(worker_pid kvserver_standby)
	wait_streaming
}

standby_stop() {
	say "stopping the standby"
	as_pg "$PGBIN/pg_ctl" -D "$SBDATA" -m fast -w -t 120 stop >/dev/null
	SB_STARTED=no
	SB_WORKER_PID=
}

# Until the primary's walsender reports the standby caught up ("streaming"),
# and with sync_state = $1 if given (sync, async).
wait_streaming() {
	local want=${1:-} row=
	for _ in $(seq 1 600); do
		row=$(psql_q "SELECT state || ' ' || sync_state FROM pg_stat_replication WHERE application_name = '$SB_NAME'")
		if [ "${row%% *}" = streaming ] && { [ -z "$want" ] || [ "${row#* }" = "$want" ]; }; then
			return 0
		fi
		sleep 0.1
	done
	die "the standby is not streaming${want:+ as $want} after 60 s (pg_stat_replication: '${row:-no row}')"
}

# The primary's replication settings (ALTER SYSTEM + reload; the kvserver
# worker rereads its configuration as soon as it is signalled):
#   none          the standby stopped (its slot keeps the WAL for it)
#   async         the standby streaming, nobody waits for it
#   sync          synchronous_standby_names = SB_NAME, synchronous_commit = on
#   remote_apply  the same with synchronous_commit = remote_apply
# Commits never wait for a stopped standby: it is stopped only once the
# settings are asynchronous again.
repl_mode() {
	local names='' commit=on sync=async got=''
	case $1 in
	sync) names=$SB_NAME sync=sync ;;
	remote_apply) names=$SB_NAME commit=remote_apply sync=sync ;;
	esac
	say "replication: $1"
	psql_q "ALTER SYSTEM SET synchronous_standby_names = '$names'" >/dev/null
	psql_q "ALTER SYSTEM SET synchronous_commit = '$commit'" >/dev/null
	psql_q "SELECT pg_reload_conf()" >/dev/null
	for _ in $(seq 1 100); do
		got=$(psql_q "SELECT current_setting('synchronous_standby_names') || '/' || current_setting('synchronous_commit')")
		[ "$got" = "$names/$commit" ] && break
		sleep 0.1
	done
	[ "$got" = "$names/$commit" ] || die "the reload did not take: '$got', not '$names/$commit'"
	sleep 0.3 # the worker rereads its configuration when signalled; give it the time
	if [ "$1" = none ]; then
		[ "$SB_STARTED" = no ] || standby_stop
		return 0
	fi
	[ "$SB_STARTED" = yes ] || standby_start
	wait_streaming "$sync"
	if [ "$1" = remote_apply ]; then
		# remote_apply: a PUT's answer means the standby has replayed it, so
		# the standby answers the new value at once
		local v
		v=apply-$RANDOM$RANDOM
		curl -s -o /dev/null -X PUT --data-binary "$v" "$(url_of kvserver)/kv/applycheck"
		got=$(curl -s "$(url_of kvserver_standby)/kv/applycheck")
		if [ "$got" = "$v" ]; then
			"${REPORT[@]}" note "$META" "standby_apply_check=ok"
		else
			say "WARNING: with remote_apply, the standby answered '$got' right after the PUT of '$v'"
			"${REPORT[@]}" note "$META" "standby_apply_check=the standby answered '$got' right after the PUT of '$v' (remote_apply)"
		fi
	fi
}

# Reads on the standby answer the primary's data, writes there answer 503, a
# PUT on the primary reaches it, and its cache serves the hit keys (X-Cache: HIT).
standby_sanity() {
	local kv sb got v i
	kv=$(url_of kvserver)
	sb=$(url_of kvserver_standby)
	got=$(curl -s "$sb/health")
	case $got in *'"role":"standby"'* | *'"role": "standby"'*) ;; *) die "the standby's /health answered '$got'" ;; esac
	got=$(curl -s "$sb/kv/h1")
	[ "$got" = "$VALUE" ] || die "the standby's GET /kv/h1 answered '$got'"
	got=$(curl -s -o /dev/null -w '%{http_code}' -X PUT --data-binary "$VALUE" "$sb/kv/sanity")
	[ "$got" = 503 ] || die "a PUT on the standby answered $got, not 503"
	v=sanity-$RANDOM$RANDOM
	got=$(curl -s -o /dev/null -w '%{http_code}' -X PUT --data-binary "$v" "$kv/kv/sanity")
	case $got in 200 | 201) ;; *) die "kvserver PUT /kv/sanity answered $got" ;; esac
	for i in $(seq 1 100); do
		[ "$(curl -s "$sb/kv/sanity")" = "$v" ] && break
		[ "$i" -lt 100 ] || die "the standby did not serve a PUT of the primary within 10 s"
		sleep 0.1
	done
	warm_hit_keys kvserver_standby
	for i in $(seq 1 50); do
		curl -s -D - -o /dev/null "$sb/kv/h1" | grep -qi '^X-Cache: HIT' && break
		[ "$i" -lt 50 ] || die "GET /kv/h1 on the standby is not X-Cache: HIT after warming"
		sleep 0.1
	done
	say "standby sanity: /health role standby, GET 200 (X-Cache: HIT after warming), PUT 503, the primary's PUT replayed"
}

# GET hit on the standby against the primary, interleaved, c16 and c64.
standby_get_hit() {
	local conns t r
	warm_hit_keys kvserver
	for conns in 16 64; do
		for t in kvserver kvserver_standby; do
			wrk_run standby_get_hit "GET hit, primary vs standby" "$t" "$conns" warm get uniform h "$HIT_KEYS"
		done
		for r in $(seq 1 "$ROUNDS"); do
			for t in kvserver kvserver_standby; do
				wrk_run standby_get_hit "GET hit, primary vs standby" "$t" "$conns" "$r" get uniform h "$HIT_KEYS"
			done
		done
	done
}

put_label() {
	case $1 in
	none) echo "PUT overwrite, no standby" ;; # (standby stopped)
	async) echo "PUT overwrite, standby async" ;;
	sync) echo "PUT overwrite, standby sync (on)" ;;
	remote_apply) echo "PUT overwrite, standby sync (remote_apply)" ;;
	with_record) echo "with the WAL record" ;;
	without_record) echo "record compiled out" ;;
	esac
}

# The primary's PUT overwrite (wrk c64, as the put workload) with each
# STANDBY_PUT_CONFIGS in turn, interleaved per round, each after a warm-up.
standby_put() {
	local r c
	for r in $(seq 1 "$ROUNDS"); do
		for c in $STANDBY_PUT_CONFIGS; do
			repl_mode "$c"
			RUN_VARIANT=$c
			wrk_run standby_put "$(put_label "$c")" kvserver 64 warm put_over uniform o "$OVER_KEYS"
			wrk_run standby_put "$(put_label "$c")" kvserver 64 "$r" put_over uniform o "$OVER_KEYS"
			RUN_VARIANT=
		done
	done
	repl_mode async
}

# kvserver.so twice, from a scratch copy of the checkout (its objects
# included, with their times, so that make rebuilds only what is out of
# date): as it is (with_record: what make install installed, unless
# SKIP_BUILD=1 and the checkout changed since) and with
# -DKVSERVER_BENCH_NO_STANDBY_RECORDS (without_record: the pre-commit WAL
# record writer is a no-op; a benchmark-only switch, see src/pg/rmgr.c).
# Only rmgr.o differs between the two.
build_variants() {
	local src=$RUN/variant/src log=$OUT/logs/variant-build.log
	say "building kvserver.so in a scratch copy: as is, and with -DKVSERVER_BENCH_NO_STANDBY_RECORDS"
	mkdir -p "$src"
	# (not the data directories of tests or run-local.sh, which may be live;
	# tar's exit code 1 is "a file changed as we read it")
	{ tar -C "$ROOT" --exclude=./.git --exclude=./bench/out --exclude='tmp_check*' --exclude=./.cluster \
		--exclude=node_modules -cf - . || [ $? -eq 1 ]; } | tar -C "$src" -xf -
	make -C "$src" -j"$(nproc)" "PG_CONFIG=$PG_CONFIG" >"$log" 2>&1 ||
		{ tail -n 40 "$log"; die "the scratch build failed (see $log)"; }
	cp "$src/kvserver.so" "$RUN/variant/kvserver.so.with_record"
	# (PGXS's .SECONDARY: a missing object alone does not make make relink)
	rm -f "$src/src/pg/rmgr.o" "$src/src/pg/rmgr.bc" "$src/kvserver.so"
	touch "$src/src/pg/rmgr.c"
	make -C "$src" -j"$(nproc)" "PG_CONFIG=$PG_CONFIG" COPT=-DKVSERVER_BENCH_NO_STANDBY_RECORDS >>"$log" 2>&1 ||
		{ tail -n 40 "$log"; die "the scratch build without the WAL record failed (see $log)"; }
	cp "$src/kvserver.so" "$RUN/variant/kvserver.so.without_record"
	! cmp -s "$RUN/variant/kvserver.so.with_record" "$RUN/variant/kvserver.so.without_record" ||
		die "the builds with and without -DKVSERVER_BENCH_NO_STANDBY_RECORDS are identical"
}

# How many kvserver WAL records (resource manager 142, "custom142" to
# pg_waldump) one HTTP PUT on the primary wrote.
put_wal_records() {
	local lsn0 lsn1 code
	lsn0=$(psql_q "SELECT pg_current_wal_insert_lsn()")
	code=$(curl -s -o /dev/null -w '%{http_code}' -X PUT --data-binary "$VALUE" "$(url_of kvserver)/kv/walcheck")
	case $code in 200 | 201) ;; *) die "kvserver PUT /kv/walcheck answered $code" ;; esac
	lsn1=$(psql_q "SELECT pg_current_wal_flush_lsn()")
	as_pg "$PGBIN/pg_waldump" -p "$PGDATA/pg_wal" -s "$lsn0" -e "$lsn1" 2>/dev/null | grep -c 'custom142' || true
}

# PUT overwrite with the record (A) and without (B), A B A B, each run after
# a restart of the primary with that kvserver.so in pkglibdir, for each of
# STANDBY_RECORD_CONFIGS per round: none (the standby stopped: the primary's
# own cost; the record is written all the same) and async (the standby
# streaming, and replaying on the same cores).  The kvserver.so installed
# before is put back at the end (and by cleanup() on failure).
standby_record_cost() {
	local r c b n
	build_variants
	PKGLIB=$("$PG_CONFIG" --pkglibdir)
	SO_ORIG=$RUN/variant/kvserver.so.orig
	cp -p "$PKGLIB/kvserver.so" "$SO_ORIG"
	for r in $(seq 1 "$ROUNDS"); do
		for c in $STANDBY_RECORD_CONFIGS; do
			repl_mode "$c"
			for b in with_record without_record; do
				pg_stop
				SO_SWAPPED=yes
				so_install "$RUN/variant/kvserver.so.$b" || die "could not install $b into $PKGLIB"
				pg_start "$MAIN_CACHE"
				[ "$c" = none ] || wait_streaming async
				n=$(put_wal_records)
				say "build $b: one PUT wrote $n kvserver WAL record(s)"
				case $b:$n in
				with_record:0 | without_record:[1-9]*) die "build $b: one PUT wrote $n kvserver WAL records" ;;
				esac
				RUN_VARIANT=$c-$b
				wrk_run standby_record "$(put_label "$c"), $(put_label "$b")" kvserver 64 warm put_over uniform o "$OVER_KEYS"
				wrk_run standby_record "$(put_label "$c"), $(put_label "$b")" kvserver 64 "$r" put_over uniform o "$OVER_KEYS"
				RUN_VARIANT=
			done
		done
	done
	pg_stop
	so_install "$SO_ORIG" || die "could not restore $PKGLIB/kvserver.so"
	SO_SWAPPED=no
	say "restored the kvserver.so installed before"
	pg_start "$MAIN_CACHE"
	repl_mode async
	n=$(put_wal_records)
	[ "$n" -ge 1 ] || die "after restoring kvserver.so, a PUT wrote no kvserver WAL record"
}

# The staleness probe: PUT a new value of one key on the primary, then GET
# it from the standby (keep-alive, every 0.5 ms) until the standby answers
# that value; the delay from the PUT's answer to the first GET that returns
# it is one sample (it includes that GET's own round trip).  STALE_GAP_MS
# between samples; a sample gives up after 10 s (a timeout).  Meanwhile a
# second thread reads the standby's /health every 100 ms (replay_lag_seconds).
# Writes a JSON summary with every delay.
cat >"$RUN/probe.py" <<'EOF'
import http.client, json, sys, threading, time
p_port, s_port, key, secs = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], float(sys.argv[4])
max_samples, gap, out, phase = int(sys.argv[5]), float(sys.argv[6]) / 1000.0, sys.argv[7], sys.argv[8]
POLL, GIVE_UP = 0.0005, 10.0


class Client:
    def __init__(self, port):
        self.port, self.c = port, None

    def req(self, method, path, body=None):
        for attempt in (1, 2):
            try:
                if self.c is None:
                    self.c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
                hdr = {"Content-Type": "application/octet-stream"} if body is not None else {}
                self.c.request(method, path, body=body, headers=hdr)
                r = self.c.getresponse()
                data = r.read()
                if r.will_close:
                    self.c.close()
                    self.c = None
                return r.status, data, r.getheader("X-Cache")
            except (OSError, http.client.HTTPException):
                if self.c is not None:
                    self.c.close()
                self.c = None
                if attempt == 2:
                    raise


lags, lag_nulls, health_errors = [], 0, 0
stop = threading.Event()


def health():
    global lag_nulls, health_errors
    c = Client(s_port)
    while not stop.is_set():
        try:
            st, data, _ = c.req("GET", "/health")
            v = json.loads(data).get("replay_lag_seconds") if st == 200 else None
            if v is None:
                lag_nulls += 1
            else:
                lags.append(float(v))
        except (OSError, http.client.HTTPException, ValueError):
            health_errors += 1
        stop.wait(0.1)


th = threading.Thread(target=health, daemon=True)
th.start()
prim, stby = Client(p_port), Client(s_port)
delays, put_ms, first_read_fresh, polls, stale_reads = [], [], 0, 0, 0
put_errors, get_other, xcache, errors, timeouts = {}, {}, {}, 0, 0
start = time.monotonic()
deadline = start + secs
i = 0
while time.monotonic() < deadline and len(delays) + timeouts < max_samples:
    i += 1
    val = ("%s-%d-%d" % (phase, i, time.time_ns())).encode()
    try:
        t0 = time.monotonic()
        st, _, _ = prim.req("PUT", "/kv/" + key, val)
        t1 = time.monotonic()
        if st not in (200, 201, 204):
            put_errors[str(st)] = put_errors.get(str(st), 0) + 1
            time.sleep(gap)
            continue
        put_ms.append((t1 - t0) * 1000.0)
        n = 0
        while True:
            st, data, xc = stby.req("GET", "/kv/" + key)
            now = time.monotonic()
            n += 1
            if st == 200 and data == val:
                delays.append((now - t1) * 1000.0)
                xcache[str(xc)] = xcache.get(str(xc), 0) + 1
                if n == 1:
                    first_read_fresh += 1
                break
            if st in (200, 404):
                stale_reads += 1  # the previous value, or none yet
            else:
                get_other[str(st)] = get_other.get(str(st), 0) + 1
            if now - t1 > GIVE_UP:
                timeouts += 1
                break
            time.sleep(POLL)
        polls += n
    except (OSError, http.client.HTTPException):
        errors += 1
    time.sleep(gap)
elapsed = time.monotonic() - start
stop.set()
th.join(2)


def pct(v, p):
    v = sorted(v)
    return round(v[min(len(v) - 1, max(0, -(-len(v) * p // 100) - 1))], 3) if v else None


res = {"phase": phase, "key": key, "seconds": round(elapsed, 3), "samples": len(delays),
       "timeouts": timeouts, "errors": errors, "put_errors": put_errors, "get_other": get_other,
       "delays_ms": [round(d, 3) for d in delays], "put_p50_ms": pct(put_ms, 50),
       "put_p99_ms": pct(put_ms, 99), "first_read_fresh": first_read_fresh, "polls": polls,
       "stale_reads": stale_reads, "xcache": xcache, "poll_ms": POLL * 1000.0,
       "lags_s": [round(x, 6) for x in lags], "lag_nulls": lag_nulls,
       "health_errors": health_errors,
       "delay_p50_ms": pct(delays, 50), "delay_p99_ms": pct(delays, 99)}
with open(out, "w") as f:
    json.dump(res, f, sort_keys=True)
print("%s: %d samples, p50 %s ms, p99 %s ms, %d timeouts; /health replay_lag p50 %s s, p99 %s s (%d reads)" % (
    phase, len(delays), pct(delays, 50), pct(delays, 99), timeouts, pct(lags, 50), pct(lags, 99), len(lags)))
EOF

# Staleness: the probe alone (STALE_IDLE_SAMPLES samples, at most 60 s), then
# in each round for DURATION s alongside the PUT overwrite load (wrk c64) on
# the primary, the standby asynchronous.
PROBE_ID=
probe_start() { # phase round seconds max_samples
	PROBE_ID=standby_stale_$1_r$2
	rm -f "$OUT/raw/$PROBE_ID.probe.json"
	timeout $(($3 + 30)) "$PY" "$RUN/probe.py" "$KV_PORT" "$SB_KV_PORT" "stale_$1" "$3" "$4" \
		"$STALE_GAP_MS" "$OUT/raw/$PROBE_ID.probe.json" "$1" >"$OUT/raw/$PROBE_ID.probe.txt" 2>&1 &
	PROBE=$!
}
probe_wait() { # round
	local rc=0
	wait "$PROBE" || rc=$?
	PROBE=
	[ "$rc" -eq 0 ] || say "the probe exited with $rc (see $OUT/raw/$PROBE_ID.probe.txt)"
	"${REPORT[@]}" probe "$STALE" "$OUT/raw/$PROBE_ID.probe.json" "round=$1" "gap_ms=$STALE_GAP_MS"
}

standby_staleness() {
	local r
	repl_mode async
	if [ "$STALE_IDLE_SAMPLES" -gt 0 ]; then
		say "staleness probe, no other load ($STALE_IDLE_SAMPLES samples)"
		probe_start idle 1 60 "$STALE_IDLE_SAMPLES"
		probe_wait 1
	fi
	wrk_run standby_stale "PUT overwrite + staleness probe, standby async" kvserver 64 warm put_over uniform o "$OVER_KEYS"
	for r in $(seq 1 "$ROUNDS"); do
		say "staleness probe alongside PUT overwrite c64, round $r"
		probe_start load "$r" "$DURATION" 1000000
		wrk_run standby_stale "PUT overwrite + staleness probe, standby async" kvserver 64 "$r" put_over uniform o "$OVER_KEYS"
		probe_wait "$r"
	done
}

workload_standby() {
	standby_get_hit
	standby_put
	standby_record_cost
	standby_staleness
}

# The hot standby, the standby and slow_commit workloads, then its removal.
standby_phase() {
	SNAP_CLUSTERS=1
	standby_create
	standby_start
	repl_mode async
	standby_sanity
	if wants standby; then workload_standby; fi
	if wants slow_commit; then workload_slow_commit; fi
	standby_stop
	psql_q "ALTER SYSTEM RESET synchronous_standby_names" >/dev/null
	psql_q "ALTER SYSTEM RESET synchronous_commit" >/dev/null
	psql_q "SELECT pg_reload_conf()" >/dev/null
	psql_q "SELECT pg_drop_replication_slot('$SB_NAME')" >/dev/null
	SNAP_CLUSTERS=
	# Anything alarming the standby logged, but its replication connection
	# ending when the primary restarts (the WAL record runs) and its own stops.
	grep -E 'ERROR|WARNING|FATAL|PANIC|terminated by signal' "$SBDATA/server.log" |
		grep -vE 'terminating background worker "kvserver( executor)?" due to administrator command|terminating walreceiver process due to administrator command|could not connect to the primary server|could not send end-of-streaming message to primary|could not receive data from WAL stream' |
		sed -E 's/^[0-9-]+ [0-9:.]+ [A-Z]+ \[[0-9]+\] //' |
		sort | uniq -c | sort -rn | head -n 20 >"$OUT/logs/postgresql-standby-problems.txt" || true
	if [ -s "$OUT/logs/postgresql-standby-problems.txt" ]; then
		say "the standby's log has errors/warnings (bench/out/logs/postgresql-standby-problems.txt):"
		cat "$OUT/logs/postgresql-standby-problems.txt"
	fi
}

# --- density: the cache's overhead per entry ------------------------------------
# DENSITY_KEYS keys of 10 to 20 bytes ('d' and 9 to 19 digits), 16-byte
# values, loaded into an emptied cache through kv_get(); kv_stats() then
# says what an entry costs beyond its key and value bytes.  The rows are
# deleted afterwards and the cache emptied again.
workload_density() {
	local row
	say "density: $DENSITY_KEYS keys of 10-20 bytes with 16-byte values into an empty cache"
	psql_q "INSERT INTO kv_store(key, value)
		SELECT 'd' || lpad(g::text, 9 + g % 11, '0'), '\\x$VALUE_HEX'::bytea
		FROM generate_series(1, $DENSITY_KEYS) g ON CONFLICT (key) DO NOTHING" >/dev/null
	cache_reset
	psql_q "SELECT count(kv_get_bytea(key)) FROM kv_store WHERE key LIKE 'd%'" >/dev/null
	row=$(psql_q "SELECT s.entries, round(s.overhead_bytes_per_entry::numeric, 1), s.used_bytes,
			s.capacity_bytes, (SELECT round(avg(octet_length(key)), 1) FROM kv_store WHERE key LIKE 'd%')
		FROM kv_stats() s")
	IFS='|' read -r d_entries d_overhead d_used d_cap d_keylen <<<"$row"
	"${REPORT[@]}" note "$META" "density_keys=$DENSITY_KEYS" "density_entries=$d_entries" \
		"density_overhead=$d_overhead" "density_used_bytes=$d_used" "density_capacity_bytes=$d_cap" \
		"density_key_bytes=$d_keylen" "density_cache_size=$CUR_CACHE"
	say "density: $d_entries entries (keys $d_keylen bytes on average), overhead $d_overhead B/entry"
	mem_note "density fill ($DENSITY_KEYS keys)"
	psql_q "DELETE FROM kv_store WHERE key LIKE 'd%'" >/dev/null
	psql_q "VACUUM kv_store" >/dev/null
	cache_reset
}

# --- slow commit: a synchronous standby that applies SLOW_DELAY late ------------
# With synchronous_commit = remote_apply every commit waits about SLOW_DELAY.
# In each round: GET miss (MISS_KEYS keys, uniformly) and GET hit (the hit
# keys), SLOW_CONNS connections each, side by side without writes
# ("alone"), then the same alongside SLOW_CONNS PUT writers ("with_puts").
# The reads must not wait for the writes' commits.
SLOW_CONF="recovery_min_apply_delay = '$SLOW_DELAY' # bench slow_commit"
slow_group() { # round variant
	local pids=() pid rc=0
	RUN_VARIANT=$2
	SKIP_HITS=1
	wrk_run slow_miss "slow commit: GET miss, ${2/_/ }" kvserver "$SLOW_CONNS" "$1" get uniform m "$MISS_KEYS" &
	pids+=($!)
	wrk_run slow_hit "slow commit: GET hit, ${2/_/ }" kvserver "$SLOW_CONNS" "$1" get uniform h "$HIT_KEYS" &
	pids+=($!)
	if [ "$2" = with_puts ]; then
		wrk_run slow_put "slow commit: PUT overwrite, ${2/_/ }" kvserver "$SLOW_CONNS" "$1" put_over uniform o "$OVER_KEYS" &
		pids+=($!)
	fi
	SLOW_PIDS=("${pids[@]}")
	for pid in "${pids[@]}"; do wait "$pid" || rc=$?; done
	SLOW_PIDS=()
	SKIP_HITS=
	RUN_VARIANT=
	[ "$rc" -eq 0 ] || say "a slow-commit client exited with $rc"
}

workload_slow_commit() {
	local r got t0 code
	repl_mode async
	say "slow commit: the standby applies $SLOW_DELAY late (recovery_min_apply_delay)"
	echo "$SLOW_CONF" >>"$SBDATA/bench.conf"
	as_pg "$PGBIN/pg_ctl" -D "$SBDATA" reload >/dev/null
	for _ in $(seq 1 100); do
		got=$(psql_sb "SELECT setting || unit FROM pg_settings WHERE name = 'recovery_min_apply_delay'")
		[ "$got" != 0ms ] && break
		sleep 0.1
	done
	[ "$got" != 0ms ] || die "the standby did not take recovery_min_apply_delay = $SLOW_DELAY"
	repl_mode remote_apply
	t0=$(date +%s%N)
	code=$(curl -s -o /dev/null -w '%{http_code}' -X PUT --data-binary "$VALUE" "$(url_of kvserver)/kv/slowcheck")
	"${REPORT[@]}" note "$META" "slow_delay=$SLOW_DELAY" "slow_conns=$SLOW_CONNS" \
		"slow_check_put_ms=$((($(date +%s%N) - t0) / 1000000))" "slow_check_put_status=$code"
	say "slow commit: recovery_min_apply_delay = $got on the standby; one PUT took $((($(date +%s%N) - t0) / 1000000)) ms ($code)"
	warm_hit_keys kvserver
	for r in $(seq 1 "$ROUNDS"); do
		slow_group "$r" alone
		slow_group "$r" with_puts
	done
	repl_mode async
	sed -i "/# bench slow_commit\$/d" "$SBDATA/bench.conf"
	as_pg "$PGBIN/pg_ctl" -D "$SBDATA" reload >/dev/null
}

# Phase 1 (SMALL_CACHE): load, GET miss, mixed.  Phase 2 (MID_CACHE): mixed.
# Phase 3 (MAIN_CACHE, the longest-lived worker): RSS before, GET hit, PUT,
# mixed, RSS after.
loaded=no
if wants get_miss || wants mixed; then
	pg_start "$SMALL_CACHE"
	load_data
	loaded=yes
	wants get_miss && workload_get_miss
	wants mixed && workload_mixed
	if wants mixed; then
		pg_stop
		pg_start "$MID_CACHE"
		workload_mixed
	fi
	pg_stop
fi
pg_start "$MAIN_CACHE"
[ "$loaded" = yes ] || load_data
mem_note "fresh worker (before)"
sanity_checks
if wants get_hit_auth || wants auth_flood; then auth_sanity; fi
if wants get_hit || wants put || wants get_hit_auth || wants auth_flood || wants standby || wants slow_commit; then
	warm_hit_keys
	mem_note "after loading $HIT_KEYS keys"
fi
if wants get_hit; then
	workload_get_hit
	mem_note "after GET hit"
fi
if wants get_hit_auth; then
	workload_get_hit_auth
	mem_note "after GET hit, auth"
fi
if wants auth_flood; then
	workload_auth_flood
	mem_note "after auth flood"
fi
if wants put; then
	workload_put
	mem_note "after PUT"
fi
wants density && workload_density
if wants standby || wants slow_commit; then
	standby_phase
	mem_note "after the standby (a new worker)"
fi
wants mixed && workload_mixed
mem_note "end of run (after)"
pg_stop
# Anything alarming the server logged, besides the worker's normal shutdown.
# (standby workload: pg_basebackup meets the Unix socket in the data directory,
# and the standby tries to connect while the primary restarts)
grep -E 'ERROR|WARNING|FATAL|PANIC|terminated by signal' "$PGDATA/server.log" |
	grep -vE 'terminating background worker "kvserver( executor)?" due to administrator command' |
	grep -vE 'WARNING:  skipping special file "./.s.PGSQL.|FATAL:  the database system is starting up' |
	sort | uniq -c | sort -rn | head -n 20 >"$OUT/logs/postgresql-problems.txt" || true
# Each failed HTTP login is one LOG line: they should match the attackers' 401s.
fails=$(grep -c 'HTTP password authentication failed' "$PGDATA/server.log" || true)
tfails=$(grep -c 'HTTP token authentication failed' "$PGDATA/server.log" || true)
"${REPORT[@]}" note "$META" "log_password_failures=$fails" "log_token_failures=$tfails"
say "PostgreSQL log: $fails failed HTTP password logins, $tfails failed token logins"
if [ -s "$OUT/logs/postgresql-problems.txt" ]; then
	say "PostgreSQL log has errors/warnings (bench/out/logs/postgresql-problems.txt):"
	cat "$OUT/logs/postgresql-problems.txt"
fi

# --- 4. report ---------------------------------------------------------------------
"${REPORT[@]}" final "$OUT"
say "done in $(($(date +%s) - START_TS)) s"
