#!/usr/bin/env bash
# Build, install and run kvserver in a local PostgreSQL 15 cluster, in the foreground.
#
#   ./scripts/run-local.sh            (as root; Ctrl-C or SIGTERM stops the cluster)
#
# 1. scripts/deps.sh run (only what building and running need), make,
#    make install (as root)
# 2. a cluster in <checkout>/.cluster owned by postgres (created once, then reused);
#    if postgres cannot reach the checkout, in /var/tmp/kvserver-cluster-<hash>
# 3. shared_preload_libraries = 'kvserver', SQL only on the Unix socket in the
#    cluster directory, HTTP on 127.0.0.1:$KV_HTTP_PORT
# 4. pg_ctl start, CREATE EXTENSION IF NOT EXISTS kvserver, print how to connect,
#    follow the server log until Ctrl-C/SIGTERM, then pg_ctl stop -m fast.
#
# 5. HTTP requests without credentials run as the NOLOGIN role kv_anonymous,
#    which may read and write kv_store (kvserver.anonymous_role): the quick
#    start works with plain curl.  KV_ANONYMOUS_ROLE= (empty) turns that off,
#    so that every request needs a role's password or a token.
#
# Environment: KV_HTTP_PORT (8080), KV_PG_PORT (5440), KV_ANONYMOUS_ROLE (kv_anonymous).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
PGBIN=/usr/lib/postgresql/15/bin
PG_CONFIG=$PGBIN/pg_config
HTTP_PORT=${KV_HTTP_PORT:-8080}
PG_PORT=${KV_PG_PORT:-5440}
PG_USER=postgres
ANON_ROLE=${KV_ANONYMOUS_ROLE-kv_anonymous}

say() { printf '==> %s\n' "$*"; }
die() { printf 'run-local.sh: error: %s\n' "$*" >&2; exit 1; }
as_pg() { runuser -u "$PG_USER" -- "$@"; }

case $HTTP_PORT in '' | *[!0-9]*) die "KV_HTTP_PORT must be a number, got '$HTTP_PORT'" ;; esac
case $PG_PORT in '' | *[!0-9]*) die "KV_PG_PORT must be a number, got '$PG_PORT'" ;; esac
case $ANON_ROLE in *[!a-z0-9_]*) die "KV_ANONYMOUS_ROLE must be a plain lower-case role name, got '$ANON_ROLE'" ;; esac

if [ "$(id -u)" -ne 0 ]; then
	die "run this as root (it installs packages and the extension, and runs the cluster as '$PG_USER')"
fi

say "checking packages (scripts/deps.sh run)"
"$ROOT/scripts/deps.sh" run </dev/null
id "$PG_USER" >/dev/null 2>&1 || die "user '$PG_USER' does not exist (it comes with postgresql-15)"

say "building in $ROOT: make"
make -C "$ROOT" -j"$(nproc)" "PG_CONFIG=$PG_CONFIG" </dev/null
say "installing: make install"
make -C "$ROOT" install "PG_CONFIG=$PG_CONFIG" </dev/null

# Everything below runs (partly as postgres) from /, which postgres can always enter.
cd /

