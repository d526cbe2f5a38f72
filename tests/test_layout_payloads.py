"""Only the payload store (``_bundle/_payloads.py``) knows where payloads live and opens them.

Two checks keep it so. Statically, no other module of the package names the ``payloads``
directory, builds a payload ref or a ``raw_payload:<n>`` id, or repeats the file modes,
and every other call that opens, writes or removes a file is listed below with what it
touches. At run time, a recording, a reduction, a replay and a validation are watched
(an audit hook) and every file under ``payloads/`` must be opened, renamed or removed
from inside the store.
"""

from __future__ import annotations

import ast
import re
import sys
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from types import FrameType

import pytest

import otel_rollout
from otel_rollout._bundle._models import PayloadKind, ProtocolEventObserved, RecordingCompleted
from otel_rollout._bundle._reader import Bundle
from otel_rollout._bundle._validate import validate_bundle
from otel_rollout._bundle._writer import BundleWriter
from otel_rollout._otel._replay import bundle_spans
from otel_rollout._reduce import reduce_bundle
from support.recording import Pipeline, load_example, pipeline_fixture

PACKAGE = Path(otel_rollout.__file__).parent
STORE = "_bundle/_payloads.py"
STORE_MODULE = "otel_rollout._bundle._payloads"

FILE_CALLS = {
    *("open", "fdopen", "read_bytes", "write_bytes", "read_text", "write_text"),
    *("unlink", "rename", "touch", "symlink_to", "hardlink_to"),
}
"""Calls that open, write or remove a file, whatever the receiver (``os``, a ``Path``...)."""
OS_FILE_CALLS = {"replace", "remove", "link", "symlink", "truncate"}
"""``os`` functions that change a file by its name (other receivers mean other things)."""

ALLOWED_FILE_CALLS: dict[tuple[str, str], tuple[int, str]] = {
    ("_bundle/_files.py", "os.open"): (
        3,
        "whole-file writes (of bytes, of chunks) and dir fds, for the callers' paths",
    ),
    ("_bundle/_files.py", "os.replace"): (2, "the rename of a whole-file write (bytes, chunks)"),
    ("_bundle/_files.py", "os.unlink"): (2, "removes a failed write's temporary file (both)"),
    ("_bundle/_writer.py", "os.open"): (1, "creates trace.jsonl"),
    ("_bundle/_bounded.py", "os.open"): (
        1,
        "every bounded read of a bundle file: regular files only, within the read cap",
    ),
    ("_bundle/_reader.py", "os.fdopen"): (3, "streams trace.jsonl (opened by _bounded)"),
    ("_otel/_spans_only.py", "path.open"): (1, "writes a span spill file"),
    ("_otel/_spans_only.py", "buffer.spill.open"): (1, "reads a span spill file"),
    ("_otel/_spans_only.py", "buffer.spill.unlink"): (
        2,
        "removes a span spill file (read, or of a trace a live rollout owns)",
    ),
    ("_otel/_spans_only.py", "os.rename"): (
        2,
        "swaps a running trace's checkpointed bundle directory for the newer one",
    ),
    (
        "_view/_page.py",
        "resources.files('otel_rollout._view').joinpath('assets').joinpath(name).read_text",
    ): (
        1,
        "reads the page's HTML, CSS and JavaScript (package data)",
    ),
    ("cli/_view.py", "webbrowser.open"): (1, "opens the written page in a browser (--open)"),
}
"""Every call outside the store that opens, writes or removes a file: (module, call) ->
(how many, what it touches). A new one either goes through the store (payloads) or is
added here with its reason."""

LAYOUT_NAMES = {"PAYLOADS_DIR_NAME": {"_bundle/_models.py"}}
"""Names of the payload layout, and the modules besides the store that may use them
(``_models`` defines the name and the manifest's ``payloads_dir`` default)."""
ONE_HOME_CALLS = {"RawPayloadRef", "RawPayloadKind", "PayloadFileWriter", "PayloadFiles"}
"""Built only in the store: refs and kinds (``PayloadFileWriter.new_ref``, ``PAYLOAD_KINDS``)
and the store's own classes (others get them from ``BundleWriter``/``Bundle``)."""
LAYOUT_TEXT = re.compile(r"^payloads$|payloads/|raw_payload:|\.json\.tmp")
LAYOUT_TEXT_DEFINED = {("_bundle/_models.py", "payloads")}
"""Where such text is allowed: ``_models`` defines ``PAYLOADS_DIR_NAME``."""
MODES = {0o600, 0o700}


def _modules() -> Iterator[tuple[str, ast.Module]]:
    for path in sorted(PACKAGE.rglob("*.py")):
        name = path.relative_to(PACKAGE).as_posix()
        if name != STORE:
            yield name, ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def _docstrings(tree: ast.Module) -> set[int]:
    """The ids of string statements (docstrings, attribute docs): prose, not code."""
    return {
        id(node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)
    }


def _call_name(call: ast.Call) -> str | None:
    function = call.func
    if isinstance(function, ast.Name):
        return function.id
    if isinstance(function, ast.Attribute):
        return function.attr
    return None


