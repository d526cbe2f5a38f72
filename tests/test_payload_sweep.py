"""Payload deletion and corruption sweep against Codex 0.169.0: every payload of every
schema 2 fixture, deleted, emptied or made not JSON, is judged as Codex judges it (Codex
reads and parses every payload an event references, used or not), and an escaping path is
refused even where the payload is never used."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from otel_rollout import BundleError, reduce_bundle
from support.codex import codex_reduce

FIXTURES = Path(__file__).parent / "fixtures" / "codex-0.169.0"
BUNDLES = sorted(FIXTURES.glob("*/trace-*"))


def _delete(path: Path) -> None:
    path.unlink()


def _empty(path: Path) -> None:
    path.write_bytes(b"")


def _not_json(path: Path) -> None:
    path.write_bytes(b'{"cut": ')


VARIANTS: dict[str, Callable[[Path], None]] = {
    "deleted": _delete,
    "empty": _empty,
    "not_json": _not_json,
}


def _ours_accepts(bundle: Path) -> bool:
    try:
        reduce_bundle(bundle, warn=lambda _: None)
    except BundleError:
        return False
    return True


@pytest.mark.parametrize("source", BUNDLES, ids=[path.parent.name for path in BUNDLES])
def test_payload_sweep_matches_codex(source: Path, tmp_path: Path, codex_bin: Path) -> None:
    cases: list[tuple[str, Path]] = []
    for payload in sorted((source / "payloads").iterdir()):
        for variant, edit in VARIANTS.items():
            bundle = tmp_path / f"{payload.stem}-{variant}"
            shutil.copytree(source, bundle)
            (bundle / "state.json").unlink()
            edit(bundle / "payloads" / payload.name)
            cases.append((f"{payload.name} {variant}", bundle))

    def codex_accepts(bundle: Path) -> bool:
        done = codex_reduce(codex_bin, bundle, bundle.parent / f"{bundle.name}.state.json")
        return done.returncode == 0

    with ThreadPoolExecutor(max_workers=2) as pool:
        verdicts = list(pool.map(codex_accepts, [bundle for _, bundle in cases]))
    differences = [
        f"{name}: Codex {'accepts' if theirs else 'rejects'}"
        for (name, bundle), theirs in zip(cases, verdicts, strict=True)
        if _ours_accepts(bundle) != theirs
    ]
    assert differences == []


def test_escaping_path_refused_where_the_payload_is_unused(tmp_path: Path) -> None:
    """A protocol event's payload (which no handler uses) pointing out of the bundle."""
    source = next((FIXTURES / "plain").glob("trace-*"))
    bundle = tmp_path / source.name
    shutil.copytree(source, bundle)
    (tmp_path / "outside.json").write_text("{}")
    log = bundle / "trace.jsonl"
    lines = log.read_text().splitlines()
    index = next(i for i, line in enumerate(lines) if "protocol_event_observed" in line)
    event = json.loads(lines[index])
    event["payload"]["event_payload"]["path"] = "../outside.json"
    lines[index] = json.dumps(event, separators=(",", ":"))
    log.write_text("\n".join(lines) + "\n")
    with pytest.raises(BundleError, match="leaves the bundle"):
        reduce_bundle(bundle)
