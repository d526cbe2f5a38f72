"""A scripted OpenAI Responses API server on loopback, for the Agents SDK apps.

Each agent is told apart by its ``instructions``; the server answers that agent's requests
in order from its script (lists of output items), echoing the request's ``instructions``,
``model`` and ``tools`` as the real API does. No network: it binds 127.0.0.1 only.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Script = Mapping[str, Sequence[Sequence[dict[str, Any]] | Mapping[str, Any]]]
"""instructions -> the output items of each successive response, or ``{"error": status}``
to answer that request with that HTTP status."""


def message(text: str, item_id: str) -> dict[str, Any]:
    """An assistant message output item."""
    return {
        "type": "message",
        "id": item_id,
        "role": "assistant",
        "status": "completed",
        "content": [{"type": "output_text", "text": text, "annotations": []}],
    }


def function_call(name: str, arguments: str, call_id: str, item_id: str) -> dict[str, Any]:
    """A function call output item (``arguments``: the exact JSON text)."""
    return {
        "type": "function_call",
        "id": item_id,
        "call_id": call_id,
        "name": name,
        "arguments": arguments,
        "status": "completed",
    }


class _Scripted:
    def __init__(self, script: Script) -> None:
        self.script = script
        self.served: dict[str, int] = {}
        self.requests: list[dict[str, Any]] = []
        self.lock = threading.Lock()

    def answer(self, request: dict[str, Any]) -> dict[str, Any]:
        instructions = request.get("instructions") or ""
        with self.lock:
            self.requests.append(request)
            index = self.served.get(instructions, 0)
            self.served[instructions] = index + 1
            number = len(self.requests)
        outputs = self.script[instructions][index]
        if isinstance(outputs, Mapping):  # {"error": status}: the API failing
            return dict(outputs)
        return {
            "id": f"resp_{number}",
            "object": "response",
            "created_at": 1_700_000_000 + number,
            "status": "completed",
            "error": None,
            "incomplete_details": None,
            "instructions": request.get("instructions"),
            "metadata": {},
            "model": request.get("model", "scripted"),
            "output": list(outputs),
            "parallel_tool_calls": True,
            "temperature": 1.0,
            "tool_choice": "auto",
            "tools": request.get("tools", []),
            "top_p": 1.0,
            "usage": {
                "input_tokens": 10 * number,
                "input_tokens_details": {"cached_tokens": 0},
                "output_tokens": 5,
                "output_tokens_details": {"reasoning_tokens": 0},
                "total_tokens": 10 * number + 5,
            },
        }


@contextmanager
def scripted_server(script: Script) -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """Serve ``script`` on loopback; yields the base URL and the requests received."""
    scripted = _Scripted(script)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            request = json.loads(self.rfile.read(length) or b"{}")
            answer = scripted.answer(request)
            body = json.dumps(answer).encode()
            status = answer.get("error")  # a response's own "error" is null
            self.send_response(status if isinstance(status, int) else 200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1", scripted.requests
    finally:
        server.shutdown()
        server.server_close()
