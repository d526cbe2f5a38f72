"""The README's recording example runs as written and writes a bundle Codex accepts."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from otel_rollout import reduce_bundle, validate_bundle
from support.codex import codex_reduce

README = Path(__file__).resolve().parents[1] / "README.md"


def _python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), re.S)


def test_the_readme_recording_example_writes_a_bundle_codex_accepts(
    tmp_path: Path, codex_bin: Path
) -> None:
    (block,) = [code for code in _python_blocks() if "ThreadTraceContext" in code]
    script = tmp_path / "example.py"
    script.write_text(block, encoding="utf-8")
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    bundle = tmp_path / done.stdout.strip()
    assert bundle.parent == tmp_path / "rollouts"
    report = validate_bundle(bundle)
    assert report.ok, report.problems
    assert (report.threads, report.turns) == (2, 2)
    trace = reduce_bundle(bundle)
    kinds = sorted(edge.kind for edge in trace.interaction_edges.values())
    assert kinds == ["agent_result", "spawn_agent"]
    assert codex_reduce(codex_bin, bundle, tmp_path / "state.json").returncode == 0
