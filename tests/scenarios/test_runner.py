"""`serverfree scenario run`: failing expectations are named, JUnit is written, bad files are located."""
import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from orchestrator.cli import main

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"
TOPO = SCENARIOS / "topologies" / "small.yaml"


def _write(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text.replace("TOPO", str(TOPO)))
    return p


WRONG = """
topology: TOPO
options: {enableserverfree: yes}
volumes: [{id: "CLIENT1:H:", size: 1GiB}]
jobs:
  - backup: "CLIENT1:H:"
    expect: {path: lan, failovers: [server-free->lan-free], movers_used: [DM9], cpu_seconds: {CLIENT1: {min: 5}}}
expect:
  simulated_seconds: {max: 1}
"""

RIGHT = """
topology: TOPO
options: {enableserverfree: yes}
volumes: [{id: "CLIENT1:H:", size: 1GiB}]
jobs:
  - backup: "CLIENT1:H:"
    expect: {path: server-free, failovers: []}
"""


def test_a_wrong_expectation_exits_non_zero_naming_each_one(tmp_path, capsys):
    wrong, right = _write(tmp_path, "wrong.yaml", WRONG), _write(tmp_path, "right.yaml", RIGHT)
    junit = tmp_path / "junit.xml"
    rc = main(["scenario", "run", str(right), str(wrong), "--junit", str(junit)])
    out, err = capsys.readouterr()
    assert rc == 1
    assert "PASS right" in out and "FAIL wrong" in out and "1 of 2 scenarios passed" in out
    for why in ("path: expected lan, got server-free",
                "failovers: expected ['server-free->lan-free'], got none",
                "movers used: expected ['DM9'], got ['DM1']",
                "simulated seconds: expected at most 1, got",
                "job 1 'CLIENT1:H:' (backup): CPU seconds of CLIENT1: expected at least 5, got 0"):
        assert why in out and why in err, why
    suite = ET.parse(junit).getroot()
    cases = {c.get("name"): c for c in suite.iter("testcase")}
    assert set(cases) == {"right", "wrong"} and suite.get("failures") == "1"
    assert cases["right"].find("failure") is None
    assert "movers used" in cases["wrong"].find("failure").text


def test_json_output_and_seed_override(tmp_path, capsys):
    right = _write(tmp_path, "right.yaml", RIGHT)
    assert main(["scenario", "run", str(right), "--json", "--seed", "5"]) == 0
    data = json.loads(capsys.readouterr().out)
    (scen,) = data["scenarios"]
    assert data["ok"] and scen["ok"] and scen["jobs"][0]["path_used"] == "server-free"
    assert scen["summary"]["completed_jobs"] == 1
    att = scen["jobs"][0]["bottlenecks"]
    assert att["main_bottleneck"] and sum(att["bottleneck_share"].values()) <= 1.0001
    assert att["elapsed_s"] > 0 and att["failover_seconds"] == 0


def test_text_output_names_each_jobs_bottleneck(tmp_path, capsys):
    right = _write(tmp_path, "right.yaml", RIGHT)
    assert main(["scenario", "run", str(right)]) == 0
    assert "(backup): bottleneck " in capsys.readouterr().out


def test_directory_runs_every_yaml_in_it(tmp_path, capsys):
    _write(tmp_path, "a.yaml", RIGHT)
    _write(tmp_path, "b.yaml", RIGHT)
    assert main(["scenario", "run", str(tmp_path)]) == 0
    assert "2 of 2 scenarios passed" in capsys.readouterr().out


@pytest.mark.parametrize("text, words", [
    ("topology: x.yaml\njobs: [{backup: A}]\nvolums: []\n", ["volums", "line 3", "Extra inputs"]),
    ("topology: TOPO\njobs:\n  - backup: A\n    expect: {path: 7}\n", ["jobs.0.expect.path", "line 4"]),
    ("topology: TOPO\njobs:\n  - {backup: A, restore: B}\n", ["jobs.0", "exactly one of backup or restore"]),
    ("topology: TOPO\njobs: [{backup: 'NOPE:X:'}]\n", ["NOPE:X:", "known: CLIENT1:H:"]),
    ("topology: TOPO\noptions: {imagegapsize: lots}\njobs: [{backup: 'CLIENT1:H:'}]\n", ["imagegapsize"]),
    ("topology: TOPO\nfaults: [{kind: link_down, target: NOSUCH, at_s: 1}]\njobs: [{backup: 'CLIENT1:H:'}]\n",
     ["NOSUCH"]),
    ("topology: [1\n", ["line 2", "invalid YAML"]),
    ("- just a list\n", ["mapping at the top level"]),
])
def test_bad_scenario_file_is_one_clear_line_naming_file_and_place(tmp_path, capsys, text, words):
    bad = _write(tmp_path, "bad.yaml", text)
    assert main(["scenario", "run", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("serverfree: error:") and err.count("\n") == 1 and "bad.yaml" in err, err
    for w in words:
        assert w in err, (w, err)


def test_missing_file_is_named(tmp_path, capsys):
    assert main(["scenario", "run", str(tmp_path / "nope.yaml")]) == 2
    assert "nope.yaml" in capsys.readouterr().err


def test_schema_is_json_schema_of_the_scenario_file(capsys):
    assert main(["scenario", "schema"]) == 0
    schema = json.loads(capsys.readouterr().out)
    assert {"topology", "jobs", "volumes", "faults", "options", "expect", "mode"} <= set(schema["properties"])
    assert schema["required"] == ["topology", "jobs"]


def test_a_shipped_scenario_with_one_expectation_flipped_fails_naming_it(tmp_path, capsys):
    """The shipped checks are live: flip what a real failover scenario expects and the run goes red."""
    import yaml

    data = yaml.safe_load((SCENARIOS / "failover-copy-aborted-exact.yaml").read_text())
    data["topology"] = str(TOPO)
    data["jobs"][0]["expect"]["failovers"] = ["server-free->lan"]
    data["jobs"][1]["expect"]["byte_identical"] = False
    flipped = tmp_path / "flipped.yaml"
    flipped.write_text(yaml.safe_dump(data))
    assert main(["scenario", "run", str(flipped)]) == 1
    out = capsys.readouterr().out
    assert "failovers: expected ['server-free->lan'], got ['server-free->lan-free']" in out
    assert "byte-identical restore: expected False, got True" in out
