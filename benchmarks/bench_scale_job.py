"""A real backup job and its restore at 5,000,000 extents, in bounded memory.

`bench_scale_plan` times the planner and the catalogue alone; this runs the
jobs themselves (`orchestrator.job.backup_job`, `restore_job`): the extents
come as a stream (`PieceStream.from_extents`, arrays generated batch by batch
as a volume analysis yields them, never held whole), the job plans EXTENDED
COPY lists window by window as it sends them, a mover fails part way through
a list and the next mover resumes from the image position reached (not from
a held list of pieces), verification splits the stored pieces into read-back
and mover-proven parts, the commit writes compact blocks and the chunk
digests in one transaction, and the restore job plans from the catalogue's
blocks read back as a stream.  Verification reads the whole object back on
the pool side as the backup server does for a server-free image: the driver
answers with a digest for every 1 MiB chunk (about 1.4 million at 5M
extents) in a `DigestSpool`, and the commit writes them all
(``--no-read-back``: the driver only acknowledges, as before).  The driver is
`orchestrator.drivers.acknowledging` (it reads every list's bytes and
answers COPY STATUS, but moves no data: 5M extents through tgtd would take
hours).  One measuring process; its peak RSS (the whole process, from
os.wait4) is printed with CPU seconds and the load average.

With ``--incremental`` it times an image incremental instead: the full
image's extents and a real digest for every 1 MiB chunk are committed first
(setup, not timed), then the incremental backup job digests the volume (the
driver answers the scan as a stream, 1 % of the chunks changed), compares the
digests with the catalogue's streamed view, and moves only the changed
pieces.  Targets: <= 10 s and <= 512 MiB for 5M extents.

With ``--tape`` the backup goes to a tape pool (256 KiB records): the job
plans 00h segments and the closing filemark with the numpy tape planner,
window by window as it sends them; the first mover aborts a list part way and
the next continues after the last record its COPY STATUS vouches for.  The
object is then restored from tape (01h segments, planned the same way from
the catalogue's blocks), timed on its own; the peak RSS covers both.

    .venv/bin/python benchmarks/bench_scale_job.py [--extents 5000000] [--fail-at-list 20000] [--no-read-back]
        [--incremental|--tape]
"""
from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from bench_scale_plan import DISK, POOL, extent_blocks, load, measure_in_child
from orchestrator.catalogue import Catalogue
from orchestrator.chunk_runs import touched_chunk_arrays
from orchestrator.drivers.acknowledging import AcknowledgingDriver
from orchestrator.job import BackupSpec, DeviceSpec, ObjectSpec, PathPlan, RestoreSpec, backup_job, restore_job
from orchestrator.job.incremental import coverage_stream
from orchestrator.job.spec import TapePlan
from orchestrator.ops import BeginObject, CommitObject, PathKind, run_job
from orchestrator.piece_stream import LazySeq, PieceStream

MIB = 1 << 20
CHANGED_EVERY = 100  # the incremental: one chunk in 100 changed since the full image


def extent_arrays(count: int) -> Iterator[np.ndarray]:
    """The volume's used extents as (offset, length) arrays, one batch at a time (as UsedExtents yields them)."""
    for b in extent_blocks(count):
        yield np.stack([b.volume_offset, b.length], axis=1)


def volume_size_of(count: int) -> int:
    """The end of the last extent: one pass over the made-up layout (a real analysis knows the size)."""
    volume_size = 0
    for a in extent_arrays(count):
        volume_size = int(a[-1, 0] + a[-1, 1])
    return volume_size


def stored_digests(cat: Catalogue, object_id: int | None = None) -> tuple[int, int]:
    """(catalogue rows holding digests, chunks they cover): record blocks and rows of single digests or unread runs."""
    where, args = ("WHERE object_id=?", (object_id,)) if object_id is not None else ("", ())
    blocks, in_blocks = cat.db.execute(f"SELECT count(*), coalesce(sum(count), 0) FROM digest_blocks {where}",
                                       args).fetchone()
    rows = cat.db.execute(f"SELECT digest FROM digests {where}", args).fetchall()
    in_rows = sum(int(d[0][len("unread "):]) if d[0].startswith("unread ") else 1 for d in rows)
    return blocks + len(rows), in_blocks + in_rows


def pool_digests(idx: np.ndarray) -> list[str]:
    """The pool-side read-back's digest of chunks ``idx`` (64 hex characters, one per chunk)."""
    return [f"{c:064x}" for c in idx.tolist()]


