"""Real server-free backups: EXTENDED COPY through libiscsi to our mover, which reads tgtd's client LUN.

Judges from outside the project: the backing files themselves (read by the
test, not by the job), and ntfs-3g's ``ntfsfix -n`` / ``ntfsls`` / ``ntfscat``
on the restored LUN.
"""
from __future__ import annotations

import pytest

from orchestrator.ops import PathKind
from scsi.devices import LibiscsiDevice
from scsi.xcopy import (
    BlockToStream,
    Header,
    IdentificationCscd,
    ParameterList,
    StreamToBlock,
)
from tests.e2e.judge import pool_image, read_extents, volume_view
from tests.fixtures.sanlab import TAPE_NAA
from tests.fixtures.sanlab_client import FILESPACE, NODE
from tests.fixtures.sanlab_volume import judge

MIB = 1 << 20


def _restore_and_judge(sanlab, client, start: PathKind, **kw) -> None:
    sanlab.blank_restore_lun()
    r = client.restore(start, **kw)
    assert r.report.outcome == "completed", r.report.message
    (obj,) = [o for o in client.catalogue.restore_chain(NODE, FILESPACE)]
    assert volume_view(sanlab.restore_img, obj) == volume_view(sanlab.client_img, obj)
    assert judge(sanlab.restore_img, sanlab.volume.files) == []


def test_server_free_backup_moves_the_volume_without_the_client_reading_it(sanlab, client, record_property):
    analysed = client.counts["analysis.read_bytes"]
    extents, fs = client.extents()
    metadata = client.counts["analysis.read_bytes"] - analysed
    # what the client does read: the file-system metadata for the used-cluster map (boot sector, MFT
    # records, $Bitmap), in 64 KiB pages -- counted, and small beside the volume
    print(f"\nvolume analysis read {metadata} bytes of the {sanlab.volume_size}-byte volume")
    record_property("analysis_read_bytes", metadata)
    assert 0 < metadata <= 256 * 1024 and metadata * 50 < sanlab.volume_size, metadata
    assert fs.lower() == "ntfs" and len(extents) > 1  # deletions left holes in the bitmap
    run = client.backup(PathKind.SERVER_FREE, extents=extents)
    rep = run.report
    assert rep.outcome == "completed", rep.message
    assert rep.path_used == "server-free" and rep.movers_used == ["DM1"] and not rep.failovers
    assert rep.bytes_by_path == {"server-free": sum(n for _, n in extents)}
    copy = run.by_op["CopyBatches"]
    assert copy["DM1.commands"] >= 1  # EXTENDED COPY lists went to the mover over iSCSI
    assert copy["client.read_bytes"] == 0 and copy["client.commands"] == 0  # the client never read the volume
    assert copy["pool.write_bytes"] == 0  # nor wrote the pool
    (obj,) = client.catalogue.query(NODE, FILESPACE, with_pieces=True)
    assert obj.path_used == "server-free"
    assert pool_image(sanlab, obj) == read_extents(sanlab.client_img, extents)
    _restore_and_judge(sanlab, client, PathKind.SERVER_FREE)


def test_raw_volume_server_free_restores_the_lun_identical(sanlab, client):
    """A raw volume is copied whole; the restored LUN equals the source LUN byte for byte."""
    size = sanlab.volume_size
    run = client.backup(PathKind.SERVER_FREE, extents=[(0, size)], filespace="RAW1", file_system="raw")
    assert run.report.outcome == "completed" and run.report.path_used == "server-free", run.report.message
    assert run.by_op["CopyBatches"]["client.read_bytes"] == 0
    sanlab.blank_restore_lun()
    r = client.restore(PathKind.SERVER_FREE, filespace="RAW1")
    assert r.report.outcome == "completed" and r.report.path_used == "server-free", r.report.message
    assert sanlab.restore_img.read_bytes() == sanlab.client_img.read_bytes()


