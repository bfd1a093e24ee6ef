"""Decode errors that carry what a copy manager must answer.

Each :class:`ParameterListError` names the field, its byte offset in the
parameter list (and bit), and the ASC/ASCQ SPC-4 r36f 6.4.3-6.4.6 assigns (checked in the
order LIO and libiscsi's tests expect), so the copy manager turns it into sense with ``to_sense()``.
"""
from __future__ import annotations

from scsi.asc import asc_label
from scsi.layout import Layout, LayoutError
from scsi.sense import Sense, illegal_request

PARAMETER_LIST_LENGTH_ERROR = (0x1A, 0x00)
INVALID_FIELD_IN_PARAMETER_LIST = (0x26, 0x00)
TOO_MANY_TARGET_DESCRIPTORS = (0x26, 0x06)
UNSUPPORTED_TARGET_DESCRIPTOR_TYPE = (0x26, 0x07)
TOO_MANY_SEGMENT_DESCRIPTORS = (0x26, 0x08)
UNSUPPORTED_SEGMENT_DESCRIPTOR_TYPE = (0x26, 0x09)


class ParameterListError(LayoutError):
    """A bad EXTENDED COPY parameter list: where (offset, bit, field) and what to answer (asc, ascq)."""

    def __init__(self, message: str, *, asc_ascq: tuple[int, int] = INVALID_FIELD_IN_PARAMETER_LIST,
                 field: str | None = None, offset: int | None = None, bit: int | None = None,
                 layout: str | None = None, segment: int | None = None, cscd: int | None = None):
        super().__init__(message, field=field, offset=offset, bit=bit, layout=layout)
        self.asc, self.ascq = asc_ascq
        self.segment = segment
        self.cscd = cscd

    @property
    def asc_ascq(self) -> tuple[int, int]:
        return (self.asc, self.ascq)

    def describe(self) -> str:
        """The message plus the sense code a copy manager answers with."""
        return f"{self} -> ILLEGAL REQUEST {asc_label(self.asc, self.ascq)}"

    def to_sense(self) -> Sense:
        """ILLEGAL REQUEST sense; a field pointer for 26h/xx errors that know their byte."""
        pointer = self.offset if self.asc == 0x26 and self.offset is not None and self.offset <= 0xFFFF else None
        return illegal_request(self.asc, self.ascq, field=pointer, bit=self.bit if pointer is not None else None)

    @classmethod
    def from_layout(cls, err: LayoutError, asc_ascq: tuple[int, int] = INVALID_FIELD_IN_PARAMETER_LIST,
                    **kw) -> "ParameterListError":
        return cls(err.message, asc_ascq=asc_ascq, field=err.field, offset=err.offset, bit=err.bit,
                   layout=err.layout, **kw)

    @classmethod
    def at(cls, layout: Layout, name: str, base: int, message: str,
           asc_ascq: tuple[int, int] = INVALID_FIELD_IN_PARAMETER_LIST, **kw) -> "ParameterListError":
        """An error positioned at field ``name`` of ``layout`` placed at list offset ``base``."""
        return cls.from_layout(layout.error(name, message, base), asc_ascq, **kw)
