"""A tool run in a process started ahead (tool_spares, tool_host) is the same run as a cold one.

Same stdout, stderr and exit status, the same environment (a spare started with
another one is not used), the memory cap and the deadline apply, nothing is left
running; and the exporter's GGUF conversions really use their spares, writing
the same bytes as cold converters do.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from tuneforge import exitcodes
from tuneforge.exporter import tool_spares
from tuneforge.exporter.gguf import GgufError, convert_to_gguf, prestart_conversions
from tuneforge.exporter.gguf_process import prestart_tool, run_tool
from tuneforge.exporter.tool_host import EXITED

TOOL = textwrap.dedent(
    """
    import os, sys
    import json  # a module the spare preloads
    mode = sys.argv[1]
    print("argv", sys.argv[1:], "name", __name__, "stdin", sys.stdin.read() == "")
    print("env", os.environ.get("TUNEFORGE_TEST_ENV"), file=sys.stderr)
    if mode == "fail":
        sys.exit(3)
    if mode == "message":
        sys.exit("the tool's own message")
    if mode == "raise":
        raise RuntimeError("an uncaught error")
    if mode == "allocate":
        block = bytearray(512 << 20)
    if mode == "sleep":
        import time
        time.sleep(60)
    if mode == "unterminated":
        sys.stdout.write("crlf\\r\\nand no newline at the end")
    """
)


@pytest.fixture
def tool(tmp_path: Path) -> Iterator[Path]:
    script = tmp_path / "tool.py"
    script.write_text(TOOL)
    yield script
    tool_spares.discard_all()


def run(script: Path, *args: str, prestarted: bool, **kwargs: object) -> tuple[str, str]:
    argv = [sys.executable, str(script), *args]
    if prestarted:
        assert prestart_tool(argv, preload=["json"], env=kwargs.get("env"))  # type: ignore[arg-type]
        assert tool_spares.wait_ready()
    kwargs.setdefault("timeout", 60.0)
    result = run_tool(argv, step="tool.py", version="test", **kwargs)  # type: ignore[arg-type]
    return result.stdout, result.stderr


@pytest.mark.parametrize("prestarted", [False, True], ids=["cold", "started-ahead"])
def test_output_and_arguments_are_the_tools(tool: Path, prestarted: bool) -> None:
    stdout, stderr = run(tool, "ok", "--flag", prestarted=prestarted, env={"TUNEFORGE_TEST_ENV": "x"})
    assert stdout == "argv ['ok', '--flag'] name __main__ stdin True\n"
    assert stderr == "env x\n"
    assert tool_spares.waiting() == []  # the spare, if any, ran it


@pytest.fixture
def no_spares_left() -> Iterator[None]:
    yield
    tool_spares.discard_all()


def test_output_without_a_final_newline_is_the_same_started_ahead(tool: Path) -> None:
    cold = run(tool, "unterminated", prestarted=False)
    assert cold[0].endswith("crlf\nand no newline at the end")
    assert run(tool, "unterminated", prestarted=True) == cold
    assert tool_spares.waiting() == []


ANNOUNCES_THEN_LINGERS = textwrap.dedent(
    f"""
    import os, sys, time
    os.write(1, b"the output")
    os.write(2, b"the errors")
    os.write(1, {EXITED!r}.encode() + b" 7\\n")
    os.close(1)
    os.close(2)
    time.sleep(30)  # a teardown the exporter need not wait for
    """
)


def test_a_spare_is_done_when_it_says_so_not_when_it_has_exited() -> None:
    process = tool_spares.start_process(
        [sys.executable, "-c", ANNOUNCES_THEN_LINGERS], dict(os.environ), stdin=subprocess.DEVNULL
    )
    try:
        assert tool_spares.finish(process, timeout=20) == ("the output", "the errors", 7)
        assert process.poll() is None  # still there: its status came from what it wrote
    finally:
        process.kill()
        process.wait()


def test_a_spare_that_dies_without_saying_so_is_waited_for() -> None:
    code = "import os; os.write(1, b'half a line'); os.kill(os.getpid(), 9)"
    process = tool_spares.start_process(
        [sys.executable, "-c", code], dict(os.environ), stdin=subprocess.DEVNULL
    )
    assert tool_spares.finish(process, timeout=20) == ("half a line", "", -9)


def test_a_module_tool_started_ahead_says_what_it_says_cold(no_spares_left: None) -> None:
    argv = [sys.executable, "-m", "encodings.rot_13"]  # a module in a package, as gguf_fast_main is
    cold = run_tool(argv, step="rot_13", version="test", timeout=60.0)
    assert prestart_tool(argv) and tool_spares.wait_ready()
    warm = run_tool(argv, step="rot_13", version="test", timeout=60.0)
    assert warm.started_ahead and not cold.started_ahead
    assert (warm.stdout, warm.stderr) == (cold.stdout, cold.stderr) and warm.stderr == ""


@pytest.mark.parametrize("prestarted", [False, True], ids=["cold", "started-ahead"])
@pytest.mark.parametrize(
    ("mode", "status", "said"),
    [
        ("fail", 3, ""),
        ("message", 1, "the tool's own message"),
        ("raise", 1, "RuntimeError: an uncaught error"),
    ],
)
def test_exit_status_and_errors_are_the_tools(
    tool: Path, prestarted: bool, mode: str, status: int, said: str
) -> None:
    with pytest.raises(GgufError) as caught:
        run(tool, mode, prestarted=prestarted)
    assert f"(exit {status}," in str(caught.value)
    assert said in str(caught.value)


def test_a_spare_started_with_another_environment_is_not_used(tool: Path) -> None:
    argv = [sys.executable, str(tool)]
    assert prestart_tool(argv, env={"TUNEFORGE_TEST_ENV": "spare"})
    assert tool_spares.wait_ready()

    _, stderr = run(tool, "ok", prestarted=False, env={"TUNEFORGE_TEST_ENV": "caller"})

    assert stderr == "env caller\n"
    assert tool_spares.waiting() == [str(tool)]  # still waiting for a caller with its environment


def test_a_tool_has_one_spare_the_one_for_the_latest_environment(tool: Path) -> None:
    argv = [sys.executable, str(tool)]
    assert prestart_tool(argv, env={"TUNEFORGE_TEST_ENV": "old"})
    (old,) = spare_processes()
    assert prestart_tool(argv, env={"TUNEFORGE_TEST_ENV": "new"})

    assert old.poll() is not None
    assert tool_spares.waiting() == [str(tool)]
    _, stderr = run(tool, "ok", prestarted=False, env={"TUNEFORGE_TEST_ENV": "new"})
    assert stderr == "env new\n" and tool_spares.waiting() == []


def test_the_memory_cap_applies_to_a_spare(tool: Path) -> None:
    with pytest.raises(GgufError) as caught:
        run(tool, "allocate", prestarted=True, memory_limit=256 << 20)
    assert (caught.value.reason, caught.value.exit_code) == ("OutOfMemory", exitcodes.OUT_OF_MEMORY)


def test_a_spare_past_the_deadline_is_stopped(tool: Path) -> None:
    argv = [sys.executable, str(tool)]
    assert prestart_tool(argv)
    assert tool_spares.wait_ready()
    (pid,) = [p.pid for p in spare_processes()]

    with pytest.raises(GgufError) as caught:
        run(tool, "sleep", prestarted=False, timeout=1.0)

    assert caught.value.reason == "ConversionTimeout"
    assert not Path(f"/proc/{pid}").exists() or zombie(pid)


def test_spares_are_stopped_when_discarded(tool: Path) -> None:
    assert prestart_tool([sys.executable, str(tool)])
    (process,) = spare_processes()
    tool_spares.discard_all()
    assert process.poll() is not None
    assert tool_spares.waiting() == []


def spare_processes() -> list[subprocess.Popen[str]]:
    return [spare.process for spare in tool_spares._spares]


def zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"
    except OSError:
        return True


def test_a_conversion_uses_the_converters_started_ahead_and_writes_the_same_bytes(
    tiny_model: Path, tmp_path: Path, no_spares_left: None
) -> None:
    # Here, not in a fixture: pytest changes the environment (PYTEST_CURRENT_TEST) between the
    # two, and a spare only serves the environment it was started with.
    prestart_conversions()
    assert tool_spares.wait_ready()

    warm = convert_to_gguf(tiny_model, tmp_path / "warm.gguf")
    assert tool_spares.waiting() == []  # both steps (llama.cpp's --vocab-only, our tensors) used theirs

    cold = convert_to_gguf(tiny_model, tmp_path / "cold.gguf")

    assert warm.method == cold.method == "fast"
    assert warm.path.read_bytes() == cold.path.read_bytes()
