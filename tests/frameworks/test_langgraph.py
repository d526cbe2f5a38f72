"""LangGraph (LangChain ``create_agent``) through OpenInference and OpenLLMetry, into bundles.

The app (``apps/langgraph_app.py``, in the ``langgraph`` stack's venv) runs a planner agent
whose tool runs a helper agent: both instrumentations must give one bundle with a thread per
agent, the helper spawned by the planner's call and answering back, accepted by Codex 0.171.0.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from support.frameworks import framework_env, framework_python
from support.rollout_shape import assert_codex_accepts, rollout_shape
from support.scripted_openai import call, say, scripted_server

APP = Path(__file__).parent / "apps" / "langgraph_app.py"
SCRIPT = {
    "planner-model": [call("ask_helper", '{"question":"what?"}', "call_ask"), say("planned")],
    "helper-model": [call("lookup", "{}", "call_lookup"), say("helper done")],
}


@pytest.mark.parametrize(
    ("instrumentation", "genai_flag"),
    [("openinference", ""), ("openinference", "true"), ("openllmetry", "")],
    ids=["openinference", "openinference-with-genai-semconv", "openllmetry"],
)
def test_langgraph_agents(
    instrumentation: str, genai_flag: str, tmp_path: Path, codex_for: Callable[[int], Path]
) -> None:
    """``openinference-with-genai-semconv``: OpenInference also writes GenAI attributes (its
    flag); the shape is the same."""
    python = framework_python("langgraph")
    traces = tmp_path / "traces"
    with scripted_server(SCRIPT) as server:
        env = framework_env(
            OPENAI_BASE_URL=server.base_url,
            OTEL_ROLLOUT_TRACE_ROOT=str(traces),
            TRACELOOP_TRACE_CONTENT="true",
            OPENINFERENCE_ENABLE_GENAI_SEMCONV=genai_flag,
        )
        done = subprocess.run(
            [python, APP, instrumentation], env=env, capture_output=True, text=True, timeout=120
        )
    assert done.returncode == 0, done.stderr
    assert not server.unscripted
    [bundle] = traces.glob("trace-*")  # no extra bundle from create_agent spans
    assert_codex_accepts(bundle, codex_for(3), tmp_path)
    shape = rollout_shape(bundle)
    assert set(shape.threads) == {"/root", "/root/helper"}
    planner, helper = shape.threads["/root"], shape.threads["/root/helper"]
    assert (planner.nickname, planner.model, helper.nickname, helper.origin) == (
        "planner",
        "planner-model",
        "helper",
        "spawned",
    )
    assert (planner.turns, helper.turns) == (1, 1)
    assert (planner.inferences, helper.inferences) == (2, 2)
    assert planner.tools == [("ask_helper", "call_ask", "spawn_agent")]
    assert helper.tools == [("lookup", "call_lookup", "other")]
    assert shape.edges == [
        ("agent_result", "/root/helper", "/root", None),
        ("spawn_agent", "/root", "/root/helper", "call_ask"),
    ]
    assert (planner.user_texts, helper.user_texts) == (["plan it"], ["what?"])
    assert (planner.replies, helper.replies) == (["planned"], ["helper done"])
    # LangChain parses the model's arguments into data: they come back as JSON of that data
    assert json.loads(planner.arguments["call_ask"]) == {"question": "what?"}
    # the system prompts reach the requests (OpenLLMetry: gen_ai.system_instructions)
    assert (planner.instructions, helper.instructions) == (["You plan."], ["You help."])
