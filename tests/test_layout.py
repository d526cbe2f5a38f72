"""The package's shape: no import cycles, layers that import downwards only, a facade in step.

Every ``import`` statement counts (module level, under ``TYPE_CHECKING`` and inside
functions): a cycle hidden in a function-local import is still a cycle.
"""

from __future__ import annotations

import ast
import subprocess
import sys
import warnings
import zipfile
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import pytest

import otel_rollout

PACKAGE_DIR = Path(otel_rollout.__file__).resolve().parent
REPO_ROOT = Path(__file__).resolve().parents[1]

LAYERS: dict[str, set[str]] = {
    # layer -> the layers it may import (besides itself)
    "leaf": set(),
    "bundle": {"leaf"},
    "reduce": {"leaf", "bundle"},
    "otel": {"leaf", "bundle", "semconv"},
    "live": {"leaf", "bundle", "otel", "semconv"},
    "show": {"leaf"},
    "view": {"leaf", "bundle", "reduce", "show"},
    "events": {"bundle"},
    "semconv": set(),
    "cli": {"leaf", "bundle", "reduce", "otel", "show", "view", "cli"},
    "facade": {"leaf", "bundle", "reduce", "otel", "live", "events", "semconv"},
    "integrations": {"leaf", "bundle", "otel", "live", "semconv", "integrations"},
}
"""What each layer may import. The facade imports only under ``TYPE_CHECKING`` (lazily)."""

WITHOUT_OPENTELEMETRY = ("leaf", "bundle", "reduce", "events", "show", "view")
"""Layers that must never import OpenTelemetry, directly or through the package."""


def _layer(module: str) -> str:
    parts = module.split(".")
    if module == "otel_rollout":
        return "facade"
    top = parts[1]
    if top in ("_config", "_errors", "_version", "__main__"):
        return "leaf" if top != "__main__" else "cli"
    return {
        "_bundle": "bundle",
        "_reduce": "reduce",
        "_otel": "otel",
        "_live": "live",
        "_show": "show",
        "_view": "view",
        "events": "events",
        "semconv": "semconv",
        "cli": "cli",
        "_agents_sdk": "integrations",
        "openai_agents": "integrations",
    }[top]


