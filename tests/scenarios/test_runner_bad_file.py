"""One bad scenario file among good ones: the others run, JUnit and JSON record it as an error, exit 2."""
import json
import xml.etree.ElementTree as ET
from pathlib import Path

from orchestrator.cli import main

TOPO = Path(__file__).resolve().parents[2] / "scenarios" / "topologies" / "small.yaml"

RIGHT = f"""
topology: {TOPO}
options: {{enableserverfree: yes}}
volumes: [{{id: "CLIENT1:H:", size: 64MiB}}]
jobs:
  - backup: "CLIENT1:H:"
    expect: {{path: server-free}}
"""
BAD = f"topology: {TOPO}\njobs: [{{backup: A}}]\nvolums: []\n"


def test_bad_file_is_an_errored_testcase_and_the_others_run(tmp_path, capsys):
    (tmp_path / "a-right.yaml").write_text(RIGHT)
    (tmp_path / "b-bad.yaml").write_text(BAD)
    (tmp_path / "c-right.yaml").write_text(RIGHT)
    junit = tmp_path / "junit.xml"
    assert main(["scenario", "run", str(tmp_path), "--junit", str(junit)]) == 2
    out, err = capsys.readouterr()
    assert "PASS a-right" in out and "PASS c-right" in out and "ERROR b-bad" in out
    assert "2 of 3 scenarios passed" in out
    (line,) = err.splitlines()
    assert line.startswith("serverfree: error: ") and "b-bad.yaml" in line and "volums" in line
    suite = ET.parse(junit).getroot()
    cases = {c.get("name"): c for c in suite.iter("testcase")}
    assert set(cases) == {"a-right", "b-bad", "c-right"}
    assert suite.get("errors") == "1" and suite.get("failures") == "0" and suite.get("tests") == "3"
    assert "volums" in cases["b-bad"].find("error").get("message")
    assert cases["a-right"].find("error") is None


def test_bad_file_is_in_the_json_too(tmp_path, capsys):
    (tmp_path / "a-right.yaml").write_text(RIGHT)
    (tmp_path / "b-bad.yaml").write_text(BAD)
    assert main(["scenario", "run", str(tmp_path / "a-right.yaml"), str(tmp_path / "b-bad.yaml"), "--json"]) == 2
    out, err = capsys.readouterr()
    data = json.loads(out)
    by_name = {s["name"]: s for s in data["scenarios"]}
    assert data["ok"] is False and by_name["a-right"]["ok"] is True
    assert by_name["b-bad"]["ok"] is False and "volums" in by_name["b-bad"]["error"]
    assert err.count("serverfree: error:") == 1
