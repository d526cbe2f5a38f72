"""BundleWriter: Codex's layout, thread safety, payload-before-event, and stop-on-failure."""

from __future__ import annotations

import errno
import logging
import os
import stat
import threading
from pathlib import Path
from typing import Any

import msgspec
import pytest

from otel_rollout import events
from otel_rollout._bundle import _files as files_module
from otel_rollout._bundle import _writer as writer_module
from otel_rollout._bundle._json import encode_line, encode_pretty
from otel_rollout._bundle._models import SCHEMA_2, PayloadKind, RolloutStatus, payload_refs
from otel_rollout._bundle._reader import Bundle, decode_event
from otel_rollout._bundle._validate import validate_bundle
from otel_rollout._bundle._writer import BundleWriter

ROOT_THREAD = "01a21675-4848-7d72-9a92-31870d0365f8"
TRACE = "4785534a-48ab-4dc0-b4e8-8d9cc626bcb7"
WRITER_LOGGER = "otel_rollout._bundle._writer"


@pytest.fixture
def writer(tmp_path: Path) -> Any:
    with BundleWriter.create(
        tmp_path / "traces",
        root_thread_id=ROOT_THREAD,
        trace_id=TRACE,
        started_at_unix_ms=1000,
        schema_version=SCHEMA_2,
    ) as created:
        yield created


def _lines(writer: BundleWriter) -> list[bytes]:
    return (writer.bundle_dir / "trace.jsonl").read_bytes().splitlines(keepends=True)


def test_create_lays_out_the_bundle_like_codex(writer: BundleWriter, tmp_path: Path) -> None:
    assert writer.bundle_dir == tmp_path / "traces" / f"trace-{TRACE}-{ROOT_THREAD}"
    assert sorted(path.name for path in writer.bundle_dir.iterdir()) == [
        "manifest.json",
        "payloads",
        "trace.jsonl",
    ]
    assert (writer.bundle_dir / "manifest.json").read_bytes() == (
        b"{\n"
        b'  "schema_version": 2,\n'
        b'  "trace_id": "4785534a-48ab-4dc0-b4e8-8d9cc626bcb7",\n'
        b'  "rollout_id": "01a21675-4848-7d72-9a92-31870d0365f8",\n'
        b'  "root_thread_id": "01a21675-4848-7d72-9a92-31870d0365f8",\n'
        b'  "started_at_unix_ms": 1000,\n'
        b'  "raw_event_log": "trace.jsonl",\n'
        b'  "payloads_dir": "payloads"\n'
        b"}"
    )
    assert (writer.bundle_dir / "trace.jsonl").read_bytes() == b""


def test_bundle_is_readable_by_the_owner_only(writer: BundleWriter) -> None:
    ref = writer.write_payload(PayloadKind.SESSION_METADATA, {"prompt": "secret"})
    assert ref is not None
    writer.append(events.RolloutStarted(trace_id=TRACE, root_thread_id=ROOT_THREAD))
    for directory in (writer.bundle_dir, writer.bundle_dir / "payloads"):
        assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    assert isinstance(ref.path, str)
    for file in ("manifest.json", "trace.jsonl", ref.path):
        assert stat.S_IMODE((writer.bundle_dir / file).stat().st_mode) == 0o600, file


def test_create_refuses_an_existing_bundle(writer: BundleWriter, tmp_path: Path) -> None:
    with pytest.raises(FileExistsError):
        BundleWriter.create(
            tmp_path / "traces", root_thread_id=ROOT_THREAD, trace_id=TRACE, schema_version=SCHEMA_2
        )


def test_append_writes_the_returned_event_as_one_compact_line(writer: BundleWriter) -> None:
    ref = writer.write_payload(PayloadKind.PROTOCOL_EVENT, {"type": "shutdown_complete"})
    assert ref is not None
    assert ref.raw_payload_id == "raw_payload:1" and ref.path == "payloads/1.json"
    first = writer.append(
        events.RolloutStarted(trace_id=TRACE, root_thread_id=ROOT_THREAD), wall_time_unix_ms=7
    )
    second = writer.append(
        events.ProtocolEventObserved(event_type="shutdown_complete", event_payload=ref),
        thread_id="t",
        codex_turn_id="u",
    )
    assert first is not None and second is not None
    assert (first.seq, second.seq) == (1, 2)
    assert first.wall_time_unix_ms == 7 and first.rollout_id == ROOT_THREAD
    assert _lines(writer) == [encode_line(first), encode_line(second)]
    assert _lines(writer)[0] == (
        b'{"schema_version":2,"seq":1,"wall_time_unix_ms":7,'
        b'"rollout_id":"01a21675-4848-7d72-9a92-31870d0365f8","thread_id":null,'
        b'"codex_turn_id":null,"payload":{"type":"rollout_started",'
        b'"trace_id":"4785534a-48ab-4dc0-b4e8-8d9cc626bcb7",'
        b'"root_thread_id":"01a21675-4848-7d72-9a92-31870d0365f8"}}\n'
    )
    assert (writer.bundle_dir / "payloads" / "1.json").read_bytes() == (
        b'{\n  "type": "shutdown_complete"\n}'
    )
    assert writer.events_written == 2


