#!/usr/bin/env python3
# Copyright (c) kvserver authors
"""Unit tests of lincheck.py on hand-made histories.  Exit 0 when all pass."""

import io
import json
import os
import random
import subprocess
import sys
import tempfile
import unittest
from contextlib import redirect_stdout

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lincheck  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))


def op(client, op, value, call, ret, key="k", ok=True, existed=None):
    rec = {"client": client, "key": key, "op": op, "value": value, "ok": ok,
           "call": call, "ret": ret}
    if existed is not None:
        rec["existed"] = existed
    return rec


def put(c, v, call, ret, **kw):
    return op(c, "put", v, call, ret, **kw)


def get(c, v, call, ret, **kw):
    return op(c, "get", v, call, ret, **kw)


def delete(c, call, ret, existed=None, **kw):
    return op(c, "delete", None, call, ret, existed=existed, **kw)


def update(c, v, call, ret, existed=None, **kw):
    return op(c, "update", v, call, ret, existed=existed, **kw)


def check(history):
    """Run the checker on records; returns (exit code, printed output)."""
    with tempfile.NamedTemporaryFile("w", suffix=".jsonl", delete=False) as f:
        for rec in history:
            f.write(json.dumps(rec) + "\n")
        path = f.name
    try:
        out = io.StringIO()
        with redirect_stdout(out):
            rc = lincheck.main([path, "--timeout", "60"])
        return rc, out.getvalue()
    finally:
        os.unlink(path)


class Linearizable(unittest.TestCase):
    def assertLinearizable(self, history):
        rc, out = check(history)
        self.assertEqual(rc, 0, "expected linearizable, got:\n" + out)

    def test_empty_history(self):
        self.assertLinearizable([])

    def test_sequential(self):
        self.assertLinearizable([
            get(1, None, 0, 1),
            put(1, "a", 2, 3, existed=False),
            get(2, "a", 4, 5),
            put(2, "b", 6, 7, existed=True),
            get(1, "b", 8, 9),
            delete(1, 10, 11, existed=True),
            get(2, None, 12, 13),
            delete(2, 14, 15, existed=False),
        ])

    def test_read_absent_before_put(self):
        self.assertLinearizable([
            get(1, None, 0, 1),
            put(2, "a", 2, 3),
            get(1, "a", 4, 5),
        ])

    def test_read_absent_concurrent_with_first_put(self):
        self.assertLinearizable([
            put(1, "a", 0, 10),
            get(2, None, 1, 2),
            get(3, "a", 3, 4),
            get(2, "a", 5, 6),
        ])

    def test_overlapping_writes_reads_see_either(self):
        # a and b overlap: reads during them may see either order
        self.assertLinearizable([
            put(1, "a", 0, 10),
            put(2, "b", 1, 9),
            get(3, "a", 2, 3),
            get(3, "b", 4, 5),
            get(4, "b", 11, 12),
        ])
        self.assertLinearizable([
            put(1, "a", 0, 10),
            put(2, "b", 1, 9),
            get(3, "b", 2, 3),
            get(3, "a", 4, 5),
            get(4, "a", 11, 12),
        ])
        self.assertLinearizable([
            put(1, "a", 0, 10),
            put(2, "b", 1, 9),
            get(3, None, 0.5, 0.6),
            get(4, "b", 11, 12),
        ])

    def test_concurrent_reads_overlapping_each_other(self):
        # two overlapping reads may be ordered either way
        self.assertLinearizable([
            put(1, "a", 0, 1),
            put(1, "b", 2, 10),
            get(2, "b", 3, 8),
            get(3, "a", 4, 9),
        ])

    def test_delete_then_get_null(self):
        self.assertLinearizable([
            put(1, "a", 0, 1),
            delete(2, 2, 3, existed=True),
            get(1, None, 4, 5),
            delete(1, 6, 7, existed=False),
            get(2, None, 8, 9),
        ])

    def test_delete_plain_ok(self):
        self.assertLinearizable([
            delete(1, 0, 1),          # no existed information
            put(1, "a", 2, 3),
            delete(2, 4, 5),
            get(1, None, 6, 7),
        ])

    def test_delete_with_boolean_value_field(self):
        # {"op":"delete","value":true} is read as existed=true
        self.assertLinearizable([
            put(1, "a", 0, 1),
            op(2, "delete", True, 2, 3),
            get(1, None, 4, 5),
        ])

    def test_touching_intervals_count_as_concurrent(self):
        self.assertLinearizable([
            put(1, "a", 0, 5),
            get(2, None, 5, 6),
        ])

    def test_unknown_write_that_took_effect_late(self):
        # the write's connection was reset; its effect shows up much later
        self.assertLinearizable([
            put(1, "a", 0, 1),
            put(2, "x", 2, None, ok="unknown"),
            get(3, "a", 3, 4),
            get(3, "a", 10, 11),
            get(3, "x", 20, 21),
            get(1, "x", 22, 23),
        ])

    def test_unknown_write_that_never_took_effect(self):
        self.assertLinearizable([
            put(1, "a", 0, 1),
            put(2, "x", 2, None, ok="unknown"),
            get(3, "a", 3, 4),
            get(3, "a", 100, 101),
        ])

    def test_failed_write_ignored(self):
        self.assertLinearizable([
            put(1, "a", 0, 1),
            put(2, "x", 2, 3, ok=False),
            get(3, "a", 4, 5),
        ])

    def test_update_only_if_present(self):
        self.assertLinearizable([
            update(1, "u1", 0, 1, existed=False),
            get(2, None, 2, 3),
            put(1, "a", 4, 5),
            update(2, "u2", 6, 7, existed=True),
            get(1, "u2", 8, 9),
            delete(1, 10, 11),
            update(2, "u3", 12, 13),     # no row: no effect, no result
            get(1, None, 14, 15),
        ])

    def test_keys_are_independent(self):
        self.assertLinearizable([
            put(1, "a", 0, 1, key="x"),
            put(1, "b", 2, 3, key="y"),
            get(2, "a", 4, 5, key="x"),
            get(2, None, 4, 5, key="z"),
            get(2, "b", 6, 7, key="y"),
        ])

    def test_put_existed_flags(self):
        self.assertLinearizable([
            put(1, "a", 0, 10, existed=False),
            put(2, "b", 1, 9, existed=True),   # so a went first
            get(3, "b", 11, 12),
        ])


