#!/usr/bin/env python3
"""Bookkeeping for bench/run.sh: record runs, then aggregate and report.

  report.py note FILE key=value ...
      append one JSON object to FILE (numbers become numbers)
  report.py wrk FILE RESULT_JSON WRK_LOG key=value ...
      append one run measured by wrk (bench/wrk.lua wrote RESULT_JSON); with
      attack_json=PATH, the auth_flood attacker's summary is merged in as
      attack_* fields
  report.py pgbench FILE PGBENCH_LOG LOG_PREFIX key=value ...
      append one pgbench run: its summary, plus p50/p99 from its -l logs
      (LOG_PREFIX.*, deleted afterwards)
  report.py probe FILE PROBE_JSON key=value ...
      append one run of the standby workload's staleness probe (its JSON
      summary, every delay included)
  report.py final OUTDIR
      read OUTDIR/{runs,memory,meta,stale}.jsonl, print the table, write
      OUTDIR/results.json, results.md, chart.dat, chart.gp and chart.png

Only the standard library; no third-party modules.
"""
import glob
import json
import math
import os
import re
import shutil
import statistics
import subprocess
import sys


def parse_kv(args):
    out = {}
    for a in args:
        k, _, v = a.partition("=")
        out[k] = coerce(v)
    return out


def coerce(v):
    if re.fullmatch(r"-?\d+", v):
        return int(v)
    if re.fullmatch(r"-?(\d+\.\d*|\.\d+|\d+)([eE][-+]?\d+)?", v):
        return float(v)
    return v


def append(path, obj):
    with open(path, "a") as f:
        f.write(json.dumps(obj, sort_keys=True) + "\n")


def read_jsonl(path):
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def hit_fields(rec):
    """hits/misses deltas -> hit_ratio, when run.sh measured them."""
    if all(k in rec for k in ("hits_before", "hits_after", "misses_before", "misses_after")):
        h = rec["hits_after"] - rec["hits_before"]
        m = rec["misses_after"] - rec["misses_before"]
        rec["hits"] = h
        rec["misses"] = m
        rec["hit_ratio"] = h / (h + m) if h + m > 0 else None


def add_attack(rec):
    """Merge the auth_flood attacker's JSON summary (attack_json=PATH)."""
    path = rec.pop("attack_json", None)
    if not path:
        return
    try:
        with open(path) as f:
            a = json.load(f)
    except (OSError, ValueError) as e:
        rec["attack_failed"] = "no attacker result (%s)" % e
        return
    for k in ("sent", "seconds", "rate", "conns", "s401", "s429", "other", "errors",
              "first_429", "p50_401_ms", "max_401_ms", "p50_429_ms", "p99_429_ms", "addr"):
        rec["attack_" + k] = a.get(k)
    rec["attack_statuses"] = a.get("statuses")
    rec["attack_error_kinds"] = a.get("error_kinds")
    rec["attack_retry_after"] = a.get("retry_after")


def read_metrics(path):
    """Totals from kvserver's /metrics: requests per status class, latency buckets."""
    out = {"classes": {}, "buckets": {}, "count": None}
    try:
        text = open(path).read()
    except OSError:
        return None
    for line in text.splitlines():
        m = re.match(r'kvserver_http_requests_total\{method="[^"]*",code="(\dxx)"\} (\d+)', line)
        if m:
            out["classes"][m.group(1)] = out["classes"].get(m.group(1), 0) + int(m.group(2))
            continue
        m = re.match(r'kvserver_http_request_duration_seconds_bucket\{le="([^"]+)"\} (\d+)', line)
        if m:
            out["buckets"][m.group(1)] = int(m.group(2))
            continue
        m = re.match(r"kvserver_http_request_duration_seconds_count (\d+)", line)
        if m:
            out["count"] = int(m.group(1))
    return out if out["count"] is not None else None


def ticks_of(times_line):
    """bash `times` children line "0m1.234s 0m0.567s" -> seconds (user + sys)."""
    total = 0.0
    for m in re.finditer(r"(\d+)m([\d.]+)s", str(times_line or "")):
        total += int(m.group(1)) * 60 + float(m.group(2))
    return total


def add_cpu(rec):
    """CPU of the machine, the worker, its main thread and the bench client
    between run.sh's two snapshots (cores), and /metrics deltas."""
    if "cpu0" not in rec or "cpu1" not in rec:
        return
    hz = float(os.sysconf("SC_CLK_TCK"))
    secs = float(rec.pop("ts1")) - float(rec.pop("ts0"))
    c0 = [int(x) for x in str(rec.pop("cpu0")).split()]
    c1 = [int(x) for x in str(rec.pop("cpu1")).split()]
    d = [b - a for a, b in zip(c0, c1)]
    # user nice system idle iowait irq softirq steal [guest guest_nice]
    busy = d[0] + d[1] + d[2] + d[5] + d[6]
    steal = d[7] if len(d) > 7 else 0
    wk = (rec.pop("wk1") or 0) - (rec.pop("wk0") or 0) if rec.get("wk0") != "" else None
    mt = (rec.pop("mt1") or 0) - (rec.pop("mt0") or 0) if rec.get("mt0") != "" else None
    client = ticks_of(rec.pop("ch1")) - ticks_of(rec.pop("ch0"))
    # "pid:ticks,..." lists: the worker's executors (kvserver.executors) and,
    # in the standby workload, both clusters' other processes; a process that
    # ended in between is left out, one that started counts from zero
    def ticks(v):
        out = {}
        for part in str(v or "").split(","):
            pid, _, t = part.partition(":")
            if pid and t.lstrip("-").isdigit():
                out[pid] = int(t)
        return out

    def delta(k0, k1):
        if k0 not in rec and k1 not in rec:
            return None
        t0, t1 = ticks(rec.pop(k0, "")), ticks(rec.pop(k1, ""))
        return sum(t - t0.get(pid, 0) for pid, t in t1.items())
    executors = delta("ex0", "ex1")
    cluster = delta("pg0", "pg1")
    if secs > 0:
        rec["cpu_machine_cores"] = round(busy / hz / secs, 3)
        rec["cpu_steal_cores"] = round(steal / hz / secs, 3)
        rec["cpu_client_cores"] = round(client / secs, 3)
        if isinstance(wk, int):
            rec["cpu_worker_cores"] = round(wk / hz / secs, 3)
            if rec.get("rps"):
                rec["worker_us_per_req"] = round(1e6 * wk / hz / secs / rec["rps"], 2)
            rec["cpu_other_cores"] = round(busy / hz / secs - wk / hz / secs - client / secs, 3)
            if executors is not None:
                rec["cpu_executor_cores"] = round(executors / hz / secs, 3)
                rec["cpu_other_cores"] = round(rec["cpu_other_cores"] - executors / hz / secs, 3)
                if rec.get("rps"):
                    rec["kv_us_per_req"] = round(1e6 * (wk + executors) / hz / secs / rec["rps"], 2)
            if cluster is not None:
                rec["cpu_cluster_cores"] = round(cluster / hz / secs, 3)
                rec["cpu_other_cores"] = round(rec["cpu_other_cores"] - cluster / hz / secs, 3)
        if isinstance(mt, int):
            rec["cpu_main_thread_cores"] = round(mt / hz / secs, 3)
    m0 = read_metrics(rec.pop("metrics0", ""))
    m1 = read_metrics(rec.pop("metrics1", ""))
    if m0 and m1:
        rec["server_requests"] = m1["count"] - m0["count"]
        for cls in ("2xx", "4xx", "5xx"):
            rec["server_" + cls] = m1["classes"].get(cls, 0) - m0["classes"].get(cls, 0)
        for le, name in (("0.1", "server_over_100ms"), ("1", "server_over_1s")):
            if le in m0["buckets"] and le in m1["buckets"]:
                rec[name] = rec["server_requests"] - (m1["buckets"][le] - m0["buckets"][le])
    else:
        rec["server_metrics_failed"] = True


