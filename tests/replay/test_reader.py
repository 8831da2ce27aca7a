"""The reader validates every line and names the file, the line and the reason."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rental_fsm.errors import LogFormatError
from rental_fsm.replay import by_rental, read_log

GOOD = {"v": 1, "seq": 1, "at": "2026-11-22T10:00:00.000Z", "rental_id": "r1",
        "kind": "clock"}


def _write(tmp_path: Path, *lines: str) -> Path:
    path = tmp_path / "log.jsonl"
    path.write_text("".join(line + "\n" for line in lines))
    return path


def _line(**changes: object) -> str:
    entry = {**GOOD, **changes}
    return json.dumps({k: v for k, v in entry.items() if v is not None})


def _error(path: Path) -> LogFormatError:
    with pytest.raises(LogFormatError) as caught:
        read_log(path)
    return caught.value


@pytest.mark.parametrize(("bad", "reason"), [
    ("{not json", "not JSON"),
    (_line(kind="event", lat=float("nan")), "not JSON"),  # RFC 8259 §6: NaN is not JSON
    ("[1, 2]", "not a JSON object"),
    (_line(kind="teleport"), "unknown kind 'teleport'"),
    (_line(kind=[]), "unknown kind []"),  # unhashable: hypothesis found a TypeError here
    (_line(kind={"a": 1}), "unknown kind {'a': 1}"),
    (_line(v=2), "unsupported version v=2"),
    (_line(at="yesterday"), "not an RFC 3339"),
    (_line(at="2026-11-22T10:00:01"), "not an RFC 3339"),
    (_line(seq=0), "seq must be a positive integer"),
    (_line(rental_id=None), "rental_id"),
    (_line(kind="request"), "request entry without 'op'"),
    (_line(kind="request", op="teleport"), "unknown request op"),
    (_line(kind="request", op=["start"]), "unknown request op"),
    (_line(kind="transition", trigger="start"), "without 'source'"),
])
def test_a_bad_second_line_fails_naming_file_line_and_reason(
    tmp_path: Path, bad: str, reason: str
) -> None:
    path = _write(tmp_path, _line(), bad.replace('"seq": 1', '"seq": 2'))
    error = _error(path)
    assert (error.path, error.line) == (str(path), 2)
    assert reason in error.reason
    assert str(error).startswith(f"{path}:2: ")


def test_a_gap_in_seq_is_refused(tmp_path: Path) -> None:
    path = _write(tmp_path, _line(), _line(seq=3))
    error = _error(path)
    assert error.line == 2 and "seq 3 of rental 'r1', expected 2" in error.reason


def test_seq_counts_per_rental_and_rentals_may_interleave(tmp_path: Path) -> None:
    path = _write(tmp_path, _line(), _line(rental_id="r2"), _line(seq=2),
                  _line(rental_id="r2", seq=2), "", _line(seq=3))
    groups = by_rental(read_log(path))
    assert {rid: [e.seq for e in g] for rid, g in groups.items()} == {
        "r1": [1, 2, 3], "r2": [1, 2]}
    assert groups["r1"][2].line == 6


def test_unknown_fields_are_ignored(tmp_path: Path) -> None:
    [line] = read_log(_write(tmp_path, _line(colour="blue", future={"x": 1})))
    assert line.kind == "clock" and line.entry["colour"] == "blue"


def test_a_missing_file_is_a_log_format_error(tmp_path: Path) -> None:
    error = _error(tmp_path / "nope.jsonl")
    assert error.line == 0 and "cannot read" in error.reason
