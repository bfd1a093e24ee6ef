"""Every shipped scenario (scenarios/*.yaml) runs through the real orchestrator and meets its expectations."""
from pathlib import Path

import pytest

from orchestrator.cli.scenario_cmd import run_file
from simulator.scenarios.load import load_ci_scenario

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"
FILES = sorted(SCENARIOS.glob("*.yaml"))


def test_at_least_twenty_scenarios_are_shipped():
    assert len(FILES) >= 20


def test_together_they_cover_every_rule_and_failover():
    """The scenario set checks each eligibility rule and each failover of the seed by its expectations."""
    seen_reasons, seen_failovers, flags, warnings = [], set(), set(), []
    for f in FILES:
        scen = load_ci_scenario(f)
        for step in scen.jobs:
            e = step.expect
            seen_reasons += [r.lower() for r in (e.not_server_free or [])]
            seen_failovers |= set(e.failovers or [])
            warnings += [w.lower() for w in (e.warnings or [])]
            if e.byte_identical and step.incremental:
                flags.add("restore -incremental")
            if e.compressed is False and "server-free->" in " ".join(e.failovers or []):
                flags.add("uncompressed after failover")
            if e.movers_used and len(e.movers_used) > 1:
                flags.add("movers in order")
            if step.count > 10:
                flags.add("capacity")
        if scen.expect.shoeshine_events is not None:
            flags.add("shoeshine")
        if scen.mode == "exact":
            flags.add("exact")
    for rule in ("enableserverfree", "fat32", "nonblock", "mask", "zone", "snapshot"):
        assert any(rule in r for r in seen_reasons), rule
    assert any("never encrypted" in w for w in warnings) and any("compression" in w for w in warnings)
    assert {"server-free->lan-free", "server-free->lan", "lan-free->lan", "server-free->server-free"} <= seen_failovers
    assert flags == {"restore -incremental", "uncompressed after failover", "movers in order", "capacity",
                     "shoeshine", "exact"}


@pytest.mark.parametrize("path", FILES, ids=[f.stem for f in FILES])
def test_scenario_meets_its_expectations(path):
    result = run_file(path)
    assert result.ok, "\n".join([result.error] + result.failures)
    assert result.jobs, "a scenario that runs no job proves nothing"
