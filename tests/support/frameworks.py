"""The per-framework virtual environments the framework tests run their apps in.

Each stack's pins live in ``tests/frameworks/requirements-<stack>.txt``;
``scripts/install-frameworks`` builds its venv (this package, editable, beside the framework).
A test runs the app as a subprocess with that venv's Python, as a user's app would run, and checks
the bundle it wrote from here.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
REQUIREMENTS_DIR = REPO_ROOT / "tests" / "frameworks"


def venvs_root() -> Path:
    """Where ``scripts/install-frameworks`` puts the stacks' venvs."""
    configured = os.environ.get("OTEL_ROLLOUT_FRAMEWORK_VENVS")
    if configured:
        return Path(configured)
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "otel-rollout" / "frameworks"


def framework_python(stack: str) -> Path:
    """The Python of ``stack``'s venv; fails the test in CI when it is missing, else skips."""
    if not (REQUIREMENTS_DIR / f"requirements-{stack}.txt").is_file():
        raise ValueError(f"no such framework stack: {stack}")
    python = venvs_root() / stack / "bin" / "python"
    if not python.is_file():
        reason = (
            f"framework stack {stack!r} not installed: "
            f"run `bash scripts/install-frameworks {stack}`"
        )
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    return python


def framework_env(**extra: str) -> dict[str, str]:
    """The environment for an app run in a stack's venv: this tree's ``src`` first on the path.

    The venvs hold the package installed editable from wherever they were built; putting this
    checkout's sources first makes the app run the code under test.
    """
    env = {**os.environ, **extra}
    src = str(REPO_ROOT / "src")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (src, env.get("PYTHONPATH", "")) if p)
    return env
