"""Payload deletion and corruption sweep against Codex: every payload of every schema 2
fixture (judged by 0.169.0) and every shard record of every schema 3 fixture (judged by
0.171.0), deleted, emptied or made not JSON, is judged as Codex judges it (Codex reads and
parses every payload an event references, used or not), and an escaping path is refused
even where the payload is never used."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from otel_rollout import BundleError, reduce_bundle
from otel_rollout._bundle._shards import (
    compress_shard,
    decompress_shard,
    encode_record,
    iter_records,
)
from support.codex import codex_reduce

FIXTURES = Path(__file__).parent / "fixtures" / "codex-0.169.0"
BUNDLES = sorted(FIXTURES.glob("*/trace-*"))
BUNDLES_3 = sorted((FIXTURES.parent / "codex-0.171.0").glob("*/trace-*"))


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
    assert _differences(cases, codex_bin) == []


def _differences(cases: list[tuple[str, Path]], codex: Path) -> list[str]:
    def codex_accepts(bundle: Path) -> bool:
        done = codex_reduce(codex, bundle, bundle.parent / f"{bundle.name}.state.json")
        return done.returncode == 0

    with ThreadPoolExecutor(max_workers=2) as pool:
        verdicts = list(pool.map(codex_accepts, [bundle for _, bundle in cases]))
    return [
        f"{name}: Codex {'accepts' if theirs else 'rejects'}"
        for (name, bundle), theirs in zip(cases, verdicts, strict=True)
        if _ours_accepts(bundle) != theirs
    ]


Records = list[tuple[str, bytes]]

RECORD_VARIANTS: dict[str, Callable[[str, Records], Records]] = {
    "deleted": lambda ident, records: [(i, b) for i, b in records if i != ident],
    "empty": lambda ident, records: [(i, b"" if i == ident else b) for i, b in records],
    "not_json": lambda ident, records: [(i, b'{"cut": ' if i == ident else b) for i, b in records],
}


def _records(shard: Path) -> Records:
    data = decompress_shard(shard.read_bytes())
    return [(ident, data[start : start + size]) for ident, start, size in iter_records(data)]


@pytest.mark.parametrize("source", BUNDLES_3, ids=[path.parent.name for path in BUNDLES_3])
def test_shard_record_sweep_matches_codex_0171(
    source: Path, tmp_path: Path, codex_bin_0171: Path
) -> None:
    """Schema 3: each record of each shard deleted, emptied or made not JSON."""
    cases: list[tuple[str, Path]] = []
    for shard in sorted((source / "payloads").glob("*.zst")):
        records = _records(shard)
        for ident, _ in records:
            for variant, edit in RECORD_VARIANTS.items():
                bundle = tmp_path / f"{shard.stem}-{ident.replace(':', '_')}-{variant}"
                shutil.copytree(source, bundle)
                (bundle / "state.json").unlink()
                frame = compress_shard(encode_record(i, b) for i, b in edit(ident, records))
                (bundle / "payloads" / shard.name).write_bytes(frame)
                cases.append((f"{shard.name} {ident} {variant}", bundle))
    assert cases
    assert _differences(cases, codex_bin_0171) == []


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
