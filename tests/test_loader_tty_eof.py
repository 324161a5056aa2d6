"""With a terminal and no stdin, the stdin loader's script reads EOF as ``sh -c`` does, on
both channel protocols (v4 cannot close stdin at all, so EOF there is the terminal's ^D)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import anyio
import pytest

from podmagic._command import build_command
from podmagic._credentials import load_credentials
from podmagic._kubeapi import KubeApi
from podmagic._transport import V4, V5, ExecOutcome, ExecSpec, run_exec
from podmagic.sandbox import Sandbox

pytestmark = pytest.mark.anyio


@pytest.fixture
async def api(sandbox: Sandbox) -> AsyncIterator[KubeApi]:
    async with KubeApi(load_credentials(kubeconfig=sandbox.kubeconfig)) as client:
        yield client


async def run_on_tty(api: KubeApi, script: str, env: dict[str, str], protocol: str) -> ExecOutcome:
    command = build_command(script=script, env=env)
    spec = ExecSpec("conf", "solo", "main", command.argv, stdin=command.stdin, tty=True)
    # Bounded: before the fix the loader's script waited for input that never came.
    with anyio.fail_after(30):
        return await run_exec(api, spec, subprotocols=[protocol])


@pytest.mark.parametrize("protocol", [V5, V4])
@pytest.mark.parametrize(
    "script", ['read x; echo "got[$x]"', "cat; echo end", "[ -t 0 ] && echo tty || echo notty"]
)
async def test_tty_loader_without_stdin_reads_eof_on_each_protocol(
    api: KubeApi, protocol: str, script: str
) -> None:
    inline = await run_on_tty(api, script, {}, protocol)
    loaded = await run_on_tty(api, script, {"V": "1"}, protocol)
    assert build_command(script=script, env={"V": "1"}).via_stdin
    assert inline.protocol == loaded.protocol == protocol
    assert inline.exit_code == 0
    assert (loaded.exit_code, loaded.stdout) == (inline.exit_code, inline.stdout)
