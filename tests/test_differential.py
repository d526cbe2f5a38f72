"""Differential test: our reducer against the real Codex reducers on generated bundles: 0.169.0
on schema 2 bundles, 0.171.0 on schema 3 bundles (written by ``BundleWriter(schema_version=3)``).

Each seed gives a synthetic rollout (support.synthetic): children, retries,
cancellations, parallel tools, terminals, code cells, compactions, crashes. Codex
reduces every bundle (in parallel, once per session); our ``reduce_bundle`` must give
byte-identical ``state.json``. A crashed bundle with a torn last line is compared with
Codex's reduction of the same bundle without that line (Codex rejects the torn line;
we drop it with a warning). Negative cases break a valid bundle in ways Codex rejects
and check that we reject them too.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from otel_rollout._bundle._json import encode_pretty
from otel_rollout._bundle._reader import BundleError
from otel_rollout._reduce import reduce_bundle
from support.codex import codex_reduce
from support.synthetic import SyntheticOptions, generate_bundle

pytestmark = pytest.mark.codex

SEEDS = range(1000, 1000 + int(os.environ.get("OTEL_ROLLOUT_DIFFERENTIAL_SEEDS", "240")))
"""240 generated rollouts by default; set OTEL_ROLLOUT_DIFFERENTIAL_SEEDS for a longer run."""


@dataclass
class Case:
    """One generated bundle and Codex's verdict on it."""

    seed: int
    bundle: Path
    codex_bundle: Path
    torn: bool
    returncode: int = -1
    stderr: str = ""
    expected: bytes = b""


def _without_torn_tail(bundle: Path, target: Path) -> Path:
    """Copy ``bundle`` to ``target`` without the bytes after the last newline."""
    shutil.copytree(bundle, target)
    log = target / "trace.jsonl"
    data = log.read_bytes()
    log.write_bytes(data[: data.rfind(b"\n") + 1])
    return target


def _codex_case(codex_bin: Path, case: Case) -> Case:
    out = case.bundle.parent / "codex-state.json"
    done = codex_reduce(codex_bin, case.codex_bundle, out)
    case.returncode, case.stderr = done.returncode, done.stderr
    if done.returncode == 0:
        case.expected = out.read_bytes()
    return case


SEEDS_3 = range(5000, 5000 + int(os.environ.get("OTEL_ROLLOUT_DIFFERENTIAL_SEEDS_3", "200")))
"""200 generated schema 3 rollouts by default, compared with Codex 0.171.0."""


