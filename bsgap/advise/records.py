"""The advisor's measurement files: one JSON per measurement, written atomically, reused when its
settings match, never overwritten when they do not.

A record is ``{"kind": ..., "settings": {...}, "result": {...}}``. ``settings`` is everything the
measurement depends on (the resolved config fields, the batch size, the estimator's knobs);
``reuse_or_measure`` returns the stored result when a file with equal settings exists, measures and
writes it when there is none, and raises ``AdviseError`` naming the differing settings when the
file holds another measurement: the user moves it or picks another ``--workdir``.
"""
from __future__ import annotations

import json
import math
import os
from typing import Any, Callable

from bsgap import atomic_file


class AdviseError(RuntimeError):
    """A bad advisor input or a workdir holding other measurements; one paragraph, no traceback."""


def plain(value: Any) -> Any:
    """JSON-normal plain data (tuples -> lists, numpy scalars -> Python, non-finite -> None)."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def write_json(path: str, record: dict) -> None:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with atomic_file.replacing(path) as f:
        json.dump(plain(record), f, indent=1)
        f.write("\n")


def read_json(path: str) -> dict:
    with open(path) as f:
        try:
            return json.load(f)
        except json.JSONDecodeError as err:
            raise AdviseError(f"{path} is not valid JSON ({err}); it was not written by a "
                              "finished measurement (they are written atomically): move it "
                              "away and rerun") from None


def _differences(old: dict, new: dict) -> list[str]:
    keys = sorted(set(old) | set(new))
    return [f"{k}: {old.get(k, '<absent>')!r} in the file vs {new.get(k, '<absent>')!r} now"
            for k in keys if old.get(k, "<absent>") != new.get(k, "<absent>")]


def stored_result(path: str, kind: str, settings: dict) -> dict | None:
    """The stored result when ``path`` holds this measurement, None when there is no file."""
    if not os.path.exists(path):
        return None
    record = read_json(path)
    settings = plain(settings)
    if record.get("kind") != kind or record.get("settings") != settings:
        diff = _differences(record.get("settings") or {}, settings)
        raise AdviseError(
            f"{path} holds a different measurement ({record.get('kind')!r}; "
            f"{'; '.join(diff) or 'another kind'}), so it is neither reused nor overwritten. Use "
            "another --workdir, or move the file away to measure again")
    return record["result"]


def reuse_or_measure(path: str, kind: str, settings: dict, measure: Callable[[], dict],
                     log: Callable[[str], None] = lambda _: None) -> dict:
    """The stored result of this measurement, or ``measure()``'s, written to ``path`` first."""
    stored = stored_result(path, kind, settings)
    if stored is not None:
        log(f"{os.path.relpath(path)}: measured before; reused")
        return stored
    result = plain(measure())
    write_json(path, {"kind": kind, "settings": settings, "result": result})
    return result


def cost_of(log_path: str) -> dict:
    """What this workdir's measurements cost, from advise_log.jsonl: wall and CPU seconds (this
    process's, all its threads) per kind of measurement, summed over every invocation, counting
    only measurements made, not reused. Work cut off by a kill is not in the log, and neither is
    an invocation's start-up (importing JAX, loading the data)."""
    kinds: dict = {}
    if os.path.exists(log_path):
        with open(log_path) as f:
            lines = [json.loads(line) for line in f if line.strip().endswith("}")]
        for line in lines:
            if line.get("reused"):
                continue
            k = kinds.setdefault(line.get("kind", "unknown"),
                                 {"count": 0, "wall_seconds": 0.0, "cpu_seconds": 0.0})
            k["count"] += 1
            k["wall_seconds"] += line["seconds"]
            k["cpu_seconds"] += line.get("cpu_seconds") or 0.0
    return {"by_kind": kinds,
            "wall_seconds": sum(k["wall_seconds"] for k in kinds.values()),
            "cpu_seconds": sum(k["cpu_seconds"] for k in kinds.values()),
            "note": "measurements made in this workdir (reused ones not counted); start-up and "
                    "work cut off by a kill are not included"}
