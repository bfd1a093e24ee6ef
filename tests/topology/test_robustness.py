"""Mangled topology documents give a TopologyError or a report -- never a crash."""
import copy

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from topology.errors import TopologyError
from topology.load import topology_from_data
from topology.verify import verify

with open(__file__.rsplit("/tests/", 1)[0] + "/scenarios/topologies/dual-fabric.yaml") as fh:
    BASE = yaml.safe_load(fh)

JUNK = st.one_of(st.none(), st.integers(-3, 70000), st.text(max_size=12), st.booleans(),
                 st.lists(st.text(max_size=5), max_size=2), st.sampled_from(
                     ["SWA/3", "SWZ/1", "ARR1:5", "ARR1:9", "21:00:00:e0:8b:05:05:14", "NTFS", "FAT32", "DM2"]))


def _paths(node, prefix=()):
    if isinstance(node, dict):
        for k, v in node.items():
            yield prefix + (k,)
            yield from _paths(v, prefix + (k,))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield prefix + (i,)
            yield from _paths(v, prefix + (i,))


PATHS = list(_paths(BASE))


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.sampled_from(PATHS), JUNK), min_size=1, max_size=3))
def test_mutated_documents_never_crash(mutations):
    doc = copy.deepcopy(BASE)
    for path, value in mutations:
        node = doc
        try:
            for key in path[:-1]:
                node = node[key]
            node[path[-1]] = value
        except (KeyError, IndexError, TypeError):
            continue
    try:
        topo = topology_from_data(doc, file="fuzz.yaml")
    except TopologyError as exc:
        assert str(exc).startswith("fuzz.yaml")
        return
    report = verify(topo)
    for v in report.volumes:
        assert v.path in (None, "server-free", "lan-free", "lan")
        assert v.server_free == ("server-free" not in v.reasons)


WORDS = st.sampled_from(["define", "update", "def", "upd", "datamover", "path", "disk", "drive", "library",
                         "stgpool", "devclass", "DM1", "DRV1", "LIB1", "SFPOOL", "LTOCLASS", "CLIENT1", "-",
                         "type=scsi", "wwn=21:00:00:e0:8b:05:05:04", "srctype=datamover", "desttype=drive",
                         "desttype=disk", "library=LIB1", "lun=x", "lun=3", "online=maybe", "online=no",
                         "dataformat=nonblock", "devtype=lto", "node=CLIENT1", "'unterminated", "/*", "*/", "="])


@settings(max_examples=150, deadline=None)
@given(st.lists(st.lists(WORDS, min_size=1, max_size=7).map(" ".join), min_size=1, max_size=6))
def test_random_macros_never_crash(lines):
    from topology.tsm_macro import merge_macro_text

    fabric = topology_from_data(copy.deepcopy(BASE))
    try:
        merged = merge_macro_text(fabric, "\n".join(lines), file="fuzz.mac")
    except TopologyError as exc:
        assert "fuzz.mac" in str(exc)
        return
    verify(merged)
