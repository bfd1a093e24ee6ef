"""Where an image object lies on tape, and how a failed tape backup goes on.

The catalogue keeps a :class:`TapeLocation` per tape object (file number,
logical object of the first record, record count, record format), so a
restore can LOCATE the drive to the object and read whole records with 01h.

A tape cannot be rewritten in the middle: writing at a position erases
everything after it.  After a failure the job therefore either

* continues: LOCATE to the record after the last one the mover's COPY STATUS
  vouches for (segments processed, TRANSFER COUNT), erasing any record the
  mover wrote but never reported, and plans the rest from there; or
* restarts the object on a new position (the drive or medium failed): the
  partial records are left where they are but never catalogued, so no half
  object is ever visible as restorable.
"""
from __future__ import annotations

import bisect
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from orchestrator.ops import Batch, CopyResult, Failure, Piece, StoredPiece
from orchestrator.piece_stream import PieceStream
from orchestrator.plan.tape import TapeFormat, is_filemark
from scsi.sense import Sense, SenseError

log = logging.getLogger(__name__)

TAPE_PREFIX = "tape:"
DRIVE_FAULT_KEYS = {0x3: "MEDIUM ERROR", 0x4: "HARDWARE ERROR", 0xD: "VOLUME OVERFLOW", 0x7: "DATA PROTECT"}


