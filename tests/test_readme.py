"""The README's recording example runs as written and writes a bundle Codex accepts."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from otel_rollout import reduce_bundle, validate_bundle, write_state
from support.codex import codex_reduce

README = Path(__file__).resolve().parents[1] / "README.md"


def _python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), re.S)


@pytest.mark.parametrize("schema_version", [None, 2], ids=["default", "schema2"])
def test_the_readme_recording_example_writes_a_bundle_codex_accepts(
    tmp_path: Path, codex_for: Callable[[int], Path], schema_version: int | None
) -> None:
    """By default the bundle is schema 3 and Codex 0.171.0 reduces it to our bytes; with
    ``OTEL_ROLLOUT_SCHEMA_VERSION=2`` it is schema 2 and Codex 0.169.0 does."""
    (block,) = [code for code in _python_blocks() if "ThreadTraceContext" in code]
    script = tmp_path / "example.py"
    script.write_text(block, encoding="utf-8")
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    if "PYTHONPATH" in os.environ:  # the package under test (a worktree), not an install
        paths = os.environ["PYTHONPATH"].split(os.pathsep)
        env["PYTHONPATH"] = os.pathsep.join(os.path.abspath(path) for path in paths)
    if schema_version is not None:
        env["OTEL_ROLLOUT_SCHEMA_VERSION"] = str(schema_version)
    done = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    bundle = tmp_path / done.stdout.strip()
    assert bundle.parent == tmp_path / "rollouts"
    expected = 3 if schema_version is None else schema_version
    assert json.loads((bundle / "manifest.json").read_text())["schema_version"] == expected
    report = validate_bundle(bundle)
    assert report.ok, report.problems
    assert (report.threads, report.turns) == (2, 2)
    trace = reduce_bundle(bundle)
    kinds = sorted(edge.kind for edge in trace.interaction_edges.values())
    assert kinds == ["agent_result", "spawn_agent"]
    assert codex_reduce(codex_for(expected), bundle, tmp_path / "state.json").returncode == 0
    ours = write_state(trace, tmp_path / "ours.json").read_bytes()
    assert ours == (tmp_path / "state.json").read_bytes()
