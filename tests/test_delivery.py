"""Scripts reach the pod byte for byte, whatever their size, with or without -t and env.

The property test runs scripts from a few bytes to 1 MiB through the sandbox (real shells on
real pseudo-terminals) and checks every delivery path — ``sh -c`` in the URL, the stdin loader
without a terminal, the loader on a terminal — against one oracle: the script prints the
checksum of a long literal it carries, then ends in a tail (trailing backslashes, newlines,
``exit``, ``set -e`` ...) whose output and exit code come from running that tail alone as
``SHELL -c TAIL`` on this machine. The named tests are the reproductions from issue 9.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from podmagic._client import Cluster
from podmagic._command import INLINE_SCRIPT_LIMIT
from podmagic._results import ExecStatus, PodResult
from podmagic.sandbox import Sandbox

SECRET = "hunter2-Zq9sEcReT"
MARKER_START = b"\x1b_podmagic"

NAMESPACE = "delivery"
MANIFEST = f"""
apiVersion: v1
kind: Namespace
metadata:
  name: {NAMESPACE}
---
apiVersion: v1
kind: Pod
metadata:
  name: box
  namespace: {NAMESPACE}
spec:
  containers:
    - name: main
      image: busybox:1.36
      volumeMounts: [{{name: shells, mountPath: SHELLS}}]
  # The folder of the ash link, at the same path (an isolated pod sees no host folder else).
  volumes: [{{name: shells, hostPath: {{path: SHELLS}}}}]
---
# A container whose PATH finds no stty (the shell itself is given by its full path).
apiVersion: v1
kind: Pod
metadata:
  name: no-stty
  namespace: {NAMESPACE}
spec:
  containers:
    - name: main
      image: distroless
      env:
        - {{name: PATH, value: /nonexistent}}
"""


@pytest.fixture(scope="module")
def cluster(sandbox: Sandbox, shells: dict[str, str]) -> Iterator[Cluster]:
    sandbox.apply(MANIFEST.replace("SHELLS", shells["ash"].rsplit("/", 1)[0]))
    yield Cluster(kubeconfig=sandbox.kubeconfig, namespace=NAMESPACE)
    assert sandbox.cluster is not None
    sandbox.call(sandbox.cluster.delete_namespace, NAMESPACE)


@pytest.fixture(scope="module")
def shells(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Name → path of every shell a pod may have as /bin/sh (busybox's as an ``ash`` link)."""
    found = {name: shutil.which(name) for name in ("dash", "bash", "mksh", "zsh")}
    busybox = shutil.which("busybox")
    if busybox:
        link = tmp_path_factory.mktemp("shells") / "ash"
        link.symlink_to(busybox)
        found["ash"] = str(link)
    missing = [name for name, path in found.items() if path is None]
    assert not missing, f"install the shells {missing} (Debian packages) to run these tests"
    return {name: str(path) for name, path in found.items()}


def one(results: object) -> PodResult:
    [result] = list(results)  # type: ignore[call-overload]
    assert isinstance(result, PodResult)
    return result


def terminal_text(data: bytes) -> bytes:
    """Output as written, before the terminal turned each newline into CR LF."""
    return data.replace(b"\r\n", b"\n")


def assert_nothing_of_ours(result: PodResult, *secrets: str) -> None:
    """No env value, no export line, no loader marker anywhere the user can see."""
    views = [
        result.stdout,
        result.stderr,
        str(result).encode(),
        repr(result).encode(),
        (result.error or "").encode(),
    ]
    for view in views:
        assert MARKER_START not in view
        assert b"export " not in view
        for secret in secrets:
            assert secret.encode() not in view


# -- the reproductions ----------------------------------------------------------------


def test_tty_script_over_4_kib_runs_whole(cluster: Cluster) -> None:
    script = "echo start; " + "true; " * 1000 + "echo end"
    result = one(cluster.run(script, "box", tty=True, timeout=60))
    assert (result.status, result.exit_code) == (ExecStatus.OK, 0)
    assert result.stdout == b"start\r\nend\r\n"


