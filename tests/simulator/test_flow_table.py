"""The flow table: stable rows, per-resource indexes, lazy bytes, and the old order for simultaneous ends."""
from hypothesis import given, settings, strategies as st

from simulator.flow_table import RowBuckets
from simulator.flows import CountingEnvironment, FlowNetwork


def test_flows_ending_together_end_in_packed_table_order():
    """A, B, C, D start; B is aborted, so a packed table moves D into B's place: A, D, C end in that order."""
    env = CountingEnvironment()
    net = FlowNetwork(env)
    links = [net.add_resource(f"L{i}", 10.0) for i in range(4)]
    ended: list[str] = []
    flows = {}
    for name, link in zip("ABCD", links):
        flows[name] = net.start(100.0, [(link, 1.0)], label=name)
        flows[name].finished.callbacks.append(lambda ev, name=name: ended.append(name))

    def abort_b():
        yield env.timeout(1.0)
        net.abort(flows["B"], "test")

    env.process(abort_b())
    env.run()
    assert ended == ["B", "A", "D", "C"]
    assert {flows[n].finished.value.time for n in "ADC"} == {10.0}


def test_bytes_are_settled_lazily_but_read_exactly():
    env = CountingEnvironment()
    net = FlowNetwork(env)
    link = net.add_resource("L", 100.0)
    a = net.start(1000.0, [(link, 1.0)])
    b = net.start(3000.0, [(link, 1.0)])
    seen = []

    def probe():
        yield env.timeout(4.0)
        seen.append((net.bytes_done(a), net.bytes_done(b)))
        yield env.timeout(12.0)
        seen.append((net.bytes_done(a), net.bytes_done(b)))

    env.process(probe())
    env.run()
    assert seen[0] == (200.0, 200.0)
    assert seen[1] == (800.0, 800.0)
    assert a.finished.value.time == 20.0 and b.finished.value.time == 40.0  # b alone at 100/s after t=20


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.integers(0, 4), st.integers(0, 6)), max_size=200))
def test_row_buckets_keep_every_entry_and_its_position(ops):
    """Random adds and removes against a plain model: members, and each entry's recorded position."""
    b = RowBuckets()
    b.grow_to(5)
    pos: dict[tuple[int, int], int] = {}  # (key, row) -> position, as a caller keeps it
    model: dict[int, set[int]] = {k: set() for k in range(5)}
    for add, key, row in ops:
        if add and row not in model[key]:
            pos[(key, row)] = b.add(key, row, row)
            model[key].add(row)
        elif not add and row in model[key]:
            p = pos.pop((key, row))
            moved = b.remove(key, p)
            model[key].discard(row)
            if moved is not None:  # the entry that filled the hole: the caller records its new place
                assert moved[1] == moved[0]  # its tag came along
                pos[(key, moved[0])] = p
        for k in range(5):
            assert sorted(b.members(k).tolist()) == sorted(model[k])
            for r in model[k]:
                assert b.members(k)[pos[(k, r)]] == r