def measure(count: int, fail_at: int, read_back: bool = True) -> dict[str, float | int | str]:
    volume_size = volume_size_of(count)
    paths = PathPlan(start=PathKind.SERVER_FREE, movers=["M1", "M2"], lan=False,
                     pool_designators={"pool0": POOL.designator})
    out: dict[str, float | int | str] = {}
    with tempfile.TemporaryDirectory(prefix="serverfree-bench-") as tmp:
        with Catalogue(Path(tmp) / "cat.db") as cat:
            cat.add_pool_volume("POOL", "VOL1", "pool0", volume_size + (1 << 20))
            driver = AcknowledgingDriver(cat, fail_at={"M1": fail_at} if fail_at else {},
                                         pool_digests=pool_digests if read_back else None)
            spec = BackupSpec(node="NODE", filespace="VOL", source=DeviceSpec(name="disk0",
                              designator=DISK.designator), volume_size=volume_size, file_system="NTFS",
                              extent_stream=PieceStream.from_extents(lambda: extent_arrays(count), volume_size),
                              pool="POOL", paths=paths)
            c0, w0 = time.process_time(), time.perf_counter()
            report = run_job(backup_job(spec), driver.execute)
            c1, w1 = time.process_time(), time.perf_counter()
            if report.outcome != "completed":
                raise SystemExit(f"bench_scale_job: the backup failed: {report.message}")
            (rec,) = cat.query("NODE", "VOL")
            chain = [ObjectSpec(object_id=rec.id, pool_volume=rec.pool_volume, pool_device=rec.pool_device,
                                pool_offset=rec.pool_offset, volume_size=rec.volume_size,
                                pieces=PieceStream(lambda: cat.iter_blocks(rec.id)))]
            restore = RestoreSpec(node="NODE", filespace="VOL", chain=chain, destination=DeviceSpec(
                name="disk1", designator=DISK.designator), destination_size=volume_size, paths=PathPlan(
                start=PathKind.SERVER_FREE, movers=["M2"], lan=False, pool_designators={"pool0": POOL.designator}))
            backup_counts = dict(driver.counts)
            driver.counts.clear()
            c2, w2 = time.process_time(), time.perf_counter()
            rreport = run_job(restore_job(restore), driver.execute)
            c3, w3 = time.process_time(), time.perf_counter()
            if rreport.outcome != "completed":
                raise SystemExit(f"bench_scale_job: the restore failed: {rreport.message}")
            digests = stored_digests(cat)
            blocks = cat.db.execute("SELECT count(*), sum(count) FROM extent_blocks").fetchone()
        out.update(image_size=report.image_size, failovers=len(report.failovers),
                   resumed_at=report.failovers[0].image_offset if report.failovers else -1,
                   lists=sum(v for k, v in backup_counts.items() if k.startswith("lists:")),
                   copy_ops=backup_counts.get("CopyBatches", 0), segments=backup_counts.get("segments", 0),
                   list_bytes=backup_counts.get("list_bytes", 0),
                   verify_accounted=backup_counts.get("verify_accounted_bytes", 0),
                   verify_read=backup_counts.get("verify_read_bytes", 0),
                   read_back_chunks=backup_counts.get("read_back_chunks", 0),
                   digest_rows=digests[0], chunk_digests=digests[1], block_rows=blocks[0], catalogue_extents=blocks[1],
                   restore_segments=driver.counts.get("segments", 0), restore_copy_ops=driver.counts.get("CopyBatches", 0),
                   backup_cpu=c1 - c0, backup_wall=w1 - w0, restore_cpu=c3 - c2, restore_wall=w3 - w2,
                   total_cpu=(c1 - c0) + (c3 - c2), total_wall=(w1 - w0) + (w3 - w2))
    return out


def chunk_digests(idx: np.ndarray, changed: bool) -> list[str]:
    """Digests of chunks ``idx``: a fixed one per chunk, another for one chunk in `CHANGED_EVERY` if ``changed``."""
    return [f"{'c' if changed and c % CHANGED_EVERY == 7 else 'd'}{c:063x}" for c in idx.tolist()]


