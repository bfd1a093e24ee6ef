"""RECEIVE COPY RESULTS data-in (SPC-4 r36f 6.21-6.23, 6.25), declared once for both sides.

The initiator decodes what a copy manager answered; the copy manager encodes
its answers with the very same layouts.  Answers may be cut short by the
ALLOCATION LENGTH, so decoders accept truncation past the fixed part.
"""
from __future__ import annotations

from enum import IntEnum

from pydantic import BaseModel, ConfigDict, Field as PField

from scsi.layout import Field, Layout, LayoutError, bits, flag, reserved
from scsi.sense import Sense, SenseError
from scsi.xcopy.hexfield import Hex


class ResultDecodeError(LayoutError):
    """RECEIVE COPY RESULTS data that cannot be decoded."""


class CopyManagerStatus(IntEnum):
    IN_PROGRESS = 0x00
    COMPLETED = 0x01
    COMPLETED_WITH_ERROR = 0x02


TRANSFER_UNITS = {0: "bytes", 1: "KiB", 2: "MiB", 3: "GiB", 4: "TiB", 5: "PiB", 6: "EiB"}

COPY_STATUS = Layout("COPY STATUS data", 12, [
    Field("available_data", 0, size=4),
    flag("hdd", 4, 7), bits("copy_manager_status", 4, 0, 7),
    Field("segments_processed", 5, size=2),
    Field("transfer_count_units", 7),
    Field("transfer_count", 8, size=4),
])

OPERATING_PARAMETERS = Layout("OPERATING PARAMETERS data", 44, [
    Field("available_data", 0, size=4),
    reserved(4, bit=1, width=7), flag("snlid", 4, 0), reserved(5, 3),
    Field("max_cscd_count", 8, size=2),
    Field("max_segment_count", 10, size=2),
    Field("max_descriptor_list_length", 12, size=4),
    Field("max_segment_length", 16, size=4),
    Field("max_inline_data_length", 20, size=4),
    Field("held_data_limit", 24, size=4),
    Field("max_stream_device_transfer_size", 28, size=4),
    reserved(32, 2),
    Field("total_concurrent_copies", 34, size=2),
    Field("max_concurrent_copies", 36),
    Field("data_segment_granularity", 37),
    Field("inline_data_granularity", 38),
    Field("held_data_granularity", 39),
    reserved(40, 3),
    Field("implemented_descriptor_list_length", 43),
])

FAILED_SEGMENT_DETAILS = Layout("FAILED SEGMENT DETAILS data", 60, [
    Field("available_data", 0, size=4),
    reserved(4, 52),
    Field("command_status", 56),
    reserved(57),
    Field("sense_length", 58, size=2),
])

RECEIVE_DATA = Layout("RECEIVE DATA header", 4, [Field("available_data", 0, size=4)])


def _error(layout: Layout, name: str, message: str) -> ResultDecodeError:
    e = layout.error(name, message)
    return ResultDecodeError(message, field=e.field, offset=e.offset, bit=e.bit, layout=e.layout)


def _need(layout: Layout, data: bytes) -> dict:
    if len(data) < layout.size:
        raise ResultDecodeError(f"needs {layout.size} bytes, only {len(data)} returned (allocation length?)",
                                field="available_data", offset=len(data), layout=layout.name)
    return layout.decode(data[:layout.size], strict=False)


class CopyStatus(BaseModel):
    """SA 00h: progress or outcome of one list identifier."""

    model_config = ConfigDict(frozen=True)
    status: CopyManagerStatus = CopyManagerStatus.IN_PROGRESS
    hdd: bool = False
    segments_processed: int = PField(default=0, ge=0, le=0xFFFF)
    transfer_count: int = PField(default=0, ge=0, le=0xFFFFFFFF)
    transfer_count_units: int = PField(default=0, ge=0, le=6)

    @property
    def bytes_transferred(self) -> int:
        return self.transfer_count << (10 * self.transfer_count_units)

    @classmethod
    def for_bytes(cls, nbytes: int, **kw) -> "CopyStatus":
        """The finest unit in which ``nbytes`` fits the 32-bit count (rounded down, as progress is)."""
        units = 0
        while nbytes >> (10 * units) > 0xFFFFFFFF:
            units += 1
        return cls(transfer_count=nbytes >> (10 * units), transfer_count_units=units, **kw)

    def encode(self) -> bytes:
        return COPY_STATUS.encode(available_data=8, hdd=int(self.hdd), copy_manager_status=int(self.status),
                                  segments_processed=self.segments_processed,
                                  transfer_count_units=self.transfer_count_units, transfer_count=self.transfer_count)

    @classmethod
    def decode(cls, data: bytes) -> "CopyStatus":
        v = _need(COPY_STATUS, bytes(data))
        if v["available_data"] < 8:
            raise ResultDecodeError(f"AVAILABLE DATA is {v['available_data']}, COPY STATUS needs 8",
                                    field="available_data", offset=0, layout=COPY_STATUS.name)
        try:
            status = CopyManagerStatus(v["copy_manager_status"])
        except ValueError:
            raise _error(COPY_STATUS, "copy_manager_status", f"unknown status {v['copy_manager_status']:02X}h") from None
        if v["transfer_count_units"] not in TRANSFER_UNITS:
            raise _error(COPY_STATUS, "transfer_count_units", f"unknown unit code {v['transfer_count_units']:02X}h")
        return cls(status=status, hdd=bool(v["hdd"]), segments_processed=v["segments_processed"],
                   transfer_count=v["transfer_count"], transfer_count_units=v["transfer_count_units"])


