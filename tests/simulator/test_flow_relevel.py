"""Re-levelling only the flows a change can move gives the allocation of a whole fill, at every step."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from simulator.flows import CountingEnvironment, FlowNetwork


def _run(seed: int, incremental: bool, capped: bool = True):
    rng = np.random.default_rng(seed)
    env = CountingEnvironment()
    net = FlowNetwork(env)
    net.timeline.record_rates = False
    net.incremental = incremental
    res = [net.add_resource(f"r{i}", float(rng.uniform(10, 100))) for i in range(12)]
    ends: dict[int, float] = {}

    def flows():
        for i in range(60):
            yield env.timeout(float(rng.exponential(2.0)))
            path = [(res[j], float(rng.choice([1.0, 1.0, 2.5]))) for j in rng.choice(12, rng.integers(1, 5),
                                                                                       replace=False)]
            f = net.start(float(rng.uniform(50, 2000)), path, cap=float(rng.choice([np.inf, np.inf, 30.0 if capped else np.inf])))
            f.finished.callbacks.append(lambda ev, i=i: ends.__setitem__(i, (ev.value.time, ev.value.bytes_done)))
            if i % 7 == 3:
                net.add_mark(f, f.total / 2, lambda fl: net.abort(fl, "fault") if fl.id % 2 else None)

    def faults():
        for _ in range(8):
            yield env.timeout(float(rng.exponential(15.0)))
            r = res[int(rng.integers(12))]
            net.set_capacity(r, 0.0 if rng.random() < 0.3 else r.nominal * float(rng.uniform(0.2, 1.5)))
            yield env.timeout(float(rng.exponential(5.0)))
            net.restore(r)

    env.process(flows())
    env.process(faults())
    env.run()
    return ends, net


@settings(max_examples=15, deadline=None)
@given(st.integers(0, 10_000), st.booleans())
def test_every_flow_ends_as_with_a_whole_fill(seed, capped):
    """With rate caps the general re-levelling runs; without, mostly the one-holder shortcut."""
    full, ref = _run(seed, incremental=False, capped=capped)
    part, net = _run(seed, incremental=True, capped=capped)
    assert set(part) == set(full)
    for i, (t, done) in full.items():
        assert part[i][0] == pytest.approx(t, rel=1e-9, abs=1e-9)
        assert part[i][1] == pytest.approx(done, rel=1e-9, abs=1e-6)
    assert ref.full_fills == ref.reallocations
    assert net.full_fills < net.reallocations  # the partial path was taken


def test_most_allocations_are_partial_in_a_san_shaped_workload():
    from simulator.flow_workload import WorkloadShape, run_ours, san_workload

    work = san_workload(WorkloadShape(flows=600, luns=60, arrays=4, movers=8, drives=32, window_s=120, seed=5))
    ours = run_ours(work)
    assert ours.max_active > 100 and np.isfinite(ours.finish).all()
    assert ours.full_fills < ours.reallocations / 10
    assert ours.shortcuts > ours.reallocations / 4  # most re-levellings were one holder's rows


def test_the_shortcut_gives_the_general_answer():
    """The one-holder shortcut on and off: the same completion times, on a SAN-shaped workload."""
    from simulator import flow_relevel
    from simulator.flow_workload import WorkloadShape, run_ours, san_workload

    work = san_workload(WorkloadShape(flows=600, luns=60, arrays=4, movers=8, drives=32, window_s=120, seed=7))
    fast = run_ours(work)
    general = flow_relevel._one_holder
    try:
        flow_relevel._one_holder = lambda *a: flow_relevel._GENERAL
        slow = run_ours(work)
    finally:
        flow_relevel._one_holder = general
    assert fast.shortcuts > 100 and slow.shortcuts == 0
    np.testing.assert_allclose(fast.finish, slow.finish, rtol=1e-9)
