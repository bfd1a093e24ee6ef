"""The administrative command language, in dsmadmc's spelling, and the answers it prints.

Keywords abbreviate as TSM writes them (``REGister NOde``, ``QUery ACTlog``),
parsed with the same reader as the macro import (:mod:`topology.tsm_syntax`).
The SAN objects (DATAMOVER, PATH, DISK, LIBRARY, DRIVE, DEVCLASS, STGPOOL and
SET SERVERFREE) go through the macro parser itself
(:func:`topology.tsm_macro.parse_macro`) and are judged against every earlier
definition before they are stored: one parser for macros and commands.
"""
from __future__ import annotations

from typing import Any, Callable

from orchestrator.server.context import AdminContext, CommandError
from orchestrator.server.queries import query

from topology.errors import TopologyError
from topology.model import Topology
from topology.tsm_macro import NOUNS as SAN_NOUNS
from topology.tsm_macro import apply_macro_text, parse_macro
from topology.tsm_syntax import match_keyword, split_params, tokenize

#: How many leading positional words name a SAN object (UPDATE STGPOOL names only the pool).
NAME_WORDS = {"DATAMOVER": 1, "DISK": 2, "PATH": 2, "LIBRARY": 1, "DRIVE": 2, "DEVCLASS": 1, "STGPOOL": 1}


def _kw(token: str, spellings: list[str], what: str) -> str:
    k = match_keyword(token, spellings)
    if k is None:
        raise CommandError(f"ANR2000E Unknown command - {f'{what} ' if what else ''}{token.upper()}.")
    return k


def run_command(ctx: AdminContext, text: str) -> str:
    """Execute one command; CommandError carries the refusal."""
    try:
        tokens = tokenize(text, file="command", line=1)
    except TopologyError as exc:
        raise CommandError(f"ANR2020E {exc}") from None
    if not tokens:
        raise CommandError("ANR2000E Empty command.")
    verb = _kw(tokens[0], ["REGister", "UPDate", "REMove", "DEFine", "DELete", "Query", "SET", "CANcel",
                           "LOCK", "UNLock"], "")
    if len(tokens) < 2:
        raise CommandError(f"ANR2000E {verb} needs an object, e.g. {verb} NODE.")
    if verb in ("DEFINE", "UPDATE", "DELETE") and match_keyword(tokens[1], SAN_NOUNS):
        return _san(ctx, verb, match_keyword(tokens[1], SAN_NOUNS) or "", text, tokens)
    if verb == "SET":
        _kw(tokens[1], ["SERVERFree"], "SET")
        return _set_serverfree(ctx, text)
    positional, params = split_params(tokens[2:])
    params_u = {k.upper(): v for k, v in params}
    handler = _HANDLERS.get(verb)
    if handler is None:
        raise CommandError(f"ANR2000E Unknown command - {verb}.")
    return handler(ctx, tokens[1], positional, params_u)


# -- SAN definitions: one parser with the macro import ---------------------------------------
def current_topology(store: Any, fabric: Topology | None = None) -> Topology:
    """Every stored definition replayed, in order, onto ``fabric`` (default: an empty SAN)."""
    topo = Topology() if fabric is None else fabric
    for row in store.definitions():
        if row["verb"] != "DELETE":
            apply_macro_text(topo, row["text"], file=f"definition {row['id']}")
    return topo


#: Words after a definition's name that QUERY shows as parameters (DEFINE STGPOOL name DEVCLASS ...).
EXTRA_POSITIONAL = {"STGPOOL": ("DEVCLASS",)}


