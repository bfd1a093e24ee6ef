"""`serverfree sim run`: a simulator scenario's backups made into the orchestrator's jobs.

Each backup goes through the composition root (:mod:`orchestrator.compose`)
as `backup image` does: the topology verdict, the data movers that serve the
volume in order, its destination pool and the starting path from the
scenario's options (a sim scenario means a site with server-free and LAN-free
enabled unless its ``options`` say otherwise).
"""
from __future__ import annotations

from pathlib import Path

from orchestrator import compose
from orchestrator.eligibility import NoPathError
from orchestrator.job import DeviceSpec, JobReport, backup_job
from orchestrator.options import parse_options
from simulator.scenarios.jobs import SERVER, options_text
from simulator.scenarios.load import BLOCK, Scenario, SimRun, extents_for, setup_scenario


def run_scenario(scen: Scenario, base: Path = Path(".")) -> SimRun:
    """Compose the orchestrator's backup jobs with the simulated SAN of a scenario and run them."""
    setup = setup_scenario(scen, base)
    domain = compose.domain_paths(setup.topology)
    procs, failed = [], []
    for b in scen.backups:
        vol, disk, naa = setup.volume(b.volume)
        opts = parse_options(options_text({"nodename": vol.client, **scen.options}), "sim scenario options")
        vopts = opts.for_volume(vol.mount)
        paths = domain[vol.id]
        try:
            elig = compose.start_path(vopts, file_system=vol.filesystem.value.lower(), paths=paths)
        except NoPathError as exc:
            failed.append(JobReport("backup", vol.client, vol.mount, outcome="failed", message=str(exc)))
            continue
        desig = {d: setup.designators.get(d) or n for d, n in (paths.pool.designators if paths.pool else {}).items()}
        plan = compose.path_plan(elig, server=SERVER, pool_designators=desig, batch_mb=scen.batch_mb)
        spec = compose.backup_spec(node=vol.client, filespace=vol.mount, vopts=vopts, elig=elig,
                                   source=DeviceSpec(name=disk, designator=naa if elig.server_free else ""),
                                   volume_offset=vol.offset // BLOCK * BLOCK, volume_size=vol.size,
                                   file_system=vol.filesystem.value.lower(),
                                   extents=extents_for(vol.size, b.fragments, b.used),
                                   pool=paths.pool.name if paths.pool else "", paths=plan)
        procs.append(setup.driver.process(backup_job(spec), name=vol.id, client=vol.client, start=b.start_s))
    run = setup.run(procs)
    run.reports.extend(failed)
    return run
