"""`serverfree sense decode HEX`."""
import json

from orchestrator.cli import main


def run(capsys, *argv):
    rc = main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


def test_field_pointer_sense(capsys):
    rc, out, _ = run(capsys, "sense", "decode", "70 00 05 00 00 00 00 0A 00 00 00 00 26 09 00 80 00 30")
    assert rc == 0
    assert "5h ILLEGAL REQUEST" in out and "26h/09h UNSUPPORTED SEGMENT DESCRIPTOR TYPE CODE" in out
    assert "field pointer: parameter list byte 48" in out


def test_copy_aborted_segment_pointer(capsys):
    rc, out, _ = run(capsys, "sense", "decode", "70:00:0a:00:00:00:00:0a:00:00:00:03:0d:02:00:af:00:54")
    assert rc == 0 and "COPY ABORTED" in out and "COPY TARGET DEVICE NOT REACHABLE" in out
    assert "segment:       3" in out and "byte 84 bit 7 of the failing segment descriptor" in out


def test_json(capsys):
    rc, out, _ = run(capsys, "sense", "decode", "--json", "720526000000000802060000c00002 00".replace(" ", ""))
    doc = json.loads(out)
    assert rc == 0 and doc["key"] == 5 and doc["asc"] == 0x26 and doc["sks"]["in_cdb"] is True
    assert doc["asc_name"] == "INVALID FIELD IN PARAMETER LIST" and doc["key_name"] == "ILLEGAL REQUEST"


def test_bad_sense_hex(capsys):
    for argv, fragment in ((["7000a"], "odd number"), (["7f00"], "unknown response code 7Fh"),
                           (["70 00 05"], "at least 8 bytes"), (["zz"], "'z' is not a hex digit")):
        rc, out, err = run(capsys, "sense", "decode", *argv)
        assert rc == 2 and fragment in err and err.count("\n") == 1 and "Traceback" not in err
