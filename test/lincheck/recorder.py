#!/usr/bin/env python3
# Copyright (c) kvserver authors
"""Record a concurrent history against a running kvserver, for lincheck.py.

usage: recorder.py --http-port P --pg-host H --pg-port Q --out FILE [options]

Runs, for --duration seconds (default: $DURATION, else 12), on a small key
set, concurrently:
  * HTTP clients (threads): GET / PUT / DELETE /kv/{key}, keep-alive
  * SQL clients: each a long-running `psql -X -At -q` child fed through
    stdin/stdout pipes, one statement then `\\echo __done__` as sentinel:
    kv_get / kv_put / kv_delete
  * plain-SQL clients (same way): UPDATE kv_store SET value = convert_to(...)
    and, now and then, a plain SELECT of the row
Every written value is unique ("h3-17" = HTTP client 3, its 17th operation).
Invocation and completion times come from time.monotonic() in this one
process, so all clients share one clock; the call time is taken before the
request is sent and the return time after the whole answer was read, so
each interval contains the operation's real effect.

Outcomes: a write whose answer never came (connection reset, timeout, 5xx,
psql error) is "unknown"; a refused one (4xx, could not connect) is false;
a read with no answer is false (no information).

Writes the history (JSON lines, the format lincheck.py reads, plus "cache":
"HIT"/"MISS" on HTTP GETs and "via"; in completion order) to --out, and prints one line
"recorder summary: {json}" with counts.  Exit 0 unless the clients could not
run at all (e.g. psql did not start).
"""

import argparse
import http.client
import json
import os
import random
import subprocess
import sys
import threading
import time
import urllib.parse

now = time.monotonic


class History:
    """Operations are written to the history file as they complete (in
    completion order; lincheck.py does not care), and counted."""

    def __init__(self, path):
        self.lock = threading.Lock()
        self.f = open(path, "w")
        self.n = 0
        self.counts = {"unknown": 0, "failed": 0, "http_get_hit": 0, "http_get_miss": 0}
        self.by_kind = {}
        self.per_key = {}
        self.errors = []
        self.error_count = 0
        self.fatal = []

    def add(self, rec):
        line = json.dumps(rec, sort_keys=True) + "\n"
        kind = "%s:%s" % (rec["via"], rec["op"])
        with self.lock:
            self.f.write(line)
            self.n += 1
            self.by_kind[kind] = self.by_kind.get(kind, 0) + 1
            self.per_key[rec["key"]] = self.per_key.get(rec["key"], 0) + 1
            if rec["ok"] == "unknown":
                self.counts["unknown"] += 1
            elif rec["ok"] is False:
                self.counts["failed"] += 1
            cache = rec.get("cache")
            if cache == "HIT":
                self.counts["http_get_hit"] += 1
            elif cache == "MISS":
                self.counts["http_get_miss"] += 1

    def error(self, msg):
        with self.lock:
            self.error_count += 1
            if len(self.errors) < 50:
                self.errors.append(msg)

    def close(self):
        self.f.close()


def record(client, key, op, value, ok, call, ret, via, **extra):
    rec = {"client": client, "key": key, "op": op, "value": value, "ok": ok,
           "call": round(call, 7), "ret": None if ret is None else round(ret, 7),
           "via": via}
    rec.update(extra)
    return rec


