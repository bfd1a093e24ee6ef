"""`serverfree demo`: the main job with nothing to configure, through the backup server.

Everything a site has, each its own process on 127.0.0.1: the software data
mover (``serverfree datamover serve``) serving two real NTFS volumes (made
with mkntfs where ntfs-3g is installed, else the small bundled image), the
pool volume and two blank restore LUNs over iSCSI, with the designators of
the embedded SAN topology; the backup server (``serverfree server``, its own
--data directory, the administrator's password from a generated file, the
topology as --fabric); the site defined through ``serverfree admin ...
macro``; and the client commands (``backup image``, ``query backup``,
``restore image``) with a dsm.opt naming the server.  H: is copied
server-free, the server commanding the mover; during I: the mover answers
COPY ABORTED (its fault injection), the server keeps what the mover committed
and the client moves the rest LAN-free (its storage-agent map); H: restores
server-free; I:'s server-free restore is aborted by the mover too and the
client restores it over the LAN.  Both restores are compared byte for byte over every used
cluster and file by file with ntfscat.  Exit 0 only if both are identical;
the server and the mover are stopped by PID.
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from collections.abc import Callable
from typing import Any

from orchestrator.cli.demo_lab import NODE, POOL_SIZE

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

#: The demo's steps: (kind, volume, restore destination, the client's site file) -- the client commands it runs.
#: I: is restored with the site file that has no storage-agent map (the client's SAN path to the pool is down):
#: when the mover aborts that restore too, the LAN is all that is left.
DEMO_JOBS: list[tuple[str, str, str, str]] = [
    ("backup", "H:", "", "site.yaml"), ("backup", "I:", "", "site.yaml"), ("query", "", "", ""),
    ("restore", "H:", "H-restore", "site.yaml"), ("restore", "I:", "I-restore", "site-no-agent.yaml")]
#: Where the data mover's injected COPY ABORTED strikes the backup of I: (after H:'s image and this fraction of
#: I:'s); a second one strikes the restore of I: half-way.
FAULT_AT_FRACTION = 1 / 3


def register(sub) -> None:  # type: ignore[no-untyped-def]
    p = sub.add_parser("demo", help="run the built-in demonstration (data mover, backup server and client on "
                                    "127.0.0.1; nothing to configure)",
                       description=__doc__.split("\n\n")[1] if __doc__ else None)
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    p.add_argument("--keep", metavar="DIR", help="keep the work directory (volumes, pool, server data, logs, "
                                                 "site file, dsm.opt, macro) in a new folder under DIR")
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


def _blank(path: Path, size: int) -> None:
    with open(path, "wb") as f:
        f.truncate(size)


def _volumes(work: Path) -> tuple[dict, str]:
    """Two filled NTFS volumes (mkntfs where ntfs-3g is installed, else the bundled image), as ScenarioVolumes."""
    from orchestrator.volume import read_used_extents
    from orchestrator.volume.samples import ntfs_tools_available, sample_ntfs_image
    from simulator.scenarios.volumes import ScenarioVolume

    source = "mkntfs (ntfs-3g)" if ntfs_tools_available() else "the bundled NTFS image"
    vols = {}
    for n, (mount, lun) in enumerate((("H:", "ARR1:5"), ("I:", "ARR1:6"))):
        image, files = sample_ntfs_image(work / f"{mount[0]}.img", size=32 << 20, seed=6 + n)
        layout = read_used_extents(image, mount)
        vols[mount] = ScenarioVolume(f"{NODE}:{mount}", NODE, mount, lun, "", 0, layout.size, "ntfs",
                                     layout=layout, files=files)
        vols[mount].buf = bytearray(image.read_bytes())
        # compared over every used cluster (gaps of less than a cluster coalesce: none)
        vols[mount].record_backup(vols[mount].extents(vols[mount].cluster_size), full=True)
        _blank(work / f"{mount[0]}-restore.img", layout.size)  # a blank LUN to restore onto
    return vols, source


def _ladder(report: dict) -> list[dict]:
    """The failover steps of a job: the client's own, and a server-free copy the server could not finish."""
    steps = [dict(f) for f in report.get("failovers", [])]
    prefix = "server-free through the backup server: "
    for r in report.get("reasons", []):
        if r.startswith(prefix):
            steps.insert(0, {"from_path": "server-free", "to_path": (report.get("path_used") or "-").split("+")[0],
                             "mover": "", "image_offset": None, "reason": r[len(prefix):]})
    return steps


