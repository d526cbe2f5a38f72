"""Mutation-based differential test against Codex (bounded: ``MUTANTS`` bundles a schema).

Each mutant is a fixture changed one way (schema 2 judged by Codex 0.169.0, schema 3 by
0.171.0), chosen by a seeded generator: an integer
at or past a width, a field given twice, a struct as an array, a unit variant as a map,
an event inserted, two events swapped (``seq`` renumbered), the log truncated, a payload
corrupted (a payload file, or a shard record), payloads omitted by a size limit (schema 3;
schema 2: a payload ``null``). Codex and ``reduce`` must agree on accept or
reject, and on the state bytes when both accept; a difference outside the allowlist of
docs/reducer-errors.md fails.
"""

from __future__ import annotations

import json
import os
import random
import shutil
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from otel_rollout import BundleError, reduce_bundle
from otel_rollout._bundle._shards import (
    compress_shard,
    decompress_shard,
    encode_record,
    iter_records,
)
from otel_rollout._reduce import encode_state
from support.codex import codex_reduce

FIXTURES = Path(__file__).parent / "fixtures"
SOURCES = {
    2: sorted((FIXTURES / "codex-0.169.0").glob("*/trace-*")),
    3: sorted((FIXTURES / "codex-0.171.0").glob("*/trace-*")),
}
MUTANTS = int(os.environ.get("OTEL_ROLLOUT_MUTANTS", "120"))

Lines = list[dict[str, Any]]


def _renumber(lines: Lines) -> None:
    for seq, line in enumerate(lines, start=1):
        line["seq"] = seq


def wide_integer(lines: Lines, rng: random.Random, bundle: Path) -> None:
    line = rng.choice(lines)
    line["wall_time_unix_ms"] = rng.choice([(1 << 63) - 1, 1 << 63, -(1 << 63) - 1, 1 << 64])


def inserted_event(lines: Lines, rng: random.Random, bundle: Path) -> None:
    lines.insert(rng.randrange(len(lines) + 1), json.loads(json.dumps(rng.choice(lines))))
    _renumber(lines)


def swapped_events(lines: Lines, rng: random.Random, bundle: Path) -> None:
    index = rng.randrange(len(lines) - 1)
    lines[index], lines[index + 1] = lines[index + 1], lines[index]
    _renumber(lines)


def truncated_log(lines: Lines, rng: random.Random, bundle: Path) -> None:
    del lines[rng.randrange(1, len(lines)) :]


def unit_variant_as_map(lines: Lines, rng: random.Random, bundle: Path) -> None:
    candidates = [line for line in lines if isinstance(line["payload"].get("status"), str)]
    if candidates:
        payload = rng.choice(candidates)["payload"]
        payload["status"] = {payload["status"]: None}


def envelope_as_array(lines: Lines, rng: random.Random, bundle: Path) -> None:
    index = rng.randrange(len(lines))
    lines[index] = list(lines[index].values())  # type: ignore[call-overload]


def corrupted_payload(lines: Lines, rng: random.Random, bundle: Path) -> None:
    path = rng.choice(sorted((bundle / "payloads").iterdir()))
    data = path.read_bytes()
    if path.suffix != ".zst":
        path.write_bytes(data[: rng.randrange(len(data))])
        return
    whole = decompress_shard(data)
    records = [(ident, whole[at : at + size]) for ident, at, size in iter_records(whole)]
    index = rng.randrange(len(records))
    ident, body = records[index]
    records[index] = (ident, body[: rng.randrange(len(body) + 1)])
    path.write_bytes(compress_shard(encode_record(*record) for record in records))


def omitted_capture(lines: Lines, rng: random.Random, bundle: Path) -> None:
    """Schema 3: one to three payload refs of events ``capture: omitted`` (no record), as
    a size limit leaves them; schema 2, which cannot cut one, one payload file ``null``."""
    refs = [
        value
        for line in lines
        for value in line["payload"].values()
        if isinstance(value, dict) and "raw_payload_id" in value
    ]
    if not refs:
        return
    if lines[0]["schema_version"] == 2:
        (bundle / rng.choice(refs)["path"]).write_text("null")
        return
    for ref in rng.sample(refs, min(len(refs), rng.randint(1, 3))):
        ref["shard"] = None
        ref["capture"] = {"status": "omitted", "original_bytes": rng.randrange(1, 1 << 20)}


