"""The sandbox's process runner: exit codes, streams, stdin, environment, host name, tty,
process-group kill, large outputs and resource hygiene."""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import signal
import socket
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from _waiting import await_until

from podmagic.sandbox import _runner as runner
from podmagic.sandbox._runner import (
    CHUNK_SIZE,
    STDERR,
    STDOUT,
    ExecutableNotFound,
    ProcessSpec,
    RunningProcess,
    start_process,
)

pytestmark = pytest.mark.anyio

PATH = "/usr/local/bin:/usr/bin:/bin"
ENV = {"PATH": PATH}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def spec(
    argv: Sequence[str], *, env: Mapping[str, str] = ENV, cwd: Path = Path("/"), **kwargs: Any
) -> ProcessSpec:
    return ProcessSpec(argv=list(argv), env=env, cwd=cwd, **kwargs)


@asynccontextmanager
async def started(argv: Sequence[str], **kwargs: Any) -> AsyncIterator[RunningProcess]:
    process = await start_process(spec(argv, **kwargs))
    try:
        yield process
    finally:
        await process.aclose()


async def collect(process: RunningProcess) -> list[tuple[int, bytes]]:
    return [chunk async for chunk in process.read_output()]


def joined(chunks: list[tuple[int, bytes]], channel: int) -> bytes:
    return b"".join(data for ch, data in chunks if ch == channel)


def merged(chunks: list[tuple[int, bytes]]) -> list[tuple[int, bytes]]:
    """Adjacent chunks of one channel glued together (chunking itself is arbitrary)."""
    result: list[tuple[int, bytes]] = []
    for channel, data in chunks:
        if result and result[-1][0] == channel:
            result[-1] = (channel, result[-1][1] + data)
        else:
            result.append((channel, data))
    return result


async def run(argv: Sequence[str], **kwargs: Any) -> tuple[int, list[tuple[int, bytes]]]:
    async with started(argv, **kwargs) as process:
        chunks = await asyncio.wait_for(collect(process), 10)
        return await asyncio.wait_for(process.wait(), 10), chunks


def alive(pid: int) -> bool:
    """True if ``pid`` runs (a zombie waiting for whoever adopted it counts as dead)."""
    try:
        with open(f"/proc/{pid}/stat") as stat_file:
            state = stat_file.read().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state not in ("Z", "X")


# ---- exit codes ------------------------------------------------------------------------------


@pytest.mark.parametrize("code", [0, 1, 42])
async def test_exit_code(code: int) -> None:
    exit_code, _ = await run(["sh", "-c", f"exit {code}"])
    assert exit_code == code


async def test_killed_by_signal_is_128_plus_signal() -> None:
    exit_code, _ = await run(["sh", "-c", "kill -9 $$"])
    assert exit_code == 137
    exit_code, _ = await run(["sh", "-c", "kill -TERM $$"])
    assert exit_code == 143


async def test_sigterm_reaches_only_the_process_not_the_children_of_a_shell_that_traps_it() -> None:
    # As a runtime signals a container's first process: a shell handling SIGTERM keeps its
    # children. The child says it is ready (so it has left the shell's trap behind) and
    # waits on a line of stdin (fd 3: a background job's stdin is /dev/null), so it is still
    # there when the signal comes, whatever the machine's load.
    script = (
        'exec 3<&0; trap "echo term" TERM; (echo ready; read line <&3; echo "child $line") & '
        "wait; wait"
    )
    async with started(["sh", "-c", script]) as process:
        output = b""
        chunks = process.read_output()

        async def until(text: bytes) -> None:
            nonlocal output
            while text not in output:
                chunk = await anext(chunks, None)
                assert chunk is not None, f"ended before {text!r}: {output!r}"
                output += chunk[1]

        await asyncio.wait_for(until(b"ready\n"), 10)
        process.signal(signal.SIGTERM)
        await asyncio.wait_for(until(b"term\n"), 10)
        await process.write_stdin(b"go\n")
        await process.close_stdin()
        await asyncio.wait_for(until(b"child go\n"), 10)
        assert await asyncio.wait_for(process.wait(), 10) == 0


