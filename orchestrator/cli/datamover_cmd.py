"""`serverfree datamover serve`: run the data mover's iSCSI target (LUNs + copy manager).

    serverfree datamover serve --config mover.yaml
    serverfree datamover serve --portal 127.0.0.1:3260 --iqn IQN --lun A.img --lun B.img
    serverfree datamover serve --iqn IQN --lun gw.img --reach iscsi://san:3260/IQN/1 --reach /dev/sg3

``--reach`` (and the config's ``remote:`` section) names copy devices the
mover reaches as an initiator: EXTENDED COPY descriptors can name them by
their VPD 83h designators, but they are not served as LUNs.

Everything is validated, every LUN opened and every remote device logged in
to (and its designator checked) before the portal listens, so a bad config is
one clear error line and nothing half-started.  SIGTERM/SIGINT
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
    s.add_argument("--reach", action="append", default=[], metavar="URL",
                   help="iscsi://HOST[:PORT]/IQN/LUN or /dev/sgN the mover reaches for EXTENDED COPY; "
                        "repeat, named remote0, remote1, ... (quick mode)")
    s.add_argument("--fault", action="append", default=[], metavar="RULE",
                   help="inject a fault, e.g. copy-aborted=0D/02@list=2,segment=3, busy=5s@list=1, "
                        "drop@bytes=4M, stall=60s@bytes=1M; repeat (docs/datamover.md, Fault injection)")
    for kind in ("header", "data"):
        s.add_argument(f"--{kind}-digest", choices=("allowed", "required", "off"), default=None,
                       help=f"CRC32C {kind} digest (quick mode): allowed (the initiator's choice, default), "
                            "required, or off")
    s.add_argument("--metrics-port", type=int, metavar="PORT",
                   help="serve Prometheus metrics (the mover's counters) on 127.0.0.1:PORT")
    s.set_defaults(func=run_serve)


def config_from_args(args):
    from scsi.copymgr.faults import parse_fault
    from scsi.target.config import load_config, parse_config

    faults = list(getattr(args, "fault", None) or [])
    if args.config:
        if args.iqn or args.lun or args.portal or args.reach or getattr(args, "header_digest", None) \
                or getattr(args, "data_digest", None):
            raise ValueError("--config cannot be combined with --portal/--iqn/--lun/--reach/--*-digest "
                             "(list reached devices in the config's remote: section)")
        cfg = load_config(args.config)
        for rule in faults:
            parse_fault(rule)  # FaultError names the rule
        return cfg.model_copy(update={"faults": [*cfg.faults, *faults]}) if faults else cfg
    if not args.iqn or not args.lun:
        raise ValueError("give --config FILE, or --iqn IQN and at least one --lun PATH")
    raw = {"portal": args.portal or "127.0.0.1:3260", "target": args.iqn,
           "luns": [{"id": n, "path": path} for n, path in enumerate(args.lun)],
           "remote": [{"name": f"remote{n}", "url": url} for n, url in enumerate(args.reach)],
           "acl": [{"initiator": "*", "luns": "all", "remote": "all"}], "faults": faults,
           "header_digest": getattr(args, "header_digest", None) or "allowed",
           "data_digest": getattr(args, "data_digest", None) or "allowed"}
    return parse_config(raw, "command line")


async def serve(cfg, *, ready=None, metrics_port: int | None = None) -> None:
    from scsi.iscsi.server import IscsiServer
    from scsi.iscsi.textkeys import DIGEST_POLICIES, TargetLimits
    from scsi.target.build import build_target, open_luns, open_remotes

    luns = open_luns(cfg)
    remotes: dict = {}
    built = None
    try:
        remotes = open_remotes(cfg)
        built = build_target(cfg, luns=luns, with_copy_manager=True, remotes=remotes)
        host, port = cfg.host_port
        limits = TargetLimits(header_digests=DIGEST_POLICIES[cfg.header_digest],
                              data_digests=DIGEST_POLICIES[cfg.data_digest])
        server = IscsiServer([built.node], host, port, io_threads=cfg.io_threads, limits=limits)
        await server.start()
        loop = asyncio.get_running_loop()
        if built.faults is not None:
            built.faults.on_drop = lambda: server.drop_all_threadsafe(loop)
        stop = asyncio.Event()
        # handlers before the ready line: a supervisor may signal as soon as it reads it
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
        metrics = None
        if metrics_port is not None:
            from orchestrator.server.metrics import mover_endpoint

            metrics = mover_endpoint(lambda: {**server.counters, **built.counters()}, metrics_port)
            print(f"serverfree datamover: metrics on {metrics.address}", flush=True)
        reach = f", reaching {len(remotes)} remote device(s)" if remotes else ""
        print(f"serverfree datamover: serving {cfg.target} with {len(luns)} LUN(s){reach} on "
              f"{host}:{server.port}", flush=True)
        if ready is not None:
            ready(server)
        await stop.wait()
        log.warning("stopping; counters: %s", {**server.counters, **built.counters()})
        if metrics is not None:
            metrics.close()
        await server.close()
    finally:
        if built is not None:
            built.close()
        else:
            for lun in [*luns.values(), *remotes.values()]:
                lun.close()


def run_serve(args) -> int:
    cfg = config_from_args(args)
    asyncio.run(serve(cfg, metrics_port=getattr(args, "metrics_port", None)))
    print("serverfree datamover: stopped", file=sys.stderr)
    return 0
