"""dsm.opt parsing, command-line overrides and per-volume resolution."""
from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.options import (
    DEFAULT_GAPSIZE_LAN,
    DEFAULT_GAPSIZE_SERVERFREE,
    ClientOptions,
    ImageType,
    Mode,
    OptionsError,
    load_options,
    parse_options,
    parse_size,
    parse_wait,
)
from orchestrator.options.values import format_size, parse_bool

DSM_OPT = """\
* serverfree client options
  * indented comment
NODENAME        client1
ENABLESERVERFREE yes
enablelanfree   Yes
domain.image    h: i:,j:
include.image   h: MYMC imagegapsize=1m
include.image   i: SF1 imagetype=static snapshotfsidlewait=500ms snapshotcachesize=40
exclude.image   j:
imagegapsize    64
compression     yes
encryptkey      save
snapshotfsidleretries 3
presnapshotcmd  "net stop mydb"
postsnapshotcmd 'net start mydb'
catalog         /var/lib/serverfree/cat.sqlite
tcpserveraddress 127.0.0.1
tcpport         1600
serverfreebatchsize 120
"""


def test_sizes_follow_tsm_units():
    assert parse_size("32k") == 32 * 1024
    assert parse_size("5m") == 5 * 1024 * 1024
    assert parse_size("1G") == 1024 ** 3
    assert parse_size("64") == 64 * 1024  # a bare number is kilobytes
    assert parse_size("0") == 0
    assert parse_size("4294967295") == 4294967295 * 1024
    for bad in ("4294967296", "-1", "5x", "", "k", "1.5m"):
        with pytest.raises(ValueError):
            parse_size(bad)


def test_waits_and_booleans():
    assert parse_wait("1") == 1.0
    assert parse_wait("500ms") == 0.5
    assert parse_wait("2s") == 2.0
    with pytest.raises(ValueError, match="out of range"):
        parse_wait("1000")
    assert parse_bool("YES") is True and parse_bool("no") is False
    with pytest.raises(ValueError, match="not yes or no"):
        parse_bool("maybe")
    assert format_size(5 * 1024 * 1024) == "5m" and format_size(1000) == "1000"


def test_defaults_are_the_documented_ones():
    opts = load_options()
    assert opts.enableserverfree is False
    assert opts.mode is Mode.SELECTIVE
    assert opts.compression is False and opts.encrypted is False
    assert opts.snapshotfsidlewait == 1.0
    assert opts.serverfreebatchsize == 80
    vol = opts.for_volume("h:")
    # reference 2.1: 32k for LAN and LAN-free, 5m for server-free (client guide)
    assert DEFAULT_GAPSIZE_LAN == 32 * 1024 and DEFAULT_GAPSIZE_SERVERFREE == 5 * 1024 * 1024
    assert vol.gap_size("lan") == vol.gap_size("lanfree") == 32 * 1024
    assert vol.gap_size("serverfree") == 5 * 1024 * 1024
    with pytest.raises(ValueError, match="unknown data path"):
        vol.gap_size("tape")  # type: ignore[arg-type]


def test_full_file_is_read(tmp_path: Path):
    path = tmp_path / "dsm.opt"
    path.write_text(DSM_OPT)
    opts = load_options(path)
    assert opts.nodename == "client1" and opts.node == "CLIENT1"
    assert opts.enableserverfree and opts.enablelanfree and opts.compression
    assert opts.encrypted and opts.encryptkey == "save"
    assert opts.domain_image == ["h:", "i:", "j:"]
    assert opts.imagegapsize == 64 * 1024
    assert opts.presnapshotcmd == "net stop mydb" and opts.postsnapshotcmd == "net start mydb"
    assert opts.catalog == "/var/lib/serverfree/cat.sqlite"
    assert opts.tcpport == 1600 and opts.serverfreebatchsize == 120
    assert opts.snapshotfsidleretries == 3
    assert opts.source_of("imagegapsize") == f"{path}:10"
    assert opts.source_of("mode") == "default"
    assert [r.kind for r in opts.rules()] == ["include", "include", "exclude"]