def test_whole_server_free_job_reads_no_volume_block_on_the_client(sanlab, client):
    """Not even verification reads the volume: the mover's COPY STATUS vouches for server-free bytes."""
    run = client.backup(PathKind.SERVER_FREE)
    assert run.report.outcome == "completed", run.report.message
    assert run.read_bytes("client") == 0, {k: dict(v) for k, v in run.by_op.items()}
    obj = client.catalogue.get(run.report.object_id)
    assert pool_image(sanlab, obj) == volume_view(sanlab.client_img, obj)  # so the test checks the bytes


def test_server_free_job_reads_nothing_back_on_the_client(sanlab, client):
    """Issue 7: the client moves no data at all, not even reading the pool back for digests."""
    run = client.backup(PathKind.SERVER_FREE)
    assert run.report.outcome == "completed", run.report.message
    assert run.counts["pool.read_bytes"] == 0, {k: dict(v) for k, v in run.by_op.items()}


@pytest.mark.parametrize("start", [PathKind.LAN_FREE, PathKind.LAN])
def test_lan_free_and_lan_backups_restore_identical(sanlab, client, start):
    run = client.backup(start)
    assert run.report.outcome == "completed" and run.report.path_used == start.value, run.report.message
    assert run.by_op[("LanFreeWrite" if start == PathKind.LAN_FREE else "LanSend")]["client.read_bytes"] > 0
    obj = client.catalogue.query(NODE, FILESPACE, with_pieces=True)[-1]
    assert obj.path_used == start.value
    assert pool_image(sanlab, obj) == volume_view(sanlab.client_img, obj)
    _restore_and_judge(sanlab, client, start)


def test_tape_lun_through_the_mover_and_back(sanlab, client):
    """Block->stream (00h) from tgtd's client LUN onto the mover's emulated tape, then stream->block (01h)."""
    extents, _ = client.extents()
    record = 256 * 1024
    cscd_disk = IdentificationCscd(designator=client.designators["client"], pdt=0, block_length=512)
    cscd_tape = IdentificationCscd(designator=TAPE_NAA, pdt=1, block_length=0)
    cscd_restore = IdentificationCscd(designator=client.designators["restore"], pdt=0, block_length=512)
    pieces = [(off + o, min(4 * MIB, n - o)) for off, n in extents for o in range(0, n, 4 * MIB)]

    def lists(code: str, disk: IdentificationCscd, list_id: int) -> list[bytes]:
        out = []
        for i in range(0, len(pieces), 8):
            if code == "00":
                segs = tuple(BlockToStream(src=0, dst=1, stream_transfer_length=record, block_count=n // 512,
                                           lba=off // 512) for off, n in pieces[i:i + 8])
                cscds = (disk, cscd_tape)
            else:
                segs = tuple(StreamToBlock(src=0, dst=1, stream_transfer_length=record, block_count=n // 512,
                                           lba=off // 512) for off, n in pieces[i:i + 8])
                cscds = (cscd_tape, disk)
            out.append(ParameterList(header=Header(list_id=list_id + i // 8, list_id_usage=0), cscds=cscds,
                                     segments=segs).encode())
        return out

    from pyscsi.pyscsi.scsi import SCSI

    from scsi.commands import copy_status, extended_copy

    def send(plists: list[bytes]) -> int:
        dev = LibiscsiDevice(sanlab.mover_url, timeout=30)
        try:
            scsi = SCSI(dev)
            moved = 0
            for pl in plists:
                extended_copy(scsi, pl)
                moved += copy_status(scsi, ParameterList.decode(pl).header.list_id).bytes_transferred
            return moved
        finally:
            dev.close()

    total = sum(n for _, n in pieces)
    assert send(lists("00", cscd_disk, 100)) == total
    assert sanlab.tape_path.stat().st_size > total  # records and their headers are on the tape file
    sanlab.start_mover()  # the tape is reloaded at BOT: the mover exports no tape LU to rewind it through
    sanlab.blank_restore_lun()
    assert send(lists("01", cscd_restore, 150)) == total
    assert read_extents(sanlab.restore_img, extents) == read_extents(sanlab.client_img, extents)
    assert judge(sanlab.restore_img, sanlab.volume.files) == []