class NotLinearizable(unittest.TestCase):
    def assertViolation(self, history, mention=None):
        rc, out = check(history)
        self.assertEqual(rc, 1, "expected a violation, got:\n" + out)
        self.assertIn("NOT linearizable", out)
        if mention is not None:
            self.assertIn(mention, out)
        return out

    def test_stale_read_after_completed_overwrite(self):
        out = self.assertViolation([
            put(1, "a", 0, 1),
            put(1, "b", 2, 3),
            get(2, "a", 4, 5),
        ], mention='"a"')
        self.assertIn("overwritten before the read began", out)

    def test_stale_read_from_cache_after_delete(self):
        self.assertViolation([
            put(1, "a", 0, 1),
            get(2, "a", 2, 3),
            delete(1, 4, 5),
            get(2, "a", 6, 7),
        ])

    def test_read_of_never_written_value(self):
        out = self.assertViolation([
            put(1, "a", 0, 1),
            get(2, "zzz", 2, 3),
        ])
        self.assertIn("no operation in the history ever wrote", out)

    def test_read_new_then_later_read_old(self):
        # concurrent write of b: one read sees b, a later read sees a again
        self.assertViolation([
            put(1, "a", 0, 1),
            put(1, "b", 2, 20),
            get(2, "b", 3, 4),
            get(3, "a", 5, 6),
        ])

    def test_lost_acknowledged_write(self):
        self.assertViolation([
            get(1, None, 0, 1),
            put(1, "a", 2, 3),
            get(2, None, 4, 5),
        ])

    def test_lost_acknowledged_write_with_concurrent_noise(self):
        self.assertViolation([
            put(1, "a", 0, 1),
            put(2, "b", 2, 3),
            put(3, "c", 2.5, 10),
            get(4, "b", 3.5, 4),
            get(4, "a", 11, 12),      # a was overwritten by b and c
        ])

    def test_read_absent_after_acknowledged_put(self):
        self.assertViolation([
            put(1, "a", 0, 1),
            get(2, None, 2, 3),
        ])

    def test_deleted_key_resurrected(self):
        self.assertViolation([
            put(1, "a", 0, 1),
            delete(1, 2, 3, existed=True),
            get(2, None, 4, 5),
            get(2, "a", 6, 7),
        ])

    def test_wrong_existed_flag(self):
        self.assertViolation([
            put(1, "a", 0, 1),
            put(2, "b", 2, 3, existed=False),   # 201 "created", but a existed
        ])
        self.assertViolation([
            delete(1, 0, 1, existed=True),      # nothing was ever written
        ])

    def test_update_of_absent_key_visible(self):
        self.assertViolation([
            update(1, "u", 0, 1),               # no row: must be a no-op
            get(2, "u", 2, 3),
        ])

    def test_unknown_write_cannot_explain_read_before_its_call(self):
        self.assertViolation([
            put(1, "a", 0, 1),
            get(2, "x", 2, 3),
            put(3, "x", 4, None, ok="unknown"),
        ])

    def test_violation_on_one_key_of_several(self):
        out = self.assertViolation([
            put(1, "a", 0, 1, key="good"),
            get(2, "a", 2, 3, key="good"),
            put(1, "a", 0, 1, key="bad"),
            put(1, "b", 2, 3, key="bad"),
            get(2, "a", 4, 5, key="bad"),
        ])
        self.assertIn('key "bad": NOT linearizable', out)
        self.assertNotIn('key "good": NOT', out)


