"""The OpenAI Agents SDK through its two OpenTelemetry bridges, into spans-only bundles.

The app (``apps/agents_otel_app.py``, in the ``agents`` stack's venv) runs a triage agent that
uses a researcher agent as a tool, hands off to a billing agent, and takes a second user
turn; each bridge's spans must give the same rollout shape, accepted by Codex 0.171.0.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from support.frameworks import framework_env, framework_python
from support.rollout_shape import assert_codex_accepts, rollout_shape
from support.scripted_openai import call, say, scripted_server

APP = Path(__file__).parent / "apps" / "agents_otel_app.py"
SCRIPT = {
    "triage-model": [
        call("research", '{"input": "find rates"}', "call_t1"),
        call("transfer_to_billing", "{}", "call_t2"),
        say("Anything else?"),
    ],
    "researcher-model": [call("lookup", '{"q": "rates"}', "call_r1"), say("Rates are 5%.")],
    "billing-model": [call("invoice", "{}", "call_b1"), say("Your bill is $10.")],
}


@pytest.mark.parametrize(
    ("bridge", "genai_flag", "api"),
    [
        ("openai-agents-v2", "", "chat"),
        ("openinference", "", "chat"),
        ("openinference", "true", "chat"),
        ("openai-agents-v2", "", "responses"),
        ("openinference", "", "responses"),
    ],
    ids=[
        "openai-agents-v2",
        "openinference",
        "openinference-with-genai-semconv",
        "openai-agents-v2-responses-api",
        "openinference-responses-api",
    ],
)
def test_agents_sdk_through_an_otel_bridge(
    bridge: str, genai_flag: str, api: str, tmp_path: Path, codex_for: Callable[[int], Path]
) -> None:
    """``openinference-with-genai-semconv``: OpenInference's GenAI flag also writes GenAI
    attributes (a handoff as ``execute_tool``): OpenInference's own attributes still decide.
    ``api``: the agents' models speak Chat Completions or the Responses API."""
    python = framework_python("agents")
    traces = tmp_path / "traces"
    with scripted_server(SCRIPT) as server:
        env = framework_env(
            OPENAI_BASE_URL=server.base_url,
            OTEL_ROLLOUT_TRACE_ROOT=str(traces),
            OTEL_SEMCONV_STABILITY_OPT_IN="gen_ai_latest_experimental",
            OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT="span_only",
            OPENINFERENCE_ENABLE_GENAI_SEMCONV=genai_flag,
        )
        done = subprocess.run(
            [python, APP, bridge, api], env=env, capture_output=True, text=True, timeout=120
        )
    assert done.returncode == 0, done.stderr
    assert not server.unscripted
    [bundle] = traces.glob("trace-*")  # one rollout: both runs of the trace, all agents
    assert_codex_accepts(bundle, codex_for(3), tmp_path)
    shape = rollout_shape(bundle)
    assert set(shape.threads) == {"/root", "/root/researcher", "/root/billing"}
    triage = shape.threads["/root"]
    researcher = shape.threads["/root/researcher"]
    billing = shape.threads["/root/billing"]
    assert (triage.nickname, triage.origin, triage.model) == ("triage", "root", "triage-model")
    assert triage.turns == 2  # two Runner.run calls: one thread, two turns
    assert (researcher.origin, researcher.turns, billing.origin, billing.turns) == (
        "spawned",
        1,
        "spawned",
        1,
    )
    assert (triage.inferences, researcher.inferences, billing.inferences) == (3, 2, 2)
    assert triage.tools == [
        ("research", "call_t1", "spawn_agent"),
        ("transfer_to_billing", "call_t2", "spawn_agent"),
    ]
    assert researcher.tools == [("lookup", "call_r1", "other")]
    assert billing.tools == [("invoice", "call_b1", "other")]
    assert shape.edges == [
        ("agent_result", "/root/researcher", "/root", None),
        ("spawn_agent", "/root", "/root/billing", "call_t2"),
        ("spawn_agent", "/root", "/root/researcher", "call_t1"),
    ]
    # content: what the app sent and what the model answered, tool arguments exactly
    assert triage.user_texts == ["What are the rates?", "Thanks"]
    # the v2 bridge records a Responses API request's input only, not its instructions
    bridge_drops_instructions = (bridge, api) == ("openai-agents-v2", "responses")
    assert triage.instructions == ([] if bridge_drops_instructions else ["You triage."])
    assert triage.arguments["call_t1"] == '{"input": "find rates"}'
    assert researcher.user_texts == ["find rates"]
    assert researcher.replies == ["Rates are 5%."]
    assert billing.replies == ["Your bill is $10."]
    assert triage.replies == ["Anything else?"]
