"""Load a topology file (YAML or JSON) into a checked :class:`~topology.model.Topology`."""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from topology.errors import TopologyError, format_location, pydantic_message, validation_line
from topology.model import Topology
from topology.references import check_references

log = logging.getLogger(__name__)


def read_document(path: str | Path) -> Any:
    """Parse YAML or JSON text; syntax errors name the line and column."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise TopologyError(f"not UTF-8 text at byte {exc.start}", file=str(path)) from None
    if path.suffix.lower() == ".json":
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise TopologyError(f"invalid JSON: {exc.msg}", file=str(path),
                                location=f"line {exc.lineno} column {exc.colno}") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1} column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise TopologyError(f"invalid YAML: {problem}", file=str(path), location=where) from None


def topology_from_data(data: Any, *, file: str | None = None, check: bool = True) -> Topology:
    """Validate a parsed document: types first (pydantic), then every cross-reference."""
    if not isinstance(data, dict):
        raise TopologyError(f"a topology must be a mapping at the top level, got {type(data).__name__}",
                            file=file)
    try:
        topo = Topology.model_validate(data)
    except ValidationError as exc:
        problems = [validation_line(err, data) for err in exc.errors()]
        first = exc.errors()[0]
        raise TopologyError(pydantic_message(first), file=file, location=format_location(first["loc"], data),
                            value=first.get("input") if not isinstance(first.get("input"), (dict, list)) else None,
                            problems=problems) from None
    if not check:  # a fabric file that a TSM macro completes is checked after the merge
        return topo
    warnings = check_references(topo, data=data, file=file)
    for w in warnings:
        log.info("%s: %s", file or "topology", w)
    topo._warnings = warnings  # type: ignore[attr-defined]
    return topo


def load_topology(path: str | Path, *, check: bool = True) -> Topology:
    """Read, validate and cross-check a topology file; raise TopologyError on the first problem.

    ``check=False`` validates types only, for a fabric description that a TSM
    macro completes (see :func:`topology.tsm_macro.merge_macros`).
    """
    return topology_from_data(read_document(path), file=str(path), check=check)
