"""The command line composes every registered subcommand module."""
import subprocess
import sys

import pytest

from orchestrator.cli import COMMAND_MODULES, build_parser, main, normalise_dsmc_args


def test_every_registered_module_adds_a_subcommand():
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    # each module registers at least one top-level subcommand
    assert len(sub.choices) >= len(COMMAND_MODULES)


def test_help_lists_subcommands(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert "demo" in out


def test_dsmc_spelling_is_accepted():
    assert normalise_dsmc_args(["backup", "image", "h:", "-mode=incremental", "-v", "--x"]) == [
        "backup", "image", "h:", "--mode=incremental", "-v", "--x"]


def test_console_script_runs():
    exe = __import__("pathlib").Path(sys.executable).with_name("serverfree")
    r = subprocess.run([str(exe), "--help"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "usage: serverfree" in r.stdout