def test_tty_script_over_4_kib_ending_in_rm_removes_only_junk(cluster: Cluster) -> None:
    junk = "junk-" + "j" * 60
    setup = one(
        cluster.run(f"rm -rf keep; mkdir -p keep/{junk} && echo precious > keep/file", "box")
    )
    assert setup.ok
    # Before the fix the terminal cut the loader's one line at 4095 bytes: here, right after
    # "./keep/", so `rm -rf ./keep/` ran and reported success.
    loader_prefix = len("unset __podmagic_script\\nexec </dev/null\\n")
    head = "echo cleaning\n# "
    padding = 4095 - loader_prefix - len(head) - 2 - len("rm -rf ./keep/")
    script = head + "p" * padding + "\nrm -rf ./keep/" + junk
    assert len(script.encode()) > INLINE_SCRIPT_LIMIT
    result = one(cluster.run(script, "box", tty=True, timeout=60))
    assert (result.status, result.stdout) == (ExecStatus.OK, b"cleaning\r\n")
    left = one(cluster.run("ls keep", "box"))
    assert left.stdout == b"file\n"


def test_tty_with_env_echoes_no_secret_and_no_export(cluster: Cluster) -> None:
    results = cluster.run("echo done", "box", tty=True, env={"DB_PASSWORD": "hunter2"}, timeout=60)
    result = one(results)
    assert (result.status, result.stdout) == (ExecStatus.OK, b"done\r\n")
    assert_nothing_of_ours(result, "hunter2")
    frame = results.to_dataframe()
    html = results._repr_html_()
    for text in (frame.to_csv(), html, str(results), repr(results)):
        assert "hunter2" not in text and "export" not in text


def test_pod_magic_tty_env_shows_no_secret(sandbox: Sandbox, cluster: Cluster) -> None:
    from IPython.core.interactiveshell import InteractiveShell

    ip = InteractiveShell.instance()
    ip.run_line_magic("load_ext", "podmagic")
    magic = ip.magics_manager.registry["PodMagic"]
    saved = {name: getattr(magic, name) for name in ("kubeconfig", "context", "namespace", "quiet")}
    magic.kubeconfig, magic.context, magic.namespace, magic.quiet = (
        str(sandbox.kubeconfig),
        None,
        NAMESPACE,
        True,
    )
    try:
        assert ip.run_line_magic("pod", "box -t -e DB_PASSWORD=hunter2 -o r -- echo done") is None
    finally:
        for name, value in saved.items():
            setattr(magic, name, value)
    results = ip.user_ns["r"]
    assert one(results).stdout == b"done\r\n"
    for text in (results.to_dataframe().to_csv(), results._repr_html_(), str(results)):
        assert "hunter2" not in text and "export" not in text


@pytest.mark.parametrize("tty", [False, True])
def test_script_ending_in_backslash_newline_runs_the_same_with_env(
    cluster: Cluster, tty: bool
) -> None:
    script = "printf '%s|' one two\\\n"
    plain = one(cluster.run(script, "box", tty=tty, timeout=60))
    with_env = one(cluster.run(script, "box", tty=tty, env={"A": "1"}, timeout=60))
    assert plain.stdout == with_env.stdout == b"one|two|"
    assert plain.exit_code == with_env.exit_code == 0


def test_many_trailing_newlines_reach_a_here_doc_with_env(cluster: Cluster) -> None:
    script = "cat <<'E'\nhi\n\n\n"  # the here-doc ends at the end of the script
    plain = one(cluster.run(script, "box", timeout=60))
    with_env = one(cluster.run(script, "box", env={"A": "1"}, timeout=60))
    assert plain.stdout == with_env.stdout == b"hi\n\n\n"


def test_script_over_128_kib_runs_under_a_shell_without_printf_builtin(
    cluster: Cluster, shells: dict[str, str]
) -> None:
    # mksh runs /usr/bin/printf, and one argument may not exceed 128 KiB.
    literal = "x" * (200 * 1024)
    script = f"cat <<'E' | md5sum\n{literal}\nE\n"
    result = one(cluster.run(script, "box", shell=shells["mksh"], timeout=60))
    expected = hashlib.md5((literal + "\n").encode()).hexdigest()
    assert (result.exit_code, result.stdout) == (0, f"{expected}  -\n".encode())


def test_tty_without_stty_runs_nothing_and_says_why(cluster: Cluster) -> None:
    # This container has no rm either: the file is made only if the script runs.
    # The wait for the loader's marker ends with the exec: the timeout is only a backstop.
    result = one(
        cluster.run(
            "echo ran > ran", "no-stty", tty=True, env={"A": SECRET}, shell="/bin/sh", timeout=60
        )
    )
    assert (result.status, result.exit_code) == (ExecStatus.FAILED, 125)
    assert result.stdout.strip() == (
        b"podmagic: -t with --env, --stdin or a script over 4 KiB needs stty "
        b"in the container; nothing of the script ran"
    )
    assert_nothing_of_ours(result, SECRET)
    check = one(cluster.run("[ -e ran ] && echo ran || echo not-ran", "no-stty"))
    assert check.stdout == b"not-ran\n"


