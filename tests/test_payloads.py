"""The payload store: the quick read agrees with the thorough one; the writer numbers and writes."""

from __future__ import annotations

import os
import stat
import threading
from pathlib import Path
from typing import Any

import msgspec
import pytest

from otel_rollout._bundle import _files, _payloads
from otel_rollout._bundle._json import encode_pretty
from otel_rollout._bundle._models import PayloadKind, RawPayloadKind, RawPayloadRef
from otel_rollout._bundle._payloads import PayloadFiles, PayloadFileWriter, open_payload_store


@pytest.fixture
def bundle(tmp_path: Path) -> Path:
    """A bundle directory with payload files, symlinks in and out, and odd entries."""
    root = tmp_path / "bundle"
    payloads = root / "payloads"
    payloads.mkdir(parents=True)
    (payloads / "1.json").write_bytes(b'{\n  "n": 1\n}')
    (payloads / "2.json").write_bytes(b"{not json")
    (payloads / "alias.json").symlink_to("1.json")
    (payloads / "dir").mkdir()
    (payloads / "loop").symlink_to("loop")
    (tmp_path / "outside.json").write_bytes(b"{}")
    (payloads / "evil.json").symlink_to(tmp_path / "outside.json")
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "3.json").write_bytes(b"{}")
    (root / "out").symlink_to(tmp_path / "elsewhere")
    (root / "inner").symlink_to("payloads")
    (root / "top.json").write_bytes(b"[]")
    return root


TRICKY = [
    "payloads/1.json",
    "payloads/2.json",
    "payloads/9.json",
    "payloads/alias.json",
    "payloads/evil.json",
    "payloads/dir",
    "payloads/dir/",
    "payloads/.",
    "payloads/loop",
    "payloads/loop/1.json",
    "payloads/1.json/x",
    "payloads//1.json",
    "./payloads/1.json",
    "payloads/./1.json",
    "inner/1.json",
    "out/3.json",
    "out/missing.json",
    "missing/1.json",
    "top.json",
    ".",
    "",
    "/etc/hostname",
    "\\payloads\\1.json",
    "payloads\\1.json",
    "payloads/../payloads/1.json",
    "../bundle/payloads/1.json",
    "..",
    "payloads/..",
    "pay\0loads/1.json",
]


def _outcome(read: Any, relative: str) -> tuple[str, object]:
    try:
        return "bytes", read(relative)
    except ValueError as error:
        return "error", str(error)


@pytest.mark.parametrize("relative", TRICKY)
def test_the_quick_read_agrees_with_the_thorough_one(bundle: Path, relative: str) -> None:
    """Same bytes, same reason (the reducer's error text) for every kind of path."""
    thorough = _outcome(PayloadFiles(bundle)._read_resolved, relative)
    assert _outcome(PayloadFiles(bundle).read, relative) == thorough
    warm = PayloadFiles(bundle)  # with its directory cache filled by the other paths
    for other in TRICKY:
        _outcome(warm.read, other)
    assert _outcome(warm.read, relative) == thorough


