"""verify() (work shared between volumes) agrees with the straightforward per-volume reference judge."""
import random

import pytest

from topology.graph import build_graph
from topology.load import topology_from_data
from topology.reference import reference_verdicts
from topology.synthetic import generate_domain
from topology.verify import verify

DOMAINS = {
    "two-cores": {"ports": 110, "luns": 30, "volumes": 10, "arrays": 2, "movers": 2, "drives": 2, "edge_ports": 12},
    "three-arrays": {"ports": 140, "luns": 36, "volumes": 9, "arrays": 3, "movers": 3, "drives": 4,
                     "edge_ports": 16},
}
KINDS = ("switch", "link", "port", "swport", "mover")


def _cases(topo, seed: int) -> list[list[str]]:
    g = build_graph(topo)
    nodes = sorted(n for n in g if g.nodes[n]["kind"] in KINDS)
    isls = sorted(n for n in g if g.nodes[n].get("isl"))
    rnd = random.Random(seed)
    return [[], ["CA0"], ["CA0", "CB1"], [isls[0], isls[-1]], ["DM0"], rnd.sample(nodes, 2), rnd.sample(nodes, 3)]


@pytest.mark.parametrize("name", sorted(DOMAINS))
def test_verify_matches_reference(name):
    topo = topology_from_data(generate_domain(**DOMAINS[name]))
    seen = set()
    for fail in _cases(topo, seed=len(name)):
        report = verify(topo, fail)
        ref = reference_verdicts(topo, fail)
        assert set(ref) == {v.volume for v in report.volumes}
        for v in report.volumes:
            r = ref[v.volume]
            got = (v.server_free, v.disjoint_paths, v.single_points_of_failure)
            assert got == (r.server_free, r.disjoint_paths, r.single_points_of_failure), (fail, v.volume)
            seen.add((r.server_free, r.disjoint_paths, bool(r.single_points_of_failure)))
    # The cases must exercise redundant, single-path-with-SPOF and broken volumes alike.
    assert {(True, 2, False), (True, 1, True)} <= seen


def test_reference_sees_a_single_point_of_failure():
    topo = topology_from_data(generate_domain(**DOMAINS["two-cores"]))
    ref = reference_verdicts(topo, ["CA0", "CA1"])
    v = next(iter(ref.values()))
    assert v.server_free and v.disjoint_paths == 1 and v.single_points_of_failure
    assert "CB0" not in v.single_points_of_failure  # two cores in fabric B
    assert not reference_verdicts(topo, ["CA0", "CA1", v.single_points_of_failure[0]])[next(iter(ref))].server_free


def test_reference_refuses_tsm_paths(topologies):
    from topology.load import load_topology
    from topology.tsm_macro import merge_macros

    topo = merge_macros(load_topology(topologies / "tsm-fabric.yaml", check=False), [topologies / "tsm-server.mac"])
    assert topo.tsm_paths, "scenarios/topologies/tsm-server.mac must define DEFINE PATH statements"
    with pytest.raises(ValueError, match="DEFINE PATH"):
        reference_verdicts(topo)
