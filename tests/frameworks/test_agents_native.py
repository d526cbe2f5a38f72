"""The native OpenAI Agents SDK integration, with the real SDK against a scripted model.

The app (``apps/agents_native_app.py``) runs in the ``agents`` framework venv: a triage agent
asks a researcher agent used as a tool (which calls a function tool), hands off to a billing
agent (which calls a tool), and a second user turn in the same trace goes to triage again.
Each test checks the bundle against what the app did, in the reduced state, and against
Codex 0.171.0 reducing it to our bytes.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from otel_rollout import Bundle, ExecutionStatus, reduce_bundle, validate_bundle, write_state
from otel_rollout._bundle._models import AssignAgentTaskKind, SpawnAgentKind
from otel_rollout._reduce._model import (
    ConversationItemAnchor,
    RolloutTrace,
    ThreadAnchor,
    ToolCallAnchor,
)
from support.codex import codex_reduce
from support.frameworks import REPO_ROOT, framework_env, framework_python
from support.scripted_openai import call, say, scripted_server

APPS = Path(__file__).resolve().parent / "apps"
APP = APPS / "agents_native_app.py"

pytestmark = pytest.mark.slow


def _env(**extra: str) -> dict[str, str]:
    """The app's environment, without an OpenAI key (the SDK's own exporter would use it)."""
    env = framework_env(**extra)
    env.pop("OPENAI_API_KEY", None)
    return env


def _run(mode: str, trace_root: Path, **env: str) -> dict[str, Any]:
    python = framework_python("agents")
    done = subprocess.run(
        [str(python), str(APP), mode],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=APPS,
        env=_env(APP_TRACE_ROOT=str(trace_root), **env),
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout.splitlines()[-1])
    assert result["unscripted"] == []
    return result


def _only_bundle(trace_root: Path) -> Path:
    bundles = sorted(trace_root.glob("trace-*"))
    assert len(bundles) == 1, bundles
    return bundles[0]


def _codex_agrees(codex_bin_0171: Path, bundle: Path, tmp_path: Path) -> RolloutTrace:
    report = validate_bundle(bundle)
    assert report.ok, report.problems
    trace = reduce_bundle(bundle)
    done = codex_reduce(codex_bin_0171, bundle, tmp_path / "codex-state.json")
    assert done.returncode == 0, done.stderr
    ours = write_state(trace, tmp_path / "state.json").read_bytes()
    assert ours == (tmp_path / "codex-state.json").read_bytes()
    return trace


def _threads(trace: RolloutTrace) -> dict[str, str]:
    """agent path -> thread id."""
    return {thread.agent_path: thread_id for thread_id, thread in trace.threads.items()}


def _per_thread(trace: RolloutTrace, thread_ids: list[str]) -> dict[str, int]:
    counts = Counter(thread_ids)
    return {path: counts[thread_id] for path, thread_id in _threads(trace).items()}


def _check_the_whole_run(
    trace: RolloutTrace, bundle: Path, app: dict[str, Any], *, chat: bool = False
) -> None:
    """The structure and content of the first app's bundle (``chat``: run with the Chat
    Completions model, whose calls the SDK records as generation spans)."""
    threads = _threads(trace)
    assert set(threads) == {"/root", "/root/researcher", "/root/billing"}
    nicknames = {trace.threads[thread_id].nickname for thread_id in threads.values()}
    assert nicknames == {"triage", "researcher", "billing"}
    # one turn per Runner.run of the top agent (2 user turns = 1 thread of 2 turns)
    turns = _per_thread(trace, [turn.thread_id for turn in trace.codex_turns.values()])
    assert turns == {"/root": 2, "/root/researcher": 1, "/root/billing": 1}
    calls = trace.inference_calls.values()
    assert _per_thread(trace, [call.thread_id for call in calls]) == {
        "/root": 3,
        "/root/researcher": 2,
        "/root/billing": 2,
    }
    tools = {tool.tool_call_id: tool for tool in trace.tool_calls.values()}
    assert {call_id: tool.thread_id for call_id, tool in tools.items()} == {
        "call_t1": threads["/root"],
        "call_t2": threads["/root"],
        "call_r1": threads["/root/researcher"],
        "call_r2": threads["/root/researcher"],
        "call_b1": threads["/root/billing"],
    }
    assert isinstance(tools["call_t1"].kind, SpawnAgentKind)  # Agent.as_tool
    assert isinstance(tools["call_t2"].kind, SpawnAgentKind)  # the handoff's transfer_to_billing
    # edges: the tool call spawns the researcher, whose answer goes back to triage; the
    # handoff call spawns billing
    edges = {(edge.kind, _anchor(trace, edge.source), _anchor(trace, edge.target)) for edge in
             trace.interaction_edges.values()}  # fmt: skip
    assert edges == {
        ("spawn_agent", "tool:call_t1", "/root/researcher"),
        ("spawn_agent", "tool:call_t2", "/root/billing"),
        ("agent_result", "/root/researcher", "/root"),
    }
    # request and response content, as the model server received and sent them
    store = Bundle(bundle)
    if chat:
        _check_chat_content(trace, store, app)
        return
    by_response = {call.response_id: call for call in calls}
    for number, request in enumerate(app["requests"], start=1):
        call = by_response[f"resp_{number}"]
        recorded = store.read_payload(trace.raw_payloads[call.raw_request_payload_id])
        assert recorded["instructions"] == request["instructions"]
        assert [_text(item) for item in recorded["input"]] == [
            _text(item) for item in request["input"]
        ]
        assert recorded["tools"] == request["tools"]
    # parallel calls of one tool (ending in the other order) keep their own ids and arguments
    for call_id, arguments, result in (
        ("call_r1", '{"q": "rates",  "exact":true}', "found rates"),
        ("call_r2", '{"q":"fees","exact":false}', "found fees"),
    ):
        invocation, output = (
            tools[call_id].raw_invocation_payload_id,
            tools[call_id].raw_result_payload_id,
        )
        assert invocation is not None and output is not None
        assert (
            store.read_payload(trace.raw_payloads[invocation])["payload"]["arguments"] == arguments
        )
        assert result in json.dumps(store.read_payload(trace.raw_payloads[output]))
    last = by_response[f"resp_{len(app['requests'])}"]
    assert last.raw_response_payload_id is not None
    response = store.read_payload(trace.raw_payloads[last.raw_response_payload_id])
    assert "Anything else?" in json.dumps(response)


def _check_chat_content(trace: RolloutTrace, store: Bundle, app: dict[str, Any]) -> None:
    """Each generation span's call, in the order the server answered: the messages it was
    sent (the system message holding the agent's instructions), the message or tool calls
    it answered (exact arguments, each starting its tool call) and its token usage."""
    calls = sorted(
        trace.inference_calls.values(), key=lambda inference: inference.execution.started_seq
    )
    assert len(calls) == len(app["requests"]) == len(app["responses"])
    for index, (inference, request, answer) in enumerate(
        zip(calls, app["requests"], app["responses"], strict=True)
    ):
        recorded = store.read_payload(trace.raw_payloads[inference.raw_request_payload_id])
        assert recorded["model"] == request["model"] == inference.model
        assert [_text(item) for item in recorded["input"]] == [
            _text(item) for item in request["messages"]
        ]
        assert inference.raw_response_payload_id is not None
        response = store.read_payload(trace.raw_payloads[inference.raw_response_payload_id])
        message = answer["choices"][0]["message"]
        texts = [
            part["text"]
            for item in response["output_items"]
            if item["type"] == "message"
            for part in item["content"]
        ]
        assert texts == ([message["content"]] if message.get("content") else [])
        sent_calls = [
            (tool["id"], tool["function"]["name"], tool["function"]["arguments"])
            for tool in message.get("tool_calls") or []
        ]
        assert [
            (item["call_id"], item["name"], item["arguments"])
            for item in response["output_items"]
            if item["type"] == "function_call"
        ] == sent_calls
        starts = {
            trace.tool_calls[tool_id].tool_call_id
            for tool_id in inference.tool_call_ids_started_by_response
        }
        assert starts == {call_id for call_id, _, _ in sent_calls}
        usage = answer["usage"]
        assert inference.usage is not None
        assert (inference.usage.input_tokens, inference.usage.output_tokens) == (
            usage["prompt_tokens"],
            usage["completion_tokens"],
        ), index
        assert response["token_usage"]["total_tokens"] == usage["total_tokens"]


def _anchor(trace: RolloutTrace, anchor: Any) -> str:
    """A readable edge end: ``tool:<call id>`` or the agent path of a thread or item."""
    if isinstance(anchor, ToolCallAnchor):
        return f"tool:{anchor.tool_call_id}"
    if isinstance(anchor, ThreadAnchor):
        return trace.threads[anchor.thread_id].agent_path
    assert isinstance(anchor, ConversationItemAnchor)
    item = trace.conversation_items[anchor.item_id]
    return trace.threads[item.thread_id].agent_path


def _text(item: dict[str, Any]) -> Any:
    """An input item's identity for comparison: its type, role, call id and text."""
    content = item.get("content")
    if isinstance(content, list):
        content = "".join(part.get("text", "") for part in content)
    return (item.get("type", "message"), item.get("role"), item.get("call_id"), content)


def test_the_processor_records_agents_turns_tools_handoffs_and_agents_as_tools(
    tmp_path: Path, codex_bin_0171: Path
) -> None:
    app = _run("processor", tmp_path / "traces")
    assert app["outputs"] == ["Your bill is $10.", "Anything else?"]
    bundle = _only_bundle(tmp_path / "traces")
    trace = _codex_agrees(codex_bin_0171, bundle, tmp_path)
    _check_the_whole_run(trace, bundle, app)


def test_the_chat_completions_model_is_recorded_as_the_responses_model_is(
    tmp_path: Path, codex_bin_0171: Path
) -> None:
    """The SDK's generation spans (its Chat Completions model): the same threads, turns,
    calls, tools and edges, each call's messages, answer and token usage."""
    app = _run("chat", tmp_path / "traces")
    assert app["outputs"] == ["Your bill is $10.", "Anything else?"]
    bundle = _only_bundle(tmp_path / "traces")
    trace = _codex_agrees(codex_bin_0171, bundle, tmp_path)
    _check_the_whole_run(trace, bundle, app, chat=True)


def test_generation_outputs_in_parts_refusals_and_responses_items_are_kept(
    tmp_path: Path, codex_bin_0171: Path
) -> None:
    """What other Chat Completions models put in a generation span's output: text parts
    (joined in order as output text parts), a refusal, an item already in Responses form."""
    _run("parts", tmp_path / "traces")
    bundle = _only_bundle(tmp_path / "traces")
    trace = _codex_agrees(codex_bin_0171, bundle, tmp_path)
    store = Bundle(bundle)
    calls = sorted(
        trace.inference_calls.values(), key=lambda inference: inference.execution.started_seq
    )
    contents = []
    for inference in calls:
        assert inference.raw_response_payload_id is not None
        response = store.read_payload(trace.raw_payloads[inference.raw_response_payload_id])
        assert [item["type"] for item in response["output_items"]] == ["message"]
        contents.append(response["output_items"][0]["content"])
        assert inference.usage is not None
        assert (inference.usage.input_tokens, inference.usage.output_tokens) == (3, 2)
    assert contents == [
        [
            {"type": "output_text", "text": "Two", "annotations": []},
            {"type": "output_text", "text": " parts", "annotations": []},
        ],
        [{"type": "refusal", "refusal": "I cannot."}],
        [{"type": "output_text", "text": "As is"}],
    ]


def test_an_agent_called_twice_as_a_tool_is_spawned_then_assigned_a_task(
    tmp_path: Path, codex_bin_0171: Path
) -> None:
    app = _run("twice", tmp_path / "traces")
    assert app["outputs"] == ["5% and $1."]
    trace = _codex_agrees(codex_bin_0171, _only_bundle(tmp_path / "traces"), tmp_path)
    threads = _threads(trace)
    assert set(threads) == {"/root", "/root/researcher"}
    turns = _per_thread(trace, [turn.thread_id for turn in trace.codex_turns.values()])
    assert turns == {"/root": 1, "/root/researcher": 2}
    tools = {tool.tool_call_id: tool for tool in trace.tool_calls.values()}
    assert set(tools) == {"call_a1", "call_a2"}
    assert isinstance(tools["call_a1"].kind, SpawnAgentKind)
    assert isinstance(tools["call_a2"].kind, AssignAgentTaskKind)
    edges = sorted((edge.kind, _anchor(trace, edge.source), _anchor(trace, edge.target)) for edge
                   in trace.interaction_edges.values())  # fmt: skip
    assert edges == [
        ("agent_result", "/root/researcher", "/root"),
        ("agent_result", "/root/researcher", "/root"),
        ("assign_agent_task", "tool:call_a2", "/root/researcher"),
        ("spawn_agent", "tool:call_a1", "/root/researcher"),
    ]


def test_a_failing_tool_and_a_failing_model_call_are_recorded_as_failed(
    tmp_path: Path, codex_bin_0171: Path
) -> None:
    app = _run("errors", tmp_path / "traces")
    assert app["outputs"] == ["It failed."]
    assert app["error"] == "InternalServerError"
    trace = _codex_agrees(codex_bin_0171, _only_bundle(tmp_path / "traces"), tmp_path)
    threads = _threads(trace)
    assert set(threads) == {"/root", "/root/failer"}
    (tool,) = trace.tool_calls.values()
    assert (tool.tool_call_id, tool.execution.status) == ("call_x", ExecutionStatus.FAILED)
    statuses = {
        (trace.threads[call.thread_id].agent_path, call.execution.status)
        for call in trace.inference_calls.values()
    }
    assert statuses == {
        ("/root", ExecutionStatus.COMPLETED),
        ("/root/failer", ExecutionStatus.FAILED),
    }
    (failed_turn,) = [
        t for t in trace.codex_turns.values() if t.thread_id == threads["/root/failer"]
    ]
    assert failed_turn.execution.status == ExecutionStatus.FAILED


def test_without_the_sdks_sensitive_data_the_structure_is_still_recorded(
    tmp_path: Path, codex_bin_0171: Path
) -> None:
    # the SDK then leaves the requests, responses and tool inputs out of its spans
    _run("processor", tmp_path / "traces", OPENAI_AGENTS_TRACE_INCLUDE_SENSITIVE_DATA="false")
    trace = _codex_agrees(codex_bin_0171, _only_bundle(tmp_path / "traces"), tmp_path)
    assert set(_threads(trace)) == {"/root", "/root/researcher", "/root/billing"}
    turns = _per_thread(trace, [turn.thread_id for turn in trace.codex_turns.values()])
    assert turns == {"/root": 2, "/root/researcher": 1, "/root/billing": 1}
    calls = [call.thread_id for call in trace.inference_calls.values()]
    assert _per_thread(trace, calls) == {"/root": 3, "/root/researcher": 2, "/root/billing": 2}
    tools = [tool.thread_id for tool in trace.tool_calls.values()]
    assert _per_thread(trace, tools) == {"/root": 2, "/root/researcher": 2, "/root/billing": 1}
    kinds = {(edge.kind, _anchor(trace, edge.target)) for edge in trace.interaction_edges.values()}
    assert kinds == {
        ("spawn_agent", "/root/researcher"),
        ("spawn_agent", "/root/billing"),
        ("agent_result", "/root"),
    }


def _dist_info_of_this_tree(directory: Path) -> Path:
    """This tree's distribution metadata (its entry points), as installing it would write.

    The framework venv holds the package installed from wherever it was built; its entry
    points come from that install. A dist-info made from this tree's pyproject, first on the
    path, is what ``importlib.metadata`` (and so ``opentelemetry-instrument``) reads instead.
    """
    pyproject = (REPO_ROOT / "pyproject.toml").read_text()
    name = re.search(r'^name = "(.+)"$', pyproject, re.MULTILINE)
    version = re.search(r'^version = "(.+)"$', pyproject, re.MULTILINE)
    assert name is not None and version is not None
    info = directory / f"otel_rollout-{version[1]}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {name[1]}\nVersion: {version[1]}\n"
    )
    lines = []  # the [project.entry-points.<group>] tables, as entry_points.txt
    group = None
    for line in pyproject.splitlines():
        if line.startswith("["):
            found = re.fullmatch(r"\[project\.entry-points\.(\S+)\]", line)
            group = found[1] if found else None
            if group:
                lines.append(f"[{group}]")
        elif group and "=" in line and not line.startswith("#"):
            key, _, target = line.partition("=")
            lines.append(f"{key.strip()} = {target.strip().strip(chr(34))}")
    (info / "entry_points.txt").write_text("\n".join(lines) + "\n")
    return directory