def brute_force_linearizable(records):
    """Reference answer for tiny single-key histories: try every order that
    respects real time (a before b when a.ret < b.call); unknown-outcome
    writes have ret = infinity (placing them last = never happening)."""
    ops = []
    for i, r in enumerate(records):
        o = lincheck.parse_op(r, i + 1)
        if o is not None:
            ops.append(o)
    n = len(ops)

    def dfs(placed, state):
        if len(placed) == n:
            return True
        for i, o in enumerate(ops):
            if i in placed:
                continue
            if any(j not in placed and j != i and ops[j].ret < o.call
                   for j in range(n)):
                continue
            allowed, ns = lincheck.step(state, o)
            if allowed and dfs(placed | {i}, ns):
                return True
        return False

    return dfs(frozenset(), None)


class AgainstBruteForce(unittest.TestCase):
    def random_history(self, rng):
        n = rng.randint(1, 7)
        recs = []
        for c in range(n):
            call = rng.randint(0, 8)
            ret = call + rng.randint(0, 4)      # integer times: many ties
            kind = rng.choice(["get", "get", "put", "put", "delete", "update"])
            ok = True
            if kind != "get" and rng.random() < 0.15:
                ok = "unknown"
            elif rng.random() < 0.05:
                ok = False
            value = rng.choice(["a", "b", "c"])
            if kind == "get" and rng.random() < 0.3:
                value = None
            existed = rng.choice([None, None, True, False]) if kind != "get" else None
            recs.append(op(c, kind, None if kind == "delete" else value, call,
                           None if ok == "unknown" else ret, ok=ok, existed=existed))
        return recs

    def test_agrees_with_brute_force_on_random_tiny_histories(self):
        rng = random.Random(20240601)
        verdicts = {True: 0, False: 0}
        for _ in range(3000):
            recs = self.random_history(rng)
            want = brute_force_linearizable(recs)
            ops = [o for o in (lincheck.parse_op(r, i + 1) for i, r in enumerate(recs))
                   if o is not None]
            got = lincheck.check_key("k", ops).ok
            self.assertEqual(got, want, "disagreement on:\n" +
                             "\n".join(json.dumps(r) for r in recs))
            verdicts[want] += 1
        # the generator must produce both kinds for this to mean anything
        self.assertGreater(verdicts[True], 300)
        self.assertGreater(verdicts[False], 300)


