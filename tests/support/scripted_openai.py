"""A scripted OpenAI-compatible server on loopback: framework apps talk to it, never to a model.

Each agent has its own queue of scripted replies, consumed in order, so each agent's calls get
that agent's script whatever the order the framework makes them in. A request's queue is its
agent's: the one named by its model (apps that give each agent a model of its own), else by its
instructions (the Responses API's ``instructions``, Chat Completions' first system message: apps
whose agents share a model), else ``"*"``. Serves Chat Completions (``POST
/v1/chat/completions``, also streamed) and the Responses API (``POST /v1/responses``), and
records every request body for the test to check what the app sent. Response ids count the
requests (``resp_1``, ``chatcmpl-1``, ...). Only the standard library: the framework apps run it
in their own venvs too.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class Reply:
    """One scripted reply: assistant text, or tool calls (name, JSON arguments, call id), or
    the API failing with an HTTP status."""

    text: str | None = None
    tool_calls: tuple[tuple[str, str, str], ...] = ()
    status: int = 200


def say(text: str) -> Reply:
    """A reply with assistant text."""
    return Reply(text=text)


def call(name: str, arguments: str, call_id: str) -> Reply:
    """A reply calling one tool (``arguments`` exactly as the model wrote them)."""
    return Reply(tool_calls=((name, arguments, call_id),))


def calls(*tool_calls: tuple[str, str, str]) -> Reply:
    """A reply calling several tools at once (each: name, exact arguments, call id)."""
    return Reply(tool_calls=tool_calls)


def fail(status: int) -> Reply:
    """The API answering the request with HTTP ``status``."""
    return Reply(status=status)


@dataclass
class ScriptedServer:
    """The running server: its base URL and the request bodies it received, per model."""

    base_url: str
    requests: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    """Script key (see the module) -> the request bodies its replies answered, in order."""
    received: list[dict[str, Any]] = field(default_factory=list)
    """Every request body, in the order received."""
    answered: list[dict[str, Any] | None] = field(default_factory=list)
    """The reply to each of ``received`` (a completion or response; ``None``: a failure)."""
    unscripted: list[str] = field(default_factory=list)
    """Script keys asked for a reply past the end of their script."""


def _script_key(body: dict[str, Any], script: Mapping[str, Any]) -> str:
    """Whose script answers ``body``: its model's, else its instructions', else ``"*"``."""
    model = str(body.get("model"))
    if model in script:
        return model
    instructions = body.get("instructions")
    if instructions is None:
        system = [m for m in body.get("messages") or () if m.get("role") == "system"]
        instructions = system[0].get("content") if system else None
    if isinstance(instructions, str) and instructions in script:
        return instructions
    return "*"


def _completion(model: str, number: int, index: int, reply: Reply) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": reply.text}
    if reply.tool_calls:
        message["tool_calls"] = [
            {"id": call_id, "type": "function", "function": {"name": name, "arguments": args}}
            for name, args, call_id in reply.tool_calls
        ]
    return {
        "id": f"chatcmpl-{number}",
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": message,
                "finish_reason": "tool_calls" if reply.tool_calls else "stop",
            }
        ],
        "usage": {"prompt_tokens": 10 + index, "completion_tokens": 5, "total_tokens": 15 + index},
    }


def _response(
    model: str, number: int, index: int, request: dict[str, Any], reply: Reply
) -> dict[str, Any]:
    """``reply`` as a Responses API response (echoing the request's instructions and tools)."""
    output: list[dict[str, Any]] = []
    if reply.text is not None:
        output.append(
            {
                "type": "message",
                "id": f"msg_{number}",
                "role": "assistant",
                "status": "completed",
                "content": [{"type": "output_text", "text": reply.text, "annotations": []}],
            }
        )
    output += [
        {
            "type": "function_call",
            "id": f"fc_{call_id}",
            "call_id": call_id,
            "name": name,
            "arguments": args,
            "status": "completed",
        }
        for name, args, call_id in reply.tool_calls
    ]
    return {
        "id": f"resp_{number}",
        "object": "response",
        "created_at": 1_700_000_000 + index,
        "status": "completed",
        "error": None,
        "incomplete_details": None,
        "instructions": request.get("instructions"),
        "metadata": {},
        "model": model,
        "output": output,
        "parallel_tool_calls": True,
        "temperature": 1.0,
        "tool_choice": "auto",
        "tools": request.get("tools", []),
        "top_p": 1.0,
        "usage": {
            "input_tokens": 10 + index,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": 5,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": 15 + index,
        },
    }


def _chunks(completion: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """The completion as stream chunks: one delta with everything, then the usage."""
    choice = completion["choices"][0]
    message = dict(choice["message"])
    if "tool_calls" in message:
        message["tool_calls"] = [
            {"index": i, **tool_call} for i, tool_call in enumerate(message["tool_calls"])
        ]
    base = {k: completion[k] for k in ("id", "created", "model")}
    base["object"] = "chat.completion.chunk"
    yield {**base, "choices": [{"index": 0, "delta": message, "finish_reason": None}]}
    yield {
        **base,
        "choices": [{"index": 0, "delta": {}, "finish_reason": choice["finish_reason"]}],
    }
    yield {**base, "choices": [], "usage": completion["usage"]}


@contextmanager
def scripted_server(script: Mapping[str, Sequence[Reply]]) -> Iterator[ScriptedServer]:
    """Serve ``script`` (model name or instructions -> its replies in order; ``"*"``: any
    other request) on 127.0.0.1 for a ``with`` block."""
    queues = {model: list(replies) for model, replies in script.items()}
    lock = threading.Lock()
    state = ScriptedServer(base_url="")

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            """Quiet."""

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers.get("content-length", 0))) or b"{}")
            model = str(body.get("model"))
            key = _script_key(body, queues)
            with lock:
                state.received.append(body)
                state.answered.append(None)
                number = len(state.received)
                state.requests.setdefault(key, []).append(body)
                index = len(state.requests[key]) - 1
                queue = queues.get(key, [])
                if queue:
                    reply = queue.pop(0)
                else:
                    state.unscripted.append(key)
                    reply = say("(unscripted)")
            if reply.status != 200:
                error = {"error": {"message": "scripted failure", "type": "server_error"}}
                self._send(reply.status, "application/json", json.dumps(error).encode())
                return
            if self.path.rstrip("/").endswith("/responses"):
                response = _response(model, number, index, body, reply)
                state.answered[number - 1] = response
                self._send(200, "application/json", json.dumps(response).encode())
                return
            completion = _completion(model, number, index, reply)
            state.answered[number - 1] = completion
            if not body.get("stream"):
                self._send(200, "application/json", json.dumps(completion).encode())
                return
            lines = b"".join(
                b"data: " + json.dumps(chunk).encode() + b"\n\n" for chunk in _chunks(completion)
            )
            self._send(200, "text/event-stream", lines + b"data: [DONE]\n\n")

        def _send(self, status: int, content_type: str, data: bytes) -> None:
            self.send_response(status)
            self.send_header("content-type", content_type)
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.base_url = f"http://127.0.0.1:{server.server_port}/v1"
    thread = threading.Thread(target=server.serve_forever, name="scripted-openai", daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
