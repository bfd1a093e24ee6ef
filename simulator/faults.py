"""Scheduled faults: what breaks, when, and what the broken thing does to running flows.

A :class:`FaultSpec` names a component and a trigger -- a simulated time, a
number of bytes into a job, or a percentage of a job.  :class:`FaultInjector`
arms the triggers (simpy timeouts for times; byte marks on the job's flows for
bytes and percentages, so no polling) and applies the effect: capacities drop
to zero, flows crossing the broken part are stopped with a :class:`FaultHit`
saying which part broke and with which device sense, and the operation that
owned the flow turns that into what the orchestrator would see (COPY ABORTED,
a timeout, a lost connection; see :mod:`simulator.fluid`).

:func:`random_faults` draws a fault schedule from a seed: the same seed gives
the same schedule, and the simulation itself has no other randomness, so the
same seed gives the same timeline.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from scsi.asc import LUN_NOT_READY, WRITE_ERROR
from scsi.sense import SenseKey, sense_for
from simulator.flows import Flow, Resource
from simulator.san import JobProgress, SimSAN

log = logging.getLogger(__name__)

FaultKind = Literal[
    "link_down", "link_up", "isl_down", "isl_up", "switch_port_down", "switch_port_up",
    "mover_reset", "mover_hang", "mover_recover", "tape_error", "tape_repair",
    "lun_not_ready", "lun_ready", "lan_slow", "lan_down", "lan_up", "agent_down", "agent_up",
]
_LINK_DOWN = {"link_down", "isl_down", "switch_port_down"}
_LINK_UP = {"link_up", "isl_up", "switch_port_up"}


class FaultSense(BaseModel):
    """Sense a failing device answers with (e.g. a tape drive's MEDIUM ERROR)."""

    model_config = ConfigDict(extra="forbid")
    key: int = Field(ge=0, le=0xF)
    asc: int = Field(ge=0, le=0xFF)
    ascq: int = Field(0, ge=0, le=0xFF)

    def encode(self) -> bytes:
        return sense_for(SenseKey(self.key), self.asc, self.ascq).encode()


class FaultSpec(BaseModel):
    """One scheduled fault, as a scenario file writes it."""

    model_config = ConfigDict(extra="forbid")
    kind: FaultKind
    target: str = Field(min_length=1, description="component name: link, ISL, switch port, mover, drive, LUN ...")
    at_s: float | None = Field(None, ge=0, description="simulated time")
    after_bytes: float | None = Field(None, ge=0, description="bytes into job")
    at_percent: float | None = Field(None, ge=0, le=100, description="percentage of job")
    job: str | None = None
    duration_s: float | None = Field(None, gt=0, description="repair after this long (none: stays broken)")
    factor: float = Field(0.1, gt=0, le=1, description="lan_slow: fraction of the LAN capacity left")
    sense: FaultSense | None = None

    @model_validator(mode="after")
    def _one_trigger(self) -> "FaultSpec":
        given = [n for n in ("at_s", "after_bytes", "at_percent") if getattr(self, n) is not None]
        if len(given) != 1:
            raise ValueError(f"fault {self.kind} on {self.target}: give exactly one of at_s, after_bytes, "
                             f"at_percent (got {', '.join(given) or 'none'})")
        if given[0] != "at_s" and not self.job:
            raise ValueError(f"fault {self.kind} on {self.target}: {given[0]} needs the job it counts in")
        return self

    def describe(self) -> str:
        if self.at_s is not None:
            when = f"at {self.at_s:g} s"
        elif self.after_bytes is not None:
            when = f"after {self.after_bytes:.4g} bytes of {self.job}"
        else:
            when = f"at {self.at_percent:g}% of {self.job}"
        return f"{self.kind} {self.target} {when}"


@dataclass(frozen=True)
class FaultHit:
    """Why a flow was stopped: the fault, the part of the path it broke, the device's own sense."""

    kind: str
    target: str
    role: str  # "link", "mover", "source", "destination", "lan", "agent"
    device_sense: bytes = b""
    timeout: bool = False
    reset: bool = False

    def describe(self) -> str:
        return f"{self.kind} on {self.target}"


class FaultInjector:
    """Arms a list of faults on a :class:`SimSAN` and applies them when they trigger."""

    def __init__(self, san: SimSAN, faults: list[FaultSpec]):
        self.san = san
        self.faults = list(faults)
        self.applied: list[tuple[float, FaultSpec]] = []
        self._percent: dict[str, list[FaultSpec]] = {}
        for spec in self.faults:
            self._check_target(spec)

    def _check_target(self, spec: FaultSpec) -> None:
        """Fail early, naming the fault, when its target does not exist."""
        k, san = spec.kind, self.san
        try:
            if k in _LINK_DOWN | _LINK_UP:
                san.link(spec.target)
            elif k.startswith("mover"):
                san.mover(spec.target)
            elif k.startswith("tape"):
                san.drive(spec.target)
            elif k.startswith("lun"):
                san.disk(spec.target)
            elif k.startswith("lan"):
                san.lan(spec.target)
            elif k.startswith("agent"):
                san.agent(spec.target)
        except LookupError as exc:
            raise LookupError(f"fault {spec.describe()}: {exc}") from None

    def arm(self) -> None:
        env = self.san.env
        for spec in self.faults:
            if spec.at_s is not None:
                ev = env.timeout(max(0.0, spec.at_s - env.now))
                ev.callbacks.append(lambda _e, s=spec: self.apply(s))
            elif spec.after_bytes is not None:
                self.san.watch_job(spec.job, spec.after_bytes, lambda s=spec: self.apply(s))
            else:
                self._percent.setdefault(spec.job, []).append(spec)
                prog = self.san.jobs.get(spec.job)
                if prog is not None and prog.total > 0:
                    self._arm_percent(spec.job, prog)
        if self._percent:
            self.san.job_listeners.append(self._arm_percent)

    def _arm_percent(self, job: str, prog: JobProgress) -> None:
        for spec in self._percent.pop(job, []):
            self.san.watch_job(job, spec.at_percent / 100 * prog.total, lambda s=spec: self.apply(s))

    # -- effects ------------------------------------------------------------------
    def apply(self, spec: FaultSpec) -> None:
        san, env = self.san, self.san.env
        k = spec.kind
        self.applied.append((env.now, spec))
        san.timeline.event(env.now, "fault", spec.target, fault=k)
        log.info("t=%.3f fault %s", env.now, spec.describe())
        repair: FaultSpec | None = None
        if k in _LINK_DOWN:
            res = san.link(spec.target)
            self._down(res, FaultHit(k, spec.target, "link"))
            repair = spec.model_copy(update={"kind": k.replace("_down", "_up")})
        elif k in _LINK_UP:
            for r in san.link(spec.target):
                san.net.restore(r)
        elif k == "mover_reset":
            mv = san.mover(spec.target)
            mv.state = "resetting"
            self._down((mv.resource,), FaultHit(k, spec.target, "mover", reset=True))
            self._later(san.cal.mover_reset_s, spec.model_copy(update={"kind": "mover_recover"}))
        elif k == "mover_hang":
            mv = san.mover(spec.target)
            mv.state, mv.hang_since = "hung", env.now
            san.net.set_capacity(mv.resource, 0.0)  # flows stall; the initiator times out
            stalled = san.net.flows_through(mv.resource)
            hit = FaultHit(k, spec.target, "mover", timeout=True)
            for listener in list(mv.on_hang):
                listener()
            ev = env.timeout(san.cal.scsi_timeout_s)
            since = env.now

            def _time_out(_e: object) -> None:
                if mv.state == "hung" and mv.hang_since == since:  # still the same hang
                    for f in stalled:
                        san.net.abort(f, "timeout", hit)

            ev.callbacks.append(_time_out)
            repair = spec.model_copy(update={"kind": "mover_recover"})
        elif k == "mover_recover":
            mv = san.mover(spec.target)
            mv.state = "ok"
            san.net.restore(mv.resource)
        elif k == "tape_error":
            drv = san.drive(spec.target)
            drv.failed = True
            drv.sense = spec.sense.encode() if spec.sense else sense_for(SenseKey.MEDIUM_ERROR, *WRITE_ERROR).encode()
            self._abort_through(drv.resource, FaultHit(k, spec.target, "destination", drv.sense))
            repair = spec.model_copy(update={"kind": "tape_repair"})
        elif k == "tape_repair":
            san.drive(spec.target).failed = False
        elif k == "lun_not_ready":
            lun = san.disk(spec.target)
            lun.ready = False
            sense = spec.sense.encode() if spec.sense else sense_for(SenseKey.NOT_READY, *LUN_NOT_READY).encode()
            lun.sense = sense
            for f in san.net.flows_through(lun.resource):
                role = "source" if f.meta.get("source") == spec.target else "destination"
                san.net.abort(f, k, FaultHit(k, spec.target, role, sense))
            repair = spec.model_copy(update={"kind": "lun_ready"})
        elif k == "lun_ready":
            san.disk(spec.target).ready = True
        elif k == "lan_slow":
            lan = san.lan(spec.target)
            san.net.set_capacity(lan.resource, lan.resource.nominal * spec.factor)
            repair = spec.model_copy(update={"kind": "lan_up"})
        elif k in ("lan_down", "agent_down"):
            part = k.removesuffix("_down")
            unit = san.lan(spec.target) if part == "lan" else san.agent(spec.target)
            unit.up = False
            self._down((unit.resource,), FaultHit(k, spec.target, part))
            repair = spec.model_copy(update={"kind": f"{part}_up"})
        elif k in ("lan_up", "agent_up"):
            unit = san.lan(spec.target) if k == "lan_up" else san.agent(spec.target)
            unit.up = True
            san.net.restore(unit.resource)
        if repair is not None and spec.duration_s:
            self._later(spec.duration_s, repair)

    def _later(self, delay: float, spec: FaultSpec) -> None:
        ev = self.san.env.timeout(delay)
        ev.callbacks.append(lambda _e: self.apply(spec))

    def _down(self, resources: tuple[Resource, ...], hit: FaultHit) -> None:
        for r in resources:
            self.san.net.set_capacity(r, 0.0)
        for r in resources:
            self._abort_through(r, hit)

    def _abort_through(self, res: Resource, hit: FaultHit) -> None:
        flows: list[Flow] = self.san.net.flows_through(res)
        for f in flows:
            self.san.net.abort(f, hit.kind, hit)


def random_faults(seed: int, count: int, san: SimSAN, horizon_s: float, *,
                  jobs: list[str] | None = None,
                  duration_range: tuple[float, float] = (0.02, 0.2)) -> list[FaultSpec]:
    """A reproducible fault schedule over the SAN's components (same seed, same list).

    Faults are spread uniformly over ``[0, horizon_s)`` and last a uniform
    fraction ``duration_range`` of it; when ``jobs`` are given, every fifth
    fault strikes at a percentage of a random job instead.
    """
    rng = np.random.default_rng(seed)
    menu: list[tuple[str, list[str]]] = [
        ("link_down", sorted(n for n, k in san.link_kind.items() if k == "link")),
        ("isl_down", sorted(n for n, k in san.link_kind.items() if k == "isl")),
        ("mover_reset", sorted(san.dev.movers)),
        ("mover_hang", sorted(san.dev.movers)),
        ("tape_error", sorted(san.dev.drives)),
        ("lun_not_ready", sorted(san.dev.disks)),
        ("lan_slow", sorted(san.dev.lans)),
        ("agent_down", sorted(san.dev.agents)),
    ]
    menu = [(k, t) for k, t in menu if t]
    if not menu:
        raise ValueError("the simulated SAN has no component a fault could strike")
    out: list[FaultSpec] = []
    for i in range(count):
        kind, targets = menu[int(rng.integers(len(menu)))]
        target = targets[int(rng.integers(len(targets)))]
        duration = float(rng.uniform(*duration_range) * horizon_s)
        if jobs and i % 5 == 4:
            trigger = {"at_percent": float(rng.uniform(1, 99)), "job": jobs[int(rng.integers(len(jobs)))]}
        else:
            trigger = {"at_s": float(rng.uniform(0, horizon_s))}
        extra = {"factor": float(rng.uniform(0.05, 0.5))} if kind == "lan_slow" else {}
        out.append(FaultSpec(kind=kind, target=target, duration_s=duration, **trigger, **extra))
    return out
