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
    # I: the mover's injected COPY ABORTED strikes the server's copy; the client steps down to LAN-free
    assert (i["outcome"], i["path_used"]) == ("completed", "lan-free"), i
    (f,) = i["ladder"]
    assert (f["from_path"], f["to_path"]) == ("server-free", "lan-free")
    assert "COPY ABORTED" in f["reason"] and "DM1" in f["reason"]
    assert i["bytes_by_path"]["lan-free"] > 0 and not i["bytes_by_path"].get("server-free")
    (fault,) = result["fault"]  # the mover's own log says the fault fired, during I:
    assert fault.startswith("copy-aborted=0D/02@bytes=")
    # the client's query goes to the server: both committed objects, the abandoned attempt not listed
    assert [o["filespace"] for o in q["objects"]] == ["H:", "I:"]
    # H: restores server-free; I: holds compressed pieces, so the server says why and it comes over the LAN
    assert (rh["path_used"], ri["path_used"]) == ("server-free", "lan")
    assert "compressed" in ri["ladder"][0]["reason"]
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
    assert "failover server-free -> lan-free" in out and "COPY ABORTED" in out
    assert "failover server-free -> lan: the image holds compressed pieces" in out
    assert out.count("byte-identical: yes") == 2 and "both restores byte-identical" in out
    assert "CPU client" in out and "data mover" in out


def test_demo_has_nothing_to_configure():
    assert demo_cmd.DEMO_TOPOLOGY["name"] == "demo"  # embedded, no file needed
    assert [(k, v) for k, v, _ in demo_cmd.DEMO_JOBS] == [
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
    assert h["path_used"] == "server-free" and i["path_used"] == "lan-free"  # the fault still strikes I:
    assert rh["byte_identical"] is True
    text = demo_cmd.report_text(out)
    assert "byte-identical: NO (corrupted on purpose)" in text and "RESTORE MISMATCH" in text
