"""`serverfree paths`: table, JSON, SVG, --fail, --macro and the exit status."""
import argparse
import json
import xml.etree.ElementTree as ET

import pytest

from orchestrator.cli import paths_cmd


def run(*argv):
    parser = argparse.ArgumentParser(prog="serverfree")
    paths_cmd.register(parser.add_subparsers())
    args = parser.parse_args(["paths", *map(str, argv)])
    return args.func(args)


def test_correct_fabric_exits_0_with_a_table(topologies, capsys):
    assert run(topologies / "small.yaml") == 0
    out = capsys.readouterr().out
    assert "CLIENT1:H:  SF LF LAN  server-free  600a0b800000000000000000000000a5:5 -> DM1 -> DRV1  1" in out
    assert "1 of 1 volume(s) can be backed up server-free" in out
    assert out.rstrip().endswith("CLIENT1:H:  data movers in order: DM1; destination pool SFPOOL (tape: DRV1)")


def test_missing_server_free_path_exits_1_with_reason(topologies, capsys):
    assert run(topologies / "mistake-mover-offline.yaml") == 1
    out = capsys.readouterr().out
    assert "lan-free" in out and "server-free: data mover DM1 is offline" in out


def test_json_and_fail(topologies, capsys):
    assert run(topologies / "dual-fabric.yaml", "--json", "--fail", "SWA", "--fail", "DM2") == 1
    data = json.loads(capsys.readouterr().out)
    assert data["failed"] == ["DM2", "SWA"] and data["all_server_free"] is False
    (v,) = data["volumes"]
    assert v["path"] == "lan-free" and v["components"][1:] == ["CLIENT1", "DRV2"]
    assert v["reasons"]["server-free"]["message"] == (
        "no physical path from data mover DM1 port 21:00:00:e0:8b:05:05:04 to array ARR1 port "
        "20:00:00:a0:b8:00:00:01: switch SWA is failed")


def test_macro_is_merged(topologies, capsys):
    assert run(topologies / "tsm-fabric.yaml", "--macro", topologies / "tsm-server.mac", "--json") == 0
    assert json.loads(capsys.readouterr().out)["volumes"][0]["components"][1:] == ["DM1", "DRV1"]


def test_svg_marks_route_and_broken_links(topologies, tmp_path, capsys):
    svg = tmp_path / "fabric.svg"
    assert run(topologies / "mistake-failed-isl.yaml", "--svg", svg) == 1
    root = ET.fromstring(svg.read_text())
    lines = {line.find("{http://www.w3.org/2000/svg}title").text: line.attrib
             for line in root.iter("{http://www.w3.org/2000/svg}line") if line.find("{*}title") is not None}
    assert lines["ISL1 (2.0 Gbit/s) DOWN"]["stroke-dasharray"] == "6,4"
    svg2 = tmp_path / "ok.svg"
    run(topologies / "small.yaml", "--svg", svg2)
    root = ET.fromstring(svg2.read_text())
    green = [ln for ln in root.iter("{http://www.w3.org/2000/svg}line") if ln.get("stroke") == "#1a9a3a"
             and ln.find("{*}title") is not None]
    titles = sorted(ln.find("{*}title").text.split(" ")[0] for ln in green)
    assert titles == ["20:00:00:a0:b8:00:00:01<->SW1/2", "21:00:00:e0:8b:05:05:04<->SW1/3",
                      "50:05:07:63:00:00:00:01<->SW1/4"]


def test_bad_input_raises_the_error_the_cli_turns_into_exit_2(topologies, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("hosts: 3\n")
    with pytest.raises(ValueError, match="bad.yaml: hosts: Input should be a valid list"):
        run(bad)
    with pytest.raises(LookupError, match="unknown component 'SW9'"):
        run(topologies / "small.yaml", "--fail", "SW9")
