"""Trace ids samplers see as random (and per process after fork); private directories."""

from __future__ import annotations

import os
import random
import stat
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.sampling import TraceIdRatioBased

import otel_rollout
from otel_rollout import ThreadStartedTraceMetadata, ThreadTraceContext
from otel_rollout._live import _runtime
from otel_rollout._otel._exporter import RolloutBundleSpanExporter
from otel_rollout._otel._mapping import trace_id_from_uuid, uuid_from_trace_id

IDS = 20_000
LOW_64 = (1 << 64) - 1


@pytest.fixture(autouse=True)
def _reset_configuration() -> Iterator[None]:
    yield
    _runtime.reset()


def _within_5_sigma(hits: int, n: int, p: float) -> bool:
    sigma: float = (n * p * (1 - p)) ** 0.5
    return abs(hits - n * p) <= 5 * sigma


def _uniform_low_64(trace_ids: list[int]) -> list[str]:
    """What a sampler of the low 64 bits would see as not random (empty: uniform)."""
    n, problems = len(trace_ids), []
    for bit in range(64):
        ones = sum((t >> bit) & 1 for t in trace_ids)
        if not _within_5_sigma(ones, n, 0.5):
            problems.append(f"bit {bit}: {ones} of {n} set")
    for ratio in (0.01, 0.1, 0.25, 0.5, 0.7, 0.9):
        bound = TraceIdRatioBased.get_bound_for_rate(ratio)
        sampled = sum(1 for t in trace_ids if t & LOW_64 < bound)
        if not _within_5_sigma(sampled, n, ratio):
            problems.append(f"ratio {ratio}: {sampled} of {n} sampled")
    return problems


def test_new_trace_ids_are_uniform_in_the_low_64_bits_and_map_reversibly(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Deterministic: the id source is a seeded generator; 5-sigma bounds per bit and per
    sampling ratio. UUIDv4 ids (what bundles had) fail the same check."""
    seeded = random.Random(20_000)
    monkeypatch.setattr(os, "urandom", seeded.randbytes)
    ids = [_runtime.new_trace_id() for _ in range(IDS)]
    assert len(set(ids)) == IDS
    assert _uniform_low_64(ids) == []
    for t in ids[:1000]:
        assert trace_id_from_uuid(uuid_from_trace_id(t)) == t
    v4 = [uuid.UUID(bytes=seeded.randbytes(16), version=4).int for _ in range(IDS)]
    assert any(problem.startswith("ratio 0.5") for problem in _uniform_low_64(v4))


def test_ratio_sampling_samples_half_the_rollouts_at_one_half(tmp_path: Path) -> None:
    provider = TracerProvider(sampler=TraceIdRatioBased(0.5))
    exporter = RolloutBundleSpanExporter()
    otel_rollout.configure(trace_root=tmp_path, tracer_provider=provider, exporter=exporter)
    rollouts, sampled = 200, 0
    for n in range(rollouts):
        root = ThreadTraceContext.start_root_or_disabled(
            ThreadStartedTraceMetadata(thread_id=f"root-{n}")
        )
        with root:
            sampled += bool(trace.get_current_span().get_span_context().trace_flags.sampled)
        assert root.bundle_dir is not None and root.trace_id is not None
        assert root.bundle_dir.name.startswith(f"trace-{root.trace_id}-")
    assert exporter.force_flush()
    provider.shutdown()
    assert _within_5_sigma(sampled, rollouts, 0.5), sampled


FORK_IN_ROLLOUT = textwrap.dedent(
    """
    import os, sys
    import otel_rollout
    from otel_rollout import ThreadStartedTraceMetadata, ThreadTraceContext

    otel_rollout.configure(trace_root=sys.argv[1])
    root = ThreadTraceContext.start_root_or_disabled(ThreadStartedTraceMetadata(thread_id="parent"))
    with root:
        pid = os.fork()
        if pid == 0:
            own = ThreadTraceContext.start_root_or_disabled(
                ThreadStartedTraceMetadata(thread_id="forked"))
            with own:
                pass
            otel_rollout.force_flush()
            print(own.trace_id, flush=True)
            os._exit(0)
        os.waitpid(pid, 0)
    print(root.trace_id, flush=True)
    """
)


def test_a_rollout_started_in_a_forked_child_has_its_own_trace_id(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", FORK_IN_ROLLOUT, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    child_id, parent_id = done.stdout.split()
    assert child_id != parent_id
    assert {p.name.split("-")[-1] for p in tmp_path.glob("trace-*")} == {"parent", "forked"}


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_directories_the_library_creates_are_private_under_umask_000(tmp_path: Path) -> None:
    users = tmp_path / "users"
    users.mkdir()
    os.chmod(users, 0o755)
    root = users / "a" / "b" / "traces"
    old = os.umask(0)
    try:
        otel_rollout.configure(trace_root=root)
        thread = ThreadTraceContext.start_root_or_disabled()
        thread.record_ended()
        assert otel_rollout.force_flush()
    finally:
        os.umask(old)
    [bundle] = root.glob("trace-*")
    for created in (users / "a", users / "a" / "b", root, bundle):
        assert _mode(created) == 0o700, created
    assert _mode(users) == 0o755  # the user's own directory is never chmod-ed
    for file in bundle.rglob("*"):
        assert _mode(file) == (0o700 if file.is_dir() else 0o600), file