@pytest.mark.parametrize("env", [{}, {"A": "1"}])
def test_tty_user_stdin_reaches_the_script_as_with_sh_c(
    cluster: Cluster, env: dict[str, str]
) -> None:
    script = "cat; echo end"
    reference = one(cluster.run(script, "box", tty=True, stdin=b"hello\n", timeout=60))
    long = one(
        cluster.run(
            script + "\n#" + "p" * INLINE_SCRIPT_LIMIT,
            "box",
            tty=True,
            stdin=b"hello\n",
            env=env,
            timeout=60,
        )
    )
    assert reference.ok and long.ok
    # cat prints what it read; the terminal does not echo it (tests/test_tty_stdin_echo.py):
    # the same through both paths.
    assert reference.stdout == long.stdout == b"hello\r\nend\r\n"


@pytest.mark.parametrize("tty", [False, True])
def test_stdin_of_the_script_is_what_sh_c_gives_it(cluster: Cluster, tty: bool) -> None:
    probe = "if [ -t 0 ]; then echo terminal; else echo none; cat; fi"
    inline = one(cluster.run(probe, "box", tty=tty, timeout=60))
    loaded = one(cluster.run(probe, "box", tty=tty, env={"A": "1"}, timeout=60))
    assert inline.stdout == loaded.stdout == (b"terminal\r\n" if tty else b"none\n")


TTY_STDIN_PROBES = ['read x; echo "got[$x]"', "cat; echo end", "[ -t 0 ] && echo tty || echo notty"]


@pytest.mark.parametrize("probe", TTY_STDIN_PROBES)
def test_tty_with_env_and_no_stdin_reads_eof_like_sh_c(cluster: Cluster, probe: str) -> None:
    # With -t and no stdin given, `sh -c` gets a terminal nobody types into but whose first
    # read ends at once (the server sends the terminal's EOF). The loader path, taken for env
    # or a long script, must give the script the same: a terminal, and EOF on reading it.
    inline = one(cluster.run(probe, "box", tty=True, timeout=30))
    with_env = one(cluster.run(probe, "box", tty=True, env={"V": "1"}, timeout=30))
    long = one(cluster.run(probe + "\n#" + "p" * INLINE_SCRIPT_LIMIT, "box", tty=True, timeout=30))
    assert inline.status is ExecStatus.OK, inline
    for loaded in (with_env, long):
        assert (loaded.status, loaded.exit_code, loaded.stdout) == (
            inline.status,
            inline.exit_code,
            inline.stdout,
        ), probe
        assert_nothing_of_ours(loaded)


# -- the marker on the client side ------------------------------------------------------------


def test_ready_marker_split_across_frames_is_found_and_removed() -> None:
    from podmagic._transport import READY_MARKER, _Collector

    seen: list[bytes] = []
    collector = _Collector(None, lambda channel, chunk: seen.append(chunk), markers=2)
    stream = b"before" + READY_MARKER + b"middle" + READY_MARKER + b"after" + READY_MARKER
    for index in range(len(stream)):  # one byte per frame: every possible split
        collector.feed(b"\x01" + stream[index : index + 1])
        if index == len(b"before" + READY_MARKER) - 2:
            assert not collector.ready[0].is_set()
    assert all(event.is_set() for event in collector.ready)
    collector.feed(b'\x03{"status": "Success"}')
    outcome = collector.outcome("v5.channel.k8s.io")
    # Only the two markers the loader prints are podmagic's; a third is the script's output.
    assert outcome.stdout == b"".join(seen) == b"beforemiddleafter" + READY_MARKER


def test_output_that_only_looks_like_a_marker_start_is_kept() -> None:
    from podmagic._transport import READY_MARKER, _Collector

    collector = _Collector(None, None, markers=2)
    collector.feed(b"\x01out" + READY_MARKER[:5])
    assert collector.feed(b'\x03{"status": "Success"}')
    assert collector.outcome("v5.channel.k8s.io").stdout == b"out" + READY_MARKER[:5]
    assert not collector.ready[0].is_set()


# -- the property: every path, same behaviour -------------------------------------------------

