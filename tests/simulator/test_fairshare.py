"""Max-min fairness: classic small cases worked by hand, plus properties."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from simulator.fairshare import max_min_rates, resource_load


def _coo(paths):
    f, r, w = [], [], []
    for i, path in enumerate(paths):
        for res, weight in path:
            f.append(i); r.append(res); w.append(weight)
    return np.array(f, int), np.array(r, int), np.array(w, float)


def test_two_flows_share_one_link_equally():
    f, r, w = _coo([[(0, 1)], [(0, 1)]])
    assert max_min_rates(f, r, w, np.array([100.0]), 2).tolist() == pytest.approx([50, 50])


def test_bottleneck_leftover_goes_to_unconstrained_flow():
    # flow 0 crosses links 0 and 1; flow 1 only link 1; link 0 is the narrow one.
    f, r, w = _coo([[(0, 1), (1, 1)], [(1, 1)]])
    rates = max_min_rates(f, r, w, np.array([10.0, 100.0]), 2)
    assert rates.tolist() == pytest.approx([10, 90])


def test_weights_charge_more_work_per_byte():
    # a weight-2 flow uses twice the capacity per byte: equal rates, 2x+x = 90
    f, r, w = _coo([[(0, 2)], [(0, 1)]])
    assert max_min_rates(f, r, w, np.array([90.0]), 2).tolist() == pytest.approx([30, 30])


def test_flow_cap_releases_capacity_to_others():
    f, r, w = _coo([[(0, 1)], [(0, 1)]])
    rates = max_min_rates(f, r, w, np.array([100.0]), 2, flow_cap=np.array([20.0, np.inf]))
    assert rates.tolist() == pytest.approx([20, 80])


def test_dead_resource_stalls_its_flows_only():
    f, r, w = _coo([[(0, 1)], [(1, 1)]])
    assert max_min_rates(f, r, w, np.array([0.0, 40.0]), 2).tolist() == pytest.approx([0, 40])


def test_flow_without_resource_or_cap_is_rejected():
    f, r, w = _coo([[(0, 1)], []])
    with pytest.raises(ValueError, match="flow 1 crosses no resource"):
        max_min_rates(f, r, w, np.array([10.0]), 2)


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_feasible_and_every_flow_has_a_bottleneck(data):
    n_res = data.draw(st.integers(1, 6))
    caps = np.array(data.draw(st.lists(st.floats(1, 1000), min_size=n_res, max_size=n_res)))
    n_flows = data.draw(st.integers(1, 8))
    paths = [data.draw(st.lists(st.tuples(st.integers(0, n_res - 1), st.floats(0.1, 4)),
                                min_size=1, max_size=3, unique_by=lambda t: t[0])) for _ in range(n_flows)]
    f, r, w = _coo(paths)
    rates = max_min_rates(f, r, w, caps, n_flows)
    load = resource_load(f, r, w, rates, n_res)
    assert np.all(load <= caps * (1 + 1e-6))
    saturated = load >= caps * (1 - 1e-6)
    for i, path in enumerate(paths):
        # max-min: some saturated resource on the path where this flow's rate is maximal
        ok = False
        for res, _ in path:
            if saturated[res]:
                others = [rates[j] for j, p in enumerate(paths) if any(x == res for x, _ in p)]
                ok |= rates[i] >= max(others) * (1 - 1e-6)
        assert ok, (i, rates, paths)