def cmd_wrk(path, result, log, kv):
    rec = dict(kv)
    rec["tool"] = "wrk"
    add_attack(rec)
    try:
        with open(result) as f:
            r = json.load(f)
    except (OSError, ValueError) as e:
        rec["failed"] = "no wrk result (%s)" % e
        append(path, rec)
        print_run(rec)
        return
    text = open(log, errors="replace").read() if os.path.exists(log) else ""
    secs = r["duration_us"] / 1e6 if r["duration_us"] else float("nan")
    # (the CPU snapshots are turned into figures below, once req/s is known)
    rec.update(
        requests=r["requests"],
        duration_s=round(secs, 3),
        rps=r["requests"] / secs if secs else 0.0,
        p50_ms=r["lat_p50_us"] / 1000.0,
        p90_ms=r["lat_p90_us"] / 1000.0,
        p99_ms=r["lat_p99_us"] / 1000.0,
        max_ms=r["lat_max_us"] / 1000.0,
        mean_ms=r["lat_mean_us"] / 1000.0,
        # wrk counts a response with status > 399 in errors.status; it prints
        # the same number as "Non-2xx or 3xx responses".
        non2xx=r["err_status"],
        socket_errors=r["err_connect"] + r["err_read"] + r["err_write"] + r["err_timeout"],
        err_connect=r["err_connect"], err_read=r["err_read"],
        err_write=r["err_write"], err_timeout=r["err_timeout"],
    )
    m = re.search(r"Non-2xx or 3xx responses:\s*(\d+)", text)
    if m and int(m.group(1)) != rec["non2xx"]:
        rec["non2xx_text"] = int(m.group(1))
    hit_fields(rec)
    add_cpu(rec)
    append(path, rec)
    print_run(rec)


def print_run(rec):
    if rec.get("failed"):
        print("    -> FAILED: %s" % rec["failed"])
        return
    print("    -> %10s req/s  p50 %6s ms  p99 %6s ms  errors %s%s" % (
        fmt_rps(rec["rps"]), fmt_ms(rec["p50_ms"]), fmt_ms(rec["p99_ms"]),
        rec.get("non2xx", 0) + rec.get("socket_errors", 0),
        "" if rec.get("hit_ratio") is None else "  hit ratio %s" % fmt_pct(rec["hit_ratio"])))
    if "server_requests" in rec:
        print("    -> server: %s requests (4xx %s, 5xx %s), %s over 100 ms, %s over 1 s; CPU cores: "
              "worker %s (main thread %s; %s us per request), executors %s, bench client %s, %severything "
              "else %s, steal %s" % (
                  rec["server_requests"], rec.get("server_4xx"), rec.get("server_5xx"),
                  rec.get("server_over_100ms"), rec.get("server_over_1s"),
                  rec.get("cpu_worker_cores"), rec.get("cpu_main_thread_cores"),
                  rec.get("worker_us_per_req"), rec.get("cpu_executor_cores"), rec.get("cpu_client_cores"),
                  "" if rec.get("cpu_cluster_cores") is None else
                  "other processes of the clusters %s, " % rec["cpu_cluster_cores"],
                  rec.get("cpu_other_cores"), rec.get("cpu_steal_cores")))
    if rec.get("attack_failed"):
        print("    -> attacker: FAILED: %s" % rec["attack_failed"])
    elif "attack_sent" in rec:
        print("    -> attacker %s from %s: %s requests in %s s (%s/s, %s connections): "
              "%s x 401 (p50 %s ms), %s x 429 (p50 %s ms), %s other, %s socket errors" % (
                  rec.get("attack"), rec.get("attack_addr"), rec.get("attack_sent"),
                  rec.get("attack_seconds"), rec.get("attack_rate"), rec.get("attack_conns"),
                  rec.get("attack_s401"), fmt_ms(rec.get("attack_p50_401_ms")),
                  rec.get("attack_s429"), fmt_ms(rec.get("attack_p50_429_ms")),
                  rec.get("attack_other"), rec.get("attack_errors")))
    sys.stdout.flush()


def percentile(sorted_vals, p):
    if not sorted_vals:
        return None
    i = max(0, min(len(sorted_vals) - 1, math.ceil(p / 100.0 * len(sorted_vals)) - 1))
    return sorted_vals[i]


def cmd_probe(path, result, kv):
    rec = dict(kv)
    try:
        with open(result) as f:
            rec.update(json.load(f))
    except (OSError, ValueError) as e:
        rec["failed"] = "no probe result (%s)" % e
        print("    -> probe FAILED: %s" % rec["failed"])
    else:
        print("    -> probe %s: %d samples: visible on the standby %s ms (p50), %s ms (p99) after the PUT's "
              "answer, %d at the first read; %d timeouts; /health replay_lag_seconds p50 %s, p99 %s" % (
                  rec.get("phase"), rec.get("samples", 0), fmt_ms(rec.get("delay_p50_ms")),
                  fmt_ms(rec.get("delay_p99_ms")), rec.get("first_read_fresh", 0), rec.get("timeouts", 0),
                  percentile(sorted(rec.get("lags_s") or []), 50), percentile(sorted(rec.get("lags_s") or []), 99)))
    sys.stdout.flush()
    append(path, rec)


def cmd_pgbench(path, log, prefix, kv):
    rec = dict(kv)
    rec["tool"] = "pgbench"
    text = open(log, errors="replace").read() if os.path.exists(log) else ""

    def grab(pattern, conv=float):
        m = re.search(pattern, text, re.M)
        return conv(m.group(1)) if m else None

    tps = grab(r"^tps = ([\d.]+) \(without initial connection time\)")
    done = grab(r"^number of transactions actually processed: (\d+)", int)
    failed = grab(r"^number of failed transactions: (\d+)", int) or 0
    duration = grab(r"^duration: (\d+) s", int)
    lats = []
    files = sorted(glob.glob(glob.escape(prefix) + ".*"))
    for fn in files:
        with open(fn) as f:
            for line in f:
                parts = line.split()
                # client_id transaction_no time script_no time_epoch time_us [schedule_lag]
                if len(parts) >= 3 and parts[2].isdigit():
                    lats.append(int(parts[2]))
        os.unlink(fn)
    lats.sort()
    if tps is None:
        rec["failed"] = "pgbench printed no tps (see its log)"
    rec.update(
        requests=done,
        duration_s=duration,
        rps=tps or 0.0,
        p50_ms=(percentile(lats, 50) or 0) / 1000.0,
        p90_ms=(percentile(lats, 90) or 0) / 1000.0,
        p99_ms=(percentile(lats, 99) or 0) / 1000.0,
        max_ms=(lats[-1] / 1000.0) if lats else None,
        mean_ms=(sum(lats) / len(lats) / 1000.0) if lats else None,
        non2xx=failed,  # failed transactions stand in for error responses
        socket_errors=0,
        aborted_clients=len(re.findall(r"client \d+ .*aborted", text)),
    )
    if rec["aborted_clients"]:
        rec["failed"] = "%d pgbench clients aborted" % rec["aborted_clients"]
    hit_fields(rec)
    append(path, rec)
    print_run(rec)


# ---------------------------------------------------------------------------
# final report

def fmt_rps(v):
    if v is None:
        return "-"
    return "{:,.0f}".format(v)


def fmt_ms(v):
    if v is None:
        return "-"
    if v >= 100:
        return "%.0f" % v
    if v >= 10:
        return "%.1f" % v
    return "%.2f" % v


def fmt_pct(v):
    return "-" if v is None else "%.1f%%" % (100 * v)


