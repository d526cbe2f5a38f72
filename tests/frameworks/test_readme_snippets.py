"""The README's "Use with your framework" snippets run as written and write the bundle they say.

Each snippet runs in its framework's venv against the scripted loopback model (the OpenAI
clients read ``OPENAI_BASE_URL``); its bundle must have the agent's thread, its calls and the
model's reply, and Codex 0.171.0 must agree with our reduction.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from support.frameworks import framework_env, framework_python
from support.rollout_shape import assert_codex_accepts, rollout_shape
from support.scripted_openai import Reply, call, say, scripted_server

README = Path(__file__).resolve().parents[2] / "README.md"
WEATHER = [call("forecast", '{"city":"Paris"}', "call_1"), say("Sunny in Paris.")]
CASES: dict[str, tuple[str | None, str, list[Reply], list[tuple[str, str | None, str]]]] = {
    # snippet marker: (stack, or None for this venv; the agent; its model's replies; its tools)
    "opentelemetry-instrumentation-openai-v2": (None, "assistant", [say("Hi!")], []),
    "the OpenAI Agents SDK through an OTel bridge": (
        "agents",
        "weather",
        WEATHER,
        [("forecast", "call_1", "other")],
    ),
    "a LangGraph agent": ("langgraph", "weather", WEATHER, [("forecast", "call_1", "other")]),
}


def _snippet(marker: str) -> str:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), re.S)
    [block] = [block for block in blocks if block.startswith("# app.py") and marker in block]
    return str(block)


@pytest.mark.parametrize("marker", list(CASES))
def test_a_readme_framework_snippet_writes_its_bundle(
    marker: str, tmp_path: Path, codex_for: Callable[[int], Path]
) -> None:
    stack, agent, replies, tools = CASES[marker]
    python = framework_python(stack) if stack else Path(sys.executable)
    app = tmp_path / "app.py"
    app.write_text(_snippet(marker), encoding="utf-8")
    traces = tmp_path / "rollout-traces"
    with scripted_server({"*": replies}) as server:
        env = framework_env(
            OPENAI_BASE_URL=server.base_url,
            OPENAI_API_KEY="sk-scripted",
            OTEL_ROLLOUT_TRACE_ROOT=str(traces),
            OTEL_SEMCONV_STABILITY_OPT_IN="gen_ai_latest_experimental",
            OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT="span_only",
        )
        done = subprocess.run(
            [python, app], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
        )
    assert done.returncode == 0, done.stderr
    assert not server.unscripted
    [bundle] = traces.glob("trace-*")
    assert_codex_accepts(bundle, codex_for(3), tmp_path)
    [thread] = rollout_shape(bundle).threads.values()
    assert (thread.nickname, thread.turns, thread.inferences) == (agent, 1, len(replies))
    assert thread.tools == tools
    assert thread.replies == [replies[-1].text]
