"""``%%pod`` in a real IPython kernel, driven over jupyter_client like a notebook front end.

The figures are the kernel process's: CPU time (``/proc/PID/stat``, all its threads) during
the cell, its peak resident memory (``VmHWM``), and the messages it put on IOPub for the cell
(widget comm messages and display messages), counted and sized as JSON.
"""

from __future__ import annotations

import contextlib
import json
import shlex
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .cluster import NAMESPACE, _proc_cpu, proc_status_kib, selector

ROOT = Path(__file__).resolve().parent.parent

SETUP = """
import sys
sys.path.insert(0, {root!r})
%load_ext podmagic
%config PodMagic.kubeconfig = {kubeconfig!r}
%config PodMagic.namespace = {namespace!r}
import podmagic._magics as _bench_magics
_bench_renderers = []
_bench_choose = _bench_magics.choose_renderer
def _bench_record(**kwargs):
    from benchmarks.worker import stamp_updates
    renderer = _bench_choose(**kwargs)
    _bench_renderers.append(renderer)
    renderer._bench_stamps = stamp_updates(renderer) if hasattr(renderer, "_flush_locked") else []
    return renderer
_bench_magics.choose_renderer = _bench_record
"""

WARM_UP = "%pod -l {selector} --no-shell -- true"

DISPLAY_TYPES = {
    "comm_open",
    "comm_msg",
    "comm_close",
    "display_data",
    "update_display_data",
    "clear_output",
    "execute_result",
    "stream",
}


def _execute(client: Any, code: str, timeout: float) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Run ``code``; the IOPub messages it caused and its execute_reply."""
    msg_id = client.execute(code, store_history=False)
    messages: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while True:
        message = client.get_iopub_msg(timeout=max(0.1, deadline - time.monotonic()))
        messages.append(message)
        if (
            message["msg_type"] == "status"
            and message["content"]["execution_state"] == "idle"
            and message["parent_header"].get("msg_id") == msg_id
        ):
            break
    reply = client.get_shell_msg(timeout=timeout)
    if reply["content"]["status"] != "ok":
        raise RuntimeError(f"the kernel failed to run {code[:60]!r}: {reply['content']}")
    return messages, reply


def _printed(messages: list[dict[str, Any]]) -> dict[str, Any]:
    """The JSON object a cell printed last (on stdout), or ``{}``."""
    found: dict[str, Any] = {}
    for message in messages:
        if message["msg_type"] == "stream":
            found = json.loads(message["content"]["text"].strip().splitlines()[-1])
    return found


def _size(message: dict[str, Any]) -> int:
    return len(json.dumps(message["content"], default=str)) + sum(
        len(buffer) for buffer in message.get("buffers") or ()
    )


@contextlib.contextmanager
def _kernel(spec: dict[str, Any]) -> Iterator[tuple[Any, int]]:
    """A new kernel with podmagic loaded and set up (SETUP): its client and process id."""
    from jupyter_client.manager import start_new_kernel

    manager, client = start_new_kernel(kernel_name="python3", startup_timeout=60, cwd=str(ROOT))
    try:
        pid = manager.provisioner.process.pid  # type: ignore[union-attr]
        _execute(
            client,
            SETUP.format(root=str(ROOT), kubeconfig=spec["kubeconfig"], namespace=NAMESPACE),
            60,
        )
        yield client, pid
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)


def run_in_kernel(spec: dict[str, Any]) -> dict[str, Any]:
    with _kernel(spec) as (client, pid):
        _execute(client, WARM_UP.format(selector=selector(1)), 60)
        _execute(client, "_bench_renderers.clear()", 60)
        quiet = " -q" if spec["contender"] == "kernel-quiet" else ""
        cell = (
            f"%%pod -l {selector(spec['pods'])} --yes --no-shell "
            f"-P {spec['concurrency']} -o _bench_res{quiet}\n{shlex.join(spec['argv'])}\n"
        )
        cpu_start = _proc_cpu(pid)
        rss_start = proc_status_kib(pid, "VmRSS") / 1024
        started = time.perf_counter()
        messages, _ = _execute(client, cell, 3600)
        wall = time.perf_counter() - started
        cpu = _proc_cpu(pid) - cpu_start
        peak = proc_status_kib(pid, "VmHWM") / 1024
        summary_code = (
            "import json as _j\n"
            "from benchmarks.worker import max_in_window as _mw\n"
            "_r = _bench_renderers[-1] if _bench_renderers else None\n"
            "_res = _bench_res\n"
            "print(_j.dumps({'updates_sent': getattr(_r, 'updates_sent', 0),"
            " 'max_updates_1s': _mw(getattr(_r, '_bench_stamps', []), 1.0),"
            " 'ok': sum(1 for r in _res if r.exit_code == 0),"
            " 'bytes': sum(len(r.stdout) + r.stdout_dropped for r in _res)}))"
        )
        after, _ = _execute(client, summary_code, 60)
        stats = _printed(after)
        shown = [m for m in messages if m["msg_type"] in DISPLAY_TYPES]
        comm_msgs = [m for m in shown if m["msg_type"] == "comm_msg"]
        return {
            "wall_s": wall,
            "cpu_s": cpu,
            "rss_peak_mib": peak,
            "rss_growth_mib": max(0.0, peak - rss_start),
            "ok": stats.get("ok", 0),
            "bytes": stats.get("bytes", 0),
            "updates_sent": stats.get("updates_sent", 0),
            "updates_per_s": stats.get("updates_sent", 0) / wall,
            "max_updates_1s": stats.get("max_updates_1s", 0),
            "comm_messages": len(comm_msgs),
            "comm_bytes": sum(_size(m) for m in comm_msgs),
            "display_messages": len(shown),
            "display_bytes": sum(_size(m) for m in shown),
        }


#: Each cell's own time and the kernel's CPU during it, measured inside the kernel from
#: IPython's pre/post_run_cell events (the front end's messaging is not in it).
TIME_CELLS = """
import time as _bench_time
_bench_cells = []
_bench_done = []
def _bench_pre(info):
    _bench_cells.append([_bench_time.perf_counter(), _bench_time.process_time()])
