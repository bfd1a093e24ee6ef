"""A grant's written ranges: in-order PUTs stay one range, and the commit check sees what every PUT wrote."""
from __future__ import annotations

import random

from orchestrator.ops import StoredPiece
from orchestrator.server.node_digests import unwritten
from orchestrator.server.node_ops import Grant


def _grant() -> Grant:
    return Grant(object_id=1, fd=-1, base=0, size=1 << 40)


def test_puts_that_tile_the_image_in_order_are_one_range():
    g = _grant()
    for k in range(200_000):
        g.wrote(k * 4096, (k + 1) * 4096)
    assert g.written == [(0, 200_000 * 4096)]


def test_a_put_written_again_inside_the_last_range_does_not_shrink_it():
    g = _grant()
    g.wrote(0, 100)
    g.wrote(50, 80)  # a retried, shorter PUT of bytes already written
    g.wrote(100, 150)
    assert g.written == [(0, 150)]


def test_the_commit_check_is_the_same_as_with_every_put_kept():
    rng = random.Random(7)
    for _ in range(200):
        puts = [(o, o + rng.randint(1, 50)) for o in (rng.randrange(0, 2000) for _ in range(rng.randint(0, 30)))]
        if rng.random() < 0.5:
            puts.sort()
        g = _grant()
        for a, b in puts:
            g.wrote(a, b)
        pieces = [StoredPiece(o, o, rng.randint(1, 40)) for o in sorted(rng.sample(range(0, 2100), 40))]
        every = _grant()
        every.written = list(puts)  # the old bookkeeping: one pair per PUT
        assert list(unwritten(g.written, pieces)) == list(unwritten(every.written, pieces))
