from pathlib import Path

import pytest

TOPOLOGIES = Path(__file__).resolve().parents[2] / "scenarios" / "topologies"


@pytest.fixture
def topologies() -> Path:
    return TOPOLOGIES