#: Endings whose output and exit code are checked against `SHELL -c TAIL`; none writes to
#: stderr (with a terminal, stderr is mixed into stdout, and shells word their errors
#: differently inside eval).
TAILS = [
    "",
    "\n",
    "\n\n\n\n\n",
    "printf '%s|' one two\\\n",
    "printf '%s|' one two \\\n\n\n",
    "printf '%s|' \\\\\\\\\n",
    "printf '%s|' 'a\\' b\\",
    "printf '%s|' b\\\\",
    'printf \'<%s>\' "$0" "$#"',
    "printf '%s\\r\\n' crlf\r\n",
    "cat <<'E'\nhere\n\nE",
    "exit 3",
    "exit 4\n\n",
    "set -e; false; echo not-reached",
    "f() { return 7; }; f",
    # No stdin was given: every path reads EOF at once, as `sh -c` does from /dev/null.
    'read x; echo "got[$x]"',
    "cat; echo end",
]

#: Script sizes around the terminal's line limit, the URL limit, the payload line size, the
#: 128 KiB argument limit, and up to 1 MiB.
SIZES = [
    1,
    60,
    4094,
    4095,
    4096,
    INLINE_SCRIPT_LIMIT + 1,
    16383,
    16385,
    70_000,
    140_000,
    1024 * 1024,
]

#: Literal text: ASCII, backslashes, CR, non-ASCII, and the bytes a terminal would act on
#: in its normal mode (^C, ^D, ^O, ^Q, ^R, ^S, ^U, ^V, ^W, ^Z, ^\, DEL, ESC).
ALPHABET = "ab \\\r\té漢🙂\x03\x04\x0f\x11\x12\x13\x15\x16\x17\x1a\x1c\x7f\x1b$'\"`"


def reference(shell: str, tail: str) -> tuple[int, bytes]:
    """Exit code and stdout of the tail alone, run as ``SHELL -c TAIL`` here."""
    done = subprocess.run(
        [shell, "-c", "true\n" + tail],
        capture_output=True,
        timeout=30,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    assert done.stderr == b"", (shell, tail, done.stderr)
    return done.returncode, done.stdout


def build_script(
    size: int, tail: str, unit: str, *, long_lines: bool, counts: Iterator[int]
) -> tuple[str, bytes]:
    """``(script, first output line)``: a checksummed literal grown to ``size`` bytes, then
    ``tail``; scripts too small for the literal print one word instead."""
    head = "cat <<'PODMAGIC_END' | md5sum\n"
    foot = "\nPODMAGIC_END\n"
    room = size - len((head + foot + tail).encode())
    if room <= 0:
        return "printf '%s\\n' short\n" + tail, b"short\n"
    lines = []
    length = 0
    while length < room:
        line = unit * (5000 // len(unit) + 1) if long_lines else unit * next(counts)
        lines.append(line)
        length += len(line.encode()) + 1
    literal = "\n".join(lines).encode()[:room].decode(errors="ignore").rstrip("\n") or "x"
    checksum = hashlib.md5((literal + "\n").encode()).hexdigest().encode() + b"  -\n"
    return head + literal + foot + tail, checksum


@st.composite
def scripts(draw: st.DrawFn) -> tuple[str, str, bytes]:
    """``(script, tail, first output line)`` of any size up to 1 MiB."""
    size = draw(st.sampled_from(SIZES) | st.integers(1, 9000))
    tail = draw(st.sampled_from(TAILS))
    unit = draw(st.text(alphabet=ALPHABET, min_size=1, max_size=40))
    long_lines = draw(st.booleans())
    counts = iter(lambda: draw(st.integers(1, 8)), None)
    script, first = build_script(size, tail, unit, long_lines=long_lines, counts=counts)
    return script, tail, first


def check_run(
    cluster: Cluster, shell: str, script: str, tail: str, first: bytes, *, tty: bool, env: bool
) -> None:
    """Run ``script`` one way and compare with the oracle."""
    code, rest = reference(shell, tail)
    secrets = {"PODMAGIC_SECRET": SECRET} if env else {}
    result = one(cluster.run(script, "box", shell=shell, tty=tty, env=secrets, timeout=120))
    output = terminal_text(result.stdout) if tty else result.stdout
    assert (result.exit_code, output) == (code, first + rest)
    if not tty:
        assert result.stderr == b""
    assert result.stdout_dropped == 0
    assert_nothing_of_ours(result, SECRET)


PATHS = pytest.mark.parametrize(
    ("tty", "env"), [(False, False), (False, True), (True, False), (True, True)]
)


@PATHS
@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.function_scoped_fixture,
    ],
)
@given(case=scripts(), shell=st.sampled_from(["dash", "bash", "ash", "mksh", "zsh"]))
@example(case=("echo start; " + "true; " * 1000 + "echo end", "", b"start\nend\n"), shell="dash")
@example(case=("printf '%s|' one two\\\n", "printf '%s|' one two\\\n", b""), shell="dash")
def test_every_path_runs_the_same_script(
    cluster: Cluster,
    shells: dict[str, str],
    tty: bool,
    env: bool,
    case: tuple[str, str, bytes],
    shell: str,
) -> None:
    script, tail, first = case
    size = len(script.encode())
    event(
        "size " + next(f"<= {limit}" for limit in (64, 4096, 16384, 131072, 2**21) if size <= limit)
    )
    check_run(cluster, shells[shell], script, tail, first, tty=tty, env=env)


