"""Where each job's time went: the resource that held it back, and the time failovers cost.

The flow engine names every flow's bottleneck at every allocation -- the
resource whose saturation froze the flow in the max-min fill
(:mod:`simulator.fairshare`) -- and keeps the seconds per resource in
``Flow.bottleneck_s``.  Here those seconds are summed per job and per class of
resource a storage engineer can act on:

============  ===============================================================
client_disk   the client's volume LUN (the source of a backup)
port          an FC link: HBA, array, mover or drive port
isl           an inter-switch link
mover         the data mover's copy engine
pool          the destination: a tape drive or a disk-pool LUN
lan           the LAN or a host's NIC
cpu           a host's CPU (client or server)
agent         a storage agent's own limit
rate_cap      the flow's own rate cap
stalled       nothing: a fault took a resource on the path away, the flow stood
              still, and then went on (a stall that ends in a failure is
              failover time)
============  ===============================================================

Time lost to failovers: when a fault stops a data operation, the job redoes
whatever the pool does not hold yet.  The loss runs from the moment the last
byte that was kept went through (the stopped flow's stall, plus its redone
bytes at its average moving rate; the operation's start when it was refused) until the job's next data flow
starts -- timeouts, remounts and the retry's set-up included.  The stopped
flow's bottleneck seconds past that moment move to the loss, so nothing is
counted twice.  What is neither (tape mounts, waiting for a drive, commands)
is ``waiting``.

Thousands of jobs need not each keep a record once they end: :meth:`Attribution.close`
folds a finished job's report into :class:`AttributionTotals` (running sums, the
same numbers :func:`shares_of` would read from every report) and forgets it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable

from simulator.flow_parts import RATE_CAP, STALLED

CATEGORIES = ("client_disk", "port", "isl", "mover", "pool", "lan", "cpu", "agent", "rate_cap", "stalled")
_BY_KIND = {"link": "port", "isl": "isl", "mover": "mover", "drive": "pool", "cpu": "cpu", "nic": "lan",
            "lan": "lan", "agent": "agent"}


@dataclass
class JobTimes:
    bottleneck_s: dict[str, float] = field(default_factory=dict)
    failover_s: float = 0.0
    lost_since: float | None = None  # a failure not yet followed by a new data flow
    span: tuple[float, float] | None = None  # the job's own start and end


@dataclass
class AttributionTotals:
    """Running sums over the jobs closed so far: what a capacity run reports instead of every job's record."""

    jobs: int = 0
    bottleneck_s: dict[str, float] = field(default_factory=dict)
    failover_s: float = 0.0
    waiting_s: float = 0.0
    elapsed_s: float = 0.0
    main: dict[str, int] = field(default_factory=dict)  # jobs per main bottleneck

    def add(self, report: dict[str, Any]) -> None:
        self.jobs += 1
        for c, s in report["bottleneck_seconds"].items():
            self.bottleneck_s[c] = self.bottleneck_s.get(c, 0.0) + s
        self.failover_s += report["failover_seconds"]
        self.waiting_s += report["waiting_seconds"]
        self.elapsed_s += report["elapsed_s"]
        key = report["main_bottleneck"] or "none"
        self.main[key] = self.main.get(key, 0) + 1

    def shares(self) -> dict[str, float]:
        """Bottleneck seconds as shares of all closed jobs' flow time (as :func:`shares_of` of their reports)."""
        whole = sum(self.bottleneck_s.values())
        return {c: s / whole for c, s in sorted(self.bottleneck_s.items())} if whole > 0 else {}


