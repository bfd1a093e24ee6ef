"""A busy mover (BUSY / TASK SET FULL) is retried within its command timeout, then raised for failover."""
from __future__ import annotations

import time

import pytest

from orchestrator.drivers.lazy_mover import LazyMover
from scsi.devices.errors import DeviceCheckCondition, DeviceStatusError


class BusyFor:
    """A device answering ``status`` for ``seconds`` from its first command, then GOOD."""

    def __init__(self, seconds: float, status: int = 0x08):
        self.seconds, self.status, self.first, self.calls = seconds, status, None, 0

    def execute(self, cmd):
        self.calls += 1
        now = time.monotonic()
        self.first = self.first or now
        if now - self.first < self.seconds:
            raise DeviceStatusError(self.status, b"\x83")
        return "done"

    def close(self):
        pass


def mover(device, timeout: float) -> LazyMover:
    m = LazyMover("DM1", "iscsi://127.0.0.1:9/iqn.2026-01.x:y/0", timeout)
    m._device = device  # already logged in
    return m


@pytest.mark.parametrize("status, name", [(0x08, "BUSY"), (0x28, "TASK SET FULL")])
def test_busy_for_a_while_is_retried_and_said(capsys, status, name):
    dev = BusyFor(0.6, status)
    assert mover(dev, 3.0).execute(object()) == "done"
    err = capsys.readouterr().err
    assert dev.calls >= 3 and f"data mover DM1 answered {name}: retrying in 0.25 s" in err
    assert "failing over" not in err


def test_still_busy_after_the_timeout_is_raised_within_it(capsys):
    dev = BusyFor(60)
    t0 = time.monotonic()
    with pytest.raises(DeviceStatusError):
        mover(dev, 1.0).execute(object())
    assert time.monotonic() - t0 < 1.6
    assert "still answers BUSY after 1 s: failing over" in capsys.readouterr().err


def test_other_errors_are_not_retried():
    class Fails:
        calls = 0

        def execute(self, cmd):
            self.calls += 1
            raise DeviceCheckCondition(bytes([0x70, 0, 0x0A, 0, 0, 0, 0, 10, 0, 0, 0, 0, 0x0D, 0x02]))

    dev = Fails()
    with pytest.raises(DeviceCheckCondition):
        mover(dev, 5.0).execute(object())
    reserved = Fails()
    reserved.execute = lambda cmd: (_ for _ in ()).throw(DeviceStatusError(0x18))  # RESERVATION CONFLICT
    with pytest.raises(DeviceStatusError):
        mover(reserved, 5.0).execute(object())
    assert dev.calls == 1


def test_a_mover_busy_at_login_is_retried_like_a_busy_command(capsys, monkeypatch):
    """libiscsi's login ends with TEST UNIT READY; its BUSY fails the login (said only in the error's text)."""
    from scsi.devices import errors
    import scsi.devices

    logins = []

    def open_device(url, timeout=None):
        logins.append(time.monotonic())
        if len(logins) < 3:
            raise errors.DeviceConnectionError(f"{url} as iqn.2026-01.x:client: BUSY")
        return BusyFor(0)

    monkeypatch.setattr(scsi.devices, "open_device", open_device)
    m = LazyMover("DM1", "iscsi://127.0.0.1:9/iqn.2026-01.x:y/0", 3.0)
    assert m.execute(object()) == "done"
    assert len(logins) == 3 and "data mover DM1 answered BUSY: retrying" in capsys.readouterr().err

    logins.clear()
    monkeypatch.setattr(scsi.devices, "open_device", lambda url, timeout=None: (_ for _ in ()).throw(
        errors.DeviceConnectionError(f"{url}: cannot reach portal 127.0.0.1:9: Connection refused")))
    with pytest.raises(errors.DeviceConnectionError):  # a mover that is down is not retried: it fails over now
        LazyMover("DM1", "iscsi://127.0.0.1:9/iqn.2026-01.x:y/0", 3.0).execute(object())
