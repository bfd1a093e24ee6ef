"""Test-session helpers shared by every test folder.

The private tgtd fixture lives in tests/fixtures/tgtd.py (also usable as a
script by benchmarks); it is registered here as a pytest plugin.
"""
from __future__ import annotations

import sys
from pathlib import Path

_ROOT = Path(__file__).resolve().parent.parent
if str(_ROOT) not in sys.path:  # --import-mode=importlib does not add it
    sys.path.insert(0, str(_ROOT))

pytest_plugins = ["tests.fixtures.tgtd"]
