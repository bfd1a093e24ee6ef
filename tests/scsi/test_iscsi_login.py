"""PDU layouts, text keys and the login state machine, without sockets."""
from __future__ import annotations

import asyncio

import pytest

from scsi.iscsi.chap import ChapSecrets, chap_response, decode_binary
from scsi.iscsi.login import Login, LoginStatus
from scsi.iscsi.node import TargetNode
from scsi.iscsi.pdu import (LAYOUTS, Op, PduError, decode_lun, encode_lun, make, parse_header, read_pdu)
from scsi.iscsi.textkeys import (SessionParams, TargetLimits, TextError, encode_pairs, negotiate_operational,
                                 parse_pairs)
from scsi.result import ScsiResult

TARGET = "iqn.2026-11.org.serverfree:dm1"
INITIATOR = "iqn.2026-11.org.serverfree:host1"


class Null:
    def execute(self, nexus, cdb, data_out, n):
        return ScsiResult()


def test_every_layout_is_48_bytes_and_round_trips():
    for op, layout in LAYOUTS.items():
        assert layout.size == 48
    pdu = make(Op.SCSI_CMD, b"abc", final=1, write=1, lun=encode_lun(3), itt=7, edtl=512, cmdsn=9,
               cdb=b"\x2a".ljust(16, b"\0"))
    wire = pdu.encode()
    assert len(wire) == 48 + 4 and wire[0] == 0x01 and wire[1] == 0xA0 and wire[5:8] == b"\0\0\3"
    back = parse_header(wire[:48])
    assert (back["itt"], back["edtl"], back["cmdsn"], decode_lun(back["lun"])) == (7, 512, 9, 3)


def test_lun_field_encoding():
    assert encode_lun(5)[:2] == b"\x00\x05" and decode_lun(encode_lun(300)) == 300
    assert decode_lun(bytes([0x80, 1, 0, 0, 0, 0, 0, 0])) == 0xFFFFFFFF  # unsupported addressing


def test_target_opcode_from_initiator_is_rejected_as_unsupported():
    with pytest.raises(PduError) as e:
        parse_header(bytes([0x21]) + bytes(47))
    assert e.value.reason == 0x05 and not e.value.fatal


def test_read_pdu_refuses_oversized_data_segment():
    async def go():
        r = asyncio.StreamReader()
        r.feed_data(bytes([0x01, 0x80, 0, 0, 0, 0x10, 0, 0]) + bytes(40))
        await read_pdu(r, 8192)
    with pytest.raises(PduError) as e:
        asyncio.run(go())
    assert e.value.fatal and "bytes 5-7" in str(e.value)


def test_text_pairs_and_errors():
    data = encode_pairs([("A", "1"), ("B", "x=y")])
    assert parse_pairs(data) == [("A", "1"), ("B", "x=y")]
    with pytest.raises(TextError, match="byte 0"):
        parse_pairs(b"novalue\0")
    with pytest.raises(TextError, match="UTF-8"):
        parse_pairs(b"A=\xff\0")


def test_negotiation_rules():
    params = SessionParams()
    limits = TargetLimits(max_burst_length=65536, first_burst_length=8192)
    answers = dict(negotiate_operational(
        [("MaxBurstLength", "262144"), ("FirstBurstLength", "4096"), ("InitialR2T", "No"),
         ("ImmediateData", "Yes"), ("MaxRecvDataSegmentLength", "4096"), ("X-Vendor", "1"),
         ("HeaderDigest", "CRC32C,None"), ("ErrorRecoveryLevel", "2")], params, limits, False))
    assert answers["MaxBurstLength"] == "65536" and answers["FirstBurstLength"] == "4096"
    assert answers["InitialR2T"] == "No" and answers["ImmediateData"] == "Yes"
    assert answers["X-Vendor"] == "NotUnderstood" and answers["HeaderDigest"] == "CRC32C"  # first we support
    assert params.header_digest == "CRC32C" and params.data_digest == "None"
    assert answers["ErrorRecoveryLevel"] == "0"
    assert params.max_recv_data_segment_length == 4096 and "MaxRecvDataSegmentLength" not in answers
    with pytest.raises(TextError, match="MaxBurstLength"):
        negotiate_operational([("MaxBurstLength", "abc")], SessionParams(), limits, False)
    assert negotiate_operational([("DataDigest", "None,CRC32C")], SessionParams(), limits, False) == \
        [("DataDigest", "None")]  # the initiator's order is its preference
    assert negotiate_operational([("DataDigest", "MD5,X")], SessionParams(), limits, False) == \
        [("DataDigest", "Reject")]


def _login(node: TargetNode | None = None) -> Login:
    node = node or TargetNode(TARGET, Null())
    return Login(lookup=lambda n: node if n == node.name else None, new_tsih=lambda: 42)


def _wire(pdu):
    """What the target would read: the PDU through encode and parse_header."""
    back = parse_header(pdu.encode()[:48])
    back.data = pdu.data
    return back