def test_only_listed_modules_open_files_and_none_outside_the_store_knows_the_layout() -> None:
    found: Counter[tuple[str, str]] = Counter()
    layout: list[str] = []
    for module, tree in _modules():
        prose = _docstrings(tree)
        for node in ast.walk(tree):
            where = f"{module}:{getattr(node, 'lineno', '?')}"
            if isinstance(node, ast.Call):
                name = _call_name(node)
                call = ast.unparse(node.func)
                if name in FILE_CALLS or (name in OS_FILE_CALLS and call == f"os.{name}"):
                    found[(module, call)] += 1
                if name in ONE_HOME_CALLS:
                    layout.append(f"{where}: {call}(...) outside the store")
            elif isinstance(node, ast.Name | ast.Attribute):
                name = node.id if isinstance(node, ast.Name) else node.attr
                if name in LAYOUT_NAMES and module not in LAYOUT_NAMES[name]:
                    layout.append(f"{where}: uses {name}")
            elif isinstance(node, ast.Constant) and id(node) not in prose:
                text = node.value
                if isinstance(text, str) and LAYOUT_TEXT.search(text):
                    if (module, text) not in LAYOUT_TEXT_DEFINED:
                        layout.append(f"{where}: the payload layout in {text!r}")
                if type(text) is int and text in MODES and module != "_bundle/_files.py":
                    layout.append(f"{where}: a file mode ({text:#o}); use _files")
    assert layout == [], "the payload layout belongs to _bundle/_payloads.py"
    expected = {key: count for key, (count, _) in ALLOWED_FILE_CALLS.items()}
    assert dict(found) == expected, (
        "a file is opened outside the payload store: read payloads through Bundle.payloads "
        "(or BundleWriter.payloads), or list the call in ALLOWED_FILE_CALLS with its reason"
    )


def test_the_checks_see_what_they_look_for() -> None:
    """The static check flags the code it exists to keep out (it is not vacuous)."""
    tree = ast.parse(
        "import os\n"
        "def read(bundle, n):\n"
        "    '''Docs may say payloads/<n>.json.'''\n"
        "    return open(bundle / 'payloads' / f'{n}.json', 'rb').read()\n"
    )
    calls = [_call_name(node) for node in ast.walk(tree) if isinstance(node, ast.Call)]
    assert "open" in calls
    prose = _docstrings(tree)
    texts = [
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and id(node) not in prose and isinstance(node.value, str)
    ]
    assert [text for text in texts if LAYOUT_TEXT.search(text)] == ["payloads"]


# --- at run time ---


@pytest.fixture(params=[2, 3], ids=["schema2", "schema3"])
def pipeline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> Iterator[Pipeline]:
    yield from pipeline_fixture(tmp_path, monkeypatch, schema_version=request.param)


class _PayloadFileWatch:
    """Records, while on, each file event under ``payloads/`` with the modules on the stack.

    An ``os`` call relative to a directory descriptor names the file alone
    (``3.json``, ``.3.json.tmp``, ``000001.zst``): such names count as payload files too.
    """

    EVENTS = {"open", "os.rename", "os.remove"}
    BARE_NAME = re.compile(r"^\.?[0-9]+\.(json|zst)(\.tmp)?$")

    def __init__(self) -> None:
        self.on = False
        self.seen: list[tuple[str, str, bool]] = []
        """(event, path, whether the store was on the stack)."""
        self._lock = threading.Lock()

    def hook(self, event: str, args: tuple[object, ...]) -> None:
        if not self.on or event not in self.EVENTS or not args:
            return
        path = args[0]
        if isinstance(path, bytes):
            path = path.decode(errors="replace")
        if not isinstance(path, str | Path):
            return
        text = str(path)
        if "/payloads/" not in text and not self.BARE_NAME.match(text):
            return
        frame: FrameType | None = sys._getframe(1)
        in_store = False
        while frame is not None:
            if frame.f_globals.get("__name__") == STORE_MODULE:
                in_store = True
                break
            frame = frame.f_back
        with self._lock:
            self.seen.append((event, text, in_store))


_watch = _PayloadFileWatch()
_hooked = False


@pytest.fixture
def watch() -> Iterator[_PayloadFileWatch]:
    global _hooked
    if not _hooked:  # an audit hook cannot be removed: add one, switched on by the test
        sys.addaudithook(_watch.hook)
        _hooked = True
    _watch.seen.clear()
    yield _watch
    _watch.on = False


def test_payload_files_are_only_touched_by_the_store(
    pipeline: Pipeline, watch: _PayloadFileWatch, tmp_path: Path
) -> None:
    example = load_example()
    watch.on = True
    bundle = example.run_rollout()  # live recording: the writer thread writes the payloads
    assert bundle is not None
    assert pipeline.exporter.force_flush()
    with BundleWriter.create(tmp_path / "direct", root_thread_id="root") as writer:
        ref = writer.write_payload(PayloadKind.PROTOCOL_EVENT, {"type": "x"})
        assert ref is not None
        writer.append(ProtocolEventObserved(event_type="x", event_payload=ref))
        writer.append(RecordingCompleted())
    reduce_bundle(bundle)
    assert bundle_spans(bundle, capture_content=True)
    assert validate_bundle(bundle).ok
    assert Bundle(writer.bundle_dir).read_payload(ref) == {"type": "x"}
    watch.on = False

    outside = [(event, path) for event, path, in_store in watch.seen if not in_store]
    assert outside == [], "payload files touched outside _bundle/_payloads.py"
    events = Counter(event for event, _, _ in watch.seen)
    if pipeline.schema_version == 2:  # a file per payload
        assert events["open"] > 20 and events["os.rename"] > 10, events  # written and read
    else:  # a few zstd shards
        assert events["open"] >= 3 and events["os.rename"] >= 2, events
    assert any(path.endswith(".tmp") for _, path, _ in watch.seen)  # the writes were seen
