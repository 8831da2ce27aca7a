"""The buffered AMQP frame reader: frames cut right from any split of the byte stream,
partial frames kept across timeouts, the same errors as py-amqp; and, live, every message
of a real RabbitMQ queue delivered intact and in order."""

from __future__ import annotations

import random
import socket
import struct
from collections.abc import Iterator

import pytest
from amqp.exceptions import UnexpectedFrame
from kombu import Consumer, Producer, Queue
from services import AMQP_URL, unique

from rental_fsm.worker.amqp_reader import (
    BufferedConnection,
    BufferedTCPTransport,
    BufferedTransport,
    connection,
)


def frame(frame_type: int, channel: int, payload: bytes, end: int = 206) -> bytes:
    return struct.pack(">BHI", frame_type, channel, len(payload)) + payload + bytes([end])


@pytest.fixture
def pair() -> Iterator[tuple[BufferedTCPTransport, socket.socket]]:
    ours, theirs = socket.socketpair()
    transport = BufferedTCPTransport("127.0.0.1:1")  # never connected: sock set by hand
    transport.sock = ours
    transport._setup_transport()
    transport.connected = True
    yield transport, theirs
    ours.close()
    theirs.close()


def test_frames_split_and_coalesced_anywhere_come_out_whole(pair) -> None:  # type: ignore[no-untyped-def]
    transport, peer = pair
    rng = random.Random(7)
    frames = [(rng.choice([1, 2, 3, 8]), rng.randrange(3),
               bytes(rng.randrange(256) for _ in range(rng.choice([0, 1, 7, 300, 70000]))))
              for _ in range(60)]
    stream = b"".join(frame(*f) for f in frames)
    peer.setblocking(True)
    got = []
    cut = 0
    while cut < len(stream):  # pieces of 1 byte to 90 KB, each read as far as it goes
        size = rng.choice([1, 3, 8, 1000, 90000])
        peer.sendall(stream[cut:cut + size])
        cut += size
        transport.sock.settimeout(0)
        while True:
            try:
                got.append(transport.read_frame())
            except TimeoutError:
                break
    assert got == frames
    assert not transport.frame_ready()


def test_a_partial_frame_survives_a_timeout(pair) -> None:  # type: ignore[no-untyped-def]
    transport, peer = pair
    whole = frame(1, 1, b"x" * 100)
    peer.sendall(whole[:50])
    transport.sock.settimeout(0.05)
    with pytest.raises(TimeoutError):
        transport.read_frame()
    assert not transport.frame_ready()
    peer.sendall(whole[50:] + frame(2, 1, b"next"))
    assert transport.read_frame() == (1, 1, b"x" * 100)
    assert transport.frame_ready()  # read along with the first: no socket needed for it
    transport.sock.close()
    assert transport.read_frame() == (2, 1, b"next")


def test_a_wrong_frame_end_is_an_unexpected_frame(pair) -> None:  # type: ignore[no-untyped-def]
    transport, peer = pair
    peer.sendall(frame(1, 0, b"abc", end=0))
    with pytest.raises(UnexpectedFrame):
        transport.read_frame()


def test_a_closed_peer_marks_the_transport_disconnected(pair) -> None:  # type: ignore[no-untyped-def]
    transport, peer = pair
    peer.sendall(frame(1, 0, b"abc")[:4])
    peer.close()
    with pytest.raises(OSError, match="unexpectedly closed"):
        transport.read_frame()
    assert transport.connected is False


def test_only_plain_amqp_urls_get_the_buffered_reader() -> None:
    assert connection("amqp://guest:guest@127.0.0.1:5672//").transport_cls is BufferedTransport
    assert connection("memory://").transport_cls == "memory"
    assert connection("amqps://guest:guest@127.0.0.1:5671//").transport_cls \
        is not BufferedTransport


def test_every_message_of_a_real_queue_arrives_intact_and_in_order(
        amqp_connection, amqp_queues) -> None:  # type: ignore[no-untyped-def]
    name = unique("rfsm-test-reader")
    amqp_queues.append(name)
    queue = Queue(name, durable=False, auto_delete=False)
    rng = random.Random(11)
    # Small events and bodies larger than a frame (131,072 bytes) and than one read.
    bodies = [{"n": i, "pad": "p" * rng.choice([10, 500, 70000, 200000])} for i in range(300)]
    with amqp_connection.clone() as conn:
        channel = conn.channel()
        queue(channel).declare()
        producer = Producer(channel, serializer="json")
        for body in bodies:
            producer.publish(body, routing_key=name)
    received: list[dict[str, object]] = []
    with connection(AMQP_URL, heartbeat=30) as conn:
        conn.connect()
        assert isinstance(conn.connection, BufferedConnection)
        assert isinstance(conn.connection.transport, BufferedTCPTransport)
        channel = conn.channel()

        def on_message(message) -> None:  # type: ignore[no-untyped-def]
            received.append(message.decode())
            message.ack()

        with Consumer(channel, queues=[queue], accept=["json"], on_message=on_message,
                      prefetch_count=50):
            for _ in range(2000):  # bounded: the queue holds 300
                if len(received) == len(bodies):
                    break
                try:
                    conn.drain_events(timeout=0 if received else 2)
                except TimeoutError:
                    conn.drain_events(timeout=2)
    assert received == bodies
