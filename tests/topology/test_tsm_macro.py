"""TSM macro import: merged definitions drive the verdicts; bad lines are named."""
import pytest

from topology.errors import TopologyError
from topology.load import load_topology
from topology.tsm_macro import merge_macro_text, merge_macros, parse_macro
from topology.verify import verify


@pytest.fixture
def fabric(topologies):
    return load_topology(topologies / "tsm-fabric.yaml", check=False)


@pytest.fixture
def macro_text(topologies):
    return (topologies / "tsm-server.mac").read_text()


def test_shipped_macro_completes_the_fabric(topologies, fabric):
    topo = merge_macros(fabric, [topologies / "tsm-server.mac"])
    mover = topo.datamovers[0]
    assert (mover.name, mover.ports[0].wwpn, mover.serial, mover.online) == (
        "DM1", "21:00:00:e0:8b:05:05:04", "SDG1-0001", True)
    assert topo.libraries[0].drives[0].wwpn == "50:05:07:63:00:00:00:01"
    assert topo.stgpools[0].non_blocked and topo.devclasses[0].library == "LIB1"
    assert [(p.source, p.destination, p.desttype, p.lun) for p in topo.tsm_paths] == [
        ("DM1", "DISK_H", "DISK", 5), ("DM1", "DRV1", "DRIVE", 7)]
    v = verify(topo).volumes[0]
    assert v.path == "server-free" and v.components[1:] == ["DM1", "DRV1"]


def test_update_takes_a_mover_offline(fabric, macro_text):
    topo = merge_macro_text(fabric, macro_text + "\nupdate datamover DM1 online=no\n")
    assert verify(topo).volumes[0].reason.message == "data mover DM1 is offline"


def test_offline_server_path_is_the_reason(fabric, macro_text):
    topo = merge_macro_text(fabric, macro_text + "update path DM1 DRV1 srctype=datamover desttype=drive online=no\n")
    v = verify(topo).volumes[0]
    assert v.reason.rule == "no-server-path"
    assert v.reason.message == "the server has no online DEFINE PATH from data mover DM1 to drive DRV1"


def test_missing_disk_path_is_the_reason(fabric, macro_text):
    text = "\n".join(line for line in macro_text.splitlines() if "desttype=disk" not in line)
    v = verify(merge_macro_text(fabric, text)).volumes[0]
    assert v.reason.message == ("the server has no online DEFINE PATH from data mover DM1 to the disk of volume "
                                "CLIENT1:H: (LUN 600a0b800000000000000000000000a5:5)")


def test_nonblock_pool_from_native_macro(fabric, macro_text):
    topo = merge_macro_text(fabric, macro_text.replace("dataformat=nonblock maxscratch", "dataformat=native maxscratch"))
    assert verify(topo).volumes[0].reason.rule == "pool-not-nonblock"


def test_unknown_command_and_parameter_reported_with_lines():
    with pytest.raises(TopologyError) as exc:
        parse_macro("define datamover DM1 type=scsi wwn=2100000e08b050504\nfrobnicate all\n"
                    "define drive LIB1 DRV1 colour=blue\n", file="m.mac")
    e = exc.value
    assert e.file == "m.mac" and e.location == "line 2" and "unknown command 'frobnicate'" in str(e)
    assert e.problems == ["line 2: unknown command 'frobnicate'",
                          "line 3: unknown parameter COLOUR= for DEFINE DRIVE"]


def test_abbreviations_follow_tsm_capitals():
    (st,) = parse_macro("DEF DATAM DM1 T=SCSI SER=X ONL=No WWN=2100000e08b050504")
    assert (st.verb, st.noun, st.params) == ("DEFINE", "DATAMOVER",
                                             {"TYPE": "SCSI", "SERIAL": "X", "ONLINE": "No",
                                              "WWN": "2100000e08b050504"})
    with pytest.raises(TopologyError, match="unknown command DEFINE DA"):
        parse_macro("define da DM1")  # below the minimum abbreviation DATAM


def test_continuation_and_comments_keep_line_numbers():
    with pytest.raises(TopologyError) as exc:
        parse_macro("/* a\n comment */\ndefine library LIB1 -\n   libtype=scsi bogus=1\n")
    assert exc.value.location == "line 3"


def test_bad_value_names_its_line(fabric):
    with pytest.raises(TopologyError) as exc:
        merge_macro_text(fabric, "define datamover DM9 type=scsi wwn=21:00:00:e0:8b:05:05:zz\n", file="m.mac")
    assert exc.value.location == "line 1" and "'z' is not a hex digit" in str(exc.value)


def test_nas_mover_is_refused(fabric):
    with pytest.raises(TopologyError, match="TYPE=NAS is not supported: server-free needs TYPE=SCSI"):
        merge_macro_text(fabric, "define datamover NAS1 type=nas hladdress=1.2.3.4\n")


def test_dataformat_cannot_be_updated(fabric, macro_text):
    with pytest.raises(TopologyError, match="DATAFORMAT cannot be changed with UPDATE STGPOOL"):
        merge_macro_text(fabric, macro_text + "update stgpool SFPOOL dataformat=native\n")


def test_reference_errors_after_merge_are_reported(fabric):
    with pytest.raises(TopologyError) as exc:
        merge_macro_text(fabric, "define datamover DM1 type=scsi wwn=21:00:00:e0:8b:05:05:04\n")
    # The fabric cables the tape drive's port, but no macro line defined the drive.
    assert exc.value.location == "links[4].a"
    assert "after merging: WWPN 50:05:07:63:00:00:00:01 is not a port of any host" in str(exc.value)


