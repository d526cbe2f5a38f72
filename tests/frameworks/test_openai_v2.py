"""The OpenAI client with ``opentelemetry-instrumentation-openai-v2`` (the main test venv's
openai 2.x and openai-v2 2.4b0): spans-only bundles, the content switch, and one bundle when
the recording API records the same trace."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from importlib.metadata import entry_points
from pathlib import Path

from support.frameworks import framework_env
from support.rollout_shape import assert_codex_accepts, rollout_shape
from support.scripted_openai import call, say, scripted_server

APP = Path(__file__).parent / "apps" / "openai_v2_app.py"
SCRIPT = {
    "support-model": [
        call("lookup", '{"q":"order 7"}', "call_lookup"),
        call("ask_helper", '{"q":"late?"}', "call_ask"),
        say("It ships today."),
    ],
    "helper-model": [say("Not late.")],
    "loop-model": [
        call("lookup", '{"q":"order 7"}', "call_lookup"),
        say("It ships today."),
        say("You are welcome."),
    ],
}
LATEST = {"OTEL_SEMCONV_STABILITY_OPT_IN": "gen_ai_latest_experimental"}


def run_app(
    mode: str, traces: Path, *launcher: str, **env: str
) -> subprocess.CompletedProcess[str]:
    with scripted_server(SCRIPT) as server:
        done = subprocess.run(
            [*launcher, sys.executable, APP, mode],
            env=framework_env(
                OPENAI_BASE_URL=server.base_url, OTEL_ROLLOUT_TRACE_ROOT=str(traces), **env
            ),
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert done.returncode == 0, done.stderr
    return done


def test_agents_with_app_spans_between_give_their_threads(
    tmp_path: Path, codex_for: Callable[[int], Path]
) -> None:
    traces = tmp_path / "traces"
    done = run_app(
        "agents", traces, OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT="span_only", **LATEST
    )
    assert "carry no message content" not in done.stderr
    [bundle] = traces.glob("trace-*")
    assert_codex_accepts(bundle, codex_for(3), tmp_path)
    shape = rollout_shape(bundle)
    assert set(shape.threads) == {"/root", "/root/helper"}
    support, helper = shape.threads["/root"], shape.threads["/root/helper"]
    assert (support.nickname, support.model, support.turns, support.inferences) == (
        "support",
        "support-model",
        1,
        3,
    )
    assert (helper.origin, helper.turns, helper.inferences) == ("spawned", 1, 1)
    assert support.tools == [
        ("lookup", "call_lookup", "other"),
        ("ask_helper", "call_ask", "spawn_agent"),
    ]
    assert shape.edges == [
        ("agent_result", "/root/helper", "/root", None),
        ("spawn_agent", "/root", "/root/helper", "call_ask"),
    ]
    assert support.arguments == {"call_lookup": '{"q":"order 7"}', "call_ask": '{"q":"late?"}'}
    assert (support.user_texts, support.instructions) == (["Where is my order?"], ["You support."])
    assert (support.replies, helper.replies) == (["It ships today."], ["Not late."])
    assert helper.user_texts == ["late?"]


def _post_instrument_hook(scratch: Path) -> dict[str, str]:
    """The environment that makes otel-rollout's ``opentelemetry_post_instrument`` entry point
    visible: the installed package's own (a venv built from this tree, as in CI), else the same
    entry point declared by a distribution on ``PYTHONPATH`` (a venv installed from an older
    tree: its metadata predates the entry point)."""
    group = entry_points(group="opentelemetry_post_instrument")
    if any(point.name == "rollout_span_processor" for point in group):
        return {}
    dist = scratch / "shim" / "otel_rollout_zero_code-0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: otel-rollout-zero-code\n")
    (dist / "entry_points.txt").write_text(
        "[opentelemetry_post_instrument]\n"
        "rollout_span_processor = otel_rollout._otel._zero_code:install_processor\n"
    )
    return {"PYTHONPATH": str(dist.parent)}


def test_zero_code_under_opentelemetry_instrument(
    tmp_path: Path, codex_for: Callable[[int], Path]
) -> None:
    """No OpenTelemetry in the app: ``opentelemetry-instrument`` instruments openai, and
    otel-rollout's post-instrument hook adds the rollout span processor."""
    traces = tmp_path / "traces"
    instrument = str(Path(sys.executable).parent / "opentelemetry-instrument")
    env = {
        "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": "span_only",
        "OTEL_TRACES_EXPORTER": "none",
        "OTEL_METRICS_EXPORTER": "none",
        "OTEL_LOGS_EXPORTER": "none",
        **LATEST,
        **_post_instrument_hook(tmp_path),
    }
    run_app("zero-code", traces, instrument, **env)
    [bundle] = traces.glob("trace-*")
    assert_codex_accepts(bundle, codex_for(3), tmp_path)
    shape = rollout_shape(bundle)
    assert set(shape.threads) == {"/root", "/root/helper"}
    assert shape.threads["/root"].tools == [
        ("lookup", "call_lookup", "other"),
        ("ask_helper", "call_ask", "spawn_agent"),
    ]
    assert shape.threads["/root"].replies == ["It ships today."]