MUTATIONS: list[Callable[[Lines, random.Random, Path], None]] = [
    omitted_capture,
    wide_integer,
    inserted_event,
    swapped_events,
    truncated_log,
    unit_variant_as_map,
    envelope_as_array,
    corrupted_payload,
]


def _mutant(seed: int, root: Path, schema: int) -> tuple[str, Path]:
    rng = random.Random(seed)
    source = rng.choice(SOURCES[schema])
    mutation = rng.choice(MUTATIONS)
    bundle = root / f"{schema}-{seed}-{mutation.__name__}"
    shutil.copytree(source, bundle)
    (bundle / "state.json").unlink()
    log = bundle / "trace.jsonl"
    lines: Lines = [json.loads(line) for line in log.read_bytes().splitlines()]
    mutation(lines, rng, bundle)
    log.write_bytes(
        b"".join(json.dumps(line, separators=(",", ":")).encode() + b"\n" for line in lines)
    )
    return f"{seed} {source.parent.name} {mutation.__name__}", bundle


def _ours(bundle: Path) -> bytes | None:
    try:
        return encode_state(reduce_bundle(bundle, warn=lambda _: None))
    except BundleError:
        return None


@pytest.mark.parametrize("schema", [2, 3])
def test_mutants_reduce_as_codex(
    schema: int, tmp_path: Path, codex_for: Callable[[int], Path]
) -> None:
    codex = codex_for(schema)
    mutants = [_mutant(seed, tmp_path, schema) for seed in range(MUTANTS)]

    def theirs(bundle: Path) -> bytes | None:
        out = bundle.parent / f"{bundle.name}.state.json"
        done = codex_reduce(codex, bundle, out)
        return out.read_bytes() if done.returncode == 0 else None

    with ThreadPoolExecutor(max_workers=2) as pool:
        codex_states = list(pool.map(theirs, [bundle for _, bundle in mutants]))
    differences = []
    for (name, bundle), codex_state in zip(mutants, codex_states, strict=True):
        ours = _ours(bundle)
        if (ours is None) != (codex_state is None):
            differences.append(f"{name}: Codex {'rejects' if codex_state is None else 'accepts'}")
        elif ours is not None and ours != codex_state:
            differences.append(f"{name}: states differ")
    assert differences == []


def _nodes(value: Any, at: tuple[Any, ...] = ()) -> list[tuple[tuple[Any, ...], Any]]:
    found = [(at, value)]
    if isinstance(value, dict | list):
        for key, item in value.items() if isinstance(value, dict) else enumerate(value):
            found += _nodes(item, (*at, key))
    return found


def _replaced(value: Any, at: tuple[Any, ...], new: Any) -> Any:
    if not at:
        return new
    value[at[0]] = _replaced(value[at[0]], at[1:], new)
    return value


def _alternative_form(body: bytes, rng: random.Random) -> bytes:
    """One object of ``body`` as an array of its values, or one word as a unit variant map."""
    value = json.loads(body)
    nodes = [
        (at, node)
        for at, node in _nodes(value)
        if (isinstance(node, dict) and node) or (isinstance(node, str) and node.isidentifier())
    ]
    if not nodes:
        return body
    at, node = rng.choice(nodes)
    new = list(node.values()) if isinstance(node, dict) else {node: None}
    return json.dumps(_replaced(value, at, new)).encode()


def payload_alternative_form(lines: Lines, rng: random.Random, bundle: Path) -> None:
    path = rng.choice(sorted((bundle / "payloads").iterdir()))
    if path.suffix != ".zst":
        path.write_bytes(_alternative_form(path.read_bytes(), rng))
        return
    whole = decompress_shard(path.read_bytes())
    records = [(ident, whole[at : at + size]) for ident, at, size in iter_records(whole)]
    wholes = [index for index, (_, body) in enumerate(records) if _is_json_object(body)]
    if wholes:
        index = rng.choice(wholes)
        ident, body = records[index]
        records[index] = (ident, _alternative_form(body, rng))
        path.write_bytes(compress_shard(encode_record(*record) for record in records))


