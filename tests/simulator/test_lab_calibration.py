"""The lab's calibration reproduces the copy it was calibrated on.

benchmarks/bench_paths_real.py probes each device alone (the client LUN's reads, the pool LUN's writes,
at depth 1 and at the mover's depth) and the mover's own copy of the volume through both, then writes a
scenario the simulator composes as max(read stream, write stream, mover rate + list handshakes).  On the
lab every probe is bound by the same shared CPU (tgtd's one event loop serves both LUNs), so a device
probed alone can come out slower than the mover's copy through it; left as probed, that figure set the
predicted copy (quiet machine: copy predicted 2.49 s, measured 1.89 s).  No timing here: fixed rates
(one real run's, 2026-12-05 23:11 UTC, load 2.35-2.88) go through the derivation and the simulator.
"""
import math

import pytest

from tests.fixtures.sanlab_calibration import at_least_the_copy, device_model, lab_calibration, predict, write_scenario

MB, MIB = 1_000_000, 1 << 20
CHUNK, DEPTH = MIB, 16
# as bench_paths_real measured them (bytes/s; the pool's queued writes probed below the mover's copy)
RATES = {"depth": DEPTH, "chunk": CHUNK, "max_transfer": 0, "optimal_transfer": 0,
         "disk_read_1": 702.6 * MB, "disk_read_q": 1269.7 * MB, "pool_write_1": 170.3 * MB,
         "pool_write_q": 232.6 * MB, "mover_command_s": 0.00144, "mover_copy": 280.7 * MB, "verify": 1628.3 * MB}


def stream_bytes_s(mb_s: float, command_ms: float) -> float:
    """The simulator's stream at the mover's depth: 1/B + L/(d*chunk) seconds per byte."""
    return 1 / (1 / (mb_s * MB) + command_ms / 1000 / (DEPTH * CHUNK))


def test_the_scenario_predicts_the_copy_probe_it_was_calibrated_on(tmp_path):
    volume = 1024 * MIB  # the probe copies the whole volume, one extent, in lists of --batch-mb
    scen = write_scenario(tmp_path / "probe.yaml", volume, RATES, [(0, volume)], 80)
    _, copy = predict(scen)
    probe = volume / RATES["mover_copy"] + math.ceil(volume / (80 * MIB)) * RATES["mover_command_s"]
    # the old derivation predicted the pool's probed write stream: 1 GiB / 232.6 MB/s = 4.62 s, 1.20 x
    assert copy == pytest.approx(probe, rel=0.01), (copy, probe)


def test_the_derivation_before_the_rule_predicts_the_slower_device_probe(tmp_path):
    """What the benchmark prints as 'as probed': the pool's write stream, not the copy, sets the time."""
    volume = 1024 * MIB
    scen = write_scenario(tmp_path / "old.yaml", volume, RATES, [(0, volume)], 80, consistent=False)
    _, copy = predict(scen)
    pool = stream_bytes_s(*device_model(RATES["pool_write_1"], RATES["pool_write_q"], CHUNK, DEPTH))
    assert copy == pytest.approx(volume / pool, rel=0.01)
    assert copy > 1.15 * volume / RATES["mover_copy"]


def test_device_streams_faster_than_the_copy_keep_their_probed_figures():
    fast = {**RATES, "pool_write_1": 400 * MB, "pool_write_q": 600 * MB}
    cal = lab_calibration(fast)
    assert (cal["tape_native_mb_s"], cal["tape_command_ms"]) == device_model(400 * MB, 600 * MB, CHUNK, DEPTH)
    assert (cal["disk_mb_s"], cal["disk_command_ms"]) == device_model(702.6 * MB, 1269.7 * MB, CHUNK, DEPTH)
    assert cal == lab_calibration(fast, consistent=False)


def test_a_stream_probed_slower_than_the_copy_is_raised_to_it_keeping_its_latency():
    cal = lab_calibration(RATES)
    probed = device_model(RATES["pool_write_1"], RATES["pool_write_q"], CHUNK, DEPTH)
    assert cal["tape_command_ms"] == probed[1] > 0
    assert cal["tape_native_mb_s"] > probed[0]
    rate = stream_bytes_s(cal["tape_native_mb_s"], cal["tape_command_ms"])
    assert RATES["mover_copy"] <= rate <= RATES["mover_copy"] * 1.001
    assert cal["mover_mb_s"] == 280.7 and cal["mover_chunk_kib"] == 1024 and cal["mover_io_depth"] == DEPTH


def test_raising_a_stream_whose_latency_alone_exceeds_the_copy_drops_the_latency():
    # 20 ms per 1 MiB command at depth 1 is 52 MB/s of latency alone: no bandwidth gives 280.7 MB/s with it
    assert at_least_the_copy(30.0, 20.0, 280.7 * MB, CHUNK, 1) == (280.7, 0.0)
    assert at_least_the_copy(900.0, 2.0, 280.7 * MB, CHUNK, DEPTH) == (900.0, 2.0)