def test_per_volume_resolution():
    opts = parse_options(DSM_OPT)
    h = opts.for_volume("H:\\")  # case and trailing separator do not matter
    assert h.mgmtclass == "MYMC" and h.imagegapsize == 1024 * 1024 and h.in_domain
    assert h.included_by == "dsm.opt:7" and not h.excluded
    assert h.gap_size("serverfree") == h.gap_size("lan") == 1024 * 1024
    i = opts.for_volume("i:")
    assert i.mgmtclass == "SF1" and i.imagetype is ImageType.STATIC
    assert i.snapshotfsidlewait == 0.5 and i.snapshotcachesize == 40
    assert i.imagegapsize == 64 * 1024  # the file's global value
    j = opts.for_volume("j:")
    assert j.excluded and j.excluded_by == "dsm.opt:9" and j.mgmtclass == "DEFAULT"
    other = opts.for_volume("k:")
    assert not other.excluded and not other.in_domain and other.included_by is None
    assert other.compression and other.encrypted and other.enableserverfree


def test_last_matching_rule_wins_and_patterns_match():
    opts = parse_options("include.image /dev/sd* BIG\nexclude.image /dev/sdb1\ninclude.image /dev/sdb1 LAST\n")
    assert opts.for_volume("/dev/sdb1").mgmtclass == "LAST"
    assert opts.for_volume("/dev/sdc1").mgmtclass == "BIG"
    opts = parse_options("include.image /dev/sdb1 FIRST\nexclude.image /dev/sd*\n")
    assert opts.for_volume("/dev/sdb1").excluded


def test_command_line_beats_file_and_per_volume_values():
    opts = parse_options(DSM_OPT, overrides={"imagegapsize": "2m", "mode": "incremental", "compression": None})
    assert opts.mode is Mode.INCREMENTAL
    assert opts.source_of("mode") == "command line"
    assert opts.compression is True  # None overrides are ignored
    assert opts.for_volume("h:").imagegapsize == 2 * 1024 * 1024  # beats include.image imagegapsize=1m
    assert opts.for_volume("i:").imagetype is ImageType.STATIC  # untouched per-volume value stays


def test_command_line_list_options_use_argparse_spelling():
    opts = parse_options("", overrides={"include_image": "q: CLI imagegapsize=0", "domain_image": "q:"})
    q = opts.for_volume("q:")
    assert q.mgmtclass == "CLI" and q.imagegapsize == 0 and q.in_domain
    assert q.included_by == "command line"


@pytest.mark.parametrize("line, where, message", [
    ("enableservrfree yes", "enableservrfree", "did you mean enableserverfree"),
    ("imagegapsize 12x", "imagegapsize", "is not a size"),
    ("imagetype online", "imagetype", "not one of: static, snapshot, dynamic"),
    ("mode differential", "mode", "not one of: selective, incremental"),
    ("compression perhaps", "compression", "not yes or no"),
    ("snapshotcachesize 150", "snapshotcachesize", "out of range 1..100"),
    ("snapshotfsidlewait 5h", "snapshotfsidlewait", "not a wait time"),
    ("tcpport 70000", "tcpport", "out of range 1..65535"),
    ("serverfreebatchsize 5", "serverfreebatchsize", "out of range 10..1000"),
    ("encryptkey always", "encryptkey", "not one of: save, prompt, generate"),
    ("mode", "mode", "needs a value"),
    ("include.image", "include.image", "needs a volume"),
    ("include.image h: MC imagegapsize=huge", "include.image", "imagegapsize=huge"),
    ("include.image h: MC compression=yes", "include.image", "cannot be set per volume"),
    ("include.image h: MC stray", "include.image", "expected name=value"),
    ("exclude.image h: MC", "exclude.image", "takes only a volume pattern"),
    ("include.image 'h:", "include.image", "cannot split"),
    ("presnapshotcmd ''", "presnapshotcmd", "needs a value"),
])
def test_bad_lines_name_file_line_and_option(tmp_path: Path, line: str, where: str, message: str):
    path = tmp_path / "dsm.opt"
    path.write_text(f"* header\nnodename n1\n{line}\n")
    with pytest.raises(OptionsError) as err:
        load_options(path)
    text = str(err.value)
    assert text.startswith(f"{path}:3: {where}:"), text
    assert message in text
    assert err.value.where == f"{path}:3"


