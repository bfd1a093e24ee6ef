"""Our flow engine against SimGrid's max-min model on the same random SAN-shaped workload."""
import numpy as np
import pytest

from simulator.flow_workload import (WorkloadShape, relative_errors, run_ours, run_simgrid, san_workload,
                                     simgrid_available)

pytestmark = pytest.mark.skipif(not simgrid_available(),
                                reason="SimGrid's Python binding missing (Debian package python3-simgrid)")


def test_every_flow_completes_when_simgrid_says():
    work = san_workload(WorkloadShape(flows=400, luns=40, arrays=4, movers=4, drives=8, window_s=120, seed=3))
    ours = run_ours(work)
    peer, version = run_simgrid(work)
    assert np.isfinite(ours.finish).all() and np.isfinite(peer.finish).all()
    assert ours.max_active > 50  # flows really shared links
    rel = relative_errors(work, ours.finish, peer.finish)
    assert rel.max() <= 1e-6, f"SimGrid {version}: worst flow off by {rel.max():.3g}"


def test_workload_is_deterministic_from_its_seed():
    a = san_workload(WorkloadShape(flows=50, seed=9))
    b = san_workload(WorkloadShape(flows=50, seed=9))
    c = san_workload(WorkloadShape(flows=50, seed=10))
    assert a.flows == b.flows and a.routes == b.routes
    assert a.flows != c.flows
