"""Real OTLP backends for end-to-end tests: the rotel collector in front of MLflow.

``scripts/install-backends`` puts both in their own virtual environment. The session fixture
``backends`` starts MLflow's tracking server and a rotel collector that forwards to it, each on free
loopback ports and in its own process group, waits until both answer, and stops both at the end.
Under ``CI=true`` a backend that cannot start fails the test; elsewhere the test is skipped with the
reason. Use it from a test module with ``pytest_plugins = ["backends"]``; scripts (benchmarks)
use :func:`start_backends`.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

MLFLOW_START_TIMEOUT = 180.0
"""MLflow needs 10-12 s on a warm machine, over 30 s on the first start after install."""
ROTEL_START_TIMEOUT = 30.0


def backends_venv() -> Path:
    """Where ``scripts/install-backends`` puts the backends' virtual environment."""
    explicit = os.environ.get("OTEL_ROLLOUT_BACKENDS_VENV")
    if explicit:
        return Path(explicit)
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "otel-rollout" / "backends-venv"


class BackendUnavailable(Exception):
    """rotel or MLflow is not installed or did not start."""


def unavailable(reason: str) -> None:
    """Fail under CI=true, skip elsewhere."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"backend unavailable: {reason}", pytrace=False)
    pytest.skip(f"backend unavailable: {reason} (run: bash scripts/install-backends)")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def http(
    method: str,
    url: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 10.0,
) -> tuple[int, bytes]:
    """One HTTP request; returns (status, body) for any HTTP answer, raises OSError otherwise."""
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


class Server:
    """A child process in its own process group, logging to a file."""

    def __init__(self, name: str, argv: list[str], log: Path, env: dict[str, str]) -> None:
        self.name = name
        self.log = log
        with log.open("wb") as out:
            try:
                self.process = subprocess.Popen(
                    argv,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    env=env,
                    start_new_session=True,
                )
            except OSError as error:
                raise BackendUnavailable(f"cannot start {name}: {error}") from None

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def wait_ready(self, probe: Any, timeout: float) -> None:
        """Poll ``probe()`` until it returns True; fail/skip with the log if it never does."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                break
            try:
                if probe():
                    return
            except OSError:
                pass
            time.sleep(0.2)
        state = "exited" if self.process.poll() is not None else f"not ready after {timeout:.0f} s"
        self.stop()
        raise BackendUnavailable(f"{self.name} {state}; log tail:\n{self.log_tail()}")

    def stop(self) -> None:
        """SIGTERM to the whole process group, SIGKILL after 10 s."""
        if self.process.returncode is not None:
            return
        pgid = self.process.pid  # start_new_session: the child leads its own group
        try:
            os.killpg(pgid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(pgid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.process.wait(timeout=10)
        else:
            try:  # MLflow's workers may outlive their parent
                os.killpg(pgid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def _server_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "MLFLOW_"))}
    env.update(
        MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false",
        MLFLOW_DISABLE_TELEMETRY="true",
        DO_NOT_TRACK="true",
        # MLflow fetches a model price catalog from the network for every new provider name
        # (7+ s each here, and no network is needed): use the bundled one only.
        MLFLOW_MODEL_CATALOG_URI="",
        PYTHONUNBUFFERED="1",
    )
    return env


@dataclass(frozen=True)
class Backends:
    """Running backends: rotel (OTLP gRPC + HTTP in) forwarding to MLflow (OTLP HTTP)."""

    mlflow_url: str
    """MLflow base URL; OTLP/HTTP protobuf ingest is at ``/v1/traces``."""
    experiment_id: str
    """The session's MLflow experiment; every export needs it as a header."""
    rotel_grpc: str
    """rotel's OTLP gRPC endpoint, ``http://127.0.0.1:PORT``."""
    rotel_http: str
    """rotel's OTLP HTTP base URL."""

    @property
    def mlflow_headers(self) -> dict[str, str]:
        return {"x-mlflow-experiment-id": self.experiment_id}

    def get_trace(self, trace_id: int | str) -> dict[str, Any] | None:
        """The trace as MLflow returns it (``trace_info`` and ``spans``), or None if absent."""
        hex_id = trace_id if isinstance(trace_id, str) else f"{trace_id:032x}"
        status, body = http(
            "GET",
            f"{self.mlflow_url}/api/3.0/mlflow/traces/get?trace_id=tr-{hex_id}&allow_partial=true",
            timeout=60,
        )
        if status == 404:
            return None
        if status != 200:
            raise AssertionError(f"MLflow answered {status}: {body[:500]!r}")
        trace: dict[str, Any] = json.loads(body)["trace"]
        return trace

    def search_traces(self) -> list[str]:
        """Trace ids (``tr-<hex>``) of every trace in the session's experiment."""
        ids: list[str] = []
        token: str | None = None
        while True:
            query: dict[str, Any] = {
                "locations": [
                    {
                        "type": "MLFLOW_EXPERIMENT",
                        "mlflow_experiment": {"experiment_id": self.experiment_id},
                    }
                ],
                "max_results": 500,
            }
            if token:
                query["page_token"] = token
            status, body = http(
                "POST",
                f"{self.mlflow_url}/api/3.0/mlflow/traces/search",
                json.dumps(query).encode(),
                {"Content-Type": "application/json"},
            )
            if status != 200:
                raise AssertionError(f"MLflow search answered {status}: {body[:500]!r}")
            answer = json.loads(body)
            ids += [info["trace_id"] for info in answer.get("traces", [])]
            token = answer.get("next_page_token")
            if not token:
                return ids

    def wait_for_spans(
        self, trace_id: int | str, count: int, timeout: float = 30.0
    ) -> list[dict[str, Any]]:
        """Poll until the trace has at least ``count`` spans; return them (OTLP proto-JSON)."""
        deadline = time.monotonic() + timeout
        spans: list[dict[str, Any]] = []
        while True:
            trace = self.get_trace(trace_id)
            spans = list(trace.get("spans", [])) if trace else []
            if len(spans) >= count or time.monotonic() > deadline:
                return spans
            time.sleep(0.25)


