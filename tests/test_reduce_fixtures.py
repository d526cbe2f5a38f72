"""The reducer reproduces Codex 0.169.0's state.json byte for byte on every real fixture bundle."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from otel_rollout import RolloutTrace, replay_bundle, write_state
from otel_rollout._reduce import encode_state
from otel_rollout.cli import main

FIXTURES = Path(__file__).parent / "fixtures"
BUNDLES = sorted(
    path
    for corpus in ("codex-0.169.0", "codex-0.169.0-large")
    for path in (FIXTURES / corpus).glob("*/trace-*")
    if path.is_dir()
)


def _id(bundle: Path) -> str:
    return f"{bundle.parent.parent.name}/{bundle.parent.name}"


def test_all_twelve_fixtures_are_found() -> None:
    assert len(BUNDLES) == 12


@pytest.mark.parametrize("bundle", BUNDLES, ids=_id)
def test_state_is_byte_identical_to_codex(bundle: Path) -> None:
    trace = replay_bundle(bundle)
    assert isinstance(trace, RolloutTrace)
    assert encode_state(trace) == (bundle / "state.json").read_bytes()


def test_cli_writes_state_and_prints_its_path(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bundle = FIXTURES / "codex-0.169.0" / "code_mode_cell"
    source = next(bundle.glob("trace-*"))
    copy = tmp_path / source.name
    shutil.copytree(source, copy)
    expected = (copy / "state.json").read_bytes()
    (copy / "state.json").unlink()

    assert main(["reduce", str(copy)]) == 0
    assert capsys.readouterr().out == f"{copy / 'state.json'}\n"
    assert (copy / "state.json").read_bytes() == expected

    out = tmp_path / "elsewhere.json"
    assert main(["reduce", str(copy), "-o", str(out)]) == 0
    assert capsys.readouterr().out == f"{out}\n"
    assert out.read_bytes() == expected


def test_write_state_returns_the_path(tmp_path: Path) -> None:
    bundle = next((FIXTURES / "codex-0.169.0" / "plain").glob("trace-*"))
    path = write_state(replay_bundle(bundle), tmp_path / "s.json")
    assert path.read_bytes() == (bundle / "state.json").read_bytes()


def test_reduce_imports_neither_opentelemetry_nor_rich(tmp_path: Path) -> None:
    bundle = next((FIXTURES / "codex-0.169.0" / "plain").glob("trace-*"))
    code = (
        "import sys\n"
        "from otel_rollout.cli import main\n"
        f"assert main(['reduce', {str(bundle)!r}, '-o', {str(tmp_path / 'o.json')!r}]) == 0\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('opentelemetry', 'rich'))\n"
        "print(heavy)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.strip().splitlines()[-1] == "[]"
