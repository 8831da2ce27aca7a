"""`rental-fsm replay`, `coverage`, `export` and `diagram --log` end to end."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from replay_helpers import GOLDEN, LOGS, load_recorder

from rental_fsm.cli import main
from rental_fsm.replay import replay


def test_replay_exits_0_on_the_golden_logs(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["replay", "--jobs", "1", *map(str, GOLDEN)]) == 0
    out = capsys.readouterr().out
    assert "0 divergence(s)" in out and "happy: ok: IDLE -> STARTING -> RUNNING" in out


def test_replay_json_has_the_documented_shape(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["replay", "--json", str(LOGS / "auto_cancel.jsonl")]) == 0
    rental = json.loads(capsys.readouterr().out)["rentals"]["auto-cancel"]
    assert set(rental) == {"state", "billable", "end_reason", "transitions", "calls",
                           "divergence"}
    assert (rental["state"], rental["billable"], rental["end_reason"]) == (
        "ENDED", False, "auto_cancelled")
    assert rental["transitions"][0] == {"trigger": "start", "source": "IDLE",
                                        "dest": "STARTING"}
    assert rental["calls"][0] == {
        "method": "POST", "path": "/vehicles/V1/commands/unlock-and-enable-driving"}
    assert rental["divergence"] is None


def test_replay_exits_1_on_a_divergence(tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "changed.jsonl"
    path.write_text((LOGS / "start_failed.jsonl").read_text().replace(
        '"trigger":"start_failed","source":"STARTING","dest":"IDLE"',
        '"trigger":"start_timeout","source":"STARTING","dest":"IDLE"'))
    assert main(["replay", "--json", str(path)]) == 1
    divergence = json.loads(capsys.readouterr().out)["rentals"]["start-failed"]["divergence"]
    assert divergence["seq"] == 4
    assert divergence["recorded"]["trigger"] == "start_timeout"
    assert divergence["replayed"]["trigger"] == "start_failed"


def test_replay_exits_2_on_an_unreadable_log(tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text((LOGS / "happy_path.jsonl").read_text() + "{oops\n")
    assert main(["replay", str(path)]) == 2
    assert f"{path}:16: not JSON" in capsys.readouterr().err


def test_progress_shows_on_request(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["replay", "--progress", str(LOGS / "happy_path.jsonl")]) == 0
    err = capsys.readouterr().err
    assert "replay [" in err and "100% 15/15 lines" in err


def test_forked_jobs_give_the_same_report(tmp_path: Path) -> None:
    from rental_fsm.replay import Replayer, parse_lines

    lines = []
    for copy in range(20):  # enough lines for the process pool to be used
        for path in GOLDEN:
            for text in path.read_text().splitlines():
                entry = json.loads(text)
                entry["rental_id"] = f"{entry['rental_id']}-{copy}"
                lines.append(json.dumps(entry))
    parsed = list(parse_lines(lines))
    serial = Replayer().replay_lines(parsed).to_dict()
    forked = Replayer().replay_lines(parsed, jobs=2).to_dict()
    assert forked == serial and len(serial["rentals"]) == 20 * 21


def test_coverage_reports_covered_and_missing(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["coverage", "--strict", *map(str, GOLDEN)]) == 0
    assert capsys.readouterr().out.startswith("33/33 transitions covered")
    assert main(["coverage", "--strict", "--json", str(LOGS / "happy_path.jsonl")]) == 1
    report = json.loads(capsys.readouterr().out)
    assert {"trigger": "end_confirmed", "source": "ENDING", "dest": "ENDED", "count": 1} \
        in report["covered"]
    assert any(m["trigger"] == "auto_cancel" for m in report["missing"])


def test_diagram_highlights_the_path_of_one_rental(tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    log = str(LOGS / "start_failed.jsonl")
    assert main(["diagram", "--log", log, "--rental", "start-failed"]) == 0
    mermaid = capsys.readouterr().out
    assert "IDLE --> STARTING : #1 start" in mermaid
    assert "STARTING --> IDLE : #2 start_failed" in mermaid
    assert "IDLE --> ENDED : #3 force_end" in mermaid
    assert "class STARTING visited" in mermaid and "class PAUSING visited" not in mermaid
    out = tmp_path / "path.dot"
    assert main(["diagram", "--log", log, "--rental", "start-failed", "--format", "dot",
                 "-o", str(out)]) == 0
    dot = out.read_text()
    assert 'STARTING -> IDLE [label="#2\\nstart_failed' in dot and "penwidth=3" in dot
    assert main(["diagram", "--log", log, "--rental", "nobody"]) == 1
    assert main(["diagram", "--log", log]) == 2


def test_diagram_of_an_inputs_only_log_replays_it(tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "hand.jsonl"
    path.write_text(
        '{"v":1,"seq":1,"rental_id":"r1","kind":"request","at":"2026-11-22T10:00:00Z",'
        '"op":"start","args":{"vehicle_id":"V1","customer_id":"c1"},"capabilities":'
        '{"commands":["UNLOCK_AND_ENABLE_DRIVING"],"vehicle_state":[]}}\n'
        '{"v":1,"seq":2,"rental_id":"r1","kind":"clock","at":"2026-11-22T10:01:00Z"}\n')
    assert main(["diagram", "--log", str(path), "--rental", "r1"]) == 0
    assert "after 45 s (start_timeout)" in capsys.readouterr().out


@pytest.mark.redis
def test_export_from_redis_replays_cleanly(
    redis_client, redis_namespace, tmp_path: Path,  # type: ignore[no-untyped-def]
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    from rental_fsm.store import Keys
    from rental_fsm.store.redis import RedisRentalStore

    recorder = load_recorder()
    rig = recorder.Rig(RedisRentalStore(redis_client, Keys(redis_namespace)))
    recorder.SCENARIOS["happy_path"](rig)
    recorder.SCENARIOS["start_failed"](rig)
    monkeypatch.setenv("RENTAL_FSM_REDIS_URL", "redis://127.0.0.1:6379/0")
    monkeypatch.setenv("RENTAL_FSM_NAMESPACE", redis_namespace)
    out = tmp_path / "all.jsonl"
    assert main(["export", "--all", "-o", str(out)]) == 0
    assert "exported 21 lines of 2 rental(s)" in capsys.readouterr().err
    report = replay(out)
    assert report.ok and set(report.rentals) == {"happy", "start-failed"}
    assert out.read_text().count("\n") == 21
    one = tmp_path / "one.jsonl"
    assert main(["export", "happy", "-o", str(one)]) == 0
    assert one.read_text() == (LOGS / "happy_path.jsonl").read_text()
    assert main(["export", "--all", "--since", "2030-01-01T00:00:00Z", "-o", str(one)]) == 0
    assert one.read_text() == ""


def test_export_needs_redis(monkeypatch: pytest.MonkeyPatch,
                            capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("RENTAL_FSM_REDIS_URL", raising=False)
    assert main(["export", "--all"]) == 3
    assert "RENTAL_FSM_REDIS_URL" in capsys.readouterr().err
