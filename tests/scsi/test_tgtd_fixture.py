"""The private-tgtd helper itself: sizes, tgtadm errors, stopping by PID."""
from __future__ import annotations

import os

import pytest

from tests.fixtures.tgtd import Tgtd, TgtdError, parse_size, tgtd_missing_reason


@pytest.mark.parametrize("text, size", [("16M", 16 << 20), ("4k", 4096), ("1G", 1 << 30), ("512", 512),
                                        ("64MiB", 64 << 20), (1234, 1234)])
def test_parse_size(text, size):
    assert parse_size(text) == size


def test_tgtadm_errors_carry_tgtadms_words(tgtd):
    t = tgtd.new_target("errors", {1: "1M"})
    with pytest.raises(TgtdError, match="--lun 1 .*(exist|already)"):
        t.add_lun(1, "1M")
    t.delete()


def test_own_daemon_starts_serves_and_is_gone_after_stop(tmp_path):
    if tgtd_missing_reason():
        pytest.skip(tgtd_missing_reason())
    daemon = Tgtd(tmp_path).start()
    pid = daemon.proc.pid
    target = daemon.new_target("lifecycle", {1: "1M"})
    assert target.url(1) == f"iscsi://127.0.0.1:{daemon.port}/{target.iqn}/1"
    assert "lifecycle" in daemon.tgtadm("--op", "show", "--mode", "target")
    daemon.stop()
    daemon.stop()  # idempotent
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    with pytest.raises(TgtdError, match="not running"):
        daemon.tgtadm("--op", "show", "--mode", "target")
