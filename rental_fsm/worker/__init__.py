"""The long-running ``rental-fsm worker``: events over AMQP, durable timers, the outbox."""

from __future__ import annotations