@PATHS
@pytest.mark.parametrize("size", SIZES)
def test_every_path_at_each_boundary_size(
    cluster: Cluster, shells: dict[str, str], size: int, tty: bool, env: bool
) -> None:
    tail = "printf '%s|' one two\\\n"
    script, first = build_script(
        size, tail, ALPHABET + "\n", long_lines=size % 2 == 1, counts=iter(lambda: 3, None)
    )
    assert abs(len(script.encode()) - size) <= 4 or size < 100
    check_run(cluster, shells["dash"], script, tail, first, tty=tty, env=env)


@pytest.mark.parametrize("script", ["", " ", "\n\n", "\t\n"])
@pytest.mark.parametrize("tty", [False, True])
@pytest.mark.parametrize("env", [False, True])
def test_empty_script_is_refused_on_every_path(
    cluster: Cluster, script: str, tty: bool, env: bool
) -> None:
    with pytest.raises(ValueError, match="empty command"):
        cluster.run(script, "box", tty=tty, env={"A": "1"} if env else None)


def test_env_reaches_the_script_on_a_terminal(cluster: Cluster) -> None:
    value = "s p\\a\nc\re'\"$x\x03\x16é" * 300  # long, with what a terminal would act on
    result = one(
        cluster.run('printf %s "$V" | md5sum', "box", tty=True, env={"V": value}, timeout=60)
    )
    expected = hashlib.md5(value.encode()).hexdigest()
    assert (result.exit_code, result.stdout) == (0, f"{expected}  -\r\n".encode())
    assert_nothing_of_ours(result, value[:20])


def test_workdir_path_still_applies(cluster: Cluster) -> None:
    result = one(cluster.run("pwd", "box", tty=True, workdir="/tmp", env={"A": "1"}, timeout=60))
    assert terminal_text(result.stdout).endswith(b"/tmp\n")


#: Scripts where eval and `sh -c` might part ways: syntax errors (here and at the end), special
#: built-ins at the top level, $0 and $#, aliases, traps.
EDGE_SCRIPTS = [
    "echo a\nif",
    "echo a; if",
    "echo a\n)",
    "echo a\ncase x in",
    "echo a\n'unterminated",
    "echo a\n`",
    "echo a\nfi\necho b",
    "echo a\n${",
    'echo "$0" $#',
    "return 3",
    "echo a\nreturn 3\necho b",
    "break; echo a",
    "alias e=echo\ne hi",
    "local x=1; echo $x",
    "trap 'echo bye' EXIT; echo a",
    "shift; echo $?",
    "set -u; echo $undefined_variable; echo b",
    "exec echo replaced",
    "set -e\nfalse\necho not-reached",
]


@pytest.mark.parametrize("shell", ["dash", "bash", "ash", "mksh", "zsh"])
def test_edge_scripts_behave_as_with_sh_c(
    cluster: Cluster, shells: dict[str, str], shell: str
) -> None:
    # Shells word their error messages differently inside eval ("eval: line 2"), so the
    # comparison is of exit codes and stdout; whether stderr was written is the same too.
    for script in EDGE_SCRIPTS:
        inline = one(cluster.run(script, "box", shell=shells[shell], timeout=60))
        loaded = one(cluster.run(script, "box", shell=shells[shell], env={"A": "1"}, timeout=60))
        assert (loaded.exit_code, loaded.stdout) == (inline.exit_code, inline.stdout), script
        assert bool(loaded.stderr) == bool(inline.stderr), script
