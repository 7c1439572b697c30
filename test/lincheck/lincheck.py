#!/usr/bin/env python3
# Copyright (c) kvserver authors
"""Linearizability checker for key-value histories (Python 3 standard library only).

usage: lincheck.py [--timeout SECONDS] [--max-report N] HISTORY [HISTORY ...]
       (HISTORY "-" reads standard input)

A history is JSON lines, one operation each:

  {"client": c, "key": k, "op": "put"|"get"|"delete"|"update",
   "value": v, "ok": true|false|"unknown", "call": t0, "ret": t1,
   "existed": true|false|null}            (existed: optional)

  get     value = the value returned, null when the key was absent
  put     value = the value written; existed (optional) = whether the key
          existed before the write (HTTP 200 replaced / 201 created)
  delete  existed (optional) = whether a key existed (HTTP 204 / 404,
          kv_delete's boolean); for compatibility a boolean "value" is read
          as existed; null / "ok" means "just ok", no information
  update  conditional write (SQL UPDATE ... WHERE key = k): sets value only
          if the key exists; existed (optional) = whether a row was updated

  call, ret: invocation and completion times from ONE monotonic clock.
  ok: true      the operation completed with the result recorded
      false     it certainly had no effect (refused): ignored
      "unknown" a write whose outcome is unknown (timeout, connection reset):
                it may take effect at any point after its call, or never;
                it is modelled with ret = +infinity and no result, which is
                the same thing (an operation linearized after every completed
                one has no observable effect).  Reads with an unknown outcome
                carry no information and are ignored.

Each key is checked on its own (linearizability is compositional) against a
register with an "absent" state that starts absent, with the Wing & Gong
search as porcupine does it: operations are call/return entries in a
time-ordered doubly linked list; the search linearizes any pending call whose
result matches the model, backtracks when it reaches a return of an operation
not yet linearized, and memoizes (set of linearized operations, state) pairs
so that no configuration is explored twice.  Calls sort before returns at the
same instant (touching operations count as concurrent: permissive).

Exit status: 0 every key is linearizable; 1 some key is not (a counterexample
summary is printed for each); 2 bad input or the time limit was reached
(inconclusive).
"""

import argparse
import json
import math
import sys
import time

INF = math.inf
WRITE_OPS = ("put", "delete", "update")
ALL_OPS = ("get",) + WRITE_OPS


class HistoryError(Exception):
    pass


class Timeout(Exception):
    pass


class Op:
    __slots__ = ("id", "client", "key", "op", "value", "existed", "call", "ret",
                 "unknown", "line")

    def __init__(self, client, key, op, value, existed, call, ret, unknown, line):
        self.id = -1
        self.client = client
        self.key = key
        self.op = op
        self.value = value
        self.existed = existed
        self.call = call
        self.ret = ret
        self.unknown = unknown
        self.line = line

    def describe(self):
        v = "absent" if self.value is None else json.dumps(self.value)
        if self.op == "get":
            what = "get -> %s" % v
        elif self.op == "delete":
            what = "delete"
        else:
            what = "%s %s" % (self.op, v)
        if self.existed is not None and self.op != "get":
            what += " (existed=%s)" % ("true" if self.existed else "false")
        ret = "inf (outcome unknown)" if self.ret == INF else "%.6f" % self.ret
        return "client %s: %s  [call %.6f, ret %s]" % (self.client, what, self.call, ret)


def _bool_or_none(x, what, lineno):
    if x is None or isinstance(x, bool):
        return x
    raise HistoryError("line %d: %s must be true, false or null" % (lineno, what))


def parse_op(rec, lineno):
    """An Op, or None when the record carries no information."""
    if not isinstance(rec, dict):
        raise HistoryError("line %d: not a JSON object" % lineno)
    for f in ("key", "op", "ok", "call"):
        if f not in rec:
            raise HistoryError("line %d: missing field %r" % (lineno, f))
    op = rec["op"]
    if op not in ALL_OPS:
        raise HistoryError("line %d: unknown op %r" % (lineno, op))
    ok = rec["ok"]
    if ok is False:
        return None
    if ok is True:
        unknown = False
    elif ok == "unknown":
        unknown = True
    else:
        raise HistoryError("line %d: ok must be true, false or \"unknown\"" % lineno)
    if unknown and op == "get":
        return None
    call = rec["call"]
    if not isinstance(call, (int, float)) or isinstance(call, bool):
        raise HistoryError("line %d: call must be a number" % lineno)
    if unknown:
        ret = INF
    else:
        ret = rec.get("ret")
        if not isinstance(ret, (int, float)) or isinstance(ret, bool):
            raise HistoryError("line %d: ret must be a number" % lineno)
        if ret < call:
            raise HistoryError("line %d: ret %.6f before call %.6f" % (lineno, ret, call))
    value = rec.get("value")
    existed = rec.get("existed")
    if op == "delete":
        if existed is None and isinstance(value, bool):
            existed = value
        value = None
    elif op in ("put", "update"):
        if value is None:
            raise HistoryError("line %d: %s needs a value" % (lineno, op))
    if value is not None and not isinstance(value, str):
        value = json.dumps(value, sort_keys=True)  # any JSON value, compared as text
    existed = _bool_or_none(existed, "existed", lineno)
    if unknown:
        existed = None  # no result observed
    key = rec["key"]
    if not isinstance(key, str):
        key = json.dumps(key, sort_keys=True)
    return Op(rec.get("client"), key, op, value, existed, float(call), float(ret),
              unknown, lineno)


