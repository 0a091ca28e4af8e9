"""The watch body reader: chunked coding undone, lines rebuilt, bursts over a real socket."""

from __future__ import annotations

import random
import socket
import threading
import time
from collections.abc import Iterator

import pytest
import urllib3

from edge_operator.kube import _payload
from edge_operator.stream import ChunkError, Dechunker, Lines


def chunked(payload: bytes, sizes: list[int], extension: bool = False) -> bytes:
    out, at = [], 0
    for size in sizes:
        piece = payload[at : at + size]
        at += size
        ext = b";name=value" if extension else b""
        out.append(b"%x%s\r\n%s\r\n" % (len(piece), ext, piece))
    assert at >= len(payload)
    return b"".join(out) + b"0\r\n\r\n"


def fed(dechunker: Dechunker, data: bytes, cuts: list[int]) -> bytes:
    out, last = [], 0
    for cut in [*sorted(cuts), len(data)]:
        out.append(dechunker.feed(data[last:cut]))
        last = cut
    return b"".join(out)


def test_dechunker_rebuilds_the_payload_however_the_bytes_are_split() -> None:
    rng = random.Random(7)
    payload = bytes(rng.randrange(256) for _ in range(5000))
    body = chunked(payload, [1, 2, 300, 4096, 601], extension=True)
    for cut in range(len(body) + 1):  # every single split point
        d = Dechunker()
        assert fed(d, body, [cut]) == payload
        assert d.done
    for _ in range(200):
        d = Dechunker()
        cuts = [rng.randrange(len(body)) for _ in range(rng.randrange(1, 40))]
        assert fed(d, body, cuts) == payload
        assert d.done


def test_dechunker_stops_at_the_last_chunk_and_waits_for_more() -> None:
    d = Dechunker()
    assert d.feed(b"5\r\nhel") == b"hel"
    assert not d.done
    assert d.feed(b"lo\r") == b"lo"
    assert d.feed(b"\n0\r\n\r\nignored") == b""
    assert d.done


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"zz\r\nab\r\n", "not hexadecimal"),
        (b"2\r\nabXY", "not followed by CRLF"),
        (b"1" * 2000, "longer than 1 KB"),
    ],
)
def test_dechunker_refuses_a_body_that_is_not_chunked_coding(body: bytes, message: str) -> None:
    with pytest.raises(ChunkError, match=message):
        Dechunker().feed(body)


def test_lines_joins_pieces_and_drops_blank_lines() -> None:
    lines = Lines()
    assert lines.feed(b'{"a"') == []
    assert lines.feed(b":1}\n\n{") == [b'{"a":1}']
    assert lines.feed(b'"b":2') == []
    assert lines.feed(b"}\n") == [b'{"b":2}']
    assert lines.feed(b"") == []


# --- _payload over a real socket: a chunked HTTP/1.1 stream from a server on 127.0.0.1 ----


def serve(events: list[tuple[float, bytes]]) -> tuple[int, threading.Thread]:
    """A one-request HTTP server sending each event (after its delay) as one chunk."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)

    def run() -> None:
        conn, _ = listener.accept()
        with conn, listener:
            conn.recv(65536)
            conn.sendall(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                b"Transfer-Encoding: chunked\r\n\r\n"
            )
            for delay, data in events:
                time.sleep(delay)
                conn.sendall(b"%x\r\n%s\r\n" % (len(data), data))
            conn.sendall(b"0\r\n\r\n")

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return listener.getsockname()[1], thread


def bursts(port: int, pause: float) -> Iterator[bytes]:
    pool = urllib3.PoolManager()
    response = pool.request("GET", f"http://127.0.0.1:{port}/", preload_content=False)
    try:
        yield from _payload(response, pause)
    finally:
        response.release_conn()


def test_payload_reads_a_real_chunked_stream_whole() -> None:
    lines = [b'{"n":%d,"pad":"%s"}\n' % (i, b"x" * (i * 997 % 20000)) for i in range(40)]
    port, thread = serve([(0.0, line) for line in lines])
    assert b"".join(bursts(port, pause=0.0)) == b"".join(lines)
    thread.join(5)


def test_payload_gathers_what_arrives_during_the_pause_into_one_burst() -> None:
    # The first event arrives alone; the next five arrive from 0.1 s on, 20 ms apart,
    # while the reader pauses for 0.6 s after the first, so they come as one burst.
    events = [(0.0, b"first\n")] + [(0.1 if i == 0 else 0.02, b"next%d\n" % i) for i in range(5)]
    port, thread = serve(events)
    got = list(bursts(port, pause=0.6))
    assert got == [b"first\n", b"".join(e for _, e in events[1:])]
    thread.join(5)
