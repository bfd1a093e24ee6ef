"""Every message a session carries, as pydantic models: one place says what is well formed.

A request is parsed with :func:`parse_request`; a field of the wrong kind, an
unknown ``type`` or an extra key gives one line naming the field.  Names follow
TSM's rules (letters, digits and ``._-:``; at most 64 characters).
"""
from __future__ import annotations

from typing import Annotated, Literal, Union

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from orchestrator.digest_spool import DIGEST_ROW

Name = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:\-]*$")]
B64 = Annotated[str, Field(min_length=4, max_length=128, pattern=r"^[A-Za-z0-9+/=]+$")]
Offset = Annotated[int, Field(ge=0, le=1 << 60)]
MAX_EXTENTS = 5_000_000   # one extent map
MAX_RANGES = 4096         # pieces of one GET_RANGES

# -- bulk rows: long lists of pieces and extents as fixed records after the message (wire.py) -----
# A message names them in ``"bulk": {field: count}``; the rows follow it, checked page by page as they
# arrive (orchestrator.server.piece_rows), so a million pieces are never a million Python objects.
PIECE_ROW = np.dtype([("image_offset", "<i8"), ("volume_offset", "<i8"), ("length", "<i8"),
                      ("compressed", "u1"), ("stored", "<i8")])  # packed: 33 bytes a piece
EXTENT_ROW = np.dtype([("offset", "<i8"), ("length", "<i8")])
# a restore chain's view of chunk digests as runs (first chunk, chunks, digest): sha256 hex, or a marker
DIGEST_RUN_ROW = np.dtype([("chunk", "<i8"), ("count", "<i8"), ("digest", "S64")])
SCAN_ROW = np.dtype([("chunk", "<i8"), ("digest", "S64")])  # an incremental's scan: a chunk's sha256 hex
MAX_PIECES = 32_000_000   # one object's pieces in a commit or an answer (~1 GiB of rows, streamed)
BULK = {  # message type -> field -> (row layout, most rows); fields come in the order the sender declares them
    "commit": {"pieces": (PIECE_ROW, MAX_PIECES), "digests": (DIGEST_ROW, MAX_PIECES)},  # digests: chunk order
    "digest": {"pieces": (PIECE_ROW, MAX_PIECES)},
    "digests": {"digests": (DIGEST_ROW, MAX_PIECES)},  # the DIGEST answer: what the pool holds, in chunk order
    "serverfree_backup": {"extents": (EXTENT_ROW, MAX_EXTENTS), "scan_digests": (SCAN_ROW, MAX_PIECES)},
    "objects": {"pieces": (PIECE_ROW, MAX_PIECES)},  # answers: query_backup's and restore_chain's
    "chain": {"pieces": (PIECE_ROW, MAX_PIECES), "digest_runs": (DIGEST_RUN_ROW, MAX_PIECES)},
}


