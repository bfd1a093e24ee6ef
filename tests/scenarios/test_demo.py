"""`serverfree demo`: mover, backup server and client as processes; server-free, failover, restores compared."""
import json
import os
import re

import pytest

from orchestrator.cli import demo_cmd, main


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


@pytest.fixture(scope="module")
def demo():
    seen: list[tuple[str, float]] = []
    result = demo_cmd.run_demo(lambda label, frac: seen.append((label, frac)))
    return result, seen


def test_demo_runs_through_the_server_fails_over_and_restores_identically(demo):
    result, seen = demo
    assert result["ok"] is True
    h, i, q, rh, ri = result["jobs"]
    # H: the server commands the mover; the client moves no data
    assert (h["kind"], h["filespace"], h["outcome"], h["path_used"]) == ("backup", "H:", "completed", "server-free")
    assert h["ladder"] == [] and set(h["bytes_by_path"]) == {"server-free"}
    # I: the mover's injected COPY ABORTED strikes the server's copy mid-way; the client moves the rest LAN-free
    assert (i["outcome"], i["path_used"]) == ("completed", "server-free+lan-free"), i
    (f,) = i["ladder"]
    assert (f["from_path"], f["to_path"], f["mover"]) == ("server-free", "lan-free", "DM1")
    assert "COPY ABORTED" in f["reason"] and 0 < f["image_offset"] < i["image_size"]
    assert 0 < i["bytes_by_path"]["server-free"] < i["image_size"] and i["bytes_by_path"]["lan-free"] > 0
    assert sum(i["bytes_by_path"].values()) == i["image_size"]  # the job's own accounting adds up (not a judge)
    # the mover's own log says both faults fired: during I:'s backup and during I:'s restore
    assert [x.split(" ->")[0].split("@")[0] for x in result["fault"]] == ["copy-aborted=0D/02"] * 2
    # the client's query goes to the server: both committed objects
    assert [o["filespace"] for o in q["objects"]] == ["H:", "I:"]
    # H: restores server-free; I:'s server-free restore is aborted by the mover and comes over the LAN
    assert (rh["path_used"], rh["ladder"]) == ("server-free", [])
    assert ri["path_used"] == "lan" and [(x["from_path"], x["to_path"]) for x in ri["ladder"]] == [
        ("server-free", "lan")] and "COPY ABORTED" in ri["ladder"][0]["reason"]
    for r in (rh, ri):
        assert r["kind"] == "restore" and r["outcome"] == "completed" and r["byte_identical"] is True
        # the outside judge: every file read back by ntfs-3g's ntfscat (installed by ./dev; never skipped)
        assert re.search(r"\d+ files read back with ntfscat identical", r["compare"]), r["compare"]
    # every process it started is stopped
    assert all(_gone(pid) for pid in result["pids"].values()) and result["pids"]["server"] > 0
    assert seen[-1] == ("done", 1.0) and [lbl for lbl, _ in seen if lbl.startswith("restore")] == \
        ["restore H:", "restore I:"]


def test_demo_text_report(demo):
    out = demo_cmd.report_text(demo[0])
    assert "serverfree server: listening 127.0.0.1:" in out and "macro" in out
    assert "failover server-free (DM1) -> lan-free at image byte" in out and "COPY ABORTED" in out
    assert "failover server-free -> lan: " in out
    assert out.count("byte-identical: yes") == 2 and "both restores byte-identical" in out
    assert "CPU client" in out and "data mover" in out


def test_demo_has_nothing_to_configure():
    assert demo_cmd.DEMO_TOPOLOGY["name"] == "demo"  # embedded, no file needed
    assert [(k, v) for k, v, _, _ in demo_cmd.DEMO_JOBS] == [
        ("backup", "H:"), ("backup", "I:"), ("query", ""), ("restore", "H:"), ("restore", "I:")]


def test_demo_with_the_bundled_image_exits_non_zero_when_a_restore_differs(monkeypatch, capsys):
    from orchestrator.volume import samples
    from simulator.scenarios import volumes as scenario_volumes

    monkeypatch.setattr(samples, "ntfs_tools_available", lambda: False)
    real = scenario_volumes.ScenarioVolume.compare
    monkeypatch.setattr(scenario_volumes.ScenarioVolume, "compare",
                        lambda self, inc: (False, "corrupted on purpose") if self.mount == "I:" else real(self, inc))
    assert main(["demo", "--json"]) == 1
    out = json.loads(capsys.readouterr().out)
    assert out["volumes_from"] == "the bundled NTFS image" and out["ok"] is False
    h, i, _, rh, _ = out["jobs"]
    assert h["path_used"] == "server-free"  # the fault strikes I: (its 6 MB image is one list: none committed)
    assert i["path_used"].endswith("lan-free") and (i["ladder"][0]["from_path"], i["ladder"][0]["to_path"]) == (
        "server-free", "lan-free")
    assert rh["byte_identical"] is True
    text = demo_cmd.report_text(out)
    assert "byte-identical: NO (corrupted on purpose)" in text and "RESTORE MISMATCH" in text


def test_a_part_that_does_not_start_is_one_line_and_nothing_is_left_running(monkeypatch, capsys, tmp_path):
    from orchestrator.cli import demo_lab

    monkeypatch.setattr(demo_lab, "IQN", "not-an-iscsi-name")  # the mover refuses its configuration
    started: list = []
    real_init = demo_lab.Child.__init__

    def remember(self, *a, **kw):
        real_init(self, *a, **kw)
        started.append(self.proc.pid)
    monkeypatch.setattr(demo_lab.Child, "__init__", remember)
    assert main(["demo", "--no-progress", "--keep", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "serverfree demo: error: the data mover did not start" in err, err
    assert "not-an-iscsi-name" in err and "work directory kept" in err
    assert started and all(_gone(pid) for pid in started)