SEVEN_MISTAKES = """\
define datamover DM1 type=scsi wwn=zz:00:00:e0:8b:05:05:04 serial=SDG1-0001 dataformat=nonblock online=yes
define disk CLIENT1 DISK_H wwn=600a0b80000000000000000000000 serial=ARR1-0005
define path DM9 DISK_H srctype=datamover desttype=disk node=CLIENT1 lun=5
define drive LIB9 DRV1 element=256 wwn=50:05:07:63:00:00:00:0Q serial=LTO1-0001
define path DM1 DRV1 srctype=datamover desttype=drive library=LIB1 lun=abc
def devc LTOCLASS devtype=floppy
define stgpool SFPOOL NOCLASS dataformat=nonblock maxscratch=-20
"""


def test_every_mistake_of_a_macro_is_reported_on_one_line_each(fabric):
    with pytest.raises(TopologyError) as info:
        merge_macro_text(fabric, SEVEN_MISTAKES, file="seven.mac")
    problems = info.value.problems
    assert [p.split(":")[0] for p in problems] == [f"line {n}" for n in range(1, 8)], problems
    for p in problems:
        assert "\n" not in p and "pydantic" not in p and "http" not in p, p
    assert "wwpn: malformed WWPN 'zz:00:00:e0:8b:05:05:04'" in problems[0]
    assert "no data mover DM9 is defined" in problems[2]
    assert "DEVTYPE=floppy is not a TSM device type" in problems[5]
    assert "device class NOCLASS is not defined" in problems[6]


def _without_disk_luns(topologies):
    topo = load_topology(topologies / "tape-and-disk-pools.yaml", check=False)
    for pool in topo.stgpools:
        pool.disk_luns = []
    return topo


@pytest.mark.parametrize("line", [
    "define volume DISKPOOL /tsm/pool/vol1.dsm formatsize=102400 designator=600a0b800000000000000000000000b1",
    "DEFine VOLume diskpool POOLARR:1 ACCess=READWrite",
    "def vol DISKPOOL /dev/sdq capacity=100g designator=naa.600a0b800000000000000000000000b1",
])
def test_define_volume_gives_the_disk_pool_its_lun(topologies, line):
    """The backup server's DEFINE VOLUME spelling (DESIGNATOR=, CAPACITY=) or TSM's, naming the LUN."""
    want = [(v.volume, v.path, v.components) for v in verify(load_topology(topologies /
                                                                           "tape-and-disk-pools.yaml")).volumes]
    bare = _without_disk_luns(topologies)
    topo = merge_macro_text(bare, line + "\n")
    assert [p.disk_luns for p in topo.stgpools if p.name == "DISKPOOL"][0] in (
        ["600a0b800000000000000000000000b1"], ["POOLARR:1"])
    got = [(v.volume, v.path, v.components) for v in verify(topo).volumes]
    assert got == want and any("POOLARR:1" in c for _, _, comps in got for c in comps), got


def test_define_volume_mistakes_are_named_by_line(topologies):
    bare = _without_disk_luns(topologies)
    with pytest.raises(TopologyError) as exc:
        merge_macro_text(bare, "define volume NOPOOL ARR1:5\n"
                               "define volume TAPEPOOL ARR1:5\n"
                               "define volume DISKPOOL /tsm/vol1.dsm\n"
                               "define volume DISKPOOL /tsm/vol1.dsm designator=12zz\n", file="m.mac")
    text = "\n".join(exc.value.problems)
    assert "line 1: DEFINE VOLUME: storage pool NOPOOL is not defined" in text
    assert "line 2: DEFINE VOLUME: storage pool TAPEPOOL is a LTO pool" in text
    assert "line 3: DEFINE VOLUME: volume /tsm/vol1.dsm: give DESIGNATOR=" in text
    assert "line 4: DEFINE VOLUME: " in text and "12zz" in text
    with pytest.raises(TopologyError) as exc:
        parse_macro("define volume DISKPOOL /tsm/v.dsm colour=red\n", file="m.mac")
    assert "line 1: unknown parameter COLOUR= for DEFINE VOLUME" in "\n".join(exc.value.problems)


def test_define_volume_of_a_tape_pool_names_its_drive(topologies):
    """The backup server's cartridge spelling (DRIVE=) is one parser with `paths --macro`: accepted for a drive of
    the pool's library, refused with one line otherwise; it changes no verdict."""
    topo = load_topology(topologies / "tape-and-disk-pools.yaml")
    lib = next(d for d in topo.devclasses if d.library)
    pool = next(p for p in topo.stgpools if p.devclass.upper() == lib.name.upper())
    drive = next(x for x in topo.libraries if x.name.upper() == lib.library.upper()).drives[0].name
    want = [(v.volume, v.path) for v in verify(topo).volumes]
    merged = merge_macro_text(topo, f"define volume {pool.name} VOL001 drive={drive}\n")
    assert [(v.volume, v.path) for v in verify(merged).volumes] == want
    with pytest.raises(TopologyError) as exc:
        merge_macro_text(topo, f"define volume {pool.name} VOL002 drive=NODRIVE\n", file="m.mac")
    assert f"line 1: DEFINE VOLUME: DRIVE=NODRIVE: not a drive of the library of tape pool {pool.name}" in \
        "\n".join(exc.value.problems)