def read_history(paths):
    ops = []
    ignored = 0
    for path in paths:
        f = sys.stdin if path == "-" else open(path, encoding="utf-8")
        try:
            for lineno, line in enumerate(f, 1):
                line = line.strip()
                if not line:
                    continue
                try:
                    rec = json.loads(line)
                except ValueError as e:
                    raise HistoryError("%s line %d: bad JSON: %s" % (path, lineno, e))
                o = parse_op(rec, lineno)
                if o is None:
                    ignored += 1
                else:
                    ops.append(o)
        finally:
            if f is not sys.stdin:
                f.close()
    return ops, ignored


def step(state, o):
    """The register model: (allowed, new state).  state None = absent."""
    kind = o.op
    if kind == "get":
        return state == o.value, state
    present = state is not None
    if o.existed is not None and o.existed != present:
        return False, state
    if kind == "put":
        return True, o.value
    if kind == "delete":
        return True, None
    # update: only an existing key changes
    return True, (o.value if present else None)


class Result:
    def __init__(self, key, ops):
        self.key = key
        self.ops = ops
        self.ok = True
        self.explored = 0
        # counterexample: the deepest point the search reached
        self.depth = -1
        self.prefix_tail = []     # last linearized ops [(op, state after)]
        self.state = None         # state after the prefix
        self.blocking = None      # op whose return was reached unlinearized
        self.pending = []         # ops open at that point


def check_key(key, ops, deadline=None, keep=12):
    """Wing & Gong / porcupine search over one key's operations."""
    # Ops are numbered in call order, so that the set of linearized ops is
    # "all below base" plus a narrow bitmask above it (the concurrency
    # window): memo entries stay small however long the history is.
    ops = sorted(ops, key=lambda o: (o.call, o.line))
    res = Result(key, ops)
    n = len(ops)
    if n == 0:
        return res
    for i, o in enumerate(ops):
        o.id = i

    # Events: (time, 0 call | 1 return, op).  Node 0 is the list head, node
    # 2i+1 is op i's call and 2i+2 its return.
    events = []
    for i, o in enumerate(ops):
        events.append((o.call, 0, i))
        events.append((o.ret, 1, i))
    events.sort()
    NIL = -1
    size = 2 * n + 1
    nxt = [NIL] * size
    prv = [NIL] * size
    prev_node = 0
    for _, kind, i in events:
        node = 2 * i + 1 + kind
        nxt[prev_node] = node
        prv[node] = prev_node
        prev_node = node

    def lift(i):
        c = 2 * i + 1
        r = c + 1
        p, q = prv[c], nxt[c]
        nxt[p] = q
        if q != NIL:
            prv[q] = p
        p, q = prv[r], nxt[r]
        nxt[p] = q
        if q != NIL:
            prv[q] = p

    def unlift(i):
        c = 2 * i + 1
        r = c + 1
        p, q = prv[r], nxt[r]
        nxt[p] = r
        if q != NIL:
            prv[q] = r
        p, q = prv[c], nxt[c]
        nxt[p] = c
        if q != NIL:
            prv[q] = c

    finite = [o.ret != INF for o in ops]
    remaining = sum(finite)
    base = 0              # ops 0 .. base-1 are all linearized
    mask = 0              # bit j: op base+j is linearized (bit 0 never set)
    state = None
    seen = set()
    stack = []            # (op index, state before it)
    entry = nxt[0]
    explored = 0
    while remaining > 0:
        if entry & 1:                       # a call
            i = (entry - 1) >> 1
            allowed, new_state = step(state, ops[i])
            if allowed:
                nbase = base
                nmask = mask | (1 << (i - base))
                if nmask & 1:
                    # bit 0 set: strip the run of low ones
                    low = (~nmask & (nmask + 1)).bit_length() - 1
                    nmask >>= low
                    nbase += low
                memo = (nbase, nmask, new_state)
                if memo not in seen:
                    seen.add(memo)
                    stack.append((i, state))
                    state = new_state
                    base, mask = nbase, nmask
                    lift(i)
                    if finite[i]:
                        remaining -= 1
                    entry = nxt[0]
                    explored += 1
                    if deadline is not None and (explored & 0x3fff) == 0 \
                            and time.monotonic() > deadline:
                        raise Timeout(key)
                    continue
            entry = nxt[entry]
        else:                               # a return: its op must go first
            if len(stack) > res.depth:
                res.depth = len(stack)
                res.blocking = ops[(entry - 2) >> 1]
                res.state = state
                tail = stack[-keep:]
                res.prefix_tail = []
                for k, (j, _) in enumerate(tail):
                    after = tail[k + 1][1] if k + 1 < len(tail) else state
                    res.prefix_tail.append((ops[j], after))
                pend = []
                e = nxt[0]
                while e != NIL and e != entry:
                    if e & 1:
                        pend.append(ops[(e - 1) >> 1])
                    e = nxt[e]
                res.pending = pend
            if not stack:
                res.ok = False
                break
            i, state = stack.pop()
            if i >= base:
                mask ^= 1 << (i - base)
            else:
                # ops i .. base-1 were all linearized; all but i still are
                d = base - i
                mask = ((mask << d) | ((1 << d) - 1)) & ~1
                base = i
            unlift(i)
            if finite[i]:
                remaining += 1
            entry = nxt[2 * i + 1]
    res.explored = explored
    return res


