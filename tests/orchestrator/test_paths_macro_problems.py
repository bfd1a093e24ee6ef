"""`serverfree paths --macro` prints every macro problem, one per line with its line number."""
from __future__ import annotations

from pathlib import Path

from orchestrator.cli import main

TOPOLOGIES = Path(__file__).resolve().parents[2] / "scenarios" / "topologies"


def test_every_macro_problem_is_printed_with_its_line(tmp_path, capsys):
    mac = tmp_path / "bad.mac"
    mac.write_text("define datamover DM1 type=scsi wwn=2100000e08b050504\n"
                   "frobnicate all\n"
                   "define drive LIB1 DRV1 colour=blue\n"
                   "define drive LIB1 DRV2 wwn=500507630f000001 wwn=500507630f000002\n")
    assert main(["paths", str(TOPOLOGIES / "tsm-fabric.yaml"), "--macro", str(mac)]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err == [
        f"serverfree: error: {mac}: line 2: unknown command 'frobnicate'",
        f"serverfree: error: {mac}: line 3: unknown parameter COLOUR= for DEFINE DRIVE",
        f"serverfree: error: {mac}: line 4: parameter WWN= given twice",
    ], err
    assert not any("more problem" in line for line in err)


def test_a_single_macro_problem_is_still_one_line(tmp_path, capsys):
    mac = tmp_path / "one.mac"
    mac.write_text("frobnicate all\n")
    assert main(["paths", str(TOPOLOGIES / "tsm-fabric.yaml"), "--macro", str(mac)]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err == [f"serverfree: error: {mac}: line 1: unknown command 'frobnicate'"]
