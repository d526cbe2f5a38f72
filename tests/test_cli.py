"""The command line: exit codes 0/1/2, `otel-rollout: <message>` errors, never a traceback."""

from __future__ import annotations

import importlib
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from otel_rollout._bundle import _validate
from otel_rollout.cli import _COMMANDS, main

PLAIN = next((Path(__file__).parent / "fixtures" / "codex-0.169.0" / "plain").glob("trace-*"))
CONSOLE_SCRIPT = Path(sys.executable).parent / "otel-rollout"


@pytest.fixture
def bundle(tmp_path: Path) -> Path:
    copy = tmp_path / PLAIN.name
    shutil.copytree(PLAIN, copy)
    return copy


@pytest.fixture
def broken(bundle: Path) -> Path:
    log = bundle / "trace.jsonl"
    lines = log.read_bytes().splitlines(keepends=True)
    lines[3] = b'{"broken\n'
    log.write_bytes(b"".join(lines))
    return bundle


def test_validate_ok(bundle: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(bundle)]) == 0
    out, err = capsys.readouterr()
    assert out == "ok: 18 events, 1 thread, 1 turn, 8 payloads, 48896 bytes\n"
    assert err == ""


def test_validate_invalid(broken: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(broken)]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    lines = err.splitlines()
    assert lines[0].startswith(f"{broken / 'trace.jsonl'}:4: bad JSON")
    assert lines[-1] == f"otel-rollout: {broken}: {len(lines) - 1} problem(s)"
    assert "Traceback" not in err


def test_validate_max_problems(broken: Path, capsys: pytest.CaptureFixture[str]) -> None:
    log = broken / "trace.jsonl"
    log.write_bytes(log.read_bytes() + b"x\n" * 5)
    assert main(["validate", "--max-problems", "2", str(broken)]) == 1
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 3 and err[-1].endswith("2 problem(s) (stopped after 2)")


def test_torn_line_warns_but_passes(bundle: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with (bundle / "trace.jsonl").open("ab") as log:
        log.write(b'{"schema_version":2,')
    assert main(["validate", str(bundle)]) == 0
    out, err = capsys.readouterr()
    assert out.startswith("ok: 18 events")
    assert err.startswith("otel-rollout: warning: ") and ":19: torn last line" in err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["validate"], "otel-rollout: Missing argument 'BUNDLE'."),
        (["validate", "/no/such/bundle"], "otel-rollout: Invalid value for 'BUNDLE': Directory"),
        (
            ["validate", "--max-problems", "0", "."],
            "otel-rollout: Invalid value for '--max-problems'",
        ),
        (["validate", "--frobnicate", "."], "otel-rollout: No such option"),
        (["frobnicate"], "otel-rollout: No such command 'frobnicate'."),
    ],
)
def test_usage_errors_exit_2(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith(message)
    assert "Traceback" not in err


def test_validate_a_file_not_a_directory(bundle: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(bundle / "manifest.json")]) == 2
    assert capsys.readouterr().err.startswith("otel-rollout: Invalid value for 'BUNDLE'")


