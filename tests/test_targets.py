"""Many bundles per command: one rule (``cli/_targets.py``) for validate, reduce, show, replay.

A path is a bundle, or a directory searched recursively for bundles (symbolic links to
directories not followed); every bundle is processed even when some fail; exit 2 if a
path cannot be read, else 1 if a bundle is invalid or failed, else 0.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from otel_rollout._otel._replay import bundle_spans
from otel_rollout._reduce import encode_state, reduce_bundle
from otel_rollout.cli import main
from otel_rollout.cli._targets import find_bundles
from support.otlp_receiver import receiving
from support.synthetic import SyntheticOptions, generate_bundle

FIXTURES = Path(__file__).resolve().parent / "fixtures"


def _fixture(scenario: str, version: str = "codex-0.169.0") -> Path:
    (bundle,) = sorted((FIXTURES / version / scenario).glob("trace-*"))
    return bundle


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """rollouts/{a/<plain>, b/c/<tool_call>, <two_turns schema 3>}, a link to a bundle,
    and a link to a directory of bundles (neither followed).
    """
    root = tmp_path / "rollouts"
    shutil.copytree(_fixture("plain"), root / "a" / "plain")
    shutil.copytree(_fixture("tool_call"), root / "b" / "c" / "tool_call")
    shutil.copytree(_fixture("two_turns", "codex-0.171.0"), root / "two_turns")
    elsewhere = tmp_path / "elsewhere"
    shutil.copytree(_fixture("plain"), elsewhere / "linked")
    (root / "link-to-bundle").symlink_to(elsewhere / "linked")
    (root / "link-to-dir").symlink_to(elsewhere)
    return root


def test_a_directory_is_searched_for_bundles_and_links_are_not_followed(tree: Path) -> None:
    targets = find_bundles([tree])
    assert targets.bundles == [
        tree / "a" / "plain",
        tree / "b" / "c" / "tool_call",
        tree / "two_turns",
    ]
    assert targets.many and targets.exit_code == 0


def test_a_bundle_is_itself_even_when_broken(tmp_path: Path) -> None:
    (tmp_path / "trace.jsonl").write_text("", encoding="utf-8")  # no manifest: still a bundle
    targets = find_bundles([tmp_path])
    assert targets.bundles == [tmp_path] and not targets.many


def test_validate_checks_every_bundle_and_names_the_invalid_one(
    tree: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = tree / "b" / "c" / "tool_call"
    (broken / "manifest.json").write_text("{", encoding="utf-8")
    assert main(["validate", str(tree)]) == 1
    out, err = capsys.readouterr()
    assert out.count("ok: ") == 2
    assert out.splitlines()[-1] == "validated 3 bundle(s): 2 ok, 1 failed"
    assert f"{broken}: failed" in err
    assert "Traceback" not in err


def test_validate_of_several_valid_paths_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    paths = [str(_fixture("plain")), str(FIXTURES / "codex-0.171.0")]
    assert main(["validate", *paths]) == 0
    assert "0 failed" in capsys.readouterr().out.splitlines()[-1]


def test_a_directory_without_bundles_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "rollouts").mkdir()
    for command in ("validate", "reduce", "show", "replay"):
        assert main([command, str(tmp_path / "rollouts")]) == 1, command
        err = capsys.readouterr().err
        assert "no trace bundle" in err and "cannot read" not in err


def test_reduce_a_directory_into_an_output_directory(
    tree: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    assert main(["reduce", str(tree), "-o", str(out)]) == 0
    for relative in ("a/plain", "b/c/tool_call", "two_turns"):
        state = out / relative / "state.json"
        assert state.read_bytes() == encode_state(reduce_bundle(tree / relative))
        assert (state.stat().st_mode & 0o777) == 0o600
    lines = capsys.readouterr().out.splitlines()
    assert lines[-1] == "reduced 3 bundle(s): 3 ok, 0 failed"


def test_reduce_goes_on_after_a_bundle_it_refuses(
    tree: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = tree / "a" / "plain" / "trace.jsonl"
    log.write_bytes(log.read_bytes().replace(b'"seq":2', b'"seq":7', 1))
    assert main(["reduce", str(tree), "-o", str(tmp_path / "out")]) == 1
    assert (tmp_path / "out" / "two_turns" / "state.json").exists()
    assert (tmp_path / "out" / "b" / "c" / "tool_call" / "state.json").exists()
    err = capsys.readouterr().err
    assert f"{log}:2: missing or reordered event" in err
    assert f"{tree / 'a' / 'plain'}: failed" in err


def test_reduce_of_one_bundle_keeps_its_output_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["reduce", str(_fixture("plain")), "-o", str(tmp_path)]) == 2  # a directory
    assert main(["reduce", str(_fixture("plain")), "-o", str(tmp_path / "s.json")]) == 0
    assert capsys.readouterr().out == f"{tmp_path / 's.json'}\n"


def test_show_of_a_directory_with_one_bundle_shows_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shutil.copytree(_fixture("plain"), tmp_path / "rollouts" / "plain")
    assert main(["show", "--json", str(tmp_path / "rollouts")]) == 0
    assert '"kind": "rollout"' in capsys.readouterr().out


def test_show_of_a_directory_with_several_lists_them(
    tree: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["show", str(tree)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines[:3]] == [
        str(tree / "a" / "plain"),
        str(tree / "b" / "c" / "tool_call"),
        str(tree / "two_turns"),
    ]
    assert "schema 3" in lines[2]
    assert lines[3] == "3 bundles: `otel-rollout show BUNDLE` shows one"


def test_a_directory_of_100_bundles_is_replayed_in_one_command(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in list(os.environ):
        if name.startswith("OTEL_"):
            monkeypatch.delenv(name)
    root = tmp_path / "rollouts"
    bundles = [
        generate_bundle(
            root / f"{seed:03d}",
            seed,
            SyntheticOptions(turns=1, children=0, crash=False, schema_version=2 + seed % 2),
        )
        for seed in range(100)
    ]
    expected = sorted(
        (span.context.trace_id.to_bytes(16, "big"), span.context.span_id.to_bytes(8, "big"))
        for bundle in bundles
        for span in bundle_spans(bundle)
        if span.context
    )
    with receiving() as receiver:
        assert main(["replay", str(root), "--endpoint", receiver.endpoint]) == 0
    assert sorted(receiver.span_ids()) == expected
    assert len({trace for trace, _ in expected}) == 100
    out = capsys.readouterr().out.splitlines()
    assert out[-1] == "replayed 100 bundle(s): 100 ok, 0 failed"


_IMPORTS = """
import sys
from otel_rollout.cli import main
code = main(sys.argv[1:])
print(" ".join(sorted(sys.modules)))
"""


@pytest.mark.parametrize(
    ("argv", "never"),
    [
        (
            ["--help"],
            ["otel_rollout._reduce", "otel_rollout._bundle", "opentelemetry", "rich"]
            + [f"otel_rollout.cli._{name}" for name in ("targets", "reduce", "validate", "show")],
        ),
        # a schema-2 bundle: zstd (schema 3's payload shards) is never loaded
        (["validate", "BUNDLE"], ["otel_rollout._reduce", "opentelemetry", "rich", "zstandard"]),
        (
            ["reduce", "BUNDLE", "-o", "OUT"],
            ["opentelemetry", "rich", "importlib.metadata", "zstandard"],
        ),
    ],
)
def test_a_command_imports_only_what_it_uses(
    argv: list[str], never: list[str], tmp_path: Path
) -> None:
    argv = [
        {"BUNDLE": str(_fixture("plain")), "OUT": str(tmp_path / "s.json")}.get(arg, arg)
        for arg in argv
    ]
    done = subprocess.run(
        [sys.executable, "-c", _IMPORTS, *argv], capture_output=True, text=True, check=True
    )
    modules = set(done.stdout.split("\n")[-2].split())
    assert "otel_rollout.cli" in modules
    for name in never:
        assert not {m for m in modules if m == name or m.startswith(f"{name}.")}, name
