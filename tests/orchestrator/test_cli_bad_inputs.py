"""Every subcommand fed bad input: exit 2 and one line naming what is wrong, never a traceback.

Runs the installed console script's entry point in a child process, as a user
would, so whatever reaches stderr is what a user sees.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CLI = [sys.executable, "-c", "import sys; from orchestrator.cli import main; sys.exit(main())"]


def run(*args: str, cwd: Path | None = None, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=120, cwd=cwd or ROOT,
                          input=stdin, env=dict(os.environ, COLUMNS="200"))


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("bad")
    (d / "junk.yaml").write_text("{ this is: [not yaml\n")
    (d / "list.yaml").write_text("- 1\n- 2\n")
    (d / "empty.bin").write_bytes(b"")
    (d / "junk.hex").write_text("zz zz\n")
    (d / "dir").mkdir()
    for name in ("disk.img", "pool.img"):
        with open(d / name, "wb") as f:
            f.truncate(4 << 20)
    for name, offset in (("site.yaml", "-512"), ("site-odd.yaml", "1000"), ("site-far.yaml", "8m")):
        (d / name).write_text("devices: {disk0: disk.img, pool0: pool.img}\n"
                              "pool: {name: P, volumes: [{name: V1, device: pool0, capacity: 1m}]}\n"
                              f"volumes: {{'E:': {{device: disk0, offset: {offset}}}}}\n")
    (d / "site-bigpool.yaml").write_text("devices: {disk0: disk.img, pool0: pool.img}\n"
                                         "pool: {name: P, volumes: [{name: V1, device: pool0, capacity: 5m}]}\n"
                                         "volumes: {'E:': {device: disk0}}\n")
    return d


#: what the one error line must name, where a case has a specific culprit
NAMES = {
    "backup negative offset": "volumes.E:.offset", "backup offset not whole blocks": "volumes.E:.offset",
    "backup offset beyond the device": "beyond the end of device disk0",
    "backup pool capacity beyond the device": "site-bigpool.yaml: pool.volumes[0].capacity: 5242880 bytes is "
                                              "larger than device pool0 (4194304 bytes)",
    "query catalogue is a directory": "is a directory", "query catalogue in missing folder": "does not exist",
    "scenario run negative seed": "--seed", "datamover serve bad fault": "explode",
    "backup missing options file": "--options", "backup missing site": "--site",
    "restore missing site": "--site", "restore pool capacity beyond the device": "pool.volumes[0].capacity", "paths missing topology": "TOPOLOGY", "sim missing scenario": "nothing.yaml",
    "xcopy decode missing file": "nothing.bin", "paths missing macro": "--macro",
    "datamover serve missing config": "nothing.yaml",
}

CASES = {
    "xcopy decode missing file": ("xcopy", "decode", "{d}/nothing.bin"),
    "xcopy decode empty": ("xcopy", "decode", "{d}/empty.bin"),
    "xcopy decode bad hex": ("xcopy", "decode", "--hex", "zz"),
    "xcopy encode junk": ("xcopy", "encode", "{d}/junk.yaml"),
    "sense decode bad hex": ("sense", "decode", "xyz"),
    "sense decode short": ("sense", "decode", "70"),
    "paths missing topology": ("paths", "{d}/nothing.yaml"),
    "paths junk topology": ("paths", "{d}/junk.yaml"),
    "paths a directory": ("paths", "{d}/dir"),
    "paths list topology": ("paths", "{d}/list.yaml"),
    "paths missing macro": ("paths", "scenarios/topologies/small.yaml", "--macro", "{d}/nothing.mac"),
    "image analyze missing": ("image", "analyze", "{d}/nothing.img"),
    "image analyze directory": ("image", "analyze", "{d}/dir"),
    "image analyze bad gap": ("image", "analyze", "{d}/empty.bin", "-imagegapsize=lots"),
    "backup missing site": ("backup", "image", "E:", "--site", "{d}/nothing.yaml"),
    "backup junk site": ("backup", "image", "E:", "--site", "{d}/junk.yaml"),
    "backup negative offset": ("backup", "image", "E:", "--site", "{d}/site.yaml"),
    "backup offset not whole blocks": ("backup", "image", "E:", "--site", "{d}/site-odd.yaml"),
    "backup offset beyond the device": ("backup", "image", "E:", "--site", "{d}/site-far.yaml"),
    "backup pool capacity beyond the device": ("backup", "image", "E:", "--site", "{d}/site-bigpool.yaml"),
    "restore pool capacity beyond the device": ("restore", "image", "E:", "--site", "{d}/site-bigpool.yaml",
                                                "-replace=yes"),
    "backup bad option value": ("backup", "image", "E:", "--site", "{d}/site.yaml", "-imagetype=sideways"),
    "backup missing options file": ("backup", "image", "E:", "--site", "{d}/site.yaml", "--options",
                                    "{d}/nothing.opt"),
    "restore missing site": ("restore", "image", "E:", "--site", "{d}/nothing.yaml"),
    "query catalogue is a directory": ("query", "backup", "--catalogue", "{d}/dir"),
    "query catalogue in missing folder": ("query", "backup", "--catalogue", "{d}/no/such/folder/cat.db"),
    "sim missing scenario": ("sim", "run", "{d}/nothing.yaml"),
    "sim junk scenario": ("sim", "run", "{d}/junk.yaml"),
    "scenario run missing": ("scenario", "run", "{d}/nothing.yaml"),
    "scenario run negative seed": ("scenario", "run", "scenarios/all-paths-fail.yaml", "--seed", "-5"),
    "datamover serve nothing": ("datamover", "serve"),
    "datamover serve missing config": ("datamover", "serve", "--config", "{d}/nothing.yaml"),
    "datamover serve bad fault": ("datamover", "serve", "--iqn", "iqn.2026-12.org.x:y", "--lun",
                                  "{d}/empty.bin", "--fault", "explode"),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_bad_input_is_one_line_and_exit_2(files, name):
    args = [a.format(d=files) for a in CASES[name]]
    args = [str(ROOT / a) if a.startswith("scenarios/") else a for a in args]
    res = run(*args, cwd=files)  # anything a case writes by default (a catalogue) stays in its folder
    assert "Traceback" not in res.stderr, f"{name}: {res.stderr}"
    assert res.returncode == 2, f"{name}: exit {res.returncode}: {res.stderr}"
    # one error line (argparse may print its usage lines before it)
    lines = [line for line in res.stderr.splitlines() if "error:" in line]
    assert len(lines) == 1 and lines[0].startswith("serverfree"), f"{name}: {res.stderr}"
    assert res.stderr.strip().splitlines()[-1] == lines[0], f"{name}: {res.stderr}"
    assert NAMES.get(name, "") in lines[0], f"{name}: the error does not name {NAMES[name]!r}: {lines[0]}"


def test_unknown_option_is_argparse_usage_exit_2():
    res = run("paths", "--colour", "x")
    assert res.returncode == 2 and "Traceback" not in res.stderr and "unrecognized arguments" in res.stderr


def test_version():
    res = run("--version")
    assert res.returncode == 0 and res.stdout.startswith("serverfree ") and res.stdout.split()[1][0].isdigit()


def test_a_closed_pipe_is_quiet():
    """`serverfree ... | head -1`: the reader goes away; no error line, no traceback."""
    topo = ROOT / "scenarios" / "topologies" / "dual-fabric.yaml"
    proc = subprocess.Popen([*CLI, "paths", str(topo), "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            cwd=ROOT)
    proc.stdout.read(1)
    proc.stdout.close()  # as head does after its line
    _, err = proc.communicate(timeout=120)
    assert b"Traceback" not in err and b"Broken pipe" not in err and b"error" not in err, err
    assert proc.returncode == 0
