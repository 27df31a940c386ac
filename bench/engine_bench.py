"""In-process benchmarks of the sans-IO engine and the Minger codec (no sockets, no threads).

Harness: for each benchmark a batch function doing `n` operations is timed with
time.perf_counter; one warm-up batch, then `reps` batches (gc collected before each);
the reported rate is operations / second per batch, median with min-max.

- session: a realistic pipelined SMTP session per connection, as a PIPELINING client
  writes it (RFC 2920): EHLO alone; MAIL, RCPT and DATA in one write; the 10 KiB body,
  the final dot and QUIT in one write. 5 commands per session.
- DATA path: a 1 MiB body of 78-character lines (80 bytes with CRLF) fed in 64 KiB
  chunks into a connection already in DATA; timed from the first chunk to MessageEnd.
  Beside it the ceilings: a bare `bytes.find(b"\\r\\n.")` pass over the same chunks, and
  that pass plus one copy of every chunk (what a streaming reader must do at least).
- Minger: decode a query datagram, decide, encode the answer.
"""

from __future__ import annotations

import cProfile
import gc
import io
import pstats
import statistics
import time
from collections.abc import Callable
from typing import Any

import sansio_smtp as smtp

__all__ = ["run_all"]

CHUNK = 64 * 1024
BODY_SIZE = 1024 * 1024
LINE = b"A" * 77 + b"." + b"\r\n"  # 78 characters + CRLF; a dot inside, never at the start


def _log(text: str) -> None:
    print(f"[bench] {text}", flush=True)


