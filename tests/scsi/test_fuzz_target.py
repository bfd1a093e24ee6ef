"""A seeded slice of the nightly fuzzing run (tests/fuzz/fuzz_target.py) against `serverfree datamover serve`.

3,000 mutated PDUs and 10,000 mutated EXTENDED COPY lists with a fixed seed; the run must leave the
ACL-masked pattern LUN byte-identical and the target serving (TEST UNIT READY, write/read, EXTENDED COPY).
"""
from __future__ import annotations

import io

from tests.fuzz.fuzz_target import run

SEED = 20261205


def test_seeded_fuzz_slice_leaves_the_pattern_and_the_target_intact(tmp_path):
    out = io.StringIO()
    result = run(3000, 10_000, SEED, workdir=tmp_path, out=out)
    report = out.getvalue()
    print(report)
    assert result.ok, report
    assert set(result.checks) == {"pattern LUN identical", "TEST UNIT READY", "write and read back",
                                  "EXTENDED COPY still works", "target process alive"}
    assert result.counts["pdus"] == 3000 and result.counts["lists"] == 10_000
    # The slice reaches the interesting paths: lists naming the masked LUN refused, some copies done,
    # malformed lists refused with ILLEGAL REQUEST, some fuzzing sessions dropped by the target.
    assert result.counts["list.check.a/0d/02"] > 0, report
    assert result.counts["list.good"] > 0, report
    assert sum(v for k, v in result.counts.items() if k.startswith("list.check.5/")) > 1000, report
    assert f"seed {SEED}" in report
