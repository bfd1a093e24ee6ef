"""`serverfree demo`: the main job with nothing to configure."""
from __future__ import annotations


def register(sub) -> None:
    p = sub.add_parser("demo", help="run the built-in demonstration")
    p.set_defaults(func=run)


def run(args) -> int:
    # Until the orchestrator lands, the demo decodes a sample EXTENDED COPY
    # parameter list of the kind a data mover receives.
    from orchestrator.cli.xcopy_cmd import demo_listing

    print(demo_listing())
    return 0
