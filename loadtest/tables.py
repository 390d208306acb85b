"""Helpers for the tables of loadtest/side-by-side.sh and loadtest/bench.sh: the JSON of
each repetition of a scenario (`NAME-R.json` in the output directory), its median and
spread (min-max), whether a run was clean, and the gateway's deliveries per write syscall
from two /stats readings (`--stats-before`, and one after the run)."""

import json
import os


def load(out, name):
    """The JSON in OUT/NAME.json, or None."""
    try:
        with open(os.path.join(out, name + ".json")) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def each(out, name, runs):
    """NAME-1 .. NAME-RUNS, those that exist."""
    return [s for s in (load(out, "%s-%d" % (name, r)) for r in range(1, runs + 1)) if s is not None]


def median(xs):
    xs = sorted(xs)
    n = len(xs)
    if n == 0:
        return None
    return xs[n // 2] if n % 2 else (xs[n // 2 - 1] + xs[n // 2]) / 2


# The repetitions a table is of (set by the script); a cell of fewer says so.
RUNS = None


def spread(xs, fmt="{:,.0f}"):
    """`median (min–max)` of the values, `median` alone for one, `n/a` for none; `k of R
    runs` added when fewer than RUNS have a value."""
    xs = [x for x in xs if x is not None]
    if not xs:
        return "n/a"
    m = fmt.format(median(xs))
    if len(xs) > 1:
        m = "%s (%s–%s)" % (m, fmt.format(min(xs)), fmt.format(max(xs)))
    if RUNS and len(xs) < RUNS:
        m += " [%d of %d runs]" % (len(xs), RUNS)
    return m


def ratio(a, b, fmt="{:.2f}×"):
    a, b = median([x for x in a if x is not None]), median([x for x in b if x is not None])
    return fmt.format(a / b) if a is not None and b else ""


def unclean(s):
    """What was wrong with one run (None: every message published and delivered once, in
    order, none lost)."""
    wrong = []
    if s.get("published", 0) == 0:
        wrong.append("nothing published")
    if s.get("publish_errors", 0):
        wrong.append("%d publish errors" % s["publish_errors"])
    for k in ["lost", "duplicates", "out_of_order", "missing"]:
        if s.get(k, 0):
            wrong.append("%s %d" % (k, s[k]))
    if s.get("received", 0) + s.get("lost", 0) != s.get("expected", 0):
        wrong.append("received %d of %d" % (s.get("received", 0), s.get("expected", 0)))
    return ", ".join(wrong) or None


def cleanliness(runs):
    """`yes (3 of 3 runs)`, or what went wrong in which run."""
    if not runs:
        return "n/a"
    bad = ["run %d: %s" % (i + 1, w) for i, w in enumerate(unclean(s) for s in runs) if w]
    return "NO: " + "; ".join(bad) if bad else "yes (%d of %d runs)" % (len(runs), len(runs))


def gen_busy(s):
    """The generator's CPU time over the run as a percentage of the run's wall time (ramp,
    publishing, drain): near 100 %, its core was the bottleneck (None if not reported)."""
    wall = s.get("ramp_secs", 0) + s.get("delivery_secs", 0)
    cpu = s.get("generator_cpu_secs")
    return 100 * cpu / wall if cpu is not None and wall > 0 else None


def flat(obj, prefix=""):
    """A JSON object's numbers by dotted name."""
    out = {}
    for k, v in obj.items():
        if isinstance(v, dict):
            out.update(flat(v, prefix + k + "."))
        elif isinstance(v, (int, float)) and not isinstance(v, bool):
            out[prefix + k] = v
    return out


def write_key(stats):
    """The name of the write-syscall counter in a /stats reading, or None (an older server)."""
    keys = [k for k in stats if k.split(".")[-1] in ("public_writes", "writes") or k.endswith("_writes")]
    for want in ("public_writes", "writes"):
        for k in keys:
            if k.split(".")[-1] == want:
                return k
    return keys[0] if keys else None


def per_write(out, name):
    """Deliveries per write syscall over one run, from NAME-stats0.json (read just before
    the first publish) and NAME-stats1.json (after the run): None if either is missing or
    the server counts no writes."""
    a, b = load(out, name + "-stats0"), load(out, name + "-stats1")
    if not a or not b:
        return None
    a, b = flat(a), flat(b)
    w = write_key(b)
    d = next((k for k in ("messages.delivered", "delivered") if k in b), None)
    if not w or not d or w not in a or d not in a:
        return None
    writes = b[w] - a[w]
    return (b[d] - a[d]) / writes if writes > 0 else None


def has_write_counter(out, names):
    """True if any of these runs' /stats readings has a write counter."""
    return any(write_key(flat(s)) for s in (load(out, n + "-stats1") for n in names) if s)