class Msg(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# -- authentication ----------------------------------------------------------------------------
class Hello(Msg):
    type: Literal["hello"]
    role: Literal["node", "admin"]
    name: Name
    client_nonce: B64


class Proof(Msg):
    type: Literal["proof"]
    proof: B64


# -- administrators ----------------------------------------------------------------------------
class Command(Msg):
    type: Literal["command"]
    text: Annotated[str, Field(min_length=1, max_length=64 << 10)]


# -- nodes: image objects ----------------------------------------------------------------------
class QueryBackup(Msg):
    type: Literal["query_backup"]
    filespace: Annotated[str, Field(max_length=1024)] | None = None
    inactive: bool = False
    object_id: int | None = None


class RestoreChain(Msg):
    """The full image to restore (or to base an incremental on) and its incrementals, with the view's digests."""
    type: Literal["restore_chain"]
    filespace: Annotated[str, Field(min_length=1, max_length=1024)]
    incremental: bool = False
    pitdate: Annotated[str, Field(max_length=40)] | None = None


class Piece(Msg):
    image_offset: Offset
    volume_offset: Offset
    length: Annotated[int, Field(gt=0, le=1 << 50)]
    compressed: bool = False
    stored: Annotated[int, Field(ge=0, le=1 << 50)]


class BeginBackup(Msg):
    """Ask the server for an object and the pool space it grants this session."""
    type: Literal["begin_backup"]
    filespace: Annotated[str, Field(min_length=1, max_length=1024)]
    image_size: Annotated[int, Field(gt=0, le=1 << 50)]
    volume_size: Annotated[int, Field(gt=0, le=1 << 52)]
    file_system: Annotated[str, Field(max_length=16)] = "raw"
    mode: Literal["selective", "incremental"] = "selective"
    image_type: Annotated[str, Field(max_length=32)] = "static"
    management_class: Name | None = None
    base_object_id: int | None = None
    lan_free: bool = False  # the client (a storage agent) asks to write the granted range over the SAN itself
    tape_lan_free: bool = False  # on a tape pool: the storage agent writes the records on the drive itself


class ServerFreeBackup(Msg):
    """The client's extent map and image metadata: the server initiates the third-party copy."""
    type: Literal["serverfree_backup"]
    filespace: Annotated[str, Field(min_length=1, max_length=1024)]
    volume_size: Annotated[int, Field(gt=0, le=1 << 52)]
    volume_offset: Offset = 0
    file_system: Literal["ntfs", "raw"]
    # the extent map: as JSON pairs (a small map) or, for millions, as EXTENT_ROW rows after the message (BULK)
    extents: Annotated[list[tuple[Offset, Annotated[int, Field(gt=0, le=1 << 50)]]], Field(max_length=MAX_EXTENTS)] = []
    source_designator: Annotated[str, Field(min_length=8, max_length=64, pattern=r"^[0-9a-fA-F]+$")]
    block_size: Annotated[int, Field(ge=512, le=1 << 20)] = 512
    mode: Literal["selective", "incremental"] = "selective"
    image_type: Literal["static", "dynamic"] = "static"  # dynamic: copied while in use, no snapshot (fuzzy)
    management_class: Name | None = None
    topology_volume: Annotated[str, Field(max_length=256)] | None = None  # the volume's id in the SAN topology
    # an image incremental: the full image it builds on and the client's scan of its volume (chunk digests over
    # what the chain's digests cover), so that the server, which cannot read the volume, finds what changed
    base_object_id: int | None = None
    scan_digests: Annotated[list[tuple[Offset, Annotated[str, Field(max_length=128)]]], Field(max_length=5_000_000)] = []  # paged (wire.py)
    lan_free: bool = False  # if the copy stops midway, the client (a storage agent) writes the rest itself


class ServerFreeRestore(Msg):
    """Restore the node's image chain (active, or in force at ``pitdate``) onto the client disk named by its
    designator, through a mover."""
    type: Literal["serverfree_restore"]
    filespace: Annotated[str, Field(min_length=1, max_length=1024)]
    destination_designator: Annotated[str, Field(min_length=8, max_length=64, pattern=r"^[0-9a-fA-F]+$")]
    block_size: Annotated[int, Field(ge=512, le=1 << 20)] = 512
    destination_offset: Offset = 0
    destination_size: Annotated[int, Field(gt=0, le=1 << 52)]
    topology_volume: Annotated[str, Field(max_length=256)] | None = None
    incremental: bool = False  # the full image and its incrementals, as the restore chain gives them
    pitdate: Annotated[str, Field(max_length=40)] | None = None  # the chain in force at that time


class RestoreGrant(Msg):
    """LAN-free restore: ask for this session's right to read one of the node's own objects on its pool volume."""
    type: Literal["restore_grant"]
    object_id: int


class Put(Msg):
    """Bytes of a granted object at an image offset (the data follows the message)."""
    type: Literal["put"]
    object_id: int
    image_offset: Offset
    length: Annotated[int, Field(gt=0, le=1 << 30)]
    compressed: bool = False


class Commit(Msg):
    type: Literal["commit"]
    object_id: int
    pieces: list[Piece] = []  # or PIECE_ROW rows after the message (BULK)
    # the paths that moved data, in order (a resumed server-free copy: "server-free+lan")
    path_used: Annotated[str, Field(max_length=40, pattern=r"^(server-free|lan-free|lan)(\+(lan-free|lan))*$")] = "lan"
    digests: list[tuple[int, Annotated[str, Field(max_length=128)]]] = []  # or DIGEST_ROW rows (BULK)
    failovers: list[Annotated[str, Field(max_length=64)]] = []  # reasons the client's job failed over
    chunk_size: Annotated[int, Field(ge=0, le=1 << 30)] = 0      # of ``digests`` (needed for LAN-free data)
    tape_location: Annotated[str, Field(max_length=1024)] = ""   # LAN-free to tape: where the client wrote it


class Destination(Msg):
    """Where the node's policy sends a backup (its management class, else the domain's default)."""
    type: Literal["destination"]
    management_class: Name | None = None


class Abandon(Msg):
    type: Literal["abandon"]
    object_id: int
    reason: Annotated[str, Field(max_length=500)] = "client gave up"


class Get(Msg):
    type: Literal["get"]
    object_id: int
    image_offset: Offset
    length: Annotated[int, Field(gt=0, le=1 << 30)]
    stored: Annotated[int, Field(ge=0, le=1 << 30)] | None = None


class GetRanges(Msg):
    """LAN restore: several pieces' stored bytes of one object in one answer (their data concatenated)."""
    type: Literal["get_ranges"]
    object_id: int
    ranges: Annotated[list[tuple[Offset, Annotated[int, Field(gt=0, le=1 << 30)]]],
                      Field(min_length=1, max_length=MAX_RANGES)]  # (image offset, stored length)


class Digest(Msg):
    """Chunk digests of an object as the pool holds it: a granted one (``pieces`` as written) or a committed one."""
    type: Literal["digest"]
    object_id: int
    chunk_size: Annotated[int, Field(ge=4096, le=1 << 30)]
    pieces: list[Piece] = []


class Delete(Msg):
    type: Literal["delete"]
    object_id: int


class Bye(Msg):
    type: Literal["bye"]


Request = Annotated[Union[Hello, Proof, Command, QueryBackup, RestoreChain, BeginBackup, ServerFreeBackup,
                          ServerFreeRestore, RestoreGrant, Destination, Put, Commit, Abandon, Get, GetRanges, Digest,
                          Delete, Bye], Field(discriminator="type")]
_REQUEST = TypeAdapter(Request)


def parse_request(message: dict):
    """The request model for a decoded JSON message; ValueError naming the field otherwise."""
    try:
        return _REQUEST.validate_python(message)
    except ValidationError as exc:
        e = exc.errors()[0]
        where = ".".join(str(x) for x in e["loc"]) or "message"
        raise ValueError(f"malformed request: {where}: {e['msg']}") from None


def bulk_of(message: dict) -> dict[str, tuple[int, np.dtype]]:
    """The rows a message declares (``"bulk"`` removed from it): field -> (count, row layout), in order;
    ValueError naming the field when the message type carries no such rows or the count is out of range."""
    decl = message.pop("bulk", None)
    if decl is None:
        return {}
    kinds = BULK.get(message.get("type"), {})  # type: ignore[arg-type]
    if not isinstance(decl, dict):
        raise ValueError("malformed request: bulk: Input should be an object of field: row count")
    out = {}
    for name, count in decl.items():
        if name not in kinds:
            raise ValueError(f"malformed request: bulk.{name}: a {message.get('type')!r} message carries no rows "
                             f"named {name!r}")
        dtype, most = kinds[name]
        if not isinstance(count, int) or isinstance(count, bool) or not 0 <= count <= most:
            raise ValueError(f"malformed request: bulk.{name}: Input should be a row count of 0 to {most}, "
                             f"not {count!r}")
        if message.get(name):
            raise ValueError(f"malformed request: {name}: given both as JSON and as rows")
        out[name] = (count, dtype)
    return out


def error(message: str, *, server_fault: bool = False) -> dict:
    return {"type": "error", "message": message[:2000], **({"fault": "server"} if server_fault else {})}
