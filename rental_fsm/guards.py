"""Guards of the transition table: pure predicates over what is known when deciding.

A guard takes a :class:`GuardContext` and returns a :class:`Verdict`; the reason of a
failing verdict ends up in ``GuardRejected.reasons`` and in the log line. Guards never do
I/O or read the clock: the facts they need are gathered before deciding and recorded with
the transition, so a replay decides the same way.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from .model import Facts, Rental, Timer


@dataclass(frozen=True)
class GuardContext:
    rental: Rental
    facts: Facts
    now: datetime


@dataclass(frozen=True)
class Verdict:
    ok: bool
    reason: str = ""


Guard = Callable[[GuardContext], Verdict]

PASS = Verdict(True)


def vehicle_can_unlock(ctx: GuardContext) -> Verdict:
    """Seed 000: use the capabilities to make sure the unit supports the unlock commands."""
    if ctx.facts.can_unlock:
        return PASS
    return Verdict(False, "vehicle has no capability to unlock or enable driving")


def ignition_off(ctx: GuardContext) -> Verdict:
    """Seed 000: "you should not execute any commands while the customer is driving"."""
    if ctx.facts.ignition_on:
        return Verdict(False, "ignition is on: no command while the customer is driving")
    return PASS


def keyless(ctx: GuardContext) -> Verdict:
    """Seed 000: keyless vehicles are secured for a stopover through the app's commands."""
    if ctx.facts.has_key:
        return Verdict(False, "vehicle has a physical key: its stopovers follow its events")
    return PASS


def has_key(ctx: GuardContext) -> Verdict:
    """Seed 000: with a key, stopovers are seen in the ignition and central lock values."""
    if ctx.facts.has_key:
        return PASS
    return Verdict(False, "keyless vehicle: stopovers go through the app's commands")


def end_criteria_met(ctx: GuardContext) -> Verdict:
    """Seed 000 "End rental conditions": every checkable criterion must be met."""
    if not ctx.facts.unmet:
        return PASS
    return Verdict(False, "end-rental criteria not met: " + ", ".join(ctx.facts.unmet))


def auto_cancel_armed(ctx: GuardContext) -> Verdict:
    """Only the first interaction after RUNNING matters to the 60 s auto-cancel (seed 002)."""
    if Timer.AUTO_CANCEL in ctx.rental.timers:
        return PASS
    return Verdict(False, "no auto-cancel pending")


def end_timed_out(ctx: GuardContext) -> Verdict:
    """Seed 000: a lock that timed out 'might still be executed'; its late confirmation
    still ends the rental, as long as nothing happened since the end timed out."""
    if ctx.rental.last_reason == "end_timeout":
        return PASS
    return Verdict(False, "no end attempt is waiting for a late confirmation")