def test_bad_override_names_the_command_line():
    with pytest.raises(OptionsError, match=r"^command line: imagegapsize: '1q' is not a size"):
        parse_options("", overrides={"imagegapsize": "1q"})
    with pytest.raises(OptionsError, match=r"^command line: bogus: unknown option"):
        parse_options("", overrides={"bogus": "1"})


def test_binary_file_is_refused_with_its_line(tmp_path: Path):
    path = tmp_path / "dsm.opt"
    path.write_bytes(b"nodename n1\nmode \xff\xfe\n")
    with pytest.raises(OptionsError, match=r"dsm.opt:2: not a text file \(byte 17 is not UTF-8\)"):
        load_options(path)


def test_missing_file_is_an_os_error(tmp_path: Path):
    with pytest.raises(OSError):
        load_options(tmp_path / "absent.opt")


def test_later_scalar_line_overrides_earlier_one():
    opts = parse_options("mode incremental\nMODE selective\n")
    assert opts.mode is Mode.SELECTIVE and opts.source_of("mode") == "dsm.opt:2"


def test_model_rejects_values_outside_ranges_directly():
    with pytest.raises(ValueError):
        ClientOptions(snapshotcachesize=0)
    with pytest.raises(ValueError):
        ClientOptions(unknown_field=1)  # type: ignore[call-arg]
    with pytest.raises(ValueError, match="volume name is empty"):
        ClientOptions().for_volume("  ")


def test_argparse_helpers_accept_dsmc_spelling(tmp_path: Path):
    import argparse

    from orchestrator.cli import normalise_dsmc_args
    from orchestrator.options import add_option_arguments, options_from_args

    opt = tmp_path / "dsm.opt"
    opt.write_text("mode incremental\ncatalogue /tmp/c.sqlite\n")
    parser = argparse.ArgumentParser()
    add_option_arguments(parser)
    args = parser.parse_args(normalise_dsmc_args([f"-optfile={opt}", "-imagegapsize=64k", "--compression", "yes"]))
    opts = options_from_args(args)
    assert opts.imagegapsize == 64 * 1024 and opts.compression and opts.mode is Mode.INCREMENTAL
    assert opts.catalog == "/tmp/c.sqlite"
    assert opts.source_of("compression") == "command line" and opts.source_of("mode") == f"{opt}:1"
    bad = parser.parse_args(["--tcpport", "http"])
    with pytest.raises(OptionsError, match="command line: tcpport: 'http' is not a whole number"):
        options_from_args(bad)
    with pytest.raises(ValueError, match="not command-line options"):
        add_option_arguments(argparse.ArgumentParser(), ("include.image",))


def test_windows_volume_names_keep_their_backslashes():
    opts = parse_options('include.image m:\\mnt\\myntfs MYMC\ninclude.image "C:\\Program Files" PF\n'
                         'domain.image m:\\mnt\\myntfs\n')
    assert [r.pattern for r in opts.include_image] == ["m:\\mnt\\myntfs", "C:\\Program Files"]
    assert opts.for_volume("M:\\MNT\\MYNTFS\\").mgmtclass == "MYMC"
    assert opts.for_volume("m:\\mnt\\myntfs").in_domain
    assert opts.for_volume("c:\\program files").mgmtclass == "PF"