def _bench_post(result):
    if not _bench_cells:
        return  # the end of this very cell, which began before the hooks were in place
    cell = _bench_cells[-1]
    cell[0] = _bench_time.perf_counter() - cell[0]
    cell[1] = _bench_time.process_time() - cell[1]
    _bench_done.append(result.result)
get_ipython().events.register("pre_run_cell", _bench_pre)
get_ipython().events.register("post_run_cell", _bench_post)
"""

STOP_TIMING = """
get_ipython().events.unregister("pre_run_cell", _bench_pre)
get_ipython().events.unregister("post_run_cell", _bench_post)
import json as _j
print(_j.dumps({
    "cells": _bench_cells[:-1],
    "ok": sum(r.exit_code == 0 for rs in _bench_done for r in rs),
    "bytes": sum(len(r.stdout) + r.stdout_dropped for rs in _bench_done for r in rs),
}))
"""


def runs_in_kernel(spec: dict[str, Any]) -> dict[str, Any]:
    """``spec["runs"]`` cells of ``%pod POD -- argv`` in a row, each as a notebook runs it."""
    from .cluster import pod_name
    from .worker import per_run

    with _kernel(spec) as (client, pid):
        quiet = " -q" if spec["contender"] == "kernel-quiet" else ""
        cell = f"%pod {pod_name(0)} --no-shell{quiet} -- {shlex.join(spec['argv'])}"
        _execute(client, cell.replace(shlex.join(spec["argv"]), "true"), 60)  # warm, untimed
        _execute(client, TIME_CELLS, 60)
        rounds: list[float] = []
        cpu_start = _proc_cpu(pid)
        rss_start = proc_status_kib(pid, "VmRSS") / 1024
        started = time.perf_counter()
        for _ in range(spec["runs"]):
            began = time.perf_counter()
            _execute(client, cell, 120)
            rounds.append(time.perf_counter() - began)
        wall = time.perf_counter() - started
        cpu = _proc_cpu(pid) - cpu_start
        peak = proc_status_kib(pid, "VmHWM") / 1024
        after, _ = _execute(client, STOP_TIMING, 60)
        stats = _printed(after)
        cells = stats.get("cells", [])
        return {
            "wall_s": wall,
            "cpu_s": cpu,
            "rss_peak_mib": peak,
            "rss_growth_mib": max(0.0, peak - rss_start),
            **per_run([c[0] for c in cells], [c[1] for c in cells]),
            **per_run(rounds, [], prefix="cell"),
            "ok": stats.get("ok", 0),
            "bytes": stats.get("bytes", 0),
        }
