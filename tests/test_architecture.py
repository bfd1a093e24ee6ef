"""The import rules of docs/architecture.md, checked with import-linter against pyproject.toml's contracts.

Imports inside functions and under TYPE_CHECKING count (grimp sees every import statement), so a cycle
cannot hide in a function body.
"""
from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONTRACTS = {
    "scsi and topology import nothing else of ours": "forbidden",
    "scsi and topology are independent of each other": "independence",
    "the orchestrator outside its CLI never imports the simulator": "forbidden",
    "the simulator core imports only the orchestrator's operation vocabulary": "forbidden",
    "orchestrator layers: cli > server > drivers > lan > compose > job > plan > ops": "layers",
    "no import cycles between sibling modules or packages": "acyclic_siblings",
}


def test_the_contracts_are_declared():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    assert config["exclude_type_checking_imports"] is False  # TYPE_CHECKING imports count
    assert {c["name"]: c["type"] for c in config["contracts"]} == CONTRACTS


def test_every_contract_is_kept():
    lint = Path(sys.executable).with_name("lint-imports")
    r = subprocess.run([str(lint), "--config", str(ROOT / "pyproject.toml"), "--no-cache"], cwd=ROOT,
                       capture_output=True, text=True, timeout=240)
    assert r.returncode == 0, r.stdout[-6000:] + r.stderr[-2000:]
    assert f"Contracts: {len(CONTRACTS)} kept, 0 broken." in r.stdout
