"""QUERY commands: nodes, administrators, policy, SAN definitions, sessions, processes, activity log."""
from __future__ import annotations

import json
from typing import Any

from topology.tsm_syntax import match_keyword

from orchestrator.server.context import AdminContext, CommandError, table

SAN_QUERY = {"DATAMOVER": "DATAMover", "PATH": "PATH", "STGPOOL": "STGpool", "DEVCLASS": "DEVclass",
             "LIBRARY": "LIBRary", "DRIVE": "DRive", "DISK": "DISK"}
QUERIES = ["NOde", "ADmin", "DOmain", "MGmtclass", "SEssion", "PROCess", "ACTlog", "STatus", "OCCupancy",
           "VOLume", *SAN_QUERY.values()]


#: Parameters each QUERY reads; FORMAT= (STANDARD or DETAILED, as dsmadmc users type f=d) is taken by all.
QUERY_PARAMS = {"ACTLOG": {"SEARCH", "COUNT"}}


def query(ctx: AdminContext, what: str, pos: list[str], params: dict) -> str:
    kind = match_keyword(what, QUERIES)
    if kind is None:
        raise CommandError(f"ANR2000E Unknown command - QUERY {what.upper()}.")
    for key, value in params.items():
        if key.startswith("F") and "FORMAT".startswith(key):
            if match_keyword(value, ["Standard", "Detailed"]) is None:
                raise CommandError(f"ANR2022E QUERY {kind} {key}={value}: FORMAT is STANDARD or DETAILED.")
        elif key not in QUERY_PARAMS.get(kind, ()):
            known = ", ".join(sorted(QUERY_PARAMS.get(kind, set()) | {"FORMAT"}))
            raise CommandError(f"ANR2022E QUERY {kind}: parameter {key}= is not known here (known: {known}).")
    if kind in SAN_QUERY:
        return _san(ctx.store, kind, pos[0] if pos else None, ctx.extra.get("drives") if kind == "DRIVE" else None)
    return _QUERIES[kind](ctx, pos, params)


def _none(what: str) -> str:
    return f"ANR2034E QUERY {what}: No match found using this criteria."


def _san(store: Any, noun: str, pattern: str | None, held: dict | None = None) -> str:
    """The stored definitions of ``noun``; for drives (``held``) also which job holds each now."""
    merged: dict[str, dict] = {}
    for row in store.definitions(noun):
        merged.setdefault(row["name"], {}).update(json.loads(row["params"]))
    rows = [(n, p) for n, p in merged.items()
            if pattern is None or n.upper().startswith(pattern.rstrip("*").upper())]
    if not rows:
        raise CommandError(_none(noun))
    if held is not None:
        return table(["Name", "Parameters", "In Use By"],
                     [[n, " ".join(f"{k}={v}" for k, v in p.items()), held.get(n.split()[-1].upper(), "-")]
                      for n, p in rows])
    return table(["Name", "Parameters"],
                 [[n, " ".join(f"{k}={v}" for k, v in p.items())] for n, p in rows])


def _nodes(ctx: AdminContext, pos: list[str], params: dict) -> str:
    rows = ctx.store.nodes(pos[0] if pos else "*")
    if not rows:
        raise CommandError(_none("NODE"))
    return table(["Node Name", "Domain", "Locked?", "Registered", "Contact"],
                 [[r["name"], r["domain"], "Yes" if r["locked"] else "No", r["registered"], r["contact"]]
                  for r in rows])


def _admins(ctx: AdminContext, pos: list[str], params: dict) -> str:
    return table(["Administrator Name", "Registered"], [[r["name"], r["registered"]] for r in ctx.store.admins()])


def _domains(ctx: AdminContext, pos: list[str], params: dict) -> str:
    rows = ctx.store.domains()
    return table(["Policy Domain", "Description"], [[r["name"], r["description"]] for r in rows])


def _mgmtclasses(ctx: AdminContext, pos: list[str], params: dict) -> str:
    rows = ctx.store.mgmtclasses()
    if not rows:
        raise CommandError(_none("MGMTCLASS"))
    return table(["Policy Domain", "Mgmt Class", "Default?", "Destination"],
                 [[r["domain"], r["name"], "Yes" if r["is_default"] else "No", r["destination"]] for r in rows])


def _sessions(ctx: AdminContext, pos: list[str], params: dict) -> str:
    rows = ctx.sessions()
    return table(["Sess Number", "Comm. Method", "Sess State", "Bytes Sent", "Bytes Recvd", "Sess Type",
                  "Client Name"],
                 [[s["id"], s["method"], s["state"], s["sent"], s["received"], s["role"].capitalize(),
                   s["name"] or "-"] for s in rows])


def _processes(ctx: AdminContext, pos: list[str], params: dict) -> str:
    rows = ctx.processes()
    if not rows:
        return "ANR0944E QUERY PROCESS: No active processes found."
    return table(["Process Number", "Process Description", "Status"],
                 [[p["id"], p["description"], p["status"]] for p in rows])


def _actlog(ctx: AdminContext, pos: list[str], params: dict) -> str:
    count = params.get("COUNT", "1000")
    if not count.isdigit():
        raise CommandError(f"ANR2022E QUERY ACTLOG COUNT={count}: not a whole number.")
    rows = ctx.store.actlog(params.get("SEARCH", ""), int(count))
    return table(["Date/Time", "Message"], [[r["date"], f"{r['msgno']} {r['text']}"] for r in rows])


def _status(ctx: AdminContext, pos: list[str], params: dict) -> str:
    s = ctx.store.setting
    rows = [["Server-free Status", s("serverfree_status")], ["Server-free Batch Size", s("serverfree_batchsize") + " MB"]]
    rows += [[k, v] for k, v in ctx.extra.get("status", {}).items()]
    return "\n".join(f"{k:>30}: {v}" for k, v in rows)


def _occupancy(ctx: AdminContext, pos: list[str], params: dict) -> str:
    if ctx.pools is None:
        raise CommandError(_none("OCCUPANCY"))
    rows = ctx.pools.occupancy(pos[0] if pos else None)
    if not rows:
        raise CommandError(_none("OCCUPANCY"))
    return table(["Node Name", "Filespace Name", "Storage Pool", "Number of Objects", "Stored (MB)"],
                 [[r["node"], r["filespace"], r["pool"], r["objects"], f"{r['stored'] / (1 << 20):.2f}"]
                  for r in rows])


def _volumes(ctx: AdminContext, pos: list[str], params: dict) -> str:
    if ctx.pools is None:
        raise CommandError(_none("VOLUME"))
    rows = ctx.pools.volumes()
    if not rows:
        raise CommandError(_none("VOLUME"))
    return table(["Volume Name", "Storage Pool", "Capacity (MB)", "Used (MB)"],
                 [[r["name"], r["pool"], f"{r['capacity'] / (1 << 20):.1f}", f"{r['used'] / (1 << 20):.1f}"]
                  for r in rows])


_QUERIES = {"NODE": _nodes, "ADMIN": _admins, "DOMAIN": _domains, "MGMTCLASS": _mgmtclasses, "SESSION": _sessions,
            "PROCESS": _processes, "ACTLOG": _actlog, "STATUS": _status, "OCCUPANCY": _occupancy,
            "VOLUME": _volumes}
