"""The flake detector: verify.yml on a healthy reference stack, many times in a row (CWS_FLAKE_RUNS, default 20).
Every run must be GO, with the same criteria and the same number of records: a check that is sometimes red on a
healthy service (a race, a timeout too tight, a rate limit hit) would make the gate cry wolf."""
from __future__ import annotations

import os
import statistics

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.matrix_full]

RUNS = int(os.environ.get("CWS_FLAKE_RUNS", "20"))


def test_consecutive_healthy_runs_are_all_go(matrix):
    seen = []
    for number in range(1, RUNS + 1):
        matrix.stack.clear_faults()  # keeps the job heartbeat fresh, as the cron job does on a real host
        matrix.stack.fresh_rate_window()  # each run a new session: run after run would be one window apart
        run = matrix.run("verify.yml")
        assert run.rc == 0 and run.verdict == "GO", "run %d of %d was not GO:\n%s" % (number, RUNS, run.tail())
        outcomes = run.outcomes()
        records = sum(len(c["records"]) for c in run.report["criteria"])
        seen.append((run.elapsed, tuple(sorted(outcomes.items())), records))
        assert outcomes == dict(seen[0][1]), "run %d: the criteria's outcomes changed" % number
        assert records == seen[0][2], "run %d: %d records, the first run had %d" % (number, records, seen[0][2])
    times = [item[0] for item in seen]
    print("%d healthy runs, all GO: %.2f s median, %.2f s slowest" % (RUNS, statistics.median(times), max(times)))