class InputAndScale(unittest.TestCase):
    def test_bad_input_exit_2(self):
        with tempfile.NamedTemporaryFile("w", suffix=".jsonl", delete=False) as f:
            f.write('{"key":"k","op":"frob","ok":true,"call":0,"ret":1}\n')
            path = f.name
        try:
            out = io.StringIO()
            with redirect_stdout(out):
                err = io.StringIO()
                old, sys.stderr = sys.stderr, err
                try:
                    rc = lincheck.main([path])
                finally:
                    sys.stderr = old
            self.assertEqual(rc, 2)
        finally:
            os.unlink(path)

    def test_command_line_exit_codes(self):
        good = [put(1, "a", 0, 1), get(2, "a", 2, 3)]
        bad = [put(1, "a", 0, 1), put(1, "b", 2, 3), get(2, "a", 4, 5)]
        for hist, want in ((good, 0), (bad, 1)):
            data = "".join(json.dumps(r) + "\n" for r in hist)
            p = subprocess.run([sys.executable, os.path.join(HERE, "lincheck.py"), "-"],
                               input=data, capture_output=True, text=True, timeout=60)
            self.assertEqual(p.returncode, want, p.stdout + p.stderr)

    @staticmethod
    def simulate(seed, nclients=7, nops=3000):
        """A history of an atomic register under random concurrency: each op
        takes effect at a random instant inside its interval."""
        rng = random.Random(seed)
        t = [0.0] * nclients
        events = []
        for n in range(nops):
            c = rng.randrange(nclients)
            call = t[c] + rng.random()
            ret = call + rng.random() * 3
            at = call + (ret - call) * rng.random()
            t[c] = ret
            r = rng.random()
            kind = "get" if r < 0.5 else ("put" if r < 0.85 else "delete")
            events.append((at, c, kind, "c%d-%d" % (c, n), call, ret))
        events.sort()
        state = None
        hist = []
        for at, c, kind, v, call, ret in events:
            if kind == "get":
                hist.append(get(c, state, call, ret))
            elif kind == "put":
                hist.append(put(c, v, call, ret, existed=state is not None))
                state = v
            else:
                hist.append(delete(c, call, ret, existed=state is not None))
                state = None
        return hist

    def test_large_random_linearizable_history_is_fast(self):
        import time
        hist = self.simulate(1)
        t0 = time.monotonic()
        rc, out = check(hist)
        self.assertEqual(rc, 0, out)
        self.assertLess(time.monotonic() - t0, 60)

    def test_large_history_with_a_planted_stale_read(self):
        # plant a read of a value overwritten long before the read began
        hist = self.simulate(2)
        hist.sort(key=lambda r: r["call"])
        writes = [r for r in hist if r["op"] == "put"]
        old = writes[len(writes) // 2]
        tmax = max(r["ret"] for r in hist)
        hist.append(put(99, "late-overwrite", tmax + 1, tmax + 2))
        hist.append(get(98, old["value"], tmax + 3, tmax + 4))
        rc, out = check(hist)
        self.assertEqual(rc, 1, out)
        self.assertIn(old["value"], out)

    def test_unknown_outcomes_in_a_large_history(self):
        hist = self.simulate(3)
        # turn some writes into unknown outcomes: still linearizable
        # (each may or may not have happened, and did happen)
        rng = random.Random(3)
        for r in hist:
            if r["op"] != "get" and rng.random() < 0.01:
                r["ok"] = "unknown"
                r["ret"] = None
        rc, out = check(hist)
        self.assertEqual(rc, 0, out)


if __name__ == "__main__":
    runner = unittest.TextTestRunner(stream=sys.stdout, verbosity=2)
    result = unittest.main(testRunner=runner, exit=False).result
    sys.exit(0 if result.wasSuccessful() else 1)
