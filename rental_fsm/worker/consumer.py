"""kombu consumer: AMQP messages in, ``EventHandler`` outcomes out, acks only after commit.

OneAPI creates its queues (one per subscribed topic); by default the worker consumes them
passively and declares nothing. ``declare=True`` declares durable queues for local use.
Only JSON is accepted (``accept=["json"]``), and bodies are decoded by our codec, never by
kombu, so a pickle or YAML message is dead-lettered without being deserialised.

Messages are handled in batches: whatever the broker has already delivered (up to the
prefetch) goes to ``EventHandler.handle_batch`` together and is acked with one
``multiple`` ack after its writes. A batch that fails is handled again one message at a
time, under the policy below.

A transient failure (Redis down, version conflict exhausted) does not ack: the message is
retried in place with backoff, which also holds back the queue while the store is away;
on shutdown it is requeued. The connection loop of ``ConsumerMixin`` reconnects to
RabbitMQ on its own, and anything unacked is redelivered, where dedupe by event id
makes a second delivery harmless.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import structlog
from kombu.connection import Connection
from kombu.entity import Queue
from kombu.mixins import ConsumerMixin

from ..errors import RentalFSMError
from ..events.handler import EventHandler, Handled, Inbound
from .backoff import compute_backoff

log = structlog.get_logger(__name__)

#: In-place attempts for an unexpected error (a bug) before the message is dead-lettered.
MAX_BUG_ATTEMPTS = 3


class KombuEventConsumer(ConsumerMixin):  # type: ignore[misc]
    """Consumes the configured queues and hands every message to the handler."""

    def __init__(
        self, connection: Connection, queues: Sequence[str], handler: EventHandler, *,
        prefetch: int = 100, batch: int | None = None, declare: bool = False,
        on_handled: Callable[[Handled], None] | None = None,
        sleep: Callable[[float], None] | None = None,
    ) -> None:
        if not queues:
            raise ValueError("no queues to consume: set RENTAL_FSM_EVENT_QUEUES")
        self.connection = connection
        self.queue_names = tuple(queues)
        self.handler = handler
        self.prefetch = prefetch
        #: Most messages handled together; at most the prefetch (no more are in hand).
        self.batch = max(1, min(batch or prefetch, prefetch))
        self._batch: list[Any] = []
        self.declare = declare
        self.on_handled = on_handled
        self._stop = threading.Event()
        #: Set once the consumers are registered with the broker (tests, health checks).
        self.ready = threading.Event()
        self._sleep = sleep or self._interruptible_sleep
        self.handled = 0

    # ConsumerMixin's stop flag, tied to our event so a sleeping retry wakes up.
    @property
    def should_stop(self) -> bool:  # type: ignore[override]
        return self._stop.is_set()

    @should_stop.setter
    def should_stop(self, value: bool) -> None:
        if value:
            self._stop.set()
        else:
            self._stop.clear()

    def stop(self) -> None:
        self._stop.set()

    def _interruptible_sleep(self, seconds: float) -> None:
        self._stop.wait(seconds)

    def _queues(self) -> list[Queue]:
        if self.declare:
            return [Queue(name, durable=True, auto_delete=False)  # type: ignore[no-untyped-call]
                    for name in self.queue_names]
        return [Queue(name, no_declare=True)  # type: ignore[no-untyped-call]
                for name in self.queue_names]

    def get_consumers(self, consumer_cls: Any, channel: Any) -> list[Any]:
        return [consumer_cls(queues=self._queues(), accept=["json"],
                             on_message=self.on_message, prefetch_count=self.prefetch)]

    def on_consume_ready(self, connection: Any, channel: Any, consumers: Any, **kw: Any) -> None:
        self.ready.set()

    def on_connection_error(self, exc: Exception, interval: float) -> None:
        log.warning("broker.unavailable", error=str(exc), retry_in_s=interval)

    def on_connection_revived(self) -> None:
        log.info("broker.connected", queues=list(self.queue_names))

    def consume(self, limit: int | None = None, timeout: float | None = None,
                safety_interval: float = 1, **kwargs: Any) -> Iterator[None]:
        """``ConsumerMixin.consume`` with batches: after each wait, whatever else the
        broker has already sent is drained without waiting (up to ``batch`` messages),
        then the batch is handled and acked (see ``_flush``)."""
        elapsed = 0.0
        with self.consumer_context(**kwargs) as (conn, _channel, _consumers):
            turns = range(limit) if limit else itertools.count()
            try:
                for _ in turns:
                    if self.should_stop:
                        break
                    self.on_iteration()  # type: ignore[no-untyped-call]
                    try:
                        conn.drain_events(timeout=safety_interval)
                    except TimeoutError:
                        conn.heartbeat_check()
                        elapsed += safety_interval
                        if timeout and elapsed >= timeout:
                            raise
                        continue
                    except OSError:
                        if not self.should_stop:
                            raise
                        continue
                    while len(self._batch) < self.batch:
                        try:
                            conn.drain_events(timeout=0)
                        except TimeoutError:
                            break
                    self._flush()
                    yield
                    elapsed = 0
            except BaseException:
                self._batch.clear()  # unacked: the broker redelivers them
                raise
            self._flush()  # stopping: finish and ack what is in hand

    def on_message(self, message: Any) -> None:
        self._batch.append(message)

    def _flush(self) -> None:
        """Handle the buffered messages together and ack them with one ``multiple`` ack.

        If the batch fails as a whole (Redis away, or a bug in one message), every
        message of it goes through ``_handle_one`` instead, which retries transient errors
        in place and dead-letters a message that keeps failing; messages the batch
        already handled are recognised as duplicates.
        """
        batch, self._batch = self._batch, []
        if not batch:
            return
        started = time.monotonic()
        try:
            results = self.handler.handle_batch([
                Inbound(m.body, m.content_type, _queue_of(m, self.queue_names), m.headers)
                for m in batch])
        except Exception as exc:
            log.warning("batch.failed", size=len(batch), error=str(exc),
                        transient=isinstance(exc, RentalFSMError) and exc.transient)
            for message in batch:
                self._handle_one(message)
            return
        batch[-1].ack(multiple=True)  # every delivery of this channel up to the last
        self.handled += len(batch)
        log.debug("batch.acked", size=len(batch),
                  duration_ms=round((time.monotonic() - started) * 1000, 2))
        if self.on_handled is not None:
            for handled in results:
                self.on_handled(handled)

    def _handle_one(self, message: Any) -> None:
        attempt = 0
        while True:
            attempt += 1
            started = time.monotonic()
            try:
                handled = self.handler.handle(
                    message.body, content_type=message.content_type,
                    queue=_queue_of(message, self.queue_names), headers=message.headers,
                )
            except Exception as exc:
                if isinstance(exc, RentalFSMError) and exc.transient:
                    if self._retry_or_requeue(message, attempt, exc):
                        continue
                    return
                # Anything else is a bug (or a corrupt record): retry a little, then keep
                # the message as a dead letter; the worker goes on with the next one.
                log.exception("event.failed", attempt=attempt)
                if attempt < MAX_BUG_ATTEMPTS and not self.should_stop:
                    self._sleep(compute_backoff(attempt))
                    continue
                self.handler.dead_letters.put(
                    _raw(message.body), reason=f"internal error: {type(exc).__name__}: {exc}",
                    queue=_queue_of(message, self.queue_names), headers=message.headers)
                message.ack()
                return
            message.ack()
            self.handled += 1
            log.debug("message.acked", outcome=handled.outcome.value,
                      duration_ms=round((time.monotonic() - started) * 1000, 2))
            if self.on_handled is not None:
                self.on_handled(handled)
            return

    def _retry_or_requeue(self, message: Any, attempt: int, exc: Exception) -> bool:
        if self.should_stop:
            message.requeue()  # shutting down: leave it to the next worker, never lost
            return False
        delay = compute_backoff(attempt)
        log.warning("event.retrying", attempt=attempt, error=str(exc), retry_in_s=round(delay, 3))
        self._sleep(delay)
        return True


def _raw(body: bytes | str) -> bytes:
    return body.encode() if isinstance(body, str) else body


def _queue_of(message: Any, names: Sequence[str]) -> str:
    """The queue a message came from (kombu gives the routing key; one queue = its name)."""
    key = str(message.delivery_info.get("routing_key") or "")
    return key if key in names or len(names) != 1 else names[0]