@pytest.fixture(scope="session")
def backends(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Backends]:
    """rotel in front of MLflow, started once per test session."""
    try:
        with start_backends(tmp_path_factory.mktemp("backends")) as running:
            yield running
    except BackendUnavailable as error:
        unavailable(str(error))


@contextmanager
def start_backends(work: Path, *, experiment: str = "otel-rollout-e2e") -> Iterator[Backends]:
    """Start MLflow, then rotel forwarding to it; stop both on exit.

    Raises:
        BackendUnavailable: Not installed, or a server did not become ready.
    """
    venv = backends_venv()
    mlflow_bin = venv / "bin" / "mlflow"
    agent = next(iter(venv.glob("lib/python3*/site-packages/rotel/rotel-agent")), None)
    if not mlflow_bin.exists() or agent is None:
        raise BackendUnavailable(f"no rotel and MLflow in {venv}")
    env = _server_env()

    mlflow_port = free_port()
    mlflow_url = f"http://127.0.0.1:{mlflow_port}"
    mlflow = Server(
        "MLflow",
        [
            str(mlflow_bin),
            "server",
            "--host",
            "127.0.0.1",
            "--port",
            str(mlflow_port),
            "--workers",
            "1",
            "--backend-store-uri",
            f"sqlite:///{work}/mlflow.db",
            "--default-artifact-root",
            str(work / "mlartifacts"),
        ],
        work / "mlflow.log",
        env,
    )
    servers = [mlflow]
    try:
        mlflow.wait_ready(
            lambda: http("GET", f"{mlflow_url}/health", timeout=2)[0] == 200,
            MLFLOW_START_TIMEOUT,
        )
        status, body = http(
            "POST",
            f"{mlflow_url}/api/2.0/mlflow/experiments/create",
            json.dumps({"name": experiment}).encode(),
            {"Content-Type": "application/json"},
        )
        if status != 200:
            raise BackendUnavailable(f"MLflow cannot create an experiment: {status} {body!r}")
        experiment_id = str(json.loads(body)["experiment_id"])

        grpc_port, http_port = free_port(), free_port()
        rotel = Server(
            "rotel",
            [
                str(agent),
                "start",
                "--otlp-grpc-endpoint",
                f"127.0.0.1:{grpc_port}",
                "--otlp-http-endpoint",
                f"127.0.0.1:{http_port}",
                "--otlp-grpc-max-recv-msg-size-mib",
                "4",
                "--exporter",
                "otlp",
                "--otlp-exporter-endpoint",
                mlflow_url,
                "--otlp-exporter-protocol",
                "http",
                "--otlp-exporter-custom-headers",
                f"x-mlflow-experiment-id={experiment_id}",
                "--batch-timeout",
                "100ms",
            ],
            work / "rotel.log",
            env,
        )
        servers.append(rotel)
        rotel_http = f"http://127.0.0.1:{http_port}"
        rotel.wait_ready(
            lambda: (
                _port_open(grpc_port)
                and http(
                    "POST",
                    f"{rotel_http}/v1/traces",
                    b"",
                    {"Content-Type": "application/x-protobuf"},
                    timeout=2,
                )[0]
                == 200
            ),
            ROTEL_START_TIMEOUT,
        )
        yield Backends(
            mlflow_url=mlflow_url,
            experiment_id=experiment_id,
            rotel_grpc=f"http://127.0.0.1:{grpc_port}",
            rotel_http=rotel_http,
        )
    finally:
        for server in reversed(servers):
            server.stop()


def _port_open(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", port)) == 0