def measure_incremental(count: int) -> dict[str, float | int | str]:
    volume_size = volume_size_of(count)
    paths = PathPlan(start=PathKind.SERVER_FREE, movers=["M1", "M2"], lan=False,
                     pool_designators={"pool0": POOL.designator})
    full = PieceStream.from_extents(lambda: extent_arrays(count), volume_size)
    out: dict[str, float | int | str] = {}
    with tempfile.TemporaryDirectory(prefix="serverfree-bench-") as tmp:
        with Catalogue(Path(tmp) / "cat.db") as cat:
            cat.add_pool_volume("POOL", "VOL1", "pool0", 2 * volume_size + (1 << 20))
            c0 = time.process_time()
            started = cat.begin_object(BeginObject("NODE", "VOL", "selective", "static", full.nbytes(), volume_size,
                                                   "NTFS", pool="POOL"))
            digests = LazySeq(lambda: ((c, d) for idx in touched_chunk_arrays(full, MIB)
                                       for c, d in zip(idx.tolist(), chunk_digests(idx, False))))
            cat.commit_object(CommitObject(started.object_id, full, "lan", False, digests))
            setup_cpu = time.process_time() - c0
            driver = AcknowledgingDriver(cat, volume_digests=lambda idx: chunk_digests(idx, True))
            c1, w1 = time.process_time(), time.perf_counter()
            chain = cat.restore_chain("NODE", "VOL", incremental=True, stream=True)
            spec = BackupSpec(node="NODE", filespace="VOL", source=DeviceSpec(name="disk0",
                              designator=DISK.designator), volume_size=volume_size, file_system="NTFS",
                              extent_stream=PieceStream.from_extents(lambda: extent_arrays(count), volume_size),
                              pool="POOL", paths=paths, mode="incremental", base_object_id=chain[0].id,
                              base_digests=cat.digest_runs(chain),
                              base_coverage=coverage_stream([o.pieces for o in chain], MIB))
            report = run_job(backup_job(spec), driver.execute)
            c2, w2 = time.process_time(), time.perf_counter()
            if report.outcome != "completed":
                raise SystemExit(f"bench_scale_job: the incremental failed: {report.message}")
            digests_stored = stored_digests(cat, started.object_id)[1]
            moved = cat.db.execute("SELECT sum(count) FROM extent_blocks WHERE object_id=?",
                                   (report.object_id,)).fetchone()[0]
        out.update(full_image=full.nbytes(), image_size=report.image_size, base_digests=digests_stored,
                   scanned_chunks=driver.counts.get("scanned_chunks", 0), moved_pieces=moved,
                   segments=driver.counts.get("segments", 0), copy_ops=driver.counts.get("CopyBatches", 0),
                   setup_cpu=setup_cpu, cpu=c2 - c1, wall=w2 - w1)
    return out


def main_incremental(count: int) -> None:
    r, rss = measure_in_child(__file__, ["--extents", str(count), "--incremental"])
    print(f"extents={count} full_image_bytes={r['full_image']} base_chunk_digests={r['base_digests']} "
          f"scanned_chunks={r['scanned_chunks']} incremental_bytes={r['image_size']} "
          f"moved_pieces={r['moved_pieces']} segments={r['segments']} copy_ops={r['copy_ops']} "
          f"setup_cpu_seconds={r['setup_cpu']:.2f} {load()}")
    print(f"extents={count} incremental_job_cpu_seconds={r['cpu']:.2f} wall_seconds={r['wall']:.2f} "
          f"peak_rss_mib={rss:.0f} {load()}")


def measure_tape(count: int, fail_at: int) -> dict[str, float | int | str]:
    volume_size = volume_size_of(count)
    paths = PathPlan(start=PathKind.SERVER_FREE, movers=["M1", "M2"], lan=False,
                     pool_designators={"DRV1": "6001405" + "1" * 25}, tape=TapePlan(record_bytes=256 * 1024))
    with tempfile.TemporaryDirectory(prefix="serverfree-bench-") as tmp:
        with Catalogue(Path(tmp) / "cat.db") as cat:
            cat.add_pool_volume("TAPEPOOL", "T00001", "DRV1", 1 << 60)
            driver = AcknowledgingDriver(cat, fail_at={"M1": fail_at} if fail_at else {})
            spec = BackupSpec(node="NODE", filespace="VOL", source=DeviceSpec(name="disk0",
                              designator=DISK.designator), volume_size=volume_size, file_system="NTFS",
                              extent_stream=PieceStream.from_extents(lambda: extent_arrays(count), volume_size),
                              pool="TAPEPOOL", paths=paths)
            c0, w0 = time.process_time(), time.perf_counter()
            report = run_job(backup_job(spec), driver.execute)
            c1, w1 = time.process_time(), time.perf_counter()
            if report.outcome != "completed":
                raise SystemExit(f"bench_scale_job: the tape backup failed: {report.message}")
            blocks = cat.db.execute("SELECT sum(count) FROM extent_blocks").fetchone()[0]
            (rec,) = cat.query("NODE", "VOL")
            c = dict(driver.counts)
            driver.counts.clear()
            chain = [ObjectSpec(object_id=rec.id, pool_volume=rec.pool_volume, pool_device=rec.pool_device,
                                pool_offset=rec.pool_offset, volume_size=rec.volume_size,
                                tape_location=rec.tape_location, pieces=PieceStream(lambda: cat.iter_blocks(rec.id)))]
            restore = RestoreSpec(node="NODE", filespace="VOL", chain=chain, destination=DeviceSpec(
                name="disk1", designator=DISK.designator), destination_size=volume_size,
                paths=paths.model_copy(update={"movers": ["M2"]}))
            c2, w2 = time.process_time(), time.perf_counter()
            rreport = run_job(restore_job(restore), driver.execute)
            c3, w3 = time.process_time(), time.perf_counter()
            if rreport.outcome != "completed":
                raise SystemExit(f"bench_scale_job: the restore from tape failed: {rreport.message}")
    return dict(image_size=report.image_size, failovers=len(report.failovers), catalogue_extents=blocks,
                lists=sum(v for k, v in c.items() if k.startswith("lists:")), copy_ops=c.get("CopyBatches", 0),
                segments=c.get("segments", 0), list_bytes=c.get("list_bytes", 0),
                copy_status=c.get("ReadCopyStatus", 0), tape_location=rec.tape_location or "",
                cpu=c1 - c0, wall=w1 - w0, restore_cpu=c3 - c2, restore_wall=w3 - w2,
                restore_segments=driver.counts.get("segments", 0), restore_copy_ops=driver.counts.get("CopyBatches", 0))


