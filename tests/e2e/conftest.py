"""End-to-end tests on the SAN lab: tgtd, our data mover, the backup server, all real on 127.0.0.1."""
from __future__ import annotations

import pytest

from orchestrator.catalogue import Catalogue
from tests.fixtures.sanlab import sanlab  # noqa: F401 - the module-scoped lab fixture
from tests.fixtures.sanlab_client import LabClient


@pytest.fixture(scope="module")
def client(sanlab, tmp_path_factory):  # noqa: F811
    cat = Catalogue(tmp_path_factory.mktemp("catalogue") / "catalogue.db")
    c = LabClient(sanlab, cat, mover_timeout=3.0)
    yield c
    c.close_devices()
    cat.close()