def test_content_in_log_events_only_warns_once_how_to_put_it_on_spans(tmp_path: Path) -> None:
    traces = tmp_path / "traces"
    done = run_app(
        "agents", traces, OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT="event_only", **LATEST
    )
    assert done.stderr.count("carry no message content") == 1
    assert "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=span_only" in done.stderr
    [bundle] = traces.glob("trace-*")  # the structure is there all the same
    assert rollout_shape(bundle).threads["/root"].inferences == 3


def test_the_recording_api_and_openai_v2_on_one_provider_write_one_bundle(
    tmp_path: Path,
) -> None:
    traces = tmp_path / "traces"
    done = run_app("recording", traces, **LATEST)
    [bundle] = traces.glob("trace-*")  # the rollout's own; openai-v2's span made none
    assert rollout_shape(bundle).threads["/root"].origin == "root"
    assert done.stdout.split()[-1] == "1"  # the chat span: left out, and counted


def test_a_loop_without_a_span_joins_its_traces_by_conversation_id(
    tmp_path: Path, codex_for: Callable[[int], Path]
) -> None:
    """No span around the loop: each chat call and tool span is a trace of its own. The
    conversation id they carry (put there by the app) joins them into one bundle: one
    thread, one turn per user message (the call given the tool's result goes on the turn)."""
    traces = tmp_path / "traces"
    run_app(
        "loop",
        traces,
        OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT="span_only",
        CONVERSATION_ID="conv-7",
        **LATEST,
    )
    [bundle] = traces.glob("trace-*")
    assert_codex_accepts(bundle, codex_for(3), tmp_path)
    shape = rollout_shape(bundle)
    [root] = shape.threads.values()
    assert (root.nickname, root.model, root.turns, root.inferences) == (
        "loop-model",
        "loop-model",
        2,
        3,
    )
    assert root.tools == [("lookup", "call_lookup", "other")]
    assert root.arguments == {"call_lookup": '{"q":"order 7"}'}
    assert root.replies == ["It ships today.", "You are welcome."]
    assert (root.user_texts, root.instructions) == (
        ["Where is my order?", "Thanks"],
        ["You support."],
    )
    turns = sorted(
        shape.state["codex_turns"].values(), key=lambda turn: turn["execution"]["started_seq"]
    )
    calls = shape.state["inference_calls"].values()
    per_turn = [sum(c["codex_turn_id"] == t["codex_turn_id"] for c in calls) for t in turns]
    assert per_turn == [2, 1]  # the call given the tool's result went on the first turn
    assert shape.edges == []


def test_a_loop_without_a_span_or_conversation_id_gives_a_bundle_per_trace(
    tmp_path: Path,
) -> None:
    """Nothing joins the traces: one bundle each (3 chat calls, 1 tool span)."""
    traces = tmp_path / "traces"
    run_app(
        "loop", traces, OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT="span_only", **LATEST
    )
    shapes = [rollout_shape(bundle) for bundle in traces.glob("trace-*")]
    assert sorted(shape.threads["/root"].inferences for shape in shapes) == [0, 1, 1, 1]