def test_bare_command_prints_help_to_stdout(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    out, err = capsys.readouterr()
    assert out.startswith("Usage: otel-rollout [OPTIONS] COMMAND [ARGS]...")
    assert "validate" in out and err == ""


@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_help_exits_0(flag: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([flag]) == 0
    out = capsys.readouterr().out
    assert out.startswith("Usage: otel-rollout") and "validate" in out


def test_help_lists_each_command_with_the_summary_of_its_own_help() -> None:
    for name, (module, summary) in _COMMANDS.items():
        command = importlib.import_module(module).command
        assert command.name == name
        assert " ".join(command.help.split("\n\n")[0].split()) == summary, name


def test_validate_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", "--help"]) == 0
    assert "--max-problems" in capsys.readouterr().out


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.startswith("otel-rollout, version ")


def test_unexpected_error_is_a_message_not_a_traceback(
    bundle: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def explode(*args: object, **kwargs: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(_validate, "validate_bundle", explode)
    assert main(["validate", str(bundle)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("otel-rollout: internal error: RuntimeError: boom")
    assert "Traceback" not in err
    monkeypatch.setenv("OTEL_ROLLOUT_DEBUG", "1")
    with pytest.raises(RuntimeError, match="boom"):
        main(["validate", str(bundle)])


def test_os_error_exits_2(
    bundle: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def denied(*args: object, **kwargs: object) -> None:
        raise PermissionError(13, "Permission denied", str(bundle / "trace.jsonl"))

    monkeypatch.setattr(_validate, "validate_bundle", denied)
    assert main(["validate", str(bundle)]) == 2
    assert capsys.readouterr().err == f"otel-rollout: {bundle / 'trace.jsonl'}: Permission denied\n"


def test_unreadable_bundle_exits_2(
    bundle: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    real = _validate.validate_bundle

    def unreadable(*args: object, **kwargs: object) -> _validate.ValidationReport:
        report = real(bundle)
        report.unreadable = True
        report.problems.append(_validate.Problem(str(bundle), 0, "cannot read: Permission denied"))
        return report

    monkeypatch.setattr(_validate, "validate_bundle", unreadable)
    assert main(["validate", str(bundle)]) == 2
    assert "cannot read: Permission denied" in capsys.readouterr().err


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=60, check=False)


def test_console_script(broken: Path, tmp_path: Path) -> None:
    assert CONSOLE_SCRIPT.exists(), "install the package: pip install -e '.[test]'"
    good = tmp_path / "good"
    shutil.copytree(PLAIN, good)
    ok = _run(str(CONSOLE_SCRIPT), "validate", str(good))
    assert (ok.returncode, ok.stdout, ok.stderr) == (
        0,
        "ok: 18 events, 1 thread, 1 turn, 8 payloads, 48896 bytes\n",
        "",
    )
    invalid = _run(str(CONSOLE_SCRIPT), "validate", str(broken))
    assert invalid.returncode == 1 and invalid.stdout == ""
    assert invalid.stderr.splitlines()[0].startswith(f"{broken / 'trace.jsonl'}:4: bad JSON")
    assert invalid.stderr.splitlines()[-1].startswith("otel-rollout: ")
    missing = _run(str(CONSOLE_SCRIPT), "validate", str(tmp_path / "nope"))
    assert missing.returncode == 2 and missing.stdout == ""
    assert missing.stderr.startswith("otel-rollout: ") and "Traceback" not in missing.stderr
    bare = _run(str(CONSOLE_SCRIPT))
    assert bare.returncode == 2 and bare.stdout.startswith("Usage: otel-rollout")


def test_python_dash_m(tmp_path: Path) -> None:
    copy = tmp_path / PLAIN.name
    shutil.copytree(PLAIN, copy)
    done = _run(sys.executable, "-m", "otel_rollout", "validate", str(copy))
    assert done.returncode == 0, done.stderr
    assert done.stdout == "ok: 18 events, 1 thread, 1 turn, 8 payloads, 48896 bytes\n"


def test_reduce_writes_state_json_owner_only_replacing_a_wider_file(
    bundle: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out.json"
    out.write_text("old")
    out.chmod(0o644)
    assert main(["reduce", str(bundle), "-o", str(out)]) == 0
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert out.read_bytes().startswith(b"{")
    assert main(["reduce", str(bundle)]) == 0
    assert stat.S_IMODE((bundle / "state.json").stat().st_mode) == 0o600


def test_validate_says_one_thread_not_one_threads(
    bundle: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["validate", str(bundle)]) == 0
    assert "1 thread, 1 turn," in capsys.readouterr().out


def test_every_file_the_cli_writes_is_owner_only_under_umask_000(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Each command that writes (reduce, view, convert, with and without -o), and those
    that only read (validate, show), under umask 000: every file created or replaced is
    0600 and every directory created is 0700, since they all hold the conversation."""
    source = tmp_path / "in" / PLAIN.name
    shutil.copytree(PLAIN, source)
    (source / "state.json").unlink()
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    before = {path: path.stat().st_mtime_ns for path in tmp_path.rglob("*")}
    old = os.umask(0)
    try:
        runs = [
            ["reduce", str(source)],
            ["reduce", str(source), "-o", str(work / "state.json")],
            ["view", str(source)],
            ["view", str(source), "-o", str(work / "page.html")],
            ["convert", str(source), "--to", "3", "-o", str(work / "as3")],
            ["validate", str(source)],
            ["show", str(source)],
        ]
        for args in runs:
            assert main(args) == 0, args
        [converted] = (work / "as3").glob("trace-*")
        assert main(["convert", str(converted), "--to", "2", "-o", str(work / "as2")]) == 0
    finally:
        os.umask(old)
    capsys.readouterr()
    written = [
        path
        for path in tmp_path.rglob("*")
        if path not in before or (path.is_file() and path.stat().st_mtime_ns != before[path])
    ]
    names = {path.relative_to(tmp_path).as_posix() for path in written}
    assert {"in/" + PLAIN.name + "/state.json", "work/state.json", "work/page.html"} <= names
    assert any(name.startswith("work/rollout-") for name in names)
    assert any(
        name.startswith("work/as2/trace-") and name.endswith("/trace.jsonl") for name in names
    )
    for path in written:
        assert stat.S_IMODE(path.stat().st_mode) == (0o700 if path.is_dir() else 0o600), path