# Workloads whose kvserver variants are compared with each other (anonymous =
# target "kvserver"), not with the peers.
AUTH_WORKLOADS = ("get_hit_auth", "auth_flood")
TARGET_NAMES = {"kvserver_basic": "kvserver Basic", "kvserver_bearer": "kvserver Bearer"}
AUTH_RATIO_TARGET = 0.9   # authenticated GET hit >= 0.9x anonymous
FLOOD_DROP_TARGET = 0.20  # normal clients lose < 20% under the attacker
# The standby workload: its rows compare kvserver with itself (standby vs
# primary, replication settings, builds), not with the peers.
STANDBY_WORKLOADS = ("standby_get_hit", "standby_put", "standby_record", "standby_stale")
SELF_WORKLOADS = AUTH_WORKLOADS + STANDBY_WORKLOADS
TARGET_NAMES["kvserver_standby"] = "kvserver standby"
STANDBY_RATIO_TARGET = 0.9   # GET hit on a standby >= 0.9x the primary's
RECORD_COST_TARGET = 0.05    # <= 5% fewer PUTs/s with the WAL record than without
STANDBY_TEXT = ("a streaming hot standby on the same machine; PUT runs on the primary, wrk c64; "
                "the WAL record runs each after a restart with that build")
PUT_CONFIG_NAMES = {"none": "no standby", "async": "standby async", "sync": "standby sync (on)",
                    "remote_apply": "standby sync (remote_apply)"}
TARGET_NAMES["hello"] = "civetweb hello"
# The slow-commit workload: reads alone and alongside PUTs that wait for a
# delayed synchronous standby (its rows are compared with each other).
SLOW_WORKLOADS = ("slow_miss", "slow_hit", "slow_put")
SELF_WORKLOADS = SELF_WORKLOADS + SLOW_WORKLOADS
SLOW_MISS_P99_MS = 20.0    # GET miss p99 while PUTs wait for the standby
SLOW_HIT_P99_SLACK = (1.5, 1.0)  # GET hit p99 "unchanged": <= 1.5x, or <= +1 ms, of alone
SLOW_PUT_P50_DELAYS = 1.5  # PUT p50 <= 1.5 apply delays ("close to one, not two")
DENSITY_TARGET = 64.0      # cache overhead bytes per entry, 10-20 byte keys, 16-byte values
MIX_HIT_TARGET = 0.97      # hit ratio of the 90/10 zipf mix with the main cache
# Side by side: (workload, peer, target ratio of kvserver's req/s, or None)
SIDE_BY_SIDE = (("get_hit", "hello", 1.0), ("get_hit", "webdis", 1.4), ("get_hit", "nginx", None),
                ("get_miss", "pgbench", 1.25),
                ("put_new", "webdis", 1.0), ("put_new", "pgbench", 2.0),
                ("put_over", "webdis", 1.0), ("put_over", "pgbench", 2.0))
PERF_TEXT = ("side by side: each target's better of c16 and c64 in a round, the median of the "
             "per-round ratios, each round's ratio and best listed; slow commit: medians of the rounds")
WORKLOAD_NAMES = {"get_hit": "GET hit", "get_miss": "GET miss", "put_new": "PUT new key",
                  "put_over": "PUT overwrite"}


def target_name(row):
    if row["workload"] in AUTH_WORKLOADS and row["target"] == "kvserver":
        return "kvserver anonymous"
    if row["workload"] == "standby_get_hit" and row["target"] == "kvserver":
        return "kvserver primary"
    return TARGET_NAMES.get(row["target"], row["target"])


def aggregate(runs):
    groups = {}
    order = []
    for r in runs:
        if r.get("round") == "warm":
            continue
        key = (r.get("workload"), r.get("conns"), r.get("target"), r.get("variant"))
        if key not in groups:
            groups[key] = []
            order.append(key)
        groups[key].append(r)
    rows = []
    for key in order:
        rs = groups[key]
        ok = [r for r in rs if not r.get("failed")]
        first = rs[0]

        def med(field):
            vals = [r[field] for r in ok if r.get(field) is not None]
            return statistics.median(vals) if vals else None

        attacked = [r for r in rs if "attack" in r]

        def asum(field):
            return sum(r.get(field) or 0 for r in attacked) if attacked else None

        hits = sum(r.get("hits", 0) or 0 for r in ok)
        misses = sum(r.get("misses", 0) or 0 for r in ok)
        have_hits = any("hits" in r for r in ok)
        rows.append({
            "workload": key[0],
            "label": first.get("label", key[0]),
            "conns": key[1],
            "target": key[2],
            "tool": first.get("tool"),
            "rounds": len(rs),
            "failed_rounds": len(rs) - len(ok),
            "rps": med("rps"),
            "rps_rounds": [r.get("rps") for r in rs],
            "p50_ms": med("p50_ms"),
            "p99_ms": med("p99_ms"),
            "p90_ms": med("p90_ms"),
            "max_ms": max([r["max_ms"] for r in ok if r.get("max_ms") is not None], default=None),
            "requests": sum(r.get("requests") or 0 for r in ok),
            "non2xx": sum(r.get("non2xx") or 0 for r in rs),
            "socket_errors": sum(r.get("socket_errors") or 0 for r in rs),
            "hit_ratio": (hits / (hits + misses)) if have_hits and hits + misses > 0 else None,
            "hits": hits if have_hits else None,
            "misses": misses if have_hits else None,
            "fills_skipped": sum(r.get("fills_skipped") or 0 for r in ok) if have_hits else None,
            "evictions": sum(r.get("evictions") or 0 for r in ok) if have_hits else None,
            "cache_size": first.get("cache_size"),
            "note": first.get("note"),
            "variant": key[3],
            "cpu_other_cores": med("cpu_other_cores"),
            "cpu_worker_cores": med("cpu_worker_cores"),
            "worker_us_per_req": med("worker_us_per_req"),
            "cpu_main_thread_cores": med("cpu_main_thread_cores"),
            "cpu_cluster_cores": med("cpu_cluster_cores"),
            "cpu_executor_cores": med("cpu_executor_cores"),
            "kv_us_per_req": med("kv_us_per_req"),
            "server_5xx": sum(r.get("server_5xx") or 0 for r in rs),
            "server_over_100ms": sum(r.get("server_over_100ms") or 0 for r in rs),
            "server_over_1s": sum(r.get("server_over_1s") or 0 for r in rs),
            "attack": first.get("attack"),
            "attack_sent": asum("attack_sent"),
            "attack_401": asum("attack_s401"),
            "attack_429": asum("attack_s429"),
            "attack_other": asum("attack_other"),
            "attack_errors": asum("attack_errors"),
            "attack_conns": asum("attack_conns"),
            "attack_rate": statistics.median([r["attack_rate"] for r in attacked if r.get("attack_rate")])
            if any(r.get("attack_rate") for r in attacked) else None,
            "attack_p50_401_ms": statistics.median([r["attack_p50_401_ms"] for r in attacked
                                                    if r.get("attack_p50_401_ms") is not None])
            if any(r.get("attack_p50_401_ms") is not None for r in attacked) else None,
        })
    # display order: GET hit, PUT new, PUT overwrite, GET miss, mixed (by cache
    # size as run); the run order differs because of the cluster restarts
    rank = {"get_hit": 0, "get_hit_auth": 1, "put_new": 2, "put_over": 3, "get_miss": 4,
            "auth_flood": 6, "standby_get_hit": 7, "standby_put": 8, "standby_record": 9,
            "standby_stale": 10, "slow_put": 11, "slow_miss": 12, "slow_hit": 13}
    rows.sort(key=lambda r: rank.get(r["workload"], 5))  # stable
    # ratios: kvserver's req/s divided by each peer's, within workload+conns
    for row in rows:
        row["kvserver_vs"] = {}
    by_wc = {}
    for row in rows:
        by_wc.setdefault((row["workload"], row["conns"]), []).append(row)
    for (workload, _), rs in by_wc.items():
        if workload in SELF_WORKLOADS:
            continue
        kv = [r for r in rs if r["target"] == "kvserver"]
        if not kv or not kv[0]["rps"]:
            continue
        for r in rs:
            if r["target"] != "kvserver" and r["rps"]:
                kv[0]["kvserver_vs"][r["target"]] = kv[0]["rps"] / r["rps"]
    return rows


