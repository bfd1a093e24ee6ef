"""dsmc-style argument rewriting leaves short flag clusters alone; -v works after the subcommand."""
import pytest

from orchestrator.cli import build_parser, main, normalise_dsmc_args, total_verbosity

SENSE = "700005000000000a000000002600008000040000"


def test_short_flag_cluster_is_not_rewritten():
    assert normalise_dsmc_args(["-vv", "paths", "t.yaml"]) == ["-vv", "paths", "t.yaml"]


def test_real_long_options_are_rewritten_only():
    argv = ["restore", "image", "E:", "-incre", "-del", "-pitdate", "2026-11-30", "-mode=incremental",
            "-enableserverfree=yes", "-nosuchthing"]
    assert normalise_dsmc_args(argv) == [
        "restore", "image", "E:", "--incre", "--del", "--pitdate", "2026-11-30", "--mode=incremental",
        "--enableserverfree=yes", "-nosuchthing"]


def test_nothing_after_double_dash_is_rewritten():
    assert normalise_dsmc_args(["sense", "decode", "--", "-mode"]) == ["sense", "decode", "--", "-mode"]


@pytest.mark.parametrize("argv, level", [
    (["-vv", "sense", "decode", SENSE], 2),
    (["sense", "decode", SENSE, "-vv"], 2),
    (["sense", "-v", "decode", SENSE, "--verbose"], 2),
    (["-v", "backup", "image", "E:", "--site", "s.yaml", "-v", "-imagetype=static"], 2),
])
def test_verbose_counts_before_and_after_the_subcommand(argv, level):
    args = build_parser().parse_args(normalise_dsmc_args(argv))
    assert total_verbosity(args) == level


def test_main_accepts_vv_after_the_subcommand(capsys):
    assert main(["sense", "decode", SENSE, "-vv"]) == 0
    assert "ILLEGAL REQUEST" in capsys.readouterr().out
