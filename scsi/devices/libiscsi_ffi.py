"""cffi (ABI mode) declarations for the part of libiscsi we use.

Only what the initiator needs is declared, copied in shape from Debian's
``/usr/include/iscsi/iscsi.h`` and ``scsi-lowlevel.h`` (libiscsi 1.19, soname
``libiscsi.so.7``).  ABI mode needs no compiler at install time; the struct
layouts below are checked against the C headers by a test that compiles a tiny
``offsetof`` probe where a C compiler exists.
"""
from __future__ import annotations

import ctypes.util
import logging
import threading

from cffi import FFI

log = logging.getLogger(__name__)

CDEF = """
struct iscsi_context;

struct iscsi_data {
    size_t size;
    unsigned char *data;
};

struct scsi_sense {
    unsigned char error_type;
    int key;                       /* enum scsi_sense_key */
    int ascq;
    unsigned sense_specific:1;
    unsigned ill_param_in_cdb:1;
    unsigned bit_pointer_valid:1;
    unsigned char bit_pointer;
    uint16_t field_pointer;
};

struct scsi_data {
    int size;
    unsigned char *data;
};

struct scsi_iovec {
    void *iov_base;
    size_t iov_len;
};

struct scsi_iovector {
    struct scsi_iovec *iov;
    int niov;
    int nalloc;
    size_t offset;
    int consumed;
};

struct scsi_task {
    int status;
    int cdb_size;
    int xfer_dir;
    int expxferlen;
    unsigned char cdb[16];
    int residual_status;           /* enum scsi_residual */
    size_t residual;
    struct scsi_sense sense;
    struct scsi_data datain;
    void *mem;                     /* struct scsi_allocated_memory * */
    void *ptr;
    uint32_t itt;
    uint32_t cmdsn;
    uint32_t lun;
    struct scsi_iovector iovector_in;
    struct scsi_iovector iovector_out;
};

typedef void (*iscsi_command_cb)(struct iscsi_context *iscsi, int status,
                                 void *command_data, void *private_data);

struct iscsi_context *iscsi_create_context(const char *initiator_name);
int iscsi_destroy_context(struct iscsi_context *iscsi);
int iscsi_set_targetname(struct iscsi_context *iscsi, const char *targetname);
int iscsi_set_session_type(struct iscsi_context *iscsi, int session_type);
int iscsi_set_header_digest(struct iscsi_context *iscsi, int header_digest);
int iscsi_set_initiator_username_pwd(struct iscsi_context *iscsi, const char *user, const char *passwd);
int iscsi_set_target_username_pwd(struct iscsi_context *iscsi, const char *user, const char *passwd);
int iscsi_set_timeout(struct iscsi_context *iscsi, int timeout);
void iscsi_set_noautoreconnect(struct iscsi_context *iscsi, int state);
void iscsi_set_reconnect_max_retries(struct iscsi_context *iscsi, int count);
int iscsi_full_connect_sync(struct iscsi_context *iscsi, const char *portal, int lun);
int iscsi_is_logged_in(struct iscsi_context *iscsi);
int iscsi_logout_sync(struct iscsi_context *iscsi);
int iscsi_disconnect(struct iscsi_context *iscsi);
const char *iscsi_get_error(struct iscsi_context *iscsi);

int iscsi_get_fd(struct iscsi_context *iscsi);
int iscsi_which_events(struct iscsi_context *iscsi);
int iscsi_service(struct iscsi_context *iscsi, int revents);
int iscsi_queue_length(struct iscsi_context *iscsi);
int iscsi_out_queue_length(struct iscsi_context *iscsi);

struct scsi_task *scsi_create_task(int cdb_size, unsigned char *cdb, int xfer_dir, int expxferlen);
void scsi_free_scsi_task(struct scsi_task *task);
struct scsi_task *iscsi_scsi_command_sync(struct iscsi_context *iscsi, int lun,
                                          struct scsi_task *task, struct iscsi_data *data);
int iscsi_scsi_command_async(struct iscsi_context *iscsi, int lun, struct scsi_task *task,
                             iscsi_command_cb cb, struct iscsi_data *data, void *private_data);
struct scsi_task *iscsi_read16_iov_task(struct iscsi_context *iscsi, int lun, uint64_t lba,
                                        uint32_t datalen, int blocksize, int rdprotect, int dpo, int fua,
                                        int fua_nv, int group_number, iscsi_command_cb cb, void *private_data,
                                        struct scsi_iovec *iov, int niov);
struct scsi_task *iscsi_write16_iov_task(struct iscsi_context *iscsi, int lun, uint64_t lba,
                                         unsigned char *data, uint32_t datalen, int blocksize, int wrprotect,
                                         int dpo, int fua, int fua_nv, int group_number, iscsi_command_cb cb,
                                         void *private_data, struct scsi_iovec *iov, int niov);
int iscsi_scsi_cancel_task(struct iscsi_context *iscsi, struct scsi_task *task);
void iscsi_scsi_cancel_all_tasks(struct iscsi_context *iscsi);
"""

# enum values from the headers
ISCSI_SESSION_NORMAL = 2
ISCSI_HEADER_DIGEST_NONE = 0
ISCSI_HEADER_DIGEST_NONE_CRC32C = 1
ISCSI_HEADER_DIGEST_CRC32C_NONE = 2
ISCSI_HEADER_DIGEST_CRC32C = 3
SCSI_XFER_NONE = 0
SCSI_XFER_READ = 1
SCSI_XFER_WRITE = 2
SCSI_STATUS_GOOD = 0
SCSI_STATUS_CHECK_CONDITION = 2
SCSI_STATUS_CANCELLED = 0x0F000000
SCSI_STATUS_ERROR = 0x0F000001
SCSI_STATUS_TIMEOUT = 0x0F000002

SONAMES = ("libiscsi.so.7", "libiscsi.so")

ffi = FFI()
ffi.cdef(CDEF)

_lib = None
_lock = threading.Lock()


class LibiscsiMissing(OSError):
    """libiscsi could not be loaded (the Debian package libiscsi7 is not installed)."""


def lib():
    """The loaded libiscsi (loaded once, on first use, so importing never fails)."""
    global _lib
    with _lock:
        if _lib is None:
            errors = []
            names = list(SONAMES)
            found = ctypes.util.find_library("iscsi")
            if found and found not in names:
                names.append(found)
            for name in names:
                try:
                    _lib = ffi.dlopen(name)
                    log.debug("loaded %s", name)
                    break
                except OSError as exc:
                    errors.append(f"{name}: {exc}")
            if _lib is None:
                raise LibiscsiMissing("cannot load libiscsi (install the Debian package libiscsi7): "
                                      + "; ".join(errors))
        return _lib


def available() -> bool:
    try:
        lib()
    except LibiscsiMissing:
        return False
    return True
