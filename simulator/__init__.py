"""Time: a simpy model of the SAN that runs the orchestrator with no hardware.

Modules, bottom up:

* :mod:`simulator.fairshare` -- weighted max-min fair rates (progressive filling, numpy);
* :mod:`simulator.flows` -- the flow engine: flows over capacity-limited resources, one simpy
  event per change, byte marks, per-flow rate timeline (:mod:`simulator.timeline`); running flows
  as stable rows with per-resource indexes, lazy bytes and absolute next-event times
  (:mod:`simulator.flow_table`); only the flows a change can move re-levelled
  (:mod:`simulator.flow_relevel`, with a one-holder shortcut on :mod:`simulator.flow_held`); each
  flow's bottleneck, per job in :mod:`simulator.attribution`;
* :mod:`simulator.flow_workload`, :mod:`simulator.simgrid_peer` -- the same random SAN-shaped flow
  workload on our engine and on SimGrid (the benchmark's peer);
* :mod:`simulator.calibration`, :mod:`simulator.devices` -- device models and their defaults;
* :mod:`simulator.san` -- :class:`SimSAN`: devices, full-duplex links, routes
  (:mod:`simulator.san_routes`), data paths, jobs; built by hand, by :mod:`simulator.worlds` or from
  a topology (:mod:`simulator.from_topology`); ``detail=False`` keeps running totals, not per-flow and
  per-job records (capacity runs);
* :mod:`simulator.faults` -- scheduled faults (time, bytes or percent of a job), seeded schedules;
* :mod:`simulator.fluid` -- fluid mode: one orchestrator operation = one flow, failures located
  analytically (:mod:`simulator.copy_plan`);
* :mod:`simulator.exact` -- exact mode: the shared copy manager engine on simulated LUNs;
* :mod:`simulator.driver` -- runs orchestrator jobs as simpy processes (:mod:`simulator.timing_backend`
  answers the bookkeeping of timing-only runs);
* :mod:`simulator.synthetic` -- O(1)-memory stand-in jobs for capacity runs, queued for drives as one
  entry however many; their outcomes streamed to :mod:`simulator.outcome_stats`;
* :mod:`simulator.scenarios` -- scenario files, the CI scenario runner, sweeps on Dask
  (``sweep*``) and their HTML report (``report*``); :mod:`simulator.plots` -- plots.
"""
