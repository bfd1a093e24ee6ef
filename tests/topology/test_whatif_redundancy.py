"""What-if failures and redundancy agree with each other."""
import pytest

from topology.graph import SanState
from topology.load import load_topology
from topology.verify import verify


@pytest.mark.parametrize("name", ["small.yaml", "dual-fabric.yaml"])
def test_each_single_point_of_failure_really_removes_server_free(topologies, name):
    topo = load_topology(topologies / name)
    v = verify(topo).volumes[0]
    for component in v.single_points_of_failure:
        assert verify(topo, {component}, redundancy=False).volumes[0].server_free is False, component


@pytest.mark.parametrize("name", ["small.yaml", "dual-fabric.yaml"])
def test_no_other_fabric_component_removes_server_free(topologies, name):
    topo = load_topology(topologies / name)
    v = verify(topo).volumes[0]
    state = SanState.build(topo)
    candidates = [n for n, k in state.graph.nodes(data="kind") if k in ("switch", "link", "swport", "mover")]
    for component in candidates:
        if component in v.single_points_of_failure:
            continue
        assert verify(topo, {component}, redundancy=False).volumes[0].server_free, component


def test_failing_both_fabrics_leaves_no_path(topologies):
    topo = load_topology(topologies / "dual-fabric.yaml")
    v = verify(topo, ["SWA", "SWB"]).volumes[0]
    assert v.path is None and v.reason.rule == "client-disk"
    assert v.server_free is False and v.disjoint_paths == 0
    assert v.reasons["lan"].message.startswith("client CLIENT1 cannot read volume H:: no physical path")


def test_failing_one_fabric_leaves_one_path_through_the_other(topologies):
    report = verify(load_topology(topologies / "dual-fabric.yaml"), ["SWA"])
    v = report.volumes[0]
    assert report.failed == ["SWA"]
    assert v.components[1:] == ["DM2", "DRV2"]
    assert v.disjoint_paths == 1 and "SWB" in v.single_points_of_failure


def test_fail_accepts_wwpn_in_any_spelling(topologies):
    topo = load_topology(topologies / "small.yaml")
    v = verify(topo, ["210000E08B050504"]).volumes[0]
    assert v.reason.message == "data mover DM1 port 21:00:00:e0:8b:05:05:04 is failed"


def test_failed_library_is_named_as_the_cause(topologies):
    v = verify(load_topology(topologies / "small.yaml"), ["LIB1"]).volumes[0]
    assert v.reason.message == "library LIB1 of drive DRV1 is failed" and v.path is None
    assert v.reasons["lan"].message == "library LIB1 of drive DRV1 is failed"  # the server cannot write it either


def test_unknown_component_is_a_lookup_error(topologies):
    with pytest.raises(LookupError, match="unknown component 'SW7'"):
        verify(load_topology(topologies / "small.yaml"), ["SW7"])