class TapeLocation(BaseModel):
    """An object's place on a tape volume (what LOCATE and the restore plan need)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    volume: str = Field(min_length=1)
    drive: str = ""  # the drive that wrote it (a restart after a drive failure lands on another one)
    file_number: int | None = Field(None, ge=0, description="filemarks before the object's first record "
                                                              "(None: the drive could not say)")
    first_object: int = Field(ge=0, description="logical object identifier of the first record")
    records: int = Field(ge=0)
    record_bytes: int = Field(gt=0)
    fixed: bool = False
    block_length: int = Field(0, ge=0)

    @property
    def fmt(self) -> TapeFormat:
        return TapeFormat(self.record_bytes, self.fixed, self.block_length)

    @property
    def filemark_object(self) -> int:
        """The filemark closing the object."""
        return self.first_object + self.records

    @property
    def end_object(self) -> int:
        """The logical object right after the closing filemark (where the next object starts)."""
        return self.filemark_object + 1

    def encode(self) -> str:
        """A one-line text form for a catalogue column."""
        return TAPE_PREFIX + self.model_dump_json()

    @classmethod
    def decode(cls, text: str, where: str = "catalogue") -> TapeLocation:
        if not text.startswith(TAPE_PREFIX):
            raise ValueError(f"{where}: {text[:40]!r} is not a tape location (must start with {TAPE_PREFIX!r})")
        try:
            return cls.model_validate_json(text[len(TAPE_PREFIX):])
        except ValidationError as e:
            first = e.errors()[0]
            raise ValueError(f"{where}: bad tape location field {'.'.join(map(str, first['loc']))}: "
                             f"{first['msg']}") from None


def object_records(pieces: Sequence[Piece | StoredPiece], fmt: TapeFormat) -> int:
    """Records an object of ``pieces`` occupies (each piece starts a new record); a `PieceStream` is counted
    block by block with numpy."""
    if isinstance(pieces, PieceStream):
        return sum(int((-(-b.length // fmt.unit)).sum()) for b in pieces.blocks())
    return sum(fmt.records(p.length) for p in pieces)


def record_of(pieces: Sequence[Piece | StoredPiece], fmt: TapeFormat, image_offset: int) -> int:
    """The record number (from the object's first) at which ``image_offset`` starts; ValueError off a boundary.

    Pieces given as a `PieceStream` are counted block by block with numpy."""
    if isinstance(pieces, PieceStream):
        return _record_of_blocks(pieces, fmt, image_offset)
    n = 0
    for p in pieces:
        end = p.image_offset + p.length
        if image_offset >= end:
            n += fmt.records(p.length)
            continue
        inside = max(0, image_offset - p.image_offset)
        if inside % fmt.unit:
            raise ValueError(f"image offset {image_offset} falls inside a {fmt.unit}-byte tape record "
                             f"of the piece at {p.image_offset}")
        return n + inside // fmt.unit
    return n


def _record_of_blocks(stream: PieceStream, fmt: TapeFormat, image_offset: int) -> int:
    n = 0
    for b in stream.blocks():
        image = b.image_offsets()
        k = int(np.searchsorted(image + b.length, image_offset, "right"))  # pieces ending at or before it
        n += int((-(-b.length[:k] // fmt.unit)).sum())
        if k < len(b):
            inside = max(0, image_offset - int(image[k]))
            if inside % fmt.unit:
                raise ValueError(f"image offset {image_offset} falls inside a {fmt.unit}-byte tape record "
                                 f"of the piece at {int(image[k])}")
            return n + inside // fmt.unit
    return n


class RecordCursor:
    """Which piece of a tape object holds an image offset, and the record it starts at, for reads that mostly
    go forward (a LAN restore's GETs): one block of the object's map is held, the next read from
    ``block_at(k)`` (the k-th block, None past the last) when the reads pass it, and each block's first image
    offset and records before it are remembered, so a read back in the object loads one block again.
    No list of the object's pieces is held, and reads in image order cost a search in one block each."""

    def __init__(self, block_at: Callable[[int], Any], fmt: TapeFormat):
        self._block_at, self.fmt = block_at, fmt
        self._starts: list[int] = []  # first image offset of blocks 0..k seen
        self._before: list[int] = []  # records before each of them
        self._k, self._records = -1, 0  # the block held, and its records
        self._image = self._end = self._first = np.empty(0, np.int64)

    def _load(self, k: int) -> bool:
        b = self._block_at(k)
        if b is None or not len(b):
            return False
        image = b.image_offsets()
        records = -(-b.length // self.fmt.unit)
        if k == len(self._starts):
            self._starts.append(int(image[0]))
            self._before.append(0 if k == 0 else self._before[k - 1] + self._records)
        self._k, self._image, self._end = k, image, image + b.length
        self._first = np.concatenate(([0], np.cumsum(records[:-1]))) + self._before[k]
        self._records = int(records.sum())
        return True

    def piece(self, image_offset: int) -> tuple[int, int, int] | None:
        """(image offset, length, first record from the object's first) of the piece holding ``image_offset``;
        None when no piece does."""
        seen_further = self._k + 1 < len(self._starts) and image_offset >= self._starts[self._k + 1]
        if self._k < 0 or image_offset < int(self._image[0]) or seen_further:
            # to the last block seen that starts at or before it (the first block when none)
            if not self._load(max(0, bisect.bisect_right(self._starts, image_offset) - 1)):
                return None
        while image_offset >= int(self._end[-1]):
            if not self._load(self._k + 1):
                return None
        i = int(np.searchsorted(self._end, image_offset, "right"))
        if image_offset < int(self._image[i]):
            return None
        return int(self._image[i]), int(self._end[i] - self._image[i]), int(self._first[i])


@dataclass(frozen=True)
class OnTape:
    """What is known written: image bytes ``[start, image_offset)`` as records up to ``next_record``."""

    image_offset: int
    next_record: int
    closed: bool = False  # the closing filemark is on tape too


def known_on_tape(batches: Sequence[Batch], fmt: TapeFormat, cr: CopyResult,
                  bytes_in_failed_list: int | None = None) -> OnTape:
    """Image offset and record known on tape after ``cr`` (batches planned by plan_tape_batches).

    Whole batches and lists count as reported; of the list that failed,
    ``cr.segments_done`` segments (FAILED SEGMENT DETAILS / sense) and, when
    its COPY STATUS TRANSFER COUNT is known (``bytes_in_failed_list``), the
    whole records of the segment in flight.  Without either, only list
    boundaries are trusted (timeout, lost connection).
    """
    if not batches:
        return OnTape(0, 0, True)
    s0 = batches[0].lists[0].segments[0]
    pos = OnTape(s0.image_offset, s0.dst_lba)
    done_lists = [pl for b in batches[:cr.batches_done] for pl in b.lists]
    if cr.ok:
        done_lists = [pl for b in batches for pl in b.lists]
    elif cr.batches_done < len(batches):
        done_lists += list(batches[cr.batches_done].lists[:cr.lists_done])
    pos = _after_lists(done_lists, fmt, pos)
    if cr.ok or cr.batches_done >= len(batches) or cr.lists_done >= len(batches[cr.batches_done].lists):
        return pos
    failed = batches[cr.batches_done].lists[cr.lists_done].segments
    k = cr.segments_done or 0
    if bytes_in_failed_list is not None:  # COPY STATUS: whole segments by bytes, then whole records
        left = bytes_in_failed_list
        k = 0
        for s in failed:
            if is_filemark(s) or left < s.length:
                break
            left -= s.length
            k += 1
        pos = _after(failed[:k], fmt, pos)
        if k < len(failed) and not is_filemark(failed[k]):
            s = failed[k]
            whole = min(left // fmt.unit, fmt.records(s.length))
            if whole:
                pos = OnTape(s.image_offset + min(whole * fmt.unit, s.length), s.dst_lba + whole)
        return pos
    return _after(failed[:k], fmt, pos)


def _after_lists(lists, fmt: TapeFormat, pos: OnTape) -> OnTape:
    """`_after` every segment of ``lists``, reading only the last two segments of the last two lists: the
    position follows from the last data segment, and a closing filemark can only come after it."""
    for pl in lists[-2:]:
        segs = pl.segments
        pos = _after([segs[i] for i in range(max(0, len(segs) - 2), len(segs))], fmt, pos)
    return pos


def _after(segs, fmt: TapeFormat, pos: OnTape) -> OnTape:
    for s in segs:
        if is_filemark(s):
            pos = OnTape(pos.image_offset, pos.next_record, True)
        else:
            pos = OnTape(s.image_offset + s.length, s.dst_lba + fmt.records(s.length))
    return pos


@dataclass(frozen=True)
class TapeResume:
    """How a failed tape backup goes on (see the module doc)."""

    action: Literal["continue", "restart"]
    image_offset: int  # first image byte still to write
    next_record: int  # its record number, from the object's first record
    locate_to: int | None  # logical object to LOCATE to before writing (None: a new position)
    reason: str


def drive_fault(failure: Failure | None) -> str:
    """Why the tape drive or medium itself failed ("" when the failure lies elsewhere)."""
    if failure is None or failure.kind != "sense" or not failure.sense:
        return ""
    try:
        forwarded = Sense.decode(failure.sense).forwarded()
    except (SenseError, ValueError):  # garbled sense: not evidence of a drive fault
        return ""
    dest = forwarded.get("destination")
    if dest is not None:
        key = int(dest[1].key)
        if key in DRIVE_FAULT_KEYS:
            return f"tape drive reported {DRIVE_FAULT_KEYS[key]} ({dest[1]})"
    return ""


def resume_decision(first_object: int, on_tape: OnTape, failure: Failure | None, *,
                    drive_usable: bool = True) -> TapeResume:
    """Continue after ``on_tape`` on the same tape, or restart the object on a new position."""
    why = drive_fault(failure)
    if why or not drive_usable:
        reason = why or "the tape drive is no longer usable"
        log.warning("tape object restarts on a new position: %s", reason)
        return TapeResume("restart", 0, 0, None, f"{reason}: the object restarts on a new tape position; "
                          f"the {on_tape.next_record} partial record(s) are never catalogued")
    return TapeResume("continue", on_tape.image_offset, on_tape.next_record, first_object + on_tape.next_record,
                      f"continue after record {on_tape.next_record} known written (LOCATE to logical object "
                      f"{first_object + on_tape.next_record} erases anything after it)")