async def test_kill_gives_137() -> None:
    async with started(["sleep", "1000"]) as process:
        process.kill()
        assert await asyncio.wait_for(process.wait(), 5) == 137
        assert await asyncio.wait_for(collect(process), 5) == []
        process.kill()  # idempotent
    process.kill()  # and harmless after aclose


# ---- streams -----------------------------------------------------------------------------------


async def test_stdout_and_stderr_are_separate_and_ordered() -> None:
    # Each line is written only once the previous one has arrived (a handshake over stdin,
    # not sleeps), so the expected order holds however loaded the machine is.
    expected = [(STDOUT, b"out1\n"), (STDERR, b"err1\n"), (STDOUT, b"out2\n"), (STDERR, b"err2\n")]
    script = "; ".join(
        f"read go; echo {data.decode().strip()}" + (" >&2" if ch == STDERR else "")
        for ch, data in expected
    )
    async with started(["sh", "-c", script]) as process:
        output = process.read_output()
        for want in expected:
            await process.write_stdin(b"\n")
            assert await asyncio.wait_for(output.__anext__(), 5) == want
        assert await asyncio.wait_for(collect_rest(output), 5) == []
        assert await process.wait() == 0


async def test_stdin_round_trip_through_cat() -> None:
    payload = os.urandom(3 * 1024 * 1024)  # more than pipes hold: needs reading while writing
    async with started(["cat"]) as process:
        reader = asyncio.create_task(collect(process))
        await process.write_stdin(b"hello\n")
        await process.write_stdin(payload)
        await process.close_stdin()
        chunks = await asyncio.wait_for(reader, 10)
        assert await process.wait() == 0
    assert joined(chunks, STDOUT) == b"hello\n" + payload
    assert joined(chunks, STDERR) == b""


async def test_stdin_closed_immediately_is_eof() -> None:
    async with started(["cat"]) as process:
        await process.close_stdin()
        await process.close_stdin()  # idempotent
        assert await asyncio.wait_for(collect(process), 5) == []
        assert await process.wait() == 0


async def test_stdin_after_exit_is_dropped() -> None:
    async with started(["true"]) as process:
        assert await process.wait() == 0
        await process.write_stdin(b"x" * (1024 * 1024))  # EPIPE: dropped, no error
        await process.close_stdin()


# ---- environment, working directory, host name -----------------------------------------------


async def test_environment_is_exactly_the_given_one() -> None:
    env = {"PATH": PATH, "GREETING": "hello world", "EMPTY": ""}
    exit_code, chunks = await run(["env"], env=env)
    assert exit_code == 0
    lines = joined(chunks, STDOUT).decode().splitlines()
    assert dict(line.split("=", 1) for line in lines) == env


async def test_argv0_is_looked_up_in_the_given_path(tmp_path: Path) -> None:
    tool = tmp_path / "pod-tool"
    tool.write_text('#!/bin/sh\necho "$0 ran with $1"\n')
    tool.chmod(0o755)
    exit_code, chunks = await run(["pod-tool", "arg"], env={"PATH": f"{tmp_path}:{PATH}"})
    assert exit_code == 0
    assert joined(chunks, STDOUT) == f"{tool} ran with arg\n".encode()
    with pytest.raises(ExecutableNotFound):
        await start_process(spec(["pod-tool"]))  # not in this PATH, whatever ours says


async def test_cwd_is_honoured(tmp_path: Path) -> None:
    exit_code, chunks = await run(["pwd"], cwd=tmp_path)
    assert exit_code == 0
    assert os.path.realpath(joined(chunks, STDOUT).decode().strip()) == os.path.realpath(tmp_path)


async def test_relative_executable_is_relative_to_cwd(tmp_path: Path) -> None:
    (tmp_path / "bin").mkdir()
    script = tmp_path / "bin" / "here"
    script.write_text("#!/bin/sh\necho here\n")
    script.chmod(0o755)
    exit_code, chunks = await run(["./bin/here"], cwd=tmp_path)
    assert (exit_code, joined(chunks, STDOUT)) == (0, b"here\n")


async def test_missing_cwd_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        await start_process(spec(["true"], cwd=tmp_path / "missing"))


