"""Test-session helpers shared by every test folder.

- The private tgtd fixture lives in tests/fixtures/tgtd.py (also usable as a
  script by benchmarks); it is registered here as a pytest plugin.
- Hypothesis profiles: "default" has no per-example deadline (a loaded,
  shared machine must not turn a slow example into a Flaky failure);
  "nightly" (HYPOTHESIS_PROFILE=nightly) runs the properties that read
  ``NIGHTLY_EXAMPLES`` with hundreds of examples.
- The CI skip guard: with CI=true, a run in which any test skips for a reason
  other than those in ``SKIPS_ALLOWED_IN_CI`` fails, so a tool that ./dev
  forgot to install cannot turn a test into a silent pass.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

from hypothesis import settings

_ROOT = Path(__file__).resolve().parent.parent
if str(_ROOT) not in sys.path:  # --import-mode=importlib does not add it
    sys.path.insert(0, str(_ROOT))

pytest_plugins = ["tests.fixtures.tgtd"]

settings.register_profile("default", deadline=None)
settings.register_profile("nightly", deadline=None, max_examples=400)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))

#: Skip reasons that may appear in CI: tools that cannot exist on a CI machine.
#: An SG_IO test needs a kernel SCSI generic node (/dev/sg*), i.e. real hardware.
SKIPS_ALLOWED_IN_CI = ("no /dev/sg* node",)

_skipped: list[tuple[str, str]] = []


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def skip_allowed_in_ci(reason: str) -> bool:
    return any(allowed in reason for allowed in SKIPS_ALLOWED_IN_CI)


def pytest_runtest_logreport(report):
    if report.skipped and not hasattr(report, "wasxfail"):
        reason = str(report.longrepr[2]) if isinstance(report.longrepr, tuple) else str(report.longrepr)
        _skipped.append((report.nodeid, reason))


def _unexpected_skips() -> list[tuple[str, str]]:
    return [(node, reason) for node, reason in _skipped if not skip_allowed_in_ci(reason)]


def pytest_terminal_summary(terminalreporter):
    if in_ci():
        for node, reason in _unexpected_skips():
            terminalreporter.write_line(f"CI skip guard: {node} skipped ({reason}); only reasons containing "
                                        f"{SKIPS_ALLOWED_IN_CI} may skip in CI", red=True)


def pytest_sessionfinish(session, exitstatus):
    if in_ci() and _unexpected_skips():
        session.exitstatus = 1
