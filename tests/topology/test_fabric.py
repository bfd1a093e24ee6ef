"""The live fabric from the model (pendant chains + a small core) against the whole networkx live fabric."""
from __future__ import annotations

import random

import pytest

from topology.graph import SanState
from topology.load import topology_from_data
from topology.separators import SeparatorIndex
from topology.synthetic import generate_domain

SMALL = {"ports": 110, "luns": 30, "volumes": 10, "arrays": 2, "movers": 2, "drives": 2, "edge_ports": 12}


def _odd_wiring(doc: dict) -> dict:
    """A second cable into a used switch port, a port cabled twice, and a port cabled straight to a port."""
    array_ports = [p["wwpn"] for p in doc["arrays"][0]["ports"]]
    used = next(link["b"] for link in doc["links"] if link["a"] == array_ports[0])
    doc["links"].append({"name": "EXTRA-SWPORT", "a": doc["arrays"][1]["ports"][0]["wwpn"], "b": used})
    doc["links"].append({"name": "EXTRA-CABLE", "a": array_ports[2], "b": "EA0/9"})
    doc["links"].append({"name": "DIRECT", "a": doc["hosts"][1]["hba_ports"][0]["wwpn"],
                         "b": doc["hosts"][2]["hba_ports"][0]["wwpn"]})
    return doc


def _port_partition(state: SanState, ports: list[str]) -> set[frozenset[str]]:
    groups: dict[int, set[str]] = {}
    for p in ports:
        if p in state.component_of:
            groups.setdefault(state.component_of[p], set()).add(p)
    return {frozenset(g) for g in groups.values()}


def _graph_partition(state: SanState, ports: list[str]) -> set[frozenset[str]]:
    import networkx as nx

    live = state.live_fabric
    return {frozenset(p for p in comp if p in set(ports)) for comp in nx.connected_components(live)} - {frozenset()}


@pytest.mark.parametrize("odd", [False, True])
def test_components_and_separators_match_the_whole_graph(odd: bool):
    doc = generate_domain(**SMALL)
    # Odd wiring does not pass the loader's checks; the graph code must still agree on it (check=False).
    topo = topology_from_data(_odd_wiring(doc), check=False) if odd else topology_from_data(doc)
    base = SanState.build(topo)
    kinds = dict(base.graph.nodes(data="kind"))
    ports = sorted(n for n, k in kinds.items() if k == "port")
    candidates = sorted(n for n, k in kinds.items() if k in ("switch", "link", "swport", "port", "host", "array",
                                                                "library", "drive", "mover"))
    rnd = random.Random(5 + odd)
    cases = [[], ["CA0"], ["EA0"], ["LIB1"], ["ARR1", "DRV0"]] + [rnd.sample(candidates, k) for k in (1, 2, 4, 8)] * 3
    for fail in cases:
        state = SanState.build(topo, fail)
        assert _port_partition(state, ports) == _graph_partition(state, ports), fail
        old = SeparatorIndex(state.live_fabric, state.graph)
        new = state.separator_index()
        assert new.attach == old.attach, fail
        live_ports = [p for p in ports if p in state.component_of]
        for a in live_ports[::3]:
            for b in live_ports[1::4]:
                if state.connected(a, b):
                    assert new.separators(a, b) == old.separators(a, b), (fail, a, b)
                    assert new.condensed(new.separators(a, b)) == old.condensed(old.separators(a, b))


def test_failing_a_node_named_only_by_a_link_is_accepted():
    doc = generate_domain(**SMALL)
    doc["links"].append({"name": "TO-NOWHERE", "a": doc["hosts"][1]["hba_ports"][0]["wwpn"], "b": "GHOST/1"})
    topo = topology_from_data(doc, check=False)
    state = SanState.build(topo, ["GHOST"])
    assert "GHOST" in state.failed and "GHOST" in state.graph