def _req(keys, csg=0, nsg=1, transit=True, **kw):
    return _wire(make(Op.LOGIN_REQ, encode_pairs(keys), immediate=1, transit=int(transit), csg=csg,
                      nsg=nsg if transit else 0, isid=b"\x80\1\2\3\4\5", itt=1, cmdsn=5, **kw))


def test_login_without_auth_reaches_full_feature_phase():
    login = _login()
    r1 = login.step(_req([("InitiatorName", INITIATOR), ("TargetName", TARGET), ("AuthMethod", "None")]))
    assert r1["status_class"] == 0 and r1["transit"] and r1["nsg"] == 1
    keys = dict(parse_pairs(r1.data))
    assert keys["AuthMethod"] == "None" and keys["TargetPortalGroupTag"] == "1"
    r2 = login.step(_req([("MaxRecvDataSegmentLength", "65536")], csg=1, nsg=3))
    assert login.complete and r2["tsih"] == 42 and r2["statsn"] == r1["statsn"] + 1
    assert r2["expcmdsn"] == 5 and "MaxRecvDataSegmentLength" in dict(parse_pairs(r2.data))


@pytest.mark.parametrize("keys, status", [
    ([("TargetName", TARGET)], LoginStatus.MISSING_PARAMETER),
    ([("InitiatorName", INITIATOR), ("TargetName", "iqn.2026-11.org.x:nope")], LoginStatus.NOT_FOUND),
    ([("InitiatorName", INITIATOR)], LoginStatus.MISSING_PARAMETER),
    ([("InitiatorName", INITIATOR), ("SessionType", "Weird")], LoginStatus.SESSION_TYPE_UNSUPPORTED),
])
def test_login_refusals(keys, status):
    login = _login()
    r = login.step(_req(keys))
    assert login.failed and (r["status_class"] << 8 | r["status_detail"]) == status


def test_acl_refusal_is_authorization_failure():
    node = TargetNode(TARGET, Null(), allows=lambda ini: False)
    login = _login(node)
    r = login.step(_req([("InitiatorName", INITIATOR), ("TargetName", TARGET)]))
    assert (r["status_class"], r["status_detail"]) == (2, 2)


def _chap_login(secrets: ChapSecrets, user: str, secret: str, mutual: tuple[int, bytes] | None = None):
    node = TargetNode(TARGET, Null(), chap_for=lambda ini: secrets)
    login = _login(node)
    r = login.step(_req([("InitiatorName", INITIATOR), ("TargetName", TARGET), ("AuthMethod", "CHAP,None")],
                        transit=False))
    assert dict(parse_pairs(r.data))["AuthMethod"] == "CHAP"
    r = login.step(_req([("CHAP_A", "5")], transit=False))
    got = dict(parse_pairs(r.data))
    resp = chap_response(int(got["CHAP_I"]), secret.encode(), decode_binary("C", got["CHAP_C"]))
    keys = [("CHAP_N", user), ("CHAP_R", "0x" + resp.hex())]
    if mutual:
        keys += [("CHAP_I", str(mutual[0])), ("CHAP_C", "0x" + mutual[1].hex())]
    return login, login.step(_req(keys))


def test_chap_one_way_good_and_bad():
    s = ChapSecrets("alice", "alicesecret12")
    login, r = _chap_login(s, "alice", "alicesecret12")
    assert not login.failed and r["transit"] and r["nsg"] == 1
    login, r = _chap_login(s, "alice", "wrongsecret12")
    assert login.failed and (r["status_class"], r["status_detail"]) == (2, 1)


def test_chap_mutual_answers_with_target_secret():
    s = ChapSecrets("alice", "alicesecret12", "dm1", "targetsecret1")
    challenge = b"\x11" * 16
    login, r = _chap_login(s, "alice", "alicesecret12", (9, challenge))
    got = dict(parse_pairs(r.data))
    assert got["CHAP_N"] == "dm1"
    assert decode_binary("R", got["CHAP_R"]) == chap_response(9, b"targetsecret1", challenge)
    login, r = _chap_login(s, "alice", "alicesecret12")  # mutual required, initiator did not ask
    assert login.failed


def test_skipping_security_when_chap_is_required_fails():
    node = TargetNode(TARGET, Null(), chap_for=lambda ini: ChapSecrets("a", "secretsecret"))
    login = _login(node)
    r = login.step(_req([("InitiatorName", INITIATOR), ("TargetName", TARGET)], csg=1, nsg=3))
    assert login.failed and r["status_detail"] == 1


def test_non_login_pdu_during_login_fails_cleanly():
    login = _login()
    r = login.step(_wire(make(Op.NOP_OUT, itt=1)))
    assert login.failed and r["status_class"] == 2


def test_chap_required_but_no_auth_method_offered():
    node = TargetNode(TARGET, Null(), chap_for=lambda ini: ChapSecrets("a", "secretsecret"))
    login = _login(node)
    r = login.step(_req([("InitiatorName", INITIATOR), ("TargetName", TARGET)]))
    assert login.failed and (r["status_class"], r["status_detail"]) == (2, 1)
