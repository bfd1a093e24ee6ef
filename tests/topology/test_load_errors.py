"""Bad topology files fail with the file, the place inside it and the value."""
import json

import pytest
import yaml

from topology.errors import TopologyError
from topology.load import load_topology


@pytest.fixture
def small(topologies):
    return yaml.safe_load((topologies / "small.yaml").read_text())


def write(tmp_path, data, name="t.yaml"):
    p = tmp_path / name
    p.write_text(json.dumps(data) if name.endswith(".json") else yaml.safe_dump(data))
    return p


def error(tmp_path, data, name="t.yaml") -> TopologyError:
    path = write(tmp_path, data, name)
    with pytest.raises(TopologyError) as exc:
        load_topology(path)
    assert exc.value.file == str(path)
    return exc.value


def test_json_loads_like_yaml(tmp_path, small):
    topo = load_topology(write(tmp_path, small, "t.json"))
    assert topo.volumes[0].id == "CLIENT1:H:"


def test_malformed_wwn_names_place_and_value(tmp_path, small):
    small["hosts"][0]["hba_ports"][0]["wwpn"] = "10:00:00:00:c9:00:00:0z"
    e = error(tmp_path, small)
    assert e.location == "hosts[0](CLIENT1).hba_ports[0].wwpn"
    assert "'z' is not a hex digit" in str(e) and "10:00:00:00:c9:00:00:0z" in str(e)


def test_duplicate_wwpn(tmp_path, small):
    small["datamovers"][0]["ports"][0]["wwpn"] = "10:00:00:00:c9:00:00:02"
    e = error(tmp_path, small)
    assert e.location == "datamovers[0](DM1).ports[0].wwpn"
    assert "duplicate WWPN 10:00:00:00:c9:00:00:02, already used at hosts[1](TSMSRV).hba_ports[0].wwpn" in str(e)


def test_unknown_name(tmp_path, small):
    small["volumes"][0]["mgmtclass"] = "NOPE"
    e = error(tmp_path, small)
    assert e.location == "volumes[0].mgmtclass" and "unknown management class 'NOPE'" in str(e)


def test_unknown_switch_in_link(tmp_path, small):
    small["links"][0]["b"] = "SW9/0"
    e = error(tmp_path, small)
    assert e.location == "links[0].b" and "unknown switch 'SW9'" in str(e)


def test_volume_on_lun_nobody_presents(tmp_path, small):
    small["arrays"][0]["masking"] = []
    e = error(tmp_path, small)
    assert e.location == "volumes[0].lun"
    assert "masked to no initiator (nobody presents it)" in str(e)


def test_volume_on_unknown_lun(tmp_path, small):
    small["volumes"][0]["lun"] = "ARR1:9"
    e = error(tmp_path, small)
    assert "array ARR1 has no LUN 9" in str(e) and e.value == "ARR1:9"


def test_unknown_field_is_rejected(tmp_path, small):
    small["datamovers"][0]["colour"] = "red"
    e = error(tmp_path, small)
    assert e.location == "datamovers[0](DM1).colour" and "Extra inputs are not permitted" in str(e)


def test_component_names_must_be_unique(tmp_path, small):
    small["switches"][0]["name"] = "DM1"
    for link in small["links"]:
        link["b"] = link["b"].replace("SW1", "DM1")
    e = error(tmp_path, small)
    assert "name 'DM1' is already used by switches[0](DM1).name" in str(e)


def test_cable_plugged_twice(tmp_path, small):
    small["links"][1]["b"] = "SW1/0"
    e = error(tmp_path, small)
    assert e.location == "links[1].b" and "SW1/0 is already cabled by links[0]" in str(e)


def test_yaml_syntax_error_gives_line(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text("name: x\nhosts: [\n")
    with pytest.raises(TopologyError) as exc:
        load_topology(p)
    assert exc.value.location.startswith("line ") and "invalid YAML" in str(exc.value)


def test_top_level_must_be_mapping(tmp_path):
    p = tmp_path / "list.json"
    p.write_text("[1, 2]")
    with pytest.raises(TopologyError, match="must be a mapping at the top level, got list"):
        load_topology(p)
