"""A minimal OTLP trace receiver: acknowledges every request on loopback and discards it.

The cheapest receiver there is, to measure senders without a collector's own cost: OTLP/HTTP
(protobuf, HTTP/1.1 keep-alive) and OTLP/gRPC (4 MiB messages, as collectors default to), both
answering an empty ``ExportTraceServiceResponse``.
Run it in its own process (:func:`start_sink`) so it does not share the sender's interpreter;
``python tests/support/otlp_sink.py`` serves until stdin closes, after printing one line,
``<grpc port> <http port>``.
"""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Iterator
from concurrent import futures
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

EMPTY_RESPONSE = b""
"""An empty ``ExportTraceServiceResponse`` (every field default) encodes to no bytes."""


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the OTLP/HTTP exporter's session expects

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        self.rfile.read(length)
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", str(len(EMPTY_RESPONSE)))
        self.end_headers()
        self.wfile.write(EMPTY_RESPONSE)

    def log_message(self, format: str, *args: Any) -> None:
        pass


def serve() -> None:
    """Serve both protocols on free loopback ports until stdin closes."""
    import grpc  # type: ignore[import-untyped]
    from opentelemetry.proto.collector.trace.v1 import (
        trace_service_pb2,
        trace_service_pb2_grpc,
    )

    class Traces(trace_service_pb2_grpc.TraceServiceServicer):
        def Export(self, request: Any, context: Any) -> Any:
            return trace_service_pb2.ExportTraceServiceResponse()

    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=2),
        options=[("grpc.max_receive_message_length", 4 * 1024 * 1024)],
    )
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(Traces(), server)  # type: ignore[no-untyped-call]
    grpc_port = server.add_insecure_port("127.0.0.1:0")
    server.start()

    http_server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    http_server.daemon_threads = True
    threading.Thread(target=http_server.serve_forever, daemon=True).start()

    print(grpc_port, http_server.server_address[1], flush=True)
    sys.stdin.read()  # until the parent closes our stdin
    http_server.shutdown()
    server.stop(grace=None)


@dataclass(frozen=True)
class Sink:
    """A running sink: its endpoints (base URLs, as ``--endpoint`` takes them)."""

    grpc: str
    http: str


@contextmanager
def start_sink() -> Iterator[Sink]:
    """Run the sink in a child process; stop it on exit."""
    process = subprocess.Popen(
        [sys.executable, __file__],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        ports = process.stdout.readline().split()
        if len(ports) != 2:
            raise RuntimeError("the OTLP sink did not start")
        yield Sink(grpc=f"http://127.0.0.1:{ports[0]}", http=f"http://127.0.0.1:{ports[1]}")
    finally:
        if process.stdin is not None:
            process.stdin.close()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()


if __name__ == "__main__":
    serve()
