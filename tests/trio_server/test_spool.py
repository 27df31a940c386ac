"""Tests for trio_server.spool: the durable queue, including crashes at every step."""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trio_server import spool as spool_module
from trio_server.spool import Envelope, Recipient, Spool, SpoolError

MESSAGE = b"Received: from client\r\nSubject: hi\r\n\r\nbody\r\n"


def _envelope(**changes: object) -> Envelope:
    base = Envelope(
        id="",
        sender="alice@example.test",
        arrival=1_800_000_000.0,
        envid="E1",
        ret="HDRS",
        recipients=(
            Recipient(
                address="bob@branch.example.test",
                next_hop="127.0.0.1:2526",
                notify=("SUCCESS", "FAILURE"),
                orcpt=("rfc822", "Bob@Branch.example.test"),
            ),
            Recipient(address="carol@branch.example.test", next_hop="127.0.0.1:2526"),
        ),
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def test_round_trip(tmp_path: Path) -> None:
    """A committed message and its envelope read back exactly, after a fresh open too."""
    spool = Spool.open(tmp_path)
    stored = spool.enqueue(_envelope(), MESSAGE)
    assert stored.size == len(MESSAGE)
    assert stored.id
    again = Spool.open(tmp_path)
    assert list(again.scan()) == [stored]
    assert again.read_message(stored.id) == MESSAGE
    assert again.load(stored.id) == stored


def test_streamed_write(tmp_path: Path) -> None:
    """A message written in chunks is stored whole; nothing is visible before commit."""
    spool = Spool.open(tmp_path)
    writer = spool.begin()
    writer.write(MESSAGE[:10])
    writer.write(MESSAGE[10:])
    assert list(spool.scan()) == []
    stored = writer.commit(_envelope())
    assert spool.read_message(stored.id) == MESSAGE


def test_abort_leaves_nothing(tmp_path: Path) -> None:
    """An aborted message leaves no file behind."""
    spool = Spool.open(tmp_path)
    writer = spool.begin()
    writer.write(MESSAGE)
    writer.abort()
    assert list((tmp_path / "tmp").iterdir()) == []
    assert list((tmp_path / "queue").iterdir()) == []
    with pytest.raises(SpoolError):
        writer.write(b"more")


def test_update_is_durable_state(tmp_path: Path) -> None:
    """update() replaces the envelope; a reopened spool sees the recipient delivered."""
    spool = Spool.open(tmp_path)
    stored = spool.enqueue(_envelope(), MESSAGE)
    first, second = stored.recipients
    changed = stored.with_recipients((dataclasses.replace(first, state="delivered"), second))
    spool.update(changed)
    reopened = Spool.open(tmp_path)
    (loaded,) = reopened.scan()
    assert [r.state for r in loaded.recipients] == ["delivered", "pending"]
    assert [r.address for r in loaded.pending] == ["carol@branch.example.test"]


def test_remove(tmp_path: Path) -> None:
    """remove() takes both files away."""
    spool = Spool.open(tmp_path)
    stored = spool.enqueue(_envelope(), MESSAGE)
    spool.remove(stored.id)
    assert list((tmp_path / "queue").iterdir()) == []
    with pytest.raises(SpoolError):
        spool.load(stored.id)


def test_update_of_missing_message_refused(tmp_path: Path) -> None:
    """Updating an envelope that is not queued is an error, not a resurrection."""
    spool = Spool.open(tmp_path)
    with pytest.raises(SpoolError, match="not in the queue"):
        spool.update(_envelope(id="ABC"))


def test_ids_are_unique_and_path_safe(tmp_path: Path) -> None:
    """Queue ids are distinct upper-case hex, never anything a peer chose."""
    spool = Spool.open(tmp_path, clock=lambda: 1_800_000_000.0)
    ids = {spool.enqueue(_envelope(), MESSAGE).id for _ in range(20)}
    assert len(ids) == 20
    assert all(set(i) <= set("0123456789ABCDEF") for i in ids)


def test_unicode_and_null_sender_round_trip(tmp_path: Path) -> None:
    """A null sender and UTF-8 addresses survive the JSON envelope."""
    spool = Spool.open(tmp_path)
    envelope = _envelope(
        sender="",
        smtputf8=True,
        recipients=(Recipient(address="jörg@bücher.example.test", next_hop="[::1]:25"),),
    )
    stored = spool.enqueue(envelope, MESSAGE)
    assert Spool.open(tmp_path).load(stored.id) == stored


def test_corrupt_envelope_quarantined_not_deleted(tmp_path: Path) -> None:
    """An envelope that does not parse moves to corrupt/ with its message; nothing is deleted."""
    spool = Spool.open(tmp_path)
    good = spool.enqueue(_envelope(), MESSAGE)
    bad = spool.enqueue(_envelope(), MESSAGE)
    (tmp_path / "queue" / f"{bad.id}.json").write_text("{not json")
    assert [e.id for e in spool.scan()] == [good.id]
    assert sorted(p.name for p in (tmp_path / "corrupt").iterdir()) == [
        f"{bad.id}.eml",
        f"{bad.id}.json",
    ]


@pytest.mark.parametrize(
    "mutation",
    [
        lambda d: d.pop("recipients"),
        lambda d: d.__setitem__("version", 99),
        lambda d: d["recipients"][0].__setitem__("state", "lost"),
        lambda d: d["recipients"][0].__setitem__("notify", "SUCCESS"),
        lambda d: d["recipients"][0].__setitem__("orcpt", ["rfc822"]),
        lambda d: d.__setitem__("envid", 5),
        lambda d: d.__setitem__("id", "0000"),
    ],
)
def test_malformed_envelopes_quarantined(
    tmp_path: Path, mutation: Callable[[dict[str, object]], object]
) -> None:
    """Each kind of damage in an envelope is detected and the message set aside."""
    spool = Spool.open(tmp_path)
    stored = spool.enqueue(_envelope(), MESSAGE)
    path = tmp_path / "queue" / f"{stored.id}.json"
    data = json.loads(path.read_bytes())
    mutation(data)
    path.write_text(json.dumps(data))
    assert list(spool.scan()) == []
    assert (tmp_path / "corrupt" / f"{stored.id}.json").exists()


def test_open_refuses_a_file(tmp_path: Path) -> None:
    """A spool_dir that is a file is a clear error."""
    target = tmp_path / "file"
    target.write_text("x")
    with pytest.raises(NotADirectoryError, match="not a directory"):
        Spool.open(target)


class _Crash(Exception):
    """Stands for the process dying at this point."""


def _crash_after(monkeypatch: pytest.MonkeyPatch, steps: int) -> None:
    """Make the spool's Nth durable step (rename or directory fsync) never happen."""
    counter = {"left": steps}
    real_replace, real_fsync_dir = os.replace, spool_module._fsync_dir

    def step() -> None:
        if counter["left"] == 0:
            raise _Crash
        counter["left"] -= 1

    def replace(src: Path, dst: Path) -> None:
        step()
        real_replace(src, dst)

    def fsync_dir(path: Path) -> None:
        step()
        real_fsync_dir(path)

    monkeypatch.setattr(os, "replace", replace)
    monkeypatch.setattr(spool_module, "_fsync_dir", fsync_dir)


@pytest.mark.parametrize("steps", range(4))
def test_crash_during_commit_is_all_or_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, steps: int
) -> None:
    """A crash at any step of commit leaves, after restart, the whole message or none of it."""
    Spool.open(tmp_path)
    with monkeypatch.context() as patch:
        _crash_after(patch, steps)
        spool = Spool(tmp_path)
        with pytest.raises(_Crash):
            spool.enqueue(_envelope(), MESSAGE)
    recovered = Spool.open(tmp_path)
    envelopes = list(recovered.scan())
    # The envelope's rename (the third step) is the commit point.
    assert len(envelopes) == (1 if steps >= 3 else 0)
    for envelope in envelopes:
        assert recovered.read_message(envelope.id) == MESSAGE
    leftovers = {p.suffix for p in (tmp_path / "queue").iterdir()}
    assert leftovers == ({".eml", ".json"} if envelopes else set())
    assert list((tmp_path / "tmp").iterdir()) == []