@pytest.fixture(scope="module")
def cases(codex_bin: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[int, Case]:
    """Generate every schema 2 bundle and reduce it with Codex 0.169.0."""
    return _generate_and_reduce(codex_bin, tmp_path_factory.mktemp("differential"), SEEDS, 2)


@pytest.fixture(scope="module")
def cases_3(codex_bin_0171: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[int, Case]:
    """Generate every schema 3 bundle and reduce it with Codex 0.171.0."""
    root = tmp_path_factory.mktemp("differential-3")
    return _generate_and_reduce(codex_bin_0171, root, SEEDS_3, 3)


def _generate_and_reduce(
    codex_bin: Path, root: Path, seeds: range, schema_version: int
) -> dict[int, Case]:
    """Generate the bundles and reduce each with Codex, several processes at a time."""
    options = SyntheticOptions(schema_version=schema_version)
    generated: list[Case] = []
    for seed in seeds:
        bundle = generate_bundle(root / str(seed), seed, options)
        torn = not (bundle / "trace.jsonl").read_bytes().endswith(b"\n")
        codex_bundle = _without_torn_tail(bundle, root / f"{seed}-codex") if torn else bundle
        generated.append(Case(seed, bundle, codex_bundle, torn))
    workers = min(8, 2 * (os.cpu_count() or 1))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return {
            case.seed: case for case in pool.map(lambda c: _codex_case(codex_bin, c), generated)
        }


def _paths(expected: Any, ours: Any, path: str = "$") -> Iterator[tuple[str, Any, Any]]:
    """Yield ``(json_path, expected, ours)`` for each place where two JSON values differ."""
    if isinstance(expected, dict) and isinstance(ours, dict):
        if list(expected) != list(ours):
            missing = [key for key in expected if key not in ours]
            extra = [key for key in ours if key not in expected]
            if missing or extra:
                yield f"{path} keys", f"only codex has {missing}", f"only ours has {extra}"
            else:
                yield f"{path} key order", list(expected), list(ours)
        for key in expected:
            if key in ours:
                yield from _paths(expected[key], ours[key], f"{path}.{key}")
    elif isinstance(expected, list) and isinstance(ours, list):
        if len(expected) != len(ours):
            index = next(
                (
                    i
                    for i, pair in enumerate(zip(expected, ours, strict=False))
                    if pair[0] != pair[1]
                ),
                min(len(expected), len(ours)),
            )
            yield (
                f"{path}[{index}] (lengths {len(expected)} vs {len(ours)})",
                expected[index] if index < len(expected) else "<end>",
                ours[index] if index < len(ours) else "<end>",
            )
        else:
            for index, (left, right) in enumerate(zip(expected, ours, strict=True)):
                yield from _paths(left, right, f"{path}[{index}]")
    elif expected != ours or type(expected) is not type(ours):
        yield path, expected, ours


def _short(value: Any, limit: int = 300) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def describe_mismatch(expected: bytes, ours: bytes, limit: int = 6) -> str:
    """A compact description of how two ``state.json`` byte strings differ."""
    try:
        left, right = json.loads(expected), json.loads(ours)
    except ValueError as error:
        return f"our output is not JSON: {error}"
    found = list(_paths(left, right))
    if not found:
        pairs = zip(expected.splitlines(), ours.splitlines(), strict=False)
        for number, (want, got) in enumerate(pairs, 1):
            if want != got:
                return (
                    f"same JSON, other bytes at line {number}:\n  codex: {want!r}\n  ours: {got!r}"
                )
        return f"same JSON, different length ({len(expected)} vs {len(ours)} bytes)"
    lines = [f"{len(found)} difference(s); first {min(limit, len(found))}:"]
    for path, want, got in found[:limit]:
        lines.append(f"  {path}\n    codex: {_short(want)}\n    ours:  {_short(got)}")
    return "\n".join(lines)


@pytest.mark.parametrize("seed", SEEDS)
def test_reduce_matches_codex(cases: dict[int, Case], seed: int) -> None:
    case = cases[seed]
    assert case.returncode == 0, (
        f"Codex rejected generated bundle (a generator bug), seed {seed}: {case.stderr[-500:]}"
    )
    warnings: list[str] = []
    ours = encode_pretty(reduce_bundle(case.bundle, warn=warnings.append))
    assert ours == case.expected, f"seed {seed}: " + describe_mismatch(case.expected, ours)
    assert bool(warnings) == case.torn


KNOWN_DIVERGENT_3: dict[int, str] = {}
"""Schema 3 seeds our reducer still reduces otherwise than 0.171.0, with the reason."""


@pytest.mark.parametrize("seed", SEEDS_3)
def test_schema_3_reduce_matches_codex_0171(cases_3: dict[int, Case], seed: int) -> None:
    case = cases_3[seed]
    assert case.returncode == 0, (
        f"Codex 0.171.0 rejected generated bundle (a generator bug), seed {seed}: "
        f"{case.stderr[-500:]}"
    )
    warnings: list[str] = []
    ours = encode_pretty(reduce_bundle(case.bundle, warn=warnings.append))
    if seed in KNOWN_DIVERGENT_3:
        assert ours != case.expected, f"seed {seed} now matches: drop it from KNOWN_DIVERGENT_3"
        pytest.xfail(KNOWN_DIVERGENT_3[seed])
    assert ours == case.expected, f"seed {seed}: " + describe_mismatch(case.expected, ours)
    assert bool(warnings) == case.torn


def test_schema_3_bundles_cover_what_0171_changed(cases_3: dict[int, Case]) -> None:
    """The schema 3 seeds exercise 0.171.0's changes: wait targets, accepted tool outputs,
    multi-shard bundles, crashes."""
    states = [json.loads(case.expected) for case in cases_3.values() if case.returncode == 0]
    assert all(state["schema_version"] == 3 for state in states)
    assert sum(state["recording_status"] == "unclosed" for state in states) >= 10
    assert (
        sum(
            bool(tool.get("resolved_wait_runtime_cell_id"))
            for state in states
            for tool in state["tool_calls"].values()
        )
        >= 20
    )
    assert sum(len(state["threads"]) > 1 for state in states) >= 40
    shards = [len(list((case.bundle / "payloads").glob("*.zst"))) for case in cases_3.values()]
    assert sum(count > 1 for count in shards) >= 50


def test_generated_bundles_cover_the_hard_cases(cases: dict[int, Case]) -> None:
    """The seeds exercise what the test claims to: crashes, torn tails, children, cells."""
    states = [json.loads(case.expected) for case in cases.values() if case.returncode == 0]
    assert sum(case.torn for case in cases.values()) >= 5
    assert sum(state["status"] == "running" for state in states) >= 10
    assert sum(len(state["threads"]) > 1 for state in states) >= 50
    edge_kinds = {edge["kind"] for state in states for edge in state["interaction_edges"].values()}
    assert edge_kinds == {
        "spawn_agent",
        "agent_result",
        "assign_agent_task",
        "send_message",
        "close_agent",
    }
    assert sum(bool(state["code_cells"]) for state in states) >= 50
    assert sum(bool(state["compactions"]) for state in states) >= 30


def test_generator_is_deterministic(tmp_path: Path) -> None:
    first = generate_bundle(tmp_path / "a", 1234)
    second = generate_bundle(tmp_path / "b", 1234)
    files = sorted(path.relative_to(first) for path in first.rglob("*") if path.is_file())
    assert files == sorted(path.relative_to(second) for path in second.rglob("*") if path.is_file())
    for name in files:
        assert (first / name).read_bytes() == (second / name).read_bytes(), name


def test_codex_rejects_a_torn_tail_that_we_drop(codex_bin: Path, cases: dict[int, Case]) -> None:
    case = next(case for case in cases.values() if case.torn)
    done = codex_reduce(codex_bin, case.bundle, case.bundle.parent / "torn-state.json")
    assert done.returncode != 0
    warnings: list[str] = []
    reduce_bundle(case.bundle, warn=warnings.append)
    assert len(warnings) == 1


# --- negative cases: where Codex rejects a bundle, we reject it too ---


def _lines(bundle: Path) -> list[bytes]:
    return (bundle / "trace.jsonl").read_bytes().splitlines(keepends=True)


def _drop_line(lines: list[bytes]) -> list[bytes]:
    return lines[:5] + lines[6:]


def _swap_lines(lines: list[bytes]) -> list[bytes]:
    return lines[:5] + [lines[6], lines[5]] + lines[7:]


def _unknown_thread(lines: list[bytes]) -> list[bytes]:
    event = json.loads(lines[-3])
    index = len(lines) - 3
    event["payload"] = {
        "type": "thread_ended",
        "thread_id": "no-such-thread",
        "status": "completed",
    }
    return [*lines[:index], json.dumps(event).encode() + b"\n", *lines[index + 1 :]]


def _after_recording(lines: list[bytes]) -> list[bytes]:
    last = json.loads(lines[-1])
    last["seq"] += 1
    last["payload"] = {"type": "rollout_ended", "status": "completed"}
    return [*lines, json.dumps(last).encode() + b"\n"]


def _other_event(lines: list[bytes]) -> list[bytes]:
    event = json.loads(lines[2])
    event["payload"] = {"type": "other", "kind": "x", "summary": "", "payloads": [], "metadata": {}}
    return [*lines[:2], json.dumps(event).encode() + b"\n", *lines[3:]]


def _bad_schema(lines: list[bytes]) -> list[bytes]:
    event = json.loads(lines[3])
    event["schema_version"] = 1
    return [*lines[:3], json.dumps(event).encode() + b"\n", *lines[4:]]


def _first_request(bundle: Path) -> Path:
    for line in _lines(bundle):
        payload = json.loads(line)["payload"]
        if payload["type"] == "inference_started":
            path: str = payload["request_payload"]["path"]
            return bundle / path
    raise AssertionError("no inference request")


def _missing_payload(bundle: Path) -> None:
    _first_request(bundle).unlink()


BAD_REQUEST_ITEMS: dict[str, dict[str, Any]] = {
    "reasoning_without_content": {"type": "reasoning", "id": "rs_x", "summary": []},
    "unsupported_role": {"type": "message", "role": "robot", "content": []},
    "item_without_type": {"role": "user", "content": []},
    "unsupported_item_type": {"type": "teleport", "id": "tp_1"},
    "compaction_without_content": {"type": "compaction", "id": "cmp_x"},
}
"""Request items Codex's normalization rejects."""


def _bad_request_item(bundle: Path, item: dict[str, Any]) -> None:
    request = _first_request(bundle)
    body = json.loads(request.read_bytes())
    body["input"].append(item)
    request.write_bytes(encode_pretty(body))


MUTATIONS = {
    "seq_gap": _drop_line,
    "seq_reorder": _swap_lines,
    "unknown_thread": _unknown_thread,
    "event_after_recording_completed": _after_recording,
    "other_event": _other_event,
    "schema_version_1": _bad_schema,
}


@pytest.mark.parametrize("seed", [7, 8])
@pytest.mark.parametrize("mutation", [*MUTATIONS, "missing_payload", *BAD_REQUEST_ITEMS])
def test_bundles_codex_rejects_we_reject(
    codex_bin: Path, tmp_path: Path, mutation: str, seed: int
) -> None:
    bundle = generate_bundle(tmp_path / "bundles", seed, SyntheticOptions(crash=False))
    if mutation == "missing_payload":
        _missing_payload(bundle)
    elif mutation in BAD_REQUEST_ITEMS:
        _bad_request_item(bundle, BAD_REQUEST_ITEMS[mutation])
    else:
        (bundle / "trace.jsonl").write_bytes(b"".join(MUTATIONS[mutation](_lines(bundle))))

    done = codex_reduce(codex_bin, bundle, tmp_path / "state.json")
    assert done.returncode != 0, f"Codex accepted the {mutation} bundle"
    with pytest.raises(BundleError) as caught:
        reduce_bundle(bundle)
    assert caught.value.reason
    if mutation in BAD_REQUEST_ITEMS:
        # Normalization errors: the same words as Codex.
        codex_error = next(line for line in done.stderr.splitlines() if line.startswith("Error: "))
        assert caught.value.reason == codex_error.removeprefix("Error: ")


# --- bisecting a mismatch: python tests/test_differential.py SEED [SEED ...] ---


def _prefix(bundle: Path, lines: int, target: Path) -> Path:
    """A copy of ``bundle`` holding only its first ``lines`` whole events (payloads linked)."""
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(bundle / "payloads", target / "payloads", copy_function=os.link)
    shutil.copy(bundle / "manifest.json", target / "manifest.json")
    whole = [line for line in _lines(bundle) if line.endswith(b"\n")]
    (target / "trace.jsonl").write_bytes(b"".join(whole[:lines]))
    return target


def first_divergence(codex_bin: Path, seed: int, work: Path) -> str:
    """Bisect the shortest prefix of a seed's bundle on which we differ from Codex.

    A crashed process leaves a prefix, so every prefix is a bundle Codex accepts; the
    last line of the shortest differing prefix is the event we reduce differently.
    """
    bundle = generate_bundle(work / str(seed), seed)

    def differs(lines: int) -> str | None:
        candidate = _prefix(bundle, lines, work / f"{seed}-prefix")
        out = work / f"{seed}-prefix.json"
        done = codex_reduce(codex_bin, candidate, out)
        if done.returncode != 0:
            return f"Codex rejects it: {done.stderr.strip().splitlines()[-1]}"
        try:
            ours = encode_pretty(reduce_bundle(candidate, warn=lambda _: None))
        except BundleError as error:
            return f"we reject it: {error}"
        expected = out.read_bytes()
        return None if ours == expected else describe_mismatch(expected, ours)

    total = sum(1 for line in _lines(bundle) if line.endswith(b"\n"))
    if differs(total) is None:
        return f"seed {seed}: no difference ({total} events)"
    good, bad = 0, total
    while bad - good > 1:
        middle = (good + bad) // 2
        good, bad = (middle, bad) if differs(middle) is None else (good, middle)
    event = json.loads(_lines(bundle)[bad - 1])
    return (
        f"seed {seed}: we first differ after event {bad} of {total}: "
        f"{_short(event['payload'], 400)}\n{differs(bad)}"
    )


if __name__ == "__main__":
    import sys
    import tempfile

    from support.codex import find_codex

    with tempfile.TemporaryDirectory() as scratch:
        for argument in sys.argv[1:]:
            print(first_divergence(find_codex(), int(argument), Path(scratch)), flush=True)
