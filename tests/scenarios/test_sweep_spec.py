"""`--vary KEY=SPEC` and `--seeds`: values, runs, and one clear error naming the option."""
import pytest

from simulator.scenarios.sweep_spec import SweepSpecError, parse_vary, plan_runs, scenario_for, set_path

BASE = {"topology": "t.yaml", "seed": 7,
        "faults": [{"kind": "tape_error", "target": "DRV1", "at_percent": 50, "job": "C1:H:"}],
        "jobs": [{"backup": "C1:H:"}]}


def test_ranges_lists_and_single_values():
    assert parse_vary("faults.0.at_percent=0:100:25").values == (0, 25, 50, 75, 100)
    assert parse_vary("calibration.tape_native_mb_s=40:60:7.5").values == (40.0, 47.5, 55.0)
    assert parse_vary("faults.0.kind=tape_error,mover_hang").values == ("tape_error", "mover_hang")
    assert parse_vary("jobs.0.count=3").values == (3,)


def test_runs_are_combinations_times_seeds_numbered_in_order():
    runs = plan_runs(BASE, [parse_vary("faults.0.at_percent=10,90"), parse_vary("jobs.0.count=1,2")], seeds=2)
    assert len(runs) == 8 and [r.run for r in runs] == list(range(8))
    assert [r.seed for r in runs[:2]] == [7, 8]  # the scenario's seed, then the next
    assert runs[2].values == (("faults.0.at_percent", 10), ("jobs.0.count", 2))
    scen = scenario_for(BASE, runs[7].values)
    assert scen.faults[0].at_percent == 90 and scen.jobs[0].count == 2
    assert BASE["faults"][0]["at_percent"] == 50  # the base is not changed


@pytest.mark.parametrize("vary, words", [
    ("faults.0.at_percent=0:100:0", ["STEP > 0"]),
    ("faults.0.at_percent", ["KEY=SPEC"]),
    ("faults.3.at_s=1", ["faults has 1 item", "no item '3'"]),
    ("calibration.x.y=1", ["no section 'calibration'"]),
    ("faults.0.at_percent=150", ["faults.0.at_percent=150", "less than or equal to 100"]),
    ("jobs.0.count=many", ["jobs.0.count=many", "jobs.0.count"]),
])
def test_bad_vary_is_one_line_naming_it(vary, words):
    with pytest.raises(SweepSpecError) as e:
        plan_runs(BASE, [parse_vary(vary)], seeds=1)
    assert all(w in str(e.value) for w in words), str(e.value)
    assert "\n" not in str(e.value)


def test_seeds_must_be_positive_and_keys_distinct():
    with pytest.raises(SweepSpecError, match="--seeds 0"):
        plan_runs(BASE, [], seeds=0)
    with pytest.raises(SweepSpecError, match="twice"):
        plan_runs(BASE, [parse_vary("seed=1"), parse_vary("seed=2")], seeds=1)


def test_set_path_creates_a_missing_leaf_only():
    data = {"calibration": {}}
    set_path(data, "calibration.tape_native_mb_s", 80)
    assert data == {"calibration": {"tape_native_mb_s": 80}}
