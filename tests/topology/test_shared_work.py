"""Work done once per topology is not redone: the load-time index, and the collector pause is scoped."""
import gc

from topology.collector import collector_paused
from topology.graph import SanState
from topology.index import index_of
from topology.load import load_topology
from topology.verify import verify


def test_verification_reuses_the_index_built_while_loading(topologies):
    topo = load_topology(topologies / "small.yaml")
    loaded = index_of(topo)
    assert SanState.build(topo).index is loaded
    copy = topo.model_copy(deep=True)  # a copy (e.g. before a macro merge) gets its own index
    assert index_of(copy) is not loaded and index_of(copy).topology is copy


def test_collector_pause_restores_the_previous_state(topologies):
    topo = load_topology(topologies / "small.yaml")
    assert gc.isenabled()
    with collector_paused():
        assert not gc.isenabled()
    assert gc.isenabled()
    verify(topo)
    assert gc.isenabled()
    gc.disable()
    try:
        verify(topo)
        with collector_paused():
            pass
        assert not gc.isenabled()  # a caller's own choice is left alone
    finally:
        gc.enable()