class OperatingParameters(BaseModel):
    """SA 03h: what the copy manager accepts (limits the planner must respect)."""

    model_config = ConfigDict(frozen=True)
    snlid: bool = False
    max_cscd_count: int = PField(default=2, ge=0, le=0xFFFF)
    max_segment_count: int = PField(default=1, ge=0, le=0xFFFF)
    max_descriptor_list_length: int = PField(default=1024, ge=0, le=0xFFFFFFFF)
    max_segment_length: int = PField(default=0, ge=0, le=0xFFFFFFFF)
    max_inline_data_length: int = PField(default=0, ge=0, le=0xFFFFFFFF)
    held_data_limit: int = PField(default=0, ge=0, le=0xFFFFFFFF)
    max_stream_device_transfer_size: int = PField(default=0, ge=0, le=0xFFFFFFFF)
    total_concurrent_copies: int = PField(default=1, ge=0, le=0xFFFF)
    max_concurrent_copies: int = PField(default=1, ge=0, le=0xFF)
    data_segment_granularity: int = PField(default=0, ge=0, le=0xFF, description="log2 bytes")
    inline_data_granularity: int = PField(default=0, ge=0, le=0xFF, description="log2 bytes")
    held_data_granularity: int = PField(default=0, ge=0, le=0xFF, description="log2 bytes")
    implemented_descriptors: tuple[int, ...] = ()

    def supports(self, code: int) -> bool:
        return code in self.implemented_descriptors

    def encode(self) -> bytes:
        codes = bytes(sorted(self.implemented_descriptors))
        if len(codes) > 0xFF:
            raise _error(OPERATING_PARAMETERS, "implemented_descriptor_list_length", f"{len(codes)} codes exceed 255")
        values = self.model_dump(exclude={"implemented_descriptors"})
        values["snlid"] = int(values["snlid"])
        head = OPERATING_PARAMETERS.encode(values, available_data=40 + len(codes),
                                           implemented_descriptor_list_length=len(codes))
        return head + codes

    @classmethod
    def decode(cls, data: bytes) -> "OperatingParameters":
        data = bytes(data)
        v = _need(OPERATING_PARAMETERS, data)
        if v["available_data"] < 40:
            raise ResultDecodeError(f"AVAILABLE DATA is {v['available_data']}, OPERATING PARAMETERS needs 40",
                                    field="available_data", offset=0, layout=OPERATING_PARAMETERS.name)
        n = v.pop("implemented_descriptor_list_length")
        v.pop("available_data")
        codes = data[44:44 + n]  # may be cut short by the allocation length
        v["snlid"] = bool(v["snlid"])
        return cls(implemented_descriptors=tuple(codes), **v)


class FailedSegmentDetails(BaseModel):
    """SA 04h: the status and sense the failed EXTENDED COPY ended with (``sense`` None: nothing to report)."""

    model_config = ConfigDict(frozen=True)
    command_status: int = PField(default=0, ge=0, le=0xFF)
    sense_data: Hex = ""

    @property
    def sense(self) -> Sense | None:
        return Sense.decode(bytes.fromhex(self.sense_data)) if self.sense_data else None

    def encode(self) -> bytes:
        sense = bytes.fromhex(self.sense_data)
        if not sense and not self.command_status:
            return (0).to_bytes(4, "big")
        return FAILED_SEGMENT_DETAILS.encode(available_data=56 + len(sense), command_status=self.command_status,
                                             sense_length=len(sense)) + sense

    @classmethod
    def decode(cls, data: bytes) -> "FailedSegmentDetails":
        data = bytes(data)
        if len(data) >= 4 and int.from_bytes(data[:4], "big") == 0:
            return cls()
        v = _need(FAILED_SEGMENT_DETAILS, data)
        sense = data[60:60 + v["sense_length"]]
        if sense:
            try:
                Sense.decode(sense)
            except SenseError as err:
                raise ResultDecodeError(f"sense data does not decode: {err}", field="sense data",
                                        offset=60 + (err.offset or 0), layout=FAILED_SEGMENT_DETAILS.name) from None
        return cls(command_status=v["command_status"], sense_data=sense.hex())


class ReceiveData(BaseModel):
    """SA 01h: held data from 0Bh-0Fh segments, oldest first."""

    model_config = ConfigDict(frozen=True)
    data: Hex = ""
    available: int | None = None  # AVAILABLE DATA when more was held than returned (truncated answer)

    def encode(self) -> bytes:
        body = bytes.fromhex(self.data)
        return RECEIVE_DATA.encode(available_data=len(body)) + body

    @classmethod
    def decode(cls, data: bytes) -> "ReceiveData":
        data = bytes(data)
        v = _need(RECEIVE_DATA, data)
        body = data[4:4 + v["available_data"]]
        return cls(data=body.hex(), available=v["available_data"] if len(body) < v["available_data"] else None)
