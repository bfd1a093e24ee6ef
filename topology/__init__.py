"""The SAN as data: hosts, ports, zones, LUN masking, movers, pools; path verification.

Public API (import from the submodules; this package imports nothing else of ours):

* ``topology.load.load_topology(path, *, check=True) -> Topology`` -- YAML/JSON,
  TopologyError (a ValueError) naming file, place in the file and value.
* ``topology.model`` -- pydantic models: Topology, Host, Switch, Link, Zone,
  ZoneSet, Array, Lun, Masking, DataMover, Library, Drive, DevClass,
  StoragePool, MgmtClass, StorageAgent, Volume, TsmDisk, TsmPath, Lan.
* ``topology.verify.verify(topology, failed=(), *, redundancy=True) -> DomainReport``
  with one ``VolumeVerdict`` per volume (``topology.report``).
* ``topology.graph.SanState.build(topology, failed)`` -- the SAN with components
  down: components and pendant chains of the live fabric (``topology.fabric``),
  the networkx graph built on first use (``state.graph``); ``build_graph(topology)``
  for the bare graph.
* ``topology.index.TopologyIndex.build(topology)`` -- lookups: port owners,
  ``resolve_lun("ARR1:5")``, ``is_masked(...)``, ``pool_devices(pool)``;
  ``index_of(topology)`` returns the one built while loading (a topology is indexed once).
* ``topology.reference.reference_verdicts(topology, failed=()) -> {volume: ReferenceVerdict}`` --
  a straightforward per-volume judge (server-free, disjoint paths, single points of failure):
  verify()'s cross-check in tests and its peer in benchmarks/bench_topology.py.
* ``topology.tsm_macro.merge_macros(topology, [paths])`` / ``parse_macro(text)``.
* ``topology.svg.render_svg(state, report)``; ``topology.render_text.format_report(report)``.
* ``topology.synthetic.generate_domain(ports, luns, volumes)`` -- large test fabrics.
"""
