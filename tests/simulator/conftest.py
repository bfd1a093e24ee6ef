"""A small hand-built SAN: one client disk, one mover, one drive, a server, a LAN, a storage agent."""
import pytest

from simulator.calibration import Calibration
from simulator.san import SimSAN

MB = 1_000_000


def build_small_san(**cal) -> SimSAN:
    base = dict(disk_positioning_ms=0.0, mover_command_ms=0.0, tape_native_mb_s=50.0, mover_mb_s=100.0,
                disk_mb_s=200.0, scsi_timeout_s=30.0, mover_reset_s=10.0)
    base.update(cal)
    san = SimSAN(Calibration(**base))
    for name in ("A1", "ISL", "M1", "T1", "H1", "S1"):
        san.add_link(name, 200 * MB, kind="isl" if name == "ISL" else "link")
    san.alias("SW1/3", "M1")
    san.add_host("C1", nic_gbit=1.0)
    san.add_host("SRV", nic_gbit=1.0, server=True)
    san.add_lan("LAN", 1.0)
    san.add_disk("C1:D", owner="C1")
    san.add_mover("DM1")
    san.add_drive("DRV1")
    san.add_agent("SA1", "C1", serves=["C1"])
    san.add_route("C1:D", "DM1", [("A1", True), ("ISL", True), ("M1", True)])
    san.add_route("DM1", "DRV1", [("M1", False), ("T1", True)])
    san.add_route("C1:D", "C1", [("A1", True), ("ISL", True), ("H1", True)])
    san.add_route("C1", "DRV1", [("H1", False), ("T1", True)])
    san.add_route("SRV", "DRV1", [("S1", False), ("T1", True)])
    return san


@pytest.fixture
def small_san() -> SimSAN:
    return build_small_san()


def _run_proc(san, gen):
    proc = san.env.process(gen)
    san.env.run(until=proc)
    return proc.value


@pytest.fixture
def run_proc():
    """Run one simpy process generator to completion and return its value."""
    return _run_proc


@pytest.fixture
def san_factory():
    return build_small_san
