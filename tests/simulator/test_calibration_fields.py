"""Every field of a scenario's calibration changes the prediction it should; one the topology overrides on
every device is refused with the reason.  Each case runs a small scenario twice (the default and the
changed value, in the situation where the figure matters) and requires a different outcome."""
from __future__ import annotations

from pathlib import Path

import pytest

from simulator.calibration import Calibration, PathCpu
from simulator.scenarios.load import CiScenario
from simulator.scenarios.run import run_ci_scenario

TOPOLOGIES = Path(__file__).resolve().parents[2] / "scenarios" / "topologies"
VOL = "CLIENT1:H:"
SF, LF, LAN = ({"enableserverfree": True, "enablelanfree": True}, {"enableserverfree": False, "enablelanfree": True},
               {"enableserverfree": False, "enablelanfree": False})

#: situations: (topology, options, volume fragments, faults, jobs)
SITUATIONS = {
    "server-free": ("dual-fabric.yaml", SF, 16, [], 1),
    "lan-free": ("dual-fabric.yaml", LF, 16, [], 1),
    "lan": ("dual-fabric.yaml", LAN, 16, [], 1),
    "slow-source": ("dual-fabric.yaml", SF, 64, [], 1),
    "many-jobs": ("dual-fabric.yaml", SF, 4, [], 6),
    "mover-hang": ("small.yaml", SF, 4, [{"kind": "mover_hang", "target": "DM1", "at_s": 1}], 1),
    "mover-reset": ("dual-fabric.yaml", SF, 4, [{"kind": "mover_reset", "target": "DM1", "at_s": 1},
                                                {"kind": "mover_reset", "target": "DM2", "at_s": 1}], 1),
}
#: settings that put the figure under test on the critical path (the bottleneck, or a starved drive)
CONTEXT = {
    "disk_positioning_ms": {"disk_mb_s": 5},
    "mover_command_ms": {"mover_mb_s": 3},
    # the mover's queue and chunk matter where command latency does
    # (200 ms per command: the client disk, not the 15 MB/s drive, is the bottleneck)
    **{f: {"disk_command_ms": 200} for f in ("mover_io_depth", "mover_chunk_kib", "lun_max_transfer_kib")},
    "lun_optimal_transfer_kib": {"disk_command_ms": 200, "mover_io_depth": 1},
}
SLOW_SOURCE = {"disk_mb_s": 20, "tape_native_mb_s": 100, "tape_buffer_mib": 8, "mover_buffer_mib": 0}

