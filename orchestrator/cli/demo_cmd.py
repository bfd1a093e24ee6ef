"""`serverfree demo`: the main job with nothing to configure.

An embedded scenario: a small simulated SAN (one client, a disk array with
two LUNs, data mover DM1, a NONBLOCK disk storage pool on a second array, a
storage agent, the LAN) and two real NTFS volumes (made with mkntfs and filled
with files where ntfs-3g is installed, else the small bundled image).  Volume
H: is backed up server-free by the copy manager engine; during the backup of
I: the data mover's switch port fails mid-copy, the engine answers COPY
ABORTED and the job fails over to LAN-free, sending the rest uncompressed
although compression is yes -- so that both can be restored server-free onto
their zeroed LUNs (the seed's reason), where they are compared byte for byte
(and file by file with ntfscat where it exists).  Exit 0 only if both
restores are byte-identical.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from typing import Any

WWPN = {"client": "10:00:00:00:c9:00:00:01", "server": "10:00:00:00:c9:00:00:02",
        "array": "20:00:00:a0:b8:00:00:01", "mover": "21:00:00:e0:8b:05:05:04", "pool": "20:00:00:a0:b8:00:00:02"}

DEMO_TOPOLOGY: dict[str, Any] = {
    "name": "demo",
    "server": "TSMSRV",
    "lan": {"name": "LAN", "speed_gbit": 1.0},
    "hosts": [
        {"name": "CLIENT1", "roles": ["client"], "lan_address": "10.0.0.11", "hba_ports": [{"wwpn": WWPN["client"]}]},
        {"name": "TSMSRV", "roles": ["server"], "lan_address": "10.0.0.2", "hba_ports": [{"wwpn": WWPN["server"]}]},
    ],
    "switches": [{"name": "SW1", "port_count": 16}],
    "links": [{"a": WWPN[k], "b": f"SW1/{i}"} for i, k in enumerate(("client", "server", "array", "mover", "pool"))],
    "zones": [
        {"name": "Z_CLIENT1", "members": [WWPN["client"], WWPN["array"], WWPN["pool"]]},
        {"name": "Z_DM1", "members": [WWPN["mover"], WWPN["array"], WWPN["pool"]]},
        {"name": "Z_SERVER", "members": [WWPN["server"], WWPN["pool"]]},
    ],
    "zonesets": [{"name": "ZS", "zones": ["Z_CLIENT1", "Z_DM1", "Z_SERVER"]}],
    "active_zonesets": ["ZS"],
    "arrays": [{
        "name": "ARR1", "ports": [{"wwpn": WWPN["array"]}],
        "luns": [{"number": 5, "naa": "600a0b800000000000000000000000a5", "serial": "ARR1-0005", "size": "1GiB"},
                 {"number": 6, "naa": "600a0b800000000000000000000000a6", "serial": "ARR1-0006", "size": "1GiB"}],
        "masking": [{"initiator": WWPN["client"], "luns": [5, 6]}, {"initiator": WWPN["mover"], "luns": [5, 6]}],
    }, {
        "name": "POOLARR", "ports": [{"wwpn": WWPN["pool"]}],
        "luns": [{"number": 1, "naa": "600a0b800000000000000000000000b1", "serial": "POOL-0001", "size": "100GiB"}],
        "masking": [{"initiator": WWPN[k], "luns": [1]} for k in ("client", "mover", "server")],
    }],
    "datamovers": [{"name": "DM1", "ports": [{"wwpn": WWPN["mover"]}], "serial": "SDG1-0001",
                    "throughput_mb_s": 100, "max_segment_bytes": "1MiB"}],
    "devclasses": [{"name": "DISKCLASS", "devtype": "FILE"}],
    "stgpools": [{"name": "SFPOOL", "devclass": "DISKCLASS", "dataformat": "NONBLOCK", "disk_luns": ["POOLARR:1"]}],
    "mgmtclasses": [{"name": "SF1", "destination": "SFPOOL"}],
    "storage_agents": [{"name": "SA_CLIENT1", "host": "CLIENT1", "clients": ["CLIENT1"]}],
    "volumes": [
        {"client": "CLIENT1", "mount": m, "filesystem": "NTFS", "lun": lun, "size": "32MiB", "mgmtclass": "SF1"}
        for m, lun in (("H:", "ARR1:5"), ("I:", "ARR1:6"))
    ],
}

#: When the SAN error strikes, in simulated seconds after the backup of I: starts.  The demo moves it to
#: FAULT_AT_FRACTION of the time H: (a volume of the same make) took, so it lands mid-copy whichever
#: NTFS image the machine could make (copy then verification: the copy is the first ~half).
FAULT_AFTER_S = 1.2
FAULT_AT_FRACTION = 0.25
#: ... and the port is repaired after this fraction, before the restores (the job does not fail back).
REPAIR_FRACTION = 0.3

DEMO_SCENARIO: dict[str, Any] = {
    "name": "demo",
    "description": "server-free backup of H:, SAN error mid-copy on I: with failover to LAN-free, restore both",
    "topology": DEMO_TOPOLOGY,
    "mode": "exact",
    "seed": 6,
    "options": {"enableserverfree": True, "enablelanfree": True, "compression": True},
    "volumes": [{"id": "CLIENT1:H:", "sample_ntfs": True}, {"id": "CLIENT1:I:", "sample_ntfs": True}],
    "jobs": [
        {"backup": "CLIENT1:H:"},
        {"backup": "CLIENT1:I:", "faults": [{"kind": "switch_port_down", "target": "SW1/3", "at_s": FAULT_AFTER_S,
                                             "duration_s": 3600}]},
        {"restore": "CLIENT1:H:", "expect": {"byte_identical": True}},
        {"restore": "CLIENT1:I:", "expect": {"byte_identical": True}},
    ],
}


def register(sub) -> None:  # type: ignore[no-untyped-def]
    p = sub.add_parser("demo", help="run the built-in demonstration (simulated SAN, nothing to configure)",
                       description=__doc__.split("\n\n")[1] if __doc__ else None)
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    p.set_defaults(func=run)


def progress_bar(enabled: bool) -> Callable[[str, float], None]:
    """A progress bar on stderr: tqdm when it is installed already, else a plain one."""
    if not enabled:
        return lambda label, frac: None
    try:
        from tqdm import tqdm  # optional: no new dependency
    except ImportError:
        tqdm = None
    if tqdm is not None:
        bar = tqdm(total=100, file=sys.stderr, unit="%", leave=False, bar_format="{l_bar}{bar}| {desc}")

        def show_tqdm(label: str, frac: float) -> None:
            bar.set_description_str(label)
            bar.update(round(frac * 100) - bar.n)
            if frac >= 1:
                bar.close()
        return show_tqdm
    tty = sys.stderr.isatty()

    def show(label: str, frac: float) -> None:
        filled = int(frac * 30)
        line = f"[{'#' * filled}{'.' * (30 - filled)}] {frac * 100:3.0f}% {label}"
        sys.stderr.write(("\r" + line.ljust(100) if tty else line + "\n") + ("\n" if tty and frac >= 1 else ""))
        sys.stderr.flush()
    return show


def run_demo(progress: Callable[[str, float], None] = lambda label, frac: None) -> dict:
    """Run the embedded scenario; a dict with every job, the summary and the verdict."""
    from simulator.scenarios.run import ScenarioRunner
    from orchestrator.volume.samples import ntfs_tools_available
    from simulator.scenarios.load import CiScenario

    t0 = time.perf_counter()
    scen = CiScenario.model_validate(DEMO_SCENARIO)
    source = "mkntfs (ntfs-3g)" if ntfs_tools_available() else "the bundled NTFS image"
    progress(f"making two NTFS volumes with {source}", 0.02)
    steps = ["backup H: server-free", "backup I: (SAN error mid-copy)", "restore H:", "restore I:"]

    def phase_done(label: str, frac: float) -> None:
        n = round(frac * len(steps))
        if n == 1:  # H: is backed up: strike I: mid-copy, timed from how long H: took
            step = runner.scen.jobs[1]
            took = runner.san.env.now
            step.faults = [f.model_copy(update={"at_s": FAULT_AT_FRACTION * took,
                                                "duration_s": REPAIR_FRACTION * took}) for f in step.faults]
        nxt = f", now {steps[n]}" if n < len(steps) else ""
        progress(f"{steps[n - 1]} done{nxt}", 0.1 + 0.9 * frac)

    runner = ScenarioRunner(scen, source="demo", progress=phase_done)
    try:
        progress(f"{steps[0]} ...", 0.1)
        run = runner.execute()
    finally:
        runner.close()
    restores = [j for j in run.jobs if j.kind == "restore"]
    ok = len(restores) == 2 and all(j.report.ok and j.byte_identical for j in restores)
    return {"ok": ok, "volumes_from": source, "summary": run.summary(),
            "wall_seconds": round(time.perf_counter() - t0, 2), "jobs": [j.as_dict() for j in run.jobs]}


def _mb(n: int) -> str:
    return f"{n / 1e6:.1f} MB"


def report_text(result: dict) -> str:
    """The short report a person reads at the end."""
    lines = [(f"serverfree demo: simulated SAN (client CLIENT1, array ARR1, data mover DM1, disk storage pool "
              f"on POOLARR:1, storage agent, LAN); two NTFS volumes from {result['volumes_from']}")]
    for j in result["jobs"]:
        moved = ", ".join(f"{p} {_mb(n)}" for p, n in j["bytes_by_path"].items() if n) or "nothing moved"
        cpu = j["phase_cpu_seconds"]
        lines.append(f"  {j['kind']:7s} {j['filespace']:3s} {j['outcome']:9s} path {j['path_used'] or '-':22s} "
                     f"{moved}; {j['ended_s'] - j['started_s']:.2f} s simulated; CPU client "
                     f"{cpu.get('CLIENT1', 0):.3f} s, server {cpu.get('TSMSRV', 0):.3f} s")
        for f in j["failovers"]:
            mover = f" ({f['mover']})" if f["mover"] else ""
            lines.append(f"      failover {f['from_path']}{mover} -> {f['to_path']} at image byte "
                         f"{f['image_offset']}: {f['reason']}")
        for r in j["reasons"]:
            lines.append(f"      not server-free: {r}")
        for w in j["warnings"]:
            lines.append(f"      note: {w}")
        if j["kind"] == "restore":
            lines.append(f"      byte-identical: {'yes' if j['byte_identical'] else 'NO'} ({j['compare']})")
        if j["outcome"] != "completed" and j["message"]:
            lines.append(f"      error: {j['message']}")
    s = result["summary"]
    lines.append(f"  simulated {s['simulated_seconds']:.2f} s in {result['wall_seconds']:.1f} s; "
                 f"{'both restores byte-identical' if result['ok'] else 'RESTORE MISMATCH: see above'}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    result = run_demo(progress_bar(not args.no_progress and not args.json))
    if args.json:
        print(json.dumps(result, indent=1, default=str))
    else:
        print(report_text(result))
    return 0 if result["ok"] else 1
