"""RECEIVE COPY RESULTS data-in the copy manager answers with.

Encoded with the shared declarations in :mod:`scsi.xcopy.results`, the same
ones the initiator side decodes with.
"""
from __future__ import annotations

from scsi.xcopy.results import (CopyManagerStatus, CopyStatus, FailedSegmentDetails, OperatingParameters,
                                ReceiveData)

IN_PROGRESS = int(CopyManagerStatus.IN_PROGRESS)
COMPLETED_OK = int(CopyManagerStatus.COMPLETED)
COMPLETED_ERROR = int(CopyManagerStatus.COMPLETED_WITH_ERROR)


def copy_status(state: int, segments: int, bytes_written: int, hdd: bool) -> bytes:
    return CopyStatus.for_bytes(bytes_written, status=CopyManagerStatus(state), hdd=hdd,
                                segments_processed=min(segments, 0xFFFF)).encode()


def receive_data(held: bytes) -> bytes:
    return ReceiveData(data=held.hex()).encode()


def failed_segment_details(status: int | None, sense: bytes) -> bytes:
    if status is None:
        return FailedSegmentDetails().encode()
    return FailedSegmentDetails(command_status=status, sense_data=sense.hex()).encode()


def operating_parameters(codes: list[int], **values: int | bool) -> bytes:
    return OperatingParameters(implemented_descriptors=tuple(codes), **values).encode()