def per_round(runs, workload, conns, target, variant=None):
    """{round: run} of the measured, successful runs of one target."""
    return {r["round"]: r for r in runs
            if r.get("workload") == workload and r.get("conns") == conns
            and r.get("target") == target and r.get("variant") == variant
            and r.get("round") != "warm" and not r.get("failed") and r.get("rps")}


def auth_checks(runs, rows, meta):
    """The targets of the authentication workloads, from per-round ratios
    (each authenticated or attacked run against the anonymous or
    unattacked run of the same round, next to it in time); each row gets
    its auth_text for the table.  Returns (checks, problems)."""
    checks, problems = [], []
    for row in rows:
        w, c, t, v = row["workload"], row["conns"], row["target"], row["variant"]
        if w == "get_hit_auth" and t != "kvserver":
            base = per_round(runs, w, c, "kvserver")
            mine = per_round(runs, w, c, t)
            ratios = [mine[k]["rps"] / base[k]["rps"] for k in mine if k in base]
            if not ratios:
                row["auth_text"] = "no anonymous run to compare"
                continue
            ratio = statistics.median(ratios)
            ok = ratio >= AUTH_RATIO_TARGET
            row["auth_ratio"] = ratio
            row["auth_ratio_rounds"] = ratios
            row["auth_text"] = "%.2fx anonymous (>= %.1fx: %s)" % (
                ratio, AUTH_RATIO_TARGET, "ok" if ok else "MISSED")
            checks.append({"check": "GET hit c%s %s req/s / anonymous" % (c, target_name(row)),
                           "value": round(ratio, 3), "rounds": [round(x, 3) for x in ratios],
                           "target": ">= %.2f" % AUTH_RATIO_TARGET, "ok": ok})
            # the same in worker CPU per request, which other load disturbs less
            cpu = [base[k]["worker_us_per_req"] / mine[k]["worker_us_per_req"] for k in mine
                   if k in base and base[k].get("worker_us_per_req") and mine[k].get("worker_us_per_req")]
            if cpu:
                row["auth_cpu_ratio"] = statistics.median(cpu)
                checks.append({"check": "GET hit c%s %s: anonymous / its worker CPU per request" % (
                    c, target_name(row)), "value": round(row["auth_cpu_ratio"], 3),
                    "rounds": [round(x, 3) for x in cpu], "target": "none", "ok": None})
        elif w == "auth_flood" and v == "control":
            base = per_round(runs, w, c, t, "none")
            mine = per_round(runs, w, c, t, v)
            drops = [1 - mine[k]["rps"] / base[k]["rps"] for k in mine if k in base]
            if drops:
                row["flood_drop"] = statistics.median(drops)
                row["flood_drop_rounds"] = drops
                row["auth_text"] = "drop %.1f%% (no target: a benign second client, %s x 200)" % (
                    100 * row["flood_drop"], row["attack_other"])
                checks.append({"check": "auth flood (control, no credentials, %s/s): %s c%s req/s drop" % (
                    meta.get("attack_rate", "?"), target_name(row), c),
                    "value": "%.1f%%" % (100 * row["flood_drop"]),
                    "rounds": ["%.1f%%" % (100 * x) for x in drops], "target": "none", "ok": None})
        elif w == "auth_flood" and v not in (None, "none"):
            base = per_round(runs, w, c, t, "none")
            mine = per_round(runs, w, c, t, v)
            drops = [1 - mine[k]["rps"] / base[k]["rps"] for k in mine if k in base]
            if not drops:
                row["auth_text"] = "no run without attacker to compare"
                continue
            drop = statistics.median(drops)
            ok = drop < FLOOD_DROP_TARGET
            row["flood_drop"] = drop
            row["flood_drop_rounds"] = drops
            row["auth_text"] = "drop %.1f%% (< %.0f%%: %s); attacker %s x 401, %s x 429" % (
                100 * drop, 100 * FLOOD_DROP_TARGET, "ok" if ok else "MISSED",
                row["attack_401"], row["attack_429"])
            checks.append({"check": "auth flood (%s attacker, %s/s): %s c%s req/s drop" % (
                v, meta.get("attack_rate", "?"), target_name(row), c),
                "value": "%.1f%%" % (100 * drop), "rounds": ["%.1f%%" % (100 * x) for x in drops],
                "target": "< %.0f%%" % (100 * FLOOD_DROP_TARGET), "ok": ok,
                "attacker": "%s requests: %s x 401, %s x 429, %s other, %s socket errors" % (
                    row["attack_sent"], row["attack_401"], row["attack_429"],
                    row["attack_other"], row["attack_errors"])})
    # the attacker: a bounded number of 401s per address, then 429s, nothing else
    maxf = meta.get("auth_max_failures")
    for r in runs:
        if "attack" not in r or r.get("round") == "warm":
            continue
        what = "%s c%s %s round %s, attacker from %s" % (
            r.get("label"), r.get("conns"), r.get("target"), r.get("round"), r.get("attack_addr"))
        if r.get("attack_failed"):
            problems.append("%s: %s" % (what, r["attack_failed"]))
            continue
        if r.get("attack_rate") and r["attack_rate"] < 0.9 * (meta.get("attack_rate") or 0):
            problems.append("%s: sent only %s requests/s of %s (it waits for each answer)" % (
                what, r["attack_rate"], meta.get("attack_rate")))
        if r.get("attack") == "control":
            if r.get("attack_s401") or r.get("attack_s429") or r.get("attack_errors") or \
                    set((r.get("attack_statuses") or {}).keys()) - {"200"}:
                problems.append("%s (control, no credentials): statuses %s, socket errors %s" % (
                    what, r.get("attack_statuses"), r.get("attack_error_kinds")))
            continue
        if r.get("attack_other") or r.get("attack_errors"):
            problems.append("%s: statuses %s, socket errors %s" % (
                what, r.get("attack_statuses"), r.get("attack_error_kinds")))
        if not r.get("attack_s429"):
            problems.append("%s: never got 429 (%s x 401)" % (what, r.get("attack_s401")))
        if isinstance(maxf, int) and maxf > 0 and (r.get("attack_s401") or 0) > maxf:
            problems.append("%s: %s x 401, more than kvserver.auth_max_failures = %s" % (
                what, r.get("attack_s401"), maxf))
    # every 401 the attackers saw is one LOG line (plus run.sh's one sanity check)
    seen = sum(r.get("attack_s401") or 0 for r in runs if "attack" in r and r.get("round") != "warm")
    logged = meta.get("log_password_failures")
    if isinstance(logged, int) and any("attack" in r for r in runs) and logged != seen + 1:
        problems.append("PostgreSQL logged %d failed HTTP password logins; the attackers saw %d "
                        "401s (+1 from the sanity check)" % (logged, seen))
    return checks, problems


def pooled(values, ps=(50, 90, 99)):
    v = sorted(values)
    out = {"p%d" % p: percentile(v, p) for p in ps}
    out["max"] = v[-1] if v else None
    out["n"] = len(v)
    return out


def staleness_summary(stale):
    """The staleness probe's runs, pooled per phase (idle, load): every delay
    from a PUT's answer on the primary to the first standby GET that answered
    its value, and every /health replay_lag_seconds read."""
    out = {}
    for phase in list(dict.fromkeys(r.get("phase") for r in stale if r.get("phase"))):
        rs = [r for r in stale if r.get("phase") == phase and not r.get("failed")]
        d = pooled([x for r in rs for x in r.get("delays_ms") or []])
        lag = pooled([x for r in rs for x in r.get("lags_s") or []])
        samples = sum(r.get("samples") or 0 for r in rs)
        xcache = {}
        for r in rs:
            for k, n in (r.get("xcache") or {}).items():
                xcache[k] = xcache.get(k, 0) + n
        out[phase] = {
            "runs": len(rs), "failed_runs": len([r for r in stale if r.get("phase") == phase]) - len(rs),
            "samples": samples, "timeouts": sum(r.get("timeouts") or 0 for r in rs),
            "errors": sum(r.get("errors") or 0 for r in rs),
            "put_errors": sum(sum((r.get("put_errors") or {}).values()) for r in rs),
            "get_other": sum(sum((r.get("get_other") or {}).values()) for r in rs),
            "delay_ms": d, "first_read_fresh": sum(r.get("first_read_fresh") or 0 for r in rs),
            "stale_reads": sum(r.get("stale_reads") or 0 for r in rs), "xcache": xcache,
            "put_p50_ms": statistics.median([r["put_p50_ms"] for r in rs if r.get("put_p50_ms") is not None])
            if any(r.get("put_p50_ms") is not None for r in rs) else None,
            "put_p99_ms": statistics.median([r["put_p99_ms"] for r in rs if r.get("put_p99_ms") is not None])
            if any(r.get("put_p99_ms") is not None for r in rs) else None,
            "replay_lag_s": lag, "replay_lag_nulls": sum(r.get("lag_nulls") or 0 for r in rs),
            "poll_ms": rs[0].get("poll_ms") if rs else None, "gap_ms": rs[0].get("gap_ms") if rs else None,
        }
    return out


