"""`serverfree xcopy decode|encode`, `serverfree demo` listing: in-process and once as a real process."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

from orchestrator.cli import main
from orchestrator.cli.xcopy_cmd import demo_listing

ROOT = Path(__file__).resolve().parents[2]
TAPE = ROOT / "scenarios" / "samples" / "tape_mover.hex"
QEMU = ROOT / "scenarios" / "samples" / "qemu_lio.hex"
# Reference 1.5, by hand.
QEMU_HEX = ("01100040000000000000001c00000000"
            "e4000000010300106001405a112233445566778899aabbcc0000000000000200"
            "e4000000010300106001405b0102030405060708090a0b0c0000000000000200"
            "02000018000000010000008000000000000000000000000000001000")


def run(capsys, *argv):
    rc = main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


def test_decode_listing_from_hex_sample(capsys):
    rc, out, _ = run(capsys, "xcopy", "decode", str(TAPE))
    assert rc == 0
    assert "116 bytes" in out and "WWPN 21:00:00:e0:8b:05:05:04" in out and "LUN 5" in out
    assert "segment 0 @80: 00h block->stream from CSCD 0 to CSCD 1" in out
    assert "segment 1 @104: 10h write filemarks to CSCD 1" in out and "filemark count 1" in out


def test_decode_json_binary_file_and_encode_back(capsys, tmp_path):
    binary = tmp_path / "list.bin"
    binary.write_bytes(bytes.fromhex(QEMU_HEX))
    rc, out, _ = run(capsys, "xcopy", "decode", str(binary), "--json")
    assert rc == 0
    doc = json.loads(out)
    assert doc["header"] == {"list_id": 1, "str": False, "list_id_usage": 2, "priority": 0}
    assert doc["cscds"][0]["designator"] == "6001405a112233445566778899aabbcc"
    assert doc["cscds"][0]["block_length"] == 512 and doc["segments"][0]["dst_lba"] == 4096
    js = tmp_path / "list.json"
    js.write_text(out)
    rc, out, _ = run(capsys, "xcopy", "encode", str(js))
    assert rc == 0 and out.strip() == QEMU_HEX
    rc, _, _ = run(capsys, "xcopy", "encode", str(js), "-o", str(tmp_path / "out.bin"))
    assert rc == 0 and (tmp_path / "out.bin").read_bytes() == bytes.fromhex(QEMU_HEX)
    rc, _, _ = run(capsys, "xcopy", "encode", str(js), "-o", str(tmp_path / "out.hex"), "--hex")
    assert (tmp_path / "out.hex").read_text().strip() == QEMU_HEX


def test_decode_hex_argument(capsys):
    rc, out, _ = run(capsys, "xcopy", "decode", "--hex", QEMU_HEX)
    assert rc == 0 and "02h block->block from CSCD 0 to CSCD 1" in out and "block count 128" in out


@pytest.mark.parametrize("hex_text, fragments", [
    ("0102", ["shorter than the 16-byte header", "1Ah/00h"]),
    ("012", ["odd number of hex digits"]),
    ("01zz", ["'z' is not a hex digit"]),
    (QEMU_HEX[:-2], ["exceed the 107 bytes supplied", "1Ah/00h"]),
    (QEMU_HEX[:96] + "e5" + QEMU_HEX[98:], ["CSCD", "at byte 48", "E5h", "26h/07h"]),
    (QEMU_HEX[:160] + "05" + QEMU_HEX[162:], ["at byte 80", "05h", "26h/09h"]),
    (QEMU_HEX[:172] + "0002" + QEMU_HEX[176:], ["dst at byte 86", "names CSCD 2", "26h/00h"]),
])
def test_bad_input_is_one_clear_line(capsys, hex_text, fragments):
    rc, out, err = run(capsys, "xcopy", "decode", "--hex", hex_text)
    assert rc == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("serverfree: error: ") and "Traceback" not in err
    for fragment in fragments:
        assert fragment in err


def test_encode_errors(capsys, tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"cscds": [{"type_code": 228, "designator": "60zz"}]}')
    rc, _, err = run(capsys, "xcopy", "encode", str(bad))
    assert rc == 2 and "cscds.0.228.designator" in err and "'z'" in err and err.count("\n") == 1
    bad.write_text("{not json")
    rc, _, err = run(capsys, "xcopy", "encode", str(bad))
    assert rc == 2 and "not JSON" in err and "line 1" in err
    rc, _, err = run(capsys, "xcopy", "encode", str(tmp_path / "missing.json"))
    assert rc == 2 and "missing.json" in err


def test_demo_listing_and_demo_command(capsys):
    text = demo_listing()
    assert "tape_mover.hex" in text and "block->stream" in text and "write filemarks" in text
    # `serverfree demo` is now the main job (tests/scenarios/test_demo.py), no longer this listing


def test_real_process_decode_and_error():
    exe = Path(sys.executable).with_name("serverfree")
    if not exe.exists():
        pytest.skip(f"console script {exe} not installed (run ./dev setup)")
    ok = subprocess.run([str(exe), "xcopy", "decode", str(QEMU)], capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0 and "108 bytes" in ok.stdout
    bad = subprocess.run([str(exe), "xcopy", "decode", "--hex", "0102"], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr and "1Ah/00h" in bad.stderr
    piped = subprocess.run([str(exe), "xcopy", "decode", "--json"], input=TAPE.read_text(), capture_output=True,
                           text=True, timeout=60)
    assert piped.returncode == 0 and json.loads(piped.stdout)["header"]["list_id"] == 7


@pytest.mark.parametrize("stem, expected_hex", [
    ("qemu_lio", QEMU_HEX),
    ("tape_mover", "07010040000000000000002400000000"
                   "e00000000005000000000000" "50060b0000c26200" "0000000000000000" "00000200"
                   "e00100000000000000000000" "210000e08b050504" "0000000000000000" "00000000"
                   "00000014000000010001000000000080" "0000000000001000"
                   "100000080000000100000001"),
])
def test_bundled_json_samples_encode_to_the_hand_written_bytes(capsys, stem, expected_hex):
    rc, out, _ = run(capsys, "xcopy", "encode", str(ROOT / "scenarios" / "samples" / f"{stem}.json"))
    assert rc == 0 and out.strip() == expected_hex