@pytest.mark.parametrize("bridges", [False, True], ids=["alone", "with-both-bridges"])
def test_opentelemetry_instrument_turns_the_processor_on(
    tmp_path: Path, codex_bin_0171: Path, bridges: bool
) -> None:
    # with both OTel bridges of the venv on too (OpenInference's replaces the SDK's processors
    # unless told otherwise) and their spans going to the rollout_bundle exporter: still the
    # one bundle, the native processor's
    python = framework_python("agents")
    metadata = _dist_info_of_this_tree(tmp_path / "metadata")
    env = _env(
        OTEL_ROLLOUT_TRACE_ROOT=str(tmp_path / "traces"),
        OTEL_TRACES_EXPORTER="rollout_bundle" if bridges else "none",
        OTEL_METRICS_EXPORTER="none",
        OTEL_LOGS_EXPORTER="none",
        OTEL_PYTHON_DISABLED_INSTRUMENTATIONS="" if bridges else "openai_agents",
    )
    env["PYTHONPATH"] = os.pathsep.join([str(metadata), env["PYTHONPATH"]])
    instrument = python.parent / "opentelemetry-instrument"
    done = subprocess.run(
        [str(instrument), str(python), str(APP), "instrument"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=APPS,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    app = json.loads(done.stdout.splitlines()[-1])
    bundle = _only_bundle(tmp_path / "traces")
    trace = _codex_agrees(codex_bin_0171, bundle, tmp_path)
    _check_the_whole_run(trace, bundle, app)


def test_with_an_otel_bridge_too_the_native_processor_writes_the_one_bundle(
    tmp_path: Path, codex_bin_0171: Path
) -> None:
    # the contrib bridge's spans go to RolloutSpanProcessor on the same provider: they are
    # left out (the native processor owns the trace), and still reach the app's exporters
    app = _run("bridge", tmp_path / "unused", OTEL_ROLLOUT_TRACE_ROOT=str(tmp_path / "traces"))
    assert app["foreign_spans_left_out"] > 0
    bundle = _only_bundle(tmp_path / "traces")
    trace = _codex_agrees(codex_bin_0171, bundle, tmp_path)
    _check_the_whole_run(trace, bundle, app)


def test_a_kill_9_mid_run_leaves_a_valid_bundle(tmp_path: Path, codex_bin_0171: Path) -> None:
    python = framework_python("agents")
    trace_root = tmp_path / "traces"
    with subprocess.Popen(
        [str(python), str(APP), "slow"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        cwd=APPS,
        env=_env(APP_TRACE_ROOT=str(trace_root)),
    ) as app:
        try:
            assert app.stdout is not None
            assert json.loads(app.stdout.readline()) == {"ready": True}  # billing's tool sleeps
            # what ended before the tool began reaches the disk (within the writer's bound):
            # wait for billing's first inference, the last thing before the sleep
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and not _holds_billing_inference(trace_root):
                time.sleep(0.05)
        finally:
            app.send_signal(signal.SIGKILL)
            app.wait(timeout=30)
    assert app.returncode == -signal.SIGKILL
    bundle = _only_bundle(trace_root)
    trace = _codex_agrees(codex_bin_0171, bundle, tmp_path)
    threads = _threads(trace)
    assert set(threads) == {"/root", "/root/researcher", "/root/billing"}
    assert _per_thread(trace, [call.thread_id for call in trace.inference_calls.values()]) == {
        "/root": 2,
        "/root/researcher": 2,
        "/root/billing": 1,
    }
    kinds = {(edge.kind, _anchor(trace, edge.target)) for edge in trace.interaction_edges.values()}
    assert kinds == {
        ("spawn_agent", "/root/researcher"),
        ("spawn_agent", "/root/billing"),
        ("agent_result", "/root"),
    }


def _holds_billing_inference(trace_root: Path) -> bool:
    """Whether the bundle on disk already holds the billing agent's first inference."""
    for bundle in trace_root.glob("trace-*"):
        try:
            trace = reduce_bundle(bundle)
        except Exception:  # a bundle being written may end mid-line: try again
            return False
        billing = [t for t, thread in trace.threads.items() if thread.nickname == "billing"]
        calls = trace.inference_calls.values()
        return bool(billing) and any(call.thread_id == billing[0] for call in calls)
    return False


def test_the_readme_snippet_records_a_handoff(tmp_path: Path, codex_bin_0171: Path) -> None:
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", readme, re.S)
    (block,) = [code for code in blocks if "RolloutTracingProcessor" in code]
    (tmp_path / "app.py").write_text(block, encoding="utf-8")
    script = {
        "Hand weather questions off.": [call("transfer_to_weather", "{}", "call_handoff")],
        "Answer about the weather.": [
            call("forecast", '{"city":"Paris"}', "call_forecast"),
            say("Sunny in Paris."),
        ],
    }
    with scripted_server(script) as server:
        done = subprocess.run(
            [str(framework_python("agents")), "app.py"],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
            cwd=tmp_path,
            env=framework_env(OPENAI_BASE_URL=server.base_url, OPENAI_API_KEY="sk-scripted"),
        )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "Sunny in Paris."
    assert (len(server.received), server.unscripted) == (3, [])
    bundle = _only_bundle(tmp_path / "rollout-traces")
    trace = _codex_agrees(codex_bin_0171, bundle, tmp_path)
    threads = _threads(trace)
    assert set(threads) == {"/root", "/root/weather"}
    edges = {(edge.kind, _anchor(trace, edge.source), _anchor(trace, edge.target))
             for edge in trace.interaction_edges.values()}  # fmt: skip
    assert edges == {("spawn_agent", "tool:call_handoff", "/root/weather")}
    tools = {tool.tool_call_id: trace.threads[tool.thread_id].agent_path
             for tool in trace.tool_calls.values()}  # fmt: skip
    assert tools == {"call_handoff": "/root", "call_forecast": "/root/weather"}


def test_the_module_says_which_extra_it_needs_without_the_sdk() -> None:
    # the dev venv has no Agents SDK
    done = subprocess.run(
        [sys.executable, "-c", "import otel_rollout.openai_agents"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 1
    assert "pip install 'otel-rollout[openai-agents]'" in done.stderr
    assert "ImportError" in done.stderr


def test_the_instrumentor_does_nothing_without_the_sdk() -> None:
    from otel_rollout._agents_sdk._instrumentor import OpenAIAgentsInstrumentor

    instrumentor = OpenAIAgentsInstrumentor()
    assert list(instrumentor.instrumentation_dependencies()) == ["openai-agents >= 0.24"]
    instrumentor.instrument()  # the dependency check fails: not instrumented
    assert OpenAIAgentsInstrumentor._processor is None
    instrumentor.instrument(skip_dep_check=True)  # as opentelemetry-instrument calls it
    assert OpenAIAgentsInstrumentor._processor is None
    instrumentor.uninstrument()