def kv_cpu(run):
    """CPU per request of kvserver's processes: the worker and its executors."""
    return run.get("kv_us_per_req") or run.get("worker_us_per_req")


def fmt_s(v):
    return "-" if v is None else "%.4f" % v


def standby_checks(runs, rows, meta, stale):
    """The standby workload's figures and targets, from per-round ratios of
    runs next to each other in time; each row gets its vs_text for the
    table.  Returns (checks, problems, staleness)."""
    checks, problems = [], []
    for row in rows:
        w, c, t, v = row["workload"], row["conns"], row["target"], row["variant"]
        if w == "standby_get_hit" and t == "kvserver_standby":
            base = per_round(runs, w, c, "kvserver")
            mine = per_round(runs, w, c, t)
            ratios = [mine[k]["rps"] / base[k]["rps"] for k in mine if k in base]
            if not ratios:
                row["vs_text"] = "no primary run to compare"
                continue
            ratio = statistics.median(ratios)
            ok = ratio >= STANDBY_RATIO_TARGET
            row["standby_ratio"] = ratio
            row["standby_ratio_rounds"] = ratios
            row["vs_text"] = "%.2fx primary (>= %.1fx: %s)" % (ratio, STANDBY_RATIO_TARGET, "ok" if ok else "MISSED")
            checks.append({"check": "GET hit c%s: standby req/s / primary" % c, "value": round(ratio, 3),
                           "rounds": [round(x, 3) for x in ratios],
                           "target": ">= %.2f" % STANDBY_RATIO_TARGET, "ok": ok})
            cpu = [kv_cpu(base[k]) / kv_cpu(mine[k]) for k in mine
                   if k in base and kv_cpu(base[k]) and kv_cpu(mine[k])]
            if cpu:
                row["standby_cpu_ratio"] = statistics.median(cpu)
                checks.append({"check": "GET hit c%s: primary / standby kvserver CPU per request" % c,
                               "value": round(row["standby_cpu_ratio"], 3),
                               "rounds": [round(x, 3) for x in cpu], "target": "none", "ok": None})
        elif w == "standby_put" and v != "none":
            base = per_round(runs, w, c, t, "none")
            mine = per_round(runs, w, c, t, v)
            ratios = [mine[k]["rps"] / base[k]["rps"] for k in mine if k in base]
            if not ratios:
                row["vs_text"] = "-"
                continue
            ratio = statistics.median(ratios)
            row["standby_ratio"] = ratio
            row["standby_ratio_rounds"] = ratios
            row["vs_text"] = "%.2fx no standby" % ratio
            checks.append({"check": "PUT overwrite c%s, %s: req/s / no standby" % (
                c, PUT_CONFIG_NAMES.get(v, v)), "value": round(ratio, 3),
                "rounds": [round(x, 3) for x in ratios], "target": "none", "ok": None})
        elif w == "standby_record" and str(v).endswith("-with_record"):
            cfg = v[:-len("-with_record")]
            cname = PUT_CONFIG_NAMES.get(cfg, cfg)
            base = per_round(runs, w, c, t, cfg + "-without_record")
            mine = per_round(runs, w, c, t, v)
            keys = [k for k in mine if k in base]
            if not keys:
                row["vs_text"] = "no run without the record to compare"
                continue
            fewer = [1 - mine[k]["rps"] / base[k]["rps"] for k in keys]
            inv = [base[k]["rps"] / mine[k]["rps"] for k in keys]
            drop = statistics.median(fewer)
            ok = drop <= RECORD_COST_TARGET
            row["record_cost"] = drop
            row["record_cost_rounds"] = fewer
            row["record_without_over_with"] = statistics.median(inv)
            row["vs_text"] = "%.1f%% fewer PUTs/s than without (<= %.0f%%: %s); without / with %.3fx" % (
                100 * drop, 100 * RECORD_COST_TARGET, "ok" if ok else "MISSED", row["record_without_over_with"])
            checks.append({"check": "PUT overwrite c%s, %s: PUTs/s lost to the WAL record" % (c, cname),
                           "value": "%.1f%%" % (100 * drop), "rounds": ["%.1f%%" % (100 * x) for x in fewer],
                           "target": "<= %.0f%%" % (100 * RECORD_COST_TARGET), "ok": ok})
            checks.append({"check": "PUT overwrite c%s, %s: req/s without the record / with it" % (c, cname),
                           "value": round(row["record_without_over_with"], 3),
                           "rounds": [round(x, 3) for x in inv], "target": "<= %.3f" % (1 / (1 - RECORD_COST_TARGET)),
                           "ok": None})
            cpu = [kv_cpu(mine[k]) / kv_cpu(base[k]) for k in keys if kv_cpu(mine[k]) and kv_cpu(base[k])]
            if cpu:
                row["record_cpu_ratio"] = statistics.median(cpu)
                checks.append({"check": "PUT overwrite c%s, %s: kvserver CPU per PUT, with the record / without" % (
                    c, cname),
                               "value": round(row["record_cpu_ratio"], 3),
                               "rounds": [round(x, 3) for x in cpu], "target": "none", "ok": None})
    st = staleness_summary(stale)
    for phase, x in st.items():
        what = "staleness probe (%s)" % phase
        d, lag = x["delay_ms"], x["replay_lag_s"]
        if x["failed_runs"]:
            problems.append("%s: %d run(s) wrote no result" % (what, x["failed_runs"]))
        if x["timeouts"]:
            problems.append("%s: %d PUT(s) not visible on the standby within 10 s" % (what, x["timeouts"]))
        if x["errors"] or x["put_errors"] or x["get_other"]:
            problems.append("%s: %d socket errors, %d failed PUTs, %d standby GETs neither 200 nor 404" % (
                what, x["errors"], x["put_errors"], x["get_other"]))
        if not x["samples"]:
            continue
        checks.append({"check": "%s: PUT answered on the primary -> the standby serves it, p50 / p99 ms" % what,
                       "value": "%s / %s" % (fmt_ms(d["p50"]), fmt_ms(d["p99"])),
                       "rounds": ["%d samples" % x["samples"], "max %s ms" % fmt_ms(d["max"]),
                                  "%d at the first read" % x["first_read_fresh"]],
                       "target": "none", "ok": None})
        if lag["n"] and phase != "idle":  # idle, it grows between the probe's commits
            checks.append({"check": "%s: standby /health replay_lag_seconds, p50 / p99" % what,
                           "value": "%s / %s" % (fmt_s(lag["p50"]), fmt_s(lag["p99"])),
                           "rounds": ["%d reads" % lag["n"], "max %s" % fmt_s(lag["max"])],
                           "target": "none", "ok": None})
    load = st.get("load")
    for row in rows:
        if row["workload"] == "standby_stale" and load and load["samples"]:
            row["vs_text"] = "the standby serves a PUT %s ms (p50), %s ms (p99) after its answer (%d samples)" % (
                fmt_ms(load["delay_ms"]["p50"]), fmt_ms(load["delay_ms"]["p99"]), load["samples"])
    ac = meta.get("standby_apply_check")
    if ac not in (None, "ok"):
        problems.append("synchronous_commit = remote_apply: %s" % ac)
    return checks, problems, st