def _san(ctx: AdminContext, verb: str, noun: str, text: str, tokens: list[str]) -> str:
    positional, _ = split_params(tokens[2:])
    want = NAME_WORDS[noun]
    if len(positional) < want:
        raise CommandError(f"ANR2004E {verb} {noun}: missing name ({want} word(s) before the parameters).")
    name = " ".join(positional[:want]).upper()
    with ctx.store.lock:
        exists = ctx.store.defined(noun, name)
        if verb == "DELETE":
            if not exists:
                raise CommandError(f"ANR2034E DELETE {noun}: {name} is not defined.")
            ctx.store.delete_definition(noun, name)
            ctx.store.log("ANR2166I", f"{noun} {name} deleted by {ctx.admin}.", ctx.session)
            return f"ANR2166I {noun} {name} deleted."
        if verb == "DEFINE" and exists:
            raise CommandError(f"ANR2033E DEFINE {noun}: {name} is already defined.")
        try:
            st = parse_macro(text, file="command")[0]
            apply_macro_text(current_topology(ctx.store), text, file="command")
        except TopologyError as exc:
            raise CommandError(f"ANR2020E {verb} {noun}: {exc}") from None
        extra = dict(zip(EXTRA_POSITIONAL.get(noun, ()), positional[want:]))  # e.g. a pool's device class
        ctx.store.add_definition(verb, noun, name, {**extra, **st.params}, text.strip())
    ctx.store.log("ANR2017I", f"Administrator {ctx.admin} issued command: {text.strip()}", ctx.session)
    return f"ANR2160I {noun} {name} {'defined' if verb == 'DEFINE' else 'updated'}."


def _set_serverfree(ctx: AdminContext, text: str) -> str:
    try:
        st = parse_macro(text, file="command")[0]
    except TopologyError as exc:
        raise CommandError(f"ANR2020E SET SERVERFREE: {exc}") from None
    out = []
    if "BATCHSIZE" in st.params:
        v = st.params["BATCHSIZE"]
        if not v.isdigit() or not 10 <= int(v) <= 1000:
            raise CommandError(f"ANR2022E SET SERVERFREE BATCHSIZE={v}: must be 10 to 1000 (MB).")
        ctx.store.set_setting("serverfree_batchsize", v)
        out.append(f"ANR2119I The SERVERFREE BATCHSIZE is set to {v} MB.")
    if "STATUS" in st.params:
        v = match_keyword(st.params["STATUS"], ["ON", "OFf"])
        if v is None:
            raise CommandError(f"ANR2022E SET SERVERFREE STATUS={st.params['STATUS']}: must be ON or OFF.")
        ctx.store.set_setting("serverfree_status", v)
        out.append(f"ANR2119I Server-free data movement is {v}.")
    if not out:
        raise CommandError("ANR2004E SET SERVERFREE needs BATCHSIZE= or STATUS=.")
    ctx.store.log("ANR2017I", f"Administrator {ctx.admin} issued command: {text.strip()}", ctx.session)
    return "\n".join(out)


# -- nodes, administrators, policy ------------------------------------------------------------
def _register(ctx: AdminContext, what: str, pos: list[str], params: dict) -> str:
    kind = _kw(what, ["NOde", "ADmin"], "REGISTER")
    if len(pos) != 2:
        raise CommandError(f"ANR2004E REGISTER {kind} needs a name and a password.")
    name, password = pos
    try:
        if kind == "NODE":
            domain = params.get("DOMAIN", "STANDARD")
            ctx.store.register_node(name, password, domain, params.get("CONTACT", ""))
            msg = f"ANR2060I Node {name.upper()} registered in policy domain {domain.upper()}."
        else:
            ctx.store.register_admin(name, password)
            msg = f"ANR2068I Administrator {name.upper()} registered."
    except (ValueError, LookupError) as exc:
        raise CommandError(f"ANR2020E REGISTER {kind}: {exc}.") from None
    ctx.store.log(msg.split()[0], f"{msg[9:]} (by {ctx.admin})", ctx.session)
    return msg


def _update(ctx: AdminContext, what: str, pos: list[str], params: dict) -> str:
    _kw(what, ["NOde"], "UPDATE")
    if len(pos) not in (1, 2):
        raise CommandError("ANR2004E UPDATE NODE needs a name and optionally a new password.")
    try:
        ctx.store.update_node(pos[0], password=pos[1] if len(pos) == 2 else None, domain=params.get("DOMAIN"),
                              contact=params.get("CONTACT"))
    except (ValueError, LookupError) as exc:
        raise CommandError(f"ANR2020E UPDATE NODE: {exc}.") from None
    ctx.store.log("ANR2063I", f"Node {pos[0].upper()} updated by {ctx.admin}.", ctx.session)
    return f"ANR2063I Node {pos[0].upper()} updated."


