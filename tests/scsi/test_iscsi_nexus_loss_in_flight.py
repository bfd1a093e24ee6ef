"""A command still running in the handler when its session ends: the I_T nexus ends after it, not before.

Found by the PDU fuzz test under load: a mutated READ(10) became RESERVE(6), the fuzzing session
hung up, and the target ended the nexus (SPC-2: the reservation goes with it) before the thread
running RESERVE(6) had set the holder, so the LU stayed reserved by a nexus that no longer existed
and every other session got RESERVATION CONFLICT until a reset.  Here the handler is held back on
purpose until the connection is gone.
"""
from __future__ import annotations

import asyncio
import threading
import time

import pytest

from scsi.iscsi.harness import ThreadedTarget
from scsi.iscsi.initiator import Initiator
from scsi.target.build import build_target
from scsi.target.config import parse_config

TARGET = "iqn.2026-12.org.serverfree:nexus-loss"
RESERVE6, TUR = bytes([0x16, 0, 0, 0, 0, 0]), bytes(6)


@pytest.fixture
def held_reserve(tmp_path):
    """A target whose handler blocks every RESERVE(6) until ``release`` is set."""
    with open(tmp_path / "0.img", "wb") as f:
        f.truncate(1 << 20)
    built = build_target(parse_config({"target": TARGET, "luns": [{"id": 0, "path": str(tmp_path / "0.img")}]}))
    handler, started, release = built.node.handler, threading.Event(), threading.Event()
    execute = handler.execute

    def held(nexus, cdb, data_out, alloc):
        if cdb[:1] == RESERVE6[:1]:
            started.set()
            assert release.wait(30), "the test never released RESERVE(6)"
        return execute(nexus, cdb, data_out, alloc)

    handler.execute = held
    t = ThreadedTarget([built.node]).start()
    yield t, built, started, release
    release.set()
    t.stop()
    built.close()


async def _session(t: ThreadedTarget, name: str) -> Initiator:
    ini = Initiator("127.0.0.1", t.port, name=name)
    await ini.connect()
    await ini.login(TARGET)
    return ini


async def _until(condition, what: str, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        await asyncio.sleep(0.005)


def test_reserve6_running_when_its_session_ends_is_released_with_the_nexus(held_reserve):
    t, built, started, release = held_reserve
    reserve6 = built.node.handler.devices[0].reserve6

    async def go():
        a = await _session(t, "iqn.2026-12.org.test:a")
        pdu, _ = a.scsi_pdu(RESERVE6)
        await a.send(pdu)
        await _until(started.is_set, "RESERVE(6) reached the handler")
        await a.close()  # the session ends while RESERVE(6) is in the handler
        await _until(lambda: not t.server.connections, "the target dropped the connection")
        assert t.server.ending, "the nexus must not end while RESERVE(6) is still running"
        release.set()
        await _until(lambda: not t.server.ending, "the nexus ended after RESERVE(6) returned")
        b = await _session(t, "iqn.2026-12.org.test:b")
        tur = await b.command(TUR)
        again, holder = await b.command(RESERVE6), reserve6.holder
        await b.close()
        return tur, again, holder

    tur, again, holder = t.run(go())
    assert tur.status == 0, f"status {tur.status:#x}: the gone session's reservation outlived its nexus"
    assert again.status == 0 and holder[0].startswith("iqn.2026-12.org.test:b,i,0x")
