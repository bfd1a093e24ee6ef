"""The EXTENDED COPY copy manager engine (sans-I/O core + threaded driver)."""
from scsi.copymgr.config import CopyLimits, FcMapEntry
from scsi.copymgr.engine import CopyEngine, Progress, Step
from scsi.copymgr.errors import CopyAborted, CopyError, IllegalRequest
from scsi.copymgr.io import IoRequest, IoResult
from scsi.copymgr.threaded import ThreadedDriver
from scsi.copymgr.manager import CopyJob, CopyManager

__all__ = ["CopyAborted", "CopyEngine", "CopyError", "CopyJob", "CopyLimits", "CopyManager", "FcMapEntry",
           "IllegalRequest", "IoRequest", "IoResult", "Progress", "Step", "ThreadedDriver"]