def _lock(locked: bool):
    def run(ctx: AdminContext, what: str, pos: list[str], params: dict) -> str:
        _kw(what, ["NOde"], "LOCK")
        if len(pos) != 1:
            raise CommandError("ANR2004E LOCK/UNLOCK NODE needs a name.")
        try:
            ctx.store.update_node(pos[0], locked=locked)
        except LookupError as exc:
            raise CommandError(f"ANR2020E {exc}.") from None
        msg = f"ANR2{'066' if locked else '067'}I Node {pos[0].upper()} {'locked' if locked else 'unlocked'}."
        ctx.store.log(msg.split()[0], msg[9:], ctx.session)
        return msg
    return run


def _remove(ctx: AdminContext, what: str, pos: list[str], params: dict) -> str:
    _kw(what, ["NOde"], "REMOVE")
    if len(pos) != 1:
        raise CommandError("ANR2004E REMOVE NODE needs a name.")
    if ctx.pools is not None and ctx.pools.objects_of(pos[0]):
        raise CommandError(f"ANR2152E REMOVE NODE: node {pos[0].upper()} still has backup objects.")
    try:
        ctx.store.remove_node(pos[0])
    except LookupError as exc:
        raise CommandError(f"ANR2020E REMOVE NODE: {exc}.") from None
    ctx.store.log("ANR2061I", f"Node {pos[0].upper()} removed by {ctx.admin}.", ctx.session)
    return f"ANR2061I Node {pos[0].upper()} removed."


def _define(ctx: AdminContext, what: str, pos: list[str], params: dict) -> str:
    kind = _kw(what, ["DOmain", "MGmtclass", "VOLume"], "DEFINE")
    try:
        if kind == "DOMAIN":
            if len(pos) != 1:
                raise CommandError("ANR2004E DEFINE DOMAIN needs a name.")
            ctx.store.define_domain(pos[0], params.get("DESCRIPTION", ""))
            msg = f"ANR1500I Policy domain {pos[0].upper()} defined."
        elif kind == "MGMTCLASS":
            if len(pos) != 2 or "DESTINATION" not in params:
                raise CommandError("ANR2004E DEFINE MGMTCLASS needs DOMAIN CLASS DESTINATION=POOL.")
            ctx.store.define_mgmtclass(pos[0], pos[1], params["DESTINATION"],
                                       params.get("DEFAULT", "NO").upper().startswith("Y"))
            msg = f"ANR1520I Management class {pos[1].upper()} defined in {pos[0].upper()}, " \
                  f"destination {params['DESTINATION'].upper()}."
            if not ctx.store.defined("STGPOOL", params["DESTINATION"].upper()):  # allowed, as in TSM; backups
                msg += (f"\nANR1519W Destination {params['DESTINATION'].upper()} is not a defined storage pool: "
                        "backups bound to this class are refused until DEFINE STGPOOL defines it.")
        else:
            if ctx.pools is None:
                raise CommandError("ANR2000E DEFINE VOLUME: this server has no pool manager.")
            msg = ctx.pools.define_volume(pos, params)
    except (ValueError, LookupError, OSError) as exc:
        if isinstance(exc, CommandError):
            raise
        if isinstance(exc, OSError) and exc.strerror:  # the server cannot create or open the volume's file
            raise CommandError(f"ANR2020E DEFINE {kind}: {exc.filename or ''}: {exc.strerror}.") from None
        raise CommandError(f"ANR2020E DEFINE {kind}: {exc}.") from None
    ctx.store.log(msg.split()[0], msg[9:], ctx.session)
    return msg


def _cancel(ctx: AdminContext, what: str, pos: list[str], params: dict) -> str:
    _kw(what, ["SEssion"], "CANCEL")
    if len(pos) != 1 or not pos[0].isdigit():
        raise CommandError("ANR2004E CANCEL SESSION needs a session number.")
    if not ctx.cancel(int(pos[0])):
        raise CommandError(f"ANR0405E Session {pos[0]} is not active.")
    ctx.store.log("ANR0490I", f"Canceling session {pos[0]} (by {ctx.admin}).", ctx.session)
    return f"ANR0490I Canceling session {pos[0]}."


_HANDLERS: dict[str, Callable[[AdminContext, str, list[str], dict], str]] = {
    "REGISTER": _register, "UPDATE": _update, "REMOVE": _remove, "DEFINE": _define, "CANCEL": _cancel,
    "QUERY": query, "LOCK": _lock(True), "UNLOCK": _lock(False),
}