# --- choose the cluster directory -----------------------------------------------
# Usable when: the path is plain (it goes into postgresql.conf), the socket path
# fits in sun_path (107 bytes), and postgres can write there.
usable_cluster_dir() {
	local dir=$1
	case $dir in *[!A-Za-z0-9._/+-]*) return 1 ;; esac
	[ "${#dir}" -le $((107 - ${#PG_PORT} - 10)) ] || return 1 # "/.s.PGSQL.<port>"
	as_pg test -d "$dir" && as_pg test -w "$dir" && as_pg test -x "$dir"
}

# Create $1 (if needed) owned by postgres, mode 700; fail if it belongs to someone else.
prepare_dir() {
	local dir=$1 owner
	if [ ! -e "$dir" ]; then
		mkdir -m 700 "$dir" 2>/dev/null || return 1
		chown "$PG_USER:$PG_USER" "$dir" || return 1
	fi
	[ -d "$dir" ] && [ ! -L "$dir" ] || return 1
	owner=$(stat -c %U "$dir")
	if [ "$owner" != "$PG_USER" ]; then
		# our own leftover from a root-only step: hand it over; anyone else's: refuse
		[ "$owner" = root ] || return 1
		chown "$PG_USER:$PG_USER" "$dir" || return 1
	fi
}

CLUSTER=$ROOT/.cluster
created_here=no
[ -e "$CLUSTER" ] || created_here=yes
if as_pg test -x "$ROOT" && prepare_dir "$CLUSTER" && usable_cluster_dir "$CLUSTER"; then
	:
else
	if [ "$created_here" = yes ] && [ -d "$CLUSTER" ]; then
		rmdir "$CLUSTER" 2>/dev/null || true
	fi
	hash=$(printf '%s' "$ROOT" | sha256sum | cut -c1-12)
	fallback=/var/tmp/kvserver-cluster-$hash
	say "NOTE: user '$PG_USER' cannot use $CLUSTER (it cannot reach or write the"
	say "      checkout, or the path is unsuitable for a socket); using $fallback instead"
	CLUSTER=$fallback
	prepare_dir "$CLUSTER" || die "cannot prepare $CLUSTER (does it belong to another user?)"
	usable_cluster_dir "$CLUSTER" || die "user '$PG_USER' cannot use $CLUSTER"
fi
LOGFILE=$CLUSTER/server.log

# --- create or reuse the cluster ----------------------------------------------------
if [ -f "$CLUSTER/PG_VERSION" ]; then
	version=$(cat "$CLUSTER/PG_VERSION")
	[ "$version" = 15 ] || die "$CLUSTER holds a PostgreSQL $version cluster, not 15; remove it"
	say "reusing the cluster in $CLUSTER"
else
	say "creating a new cluster in $CLUSTER (initdb as $PG_USER)"
	as_pg "$PGBIN/initdb" -D "$CLUSTER" -U "$PG_USER" -E UTF8 --locale=C.UTF-8 \
		--auth-local=trust --auth-host=scram-sha-256 </dev/null
fi

if as_pg "$PGBIN/pg_ctl" -D "$CLUSTER" status >/dev/null 2>&1; then
	die "the cluster in $CLUSTER is already running (another run-local.sh?); stop it with:
  runuser -u $PG_USER -- $PGBIN/pg_ctl -D $CLUSTER stop -m fast"
fi

# Settings live in their own file, rewritten every run so the KV_* overrides apply.
say "writing $CLUSTER/kvserver-local.conf"
cat >"$CLUSTER/kvserver-local.conf" <<EOF
# Written by scripts/run-local.sh on every start; edit postgresql.conf for anything else.
shared_preload_libraries = 'kvserver'
port = $PG_PORT
listen_addresses = ''
unix_socket_directories = '$CLUSTER'
kvserver.port = $HTTP_PORT
kvserver.database = 'postgres'
kvserver.anonymous_role = '$ANON_ROLE'
EOF
chown "$PG_USER:$PG_USER" "$CLUSTER/kvserver-local.conf"
chmod 600 "$CLUSTER/kvserver-local.conf"
if ! grep -q "^include_if_exists = 'kvserver-local.conf'" "$CLUSTER/postgresql.conf"; then
	printf "\n# added by scripts/run-local.sh\ninclude_if_exists = 'kvserver-local.conf'\n" \
		>>"$CLUSTER/postgresql.conf"
fi

# --- run ----------------------------------------------------------------------------
started=no
tail_pid=
stop_cluster() {
	trap - INT TERM EXIT
	if [ -n "$tail_pid" ]; then
		kill "$tail_pid" 2>/dev/null || true
		wait "$tail_pid" 2>/dev/null || true
	fi
	if [ "$started" = yes ]; then
		printf '\n'
		say "stopping the cluster (pg_ctl stop -m fast)"
		as_pg "$PGBIN/pg_ctl" -D "$CLUSTER" -m fast -w stop </dev/null || true
	fi
}
# Ctrl-C / SIGTERM is the normal way to stop: clean shutdown, exit 0.
trap 'stop_cluster; exit 0' INT TERM
on_exit() {
	local rc=$?
	stop_cluster
	exit "$rc"
}
trap on_exit EXIT

say "starting PostgreSQL 15 (log: $LOGFILE)"
log_offset=0
[ -f "$LOGFILE" ] && log_offset=$(stat -c %s "$LOGFILE")
started=yes
if ! as_pg "$PGBIN/pg_ctl" -D "$CLUSTER" -l "$LOGFILE" -w -t 60 start </dev/null; then
	started=no
	printf '\n----- tail of %s -----\n' "$LOGFILE"
	tail -n 40 "$LOGFILE" 2>/dev/null || true
	die "the server did not start"
fi
pm_pid=$(head -n 1 "$CLUSTER/postmaster.pid")

say "CREATE EXTENSION IF NOT EXISTS kvserver (database postgres)"
as_pg "$PGBIN/psql" -h "$CLUSTER" -p "$PG_PORT" -U "$PG_USER" -d postgres -X -q \
	-v ON_ERROR_STOP=1 -c 'CREATE EXTENSION IF NOT EXISTS kvserver' </dev/null
if [ -n "$ANON_ROLE" ]; then
	say "anonymous HTTP requests run as role $ANON_ROLE (NOLOGIN; may read and write kv_store)"
	as_pg "$PGBIN/psql" -h "$CLUSTER" -p "$PG_PORT" -U "$PG_USER" -d postgres -X -q \
		-v ON_ERROR_STOP=1 <<EOF
SET client_min_messages = warning;
DO \$\$ BEGIN
	IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$ANON_ROLE') THEN
		CREATE ROLE $ANON_ROLE NOLOGIN;
	END IF;
END \$\$;
GRANT SELECT, INSERT, UPDATE, DELETE ON kv_store TO $ANON_ROLE;
GRANT USAGE ON SEQUENCE kv_store_version_seq TO $ANON_ROLE;
EOF
fi

URL=http://127.0.0.1:$HTTP_PORT
say "waiting for $URL/health"
code=000
for _ in $(seq 1 40); do
	code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$URL/health" || true)
	[ "$code" = 200 ] && break
	sleep 0.25
done
if [ "$code" = 200 ]; then
	say "health: $(curl -s --max-time 2 "$URL/health" || true)"
else
	say "WARNING: $URL/health answered '$code' (000 = no answer); see the log below"
fi

cat <<EOF

kvserver is running.
  HTTP:  $URL/          e.g.  curl -X PUT --data-binary hello $URL/kv/greeting
                                 curl -i $URL/kv/greeting
  SQL:   psql -h $CLUSTER -p $PG_PORT -U $PG_USER postgres
  auth:  requests without credentials run as ${ANON_ROLE:-nobody (they get 401)}; a role of your own:
           CREATE ROLE app LOGIN PASSWORD 'app-password';
           GRANT SELECT, INSERT, UPDATE, DELETE ON kv_store TO app;
           GRANT USAGE ON SEQUENCE kv_store_version_seq TO app;
         then  curl -u app:app-password $URL/kv/greeting
         or a token:  SET ROLE app; SELECT kv_token_create('1 day');
               curl -H "Authorization: Bearer <token>" $URL/kv/greeting
  data:  $CLUSTER   (log: $LOGFILE)
Following the server log; press Ctrl-C to stop the cluster.

EOF

# This run's part of the log; tail exits by itself if the postmaster dies.
tail -c +$((log_offset + 1)) --pid="$pm_pid" -f "$LOGFILE" &
tail_pid=$!
wait "$tail_pid" || true
tail_pid=
if ! kill -0 "$pm_pid" 2>/dev/null; then
	started=no
	die "the postmaster (pid $pm_pid) exited; see $LOGFILE"
fi
