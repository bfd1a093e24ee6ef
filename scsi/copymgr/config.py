"""What a copy manager is configured with: limits, access control, FC map.

These are the numbers OPERATING PARAMETERS and VPD 8Fh report, so they are
validated once here (pydantic) and never invented elsewhere.
"""
from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator

CSCD_SIZE = 32
BLOCK_BLOCK_SEGMENT_SIZE = 28


class CopyLimits(BaseModel):
    """Limits reported by RECEIVE COPY RESULTS / OPERATING PARAMETERS and enforced on every list."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    max_cscds: int = Field(32, ge=1, le=0x7FF, description="MAXIMUM CSCD DESCRIPTOR COUNT")
    max_segments: int = Field(256, ge=1, le=0xFFFF, description="MAXIMUM SEGMENT DESCRIPTOR COUNT")
    max_descriptor_list_length: int = Field(8192, ge=60, le=0xFFFFFFFF,
                                            description="MAXIMUM DESCRIPTOR LIST LENGTH (T+S bytes)")
    max_segment_length: int = Field(1 << 28, ge=512, le=0xFFFFFFFF,
                                    description="bytes one segment may move")
    max_inline_length: int = Field(65536, ge=0, le=0xFFFFFFFF,
                                   description="inline data accepted (reported only with stream LUNs)")
    held_data_limit: int = Field(1 << 20, ge=0, le=0xFFFFFFFF,
                                 description="bytes of held data kept for RECEIVE DATA (0: no 0Bh-0Fh)")
    max_stream_transfer: int = Field(1 << 24, ge=1, le=0xFFFFFFFF,
                                     description="MAXIMUM STREAM DEVICE TRANSFER SIZE")
    total_concurrent_copies: int = Field(16, ge=1, le=0xFFFF)
    max_concurrent_copies: int = Field(8, ge=1, le=0xFF, description="per I_T nexus")
    data_segment_granularity: int = Field(0, ge=0, le=31, description="log2 bytes")
    inline_data_granularity: int = Field(0, ge=0, le=31, description="log2 bytes")
    held_data_granularity: int = Field(0, ge=0, le=31, description="log2 bytes")
    chunk_bytes: int = Field(2 << 20, ge=4096, le=1 << 26, description="bytes per read/write request")
    io_depth: int = Field(4, ge=1, le=64, description="chunks in flight per copy")
    io_workers: int = Field(8, ge=1, le=256, description="threads executing I/O requests")
    flush_behind_bytes: int = Field(64 << 20, ge=0, le=1 << 40,
                                    description="bytes written to a destination between background SYNCHRONIZE "
                                    "CACHE commands during a block copy (0: only the closing flush)")

    @model_validator(mode="after")
    def _lists_fit(self) -> "CopyLimits":
        # A list with one CSCD or one segment over either count must still fit (libiscsi DescrLimits).
        need = max((self.max_cscds + 1) * CSCD_SIZE + BLOCK_BLOCK_SEGMENT_SIZE,
                   CSCD_SIZE + (self.max_segments + 1) * BLOCK_BLOCK_SEGMENT_SIZE)
        if self.max_descriptor_list_length < need:
            raise ValueError(f"max_descriptor_list_length {self.max_descriptor_list_length} is below {need}, "
                             f"the size of a list one descriptor over max_cscds/max_segments")
        if self.total_concurrent_copies < self.max_concurrent_copies:
            raise ValueError("total_concurrent_copies must be at least max_concurrent_copies")
        return self


class MoverLimits(CopyLimits):
    """The limits of a real mover (``datamover serve``): a deeper queue by default.

    Its block copies adapt their depth to what the devices sustain, up to
    ``io_depth``.  The simulator's exact mode keeps CopyLimits' own 4 (its
    engine ends every batch at a barrier, and its timing tests assume that
    overlap); the fluid mode models this depth (``calibration.mover_io_depth``).
    """

    io_depth: int = Field(16, ge=1, le=64, description="most chunks in flight per copy (block copies adapt below it)")


class FcMapEntry(BaseModel):
    """A LUN reachable as FC port WWPN and/or N_Port_ID plus LU number (for E0h/E1h)."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    lun: str = Field(description="name of a configured LUN")
    lun_number: int = Field(0, ge=0, le=0x3FFF)
    wwpn: str | None = Field(None, description="16 hex digits, colons allowed")
    port_id: int | None = Field(None, ge=0, le=0xFFFFFF)

    @model_validator(mode="after")
    def _some_address(self) -> "FcMapEntry":
        if self.wwpn is None and self.port_id is None:
            raise ValueError(f"FC map entry for LUN {self.lun} needs a wwpn or a port_id")
        if self.wwpn is not None:
            digits = self.wwpn.lower().removeprefix("0x").replace(":", "")
            if len(digits) != 16 or any(c not in "0123456789abcdef" for c in digits):
                raise ValueError(f"wwpn {self.wwpn!r} is not 8 bytes of hex")
        return self

    def wwpn_bytes(self) -> bytes | None:
        if self.wwpn is None:
            return None
        return bytes.fromhex(self.wwpn.lower().removeprefix("0x").replace(":", ""))