class Attribution:
    """Per-job bottleneck and failover seconds, fed by the SAN as flows start and end."""

    def __init__(self, resources: list, client_disks: dict[str, str]):
        self._resources = resources  # the flow network's list: index -> Resource
        self._client_disks = client_disks  # disk LUN name -> owning client (the SAN's owners table)
        self.jobs: dict[str, JobTimes] = {}
        self.totals = AttributionTotals()

    def category(self, index: int) -> str:
        if index == STALLED:
            return "stalled"
        if index == RATE_CAP or index < 0:
            return "rate_cap"
        res = self._resources[index]
        if res.kind == "disk":
            return "client_disk" if res.name.removeprefix("disk:") in self._client_disks else "pool"
        return _BY_KIND.get(res.kind, res.kind)

    def _job(self, job: str) -> JobTimes:
        t = self.jobs.get(job)
        if t is None:
            t = self.jobs[job] = JobTimes()
        return t

    def flow_started(self, job: str, now: float) -> None:
        """A data flow of ``job`` starts: a failover loss in progress ends here."""
        t = self.jobs.get(job)
        if t is not None and t.lost_since is not None:
            t.failover_s += now - t.lost_since
            t.lost_since = None

    def flow_ended(self, flow: Any) -> None:
        if not flow.job or not flow.bottleneck_s:
            return
        acc = self._job(flow.job).bottleneck_s
        for index, seconds in flow.bottleneck_s.items():
            cat = self.category(index)
            acc[cat] = acc.get(cat, 0.0) + seconds

    def failed(self, job: str, now: float, *, flow: Any = None, kept_bytes: float = 0.0,
               since: float | None = None) -> None:
        """A data operation of ``job`` failed now; ``flow`` is the stopped flow (None: refused at once)."""
        if not job:
            return
        t = self._job(job)
        start = now if since is None else since
        if flow is not None:
            moved = float(flow.done)
            lost_part = 1.0 if moved <= 0 else max(0.0, min(1.0, 1.0 - kept_bytes / moved))
            stalled = flow.bottleneck_s.get(STALLED, 0.0)
            start = now - stalled - (now - flow.start_time - stalled) * lost_part
            for index, seconds in flow.bottleneck_s.items():  # the redone part is failover time, not flow time
                cat = self.category(index)
                part = 1.0 if index == STALLED else lost_part
                t.bottleneck_s[cat] = t.bottleneck_s.get(cat, 0.0) - seconds * part
        t.lost_since = start if t.lost_since is None else min(t.lost_since, start)

    def job_span(self, job: str, start: float, end: float) -> None:
        self._job(job).span = (start, end)

    def report(self, job: str, start: float | None = None, end: float | None = None, *,
               forget: bool = False) -> dict[str, Any]:
        """Seconds and shares of the job's elapsed time: per bottleneck class, failover, waiting.

        ``forget``: drop the job's record, so a later job of the same name starts afresh.
        """
        t = (self.jobs.pop(job, None) if forget else self.jobs.get(job)) or JobTimes()
        if t.span is not None:
            start = t.span[0] if start is None else start
            end = t.span[1] if end is None else end
        start, end = start or 0.0, end or 0.0
        failover = t.failover_s + (max(0.0, end - t.lost_since) if t.lost_since is not None else 0.0)
        seconds = {c: round(max(0.0, s), 6) for c, s in sorted(t.bottleneck_s.items()) if s > 1e-9}
        busy = sum(seconds.values()) + failover
        elapsed = max(end - start, busy)
        waiting = max(0.0, elapsed - busy)
        share = {c: round(s / elapsed, 4) for c, s in seconds.items()} if elapsed > 0 else {}
        return {"elapsed_s": round(elapsed, 6), "ended_s": round(end, 6), "bottleneck_seconds": seconds, "bottleneck_share": share,
                "failover_seconds": round(failover, 6), "waiting_seconds": round(waiting, 6),
                "main_bottleneck": max(seconds, key=seconds.__getitem__) if seconds else ""}


    def close(self, job: str, start: float, end: float) -> dict[str, Any]:
        """The job ended: its report, added to :attr:`totals`; its record is forgotten."""
        rep = self.report(job, start, end, forget=True)
        self.totals.add(rep)
        return rep


def describe(att: dict[str, Any]) -> str:
    """One line: ``bottleneck pool 81%, mover 12%; failover 4.1 s; waiting 30.0 s``."""
    shares = sorted(att["bottleneck_share"].items(), key=lambda kv: -kv[1])
    parts = [", ".join(f"{c} {s:.0%}" for c, s in shares if s >= 0.005) or "none"]
    out = "bottleneck " + parts[0]
    if att["failover_seconds"]:
        out += f"; failover {att['failover_seconds']:.1f} s"
    if att["waiting_seconds"]:
        out += f"; waiting {att['waiting_seconds']:.1f} s"
    return out


def shares_of(reports: Iterable[dict[str, Any]]) -> dict[str, float]:
    """Bottleneck seconds of many jobs as shares of their summed flow time (for sweeps and reports)."""
    total: dict[str, float] = {}
    for r in reports:
        for c, s in r["bottleneck_seconds"].items():
            total[c] = total.get(c, 0.0) + s
    whole = sum(total.values())
    return {c: s / whole for c, s in sorted(total.items())} if whole > 0 else {}
