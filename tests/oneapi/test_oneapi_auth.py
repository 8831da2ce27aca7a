"""Token fetch, caching and the one-refresh-one-retry rule, against the simulator."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta, timezone

import pytest

from rental_fsm.clock import ManualClock
from rental_fsm.config import Secret
from rental_fsm.errors import AuthenticationFailed
from rental_fsm.oneapi import Command, OneAPIClient
from rental_fsm.simulator import Fault, Simulator

STATE = "/vehicles/CAR1/latest-vehicle-state"


def calls(sim: Simulator, path: str) -> list[int]:
    return [status for _, p, status in sim.requests if p == path]


def test_token_is_fetched_once_and_cached(sim: Simulator, client: OneAPIClient) -> None:
    for _ in range(3):
        client.latest_vehicle_state("CAR1")
    assert sim.token_requests() == 1
    assert client.auth.fetches == 1


def test_token_is_refreshed_before_it_expires(
    sim: Simulator, make_client: Callable[..., OneAPIClient]
) -> None:
    clock = ManualClock(datetime(2026, 1, 1, tzinfo=timezone.utc))
    client = make_client(clock=clock)
    client.latest_vehicle_state("CAR1")
    clock.advance(timedelta(seconds=900 - 61))
    client.latest_vehicle_state("CAR1")
    assert sim.token_requests() == 1
    clock.advance(timedelta(seconds=2))  # now within 60 s of expires_in
    client.latest_vehicle_state("CAR1")
    assert sim.token_requests() == 2
    assert calls(sim, STATE) == [200, 200, 200]  # refreshed early: no 401 on the way


def test_expired_token_means_one_refresh_and_one_retry(
    sim: Simulator, client: OneAPIClient
) -> None:
    client.latest_vehicle_state("CAR1")
    sim.revoke_tokens()  # the server now considers the cached token expired
    result = client.command("CAR1", Command.UNLOCK_AND_ENABLE_DRIVING)
    assert result.value.central_lock == "UNLOCKED"
    assert sim.token_requests() == 2
    assert calls(sim, "/vehicles/CAR1/commands/unlock-and-enable-driving") == [401, 200]


def test_invalid_credentials_problem_on_a_command_is_retried_once(
    sim: Simulator, client: OneAPIClient
) -> None:
    sim.faults("CAR1").next_command = Fault.INVALID_CREDENTIALS
    client.command("CAR1", Command.LOCK_CENTRAL_LOCK)
    assert calls(sim, "/vehicles/CAR1/commands/lock-central-lock") == [401, 200]
    assert sim.token_requests() == 2


def test_a_second_401_is_not_retried_again(sim: Simulator, client: OneAPIClient) -> None:
    sim.faults("CAR1").every_command = Fault.INVALID_CREDENTIALS
    with pytest.raises(AuthenticationFailed) as info:
        client.command("CAR1", Command.LOCK_CENTRAL_LOCK)
    assert info.value.status == 401
    assert calls(sim, "/vehicles/CAR1/commands/lock-central-lock") == [401, 401]
    assert sim.token_requests() == 2


def test_short_lived_tokens_are_cached_for_half_their_life(sim: Simulator) -> None:
    sim.token_ttl = 2.0
    clock = ManualClock(datetime(2026, 1, 1, tzinfo=timezone.utc))
    client = OneAPIClient(sim.url, sim.client_id, sim.client_secret, clock=clock)
    client.latest_vehicle_state("CAR1")
    clock.advance(timedelta(seconds=0.9))
    client.latest_vehicle_state("CAR1")
    clock.advance(timedelta(seconds=0.2))
    client.latest_vehicle_state("CAR1")
    assert sim.token_requests() == 2


def test_wrong_secret_fails_without_retrying(sim: Simulator) -> None:
    client = OneAPIClient(sim.url, sim.client_id, Secret("wrong"))
    with pytest.raises(AuthenticationFailed) as info:
        client.get_vehicle("CAR1")
    assert info.value.problem_type == "/problems/invalid-credentials"
    assert info.value.flow_id
    assert sim.token_requests() == 1
    assert calls(sim, "/vehicles/CAR1") == []


def test_secret_must_be_a_secret(sim: Simulator) -> None:
    with pytest.raises(TypeError):
        OneAPIClient(sim.url, sim.client_id, "plain-text")  # type: ignore[arg-type]
