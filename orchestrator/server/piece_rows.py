"""Pieces and extents as rows on the wire: checked page by page, kept as compact blocks, never one object each.

A commit of a million pieces used to arrive as JSON, become a million
dictionaries and then a million pydantic models (about 1.3 KB a piece).  Here
the rows (``messages.PIECE_ROW`` / ``EXTENT_ROW``) are checked a page at a
time with numpy -- the same limits the pydantic models state, and an error
that names the same thing theirs would: the field, the piece's index in the
whole list and the rule -- and go straight into `PieceBlock` columns.
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator, Sized
from itertools import islice
from typing import Any

import numpy as np

from orchestrator.piece_blocks import BLOCK_PIECES, PieceBlock
from orchestrator.piece_stream import PieceStream
from orchestrator.chunk_runs import DigestRuns
from orchestrator.digest_spool import DIGEST_ROW, DigestSpool
from orchestrator.piece_stream import LazySeq
from orchestrator.server.messages import DIGEST_RUN_ROW, EXTENT_ROW, PIECE_ROW

OFFSET_MAX, LENGTH_MAX = 1 << 60, 1 << 50  # as messages.Offset and Piece.length say


class MalformedRows(ValueError):
    """A row breaks a rule of its message (the text is as the pydantic model's would be)."""


def _ge(v: np.ndarray, lo: int) -> tuple[np.ndarray, str]:
    return v < lo, f"Input should be greater than or equal to {lo}"


def _gt(v: np.ndarray, lo: int) -> tuple[np.ndarray, str]:
    return v <= lo, f"Input should be greater than {lo}"


def _le(v: np.ndarray, hi: int) -> tuple[np.ndarray, str]:
    return v > hi, f"Input should be less than or equal to {hi}"


def _first_bad(field: str, first: int, checks: list[tuple[str, tuple[np.ndarray, str]]],
               what: str = "malformed request") -> None:
    """Raise for the first row breaking a rule (rules in the model's field order, as pydantic reports them)."""
    bad = np.zeros(checks[0][1][0].shape, dtype=bool)
    for _, (mask, _) in checks:
        bad |= mask
    if not bad.any():
        return
    i = int(np.argmax(bad))
    for name, (mask, text) in checks:
        if mask[i]:
            raise MalformedRows(f"{what}: {field}.{first + i}.{name}: {text}")


def check_pieces(rows: np.ndarray, first: int, field: str = "pieces") -> None:
    """The rules of `messages.Piece` on ``rows`` (PIECE_ROW), whose first row is ``first`` of the list."""
    _first_bad(field, first, [
        ("image_offset", _ge(rows["image_offset"], 0)), ("image_offset", _le(rows["image_offset"], OFFSET_MAX)),
        ("volume_offset", _ge(rows["volume_offset"], 0)), ("volume_offset", _le(rows["volume_offset"], OFFSET_MAX)),
        ("length", _gt(rows["length"], 0)), ("length", _le(rows["length"], LENGTH_MAX)),
        ("compressed", (rows["compressed"] > 1, "Input should be a valid boolean")),
        ("stored", _ge(rows["stored"], 0)), ("stored", _le(rows["stored"], LENGTH_MAX))])


def check_extents(rows: np.ndarray, first: int, field: str = "extents") -> None:
    """The rules of `messages.ServerFreeBackup.extents` ((offset, length) pairs) on EXTENT_ROW rows."""
    _first_bad(field, first, [
        ("0", _ge(rows["offset"], 0)), ("0", _le(rows["offset"], OFFSET_MAX)),
        ("1", _gt(rows["length"], 0)), ("1", _le(rows["length"], LENGTH_MAX))])


# -- to rows ---------------------------------------------------------------------------------------
def rows_of_block(block: PieceBlock) -> np.ndarray:
    out = np.empty(len(block), dtype=PIECE_ROW)
    out["image_offset"] = block.image_offsets()
    out["volume_offset"] = block.volume_offset
    out["length"] = block.length
    out["compressed"] = block.compressed
    out["stored"] = np.where(block.stored_length > 0, block.stored_length, block.length)
    return out


def piece_pages(pieces: Any, count: int | None = None) -> tuple[int, Iterator[np.ndarray]]:
    """(count, PIECE_ROW pages) of pieces given as a `PieceStream` or `StoredPiece`-like objects (an iterator of
    them with its ``count``: read a page at a time, never listed)."""
    if isinstance(pieces, PieceStream):
        return len(pieces), (rows_of_block(b) for b in pieces.blocks())
    if count is None:
        pieces = pieces if isinstance(pieces, (list, tuple)) else list(pieces)
        count = len(pieces)
    it = iter(pieces)

    def pages() -> Iterator[np.ndarray]:
        while True:
            part = list(islice(it, BLOCK_PIECES))
            if not part:
                return
            yield np.fromiter(((p.image_offset, p.volume_offset, p.length, bool(getattr(p, "compressed", False)),
                                int(getattr(p, "stored", p.length))) for p in part), PIECE_ROW, len(part))
    return count, pages()


def extent_pages(extents: Any) -> tuple[int, Iterator[np.ndarray]]:
    """(count, EXTENT_ROW pages) of an (n, 2) array or (offset, length) pairs."""
    arr = np.asarray(extents, dtype=np.int64).reshape(-1, 2)

    def pages() -> Iterator[np.ndarray]:
        for o in range(0, arr.shape[0], 1 << 18):
            part = arr[o:o + (1 << 18)]
            out = np.empty(part.shape[0], dtype=EXTENT_ROW)
            out["offset"], out["length"] = part[:, 0], part[:, 1]
            yield out
    return int(arr.shape[0]), pages()


def json_piece_rows(pieces: Iterable[Any]) -> np.ndarray:
    """PIECE_ROW rows of pieces a (small) JSON message carried, already checked by their model."""
    pieces = list(pieces)
    return np.fromiter(((p.image_offset, p.volume_offset, p.length, p.compressed, p.stored) for p in pieces),
                       PIECE_ROW, len(pieces))


# -- from rows -------------------------------------------------------------------------------------
def block_of_rows(rows: np.ndarray) -> PieceBlock:
    """A block of its own columns (copies: the frame the rows came in is not kept alive by them)."""
    compressed = rows["compressed"].astype(bool)
    return PieceBlock.of(int(rows["image_offset"][0]), rows["volume_offset"].copy(), rows["length"].copy(),
                         np.where(compressed, rows["stored"], 0), compressed, image=rows["image_offset"].copy())


def spool_pieces(pages: Iterable[np.ndarray], field: str = "pieces") -> PieceStream:
    """Pieces from rows, checked page by page, as a stream in image order over compact blocks (~25 bytes a
    piece); pages out of order are sorted at the end (a commit may name its pieces in any order)."""
    blocks: list[PieceBlock] = []
    first, ordered, last = 0, True, -1
    for rows in _reblocked(pages):
        check_pieces(rows, first, field)
        first += rows.size
        image = rows["image_offset"]
        if ordered and (image[0] < last or (image.size > 1 and bool((image[1:] < image[:-1]).any()))):
            ordered = False
        last = int(image[-1])
        blocks.append(block_of_rows(rows))
    if not ordered:
        blocks = _sorted(blocks)
    held = tuple(blocks)
    return PieceStream(lambda: held, first)


def _reblocked(pages: Iterable[np.ndarray]) -> Iterator[np.ndarray]:
    """The rows again, cut at every BLOCK_PIECES-th row of the whole list (the catalogue's rows stay as the
    pieces' order makes them, however the sender cut its frames)."""
    carry: list[np.ndarray] = []
    held = 0
    for rows in pages:
        while rows.size:
            take = min(rows.size, BLOCK_PIECES - held)
            carry.append(rows[:take])
            held += take
            rows = rows[take:]
            if held == BLOCK_PIECES:
                yield carry[0] if len(carry) == 1 else np.concatenate(carry)
                carry, held = [], 0
    if held:
        yield carry[0] if len(carry) == 1 else np.concatenate(carry)


def _sorted(blocks: list[PieceBlock]) -> list[PieceBlock]:
    image = np.concatenate([b.image_offsets() for b in blocks])
    order = np.argsort(image, kind="stable")
    cols = [np.concatenate([getattr(b, c) for b in blocks])[order]
            for c in ("volume_offset", "length", "stored_length", "compressed")]
    image = image[order]
    return [PieceBlock.of(int(image[o]), *(c[o:o + BLOCK_PIECES] for c in cols), image=image[o:o + BLOCK_PIECES])
            for o in range(0, image.size, BLOCK_PIECES)]


def first_gap(stream: PieceStream) -> tuple[int, int] | None:
    """(image offset of the first piece that does not follow the one before, where it should start), or None:
    the pieces tile the image from 0."""
    pos = 0
    for block in stream.blocks():
        image = block.image_offsets()
        expect = np.empty_like(image)
        expect[0] = pos
        expect[1:] = image[:-1] + block.length[:-1]
        bad = image != expect
        if bad.any():
            i = int(np.argmax(bad))
            return int(image[i]), int(expect[i])
        pos = int(image[-1] + block.length[-1])
    return None


def read_extents(pages: Iterable[np.ndarray], count: int, field: str = "extents") -> np.ndarray:
    """An extent map's rows, checked page by page, as one (count, 2) int64 array (16 bytes an extent)."""
    out = np.empty((count, 2), dtype=np.int64)
    first = 0
    for rows in pages:
        check_extents(rows, first, field)
        out[first:first + rows.size, 0] = rows["offset"]
        out[first:first + rows.size, 1] = rows["length"]
        first += rows.size
    return out[:first]


def pieces_of_counts(pages: Iterable[np.ndarray], counts: list[int]) -> list[PieceStream]:
    """The pieces of several objects, sent one after the other (``counts`` of each), as one stream each."""
    it = iter(pages)
    rows = np.empty(0, dtype=PIECE_ROW)
    out = []
    for n in counts:
        blocks: list[PieceBlock] = []
        need = n
        while need:
            if not rows.size:
                rows = next(it)
                continue
            part, rows = rows[:need], rows[need:]
            for o in range(0, part.size, BLOCK_PIECES):
                blocks.append(block_of_rows(part[o:o + BLOCK_PIECES]))
            need -= part.size
        held = tuple(blocks)
        out.append(PieceStream(lambda held=held: held, n))
    for _ in it:  # nothing is left (the counts add up to the rows declared)
        pass
    return out


def digest_run_pages(runs: Iterable[tuple[int, str, int]], page: int = 1 << 16) -> Iterator[np.ndarray]:
    """DIGEST_RUN_ROW pages of (first chunk, digest, count) runs."""
    buf: list[tuple[int, int, bytes]] = []
    for c, d, n in runs:
        buf.append((c, n, d.encode()))
        if len(buf) == page:
            yield np.array(buf, dtype=DIGEST_RUN_ROW)
            buf.clear()
    if buf:
        yield np.array(buf, dtype=DIGEST_RUN_ROW)


def digest_runs_of(pages: Iterable[np.ndarray]) -> DigestRuns:
    """A view's digest runs from their rows, held as the rows (80 bytes a run; a server-free image's unread
    chunks are a few runs)."""
    held = [np.array(p) for p in pages]

    def runs() -> Iterator[tuple[int, str, int]]:
        for p in held:
            for c, n, d in zip(p["chunk"].tolist(), p["count"].tolist(), p["digest"].tolist()):
                yield c, d.decode(), n
    return DigestRuns(runs)


# -- an incremental's scan -------------------------------------------------------------------------
class Scan:
    """The chunk digests a client's incremental scan sent, ascending by chunk, each chunk once, in a `DigestSpool`
    (past 16 Ki rows on a temporary file): a 16 TiB volume's 16 M chunks are not held in memory."""

    def __init__(self, spool: DigestSpool):
        self.spool = spool

    @classmethod
    def of_rows(cls, pages: Iterable[np.ndarray], field: str = "scan_digests") -> "Scan":
        return cls(read_digests(pages, field))

    @classmethod
    def of_pairs(cls, pairs: Iterable[tuple[int, str]]) -> "Scan":
        """A (small) JSON scan: in any order, the last digest of a chunk counting."""
        return cls(json_digests(dict(pairs).items(), "scan_digests"))

    def covers_exactly(self, touched: Iterable[np.ndarray]) -> bool:
        """Whether the scan's chunks are exactly ``touched`` (ascending arrays of chunk indices), walked in step."""
        return equal_streams(self.spool.chunk_pages(), touched)

    def pairs(self) -> LazySeq:
        """(chunk, digest) pairs in chunk order, produced on each pass."""
        return self.spool


def equal_streams(a: Iterable[np.ndarray], b: Iterable[np.ndarray]) -> bool:
    """Whether two streams of arrays hold the same values in the same order, however each is cut."""
    ia, ib = iter(a), iter(b)
    x: np.ndarray | None = np.empty(0, dtype=np.int64)
    y: np.ndarray | None = np.empty(0, dtype=np.int64)
    while True:
        while x is not None and not x.size:
            x = next(ia, None)
        while y is not None and not y.size:
            y = next(ib, None)
        if x is None or y is None:
            return x is None and y is None
        n = min(x.size, y.size)
        if not np.array_equal(x[:n], y[:n]):
            return False
        x, y = x[n:], y[n:]


# -- chunk digests (a DIGEST answer, a commit's digests) -------------------------------------------
def digest_pages(digests: Iterable[tuple[int, str]]) -> tuple[int, Iterator[np.ndarray]]:
    """(count, DIGEST_ROW pages) of (chunk, digest) pairs: a `DigestSpool`'s own pages, else the pairs read a
    page at a time (counted first by a pass of their own when they are a sequence, else spooled)."""
    if not isinstance(digests, Sized):
        digests = DigestSpool(digests)  # an iterator: one pass only, so kept (in bounded memory) to be counted
    if isinstance(digests, DigestSpool):
        return len(digests), digests.pages()

    count = len(digests)

    def pages() -> Iterator[np.ndarray]:  # 4096 rows at a time: no list of pairs, 288 KiB of rows
        it = iter(digests)
        for first in range(0, count, 4096):
            k = min(4096, count - first)
            yield np.fromiter(((c, d.encode()) for c, d in islice(it, k)), DIGEST_ROW, k)
    return count, pages()


_PRINTABLE = np.zeros(256, dtype=bool)
_PRINTABLE[0x21:0x7f] = True  # what a digest (sha256 hex, or a marker such as "unread") is made of


def check_digests(rows: np.ndarray, first: int, last_chunk: int, field: str, what: str) -> None:
    """DIGEST_ROW rules on ``rows`` (row ``first`` of the list on): chunks ascending from above ``last_chunk``,
    each once, none negative; a digest of printable ASCII (a sha256 hex or a marker), NUL-padded."""
    chunks = rows["chunk"]
    prev = np.concatenate(([last_chunk], chunks[:-1]))
    bad_text = np.empty(rows.size, dtype=bool)
    for o in range(0, rows.size, 4096):  # a few hundred KB of temporaries at a time, whatever the page
        text = np.ascontiguousarray(rows["digest"][o:o + 4096]).view(np.uint8).reshape(-1, DIGEST_ROW["digest"].itemsize)
        nul = text == 0
        bad_text[o:o + 4096] = ~(_PRINTABLE[text[:, 0]] & (nul | _PRINTABLE[text]).all(axis=1)) | \
            (nul[:, :-1] & ~nul[:, 1:]).any(axis=1)
    _first_bad(field, first, [
        ("0", _ge(chunks, 0)),
        ("0", (chunks <= prev, "chunks go in ascending order, each once, and this one is not above the one before")),
        ("1", (bad_text, "a digest is 1-64 printable ASCII characters (a sha256 hex or a marker)"))], what)


def read_digests(pages: Iterable[np.ndarray], field: str = "digests", what: str = "malformed request") -> DigestSpool:
    """(chunk, digest) rows, checked page by page (MalformedRows naming ``field`` and the row), into a spool."""
    spool = DigestSpool()
    last = -1
    for rows in pages:
        if not rows.size:
            continue
        check_digests(rows, len(spool), last, field, what)
        spool.add_rows(rows)
        last = int(rows["chunk"][-1])
    return spool


def json_digests(pairs: Iterable[tuple[int, str]], field: str = "digests") -> DigestSpool:
    """The (small) JSON digests of a request, put in chunk order and checked as rows are."""
    ordered = sorted(pairs, key=lambda p: p[0])
    too_long = next((i for i, (_, d) in enumerate(ordered) if len(d.encode()) > DIGEST_ROW["digest"].itemsize), None)
    if too_long is not None:
        raise MalformedRows(f"malformed request: {field}.{too_long}.1: a digest is at most "
                            f"{DIGEST_ROW['digest'].itemsize} characters")
    rows = np.array([(c, d.encode()) for c, d in ordered], dtype=DIGEST_ROW)
    return read_digests([rows], field)
