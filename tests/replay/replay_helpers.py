"""Helpers of the replay tests: the golden logs, the recorder, hand-written logs."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType
from typing import Any

LOGS = Path(__file__).resolve().parents[1] / "logs"
GOLDEN = sorted(LOGS.glob("*.jsonl"))


def load_recorder() -> ModuleType:
    """tests/logs/record.py, imported by path (tests/ is not a package)."""
    spec = importlib.util.spec_from_file_location("golden_record", LOGS / "record.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def write_log(path: Path, entries: list[dict[str, Any]]) -> Path:
    """Write entries as a log, numbering ``seq`` per rental and stamping ``v``."""
    seqs: dict[str, int] = {}
    with open(path, "w", encoding="utf-8") as out:
        for entry in entries:
            rid = entry.setdefault("rental_id", "r1")
            seqs[rid] = seqs.get(rid, 0) + 1
            out.write(json.dumps({"v": 1, "seq": seqs[rid], **entry}) + "\n")
    return path
