#!/usr/bin/env python
# Summarises an Autobahn|Testsuite fuzzingclient report (its index.json) for tests/autobahn/run.sh:
# counts per case group (the first number of the case id) and per behavior and close behavior,
# the ids of the cases that fail, and an exit status: 1 if any case fails, 0 otherwise.
#
# A case fails when, in groups 1-7, 9 and 10, its behavior is anything but OK, NON-STRICT or
# INFORMATIONAL (FAILED above all; also UNIMPLEMENTED, NO_CLOSE...) or its close behavior is
# FAILED or UNCLEAN (the two that Autobahn's own HTML report shows as failed); and when, in
# groups 12 and 13 (permessage-deflate), its behavior is anything but UNIMPLEMENTED (the gateway
# does not negotiate compression). Groups 11+ other than these are counted and never fail.
#
# Usage: summarize.py INDEX_JSON [AGENT]   (AGENT: the only agent in the report by default)
# Python 2.7 and 3.
from __future__ import print_function

import json
import sys

GATED = set([1, 2, 3, 4, 5, 6, 7, 9, 10])
UNIMPLEMENTED_EXPECTED = set([12, 13])
PASSING = set(["OK", "NON-STRICT", "INFORMATIONAL"])
FAILING_CLOSE = set(["FAILED", "UNCLEAN"])
BEHAVIORS = ["OK", "NON-STRICT", "INFORMATIONAL", "UNIMPLEMENTED", "FAILED"]
CLOSE_BEHAVIORS = ["OK", "INFORMATIONAL", "FAILED"]


def case_key(case_id):
    return tuple(int(part) for part in case_id.split("."))


def failure(group, case):
    """Why a case fails, or None."""
    behavior, close = case.get("behavior"), case.get("behaviorClose")
    if group in GATED:
        if behavior not in PASSING:
            return "behavior %s" % behavior
        if close in FAILING_CLOSE:
            return "close %s" % close
    elif group in UNIMPLEMENTED_EXPECTED and behavior != "UNIMPLEMENTED":
        return "behavior %s (permessage-deflate was negotiated)" % behavior
    return None


def table(rows, header):
    widths = [max(len(str(row[i])) for row in [header] + rows) for i in range(len(header))]
    for row in [header] + rows:
        print("  ".join(str(cell).rjust(width) for cell, width in zip(row, widths)))


def main(argv):
    if len(argv) not in (2, 3):
        print("usage: summarize.py INDEX_JSON [AGENT]", file=sys.stderr)
        return 2
    path = argv[1]
    with open(path) as f:
        report = json.load(f)
    if len(argv) == 3:
        agent = argv[2]
    elif len(report) == 1:
        agent = list(report)[0]
    else:
        print("summarize.py: %s has agents %s: name one" % (path, ", ".join(sorted(report))),
              file=sys.stderr)
        return 2
    cases = report.get(agent, {})
    if not cases:
        print("autobahn: no case in %s for agent %s" % (path, agent))
        return 1

    behaviors = list(BEHAVIORS)
    closes = list(CLOSE_BEHAVIORS)
    for case in cases.values():
        if case.get("behavior") not in behaviors:
            behaviors.append(case.get("behavior"))
        if case.get("behaviorClose") not in closes:
            closes.append(case.get("behaviorClose"))

    groups = {}
    failed = []
    for case_id in sorted(cases, key=case_key):
        case = cases[case_id]
        group = case_key(case_id)[0]
        counts = groups.setdefault(group, {"cases": 0})
        counts["cases"] += 1
        for column in ("behavior", "behaviorClose"):
            key = (column, case.get(column))
            counts[key] = counts.get(key, 0) + 1
        why = failure(group, case)
        if why:
            failed.append((case_id, why))

    header = ["group", "cases"] + behaviors + ["close " + c for c in closes]
    rows = []
    total = {"cases": 0}
    for group in sorted(groups):
        counts = groups[group]
        for key, n in counts.items():
            total[key] = total.get(key, 0) + n
    for name, counts in [(g, groups[g]) for g in sorted(groups)] + [("all", total)]:
        rows.append([name, counts["cases"]]
                    + [counts.get(("behavior", b), 0) for b in behaviors]
                    + [counts.get(("behaviorClose", c), 0) for c in closes])
    durations = [case.get("duration", 0) for case in cases.values()]
    print("Autobahn|Testsuite report %s: agent %s, %d cases, %d ms of case time"
          % (path, agent, len(cases), sum(durations)))
    table(rows, header)
    if failed:
        print("FAILED (%d): %s" % (len(failed), ", ".join("%s (%s)" % f for f in failed)))
        print("autobahn: FAIL: %d of %d cases failed" % (len(failed), len(cases)))
        return 1
    print("autobahn: PASS: no case failed (groups 1-7, 9, 10: OK, NON-STRICT or INFORMATIONAL; "
          "12-13: UNIMPLEMENTED)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
