"""EXTENDED COPY (LID1) parameter lists: one declaration per layout, decode and encode from it."""
from scsi.xcopy.cscd import (CSCD_CLASSES, Cscd, CscdBase, FcPortIdCscd, FcPortIdNameCscd, FcPortNameCscd,
                             IdentificationCscd, lu_identifier_for)
from scsi.xcopy.errors import ParameterListError
from scsi.xcopy.header import Header
from scsi.xcopy.param_list import DecodeLimits, ParameterList
from scsi.xcopy.cdb import EXTENDED_COPY_CDB, RECEIVE_COPY_RESULTS_CDB, RcrServiceAction
from scsi.xcopy.results import (CopyManagerStatus, CopyStatus, FailedSegmentDetails, OperatingParameters,
                                ReceiveData, ResultDecodeError)
from scsi.xcopy.segments import (SEGMENT_CLASSES, BlockOffsetToBlockOffset, BlockToBlock, BlockToStream,
                                 InlineToStream, Segment, SegmentBase, StreamToBlock, StreamToDiscard,
                                 StreamToStream, VerifyCscd, WriteFilemarks)

__all__ = [
    "CSCD_CLASSES", "Cscd", "CscdBase", "FcPortIdCscd", "FcPortIdNameCscd", "FcPortNameCscd",
    "IdentificationCscd", "lu_identifier_for", "ParameterListError", "Header", "DecodeLimits",
    "ParameterList", "SEGMENT_CLASSES", "BlockOffsetToBlockOffset", "BlockToBlock", "BlockToStream",
    "InlineToStream", "Segment", "SegmentBase", "StreamToBlock", "StreamToDiscard", "StreamToStream",
    "VerifyCscd", "WriteFilemarks", "EXTENDED_COPY_CDB", "RECEIVE_COPY_RESULTS_CDB", "RcrServiceAction",
    "CopyManagerStatus", "CopyStatus", "FailedSegmentDetails", "OperatingParameters", "ReceiveData",
    "ResultDecodeError",
]
