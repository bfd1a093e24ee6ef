"""DeviceCheckCondition, iSCSI URL parsing and open_device dispatch (no device needed)."""
from __future__ import annotations

import pickle

import pytest
from pyscsi.pyscsi.scsi_sense import SCSICheckCondition

from scsi.devices import (ChapCredentials, DeviceCheckCondition, DeviceConnectionError, DeviceTimeout,
                          InProcessDevice, open_device, parse_iscsi_url)
from scsi.result import ScsiResult

# Fixed-format sense written by hand: ILLEGAL REQUEST, LBA OUT OF RANGE (21h/00h).
FIXED_LBA = bytes([0x70, 0, 0x05, 0, 0, 0, 0, 0x0A, 0, 0, 0, 0, 0x21, 0x00, 0, 0, 0, 0])
# Descriptor-format sense: COPY ABORTED (Ah), 0Dh/02h with no descriptors.
DESC_COPY = bytes([0x72, 0x0A, 0x0D, 0x02, 0, 0, 0, 0])


def test_fixed_sense_is_decoded_and_kept_raw():
    exc = DeviceCheckCondition(FIXED_LBA)
    assert isinstance(exc, SCSICheckCondition)
    assert exc.sense == FIXED_LBA
    assert (exc.sense_key, exc.asc, exc.ascq) == (0x05, 0x21, 0x00)
    assert exc.data["sense_key"] == 5  # pyscsi's own unmarshalled view
    assert "21h/00h" in str(exc) and "LOGICAL BLOCK ADDRESS OUT OF RANGE" in str(exc)


def test_descriptor_sense_does_not_break_pyscsi_view():
    exc = DeviceCheckCondition(DESC_COPY)
    assert (exc.sense_key, exc.asc, exc.ascq) == (0x0A, 0x0D, 0x02)
    assert "Copy Aborted" in str(exc)
    assert exc.sense == DESC_COPY


@pytest.mark.parametrize("sense", [b"", b"\x70", b"\x70\x00\x05", b"\x7f\x00\x00"])
def test_short_or_odd_sense_gives_a_message_not_a_crash(sense):
    text = str(DeviceCheckCondition(sense))
    assert text.startswith("CHECK CONDITION")


def test_check_condition_pickles_with_its_sense():
    exc = pickle.loads(pickle.dumps(DeviceCheckCondition(FIXED_LBA, cdb=b"\x88" + bytes(15))))
    assert exc.sense == FIXED_LBA and exc.cdb[0] == 0x88


def test_transport_errors_are_oserrors_the_cli_can_print():
    assert issubclass(DeviceConnectionError, OSError)
    assert issubclass(DeviceTimeout, OSError)
    assert not issubclass(DeviceCheckCondition, OSError)


def test_parse_iscsi_url_full():
    u = parse_iscsi_url("iscsi://bob%s3cr3t@10.0.0.5:3261/iqn.2026-11.org.x%3Adisk1/7")
    assert (u.host, u.port, u.target, u.lun) == ("10.0.0.5", 3261, "iqn.2026-11.org.x:disk1", 7)
    assert u.chap == ChapCredentials(username="bob", secret="s3cr3t")
    assert u.portal == "10.0.0.5:3261"
    assert "s3cr3t" not in u.display() and "s3cr3t" not in repr(u.chap)


def test_parse_iscsi_url_defaults_and_ipv6():
    u = parse_iscsi_url("iscsi://[::1]/iqn.a:b/0")
    assert u.port == 3260 and u.portal == "[::1]:3260" and u.chap is None


@pytest.mark.parametrize("url, words", [
    ("http://h/iqn.a:b/1", "must start with iscsi://"),
    ("iscsi://h/iqn.a:b", "path must be /<target-iqn>/<lun>"),
    ("iscsi://h/iqn.a:b/x", "LUN 'x' is not a number"),
    ("iscsi://h:70000/iqn.a:b/1", "bad port"),
    ("iscsi://user@h/iqn.a:b/1", "<user>%<password>@"),
    ("iscsi:///iqn.a:b/1", "missing host"),
])
def test_parse_iscsi_url_errors_name_the_problem(url, words):
    with pytest.raises(ValueError, match=words.replace("(", r"\(").replace(")", r"\)").replace("%", "%")):
        parse_iscsi_url(url)


def test_parse_iscsi_url_lun_range_checked():
    with pytest.raises(ValueError, match="lun"):
        parse_iscsi_url("iscsi://h/iqn.a:b/99999")


class _Echo:
    def execute(self, nexus, cdb, data_out, data_in_len):
        return ScsiResult(data=bytes(data_in_len))


def test_open_device_dispatch():
    assert isinstance(open_device(_Echo()), InProcessDevice)
    with pytest.raises(ValueError, match="expected an iscsi:// URL or a /dev/sg\\* path"):
        open_device("tape0")
    with pytest.raises(ValueError, match="not a URL, a path or a command handler"):
        open_device(42)
    with pytest.raises(DeviceConnectionError, match="cannot open SCSI generic device /dev/sg-nonexistent"):
        open_device("/dev/sg-nonexistent")