def http_client(args, cid, keys, hist, stop_at, seed):
    rng = random.Random(seed)
    name = "h%d" % cid
    conn = None
    n = 0
    while now() < stop_at:
        n += 1
        key = rng.choice(keys)
        path = "/kv/" + urllib.parse.quote(key, safe="")
        r = rng.random()
        if r < args.http_get:
            method, body = "GET", None
        elif r < args.http_get + args.http_put:
            method, body = "PUT", "%s-%d" % (name, n)
        else:
            method, body = "DELETE", None
        headers = {"Content-Type": "text/plain"} if body is not None else {}
        if conn is None:
            conn = http.client.HTTPConnection(args.http_host, args.http_port,
                                              timeout=args.http_timeout)
            try:
                conn.connect()
            except OSError as e:
                hist.error("%s: connect: %s" % (name, e))
                conn = None
                time.sleep(0.05)
                continue
        call = now()
        status, data, cache, exc = None, None, None, None
        try:
            conn.request(method, path, body=body, headers=headers)
            resp = conn.getresponse()
            data = resp.read()
            status = resp.status
            cache = resp.getheader("X-Cache")
            if resp.will_close:
                conn.close()
                conn = None
        except (OSError, http.client.HTTPException) as e:
            exc = e
            try:
                conn.close()
            finally:
                conn = None
        ret = now()
        if exc is not None:
            hist.error("%s: %s %s: %r" % (name, method, key, exc))
        elif status >= 500 or status not in (200, 201, 204, 404):
            hist.error("%s: %s %s: HTTP %s %r" % (name, method, key, status, data[:200]))

        if method == "GET":
            if status == 200:
                try:
                    v = data.decode("utf-8")
                except UnicodeDecodeError:
                    v = "<non-utf8 %s>" % data.hex()
                hist.add(record(name, key, "get", v, True, call, ret, "http", cache=cache))
            elif status == 404:
                hist.add(record(name, key, "get", None, True, call, ret, "http", cache=cache))
            else:
                hist.add(record(name, key, "get", None, False, call, ret, "http",
                                status=status or 0))
        elif method == "PUT":
            if status in (200, 201):
                hist.add(record(name, key, "put", body, True, call, ret, "http",
                                existed=(status == 200)))
            elif status is not None and 400 <= status < 500:
                hist.add(record(name, key, "put", body, False, call, ret, "http",
                                status=status))
            else:
                hist.add(record(name, key, "put", body, "unknown", call, None, "http",
                                status=status or 0))
        else:
            if status in (204, 404):
                hist.add(record(name, key, "delete", None, True, call, ret, "http",
                                existed=(status == 204)))
            elif status is not None and 400 <= status < 500:
                hist.add(record(name, key, "delete", None, False, call, ret, "http",
                                status=status))
            else:
                hist.add(record(name, key, "delete", None, "unknown", call, None, "http",
                                status=status or 0))
        if args.think_ms > 0:
            time.sleep(rng.random() * args.think_ms / 1000.0)
    if conn is not None:
        conn.close()


def sql_literal(s):
    return "'" + s.replace("'", "''") + "'"


class Psql:
    """A psql child fed one statement at a time, answered up to a sentinel."""
    SENTINEL = "__done__"

    def __init__(self, args, name, logdir):
        self.name = name
        errpath = os.path.join(logdir, "psql_%s.stderr" % name) if logdir else os.devnull
        self.err = open(errpath, "w")
        cmd = [args.psql, "-X", "-At", "-q", "-h", args.pg_host, "-p", str(args.pg_port),
               "-d", args.dbname]
        self.p = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=self.err, text=True, bufsize=1,
                                  env=dict(os.environ, PGAPPNAME="lincheck-" + name,
                                           PGOPTIONS="-c statement_timeout=30s"))

    def query(self, sql):
        """Lines printed by the statement, or None if psql is gone."""
        try:
            self.p.stdin.write(sql + "\n\\echo " + self.SENTINEL + "\n")
            self.p.stdin.flush()
            lines = []
            while True:
                line = self.p.stdout.readline()
                if not line:
                    return None
                line = line.rstrip("\n")
                if line == self.SENTINEL:
                    return lines
                lines.append(line)
        except OSError:
            return None

    def close(self):
        try:
            self.p.stdin.close()
        except OSError:
            pass
        try:
            self.p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait()
        self.err.close()


def result_of(lines):
    """The text after 'R:' in the statement's output, or None (an error)."""
    if lines is None:
        return None
    for line in lines:
        if line.startswith("R:"):
            return line[2:]
    return None


