"""The flow engine: completion times worked by hand, marks, aborts, capacity changes."""
import pytest
from hypothesis import given, settings, strategies as st

from simulator.flows import CountingEnvironment, FlowNetwork, Streaming


def _net():
    env = CountingEnvironment()
    return env, FlowNetwork(env)


def test_single_flow_finishes_at_size_over_capacity():
    env, net = _net()
    link = net.add_resource("L", 100.0)
    f = net.start(1000, [(link, 1)], label="a")
    env.run()
    assert f.finished.value.ok and env.now == pytest.approx(10.0)


def test_second_flow_speeds_up_when_first_ends():
    env, net = _net()
    link = net.add_resource("L", 100.0)
    a = net.start(500, [(link, 1)], label="a")
    b = net.start(1500, [(link, 1)], label="b")
    env.run()
    # both at 50/s: a ends at t=10 (b has 500 done), then b alone at 100/s: 1000 more -> t=20
    assert a.finished.value.time == pytest.approx(10.0)
    assert b.finished.value.time == pytest.approx(20.0)
    steps = net.timeline.flows[b.id].steps
    assert steps == [(0.0, 50.0), (pytest.approx(10.0), 100.0), (pytest.approx(20.0), 0.0)]


def test_event_count_does_not_grow_with_bytes():
    counts = []
    for size in (1e3, 1e15):
        env, net = _net()
        link = net.add_resource("L", 1e9)
        for _ in range(5):
            net.start(size, [(link, 1)])
        env.run()
        counts.append(env.events_processed)
    assert counts[0] == counts[1]


def test_capacity_change_mid_flow():
    env, net = _net()
    link = net.add_resource("L", 100.0)
    f = net.start(1000, [(link, 1)])

    def halve():
        yield env.timeout(4)
        net.set_capacity(link, 50.0)

    env.process(halve())
    env.run()
    # 400 bytes in 4 s, then 600 at 50/s = 12 s
    assert f.finished.value.time == pytest.approx(16.0)


def test_mark_fires_at_exact_byte_and_can_abort():
    env, net = _net()
    link = net.add_resource("L", 10.0)
    f = net.start(100, [(link, 1)])
    seen = []
    net.add_mark(f, 30, lambda fl: (seen.append(env.now), net.abort(fl, "cut", cause="test")))
    env.run()
    end = f.finished.value
    assert seen == [pytest.approx(3.0)]
    assert not end.ok and end.reason == "cut" and end.bytes_done == pytest.approx(30)


def test_zero_capacity_stalls_until_restored():
    env, net = _net()
    link = net.add_resource("L", 10.0)
    f = net.start(100, [(link, 1)])

    def outage():
        yield env.timeout(2)
        net.set_capacity(link, 0)
        yield env.timeout(5)
        net.restore(link)

    env.process(outage())
    env.run()
    assert f.finished.value.time == pytest.approx(15.0)


def test_work_integral_counts_weighted_load():
    env, net = _net()
    cpu = net.add_resource("cpu", 1.0, kind="cpu")  # one CPU second per second
    link = net.add_resource("L", 100.0)
    net.start(1000, [(link, 1), (cpu, 1e-3)])  # 1 ms CPU per byte
    env.run()
    assert net.work_done(cpu) == pytest.approx(1.0)
    assert net.work_done(link) == pytest.approx(1000)


def test_starved_streaming_device_shoe_shines():
    env, net = _net()
    disk = net.add_resource("disk", 40.0)
    tape = net.add_resource("tape", 100.0)
    s = Streaming(min_rate=80.0, buffer=100.0, reposition_s=1.0, device="DRV1")
    f = net.start(1000, [(disk, 1), (tape, 1)], streaming=s)
    env.run()
    # feed 40/s -> 40 / (1 + 40*1/100) = 28.57/s
    assert env.now == pytest.approx(1000 / (40 / 1.4))
    assert f.stop_start_cycles == pytest.approx(10.0)
    assert net.timeline.events_of("shoeshine")[0].subject == "DRV1"


def test_well_fed_streaming_device_streams():
    env, net = _net()
    tape = net.add_resource("tape", 100.0)
    f = net.start(1000, [(tape, 1)], streaming=Streaming(80.0, 100.0, 1.0))
    env.run()
    assert env.now == pytest.approx(10.0) and f.stop_start_cycles == 0


def test_bad_inputs_are_named():
    env, net = _net()
    link = net.add_resource("L", 1.0)
    with pytest.raises(ValueError, match="defined twice"):
        net.add_resource("L", 1.0)
    with pytest.raises(ValueError, match="weight on L"):
        net.start(1, [(link, 0)], label="x")
    with pytest.raises(LookupError, match="no resource named 'nope'"):
        net.resource("nope")


def test_abort_in_the_same_instant_as_a_start_reports_current_bytes():
    env, net = _net()
    link = net.add_resource("L", 100.0)
    a = net.start(10_000, [(link, 1)])

    def later():
        yield env.timeout(5)
        net.start(10_000, [(link, 1)])  # changes the flow set: arrays are rebuilt later this instant
        net.abort(a, "cut")

    env.process(later())
    env.run()
    assert a.finished.value.bytes_done == pytest.approx(500.0)



@settings(max_examples=40, deadline=None)
@given(st.data())
def test_every_flow_moves_exactly_its_bytes_along_its_rate_steps(data):
    env, net = _net()
    caps = data.draw(st.lists(st.floats(1, 100), min_size=1, max_size=4))
    res = [net.add_resource(f"R{i}", c) for i, c in enumerate(caps)]
    flows = []

    def starter(at, size, path):
        yield env.timeout(at)
        flows.append(net.start(size, [(res[i], w) for i, w in path]))

    for _ in range(data.draw(st.integers(1, 6))):
        path = data.draw(st.lists(st.tuples(st.integers(0, len(res) - 1), st.floats(0.5, 2)), min_size=1,
                                  max_size=3, unique_by=lambda t: t[0]))
        env.process(starter(data.draw(st.floats(0, 20)), data.draw(st.floats(1, 500)), path))

    def wobble(at, r, c):
        yield env.timeout(at)
        net.set_capacity(res[r], c)

    for _ in range(data.draw(st.integers(0, 3))):
        env.process(wobble(data.draw(st.floats(0, 30)), data.draw(st.integers(0, len(res) - 1)),
                           data.draw(st.floats(0.5, 100))))
    env.run()
    for f in flows:
        rec = net.timeline.flows[f.id]
        assert f.finished.value.ok
        assert rec.bytes_between(rec.start, rec.end) == pytest.approx(f.total, rel=1e-6)
