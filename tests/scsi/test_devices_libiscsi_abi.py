"""The cffi (ABI mode) declarations must match libiscsi's C headers byte for byte."""
from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from scsi.devices import libiscsi_ffi as L

HEADER = "/usr/include/iscsi/scsi-lowlevel.h"
FIELDS = {
    "struct scsi_task": ["status", "cdb_size", "xfer_dir", "expxferlen", "cdb", "residual_status",
                         "residual", "sense", "datain", "mem", "ptr", "itt", "cmdsn", "lun",
                         "iovector_in", "iovector_out"],
    "struct scsi_sense": ["error_type", "key", "ascq", "bit_pointer", "field_pointer"],
    "struct scsi_data": ["size", "data"],
    "struct iscsi_data": ["size", "data"],
    "struct scsi_iovector": ["iov", "niov", "nalloc", "offset", "consumed"],
}
ENUMS = ["ISCSI_SESSION_NORMAL", "ISCSI_HEADER_DIGEST_NONE_CRC32C", "SCSI_XFER_NONE", "SCSI_XFER_READ",
         "SCSI_XFER_WRITE", "SCSI_STATUS_GOOD", "SCSI_STATUS_CHECK_CONDITION", "SCSI_STATUS_CANCELLED",
         "SCSI_STATUS_ERROR", "SCSI_STATUS_TIMEOUT"]


def test_library_loads():
    assert L.available(), "libiscsi7 is installed by ./dev setup; it must load"
    assert L.lib().iscsi_create_context is not None


def test_layouts_and_enums_match_the_headers(tmp_path):
    # A layout mismatch is memory corruption, so this never skips: ./dev installs gcc and libiscsi-dev.
    cc = shutil.which("cc") or shutil.which("gcc")
    assert cc is not None, "no C compiler: run ./dev setup (installs gcc, libc6-dev)"
    assert os.path.exists(HEADER), f"{HEADER} missing: run ./dev setup (installs libiscsi-dev)"
    lines = ["#include <stdio.h>", "#include <stddef.h>", "#include <iscsi/iscsi.h>",
             "#include <iscsi/scsi-lowlevel.h>", "int main(void) {"]
    for struct, fields in FIELDS.items():
        key = struct.split()[1]
        lines.append(f'printf("sizeof {key} %zu\\n", sizeof({struct}));')
        lines += [f'printf("{key} {f} %zu\\n", offsetof({struct}, {f}));' for f in fields]
    lines += [f'printf("enum {e} %ld\\n", (long){e});' for e in ENUMS]
    lines.append("return 0; }")
    (tmp_path / "p.c").write_text("\n".join(lines))
    subprocess.run([cc, "-o", str(tmp_path / "p"), str(tmp_path / "p.c")], check=True)
    out = subprocess.run([str(tmp_path / "p")], capture_output=True, text=True, check=True).stdout
    checked = 0
    for line in out.splitlines():
        kind, name, value = line.split()
        if kind == "enum":
            assert getattr(L, name) == int(value), name
        elif kind == "sizeof":
            assert L.ffi.sizeof(f"struct {name}") == int(value), name
        else:
            assert L.ffi.offsetof(f"struct {kind}", name) == int(value), f"{kind}.{name}"
        checked += 1
    assert checked == sum(len(f) + 1 for f in FIELDS.values()) + len(ENUMS)
