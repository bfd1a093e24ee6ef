"""Target config errors read as plain sentences: no pydantic "Value error, " prefix."""
import pytest

from scsi.target.config import load_config


@pytest.mark.parametrize("body, message", [
    ("target: iqn.2026-11.org.x:t\nluns: [{id: 0, path: nothere.img}]", "luns.0: path "),
    ("target: iqn.bad\nportal: nohost\nluns: [{id: 0, path: a.img}]", "portal: portal 'nohost' is not HOST:PORT"),
    ("target: iqn.bad\nluns: [{id: 0, path: a.img}]", "target: target 'iqn.bad' is not an iSCSI name"),
])
def test_no_value_error_prefix(tmp_path, body, message):
    (tmp_path / "a.img").write_bytes(bytes(4096))
    cfg = tmp_path / "mover.yaml"
    cfg.write_text(body)
    with pytest.raises(ValueError) as e:
        load_config(cfg)
    assert message in str(e.value) and "Value error" not in str(e.value), str(e.value)
