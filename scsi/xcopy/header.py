"""EXTENDED COPY (LID1) parameter list header, 16 bytes (SPC-4 r36f 6.5; fields in 6.4.3)."""
from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field as PField

from scsi.layout import Field, Layout, bits, flag, reserved

HEADER = Layout("header", 16, [
    Field("list_id", 0),
    reserved(1, bit=6, width=2),
    flag("str", 1, 5),
    bits("list_id_usage", 1, 3, 2),
    bits("priority", 1, 0, 3),
    Field("cscd_list_length", 2, size=2),
    reserved(4, 4),
    Field("segment_list_length", 8, size=4),
    Field("inline_data_length", 12, size=4),
])


class Header(BaseModel):
    """The caller-chosen part of the header; the three lengths are derived from the list."""

    model_config = ConfigDict(frozen=True, populate_by_name=True, extra="forbid")
    list_id: int = PField(default=0, ge=0, le=0xFF)
    str_: bool = PField(default=False, alias="str", description="sequential striped hint")
    list_id_usage: int = PField(default=0, ge=0, le=3, description="SPC-4 LIST ID USAGE; 10b == SPC-3 NRCR=1")
    priority: int = PField(default=0, ge=0, le=7)

    @property
    def nrcr(self) -> bool:
        """SPC-2/3 NO RECEIVE COPY RESULTS (bit 4 of byte 1)."""
        return bool(self.list_id_usage & 0b10)

    def encode(self, cscd_list_length: int, segment_list_length: int, inline_data_length: int) -> bytes:
        return HEADER.encode(list_id=self.list_id, str=int(self.str_), list_id_usage=self.list_id_usage,
                             priority=self.priority, cscd_list_length=cscd_list_length,
                             segment_list_length=segment_list_length, inline_data_length=inline_data_length)