def test_close_is_idempotent_and_stops_writing(writer: BundleWriter) -> None:
    writer.close()
    writer.close()
    assert not writer.is_active
    assert writer.append(events.RecordingCompleted()) is None
    assert writer.write_payload(PayloadKind.TOOL_RESULT, {}) is None
    assert writer.failure is None


def test_eight_os_threads_by_ten_thousand_events(
    writer: BundleWriter, monkeypatch: pytest.MonkeyPatch
) -> None:
    """seq contiguous in file order, every line whole, each payload complete before its event."""
    threads, per_thread, payload_every = 8, 10_000, 250
    log_fd = writer._log_fd
    out_of_order: list[str] = []
    real_write_all = writer_module._write_all

    def checking_write_all(fd: int, data: bytes) -> None:
        # Runs under the writer's lock, just before the event reaches the log.
        if fd == log_fd and b'"path":"' in data:
            payload = decode_event(data[:-1]).payload
            assert isinstance(payload, events.ProtocolEventObserved)
            path = payload.event_payload.path
            assert isinstance(path, str)
            try:
                msgspec.json.decode((writer.bundle_dir / path).read_bytes())
            except (OSError, msgspec.DecodeError) as error:
                out_of_order.append(f"{path}: {error}")
        real_write_all(fd, data)

    monkeypatch.setattr(writer_module, "_write_all", checking_write_all)
    start = threading.Barrier(threads)

    def produce(index: int) -> None:
        start.wait()
        for n in range(per_thread):
            if n % payload_every == 0:
                ref = writer.write_payload(PayloadKind.PROTOCOL_EVENT, {"thread": index, "n": n})
                assert ref is not None
                writer.append(
                    events.ProtocolEventObserved(event_type=f"{index}:{n}", event_payload=ref)
                )
            else:
                writer.append(events.HistoryItemAccepted(item_id=f"{index}:{n}"))

    workers = [threading.Thread(target=produce, args=(index,)) for index in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()

    assert out_of_order == []
    assert writer.failure is None
    lines = _lines(writer)
    assert len(lines) == threads * per_thread == writer.events_written
    last_seen = [-1] * threads
    for seq, line in enumerate(lines, start=1):
        assert line.endswith(b"\n")
        event = decode_event(line[:-1])
        assert event.seq == seq
        payload = event.payload
        if isinstance(payload, events.ProtocolEventObserved):
            label = payload.event_type
        else:
            assert isinstance(payload, events.HistoryItemAccepted)
            label = payload.item_id
        index, n = map(int, label.split(":"))
        assert n == last_seen[index] + 1  # each thread's events keep their order
        last_seen[index] = n
    assert last_seen == [per_thread - 1] * threads
    payload_files = list((writer.bundle_dir / "payloads").iterdir())
    assert len(payload_files) == threads * per_thread // payload_every
    assert not [path for path in payload_files if not path.name.endswith(".json")]


def _some_events(writer: BundleWriter, count: int) -> None:
    writer.append(events.RolloutStarted(trace_id=TRACE, root_thread_id=ROOT_THREAD))
    for n in range(count - 1):
        assert writer.append(events.HistoryItemAccepted(item_id=f"item_{n}")) is not None


def test_full_disk_stops_the_writer_which_stays_valid_and_reports_once(
    writer: BundleWriter, caplog: pytest.LogCaptureFixture
) -> None:
    _some_events(writer, 5)
    assert writer._log_fd is not None
    full = os.open("/dev/full", os.O_WRONLY)  # every write fails with ENOSPC
    try:
        os.dup2(full, writer._log_fd)
    finally:
        os.close(full)
    with caplog.at_level(logging.WARNING, logger=WRITER_LOGGER):
        assert writer.append(events.HistoryItemAccepted(item_id="lost")) is None
        assert writer.append(events.HistoryItemAccepted(item_id="lost too")) is None
        assert writer.write_payload(PayloadKind.TOOL_RESULT, {"x": 1}) is None
    assert isinstance(writer.failure, OSError) and writer.failure.errno == errno.ENOSPC
    assert not writer.is_active
    assert writer.events_written == 5
    failures = [record for record in caplog.records if record.name == WRITER_LOGGER]
    assert len(failures) == 1
    assert "recording stopped" in failures[0].getMessage()
    assert "valid up to event 5" in failures[0].getMessage()
    writer.close()
    report = validate_bundle(writer.bundle_dir)
    assert report.ok and report.events == 5 and not report.warnings


class _FailingOs:
    """Stands in for the ``os`` module inside ``otel_rollout._bundle._writer`` (the event log)
    or ``otel_rollout._bundle._files`` (whole-file writes: payloads, manifest)."""

    def __init__(self, **overrides: Any) -> None:
        self._overrides = overrides

    def __getattr__(self, name: str) -> Any:
        return self._overrides.get(name, getattr(os, name))


def test_torn_write_is_cut_back_and_consumes_no_seq(
    writer: BundleWriter, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    _some_events(writer, 3)
    log_fd = writer._log_fd

    def half_then_fail(fd: int, data: Any) -> int:
        if fd != log_fd:
            return os.write(fd, data)
        if len(data) > 8:  # first call: write half the line, as a crash mid-write would
            return os.write(fd, bytes(data[: len(data) // 2]))
        raise OSError(errno.EIO, "injected I/O error")

    monkeypatch.setattr(writer_module, "os", _FailingOs(write=half_then_fail))
    with caplog.at_level(logging.WARNING, logger=WRITER_LOGGER):
        assert writer.append(events.HistoryItemAccepted(item_id="x" * 40)) is None
    monkeypatch.undo()
    assert writer.events_written == 3
    assert [decode_event(line[:-1]).seq for line in _lines(writer)] == [1, 2, 3]
    assert len([r for r in caplog.records if r.name == WRITER_LOGGER]) == 1
    writer.close()
    report = validate_bundle(writer.bundle_dir)
    assert report.ok and report.events == 3 and not report.warnings


def test_a_seq_number_is_used_only_by_an_append_that_succeeded(
    writer: BundleWriter, caplog: pytest.LogCaptureFixture
) -> None:
    """An event that cannot be encoded is refused without a seq; the writer carries on."""
    writer.append(events.RolloutStarted(trace_id=TRACE, root_thread_id=ROOT_THREAD))
    unencodable = events.Other(kind="k", summary="s", payloads=[], metadata=object())  # type: ignore[arg-type]
    with caplog.at_level(logging.WARNING, logger=WRITER_LOGGER):
        assert writer.append(unencodable) is None
    assert writer.is_active and writer.failure is None
    after = writer.append(events.RolloutEnded(status=RolloutStatus.COMPLETED))
    assert after is not None and after.seq == 2
    assert [decode_event(line[:-1]).seq for line in _lines(writer)] == [1, 2]
    assert "not JSON" in caplog.text


def test_payload_failure_leaves_no_file_stops_and_reports_once(
    writer: BundleWriter, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    _some_events(writer, 2)

    def no_space(source: Any, destination: Any, **dir_fds: Any) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(files_module, "os", _FailingOs(replace=no_space))
    with caplog.at_level(logging.WARNING, logger=WRITER_LOGGER):
        assert writer.write_payload(PayloadKind.TOOL_RESULT, {"big": "x" * 1000}) is None
        assert writer.write_payload(PayloadKind.TOOL_RESULT, {"big": "y"}) is None
        assert writer.append(events.RecordingCompleted()) is None
    monkeypatch.undo()
    assert list((writer.bundle_dir / "payloads").iterdir()) == []  # neither final nor temporary
    assert isinstance(writer.failure, OSError)
    assert len([r for r in caplog.records if r.name == WRITER_LOGGER]) == 1
    assert writer.events_written == 2


def test_payload_file_is_whole_or_absent(
    writer: BundleWriter, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The final name appears only by renaming a complete temporary file."""
    body = {"input": ["x" * 10_000]}
    seen: list[tuple[bool, bytes]] = []

    def checking_replace(
        source: str, destination: str, *, src_dir_fd: int | None, dst_dir_fd: int | None
    ) -> None:
        exists = os.path.exists(_in_dir(destination, dst_dir_fd))
        seen.append((exists, Path(_in_dir(source, src_dir_fd)).read_bytes()))
        os.replace(source, destination, src_dir_fd=src_dir_fd, dst_dir_fd=dst_dir_fd)

    monkeypatch.setattr(files_module, "os", _FailingOs(replace=checking_replace))
    ref = writer.write_payload(PayloadKind.INFERENCE_REQUEST, body)
    monkeypatch.undo()
    assert ref is not None
    assert seen == [(False, encode_pretty(body))]
    assert isinstance(ref.path, str)
    assert (writer.bundle_dir / ref.path).read_bytes() == encode_pretty(body)


def _in_dir(name: str, dir_fd: int | None) -> str:
    """The path of ``name`` relative to the open directory ``dir_fd`` (Linux's /proc)."""
    return name if dir_fd is None else f"/proc/self/fd/{dir_fd}/{name}"


def test_unencodable_payload_is_refused_without_stopping(
    writer: BundleWriter, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger=WRITER_LOGGER):
        assert writer.write_payload(PayloadKind.TOOL_RESULT, {"x": object()}) is None
    assert writer.is_active
    ref = writer.write_payload(PayloadKind.TOOL_RESULT, {"x": 1})
    assert ref is not None and ref.path == "payloads/1.json"


def test_written_bundle_reads_back(writer: BundleWriter) -> None:
    meta = writer.write_payload(PayloadKind.SESSION_METADATA, {"thread_id": ROOT_THREAD})
    writer.append(events.RolloutStarted(trace_id=TRACE, root_thread_id=ROOT_THREAD))
    writer.append(
        events.ThreadStarted(thread_id=ROOT_THREAD, agent_path="/root", metadata_payload=meta)
    )
    writer.append(events.RecordingCompleted())
    writer.close()
    bundle = Bundle(writer.bundle_dir)
    assert bundle.manifest == writer.manifest
    assert [event.seq for _, event in bundle.events()] == [1, 2, 3]
    assert meta is not None and bundle.read_payload(meta) == {"thread_id": ROOT_THREAD}


FIXTURE_BUNDLES = sorted((Path(__file__).parent / "fixtures").glob("codex-0.169.0*/*/trace-*"))


def _ordinal(path: str) -> int:
    return int(path.removeprefix("payloads/").removesuffix(".json"))


def _replay(source: Path, root: Path) -> Path:
    """Make the calls Codex made for ``source`` through BundleWriter; return the new bundle.

    Payload files are written in Codex's numbering (in long_tools parallel tools write
    some before an earlier-numbered one is referenced), each before its first event.
    """
    original = Bundle(source)
    manifest = original.manifest
    kinds = {
        _ordinal(str(ref.path)): ref.kind.type
        for _, event in original.events()
        for ref in payload_refs(event.payload)
    }
    writer = BundleWriter.create(
        root,
        root_thread_id=manifest.root_thread_id,
        trace_id=manifest.trace_id,
        rollout_id=manifest.rollout_id,
        started_at_unix_ms=manifest.started_at_unix_ms,
        schema_version=SCHEMA_2,
    )
    next_ordinal = 1
    with writer:
        for _, event in original.events():
            for ref in payload_refs(event.payload):
                while next_ordinal <= _ordinal(str(ref.path)):
                    body = msgspec.json.decode(
                        original.read_payload_bytes(f"payloads/{next_ordinal}.json")
                    )
                    if isinstance(body, dict) and "tools" in body:  # a RawValue in Codex
                        body["tools"] = msgspec.Raw(msgspec.json.encode(body["tools"]))
                    written = writer.write_payload(kinds[next_ordinal], body)
                    assert written is not None and _ordinal(str(written.path)) == next_ordinal
                    next_ordinal += 1
            assert (
                writer.append(
                    event.payload,
                    thread_id=event.thread_id,
                    codex_turn_id=event.codex_turn_id,
                    wall_time_unix_ms=event.wall_time_unix_ms,
                )
                == event
            )
    return writer.bundle_dir


@pytest.mark.parametrize("source", FIXTURE_BUNDLES, ids=lambda path: path.parent.name)
def test_replaying_codex_calls_reproduces_the_fixture_byte_for_byte(
    source: Path, tmp_path: Path
) -> None:
    """Same calls, same bytes: manifest, trace.jsonl and every payload file, as Codex wrote them."""
    copy = _replay(source, tmp_path)
    assert copy.name == source.name
    names = sorted(path.name for path in (source / "payloads").iterdir())
    assert sorted(path.name for path in (copy / "payloads").iterdir()) == names
    for name in ["manifest.json", "trace.jsonl", *(f"payloads/{n}" for n in names)]:
        assert (copy / name).read_bytes() == (source / name).read_bytes(), name