def _is_json_object(body: bytes) -> bool:
    try:
        return isinstance(json.loads(body), dict)
    except ValueError:
        return False


MUTATIONS.append(payload_alternative_form)

_PLAIN_FORMS = FIXTURES / "codex-0.169.0"


def _edit_payload(scenario: str, name: str, at: tuple[Any, ...]) -> Callable[[Path], None]:
    def edit(bundle: Path) -> None:
        path = bundle / "payloads" / name
        value = json.loads(path.read_bytes())
        node = value
        for key in at:
            node = node[key]
        path.write_text(json.dumps(_replaced(value, at, list(node.values()))))

    edit.__name__ = f"{scenario}:{name}:{'/'.join(map(str, at)) or 'whole'}"
    return edit


PAYLOAD_FORMS = [
    ("multi_agent_v2_spawn", _edit_payload("agent", "15.json", ("content", 0))),
    ("multi_agent_v2_spawn", _edit_payload("agent", "15.json", ("content", 1))),
    ("multi_agent_v2_spawn", _edit_payload("agent", "16.json", ("input", 5, "content", 0))),
    ("terminal_write_stdin", _edit_payload("stdin", "12.json", ())),
    ("terminal_write_stdin", _edit_payload("stdin", "12.json", ("payload",))),
    ("terminal_write_stdin", _edit_payload("stdin", "13.json", ())),
]


@pytest.mark.parametrize(
    ("scenario", "edit"), PAYLOAD_FORMS, ids=[edit.__name__ for _, edit in PAYLOAD_FORMS]
)
def test_serde_forms_inside_payload_bodies_as_codex(
    scenario: str, edit: Callable[[Path], None], tmp_path: Path, codex_bin: Path
) -> None:
    """The places an exhaustive sweep (every object of every fixture payload as an array,
    every word as a unit variant map: 6,583 bundles against 0.169.0, 8,108 against 0.171.0)
    found us refusing what Codex accepts: agent message content parts, the write_stdin
    invocation and its result. Codex accepts each, and the state is the same."""
    (source,) = (_PLAIN_FORMS / scenario).glob("trace-*")
    bundle = tmp_path / source.name
    shutil.copytree(source, bundle)
    (bundle / "state.json").unlink()
    edit(bundle)
    out = tmp_path / "codex.json"
    done = codex_reduce(codex_bin, bundle, out)
    assert done.returncode == 0, done.stderr
    assert _ours(bundle) == out.read_bytes()


_STDIN_RESULTS = [
    '{"type":"direct_response","response_item":{"type":"function_call_output","call_id":"c","output":"o","x":[N]}}',
    '{"type":"code_mode_response","value":{"output":"x","exit_code":N}}',
    '{"type":"code_mode_response","value":{"output":"x","original_token_count":N}}',
    '{"type":"error","error":"e","x":{"y":N}}',
    '{"exit_code":0,"aggregated_output":"","x":N}',
]
_WIDTHS = [
    "2147483648",
    "-2147483649",
    "9223372036854775808",
    "18446744073709551615",
    "18446744073709551616",
    "-9223372036854775808",
    "-9223372036854775809",
]


def test_integer_widths_in_a_write_stdin_result_as_codex(tmp_path: Path, codex_bin: Path) -> None:
    """Codex refuses an integer outside i64 and u64 anywhere in a dispatch result (not in an
    exec end payload, which it tries first), and reads a code-mode ``exit_code`` outside i32
    as text: verdicts and states equal Codex's."""
    (source,) = (_PLAIN_FORMS / "terminal_write_stdin").glob("trace-*")
    differences = []
    for shape, template in enumerate(_STDIN_RESULTS):
        for width in _WIDTHS:
            bundle = tmp_path / f"{shape}-{width}"
            shutil.copytree(source, bundle)
            (bundle / "state.json").unlink()
            (bundle / "payloads" / "13.json").write_text(template.replace("N", width))
            out = tmp_path / f"{bundle.name}.json"
            done = codex_reduce(codex_bin, bundle, out)
            theirs = out.read_bytes() if done.returncode == 0 else None
            if _ours(bundle) != theirs:
                differences.append(
                    f"{template} {width}: Codex {'accepts' if theirs else 'rejects'}"
                )
    assert differences == []
