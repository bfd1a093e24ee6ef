"""`serverfree datamover serve`: run the data mover's iSCSI target (LUNs + copy manager).

    serverfree datamover serve --config mover.yaml
    serverfree datamover serve --portal 127.0.0.1:3260 --iqn IQN --lun A.img --lun B.img

Everything is validated and every LUN opened before the portal listens, so a
bad config is one clear error line and nothing half-started.  SIGTERM/SIGINT
stop it and log the counters (commands, bytes per LUN, EXTENDED COPY results);
SIGUSR1 logs them while it keeps running.
"""
from __future__ import annotations

import asyncio
import logging
import signal
import sys

log = logging.getLogger(__name__)


def register(sub) -> None:
    p = sub.add_parser("datamover", help="the software data mover (iSCSI target + EXTENDED COPY)")
    dsub = p.add_subparsers(dest="datamover_command", metavar="ACTION")
    dsub.required = True
    s = dsub.add_parser("serve", help="serve LUNs and the copy manager over iSCSI")
    s.add_argument("--config", help="YAML configuration (portal, target, chap, luns, acl)")
    s.add_argument("--portal", help="HOST:PORT to listen on (quick mode), default 127.0.0.1:3260")
    s.add_argument("--iqn", help="target name (quick mode)")
    s.add_argument("--lun", action="append", default=[], metavar="PATH",
                   help="file or block device to serve; repeat, numbered from 0 (quick mode)")
    s.set_defaults(func=run_serve)


def config_from_args(args):
    from scsi.target.config import load_config, parse_config

    if args.config:
        if args.iqn or args.lun or args.portal:
            raise ValueError("--config cannot be combined with --portal/--iqn/--lun")
        return load_config(args.config)
    if not args.iqn or not args.lun:
        raise ValueError("give --config FILE, or --iqn IQN and at least one --lun PATH")
    raw = {"portal": args.portal or "127.0.0.1:3260", "target": args.iqn,
           "luns": [{"id": n, "path": path} for n, path in enumerate(args.lun)],
           "acl": [{"initiator": "*", "luns": "all"}]}
    return parse_config(raw, "command line")


async def serve(cfg, *, ready=None) -> None:
    from scsi.iscsi.server import IscsiServer
    from scsi.target.build import build_target, open_luns

    luns = open_luns(cfg)
    built = None
    try:
        built = build_target(cfg, luns=luns, with_copy_manager=True)
        host, port = cfg.host_port
        server = IscsiServer([built.node], host, port, io_threads=cfg.io_threads)
        await server.start()
        print(f"serverfree datamover: serving {cfg.target} with {len(luns)} LUN(s) on {host}:{server.port}",
              flush=True)
        if ready is not None:
            ready(server)
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                loop.add_signal_handler(sig, stop.set)
            except (NotImplementedError, RuntimeError):
                pass
        try:  # kill -USR1 PID: log the counters without stopping
            loop.add_signal_handler(signal.SIGUSR1, lambda: log.warning(
                "counters: %s", {**server.counters, **built.counters()}))
        except (NotImplementedError, RuntimeError, AttributeError):
            pass
        await stop.wait()
        log.warning("stopping; counters: %s", {**server.counters, **built.counters()})
        await server.close()
    finally:
        if built is not None:
            built.close()
        else:
            for lun in luns.values():
                lun.close()


def run_serve(args) -> int:
    cfg = config_from_args(args)
    asyncio.run(serve(cfg))
    print("serverfree datamover: stopped", file=sys.stderr)
    return 0