def best_per_round(runs, workload, target):
    """{round: (rps, conns)}: a target's better concurrency in each round."""
    best = {}
    for r in runs:
        if r.get("workload") != workload or r.get("target") != target or r.get("round") == "warm" \
                or r.get("failed") or not r.get("rps") or r.get("variant"):
            continue
        if r["round"] not in best or r["rps"] > best[r["round"]][0]:
            best[r["round"]] = (r["rps"], r.get("conns"))
    return best


def parse_ms(v):
    """'200ms', '1s', '250' (ms) -> milliseconds."""
    m = re.match(r"^\s*([0-9.]+)\s*(ms|s|min)?\s*$", str(v or ""))
    if not m:
        return None
    return float(m.group(1)) * {"ms": 1, None: 1, "s": 1000, "min": 60000}[m.group(2)]


def perf_checks(runs, rows, meta, mem):
    """The performance targets: side-by-side ratios (each side's better of
    c16/c64 per round, median of the per-round ratios), the mixed workload's
    hit ratio, the cache's overhead per entry, and the slow-commit figures.
    Each kvserver row of a side-by-side workload gets its best_text."""
    checks = []
    for workload, peer, target in SIDE_BY_SIDE:
        kv = best_per_round(runs, workload, "kvserver")
        other = best_per_round(runs, workload, peer)
        keys = sorted(k for k in kv if k in other)
        if not keys:
            continue
        ratios = [kv[k][0] / other[k][0] for k in keys]
        ratio = statistics.median(ratios)
        ok = None if target is None else ratio >= target
        checks.append({
            "check": "%s: kvserver / %s, req/s at each side's best" % (WORKLOAD_NAMES[workload],
                                                                     TARGET_NAMES.get(peer, peer)),
            "value": "%.2fx" % ratio, "target": ">= %.2fx" % target if target else "none", "ok": ok,
            "rounds": ["%.2fx (%s c%s / %s c%s)" % (kv[k][0] / other[k][0], fmt_rps(kv[k][0]), kv[k][1],
                                                    fmt_rps(other[k][0]), other[k][1]) for k in keys]})
        for row in rows:
            if row["workload"] == workload and row["target"] == "kvserver":
                row.setdefault("best_vs", {})[peer] = ratio
    # The miss target's headroom: a miss is a hit's HTTP work plus a lookup
    # in a backend, so civetweb's static reply bounds it from above.
    hello = best_per_round(runs, "get_hit", "hello")
    pgb = best_per_round(runs, "get_miss", "pgbench")
    keys = sorted(k for k in hello if k in pgb)
    if keys:
        checks.append({
            "check": "ceiling of GET miss: civetweb hello (no lookup at all) / pgbench SELECT",
            "value": "%.2fx" % statistics.median([hello[k][0] / pgb[k][0] for k in keys]),
            "target": "none; GET miss is asked %.2fx" % dict(((w, p), t) for w, p, t in SIDE_BY_SIDE)[
                ("get_miss", "pgbench")],
            "ok": None,
            "rounds": ["%.2fx (%s / %s)" % (hello[k][0] / pgb[k][0], fmt_rps(hello[k][0]), fmt_rps(pgb[k][0]))
                       for k in keys]})
    for row in rows:
        if row.get("best_vs"):
            row["vs_text"] = "best of c16/c64: " + ", ".join(
                "%.2fx %s" % (v, TARGET_NAMES.get(k, k)) for k, v in row["best_vs"].items())
    main = meta.get("caches", "").split()[-1:] or [None]
    for row in rows:
        if row["workload"] == "mixed_%s" % main[0] and row["hit_ratio"] is not None:
            checks.append({"check": "%s: hit ratio (kv_stats, measured runs)" % row["label"],
                           "value": fmt_pct(row["hit_ratio"]), "target": ">= %.0f%%" % (100 * MIX_HIT_TARGET),
                           "ok": row["hit_ratio"] >= MIX_HIT_TARGET,
                           "rounds": ["%d hits, %d misses" % (row["hits"] or 0, row["misses"] or 0)]})
    if meta.get("density_overhead") not in (None, ""):
        ov = float(meta["density_overhead"])
        checks.append({"check": "cache overhead per entry, %s keys of %s bytes on average, 16-byte values" % (
            meta.get("density_entries"), meta.get("density_key_bytes")),
            "value": "%.1f B" % ov, "target": "<= %.0f B" % DENSITY_TARGET, "ok": ov <= DENSITY_TARGET,
            "rounds": ["kv_stats().overhead_bytes_per_entry"]})
    delay = parse_ms(meta.get("slow_delay"))

    def slow(workload, variant, field):
        return {r["round"]: r[field] for r in runs
                if r.get("workload") == workload and r.get("variant") == variant
                and r.get("round") != "warm" and not r.get("failed") and r.get(field) is not None}

    put50 = slow("slow_put", "with_puts", "p50_ms")
    if put50 and delay:
        v = statistics.median(put50.values())
        checks.append({"check": "slow commit (apply delay %s): PUT p50 with the reads" % meta.get("slow_delay"),
                       "value": "%s ms" % fmt_ms(v), "target": "<= %.0f ms (%.1f delays)" % (
                           SLOW_PUT_P50_DELAYS * delay, SLOW_PUT_P50_DELAYS),
                       "ok": v <= SLOW_PUT_P50_DELAYS * delay,
                       "rounds": ["%s ms" % fmt_ms(put50[k]) for k in sorted(put50)]})
        p99 = slow("slow_put", "with_puts", "p99_ms")
        checks.append({"check": "slow commit: PUT p99", "value": "%s ms" % fmt_ms(statistics.median(p99.values())),
                       "target": "none", "ok": None, "rounds": ["%s ms" % fmt_ms(p99[k]) for k in sorted(p99)]})
    for workload, name in (("slow_miss", "GET miss"), ("slow_hit", "GET hit")):
        for field in ("p50_ms", "p99_ms"):
            alone = slow(workload, "alone", field)
            busy = slow(workload, "with_puts", field)
            if not busy:
                continue
            v = statistics.median(busy.values())
            a = statistics.median(alone.values()) if alone else None
            ok, target = None, "none"
            if field == "p99_ms" and workload == "slow_miss":
                ok, target = v < SLOW_MISS_P99_MS, "< %.0f ms" % SLOW_MISS_P99_MS
            elif field == "p99_ms" and a is not None:
                lim = max(SLOW_HIT_P99_SLACK[0] * a, a + SLOW_HIT_P99_SLACK[1])
                ok, target = v <= lim, "unchanged: <= %s ms" % fmt_ms(lim)
            checks.append({"check": "slow commit: %s %s during the PUTs (alone: %s ms)" % (
                name, field[:3], fmt_ms(a)), "value": "%s ms" % fmt_ms(v), "target": target, "ok": ok,
                "rounds": ["%s ms" % fmt_ms(busy[k]) for k in sorted(busy)]})
    return checks


def checks_text(checks):
    lines = []
    for c in checks:
        lines.append("  %-4s %-74s %8s  (target %s; rounds: %s)%s" % (
            {True: "ok", False: "MISS", None: "info"}[c["ok"]], c["check"], c["value"], c["target"],
            ", ".join(str(x) for x in c["rounds"]),
            ("\n       attacker: " + c["attacker"]) if c.get("attacker") else ""))
    return "\n".join(lines)


def ratio_text(row):
    if row.get("auth_text"):
        return row["auth_text"]
    if row.get("vs_text"):
        return row["vs_text"]
    if row["workload"] in SELF_WORKLOADS:
        return "-"
    if row["target"] == "kvserver":
        if not row["kvserver_vs"]:
            return "-"
        return ", ".join("%.2fx %s" % (v, k) for k, v in row["kvserver_vs"].items())
    return ""


