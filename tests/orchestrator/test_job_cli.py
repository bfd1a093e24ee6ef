"""`serverfree backup image`, `restore image`, `query backup` end to end on files and an in-process mover."""
from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from orchestrator.cli import main

MIB = 1 << 20


@pytest.fixture
def site(tmp_path):
    from orchestrator.volume.samples import bundled_ntfs_image

    vol = bundled_ntfs_image(tmp_path / "vol.img")
    size = vol.stat().st_size
    (tmp_path / "dest.img").write_bytes(bytes(size))
    (tmp_path / "pool.img").write_bytes(bytes(4 * size + 8 * MIB))
    (tmp_path / "site.yaml").write_text(textwrap.dedent(f"""
        lan_pool: {{volumes: {{VOL1: pool.img}}}}
        verified_without_topology: true
        devices: {{disk0: vol.img, disk1: dest.img, pool0: pool.img}}
        movers: {{DM1: inprocess}}
        pool: {{name: POOL1, volumes: [{{name: VOL1, device: pool0, capacity: {4 * size + 8 * MIB}}}]}}
        volumes: {{"E:": {{device: disk0}}}}
    """))
    (tmp_path / "dsm.opt").write_text(textwrap.dedent(f"""
        * client options for the test
        nodename NODE1
        enableserverfree yes
        enablelanfree yes
        imagetype static
        catalog {tmp_path / 'cat.db'}
    """))
    yield tmp_path


def cli(tmp, *args):
    return main([*args, "--options", str(tmp / "dsm.opt")])


def used_equal(tmp) -> bool:
    """Every byte of the used extents restored (the bundled image's free space is zeros anyway)."""
    return (tmp / "vol.img").read_bytes() == (tmp / "dest.img").read_bytes()


def test_server_free_backup_query_and_restore(site, capsys):
    assert cli(site, "backup", "image", "E:", "--site", str(site / "site.yaml")) == 0
    out = capsys.readouterr().out
    assert "backup NODE1:E: completed" in out and "path: server-free" in out
    assert cli(site, "query", "backup", "E:") == 0
    listing = capsys.readouterr().out
    assert "NTFS" in listing and "server-free" in listing and "NODE1:E:" in listing
    assert cli(site, "query", "backup", "--json") == 0
    (obj,) = json.loads(capsys.readouterr().out)
    assert obj["path_used"] == "server-free" and obj["state"] == "active" and obj["extents"]
    assert cli(site, "restore", "image", "E:", "disk1", "--site", str(site / "site.yaml"), "--json") == 0
    report = json.loads(capsys.readouterr().out)
    assert report["outcome"] == "completed" and report["path_used"] == "server-free"
    assert used_equal(site)


def test_dsmc_spelling_lan_free_start_and_incremental(site, capsys):
    s = str(site / "site.yaml")
    assert cli(site, "backup", "image", "E:", "--site", s, "-enableserverfree=no") == 0
    out = capsys.readouterr().out
    assert "path: lan-free" in out and "not server-free: enableserverfree is no" in out
    # change the last 4 KiB of the largest used extent (file data), then an image incremental
    from orchestrator.volume import read_used_extents

    ext = read_used_extents(str(site / "vol.img")).extents(32 * 1024).tolist()
    start, length = max(ext, key=lambda e: e[1])
    at = start + length - 4096
    with open(site / "vol.img", "r+b") as f:
        f.seek(at)
        data = f.read(4096)
        f.seek(at)
        f.write(bytes(b ^ 0xFF for b in data))
    # same path and gap size as the base, so unchanged chunks digest the same
    assert cli(site, "backup", "image", "E:", "--site", s, "-mode=incremental", "-enableserverfree=no",
               "--json") == 0
    inc = json.loads(capsys.readouterr().out)
    assert inc["outcome"] == "completed" and 0 < inc["image_size"] <= 1 << 20
    assert cli(site, "restore", "image", "E:", "disk1", "--site", s, "-incremental", "-deletefiles") == 0
    out = capsys.readouterr().out
    assert "-deletefiles ignored" in out
    restored = (site / "dest.img").read_bytes()
    assert restored[at:at + 4096] == (site / "vol.img").read_bytes()[at:at + 4096]
    assert used_equal(site)