def fmt_state(s):
    return "absent" if s is None else json.dumps(s)


def explain(res, out, max_report):
    ops = res.ops
    nfin = sum(1 for o in ops if o.ret != INF)
    print("key %s: NOT linearizable (%d operations, %d with unknown outcome)"
          % (json.dumps(res.key), len(ops), len(ops) - nfin), file=out)
    print("  the longest linearization found covers %d operations; its last ones:"
          % res.depth, file=out)
    if not res.prefix_tail:
        print("    (none)", file=out)
    for o, after in res.prefix_tail[-max_report:]:
        print("    %s   => %s" % (o.describe(), fmt_state(after)), file=out)
    print("  state after it: %s" % fmt_state(res.state), file=out)
    b = res.blocking
    print("  stuck at the return of an operation that cannot take effect:", file=out)
    print("    %s" % (b.describe() if b else "?"), file=out)
    others = [o for o in res.pending if o is not b]
    print("  other operations open at that point (none fits next either): %d"
          % len(others), file=out)
    for o in others[:max_report]:
        print("    %s" % o.describe(), file=out)
    if len(others) > max_report:
        print("    ... and %d more" % (len(others) - max_report), file=out)
    if b is not None and b.op == "get":
        if b.value is None:
            print("  hint: the read saw the key absent", file=out)
        else:
            writers = [o for o in ops if o.op in ("put", "update") and o.value == b.value]
            if not writers:
                print("  hint: no operation in the history ever wrote %s"
                      % json.dumps(b.value), file=out)
            for w in writers[:3]:
                print("  hint: the value read was written by %s" % w.describe(), file=out)
                later = [o for o in ops if o.op in WRITE_OPS and o is not w
                         and o.ret != INF and o.call > w.ret and o.ret < b.call]
                later.sort(key=lambda o: o.ret)
                if later:
                    print("        and overwritten before the read began by %d write(s), e.g.:"
                          % len(later), file=out)
                    for o in later[-3:]:
                        print("          %s" % o.describe(), file=out)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("history", nargs="+", help="JSON-lines history file(s), - for stdin")
    ap.add_argument("--timeout", type=float, default=0,
                    help="give up (exit 2) after this many seconds; 0 = never")
    ap.add_argument("--max-report", type=int, default=12,
                    help="operations listed per section of a counterexample")
    ap.add_argument("--quiet", action="store_true", help="only print violations")
    args = ap.parse_args(argv)

    try:
        ops, ignored = read_history(args.history)
    except (HistoryError, OSError) as e:
        print("lincheck: %s" % e, file=sys.stderr)
        return 2

    by_key = {}
    for o in ops:
        by_key.setdefault(o.key, []).append(o)
    deadline = time.monotonic() + args.timeout if args.timeout > 0 else None
    t0 = time.monotonic()
    bad = 0
    explored = 0
    unknown = sum(1 for o in ops if o.unknown)
    for key in sorted(by_key):
        kops = by_key[key]
        try:
            res = check_key(key, kops, deadline, keep=max(args.max_report, 1))
        except Timeout:
            print("lincheck: time limit of %.0f s reached while checking key %s:"
                  " inconclusive" % (args.timeout, json.dumps(key)), file=sys.stderr)
            return 2
        explored += res.explored
        if not res.ok:
            bad += 1
            explain(res, sys.stdout, args.max_report)
        elif not args.quiet:
            print("key %s: linearizable (%d operations, %d unknown outcome)"
                  % (json.dumps(key), len(kops), sum(1 for o in kops if o.unknown)))
    summary = {"ops": len(ops), "ignored": ignored, "unknown": unknown,
               "keys": len(by_key), "violations": bad, "explored": explored,
               "seconds": round(time.monotonic() - t0, 3)}
    print("lincheck summary: " + json.dumps(summary, sort_keys=True))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