def _timed(batch: Callable[[int], None], n: int, reps: int) -> list[float]:
    """Operations per second of `reps` batches of `n`, after one warm-up batch."""
    batch(max(1, n // 4))
    rates = []
    for _ in range(reps):
        gc.collect()
        start = time.perf_counter()
        batch(n)
        rates.append(n / (time.perf_counter() - start))
    return rates


_DECIDED = (smtp.Hello, smtp.MailFrom, smtp.RcptTo, smtp.MessageEnd)


def _pump(conn: smtp.ServerConnection) -> bool:
    """Answer events until the engine needs data; False once the connection closed."""
    for _ in range(1_000_000):
        event = conn.next_event()
        if event is smtp.NEED_DATA:
            return True
        if isinstance(event, _DECIDED):
            conn.send(smtp.Accept())
        elif isinstance(event, smtp.ConnectionClosed) or event is smtp.PAUSED:
            return False
    raise AssertionError("engine produced a million events for one read")


def _config() -> smtp.ServerConfig:
    return smtp.ServerConfig(hostname="mx.bench.test")


def session_batch() -> Callable[[int], None]:
    """n pipelined sessions of 5 commands each, 10 KiB body."""
    config = _config()
    body = LINE * (10 * 1024 // len(LINE))
    writes = (
        b"EHLO client.bench.test\r\n",
        b"MAIL FROM:<sender@bench.test> SIZE=10240\r\nRCPT TO:<alice@bench.test>\r\nDATA\r\n",
        b"Subject: bench\r\n\r\n" + body + b".\r\nQUIT\r\n",
    )

    def batch(n: int) -> None:
        for _ in range(n):
            conn = smtp.ServerConnection(config)
            conn.send(smtp.Greeting())
            conn.data_to_send()
            open_ = True
            for data in writes:
                conn.receive_data(data)
                open_ = _pump(conn)
                conn.data_to_send()
            if open_:
                raise AssertionError("session did not end with QUIT")

    return batch


def data_stream() -> list[bytes]:
    """The 1 MiB body plus terminator, cut in 64 KiB chunks."""
    body = LINE * (BODY_SIZE // len(LINE))
    body += b"B" * (BODY_SIZE - len(body) - 2) + b"\r\n"
    stream = body + b".\r\n"
    return [stream[i : i + CHUNK] for i in range(0, len(stream), CHUNK)]


def data_batch() -> tuple[Callable[[int], None], list[float]]:
    """n 1 MiB messages through one connection; only the chunk feeding is timed.

    Returns the batch function and a list the batch appends its timed seconds to.
    """
    config = _config()
    chunks = data_stream()
    conn = smtp.ServerConnection(config)
    conn.send(smtp.Greeting())
    conn.receive_data(b"EHLO client.bench.test\r\n")
    _pump(conn)
    conn.data_to_send()
    timings: list[float] = []
    envelope = b"MAIL FROM:<sender@bench.test>\r\nRCPT TO:<alice@bench.test>\r\nDATA\r\n"

    def batch(n: int) -> None:
        total = 0.0
        for _ in range(n):
            conn.receive_data(envelope)
            _pump(conn)
            if not conn.data_to_send().endswith(b"\r\n"):
                raise AssertionError("no 354")
            start = time.perf_counter()
            for chunk in chunks:
                conn.receive_data(chunk)
                _pump(conn)
            total += time.perf_counter() - start
            if not conn.data_to_send().startswith(b"250"):
                raise AssertionError("message not accepted")
        timings.append(total)

    return batch, timings


def find_ceiling_batch(copy: bool) -> Callable[[int], None]:
    """n passes of `bytes.find(b"\\r\\n.")` over the chunks (with one copy each if `copy`)."""
    chunks = data_stream()

    def batch(n: int) -> None:
        for _ in range(n):
            buf = bytearray()
            for chunk in chunks:
                if copy:
                    buf += chunk
                    del buf[:]
                chunk.find(b"\r\n.")

    return batch


def _profile(batch: Callable[[int], None], n: int, top: int = 18) -> str:
    profiler = cProfile.Profile()
    profiler.enable()
    batch(n)
    profiler.disable()
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    stats.strip_dirs().sort_stats("tottime").print_stats(top)
    text = out.getvalue()
    # Keep the table, drop pstats' preamble down to the totals line.
    start = text.find("function calls")
    return text[max(0, text.rfind("\n", 0, start)) :].strip() if start >= 0 else text


def minger_batch() -> Callable[[int], None] | None:
    """n Minger queries through decode, decide and encode; None if minger is missing."""
    try:
        from bench import minger_bench
    except ImportError:
        return None
    return minger_bench.batch()


_NOT_NEWLINE = bytes(b for b in range(256) if b not in b"\r\n")
# Single C-level passes over one 64 KiB chunk: what each check a DATA reader might make
# costs on its own, to read the DATA path's number against.
_PASSES: tuple[tuple[str, Callable[[bytes], object]], ...] = (
    ('pass: find(b"\\r\\n.\\r\\n")', lambda c: c.find(b"\r\n.\r\n")),
    ('pass: count(b"\\r\\n")', lambda c: c.count(b"\r\n")),
    ('pass: count(b"\\n")', lambda c: c.count(b"\n")),
    ("pass: translate(None, non-CR/LF)", lambda c: c.translate(None, _NOT_NEWLINE)),
    ("pass: bytes(bytearray(chunk))", lambda c: bytes(bytearray(c))),
)


def pass_batch(op: Callable[[bytes], object]) -> Callable[[int], None]:
    """n applications of one primitive to every chunk of the 1 MiB stream."""
    chunks = data_stream()

    def batch(n: int) -> None:
        for _ in range(n):
            for chunk in chunks:
                op(chunk)

    return batch


def run_all(*, quick: bool) -> dict[str, Any]:
    """Run every in-process benchmark; plain data for the report."""
    reps = 5 if quick else 9
    rows: list[dict[str, Any]] = []
    notes: list[str] = []

    def add(name: str, what: str, rates: list[float], unit: str) -> None:
        rows.append({"name": name, "what": what, "rates": rates, "unit": unit})
        _log(f"{name:36} {statistics.median(rates):12,.1f} {unit}")

    sessions = 200 if quick else 1000
    rates = _timed(session_batch(), sessions, reps)
    add("pipelined session", "EHLO, MAIL, RCPT, DATA 10 KiB, QUIT", rates, "sessions/s")
    add(
        "pipelined session commands",
        "one of those 5 commands",
        [r * 5 for r in rates],
        "commands/s",
    )

    messages = 10 if quick else 40
    batch, timings = data_batch()
    _timed(batch, messages, reps)
    mb = BODY_SIZE / 1e6
    what = "1 MiB of 80-byte lines in 64 KiB chunks, in DATA, to MessageEnd"
    add("DATA path", what, [messages * mb / t for t in timings[1:]], "MB/s")
    passes = 100 if quick else 400
    rates = _timed(find_ceiling_batch(copy=False), passes, reps)
    what = 'one chunk.find(b"\\r\\n.") per 64 KiB chunk'
    add("ceiling: bytes.find", what, [r * mb for r in rates], "MB/s")
    rates = _timed(find_ceiling_batch(copy=True), passes, reps)
    what = "the same plus bytearray += chunk"
    add("ceiling: find + 1 copy", what, [r * mb for r in rates], "MB/s")
    for name, op in _PASSES:
        rates = _timed(pass_batch(op), passes, reps)
        add(name, "this one pass over every 64 KiB chunk", [r * mb for r in rates], "MB/s")

    minger = minger_batch()
    result: dict[str, Any] = {"rows": rows, "notes": notes}
    if minger is None:
        notes.append("Minger: the minger package is not complete yet; not measured.")
    else:
        queries = 5000 if quick else 20000
        what = "answer_datagram (decode, digest, decide) + encode_response"
        add("Minger query", what, _timed(minger, queries, reps), "queries/s")
        result["minger_profile"] = _profile(minger, queries)
    batch, _ = data_batch()
    result["profile"] = _profile(batch, 5)
    result["session_profile"] = _profile(session_batch(), 200)
    return result
