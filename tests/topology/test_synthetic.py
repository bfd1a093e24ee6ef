"""A generated dual-fabric domain: every volume redundant, and failures behave as predicted."""
import pytest

from topology.load import topology_from_data
from topology.synthetic import count_ports, generate_domain
from topology.verify import verify


@pytest.fixture(scope="module")
def domain():
    doc = generate_domain(ports=300, luns=60, volumes=30, arrays=3, movers=3, drives=4, edge_ports=16)
    return doc, topology_from_data(doc)


def test_generated_domain_is_fully_redundant(domain):
    doc, topo = domain
    assert count_ports(doc) >= 290
    report = verify(topo)
    assert report.all_server_free
    assert {v.disjoint_paths for v in report.volumes} == {2}
    assert all(v.single_points_of_failure == [] for v in report.volumes)


def test_losing_fabric_a_core_and_edge_keeps_fabric_b(domain):
    _, topo = domain
    v = verify(topo, ["CA0", "CA1"]).volumes[0]
    assert v.server_free and v.disjoint_paths == 1
    assert "CB0" not in v.single_points_of_failure  # two cores per fabric
    for component in v.single_points_of_failure:
        assert verify(topo, ["CA0", "CA1", component], redundancy=False).volumes[0].server_free is False


def test_all_movers_down_falls_back(domain):
    _, topo = domain
    report = verify(topo, ["DM0", "DM1", "DM2"], redundancy=False)
    assert not report.all_server_free
    assert {v.path for v in report.volumes} == {"lan"}  # the generator zones no client with a drive
    assert report.volumes[0].reason.message.startswith("data mover DM0 is failed")
