"""What a sweep runs: ``--vary KEY=SPEC`` parsed, the runs they make, and a scenario with a run's values.

KEY is a dotted path into the scenario file (``faults.0.at_percent``,
``calibration.tape_native_mb_s``, ``jobs.0.count``); list items are numbered
from 0.  SPEC is one value, a comma list (``lan-free,lan``; each item read as
YAML, so ``10`` is a number) or an arithmetic range ``LOW:HIGH:STEP`` (HIGH
included when a step lands on it).  The runs are every combination of the
varied values, each with ``--seeds N`` seeds (the scenario's seed, then the
next N-1), numbered in that order: run ``i`` is the same simulation on every
machine and every attempt, so a sweep is deterministic and can resume.
"""
from __future__ import annotations

import copy
import itertools
from dataclasses import dataclass
from typing import Any

import yaml
from simulator.scenarios.load import CiScenario, validate


class SweepSpecError(ValueError):
    """A ``--vary`` or ``--seeds`` the scenario cannot take; the message names the option."""


@dataclass(frozen=True)
class Vary:
    key: str
    values: tuple[Any, ...]


@dataclass(frozen=True)
class Run:
    run: int
    seed: int
    values: tuple[tuple[str, Any], ...]  # (key, value) of each --vary


def _scalar(text: str) -> Any:
    try:
        return yaml.safe_load(text) if text.strip() else ""
    except yaml.YAMLError:
        return text


def _range(key: str, spec: str) -> tuple[Any, ...]:
    parts = spec.split(":")
    try:
        lo, hi, step = (float(p) for p in parts)
    except ValueError:
        raise SweepSpecError(f"--vary {key}={spec}: a range is LOW:HIGH:STEP with three numbers") from None
    if not step > 0 or hi < lo:
        raise SweepSpecError(f"--vary {key}={spec}: a range needs STEP > 0 and HIGH >= LOW")
    n = int((hi - lo) / step + 1e-9) + 1
    if n > 1_000_000:
        raise SweepSpecError(f"--vary {key}={spec}: {n} values; at most 1,000,000")
    whole = all(float(p).is_integer() for p in parts) and all("." not in p for p in parts)
    return tuple(int(lo + i * step) if whole else round(lo + i * step, 12) for i in range(n))


def parse_vary(text: str) -> Vary:
    """``KEY=SPEC`` -> :class:`Vary`; a malformed one raises :class:`SweepSpecError` naming it."""
    key, eq, spec = text.partition("=")
    key = key.strip()
    if not eq or not key or not spec.strip():
        raise SweepSpecError(f"--vary {text!r}: expected KEY=SPEC, e.g. faults.0.at_percent=0:100:10")
    if any(not part for part in key.split(".")):
        raise SweepSpecError(f"--vary {text!r}: KEY is a dotted path such as calibration.tape_native_mb_s")
    if spec.count(":") == 2 and "," not in spec:
        return Vary(key, _range(key, spec))
    return Vary(key, tuple(_scalar(v) for v in spec.split(",")))


def set_path(data: Any, key: str, value: Any) -> None:
    """Set ``data[a][b]...`` for the dotted ``key``; the parent must exist (list items by number)."""
    parts = key.split(".")
    node = data
    for depth, part in enumerate(parts):
        last = depth == len(parts) - 1
        where = ".".join(parts[:depth]) or "the scenario"
        if isinstance(node, list):
            if not part.isdigit() or int(part) >= len(node):
                raise SweepSpecError(f"--vary {key}: {where} has {len(node)} item(s), numbered from 0; "
                                     f"no item {part!r}")
            if last:
                node[int(part)] = value
            else:
                node = node[int(part)]
        elif isinstance(node, dict):
            if last:
                node[part] = value
            elif part not in node or not isinstance(node[part], (dict, list)):
                raise SweepSpecError(f"--vary {key}: {where} has no section {part!r} to vary inside")
            else:
                node = node[part]
        else:
            raise SweepSpecError(f"--vary {key}: {where} is a single value, not a section")


def scenario_for(base: dict[str, Any], values: tuple[tuple[str, Any], ...]) -> CiScenario:
    """The base scenario with a run's values set, validated (errors name the --vary key)."""
    data = copy.deepcopy(base)
    for key, value in values:
        set_path(data, key, value)
    shown = ", ".join(f"{k}={v}" for k, v in values)
    return validate(CiScenario, data, f"--vary {shown}", error=SweepSpecError)


def plan_runs(base: dict[str, Any], varies: list[Vary], seeds: int) -> list[Run]:
    """Every combination of the varied values x seeds, each value checked once against the schema."""
    if seeds < 1:
        raise SweepSpecError(f"--seeds {seeds}: must be at least 1")
    keys = [v.key for v in varies]
    if len(set(keys)) != len(keys):
        raise SweepSpecError(f"--vary: a key is given twice ({', '.join(keys)})")
    for v in varies:  # one value at a time: a bad value is named, and checking stays O(values)
        for value in v.values:
            scenario_for(base, ((v.key, value),))
    first = int(base.get("seed", 0) or 0)
    runs = []
    combos = itertools.product(*(v.values for v in varies)) if varies else [()]
    for combo in combos:
        values = tuple(zip(keys, combo))
        for s in range(seeds):
            runs.append(Run(len(runs), first + s, values))
    return runs