def test_ordinary_files_are_read_without_resolving_each_path(
    bundle: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The quick way: one ``realpath`` per directory, no per-file resolution."""
    store = PayloadFiles(bundle)
    realpaths: list[str] = []
    real_realpath = os.path.realpath

    def counting_realpath(path: str) -> str:
        realpaths.append(path)
        return real_realpath(path)

    def refuse(*args: Any) -> bytes:
        raise AssertionError("resolved the thorough way")

    monkeypatch.setattr(os.path, "realpath", counting_realpath)
    monkeypatch.setattr(store, "_read_resolved", refuse)
    for _ in range(3):
        assert store.read("payloads/1.json") == b'{\n  "n": 1\n}'
        assert _outcome(store.read, "payloads/9.json")[0] == "error"
    assert len(realpaths) == 1


def test_reasons_are_the_documented_ones(bundle: Path) -> None:
    store = open_payload_store(bundle)
    assert store.read("payloads/1.json") == b'{\n  "n": 1\n}'
    assert store.read("payloads/alias.json") == b'{\n  "n": 1\n}'
    reasons = {
        "payloads/9.json": "payload file 'payloads/9.json' is missing",
        "payloads/evil.json": "payload path 'payloads/evil.json' leads out of the bundle",
        "out/3.json": "payload path 'out/3.json' leads out of the bundle",
        "../x.json": "payload path '../x.json' leaves the bundle (..)",
        "/etc/hostname": "payload path '/etc/hostname' is absolute",
        "": "payload path '' is not a file path",
        ".": "payload path '.' is not a file path",
        "payloads/dir": "payload file 'payloads/dir': not a regular file (a directory)",
    }
    assert {path: _outcome(store.read, path)[1] for path in reasons} == reasons
    with pytest.raises(ValueError, match=r"^payload file 'payloads/2.json' is not JSON: "):
        store.read_json("payloads/2.json")


def test_read_json_uses_the_given_decoder(bundle: Path) -> None:
    ref = RawPayloadRef(
        raw_payload_id="raw_payload:1",
        kind=RawPayloadKind(type=PayloadKind.TOOL_RESULT),
        path="payloads/1.json",
    )
    store = open_payload_store(bundle)
    assert store.read_json(ref) == {"n": 1}
    raw = store.read_json(ref, msgspec.json.Decoder(msgspec.Raw))
    assert isinstance(raw, msgspec.Raw) and bytes(raw) == b'{\n  "n": 1\n}'


def test_large_payloads_are_read_whole(tmp_path: Path) -> None:
    (tmp_path / "payloads").mkdir()
    body = encode_pretty({"input": ["x" * (3 * (1 << 20) + 17)]})
    (tmp_path / "payloads" / "1.json").write_bytes(body)
    assert open_payload_store(tmp_path).read("payloads/1.json") == body


# --- the writer ---


@pytest.fixture
def writer(tmp_path: Path) -> PayloadFileWriter:
    tmp_path.joinpath("bundle").mkdir()
    return PayloadFileWriter.create(tmp_path / "bundle")


def test_refs_are_numbered_in_order_as_codex_names_them(writer: PayloadFileWriter) -> None:
    first = writer.new_ref(PayloadKind.SESSION_METADATA)
    second = writer.new_ref(PayloadKind.INFERENCE_REQUEST)
    assert msgspec.json.encode([first, second]) == (
        b'[{"raw_payload_id":"raw_payload:1","kind":{"type":"session_metadata"},'
        b'"path":"payloads/1.json"},{"raw_payload_id":"raw_payload:2",'
        b'"kind":{"type":"inference_request"},"path":"payloads/2.json"}]'
    )
    assert first.kind is writer.new_ref(PayloadKind.SESSION_METADATA).kind  # one table


def test_files_are_whole_owner_only_and_read_back(writer: PayloadFileWriter) -> None:
    directory = writer.directory
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    ref = writer.new_ref(PayloadKind.TOOL_RESULT)
    writer.write(ref, b'{\n  "x": 1\n}')
    assert sorted(path.name for path in directory.iterdir()) == ["1.json"]
    assert stat.S_IMODE((directory / "1.json").stat().st_mode) == 0o600
    assert open_payload_store(directory.parent).read(ref) == b'{\n  "x": 1\n}'
    writer.close()
    writer.close()
    later = writer.new_ref(PayloadKind.TOOL_RESULT)
    writer.write(later, b"{}")  # after close: written by its path
    assert (directory / "2.json").read_bytes() == b"{}"


def test_close_waits_for_writes_in_flight(
    writer: PayloadFileWriter, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The directory's descriptor is closed only after the last write using it."""
    started, release = threading.Event(), threading.Event()
    real_write_whole = _files.write_whole

    def slow_write_whole(path: str, data: bytes, *, dir_fd: int | None = None) -> None:
        started.set()
        assert release.wait(10)
        assert dir_fd is not None
        os.fstat(dir_fd)  # still open
        real_write_whole(path, data, dir_fd=dir_fd)

    monkeypatch.setattr(_payloads, "write_whole", slow_write_whole)
    ref = writer.new_ref(PayloadKind.TOOL_RESULT)
    failures: list[BaseException] = []

    def write() -> None:
        try:
            writer.write(ref, b"{}")
        except BaseException as error:  # reported below
            failures.append(error)

    thread = threading.Thread(target=write)
    thread.start()
    assert started.wait(10)
    writer.close()
    assert writer._dir_fd is not None  # kept for the write in flight
    release.set()
    thread.join(10)
    assert failures == []
    assert writer._dir_fd is None
    assert (writer.directory / "1.json").read_bytes() == b"{}"


def test_a_failed_write_leaves_nothing(writer: PayloadFileWriter) -> None:
    ref = writer.new_ref(PayloadKind.TOOL_RESULT)
    (writer.directory / "1.json").mkdir()  # the rename cannot replace a directory
    with pytest.raises(OSError):
        writer.write(ref, b"{}")
    assert sorted(path.name for path in writer.directory.iterdir()) == ["1.json"]
