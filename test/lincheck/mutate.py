#!/usr/bin/env python3
# Copyright (c) kvserver authors
"""Plant one stale read in a recorded history, to show that lincheck.py
catches it on real data (a checker that passes everything proves nothing).

usage: mutate.py IN OUT

Picks a successful read R of key k (preferably an HTTP cache HIT) and two
completed writes W then X of k with W.ret < X.call and X.ret < R.call, where
W installed a value (put, or update of an existing row) and X replaced or
removed it; rewrites R to return W's value.  Values in the history are
unique, so the result is not linearizable.  Prints what it changed to
stderr; exit 0, or 3 when the history has no such triple.
"""

import json
import sys


def installs_value(r):
    return r["op"] == "put" or (r["op"] == "update" and r.get("existed") is True)


def changes_value(r):
    return r["op"] in ("put", "delete") or (r["op"] == "update" and r.get("existed") is True)


def main(argv):
    src, dst = argv[1], argv[2]
    with open(src) as f:
        recs = [json.loads(line) for line in f if line.strip()]
    done = [r for r in recs if r["ok"] is True]
    by_key = {}
    for r in done:
        by_key.setdefault(r["key"], []).append(r)

    best = None
    for key, rs in by_key.items():
        writes = sorted((r for r in rs if r["op"] != "get"), key=lambda r: r["ret"])
        reads = [r for r in rs if r["op"] == "get"]
        # prefer cache hits, then the latest read
        reads.sort(key=lambda r: (r.get("cache") == "HIT", r["call"]), reverse=True)
        for rd in reads[:200]:
            xs = [x for x in writes if changes_value(x) and x["ret"] < rd["call"]]
            for x in reversed(xs[-20:]):
                ws = [w for w in writes if installs_value(w) and w["ret"] < x["call"]
                      and w["value"] != rd["value"]]
                if ws:
                    best = (rd, x, ws[-1])
                    break
            if best:
                break
        if best:
            break
    if best is None:
        print("mutate: no read/write/write triple found", file=sys.stderr)
        return 3
    rd, x, w = best
    print("mutate: key %s: read by %s at [%.6f, %.6f] (cache %s) now returns %s, "
          "written by %s (ret %.6f) and overwritten by %s %s (ret %.6f)"
          % (json.dumps(rd["key"]), rd["client"], rd["call"], rd["ret"],
             rd.get("cache"), json.dumps(w["value"]), w["client"], w["ret"],
             x["client"], x["op"], x["ret"]), file=sys.stderr)
    rd["value"] = w["value"]
    rd["mutated"] = True
    with open(dst, "w") as f:
        for r in recs:
            f.write(json.dumps(r, sort_keys=True) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
