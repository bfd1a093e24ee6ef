"""`serverfree image analyze`: what a storage engineer sees, and what a machine reads."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

import orchestrator.cli as cli
from orchestrator.volume import read_used_extents


@pytest.fixture
def serverfree(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]):  # type: ignore[no-untyped-def]
    """Run the real CLI entry point with only this subcommand registered (other modules may be mid-work)."""
    monkeypatch.setattr(cli, "COMMAND_MODULES", ["orchestrator.cli.image_cmd"])

    def run(*argv: str) -> tuple[int, str, str]:
        code = cli.main(list(argv))
        out, err = capsys.readouterr()
        return code, out, err

    return run


def test_image_command_is_registered():
    assert "orchestrator.cli.image_cmd" in cli.COMMAND_MODULES


def test_text_report_for_ntfs(serverfree, bundled_image: Path):
    layout = read_used_extents(bundled_image)
    code, out, err = serverfree("image", "analyze", str(bundled_image))
    assert code == 0, err
    assert "file system   NTFS, cluster size 4096 bytes" in out
    assert f"used clusters {layout.used_clusters} of {layout.total_clusters}" in out
    table = out.split("bytes to move\n", 1)[1].split("\n\n", 1)[0]
    lines = {line.split()[0]: line for line in table.splitlines()}
    assert set(lines) == {"server-free", "LAN-free", "LAN"}
    assert lines["server-free"].split()[1] == "5m"
    assert lines["LAN-free"].split()[1] == "32k" and lines["LAN"].split()[1] == "32k"
    assert lines["LAN"].split()[2] == str(layout.extents(32 * 1024).shape[0])
    assert "server-free eligible: no" in out and "enableserverfree is no" in out


def test_dsmc_style_gap_and_json(serverfree, bundled_image: Path):
    code, out, err = serverfree("image", "analyze", str(bundled_image), "-imagegapsize=4k", "--json")
    assert code == 0, err
    report = json.loads(out)
    expected = read_used_extents(bundled_image).extents(4096).tolist()
    assert report["filesystem"] == "ntfs" and report["cluster_size"] == 4096
    for plan in report["paths"]:
        assert plan["imagegapsize"] == 4096
        assert plan["extents"] == expected
        assert plan["bytes_to_move"] == sum(n for _, n in expected)
    assert report["eligibility"]["serverfree"] is False


def test_options_file_sets_eligibility_class_and_per_volume_gap(serverfree, bundled_image: Path, tmp_path: Path):
    opt = tmp_path / "dsm.opt"
    opt.write_text(f"enableserverfree yes\nimagetype static\ninclude.image {bundled_image} SFPOOLMC imagegapsize=0\n")
    code, out, err = serverfree("image", "analyze", str(bundled_image), "-optfile=" + str(opt), "--json")
    assert code == 0, err
    report = json.loads(out)
    assert report["eligibility"]["serverfree"] is True and report["mgmtclass"] == "SFPOOLMC"
    assert report["whole_volume_copied"] is True
    size = bundled_image.stat().st_size
    assert all(p["extents"] == [[0, size]] for p in report["paths"])  # imagegapsize 0: every block


def test_fat_volume_is_refused_for_server_free(serverfree, fat_image, tmp_path: Path):
    opt = tmp_path / "dsm.opt"
    opt.write_text("enableserverfree yes\n")
    code, out, _ = serverfree("image", "analyze", str(fat_image("fat32")), "--options", str(opt))
    assert code == 0
    assert "file system   FAT32" in out
    assert "server-free eligible: no" in out and "FAT and FAT32 file systems are not supported" in out
    assert "imagegapsize applies to NTFS only" in out


@pytest.mark.parametrize("args, message", [
    (["-imagegapsize=12x"], "command line: imagegapsize: '12x' is not a size"),
    (["--options", "{missing}"], "No such file or directory"),
    (["--options", "{bad}"], "dsm.opt:2: compression: 'sometimes' is not yes or no"),
])
def test_bad_input_is_one_clear_line(serverfree, bundled_image: Path, tmp_path: Path,  # type: ignore[no-untyped-def]
                                     args, message):
    bad = tmp_path / "dsm.opt"
    bad.write_text("* opts\ncompression sometimes\n")
    args = [a.format(missing=tmp_path / "none.opt", bad=bad) for a in args]
    code, out, err = serverfree("image", "analyze", str(bundled_image), *args)
    assert code == 2 and out == ""
    assert err.startswith("serverfree: error: ") and message in err
    assert len(err.strip().splitlines()) == 1


def test_damaged_volume_is_one_clear_line(serverfree, bundled_image: Path, tmp_path: Path):
    cut = tmp_path / "cut.img"
    cut.write_bytes(bundled_image.read_bytes()[: 2 * 1024 * 1024])
    code, _, err = serverfree("image", "analyze", str(cut))
    assert code == 2
    assert f"serverfree: error: {cut}: NTFS boot sector (byte 40) says" in err and "truncated image?" in err
    code, _, err = serverfree("image", "analyze", str(tmp_path / "absent.img"))
    assert code == 2 and "no such volume image or device" in err