def test_online_image_uses_a_client_snapshot_and_goes_lan_free(site, capsys):
    assert cli(site, "backup", "image", "E:", "--site", str(site / "site.yaml"), "-imagetype=snapshot") == 0
    out = capsys.readouterr().out
    assert "path: lan-free" in out and "the snapshot lives on the client" in out


def test_bad_input_is_one_clear_line(site, capsys):
    (site / "bad.yaml").write_text("devices: {disk0: vol.img}\npool: {volumes: []}\nvolumes: {}\n")
    assert cli(site, "backup", "image", "E:", "--site", str(site / "bad.yaml")) == 2
    err = capsys.readouterr().err
    assert err.startswith("serverfree: error: ") and "bad.yaml: pool.volumes" in err
    assert cli(site, "restore", "image", "E:", "--site", str(site / "site.yaml"), "-pitdate=yesterday") == 2
    assert "-pitdate 'yesterday' is not an ISO date" in capsys.readouterr().err
    assert cli(site, "restore", "image", "E:", "--site", str(site / "site.yaml"), "-replace=yes") == 2
    assert "no restorable image of NODE1:E:" in capsys.readouterr().err
    assert main(["query", "backup", "--catalogue", str(site / "none.db")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_console_script_runs_a_backup(site):
    exe = Path(sys.executable).with_name("serverfree")
    r = subprocess.run([str(exe), "backup", "image", "E:", "--site", str(site / "site.yaml"), "--options",
                        str(site / "dsm.opt"), "-compression=yes", "-enableserverfree=no"],
                       capture_output=True, text=True, timeout=120, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    assert r.returncode == 0, r.stderr
    assert "compressed" in r.stdout and "path: lan-free" in r.stdout


def test_incremental_without_a_full_takes_a_full_and_says_so(site, capsys):
    assert cli(site, "backup", "image", "E:", "--site", str(site / "site.yaml"), "-mode=incremental", "--json") == 0
    out, err = capsys.readouterr()
    assert "no full image backup of E: yet: taking a full (selective) image backup" in err
    assert json.loads(out)["outcome"] == "completed"
    assert cli(site, "query", "backup", "E:", "--json") == 0
    (obj,) = json.loads(capsys.readouterr().out)
    assert obj["mode"] == "selective"


def test_restore_over_the_source_needs_replace_yes(site, capsys):
    s = str(site / "site.yaml")
    assert cli(site, "backup", "image", "E:", "--site", s) == 0
    capsys.readouterr()
    before = (site / "vol.img").read_bytes()
    assert cli(site, "restore", "image", "E:", "--site", s) == 2  # stdin is not a terminal: refused
    err = capsys.readouterr().err
    assert "would overwrite the volume itself (device disk0)" in err and "-replace=yes" in err
    assert cli(site, "restore", "image", "E:", "--site", s, "-replace=no") == 2
    capsys.readouterr()
    assert cli(site, "restore", "image", "E:", "--site", s, "-replace=yes") == 0
    assert (site / "vol.img").read_bytes() == before  # restored over itself: the same bytes


@pytest.mark.parametrize("args", [("--catalogue", "a.db", "--catalog", "b.db"), ("--node", "A", "--nodename", "B"),
                                  ("-imagegapsize=1k", "-imagegapsize=2k")])
def test_an_option_given_twice_with_two_values_is_refused(site, capsys, args):
    cmd = ["query", "backup", *args] if args[0] != "-imagegapsize=1k" else \
        ["backup", "image", "E:", "--site", str(site / "site.yaml"), *args]
    with pytest.raises(SystemExit) as info:
        main(cmd)
    assert info.value.code == 2
    assert "conflicts with" in capsys.readouterr().err


def test_every_client_option_has_its_own_help(capsys):
    with pytest.raises(SystemExit):
        main(["backup", "image", "--help"])
    out = capsys.readouterr().out
    assert "allow server-free data movement" in out and "megabytes per batch" in out
    from orchestrator.cli import _all_parsers, build_parser

    for parser in _all_parsers(build_parser()):
        for action in parser._actions:
            if action.option_strings and action.help not in (None, "==SUPPRESS=="):
                text = action.help.replace("overrides dsm.opt", "").strip("; ")
                assert len(text) >= 8, (parser.prog, action.option_strings, action.help)


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_line_on_a_terminal_and_none_with_json(site, monkeypatch, capsys):
    s = str(site / "site.yaml")
    term = _Terminal()
    monkeypatch.setattr(sys, "stderr", term)
    assert cli(site, "backup", "image", "E:", "--site", s) == 0
    shown = term.getvalue()
    assert re.search(r"\rbackup E: server-free: [\d.]+ of [\d.]+ MiB \(100%\), \d+ list\(s\)/piece\(s\), "
                     r"[\d.]+ MiB/s, ETA 0:00:00", shown), shown
    term2 = _Terminal()
    monkeypatch.setattr(sys, "stderr", term2)
    assert cli(site, "restore", "image", "E:", "disk1", "--site", s, "-enableserverfree=no") == 0
    assert re.search(r"restore E: lan-free: .*\(100%\)", term2.getvalue()), term2.getvalue()
    term3 = _Terminal()
    monkeypatch.setattr(sys, "stderr", term3)
    assert cli(site, "backup", "image", "E:", "--site", s, "--json") == 0
    assert "MiB/s" not in term3.getvalue()


def _child_runs(pid: int, word: bytes) -> bool:
    """Whether a child process of ``pid`` runs a command line containing ``word`` (Linux /proc)."""
    for d in filter(str.isdigit, os.listdir("/proc")):
        try:
            ppid = int(open(f"/proc/{d}/stat").read().rsplit(")", 1)[1].split()[1])
            cmdline = open(f"/proc/{d}/cmdline", "rb").read()
        except (OSError, ValueError, IndexError):
            continue
        if ppid == pid and word in cmdline:
            return True
    return False


def test_sigint_exits_130_and_the_next_start_sweeps_what_an_interrupted_job_left(site):
    import signal
    import time

    s = str(site / "site.yaml")
    cmd = [sys.executable, "-c", "import sys; from orchestrator.cli import main; sys.exit(main())",
           "backup", "image", "E:", "--site", s, "--options", str(site / "dsm.opt"), "-imagetype=snapshot",
           "-presnapshotcmd=sleep 30"]
    # SIGINT as Ctrl-C delivers it: a suite started in the background by a non-interactive shell (`cmd &`)
    # runs with SIGINT ignored, which its children would inherit (and Python keeps an ignored SIGINT ignored)
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 60  # past start-up (a loaded machine takes seconds): the presnapshotcmd runs
    while not _child_runs(proc.pid, b"sleep") and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, (proc.returncode, err)
    assert "serverfree: interrupted" in err and "Traceback" not in err, err
    # a job killed after it began its object leaves it pending: the next start marks it abandoned
    from orchestrator.catalogue import Catalogue

    killed = subprocess.run([sys.executable, "-c", textwrap.dedent(f"""
        import os
        from orchestrator.catalogue import Catalogue
        from orchestrator.ops import BeginObject
        cat = Catalogue({str(site / 'cat.db')!r})
        cat.add_pool_volume("POOL1", "VOL1", "pool0", 1 << 30)
        cat.begin_object(BeginObject(node="NODE1", filespace="E:", mode="selective", image_type="static",
                                     management_class="STANDARD", pool="", image_size=4096, volume_size=4096,
                                     file_system="ntfs"))
        os._exit(0)  # as if killed: no abandon, no close
    """)], capture_output=True, text=True, timeout=60)
    assert killed.returncode == 0, killed.stderr
    with Catalogue(site / "cat.db") as cat:
        assert "pending" in cat.states().values()
    r = subprocess.run([*cmd[:-2], "-imagetype=static"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "1 unfinished image object(s) of an interrupted job marked abandoned" in r.stderr
    with Catalogue(site / "cat.db") as cat:
        assert "pending" not in cat.states().values()