async def test_hostname() -> None:
    exit_code, chunks = await run(["hostname"], hostname="web-0")
    assert exit_code == 0
    printed = joined(chunks, STDOUT).decode().strip()
    if os.geteuid() == 0:
        assert printed == "web-0"
    else:  # no namespace: the host's own name
        assert printed == socket.gethostname()
    assert socket.gethostname() != "web-0"  # the sandbox itself is untouched


async def test_without_hostname_the_host_name_is_seen() -> None:
    _, chunks = await run(["hostname"])
    assert joined(chunks, STDOUT).decode().strip() == socket.gethostname()


# ---- executable errors -------------------------------------------------------------------------


async def test_executable_not_found() -> None:
    with pytest.raises(ExecutableNotFound) as caught:
        await start_process(spec(["nope-no-such-command"]))
    assert str(caught.value) == 'exec: "nope-no-such-command": executable file not found in $PATH'


async def test_executable_errors_use_runc_wording(tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    plain.write_text("not executable\n")
    garbage = tmp_path / "garbage"
    garbage.write_bytes(b"\x7fELF but not really")
    garbage.chmod(0o755)
    cases = {
        str(garbage): f'exec: "{garbage}": exec format error',
        str(plain): f'exec: "{plain}": permission denied',
        str(tmp_path): f'exec: "{tmp_path}": is a directory',
        "/no/such/file": 'exec: "/no/such/file": stat /no/such/file: no such file or directory',
    }
    for argv0, message in cases.items():
        with pytest.raises(ExecutableNotFound) as caught:
            await start_process(spec([argv0]))
        assert str(caught.value) == message


async def test_no_path_means_only_explicit_paths() -> None:
    with pytest.raises(ExecutableNotFound):
        await start_process(spec(["sh"], env={}))
    exit_code, chunks = await run(["/bin/sh", "-c", "echo $PATH; echo ok"], env={})
    assert exit_code == 0 and joined(chunks, STDOUT).endswith(b"ok\n")


# ---- tty -------------------------------------------------------------------------------------


async def test_tty_is_a_pseudo_terminal() -> None:
    exit_code, chunks = await run(["tty"], tty=True)
    assert exit_code == 0
    assert {channel for channel, _ in chunks} == {STDOUT}
    assert re.fullmatch(rb"/dev/pts/\d+\r\n", joined(chunks, STDOUT))


async def test_tty_merges_stderr_into_the_terminal() -> None:
    exit_code, chunks = await run(["sh", "-c", "echo out; echo err >&2"], tty=True)
    assert exit_code == 0
    assert merged(chunks) == [(STDOUT, b"out\r\nerr\r\n")]


async def test_tty_initial_size() -> None:
    _, chunks = await run(["stty", "size"], tty=True)
    assert joined(chunks, STDOUT) == b"24 80\r\n"
    _, chunks = await run(["stty", "size"], tty=True, width=132, height=50)
    assert joined(chunks, STDOUT) == b"50 132\r\n"


async def test_tty_resize() -> None:
    async with started(["sh", "-c", "read line; stty size"], tty=True) as process:
        reader = asyncio.create_task(collect(process))
        process.resize(100, 30)
        await process.write_stdin(b"go\n")
        chunks = await asyncio.wait_for(reader, 5)
        assert await process.wait() == 0
    assert joined(chunks, STDOUT).endswith(b"30 100\r\n")


async def test_tty_close_stdin_sends_eof() -> None:
    async with started(["cat"], tty=True) as process:
        reader = asyncio.create_task(collect(process))
        await process.write_stdin(b"line\npartial")  # EOF must also get past a partial line
        await process.close_stdin()
        chunks = await asyncio.wait_for(reader, 5)
        assert await process.wait() == 0
    output = joined(chunks, STDOUT)
    assert output.startswith(b"line\r\n") and b"partial" in output


async def test_tty_is_the_controlling_terminal() -> None:
    # ^C typed on the terminal reaches the foreground process group only via a ctty.
    async with started(["sh", "-c", "echo ready; exec sleep 1000"], tty=True) as process:
        output = process.read_output()
        assert (await asyncio.wait_for(output.__anext__(), 5))[1].startswith(b"ready")
        await process.write_stdin(b"\x03")
        assert await asyncio.wait_for(process.wait(), 5) == 130
        await asyncio.wait_for(collect_rest(output), 5)


async def test_resize_without_tty_is_a_no_op() -> None:
    async with started(["true"]) as process:
        process.resize(10, 10)
        assert await process.wait() == 0


# ---- background children and kill -------------------------------------------------------------


async def test_background_child_keeps_output_open_until_kill() -> None:
    async with started(["sh", "-c", "sleep 1000 & echo started"]) as process:
        output = process.read_output()
        channel, data = await asyncio.wait_for(output.__anext__(), 5)
        assert (channel, data) == (STDOUT, b"started\n")
        assert await asyncio.wait_for(process.wait(), 5) == 0  # the shell is gone...
        rest = asyncio.create_task(collect_rest(output))
        # An absence: the reader is given a moment in which it must not finish.
        await asyncio.sleep(0.2)
        assert not rest.done()  # ...but sleep still holds stdout
        process.kill()
        assert await asyncio.wait_for(rest, 2) == []


async def collect_rest(output: AsyncIterator[tuple[int, bytes]]) -> list[tuple[int, bytes]]:
    return [chunk async for chunk in output]


async def test_kill_reaches_grandchildren() -> None:
    script = 'sh -c "sleep 1000 & echo \\$!; wait" & wait'
    async with started(["sh", "-c", script]) as process:
        output = process.read_output()
        _, data = await asyncio.wait_for(output.__anext__(), 5)
        grandchild = int(data)
        assert alive(grandchild)
        process.kill()
        assert await asyncio.wait_for(collect_rest(output), 5) == []
        assert await process.wait() == 137
    await await_until(lambda: not alive(grandchild), what="the grandchild was killed")


async def test_aclose_kills_background_jobs() -> None:
    async with started(["sh", "-c", "sleep 1000 >/dev/null 2>&1 & echo $!"]) as process:
        chunks = await asyncio.wait_for(collect(process), 5)
        assert await process.wait() == 0
        background = int(joined(chunks, STDOUT))
        assert alive(background)
    await await_until(lambda: not alive(background), what="the background job was killed")


async def test_aclose_while_reading_in_another_task() -> None:
    process = await start_process(spec(["sh", "-c", "echo hi; exec sleep 1000"]))
    chunks: list[tuple[int, bytes]] = []
    reading = asyncio.Event()

    async def read_all() -> None:
        async for chunk in process.read_output():
            chunks.append(chunk)
            reading.set()

    reader = asyncio.create_task(read_all())
    await asyncio.wait_for(reading.wait(), 30)  # "hi" arrived: the reader waits for more
    await asyncio.wait_for(process.aclose(), 5)
    await asyncio.wait_for(reader, 2)
    assert chunks == [(STDOUT, b"hi\n")]
    assert await process.wait() == 137
    await process.aclose()  # idempotent
    with pytest.raises(ChildProcessError):
        os.waitpid(process.pid, os.WNOHANG)  # noqa: ASYNC222 (no zombie left to reap)


async def test_aclose_while_writing_in_another_task() -> None:
    process = await start_process(spec(["sleep", "1000"]))  # never reads stdin
    writer = asyncio.create_task(process.write_stdin(b"x" * (4 * 1024 * 1024)))
    # 4 MiB never fit in the pipe: the writer blocks; the moment lets it get there.
    await asyncio.sleep(0.2)
    assert not writer.done()  # blocked on the full pipe
    await asyncio.wait_for(process.aclose(), 5)
    await asyncio.wait_for(writer, 2)


async def test_read_output_only_once() -> None:
    async with started(["true"]) as process:
        await collect(process)
        with pytest.raises(RuntimeError):
            await collect(process)


# ---- volume and hygiene ----------------------------------------------------------------------


def cat_read_position(pid: int, path: Path) -> int | None:
    """How far ``cat`` (pid) has read into ``path``; None before it has opened it."""
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            if os.readlink(f"/proc/{pid}/fd/{fd}") == str(path):
                with open(f"/proc/{pid}/fdinfo/{fd}") as info:
                    return int(info.read().split("pos:")[1].split()[0])
        except FileNotFoundError:  # a descriptor closed while the list was read
            continue
    return None


async def test_64_mib_output_is_byte_exact_with_bounded_memory(tmp_path: Path) -> None:
    size = 64 * 1024 * 1024
    data_file = tmp_path / "data"
    digest = hashlib.sha256()
    with data_file.open("wb") as out:
        for _ in range(size // (1024 * 1024)):
            block = os.urandom(1024 * 1024)
            digest.update(block)
            out.write(block)
    async with started(["cat", str(data_file)]) as process:
        # A consumer that does not read: the process must block, not be buffered away.
        # An absence: once cat has the file open (a loaded machine may take a while to get it
        # there), it is given a moment in which it must not read on.
        await await_until(
            lambda: cat_read_position(process.pid, data_file) is not None,
            what="cat opened the file",
        )
        await asyncio.sleep(0.5)
        position = cat_read_position(process.pid, data_file)
        assert position is not None and position < 4 * 1024 * 1024
        received, total, largest = hashlib.sha256(), 0, 0
        async for channel, chunk in process.read_output():
            assert channel == STDOUT
            received.update(chunk)
            total += len(chunk)
            largest = max(largest, len(chunk))
        assert await process.wait() == 0
    assert total == size
    assert largest <= CHUNK_SIZE
    assert received.hexdigest() == digest.hexdigest()


async def test_many_concurrent_processes() -> None:
    async def one(index: int) -> tuple[int, bytes]:
        exit_code, chunks = await run(
            ["sh", "-c", f"echo {index}; exit {index % 3}"], hostname=f"pod-{index}"
        )
        return exit_code, joined(chunks, STDOUT)

    results = await asyncio.gather(*(one(index) for index in range(200)))
    assert results == [(index % 3, f"{index}\n".encode()) for index in range(200)]


async def test_no_descriptor_zombie_or_task_leaks(tmp_path: Path) -> None:
    async def exercise() -> None:
        await run(["sh", "-c", "echo out; echo err >&2"])
        await run(["tty"], tty=True, hostname="leaky")
        with pytest.raises(ExecutableNotFound):
            await start_process(spec(["nope-no-such-command"]))
        async with started(["sh", "-c", "sleep 1000 & sleep 1000"]) as process:
            process.kill()
        async with started(["sleep", "1000"], tty=True):
            pass  # closed while running, output never read
        async with started(["cat"]) as process:
            await process.write_stdin(b"abc")

    await exercise()  # warm-up: lazily initialised state is not a leak
    fds_before = sorted(os.listdir("/proc/self/fd"))
    tasks_before = asyncio.all_tasks()
    # Children already there (an isolated sandbox's pod processes, in the same test run)
    # are not this test's.
    children_before = _children()
    await exercise()
    assert sorted(os.listdir("/proc/self/fd")) == fds_before
    assert asyncio.all_tasks() == tasks_before
    assert _children() <= children_before  # no child left, reaped or not (zombies count)


def _children() -> set[int]:
    """This process's children, zombies included."""
    children = set()
    for name in os.listdir("/proc"):
        try:
            status = Path(f"/proc/{name}/status").read_text() if name.isdigit() else ""
        except (FileNotFoundError, ProcessLookupError):
            continue
        if f"\nPPid:\t{os.getpid()}\n" in status:
            children.add(int(name))
    return children


async def test_hostname_falls_back_silently_without_namespaces(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(runner, "_uts_supported", False)
    exit_code, chunks = await run(["hostname"], hostname="web-0")
    assert exit_code == 0
    assert joined(chunks, STDOUT).decode().strip() == socket.gethostname()


async def test_exit_is_noticed_without_pidfd(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_pidfd(pid: int) -> int:
        raise OSError(38, "Function not implemented")

    monkeypatch.setattr(os, "pidfd_open", no_pidfd)
    exit_code, chunks = await run(["sh", "-c", "echo hi; exit 3"])
    assert (exit_code, joined(chunks, STDOUT)) == (3, b"hi\n")
    async with started(["sleep", "1000"]) as process:
        process.kill()
        assert await asyncio.wait_for(process.wait(), 5) == 137
