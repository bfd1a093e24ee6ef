"""Routes between devices of the simulated SAN: declared, computed on use, chosen per flow.

A route is a list of (link, direction) hops; a pair of devices may have
alternatives (one per fabric) and a new flow takes the live one with the
fewest flows, like a multipath driver.  A large world need not list its routes:
``route_factory`` computes a pair's on first use, and links being full duplex,
b -> a is a -> b backwards.  Routes computed on use are kept for at most
:data:`ROUTE_CACHE_PAIRS` pairs (oldest forgotten first, computed again, the
same, when asked for again), so a run's memory does not grow with the pairs
its jobs ever used.
"""
from __future__ import annotations

from typing import Callable, Iterable

from simulator.flows import Resource

ROUTE_CACHE_PAIRS = 1024  # device pairs whose computed routes are kept (a run's working set is its running jobs' few)


class Routes:
    """The route half of :class:`simulator.san.SimSAN` (which sets these tables up)."""

    links: dict[str, tuple[Resource, Resource]]
    routes: dict[tuple[str, str], list[list[tuple[str, bool]]]]
    _route_res: dict[tuple[str, str], list[tuple[Resource, ...]]]
    route_factory: Callable[[str, str], list[list[tuple[str, bool]]]] | None
    _derived: dict[tuple[str, str], None]
    route_cache_pairs: int
    _route_use: dict[int, int]

    def add_route(self, a: str, b: str, links: Iterable[str | tuple[str, bool]]) -> None:
        """One alternative route from device ``a`` to device ``b`` (``(link, forward)`` or a link name)."""
        hops = [(h, True) if isinstance(h, str) else (h[0], bool(h[1])) for h in links]
        try:
            res = tuple(self.links[name][0 if fwd else 1] for name, fwd in hops)
        except KeyError as exc:
            raise LookupError(f"route {a} -> {b}: no link named {exc.args[0]!r}") from None
        self.routes.setdefault((a, b), []).append(hops)
        self._route_res.setdefault((a, b), []).append(res)
        self._derived.pop((a, b), None)  # given: kept for good (_options marks the pairs it computes)

    def _options(self, a: str, b: str) -> list[tuple[Resource, ...]]:
        opts = self._route_res.get((a, b))
        if opts is None:
            if self.route_factory is not None:
                for hops in self.route_factory(a, b) or []:
                    self.add_route(a, b, hops)
            if (a, b) not in self._route_res and self._options_known(b, a):
                # links are full duplex: b -> a backwards, on the opposite direction of each link
                for hops in self.routes[(b, a)]:
                    self.add_route(a, b, [(name, not fwd) for name, fwd in reversed(hops)])
            opts = self._route_res.setdefault((a, b), [])
            self._computed((a, b))
        return opts

    def _options_known(self, a: str, b: str) -> bool:
        if (a, b) not in self._route_res and self.route_factory is not None:
            for hops in self.route_factory(a, b) or []:
                self.add_route(a, b, hops)
            if (a, b) in self._route_res:
                self._computed((a, b))
        return bool(self._route_res.get((a, b)))

    def _computed(self, pair: tuple[str, str]) -> None:
        """Remember a pair whose routes were computed on use; forget the oldest beyond the bound."""
        self._derived[pair] = None
        while len(self._derived) > self.route_cache_pairs:
            old = next(iter(self._derived))
            del self._derived[old]
            self.routes.pop(old, None)
            self._route_res.pop(old, None)

    def route(self, a: str, b: str) -> tuple[Resource, ...]:
        """Resources of the best live route from ``a`` to ``b`` (fewest flows, then declaration order)."""
        options = self._options(a, b)
        if not options:
            raise LookupError(f"no route from {a} to {b} in the simulated SAN")
        best: tuple[Resource, ...] | None = None
        best_load = 0
        for res in options:
            if any(r.capacity <= 0 for r in res):
                continue
            load = max((self._route_use.get(r.index, 0) for r in res), default=0)
            if best is None or load < best_load:
                best, best_load = res, load
        # every alternative has a dead hop: take the first, the flow will stall or be failed
        return options[0] if best is None else best

    def has_route(self, a: str, b: str) -> bool:
        return bool(self._options(a, b))

    def route_is_up(self, a: str, b: str) -> bool:
        return any(all(r.capacity > 0 for r in res) for res in self._options(a, b))