COLS = ["workload", "target", "conns", "req/s", "p50 ms", "p99 ms",
        "errors", "hit ratio", "other CPU", "kvserver µs/req",
        "kvserver req/s ÷ peer; auth: ÷ anonymous; standby: see the text"]


def table_rows(rows):
    out = []
    for r in rows:
        errs = r["non2xx"] + r["socket_errors"]
        err_txt = "0" if errs == 0 else "%d non-2xx, %d socket" % (r["non2xx"], r["socket_errors"])
        if r["failed_rounds"]:
            err_txt += " (%d runs failed)" % r["failed_rounds"]
        out.append([r["label"], target_name(r), str(r["conns"]), fmt_rps(r["rps"]),
                    fmt_ms(r["p50_ms"]), fmt_ms(r["p99_ms"]), err_txt,
                    fmt_pct(r["hit_ratio"]),
                    "-" if r.get("cpu_other_cores") is None else "%.2f" % r["cpu_other_cores"],
                    "-" if kv_cpu(r) is None else "%.1f" % kv_cpu(r),
                    ratio_text(r)])
    return out


def text_table(rows):
    body = table_rows(rows)
    widths = [max(len(COLS[i]), *(len(b[i]) for b in body)) if body else len(COLS[i])
              for i in range(len(COLS))]
    right = {2, 3, 4, 5, 7, 8, 9}

    def line(cells):
        return "  ".join(c.rjust(widths[i]) if i in right else c.ljust(widths[i])
                         for i, c in enumerate(cells)).rstrip()

    lines = [line(COLS), line(["-" * w for w in widths])]
    prev = None
    for b, r in zip(body, rows):
        grp = (r["workload"], r["conns"], r["target"] if r["workload"] == "auth_flood" else None)
        if prev is not None and grp != prev:
            lines.append("")
        prev = grp
        lines.append(line(b))
    return "\n".join(lines)


def md_table(rows):
    body = table_rows(rows)
    lines = ["| " + " | ".join(COLS) + " |",
             "|" + "|".join("---:" if i in (2, 3, 4, 5, 7, 8, 9) else "---" for i in range(len(COLS))) + "|"]
    for b in body:
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in b) + " |")
    return "\n".join(lines)


def memory_growth(mem, runs):
    """RssAnon growth of one worker between two samples, per kvserver request
    served in between (warm-ups included): a steady growth per request is a leak."""
    out = []
    for a, b in zip(mem, mem[1:]):
        if a.get("pid") != b.get("pid") or a.get("rss_anon_kb") in (None, "") \
                or b.get("rss_anon_kb") in (None, ""):
            continue
        between = [r for r in runs if str(r.get("target")).startswith("kvserver") and "t_start" in r
                   and r.get("target") != "kvserver_standby"
                   and a["t"] <= r["t_start"] and r["t_end"] <= b["t"]]
        n = sum(r.get("requests") or 0 for r in between)
        if not n:
            continue
        delta = (b["rss_anon_kb"] - a["rss_anon_kb"]) * 1024
        kinds = sorted(set(r.get("mode") or "?" for r in between))
        out.append({"from": a["point"], "to": b["point"], "pid": a["pid"],
                    "anon_delta_bytes": delta, "kvserver_requests": n,
                    "bytes_per_request": delta / n, "modes": kinds})
    return out


def memory_summary(mem):
    lines = []
    for m in mem:
        parts = ["%-28s" % m.get("point", "?")]
        if m.get("cache_size"):
            parts.append("cache %-5s" % m["cache_size"])
        if m.get("rss_kb") is not None:
            parts.append("VmRSS %6.1f MB (anon %.1f, shmem %.1f)" % (
                m["rss_kb"] / 1024.0, (m.get("rss_anon_kb") or 0) / 1024.0,
                (m.get("rss_shmem_kb") or 0) / 1024.0))
        if m.get("entries") is not None:
            ov = m.get("overhead") if m["entries"] else None
            parts.append("%d entries, overhead %s B/entry, used %.1f of %.1f MB" % (
                m["entries"], "-" if ov in (None, "") else "%.1f" % float(ov),
                (m.get("used_bytes") or 0) / 1048576.0, (m.get("capacity_bytes") or 0) / 1048576.0))
        lines.append("  ".join(parts))
    return "\n".join(lines)


TARGET_COLORS = {"kvserver": "#1f77b4", "nginx": "#2ca02c", "webdis": "#d62728", "hello": "#bcbd22",
                 "pgbench": "#ff7f0e", "kvserver_basic": "#9467bd", "kvserver_bearer": "#8c564b",
                 "kvserver_standby": "#17becf"}


CHART_SHORT = (("GET hit, primary vs standby", "GET hit"), ("PUT overwrite + staleness probe", "PUT + probe"),
               ("PUT overwrite, ", "PUT "), ("standby sync (remote_apply)", "remote_apply"),
               ("standby sync (on)", "sync"), ("standby async", "async"),
               ("with the WAL record", "record"), ("record compiled out", "no record"),
               ("slow commit: ", "slow "), (", with puts", " +PUTs"), (", alone", ""),
               ("PUT overwrite +PUTs", "PUT"))


def chart_short(label):
    for a, b in CHART_SHORT:
        label = label.replace(a, b)
    return label


