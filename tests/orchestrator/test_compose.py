"""The composition root gives every command the same answer: `paths`, the scenario runner and the CLI's
composer agree on the starting path, the data-mover order and the destination pool of every volume of
every shipped topology, and of a tape + disk-pool topology with each ISL failed."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from orchestrator.cli import main
from orchestrator.cli.backup_cmd import site_start
from orchestrator.drivers.site import SiteConfig
from orchestrator.eligibility import NoPathError
from orchestrator.job import JobReport
from orchestrator.options import parse_options
from simulator.scenarios.load import CiScenario
from simulator.scenarios.run import ScenarioRunner
from topology.load import load_topology

TOPOLOGIES = Path(__file__).resolve().parents[2] / "scenarios" / "topologies"
TWO_POOLS = TOPOLOGIES / "tape-and-disk-pools.yaml"
CASES = [(p.name, ()) for p in sorted(TOPOLOGIES.glob("*.yaml"))] + [
    (TWO_POOLS.name, ("ISL1",)), (TWO_POOLS.name, ("ISL2",)), (TWO_POOLS.name, ("ISL1", "ISL2"))]
OPTIONS = "enableserverfree yes\nenablelanfree yes\n"


def offline_copy(path: Path, failed: tuple[str, ...], tmp_path: Path) -> Path:
    """The topology with the failed links marked offline: what the CLI's site file points at."""
    if not failed:
        return path
    doc = yaml.safe_load(path.read_text())
    for link in doc["links"]:
        if link.get("name") in failed:
            link["online"] = False
    out = tmp_path / path.name
    out.write_text(yaml.safe_dump(doc))
    return out


def from_paths(path: Path, failed: tuple[str, ...], capsys) -> dict[str, tuple]:
    main(["paths", str(path), "--json", "--no-redundancy", *[a for f in failed for a in ("--fail", f)]])
    out = json.loads(capsys.readouterr().out)
    return {v["volume"]: (v["path"], v["movers"] if v["path"] == "server-free" else [],
                          v["destination_pool"]["name"]) for v in out["volumes"]}


def from_scenario_runner(path: Path, failed: tuple[str, ...], volumes: list[str]) -> dict[str, tuple]:
    scen = CiScenario.model_validate({
        "topology": str(path), "options": {"enableserverfree": True, "enablelanfree": True},
        "faults": [{"kind": "isl_down", "target": f, "at_s": 0} for f in failed],
        "jobs": [{"backup": v} for v in volumes]})
    runner = ScenarioRunner(scen, source="consistency")
    try:
        out = {}
        for step in scen.jobs:
            spec = runner.backup_spec(step, 0)
            pool = runner.paths(step.volume).pool.name
            if isinstance(spec, JobReport):
                out[step.volume] = (None, [], pool)
            else:
                sf = spec.paths.start.value == "server-free"
                out[step.volume] = (spec.paths.start.value, spec.paths.movers if sf else [], spec.pool)
        return out
    finally:
        runner.close()


def from_cli_composer(path: Path, volumes: list[str]) -> dict[str, tuple]:
    topo = load_topology(path)
    vols = {v.id: v for v in topo.volumes}
    out = {}
    for vid in volumes:
        pool_name = next(m.destination for m in topo.mgmtclasses if m.name == vols[vid].mgmtclass)
        site = SiteConfig(topology=str(path), devices={"d": "x.img"}, lan_pool={"volumes": {"V": "x.img"}},
                          movers={m.name: "inprocess" for m in topo.datamovers},
                          pool={"name": pool_name, "volumes": [{"name": "V", "device": "d", "capacity": "1m"}]},
                          volumes={vid: {"device": "d", "topology_volume": vid}})
        vopts = parse_options(OPTIONS, "dsm.opt").for_volume(vid)
        try:
            paths, elig = site_start("site.yaml", site, vopts, vid, vols[vid].filesystem.value.lower(),
                                     "lan_pool")
        except NoPathError:
            out[vid] = (None, [], paths_pool(path, vid))
            continue
        sf = elig.start.value == "server-free"
        out[vid] = (elig.start.value, elig.movers if sf else [], paths.pool.name)
    return out


def paths_pool(path: Path, vid: str) -> str:
    from orchestrator.compose import destination_pool

    return destination_pool(load_topology(path), vid).name


def shipped(name: str, tmp_path: Path) -> Path:
    """A shipped topology as one file; tsm-fabric.yaml needs its TSM macro merged (as `paths --macro` does)."""
    path = TOPOLOGIES / name
    if name != "tsm-fabric.yaml":
        return path
    from topology.tsm_macro import merge_macros

    merged = merge_macros(load_topology(path, check=False), [TOPOLOGIES / "tsm-server.mac"], fabric_file=name)
    out = tmp_path / "merged" / name
    out.parent.mkdir()
    out.write_text(yaml.safe_dump(merged.model_dump(mode="json", exclude_unset=True)))
    return out


@pytest.mark.parametrize("name, failed", CASES, ids=[f"{n}{'-' + '+'.join(f) if f else ''}" for n, f in CASES])
def test_paths_scenario_runner_and_cli_agree(name, failed, tmp_path, capsys):
    path = shipped(name, tmp_path)
    told = from_paths(path, failed, capsys)
    assert from_paths(offline_copy(path, failed, tmp_path), (), capsys) == told  # --fail == offline in the file
    volumes = sorted(told)
    assert from_scenario_runner(path, failed, volumes) == told
    assert from_cli_composer(offline_copy(path, failed, tmp_path), volumes) == told


def test_each_volume_goes_to_its_own_management_class_pool(capsys):
    """The drift the root removed: with ISL1 down the disk-pool volume F: still goes server-free to its disk
    pool (a scenario used to send it to the tape drive of the other class's pool)."""
    told = from_paths(TWO_POOLS, ("ISL1",), capsys)
    assert told == {"CLIENT1:E:": (None, [], "TAPEPOOL"), "CLIENT1:F:": ("server-free", ["DM1", "DM2"], "DISKPOOL")}
    assert from_paths(TWO_POOLS, ("ISL2",), capsys)["CLIENT1:E:"] == ("server-free", ["DM1"], "TAPEPOOL")


def test_unset_enablelanfree_means_no_everywhere():
    """One rule: an unset enablelanfree is no (TSM's default) in the CLI and in scenarios alike."""
    from orchestrator.compose import start_path, volume_paths

    topo = load_topology(TOPOLOGIES / "small.yaml")
    vopts = parse_options("enableserverfree no\n", "dsm.opt").for_volume("CLIENT1:H:")
    elig = start_path(vopts, file_system="ntfs", paths=volume_paths(topo, "CLIENT1:H:"))
    assert elig.start.value == "lan" and not elig.lan_free and "LAN-free: enablelanfree is no" in elig.reasons
    scen = CiScenario.model_validate({"topology": str(TOPOLOGIES / "small.yaml"),
                                      "options": {"enableserverfree": False}, "jobs": [{"backup": "CLIENT1:H:"}]})
    runner = ScenarioRunner(scen, source="lanfree")
    try:
        spec = runner.backup_spec(scen.jobs[0], 0)
    finally:
        runner.close()
    assert spec.paths.start.value == "lan" and not spec.paths.lan_free
