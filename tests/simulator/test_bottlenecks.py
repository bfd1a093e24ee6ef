"""Bottleneck attribution: which resource held each flow back, and for how long."""
import numpy as np
import pytest

from simulator.fairshare import max_min_rates
from simulator.flows import CountingEnvironment, FlowNetwork


def test_max_min_names_the_resource_that_froze_each_flow():
    # flow 0: disk(0) + link(1); flow 1: link(1) only; flow 2 capped at 5
    fi = np.array([0, 0, 1, 2])
    ri = np.array([0, 1, 1, 1])
    w = np.ones(4)
    b = np.empty(3, dtype=np.intp)
    rate = max_min_rates(fi, ri, w, np.array([10.0, 100.0]), 3, np.array([np.inf, np.inf, 5.0]), b)
    assert rate.tolist() == pytest.approx([10.0, 85.0, 5.0])
    assert b.tolist() == [0, 1, -1]


def test_dead_resource_is_the_bottleneck_of_its_stalled_flows():
    b = np.empty(2, dtype=np.intp)
    rate = max_min_rates(np.array([0, 1]), np.array([0, 1]), np.ones(2), np.array([0.0, 50.0]), 2, None, b)
    assert rate.tolist() == [0.0, 50.0] and b.tolist() == [0, 1]


def test_bottleneck_seconds_follow_the_allocation_over_time():
    env = CountingEnvironment()
    net = FlowNetwork(env)
    disk = net.add_resource("disk", 40.0, "disk")
    link = net.add_resource("link", 100.0)
    # a: disk -> link; b: link only.  Together: a is held by its disk at 40, b by the link at 60.
    a = net.start(800, [(disk, 1), (link, 1)])
    b = net.start(600, [(link, 1)])
    env.run()
    # b ends at 10 s (600 at 60/s); a has 400 left at 40/s (still its disk): ends at 20 s
    assert b.finished.value.time == pytest.approx(10.0) and a.finished.value.time == pytest.approx(20.0)
    assert a.bottleneck_s == {disk.index: pytest.approx(20.0)}
    assert b.bottleneck_s == {link.index: pytest.approx(10.0)}


def test_bottleneck_moves_when_a_capacity_changes():
    env = CountingEnvironment()
    net = FlowNetwork(env)
    disk = net.add_resource("disk", 50.0, "disk")
    link = net.add_resource("link", 100.0)
    f = net.start(1000, [(disk, 1), (link, 1)])

    def squeeze():
        yield env.timeout(4.0)  # 200 bytes at 50/s (disk-bound)
        net.set_capacity(link, 20.0)  # 800 left at 20/s: the link holds it for 40 s

    env.process(squeeze())
    env.run()
    assert f.finished.value.time == pytest.approx(44.0)
    assert f.bottleneck_s == {disk.index: pytest.approx(4.0), link.index: pytest.approx(40.0)}
