"""Run a flow workload (:mod:`simulator.flow_workload`) on SimGrid; the peer our flow engine is measured against.

Debian ships SimGrid's Python binding as ``python3-simgrid``, built for the
system interpreter (``/usr/bin/python3``), not for a virtualenv's.  So this
file imports nothing of ours and nothing outside the standard library but
``simgrid``, and is run as a script in a subprocess::

    /usr/bin/python3 simulator/simgrid_peer.py WORKLOAD.json RESULT.json

The model is SimGrid's plain max-min network model: ``network/model:CM02``
(no bandwidth or latency correction factors), every link with zero latency,
``network/TCP-gamma:0`` (no TCP window bound on a flow's rate),
``network/crosstraffic:0`` (a flow does not also load the reverse direction).
One actor starts each flow at its time with ``Comm.sendto_async`` (host to
host, no mailbox matching), then waits for all; each Comm's ``finish_time`` is
the completion time.  RESULT.json holds ``finish`` (one per flow, workload
order), ``wall_s`` and ``cpu_s`` (platform building included, interpreter
start-up excluded) and SimGrid's version.
"""
from __future__ import annotations

import json
import sys
import time

CONFIG = ("network/model:CM02", "network/TCP-gamma:0", "network/crosstraffic:0")


def run(work: dict) -> dict:
    import simgrid as sg

    t0, c0 = time.perf_counter(), time.process_time()
    engine = sg.Engine(["simgrid_peer", "--log=root.thres:critical",
                        *(f"--cfg={c}" for c in CONFIG)])
    zone = sg.NetZone.create_full_zone("san")
    links = []
    for name, bw in work["links"]:
        lk = zone.create_link(name, float(bw))
        lk.set_latency(0.0)
        links.append(lk)
    srcs = {s for s, _, _ in work["routes"]}
    dsts = {d for _, d, _ in work["routes"]}
    shost = {s: zone.create_host(f"lun{s}", 1e9) for s in sorted(srcs)}
    dhost = {d: zone.create_host(f"drv{d}", 1e9) for d in sorted(dsts)}
    for s, d, hops in work["routes"]:
        zone.add_route(shost[s].netpoint, dhost[d].netpoint, None, None,
                       [sg.LinkInRoute(links[i]) for i in hops], False)
    zone.seal()
    flows = work["flows"]
    comms: list = []

    def launcher():
        pending = []
        for s, d, size, start in flows:
            if start > sg.Engine.clock:
                sg.this_actor.sleep_until(start)
            c = sg.Comm.sendto_async(shost[s], dhost[d], int(size))
            comms.append(c)
            pending.append(c)
        sg.Comm.wait_all(pending)

    sg.Actor.create("launcher", next(iter(shost.values())), launcher)
    engine.run()
    finish = [c.finish_time for c in comms]
    return {"finish": finish, "wall_s": time.perf_counter() - t0, "cpu_s": time.process_time() - c0,
            "version": str(getattr(sg, "simgrid_version", "?"))}


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print(f"usage: {argv[0]} WORKLOAD.json RESULT.json", file=sys.stderr)
        return 2
    with open(argv[1], encoding="utf-8") as f:
        work = json.load(f)
    out = run(work)
    with open(argv[2], "w", encoding="utf-8") as f:
        json.dump(out, f)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
