"""TARGET WARM RESET and TARGET COLD RESET task management (RFC 7143 11.5.1) seen from two sessions."""
from __future__ import annotations

import asyncio

import pytest

from scsi.iscsi.harness import ThreadedTarget
from scsi.iscsi.initiator import Initiator
from scsi.sense import Sense
from scsi.target.build import build_target
from scsi.target.config import parse_config

TARGET = "iqn.2026-12.org.serverfree:reset"
RESERVE6, TUR = bytes([0x16, 0, 0, 0, 0, 0]), bytes(6)
WARM, COLD, COMPLETE = 6, 7, 0


@pytest.fixture
def target(tmp_path):
    luns = []
    for n in range(2):
        with open(tmp_path / f"{n}.img", "wb") as f:
            f.truncate(1 << 20)
        luns.append({"id": n, "path": str(tmp_path / f"{n}.img")})
    built = build_target(parse_config({"target": TARGET, "luns": luns}))
    t = ThreadedTarget([built.node]).start()
    yield t
    t.stop()
    built.close()


async def _session(port: int, name: str) -> Initiator:
    ini = Initiator("127.0.0.1", port, name=name)
    await ini.connect()
    await ini.login(TARGET)
    return ini


def test_warm_reset_releases_reserve6_and_raises_unit_attention_on_every_lun(target):
    async def go():
        a = await _session(target.port, "iqn.2026-12.org.test:a")
        b = await _session(target.port, "iqn.2026-12.org.test:b")
        for lun in (0, 1):
            await b.command(TUR, lun=lun)  # b is a known nexus of both LUNs
        held = await a.command(RESERVE6, lun=1)
        conflict = await b.command(RESERVE6, lun=1)
        response = await a.task_management(WARM)
        ua = [await b.command(TUR, lun=lun) for lun in (0, 1)]
        again = await b.command(RESERVE6, lun=1)
        await a.close()
        await b.close()
        return held, conflict, response, ua, again

    held, conflict, response, ua, again = target.run(go())
    assert held.status == 0 and conflict.status == 0x18  # RESERVATION CONFLICT before the reset
    assert response == COMPLETE
    for r in ua:
        s = Sense.decode(r.sense)
        assert r.status == 2 and (int(s.key), s.asc, s.ascq) == (6, 0x29, 0x03)
    assert again.status == 0  # the reservation went with the reset


def test_cold_reset_answers_then_ends_every_session_of_the_target(target):
    async def go():
        a = await _session(target.port, "iqn.2026-12.org.test:a")
        b = await _session(target.port, "iqn.2026-12.org.test:b")
        response = await a.task_management(COLD)
        ends = [await asyncio.wait_for(ini.reader.read(), 10) for ini in (a, b)]
        c = await _session(target.port, "iqn.2026-12.org.test:c")  # the target itself still serves
        tur = await c.command(TUR)
        for ini in (a, b, c):
            await ini.close()
        return response, ends, tur

    response, ends, tur = target.run(go())
    assert response == COMPLETE and ends == [b"", b""]
    assert tur.status == 0