def main_tape(count: int, fail_at: int) -> None:
    r, rss = measure_in_child(__file__, ["--extents", str(count), "--fail-at-list", str(fail_at), "--tape"])
    print(f"extents={count} image_bytes={r['image_size']} copy_ops={r['copy_ops']} lists={r['lists']} "
          f"segments={r['segments']} list_bytes={r['list_bytes']} copy_status_reads={r['copy_status']} "
          f"failovers={r['failovers']} catalogue_extents={r['catalogue_extents']} {load()}")
    print(f"tape_location={r['tape_location']}")
    print(f"restore_from_tape: copy_ops={r['restore_copy_ops']} segments={r['restore_segments']} "
          f"cpu_seconds={r['restore_cpu']:.2f} wall_seconds={r['restore_wall']:.2f} {load()}")
    print(f"extents={count} tape_backup_job_cpu_seconds={r['cpu']:.2f} wall_seconds={r['wall']:.2f} "
          f"peak_rss_mib={rss:.0f} (backup and restore in one process) {load()}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--extents", type=int, default=5_000_000)
    ap.add_argument("--fail-at-list", type=int, default=20_000,
                    help="the first mover aborts its Nth list part way (0: no failover)")
    ap.add_argument("--incremental", action="store_true",
                    help="time an image incremental (1 %% of the chunks changed) against a full image")
    ap.add_argument("--tape", action="store_true", help="time a server-free backup to a tape pool instead")
    ap.add_argument("--no-read-back", action="store_true",
                    help="the driver only acknowledges verification (no digest per chunk to commit)")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.incremental and args.tape:
        raise SystemExit("bench_scale_job: give --incremental or --tape, not both")
    if args.extents < 1 or args.fail_at_list < 0:
        raise SystemExit("bench_scale_job: --extents must be >= 1 and --fail-at-list >= 0")
    if args.child:
        print(json.dumps(measure_incremental(args.extents) if args.incremental else
                         measure_tape(args.extents, args.fail_at_list) if args.tape else
                         measure(args.extents, args.fail_at_list, not args.no_read_back)))
        return
    print(f"date={time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())} cpus={os.cpu_count()} {load()}")
    if args.incremental:
        main_incremental(args.extents)
        return
    if args.tape:
        main_tape(args.extents, args.fail_at_list)
        return
    r, rss = measure_in_child(__file__, ["--extents", str(args.extents), "--fail-at-list", str(args.fail_at_list),
                                         *(["--no-read-back"] if args.no_read_back else [])])
    print(f"extents={args.extents} image_bytes={r['image_size']} copy_ops={r['copy_ops']} lists={r['lists']} "
          f"segments={r['segments']} list_bytes={r['list_bytes']} failovers={r['failovers']} "
          f"resumed_at={r['resumed_at']} verify_accounted_bytes={r['verify_accounted']} verify_read_bytes={r['verify_read']} "
          f"read_back_chunks={r['read_back_chunks']} "
          f"catalogue_extents={r['catalogue_extents']} block_rows={r['block_rows']} digest_rows={r['digest_rows']} "
          f"chunk_digests={r['chunk_digests']} "
          f"restore_copy_ops={r['restore_copy_ops']} restore_segments={r['restore_segments']} {load()}")
    print(f"backup_job_cpu_seconds={r['backup_cpu']:.2f} backup_wall_seconds={r['backup_wall']:.2f} "
          f"restore_job_cpu_seconds={r['restore_cpu']:.2f} restore_wall_seconds={r['restore_wall']:.2f} {load()}")
    print(f"extents={args.extents} backup_plus_restore_cpu_seconds={r['total_cpu']:.2f} "
          f"wall_seconds={r['total_wall']:.2f} peak_rss_mib={rss:.0f} {load()}")


if __name__ == "__main__":
    main()
