"""A server-free copy through the server that stops midway resumes: the client moves only what is missing."""
from __future__ import annotations

import json

import pytest

from orchestrator.cli import main
from orchestrator.server.node_ops import NodeOps
from tests.fixtures.backup_server import actlog, admin
from tests.orchestrator.server.test_serverfree import make_lab

MIB = 1 << 20


@pytest.fixture
def faulty_lab(tmp_path):
    # the mover aborts its first EXTENDED COPY before segment 1: segment 0 is on the pool by then
    yield from make_lab(tmp_path, faults=["copy-aborted=0D/02@list=1,segment=1"])


def test_a_copy_that_stops_midway_is_finished_by_the_client_without_copying_again(faulty_lab, capsys,
                                                                                 monkeypatch):
    tmp, srv, built, _ = faulty_lab
    puts: list[tuple[int, int]] = []  # (image offset, bytes) of every PUT the server received
    real_put = NodeOps.put

    def counting_put(self, req, data):
        puts.append((req.image_offset, len(data)))
        return real_put(self, req, data)

    monkeypatch.setattr(NodeOps, "put", counting_put)
    with admin(srv) as a:
        assert a.command("set serverfree batchsize=10")[0]
    opts = ["--options", str(tmp / "dsm.opt"), "--site", str(tmp / "site.yaml"), "--json"]
    assert main(["backup", "image", "E:", *opts]) == 0, capsys.readouterr()
    report = json.loads(capsys.readouterr().out)
    assert report["outcome"] == "completed", report
    assert built.counters().get("faults.fired") == 1
    by_path = report["bytes_by_path"]
    done = by_path["server-free"]
    assert 0 < done < report["image_size"], report
    # the client moved exactly the rest: not one byte the mover had already put on the pool
    assert by_path["lan"] == report["image_size"] - done, report
    assert report["path_used"] == "server-free+lan"
    fo = report["failovers"][0]
    assert fo["from_path"] == "server-free" and fo["image_offset"] == done and "COPY ABORTED" in fo["reason"].upper()
    assert puts and min(o for o, _ in puts) >= done and sum(n for _, n in puts) == report["image_size"] - done
    log = actlog(srv)
    assert f"kept: {done} of {report['image_size']} bytes are on the pool" in log
    oid = report["object_id"]
    assert f"object {oid} of node NODEA committed" in log
    # the object restores identically (the fault fired once; the mover copies the restore)
    assert main(["restore", "image", "E:", "disk1", *opts]) == 0, capsys.readouterr()
    assert (tmp / "dest.img").read_bytes() == (tmp / "vol.img").read_bytes()


def test_a_storage_agent_finishes_the_held_object_lan_free(faulty_lab, capsys, monkeypatch):
    tmp, srv, built, url = faulty_lab
    puts: list[int] = []
    real_put = NodeOps.put
    monkeypatch.setattr(NodeOps, "put", lambda self, req, data: puts.append(len(data)) or real_put(self, req, data))
    (tmp / "site.yaml").write_text(
        f'devices: {{disk0: "{url(0)}", disk1: "{url(2)}", pool1: "{url(1)}"}}\n'
        f'storage_agent: {{"{tmp / "pool.img"}": pool1}}\n'
        'volumes: {"E:": {device: disk0}}\n')
    opts = ["--options", str(tmp / "dsm.opt"), "--site", str(tmp / "site.yaml"), "--json", "-enablelanfree=yes"]
    assert main(["backup", "image", "E:", *opts]) == 0, capsys.readouterr()
    report = json.loads(capsys.readouterr().out)
    assert report["outcome"] == "completed" and report["path_used"] == "server-free+lan-free", report
    done = report["bytes_by_path"]["server-free"]
    assert 0 < done and report["bytes_by_path"]["lan-free"] == report["image_size"] - done
    assert puts == []  # nothing crossed the LAN: the rest went over the SAN into the granted range
    assert main(["restore", "image", "E:", "disk1", *opts]) == 0, capsys.readouterr()
    assert (tmp / "dest.img").read_bytes() == (tmp / "vol.img").read_bytes()


@pytest.fixture
def batched_lab(tmp_path):
    # 40 MiB in 10 MB batches: the mover's third EXTENDED COPY is aborted (the target LUN unreachable)
    yield from make_lab(tmp_path, faults=["copy-aborted=0D/02@list=3"], raw_mib=40)


def test_the_batches_committed_before_the_fault_are_not_copied_again(batched_lab, capsys, monkeypatch):
    tmp, srv, built, _ = batched_lab
    with admin(srv) as a:
        assert a.command("set serverfree batchsize=10")[0]
    puts: list[tuple[int, int]] = []
    real_put = NodeOps.put
    monkeypatch.setattr(NodeOps, "put", lambda self, req, data: puts.append((req.image_offset, len(data)))
                        or real_put(self, req, data))
    opts = ["--options", str(tmp / "dsm.opt"), "--site", str(tmp / "site.yaml"), "--json"]
    assert main(["backup", "image", "E:", *opts]) == 0, capsys.readouterr()
    report = json.loads(capsys.readouterr().out)
    assert report["outcome"] == "completed" and report["image_size"] == 40 * MIB, report
    done = report["bytes_by_path"]["server-free"]
    assert built.counters().get("faults.fired") == 1 and built.counters()["xcopy.completed"] == 2
    assert done >= 2 * 10 * 10**6, report  # at least the two batches the mover finished
    assert min(o for o, _ in puts) >= done and sum(n for _, n in puts) == 40 * MIB - done
    assert main(["restore", "image", "E:", "disk1", *opts]) == 0, capsys.readouterr()
    assert (tmp / "dest.img").read_bytes() == (tmp / "vol.img").read_bytes()