def run_demo(progress: Callable[[str, float], None] = lambda label, frac: None,
             keep: Path | None = None) -> dict:
    """Start mover and server, define the site, run the client commands; a dict with every job and the verdict."""
    from orchestrator.cli.demo_lab import DemoError, DemoLab
    from orchestrator.options.model import DEFAULT_GAPSIZE_SERVERFREE

    t0 = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix="serverfree-demo-", dir=keep))
    jobs: list[dict] = []
    setup: list[str] = []
    lab: DemoLab | None = None
    failed = False  # a part did not start or answer: its log stays in the work directory
    try:
        progress("making two NTFS volumes", 0.02)
        vols, source = _volumes(work)
        _blank(work / "pool.img", POOL_SIZE)
        sizes = {m: sum(n for _, n in v.extents(DEFAULT_GAPSIZE_SERVERFREE)) for m, v in vols.items()}
        # the mover counts the bytes its copies wrote since it started: H:'s backup, part of I:'s, H:'s restore
        backup_fault = sizes["H:"] + int(sizes["I:"] * FAULT_AT_FRACTION)
        lab = DemoLab(work, DEMO_TOPOLOGY, [backup_fault, backup_fault + sizes["H:"] + sizes["I:"] // 2])
        progress("starting the data mover", 0.05)
        setup.append(lab.start_mover())
        progress("starting the backup server", 0.08)
        setup.append("serverfree server: " + lab.start_server())
        progress("defining node, pool, policy, mover, disks and paths (serverfree admin macro)", 0.12)
        lab.admin("macro", str(lab.macro()))
        setup.append(f"serverfree admin: macro {lab.work / 'demo.mac'} (node {NODE}, pool SFPOOL, mover DM1, "
                     "disks, paths)")
        lab.client_files()
        for n, (kind, volume, dest, site) in enumerate(DEMO_JOBS):
            progress(f"{kind} {volume}".strip(), 0.15 + 0.85 * n / len(DEMO_JOBS))
            if kind == "query":
                out, cpu, scpu, _ = lab.client("query", "backup")
                jobs.append({"kind": "query", "objects": [{"filespace": o["filespace"], "id": o["id"],
                                                           "image_size": o["image_size"]} for o in out],
                             "client_cpu_seconds": round(cpu, 3), "server_cpu_seconds": round(scpu, 3)})
                continue
            argv = ["backup", "image", volume] if kind == "backup" else ["restore", "image", volume, dest]
            out, cpu, scpu, _ = lab.client(*argv, "--site", str(work / site))
            job = dict(out[0] if isinstance(out, list) else out)
            job.update(ladder=_ladder(job), client_cpu_seconds=round(cpu, 3), server_cpu_seconds=round(scpu, 3),
                       site=site)
            if kind == "restore":
                vol = vols[volume]
                vol.buf = bytearray((work / f"{dest}.img").read_bytes())
                job["byte_identical"], job["compare"] = vol.compare(False)
            jobs.append(job)
        progress("done", 1.0)
        fault = [ln.split("fault injected: ", 1)[1] for ln in (work / "mover.log").read_text().splitlines()
                 if "fault injected: " in ln]
        cpu = {"server": round(lab.server.cpu_seconds, 3) if lab.server else 0.0,
               "mover": round(lab.mover.cpu_seconds, 3) if lab.mover else 0.0}
        pids = {"server": lab.server.proc.pid if lab.server else 0, "mover": lab.mover.proc.pid if lab.mover else 0}
    except DemoError as exc:  # the logs stay for the reader: name the folder
        failed = True
        raise DemoError(f"{exc} (work directory kept: {work})") from None
    finally:
        if lab is not None:
            lab.stop()
        if keep is None and not failed:
            shutil.rmtree(work, ignore_errors=True)
    restores = [j for j in jobs if j["kind"] == "restore"]
    ok = len(restores) == 2 and all(j.get("outcome") == "completed" and j["byte_identical"] for j in restores)
    return {"ok": ok, "volumes_from": source, "setup": setup, "fault": fault, "process_cpu_seconds": cpu, "pids": pids,
            "work_dir": str(work) if keep is not None else "",
            "wall_seconds": round(time.perf_counter() - t0, 2), "jobs": jobs}


def _mb(n: int) -> str:
    return f"{n / 1e6:.1f} MB"


def report_text(result: dict) -> str:
    """The short report a person reads at the end."""
    lines = [f"serverfree demo: data mover DM1, backup server and client {NODE} as processes on 127.0.0.1 "
             f"(iSCSI); the SAN fabric is the demo topology; two NTFS volumes from {result['volumes_from']}"]
    lines += [f"  {s}" for s in result["setup"]]
    for j in result["jobs"]:
        cpu = f"CPU client {j['client_cpu_seconds']:.3f} s, server {j['server_cpu_seconds']:.3f} s"
        if j["kind"] == "query":
            objs = ", ".join(f"{o['filespace']} object {o['id']} {_mb(o['image_size'])}" for o in j["objects"])
            lines.append(f"  query   backup: {objs or 'no objects'}; {cpu}")
            continue
        moved = ", ".join(f"{p} {_mb(n)}" for p, n in j.get("bytes_by_path", {}).items() if n) or "nothing moved"
        lines.append(f"  {j['kind']:7s} {j['filespace']:3s} {j['outcome']:9s} path {j['path_used'] or '-':22s} "
                     f"{moved}; {cpu}")
        if j.get("site") == "site-no-agent.yaml":
            lines.append("      (--site site-no-agent.yaml: no storage-agent map, the client has no SAN path to the pool)")
        for f in j["ladder"]:
            mover = f" ({f['mover']})" if f.get("mover") else ""
            at = f" at image byte {f['image_offset']}" if f.get("image_offset") is not None else ""
            lines.append(f"      failover {f['from_path']}{mover} -> {f['to_path']}{at}: {f['reason']}")
        # the server judged the server-free path: its words stand for the client's local eligibility notes
        server_said = any("through the backup server" in r for r in j.get("reasons", []))
        for r in j.get("reasons", []):
            if not server_said:
                lines.append(f"      not server-free: {r}")
            elif "through the backup server" in r and not r.startswith("server-free through the backup server: "):
                lines.append(f"      note: {r}")
        for w in j.get("warnings", []):
            lines.append(f"      note: {w}")
        if j["kind"] == "restore":
            lines.append(f"      byte-identical: {'yes' if j['byte_identical'] else 'NO'} ({j['compare']})")
        if j["outcome"] != "completed" and j.get("message"):
            lines.append(f"      error: {j['message']}")
    for f in result["fault"]:
        lines.append(f"  the data mover's injected fault: {f}")
    cpu = result["process_cpu_seconds"]
    lines.append(f"  {result['wall_seconds']:.1f} s; CPU server {cpu['server']:.2f} s, data mover {cpu['mover']:.2f} s; "
                 f"{'both restores byte-identical' if result['ok'] else 'RESTORE MISMATCH: see above'}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from orchestrator.cli.demo_lab import DemoError

    keep = Path(args.keep) if args.keep else None
    if keep is not None and not keep.is_dir():
        raise FileNotFoundError(f"--keep {keep}: no such directory")
    try:
        result = run_demo(progress_bar(not args.no_progress and not args.json), keep)
    except DemoError as exc:
        print(f"serverfree demo: error: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(result, indent=1, default=str))
    else:
        print(report_text(result))
    return 0 if result["ok"] else 1
