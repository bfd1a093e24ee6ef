"""One hop of a path: an initiator port reaching a target port (and LUN).

A hop holds when both ends are up, they are cabled into the same live fabric,
they share a zone of the active zone set and, for a disk, the LUN is masked to
the initiator through that target port. When no port pair works, the pair
that got furthest explains why.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from topology.graph import SanState, member_wwpn
from topology.index import LunRef
from topology.report import Problem

DOWN, CABLED, ZONED, MASKED = 0, 1, 2, 3


@dataclass
class End:
    """A port with a label for messages (``data mover DM1``) and its owner's name."""

    wwpn: str
    label: str
    owner: str


@dataclass
class HopResult:
    pairs: list[tuple[End, End]]
    problem: Problem | None
    score: int

    @property
    def ok(self) -> bool:
        return bool(self.pairs)


def check_hop(state: SanState, initiators: list[End], targets: list[End], lun: LunRef | None = None,
              want_all: bool = False) -> HopResult:
    """Working (initiator, target) pairs, or the furthest-reaching failure as a Problem."""
    good = _working_pairs(state, initiators, targets, lun, want_all)
    if good:
        return HopResult(good, None, MASKED + 1)
    best: Problem | None = None
    best_score = -1
    best_make = None
    for i in initiators:
        for t in targets:
            score, make = _check_pair(state, i, t, lun)
            if make is None:
                good.append((i, t))
                if not want_all:
                    return HopResult(good, None, MASKED + 1)
            elif score > best_score:
                best_make, best_score = make, score
    if good:
        return HopResult(good, None, MASKED + 1)
    # Explanations can cost a path search, so only the winning one is built.
    best = best_make() if best_make is not None else \
        Problem(rule="no-port", message="no ports to connect", objects=[])
    return HopResult([], best, best_score)


def _working_pairs(state: SanState, initiators: list[End], targets: list[End], lun: LunRef | None,
                   want_all: bool) -> list[tuple[End, End]]:
    """The pairs `_check_pair` passes, in the same order, without building explanations (the hot path)."""
    good: list[tuple[End, End]] = []
    down, component, zones = state.down, state.component_of, state.port_zones
    masked = state.index.is_masked
    for i in initiators:
        ci = component.get(i.wwpn)
        zi = zones.get(i.wwpn)
        if ci is None or not zi or i.wwpn in down:
            continue
        for t in targets:
            if component.get(t.wwpn) != ci or t.wwpn in down:
                continue
            zt = zones.get(t.wwpn)
            if not zt or zi.isdisjoint(zt):
                continue
            if lun is not None and not masked(lun.array, i.wwpn, lun.number, t.wwpn):
                continue
            good.append((i, t))
            if not want_all:
                return good
    return good


def _check_pair(state: SanState, i: End, t: End, lun: LunRef | None) -> tuple[int, Callable[[], Problem] | None]:
    """(how far the pair got, a maker for the Problem) -- the maker is None when the pair works."""
    for end in (i, t):
        if end.wwpn in state.down:
            return DOWN, lambda end=end: Problem(
                rule="component-down", message=f"{end.label} port {end.wwpn} is {_why(state, end.wwpn)}",
                objects=[end.owner, end.wwpn])
    if not state.connected(i.wwpn, t.wwpn):
        return CABLED, lambda: _not_connected(state, i, t)
    if not state.zoned(i.wwpn, t.wwpn):
        return ZONED, lambda: Problem(
            rule="not-zoned",
            message=f"{t.label} port {t.wwpn} is not zoned with {i.label} port {i.wwpn}: "
                    f"they share no zone of the active zone set{_zoning_hint(state, i, t)}",
            objects=[i.owner, i.wwpn, t.owner, t.wwpn])
    if lun is not None and not state.index.is_masked(lun.array, i.wwpn, lun.number, t.wwpn):
        return MASKED, lambda: Problem(
            rule="not-masked",
            message=f"LUN {lun.label} is not masked to {i.label} port {i.wwpn}{_masking_hint(state, i, t, lun)}",
            objects=[f"{lun.array}:{lun.number}", lun.array, i.owner, i.wwpn])
    return MASKED + 1, None


def _not_connected(state: SanState, i: End, t: End) -> Problem:
    downs = state.down_between(i.wwpn, t.wwpn)
    if downs:
        detail = "; ".join(state.describe_down(n) for n in downs)
    else:
        detail = "they are not cabled to the same fabric"
    return Problem(rule="not-connected",
                   message=f"no physical path from {i.label} port {i.wwpn} to {t.label} port {t.wwpn}: {detail}",
                   objects=[i.owner, i.wwpn, t.owner, t.wwpn, *downs])


def _why(state: SanState, node: str) -> str:
    return state.why(node)


def _zoning_hint(state: SanState, i: End, t: End) -> str:
    topo = state.topology
    known = state.index.port_owner
    active = {z for zs in topo.zonesets if zs.name in topo.active_zonesets for z in zs.zones}
    for z in topo.zones:
        members = [member_wwpn(m, state.index) for m in z.members]
        if i.wwpn in members and t.wwpn in members and z.name not in active:
            return f" (zone {z.name} holds both but is not in an active zone set)"
    for z in topo.zones:
        if z.name not in active:
            continue
        members = [member_wwpn(m, state.index) for m in z.members]
        for present in (i, t):
            if present.wwpn in members:
                strays = [m for m in members if m and m not in known]
                if strays:
                    return (f" (zone {z.name} lists {', '.join(strays)}, which matches no port: "
                            f"a WWPN typo?)")
    return ""


def _masking_hint(state: SanState, i: End, t: End, lun: LunRef) -> str:
    per_lun = state.index.masking.get((lun.array, i.wwpn), {})
    if lun.number in per_lun and per_lun[lun.number] is not None:
        via = ", ".join(sorted(per_lun[lun.number]))
        return f" through array port {t.wwpn} (only through {via})"
    strays = sorted(w for w in state.index.presented.get((lun.array, lun.number), set())
                    if w not in state.index.port_owner)
    if strays:
        return f" (array {lun.array} masks it to {', '.join(strays)}, which matches no port: a WWPN typo?)"
    return ""
