"""Scenario loading errors carry no pydantic "Value error, " prefix (as the topology loader already does)."""
from pathlib import Path

import pytest

from orchestrator.cli import main

TOPO = Path(__file__).resolve().parents[2] / "scenarios" / "topologies" / "small.yaml"


@pytest.mark.parametrize("text, words", [
    (f"topology: {TOPO}\njobs:\n  - {{backup: A, restore: B}}\n",
     "jobs.0 (line 3): a job step names exactly one of backup or restore"),
    (f"topology: {TOPO}\nfaults:\n  - {{kind: lun_not_ready, target: 'ARR1:5'}}\njobs: [{{backup: 'CLIENT1:H:'}}]\n",
     "faults.0 (line 3): fault lun_not_ready on ARR1:5: give exactly one of"),
])
def test_scenario_error_has_no_value_error_prefix(tmp_path, capsys, text, words):
    bad = tmp_path / "bad.yaml"
    bad.write_text(text)
    assert main(["scenario", "run", str(bad)]) == 2
    err = capsys.readouterr().err
    assert words in err and "Value error" not in err, err


def test_sim_scenario_loader_strips_the_prefix_too(tmp_path):
    from simulator.scenarios.load import load_scenario

    bad = tmp_path / "sim.yaml"
    bad.write_text(f"topology: {TOPO}\nfaults: [{{kind: lun_not_ready, target: 'ARR1:5'}}]\n"
                   "backups: [{volume: 'CLIENT1:H:'}]\n")
    with pytest.raises(ValueError) as exc:
        load_scenario(bad)
    assert "give exactly one of" in str(exc.value) and "Value error" not in str(exc.value), str(exc.value)