@pytest.mark.parametrize("steps", range(2))
def test_crash_during_update_keeps_old_or_new(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, steps: int
) -> None:
    """A crash while recording delivery leaves the old state or the new one, never neither."""
    spool = Spool.open(tmp_path)
    stored = spool.enqueue(_envelope(), MESSAGE)
    delivered = stored.with_recipients(
        tuple(dataclasses.replace(r, state="delivered") for r in stored.recipients)
    )
    with monkeypatch.context() as patch:
        _crash_after(patch, steps)
        with pytest.raises(_Crash):
            spool.update(delivered)
    (loaded,) = Spool.open(tmp_path).scan()
    assert loaded in (stored, delivered)
    assert (loaded == delivered) is (steps >= 1)


def test_crash_during_remove_never_resurrects_half(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A crash after the envelope is gone leaves a stray message that the rescan clears."""
    spool = Spool.open(tmp_path)
    stored = spool.enqueue(_envelope(), MESSAGE)
    with monkeypatch.context() as patch:
        _crash_after(patch, 0)
        with pytest.raises(_Crash):
            spool.remove(stored.id)
    recovered = Spool.open(tmp_path)
    assert list(recovered.scan()) == []
    assert list((tmp_path / "queue").iterdir()) == []


_text = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=30)
_recipients = st.builds(
    Recipient,
    address=_text,
    next_hop=_text,
    notify=st.none()
    | st.lists(st.sampled_from(["SUCCESS", "FAILURE", "DELAY", "NEVER"])).map(tuple),
    orcpt=st.none() | st.tuples(_text, _text),
    state=st.sampled_from(["pending", "delivered", "relayed", "failed"]),
    attempts=st.integers(0, 1000),
    next_attempt=st.floats(0, 4e9),
    delay_notified=st.booleans(),
    status=st.none() | _text,
    diagnostic=st.none() | _text,
    remote_mta=st.none() | _text,
    report_due=st.none() | st.sampled_from(["failed", "delayed", "relayed", "delivered"]),
)


@settings(
    max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    sender=_text,
    envid=st.none() | _text,
    recipients=st.lists(_recipients, min_size=1, max_size=4).map(tuple),
)
def test_any_envelope_round_trips(
    tmp_path: Path, sender: str, envid: str | None, recipients: tuple[Recipient, ...]
) -> None:
    """Whatever text an envelope holds, it reads back from disk exactly as written."""
    spool = Spool.open(tmp_path)
    stored = spool.enqueue(_envelope(sender=sender, envid=envid, recipients=recipients), MESSAGE)
    assert spool.load(stored.id) == stored
    spool.remove(stored.id)