CASES = [
    ("disk_mb_s", {"disk_mb_s": 5}, "server-free"),
    ("disk_positioning_ms", {"disk_positioning_ms": 500}, "server-free"),
    ("disk_command_ms", {"disk_command_ms": 5000}, "server-free"),
    ("lun_max_transfer_kib", {"lun_max_transfer_kib": 64}, "server-free"),
    ("lun_optimal_transfer_kib", {"lun_optimal_transfer_kib": 768}, "server-free"),
    ("fc_mb_s_per_gbit", {"fc_mb_s_per_gbit": 1}, "server-free"),
    ("lan_efficiency", {"lan_efficiency": 0.05}, "lan"),
    ("mover_mb_s", {"mover_mb_s": 3}, "server-free"),
    ("mover_concurrency", {"mover_concurrency": 1, "tape_native_mb_s": 400, "mover_mb_s": 400}, "many-jobs"),
    ("mover_buffer_mib", {"mover_buffer_mib": 512}, "slow-source"),
    ("mover_command_ms", {"mover_command_ms": 2000}, "server-free"),
    ("mover_reset_s", {"mover_reset_s": 1}, "mover-reset"),
    ("mover_io_depth", {"mover_io_depth": 1}, "server-free"),
    ("mover_chunk_kib", {"mover_chunk_kib": 64}, "server-free"),
    ("verify_mb_s", {"verify_mb_s": 1}, "lan-free"),
    ("tape_native_mb_s", {"tape_native_mb_s": 60}, "server-free"),
    ("tape_compression", {"tape_compression": 3}, "server-free"),
    ("tape_min_streaming_fraction", {"tape_min_streaming_fraction": 0.01}, "slow-source"),
    ("tape_buffer_mib", {"tape_buffer_mib": 1}, "slow-source"),
    ("tape_reposition_s", {"tape_reposition_s": 20}, "slow-source"),
    ("tape_mount_s", {"tape_mount_s": 90}, "server-free"),
    ("tape_command_ms", {"tape_command_ms": 2000}, "server-free"),
    ("host_cpu_cores", {"host_cpu_cores": 0.01}, "lan-free"),
    ("storage_agent_mb_s", {"storage_agent_mb_s": 2}, "lan-free"),
    ("client_cpu_ms_per_mib.server_free", {"client_cpu_ms_per_mib": {"server_free": 3}}, "server-free"),
    ("client_cpu_ms_per_mib.lan_free", {"client_cpu_ms_per_mib": {"lan_free": 40}}, "lan-free"),
    ("client_cpu_ms_per_mib.lan", {"client_cpu_ms_per_mib": {"lan": 60}}, "lan"),
    ("server_cpu_ms_per_mib.server_free", {"server_cpu_ms_per_mib": {"server_free": 3}}, "server-free"),
    ("server_cpu_ms_per_mib.lan_free", {"server_cpu_ms_per_mib": {"lan_free": 3}}, "lan-free"),
    ("server_cpu_ms_per_mib.lan", {"server_cpu_ms_per_mib": {"lan": 60}}, "lan"),
    ("scsi_timeout_s", {"scsi_timeout_s": 5}, "mover-hang"),
]


def prediction(field: str, situation: str, calibration: dict) -> tuple:
    topo, options, fragments, faults, jobs = SITUATIONS[situation]
    cal = dict(SLOW_SOURCE) if situation == "slow-source" else {}
    cal.update(CONTEXT.get(field, {}))
    cal.update(calibration)
    scen = CiScenario.model_validate({
        "topology": str(TOPOLOGIES / topo), "calibration": cal, "options": options, "faults": faults,
        "volumes": [{"id": VOL, "size": "256MiB", "used": 0.5, "fragments": fragments}],
        "jobs": [{"backup": VOL, "count": jobs}] + ([{"backup": VOL}] if situation == "mover-reset" else [])})
    run = run_ci_scenario(scen, source=f"calibration {situation}")
    return (round(run.san.env.now, 6),
            tuple((j.report.outcome, j.report.path_used, tuple(sorted(j.report.bytes_by_path.items())))
                  for j in run.jobs),
            tuple(sorted((h, round(s, 6)) for j in run.jobs for h, s in j.cpu_seconds.items())),
            len(run.san.timeline.events_of("shoeshine")))


def test_every_calibration_field_has_a_case():
    fields = set()
    for name, info in Calibration.model_fields.items():
        if info.annotation is PathCpu:
            fields |= {f"{name}.{sub}" for sub in PathCpu.model_fields}
        else:
            fields.add(name)
    assert fields == {c[0] for c in CASES}


@pytest.mark.parametrize("field, changed, situation", CASES, ids=[c[0] for c in CASES])
def test_calibration_field_changes_the_prediction(field, changed, situation):
    base = {k: v for k, v in changed.items() if k != field.split(".")[0]}  # the case's other settings
    before, after = prediction(field, situation, base), prediction(field, situation, changed)
    assert before != after, f"calibration.{field} = {changed} changed nothing in situation {situation}: {before}"


def test_a_figure_the_topology_sets_on_every_device_is_refused():
    scen = CiScenario.model_validate({
        "topology": str(TOPOLOGIES / "small.yaml"), "calibration": {"tape_native_mb_s": 200},
        "options": SF, "jobs": [{"backup": VOL}]})
    with pytest.raises(ValueError, match=r"calibration.tape_native_mb_s: topology small sets native_mb_s on every "
                                         r"drive \(drive DRV1 \(native_mb_s 15\)\), so 200 would change nothing"):
        run_ci_scenario(scen)