def _module_name(path: Path) -> str:
    relative = path.relative_to(PACKAGE_DIR.parent).with_suffix("")
    parts = list(relative.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


@cache
def _modules() -> dict[str, Path]:
    return {_module_name(path): path for path in sorted(PACKAGE_DIR.rglob("*.py"))}


def _imports(module: str) -> Iterator[tuple[str, int]]:
    """(imported name, line) for every import statement of ``module``, resolved."""
    path = _modules()[module]
    tree = ast.parse(path.read_text(), str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                candidate = f"{base}.{alias.name}"
                yield (candidate if candidate in _modules() else base), node.lineno


@cache
def _graph() -> dict[str, dict[str, int]]:
    """Package module -> {package module it imports: line}."""
    modules = _modules()
    return {
        module: {name: line for name, line in _imports(module) if name in modules}
        for module in modules
    }


def _third_party(module: str) -> set[str]:
    return {
        name.split(".")[0] for name, _ in _imports(module) if name.split(".")[0] != "otel_rollout"
    }


def test_the_package_has_no_import_cycle() -> None:
    graph = _graph()
    state: dict[str, int] = {}  # 1 on the stack, 2 done
    stack: list[str] = []
    cycles: list[str] = []

    def visit(module: str) -> None:
        state[module] = 1
        stack.append(module)
        for target in sorted(graph[module]):
            if state.get(target) == 1:
                cycle = [*stack[stack.index(target) :], target]
                cycles.append(" -> ".join(cycle))
            elif target not in state:
                visit(target)
        stack.pop()
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module)
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


def test_the_cycle_check_sees_function_local_and_type_checking_imports() -> None:
    imports = dict(_imports("otel_rollout"))
    assert "otel_rollout._reduce" in imports  # only under TYPE_CHECKING in the facade
    cli_reduce = dict(_imports("otel_rollout.cli._reduce"))
    assert "otel_rollout._reduce" in cli_reduce  # only inside the command's function


def test_each_layer_imports_only_the_layers_below_it() -> None:
    wrong = [
        f"{module} ({_layer(module)}) imports {target} ({_layer(target)}) at line {line}"
        for module, targets in _graph().items()
        for target, line in targets.items()
        if _layer(target) != _layer(module) and _layer(target) not in LAYERS[_layer(module)]
    ]
    assert not wrong, "\n".join(wrong)


def test_the_bundle_format_and_reducer_layers_never_import_opentelemetry() -> None:
    graph = _graph()
    wrong = []
    for module in graph:
        if _layer(module) not in WITHOUT_OPENTELEMETRY:
            continue
        seen: set[str] = set()
        todo = [module]
        while todo:
            current = todo.pop()
            if current in seen:
                continue
            seen.add(current)
            if {"opentelemetry", "rich"} & _third_party(current) and current != module:
                wrong.append(f"{module} reaches {current}, which imports OpenTelemetry or rich")
            elif "opentelemetry" in _third_party(current):
                wrong.append(f"{module} imports OpenTelemetry")
            todo.extend(graph[current])
    assert not wrong, "\n".join(wrong)


def _type_checking_block(tree: ast.Module) -> ast.If:
    for node in tree.body:
        if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING":
            return node
    raise AssertionError("the facade has no TYPE_CHECKING block")


def test_the_facade_all_exports_and_type_checking_imports_agree() -> None:
    source = Path(otel_rollout.__file__).read_text()
    tree = ast.parse(source)
    typed: dict[str, str] = {}
    for node in _type_checking_block(tree).body:
        assert isinstance(node, ast.ImportFrom) and node.module is not None
        for alias in node.names:
            assert alias.asname == alias.name, f"{alias.name} is not re-exported as itself"
            typed[alias.name] = node.module
    exports = otel_rollout._EXPORTS
    submodules = otel_rollout._SUBMODULES
    assert {name: module for name, module in typed.items() if name not in submodules} == exports
    assert set(otel_rollout.__all__) == {*exports, *submodules, "__version__"}
    assert otel_rollout.__all__ == sorted(otel_rollout.__all__)
    for name in submodules:
        assert typed[name] == "otel_rollout"


def test_every_public_name_resolves_and_is_defined_where_the_facade_says() -> None:
    for name in otel_rollout.__all__:
        value = getattr(otel_rollout, name)
        if name in otel_rollout._EXPORTS and (isinstance(value, type) or callable(value)):
            assert value.__module__ == otel_rollout._EXPORTS[name], name
    assert isinstance(otel_rollout.__version__, str) and otel_rollout.__version__
    assert otel_rollout.events.RolloutStarted is not None  # a submodule without importing it


def test_public_names_are_not_private_types() -> None:
    for name in otel_rollout.__all__:
        value = getattr(otel_rollout, name)
        if isinstance(value, type) or callable(value):
            assert not value.__name__.startswith("_"), f"{name} is a private class"
            assert value.__module__.startswith("otel_rollout"), name


def test_the_old_reducer_name_warns_and_still_works() -> None:
    with pytest.warns(DeprecationWarning, match="reduce_bundle"):
        old = otel_rollout.replay_bundle
    assert old is otel_rollout.reduce_bundle
    assert "replay_bundle" not in otel_rollout.__all__
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert otel_rollout.reduce_bundle is not None


def test_version_prints_from_a_fresh_interpreter() -> None:
    done = subprocess.run(
        [sys.executable, "-c", "import otel_rollout; print(otel_rollout.__version__)"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout.strip() == otel_rollout.__version__


@pytest.mark.slow
def test_the_wheel_holds_the_package_and_no_test_code(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(tmp_path), str(REPO_ROOT)],
        check=True,
    )  # fmt: skip
    (wheel,) = tmp_path.glob("otel_rollout-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    package = [name for name in names if name.startswith("otel_rollout/")]
    assert "otel_rollout/py.typed" in package
    assert "otel_rollout/__init__.py" in package
    assert not [name for name in names if "synthetic" in name or name.startswith("tests/")]
    expected = {
        f"otel_rollout/{path.relative_to(PACKAGE_DIR).as_posix()}"
        for path in PACKAGE_DIR.rglob("*.py")
    }
    assert expected <= set(package)
    assets = {f"otel_rollout/_view/assets/view.{ext}" for ext in ("html", "css", "js")}
    assert assets <= set(package)