def write_chart(outdir, rows, meta):
    gnuplot = shutil.which("gnuplot")
    dat = os.path.join(outdir, "chart.dat")
    gp = os.path.join(outdir, "chart.gp")
    png = os.path.join(outdir, "chart.png")
    targets = list(dict.fromkeys(r["target"] for r in rows))
    with open(dat, "w") as f:
        f.write("# x label target_index rps p99_ms\n")
        x = 0
        prev = None
        for r in rows:
            grp = (r["workload"], r["target"] if r["workload"] == "auth_flood" else None)
            if prev is not None and grp != prev:
                x += 1  # a gap between workloads
            prev = grp
            label = "%s c%s %s" % (r["label"].replace("zipf, cache ", ""), r["conns"], target_name(r))
            if r["workload"] in STANDBY_WORKLOADS + SLOW_WORKLOADS:  # shorter: the labels are crowded
                label = "%s c%s%s" % (chart_short(r["label"]), r["conns"],
                                      " " + target_name(r) if r["workload"] == "standby_get_hit" else "")
            if r["workload"].startswith("mixed") and r["hit_ratio"] is not None:
                label += " (hits %.0f%%)" % (100 * r["hit_ratio"])
            f.write('%d "%s" %d %s %s\n' % (x, label.replace('"', "'"), targets.index(r["target"]),
                                           r["rps"] or "NaN", r["p99_ms"] or "NaN"))
            x += 1
    xmax = x - 0.3
    palette = "\n".join(
        'set linetype %d lc rgb "%s"' % (i + 1, TARGET_COLORS.get(t, "#7f7f7f"))
        for i, t in enumerate(targets))
    keys = "\n".join(
        "     NaN with boxes lt %d title '%s' noenhanced, \\" % (i + 1, t) for i, t in enumerate(targets))
    title = "kvserver bench (%s round(s) x %s s, %s cores shared by client and servers)" % (
        meta.get("rounds", "?"), meta.get("duration", "?"), meta.get("cores", "?"))
    script = """
set encoding utf8
if (strstrt(GPVAL_TERMINALS, "pngcairo") > 0) {{
  set terminal pngcairo size 1500,1000 font "sans,9"
}} else {{
  set terminal png size 1500,1000
}}
set output "{png}"
{palette}
set style fill solid 0.9 border -1
set boxwidth 0.8
set grid ytics mytics
set logscale y
set xrange [-0.7:{xmax}]
set xtics rotate by -40 scale 0 font ",8"
set key top right
set lmargin 12
set bmargin 9
set multiplot layout 2,1 title "{title}"
set title "throughput (req/s or tps, median of rounds; log scale)"
set ylabel "req/s"
plot "{dat}" using 1:4:($3+1):xtic(2) with boxes lc variable notitle, \\
{keys}
     "{dat}" using 1:4:(sprintf("%.0f", $4)) with labels offset 0,0.6 font ",7" notitle
set title "p99 latency (ms, median of rounds; log scale)"
set ylabel "ms"
plot "{dat}" using 1:5:($3+1):xtic(2) with boxes lc variable notitle, \\
{keys}
     "{dat}" using 1:5:($5 >= 10 ? sprintf("%.0f", $5) : sprintf("%.2g", $5)) with labels offset 0,0.6 font ",7" notitle
unset multiplot
""".format(png=png, xmax=xmax, palette=palette, title=title, dat=dat, keys=keys)
    with open(gp, "w") as f:
        f.write(script)
    if not gnuplot:
        return "gnuplot not found: no chart"
    p = subprocess.run([gnuplot, gp], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if p.returncode != 0 or not os.path.exists(png):
        return "gnuplot failed: " + p.stdout.strip()[-500:]
    return None


def cmd_final(outdir):
    runs = read_jsonl(os.path.join(outdir, "runs.jsonl"))
    mem = read_jsonl(os.path.join(outdir, "memory.jsonl"))
    meta = {}
    for m in read_jsonl(os.path.join(outdir, "meta.jsonl")):
        meta.update(m)
    stale = read_jsonl(os.path.join(outdir, "stale.jsonl"))
    rows = aggregate(runs)
    checks, auth_problems = auth_checks(runs, rows, meta)
    sb_checks, sb_problems, staleness = standby_checks(runs, rows, meta, stale)
    pf_checks = perf_checks(runs, rows, meta, mem)

    problems = []
    noisy = []
    for r in runs:
        what = "%s c%s %s round %s" % (r.get("label"), r.get("conns"), r.get("target"), r.get("round"))
        if r.get("failed"):
            problems.append("%s: FAILED: %s" % (what, r["failed"]))
        if r.get("non2xx"):
            problems.append("%s: %d %s out of %s" % (
                what, r["non2xx"],
                "failed transactions" if r.get("tool") == "pgbench" else "non-2xx responses",
                r.get("requests")))
        if r.get("server_5xx"):
            problems.append("%s: kvserver answered %d requests with 5xx (/metrics)" % (what, r["server_5xx"]))
        if r.get("server_over_1s"):
            problems.append("%s: kvserver took over 1 s for %d requests (/metrics)" % (what, r["server_over_1s"]))
        if r.get("worker_pid_after") not in (None, "", r.get("worker_pid")):
            problems.append("%s: the kvserver worker restarted (pid %s -> %s)" % (
                what, r.get("worker_pid"), r.get("worker_pid_after")))
        # (the slow-commit runs are concurrent: each one's "other" is the others' clients)
        if (r.get("cpu_other_cores") or 0) > 0.25 and r.get("workload") not in SLOW_WORKLOADS:
            noisy.append("%s: %.2f cores" % (what, r["cpu_other_cores"]))
        if r.get("socket_errors"):
            problems.append("%s: socket errors connect %s read %s write %s timeout %s" % (
                what, r.get("err_connect"), r.get("err_read"), r.get("err_write"), r.get("err_timeout")))

    problems.extend(auth_problems)
    problems.extend(sb_problems)
    if noisy:
        problems.append("other processes on the machine took more than 0.25 of a core during %d "
                        "kvserver run(s) (their figures are less reliable): %s" % (
                            len(noisy), "; ".join(noisy)))
    table = text_table(rows)
    memtxt = memory_summary(mem)
    growth = memory_growth(mem, runs)
    if growth:
        memtxt += "\nworker RssAnon growth between samples (kvserver requests in between, warm-ups included):"
        for g in growth:
            memtxt += "\n  %-28s -> %-28s %+8.1f MB over %9d requests (%s): %+7.1f B/request" % (
                g["from"], g["to"], g["anon_delta_bytes"] / 1048576.0, g["kvserver_requests"],
                "/".join(g["modes"]), g["bytes_per_request"])
            if g["bytes_per_request"] > 64 and g["anon_delta_bytes"] > 8 * 1048576:
                problems.append("kvserver worker RssAnon grew %.1f MB over %d requests (%s), "
                                "%.0f B/request, between '%s' and '%s': looks like a leak" % (
                                    g["anon_delta_bytes"] / 1048576.0, g["kvserver_requests"],
                                    "/".join(g["modes"]), g["bytes_per_request"], g["from"], g["to"]))
    chart_err = write_chart(outdir, rows, meta)

    results = {"meta": meta, "rows": rows, "runs": runs, "memory": mem,
               "memory_growth": growth, "auth_checks": checks, "standby_checks": sb_checks,
               "staleness": staleness, "staleness_runs": stale, "perf_checks": pf_checks,
               "problems": problems}
    with open(os.path.join(outdir, "results.json"), "w") as f:
        json.dump(results, f, indent=2, sort_keys=True)

    header = ("kvserver `make bench` (%s): %s round(s) of %s s per target, interleaved; "
              "wrk -t1 keep-alive / pgbench -j 2 -M prepared; 16-byte values; "
              "%s cores shared by the client and the servers; fsync on, "
              "synchronous_commit on, redis appendfsync always. Figures are medians of the rounds; "
              "\"other CPU\": cores that processes outside the bench used during the kvserver runs; "
              "\"kvserver µs/req\": the CPU time of the kvserver worker and its executors "
              "(kvserver.executors) per request." % (
                  meta.get("date", "?"), meta.get("rounds", "?"), meta.get("duration", "?"),
                  meta.get("cores", "?")))
    with open(os.path.join(outdir, "results.md"), "w") as f:
        f.write(header + "\n\n")
        f.write(md_table(rows) + "\n\n")
        if pf_checks:
            f.write("Targets (%s):\n\n```\n" % PERF_TEXT + checks_text(pf_checks) + "\n```\n\n")
        if checks:
            f.write("Authentication targets (median of per-round ratios):\n\n```\n" +
                    checks_text(checks) + "\n```\n\n")
        if sb_checks:
            f.write("Standby (%s; ratios: median of per-round ratios; staleness: "
                    "every sample of the rounds pooled):\n\n```\n" % STANDBY_TEXT +
                    checks_text(sb_checks) + "\n```\n\n")
        f.write("Memory (kvserver worker; VmRSS from /proc, overhead from `kv_stats()`):\n\n")
        f.write("```\n" + memtxt + "\n```\n")
        if problems:
            f.write("\nProblems seen:\n\n")
            for p in problems:
                f.write("- " + p + "\n")

    print()
    print("=" * 100)
    print(header)
    print()
    print(table)
    print()
    if pf_checks:
        print("targets (%s):" % PERF_TEXT)
        print(checks_text(pf_checks))
        print()
    if checks:
        print("authentication targets (median of per-round ratios):")
        print(checks_text(checks))
        print()
    if sb_checks:
        print("standby (%s; ratios: median of per-round ratios; staleness: every sample of the rounds pooled):"
              % STANDBY_TEXT)
        print(checks_text(sb_checks))
        print()
    print("memory (kvserver worker):")
    print(memtxt)
    if problems:
        print()
        print("PROBLEMS:")
        for p in problems:
            print("  " + p)
    print()
    print("written: %s/results.json, results.md, %s" % (
        outdir, "chart.png" if not chart_err else "(no chart: %s)" % chart_err))
    return 0


def main(argv):
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    cmd = argv[1]
    if cmd == "note":
        append(argv[2], parse_kv(argv[3:]))
    elif cmd == "wrk":
        cmd_wrk(argv[2], argv[3], argv[4], parse_kv(argv[5:]))
    elif cmd == "pgbench":
        cmd_pgbench(argv[2], argv[3], argv[4], parse_kv(argv[5:]))
    elif cmd == "probe":
        cmd_probe(argv[2], argv[3], parse_kv(argv[4:]))
    elif cmd == "final":
        return cmd_final(argv[2])
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
