"""`serverfree query backup [VOLUME] [-inactive] [--json]`: the catalogue's image objects, dsmc style."""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:  # the catalogue (SQLite, numpy) loads when the command runs, not for the parser
    from orchestrator.catalogue import Catalogue, ObjectRecord


def register(sub) -> None:  # type: ignore[no-untyped-def]
    from orchestrator.options import add_option_arguments
    from orchestrator.options.arguments import Once

    p = sub.add_parser("query", help="query the backup catalogue")
    what = p.add_subparsers(dest="query_command", metavar="WHAT")
    what.required = True
    q = what.add_parser("backup", help="list image backups (like dsmc query backup -image)")
    q.add_argument("volume", metavar="VOLUME", nargs="?", help="only this filespace")
    q.add_argument("--inactive", action="store_true", help="also list inactive versions")
    q.add_argument("--json", action="store_true", help="one JSON object per image, in a list")
    add_option_arguments(q, ("catalog", "nodename", "tcpserveraddress", "tcpport", "password", "passwordaccess",
                             "tlsfingerprint"))
    # the same two options under their usual English names: given twice, they conflict
    q.add_argument("--node", dest="nodename", action=Once, default=None, metavar="NAME", help="same as --nodename")
    q.add_argument("--catalogue", dest="catalog", action=Once, default=None, metavar="FILE", help="same as --catalog")
    q.set_defaults(func=run)


def _size(n: int | None) -> str:
    if n is None:
        return "-"
    for unit, scale in (("GB", 1 << 30), ("MB", 1 << 20), ("KB", 1 << 10)):
        if n >= scale:
            return f"{n / scale:,.2f} {unit}"
    return f"{n} B"


def render(objs: list[ObjectRecord]) -> str:
    head = (f"{'Size':>12} {'Stored':>12}  {'FSType':<6} {'Backup Date':<19}  {'Mgmt Class':<10} A/I "
            f"{'Type':<11} {'Path':<21} {'Pool Volume @ offset':<24} Image Name")
    lines = [head, "-" * len(head)]
    for o in objs:
        date = (o.backup_date or "")[:19].replace("T", " ")
        kind = "FULL" if o.mode == "selective" else f"INCR of {o.base_id}"
        lines.append(f"{_size(o.image_size):>12} {_size(o.stored_size):>12}  {o.file_system.upper():<6} "
                     f"{date:<19}  {o.management_class:<10} {'A' if o.active else 'I':>3} {kind:<11} "
                     f"{(o.path_used or '') + (' c' if o.compressed else ''):<21} "
                     f"{f'{o.pool_volume} @ {o.pool_offset}':<24} {o.node}:{o.filespace}")
    return "\n".join(lines)


def write_json(cat: Catalogue | None, objs: list[ObjectRecord], out: TextIO) -> None:
    """``[{...object..., "extents": [[volume offset, length], ...]}, ...]``, extents streamed block by block.

    The text is what ``json.dumps([o.as_dict() ...])`` gives, without ever
    holding an image's millions of extents as Python objects.  Without ``cat``
    the blocks are the objects' own pieces (streams: the backup server's answer).
    """
    import numpy as np

    out.write("[")
    for n, obj in enumerate(objs):
        head = json.dumps({**{k: v for k, v in obj.__dict__.items() if k != "pieces"}, "extents": []})
        assert head.endswith(', "extents": []}')
        out.write((", " if n else "") + head[: -len("[]}")] + "[")
        first = True
        for block in (cat.iter_blocks(obj.id) if cat is not None else obj.pieces.blocks()):
            pairs = np.stack([block.volume_offset, block.length], axis=1).tolist()
            text = json.dumps(pairs)[1:-1]
            if text:
                out.write(text if first else ", " + text)
                first = False
        out.write("]}")
    out.write("]\n")


def run(args: argparse.Namespace) -> int:
    from orchestrator.options import options_from_args

    options = options_from_args(args)
    if args.catalog is None and (options.password or os.environ.get("SERVERFREE_PASSWORD")):
        from orchestrator.server import node_jobs  # the backup server keeps the catalogue

        objs = node_jobs.query(options, args.volume, args.inactive)
        if args.json:  # each object's pieces are a stream of the server's rows: written block by block
            write_json(None, objs, sys.stdout)
            return 0
        return show(objs, options.node, args)
    path = options.catalog
    if path != ":memory:" and not Path(path).exists():
        raise FileNotFoundError(f"catalogue {path} does not exist (no backup has been made with it)")
    from orchestrator.catalogue import Catalogue

    node = options.node
    with Catalogue(path) as cat:
        objs = cat.query(node, args.volume, inactive=args.inactive)
        if args.json:  # extents streamed from the catalogue, never held whole
            write_json(cat, objs, sys.stdout)
            return 0
    return show(objs, node, args)


def show(objs: list[ObjectRecord], node: str, args: argparse.Namespace) -> int:
    if args.json:
        print(json.dumps([o.as_dict() for o in objs]))
    elif not objs:
        print(f"no image backups of {node}{':' + args.volume if args.volume else ''} found")
    else:
        print(render(objs))
    return 0