def sql_client(args, cid, keys, hist, stop_at, seed, plain):
    rng = random.Random(seed)
    name = ("u%d" if plain else "s%d") % cid
    try:
        psql = Psql(args, name, args.log_dir)
    except OSError as e:
        hist.fatal.append("%s: cannot start psql: %s" % (name, e))
        return
    # prove the session works before recording anything
    if result_of(psql.query("SELECT 'R:ready';")) != "ready":
        hist.fatal.append("%s: psql session did not answer (see psql_%s.stderr)"
                          % (name, name))
        psql.close()
        return
    n = 0
    while now() < stop_at:
        n += 1
        key = rng.choice(keys)
        k = sql_literal(key)
        value = "%s-%d" % (name, n)
        r = rng.random()
        if plain:
            kind = "update" if r < 0.7 else "get"
            if kind == "update":
                sql = ("WITH u AS (UPDATE kv_store SET value = convert_to(%s, 'UTF8') "
                       "WHERE key = %s RETURNING 1) SELECT 'R:' || count(*) FROM u;"
                       % (sql_literal(value), k))
            else:
                sql = ("SELECT 'R:' || coalesce((SELECT 'v:' || convert_from(value, 'UTF8') "
                       "FROM kv_store WHERE key = %s), 'null');" % k)
        else:
            if r < 0.5:
                kind = "get"
                sql = "SELECT 'R:' || coalesce('v:' || kv_get(%s), 'null');" % k
            elif r < 0.9:
                kind = "put"
                sql = "SELECT 'R:ok' FROM kv_put(%s, %s);" % (k, sql_literal(value))
            else:
                kind = "delete"
                sql = "SELECT 'R:' || kv_delete(%s)::text;" % k
        call = now()
        lines = psql.query(sql)
        ret = now()
        res = result_of(lines)
        if lines is None:
            hist.error("%s: psql exited" % name)
        elif res is None:
            hist.error("%s: %s %s: no result (SQL error, see psql_%s.stderr)"
                       % (name, kind, key, name))
        via = "sql-plain" if plain else "sql"
        if kind == "get":
            if res is None:
                hist.add(record(name, key, "get", None, False, call, ret, via))
            else:
                v = None if res == "null" else res[2:]
                hist.add(record(name, key, "get", v, True, call, ret, via))
        elif res is None:
            hist.add(record(name, key, kind, None if kind == "delete" else value,
                            "unknown", call, None, via))
        elif kind == "put":
            hist.add(record(name, key, "put", value, True, call, ret, via))
        elif kind == "delete":
            hist.add(record(name, key, "delete", None, True, call, ret, via,
                            existed=(res == "true")))
        else:
            hist.add(record(name, key, "update", value, True, call, ret, via,
                            existed=(res != "0")))
        if lines is None:
            break
        if args.think_ms > 0:
            time.sleep(rng.random() * args.think_ms / 1000.0)
    psql.close()


def main(argv=None):
    env_duration = os.environ.get("DURATION")
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--http-host", default="127.0.0.1")
    ap.add_argument("--http-port", type=int, required=True)
    ap.add_argument("--pg-host", required=True, help="socket directory or host for psql")
    ap.add_argument("--pg-port", type=int, required=True)
    ap.add_argument("--dbname", default="postgres")
    ap.add_argument("--psql", default="psql")
    ap.add_argument("--out", required=True, help="history file (JSON lines)")
    ap.add_argument("--log-dir", default=None, help="where psql stderr goes")
    ap.add_argument("--duration", type=float,
                    default=float(env_duration) if env_duration else 12.0)
    ap.add_argument("--keys", type=int, default=3)
    ap.add_argument("--key-prefix", default="lin/")
    ap.add_argument("--http-clients", type=int, default=4)
    ap.add_argument("--sql-clients", type=int, default=2)
    ap.add_argument("--update-clients", type=int, default=1)
    ap.add_argument("--http-get", type=float, default=0.6, help="share of GETs")
    ap.add_argument("--http-put", type=float, default=0.3, help="share of PUTs")
    ap.add_argument("--http-timeout", type=float, default=20.0)
    ap.add_argument("--think-ms", type=float, default=1.0,
                    help="random pause of up to this many ms between operations")
    ap.add_argument("--seed", type=int, default=None)
    args = ap.parse_args(argv)

    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1 << 30)
    keys = ["%s%d" % (args.key_prefix, i) for i in range(args.keys)]
    tmp = args.out + ".tmp"
    hist = History(tmp)
    t_start = now()
    stop_at = t_start + args.duration
    threads = []
    for i in range(args.http_clients):
        threads.append(threading.Thread(
            target=http_client, args=(args, i, keys, hist, stop_at, seed * 100 + i)))
    for i in range(args.sql_clients):
        threads.append(threading.Thread(
            target=sql_client, args=(args, i, keys, hist, stop_at, seed * 100 + 50 + i, False)))
    for i in range(args.update_clients):
        threads.append(threading.Thread(
            target=sql_client, args=(args, i, keys, hist, stop_at, seed * 100 + 80 + i, True)))
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = now() - t_start

    hist.close()
    os.replace(tmp, args.out)

    summary = {
        "seed": seed, "seconds": round(elapsed, 2), "keys": len(keys),
        "ops": hist.n, "by_kind": hist.by_kind, "per_key": hist.per_key,
        "errors": hist.errors[:10], "error_count": hist.error_count,
        "fatal": hist.fatal,
    }
    summary.update(hist.counts)
    print("recorder summary: " + json.dumps(summary, sort_keys=True))
    sys.stdout.flush()
    return 1 if hist.fatal else 0


if __name__ == "__main__":
    sys.exit(main())
