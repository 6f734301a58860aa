"""
plus_check.py: the tests of a humaneval+ or mbpp+ program, judged by EvalPlus's rules.

evaluate.py makes each program of those tasks this file's source followed by the task's data and one call,
and runs it in the guarded runner (execution.py):

    DATA = {"reference": "import math\n\n\ndef poly(...", "entry": "find_zero", "rule": "root", "atol": 0.0001,
            "restore": "a", "tests": [("base", "[[[-10, -2]], ...]"), ("plus", "[[[5, 10, -3, 1]], ...]")]}
    check(SOLUTION, **DATA)

SOLUTION is prompt + completion. For each test set in turn (base, then plus, as EvalPlus runs them, each in a
process of its own), check():
  1. runs the reference solution on a copy of each input (`restore` first turns the stored JSON input `a` into
     the arguments: MBPP+ keeps tuples as lists) and times it;
  2. runs the solution afresh, its top-level code included, then calls it on each input, within
     max(4 s, 4 x the reference's time) per input and min(60 s, their sum) + 2 s for the whole set;
  3. compares each output with the reference's: equal, or by the task's rule (`rule`), and floats within
     atol (1e-6 where the task sets none) and rtol 1e-7.
The first wrong output raises AssertionError, an input over its limit TimeoutError: the program fails. EvalPlus
computes the reference's outputs once and caches them; here each program computes them just before its run.

The rules are EvalPlus's as of its main branch (commit 26d6d00, October 2025). The 0.3.1 release on PyPI
differs in two ways: its least per-input limit was 1 s (4 s since af49138, "to minimize false positives"),
and it failed every HumanEval/32 sample, its own reference included (fixed by evalplus#241).
"""
import copy
import json
import math
import os
import signal
import sys
import time

MIN_LIMIT, FACTOR, SET_LIMIT = 4.0, 4.0, 60.0  # seconds per input at least, x reference time; per set at most
_kill, _pid, _deadline = os.kill, os.getpid(), math.inf  # our own references: the solution may patch os


def _alarm(signum, frame):
    # A call over its limit ends in TimeoutError. A solution that swallows it and runs on past the test set's
    # budget is killed, as EvalPlus kills its process then; SIGXCPU reads "timed out".
    if time.monotonic() >= _deadline:
        _kill(_pid, signal.SIGXCPU)
    signal.setitimer(signal.ITIMER_REAL, max(_deadline - time.monotonic(), 1e-3))
    raise TimeoutError("over EvalPlus's time limit")


def _limited(seconds, fn, *args):
    signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, max(min(seconds, _deadline - time.monotonic()), 1e-3))
    try:
        return fn(*args)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)


def _deep_tuple(x):  # for `restore`
    return tuple(map(_deep_tuple, x)) if isinstance(x, list) else x


def _reference(source, entry, rule, inputs):
    """Its outputs on copies of the inputs, each input's time limit, and its namespace."""
    ns = {}
    exec(source, ns)
    outputs, limits = [], []
    for args in inputs:
        args = copy.deepcopy(args)
        start = time.time()
        out = ns[entry](*args)
        limits.append(max(MIN_LIMIT, FACTOR * (time.time() - start)))
        outputs.append(out is not None if rule == "not None" else out)
    return outputs, limits, ns


def _pyramid_area(base, height):  # Mbpp/581, height perpendicular to the base: base^2 + 4 triangles, rounded
    slant = math.sqrt((base / 2) ** 2 + height ** 2)
    return round(base ** 2 + 4 * (base * slant) / 2)


def _padded_digit_distance(a, b):  # Mbpp/558: digit by digit, the shorter number padded with zeros
    a, b = str(a), str(b)
    width = max(len(a), len(b))
    return sum(abs(int(x) - int(y)) for x, y in zip(a.zfill(width), b.zfill(width)))


def _floats(x):  # a float, a non-empty list or tuple of floats, or a float array
    if isinstance(x, (list, tuple)):
        return bool(x) and all(isinstance(v, float) for v in x)
    np = sys.modules.get("numpy")  # not imported: then x is no array
    return isinstance(x, float) or (np is not None and isinstance(x, np.ndarray)
                                    and x.dtype in (np.float32, np.float64))


def _right(out, want, args, rule, atol):
    """(is out right?, the atol from here on). Equality or the task's rule, else floats within atol and rtol
    1e-7. Where the task sets no atol, the first float expected makes it 1e-6 for the rest of the set."""
    ok = out == want
    if rule == "set":
        ok = set(out) == set(want)
    elif rule == "not None":
        ok = out == want if isinstance(out, bool) else want == (out is not None)
    elif rule == "pyramid":
        ok = ok or abs(out - _pyramid_area(*args)) <= atol
    elif rule == "padded":
        ok = ok or out == _padded_digit_distance(*args)
    if atol == 0 and _floats(want):
        atol = 1e-6
    if not ok and atol != 0:
        import numpy
        ok = type(out) == type(want) and (not isinstance(want, (list, tuple)) or len(out) == len(want)) \
            and numpy.allclose(out, want, rtol=1e-07, atol=atol)
    return bool(ok), atol


def check(solution, reference, entry, rule, atol, tests, restore):
    global _deadline
    restore = eval(f"lambda a: {restore}")
    for name, stored in tests:
        inputs = [restore(a) for a in json.loads(stored)]
        want, limits, ref = _reference(reference, entry, rule, inputs)
        _deadline = time.monotonic() + min(SET_LIMIT, sum(limits)) + 2.0  # EvalPlus's budget for the set
        ns = {}
        _limited(math.inf, exec, solution, ns)
        fn, set_atol = ns[entry], atol
        for i, args in enumerate(inputs):
            out = _limited(limits[i], fn, *args)
            if rule == "root":  # find_zero: any root will do, by the prompt's own poly
                assert abs(ref["poly"](*args, out)) <= atol, f"{name} input {i}: {out!r} is no root"
                continue
            ok, set_atol = _right(out, want[i], args, rule, set_atol)
            assert ok, f"{name} input {i}: {repr(out)[:200]} where {repr(want[i])[:200]} is right"
