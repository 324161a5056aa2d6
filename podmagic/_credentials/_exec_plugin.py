"""Exec credential plugins, run the way kubectl runs them: the one job here is the plugin
runner.

Not the package's ``ExecProvider``: that one has no time limit, no ``interactiveMode``, takes
"interactive" from stdout rather than stdin, sends the cluster entry as written (a
``certificate-authority`` path, not its data) as ``spec.cluster``, and its loader runs the
plugin while loading and logs its stderr. Here the plugin runs lazily (through
:class:`~podmagic._credentials._refresh.RefreshingAuth`), with ``KUBERNETES_EXEC_INFO``, is
stopped with everything it started after ``plugin_timeout``, and fails with one line that
names it; its output and environment never reach a message, but for the first line of a
failing plugin's stderr, cut short and with anything that looks like a credential blanked
(:func:`~podmagic._credentials._redact.blank_credentials`): errors end up in results and
saved notebooks, where kubectl would only have shown the plugin's stderr on a terminal.
"""

from __future__ import annotations

import base64
import datetime as _dt
import json
import logging
import os
import signal
import subprocess
import sys
from collections.abc import Mapping
from typing import Any

from kubernetes.config.dateutil import parse_rfc3339

from podmagic._errors import ConfigError

from ._redact import Redactor, blank_credentials, first_line, one_line
from ._refresh import RefreshingAuth

__all__ = ["DEFAULT_PLUGIN_TIMEOUT", "ExecAuth", "exec_cluster_info"]

log = logging.getLogger(__name__)


#: Seconds an exec credential plugin may run (a browser login included) before it is stopped.
DEFAULT_PLUGIN_TIMEOUT = 60.0

#: The characters of a failed plugin's first stderr line that an error quotes.
_STDERR_SHOWN = 200

_EXEC_API_VERSIONS = (
    "client.authentication.k8s.io/v1",
    "client.authentication.k8s.io/v1beta1",
)


def _seconds(value: float | None) -> str:
    """A number of seconds as the user gave it (see :func:`podmagic._kubeapi.format_seconds`)."""
    from podmagic._kubeapi import format_seconds  # here: kubeapi's types refer to this module

    return format_seconds(value) if value is not None else "no limit"


class ExecAuth(RefreshingAuth):
    """A token from an exec credential plugin, run the way kubectl runs it (the module
    docstring says why not by the package's ``ExecProvider``)."""

    kind = "exec"

    def __init__(
        self,
        exec_config: Mapping[str, Any],
        *,
        user: str,
        base_path: str,
        cluster_info: dict[str, Any] | None,
        redact: Redactor,
        timeout: float | None = DEFAULT_PLUGIN_TIMEOUT,
    ) -> None:
        super().__init__()
        self._timeout = timeout
        self._user = user
        self._cluster_info = cluster_info
        self._redact = redact
        self._proc: subprocess.Popen[bytes] | None = None

        def invalid(why: str, hint: str = "fix the kubeconfig") -> ConfigError:
            return ConfigError(f'the exec section of user "{user}" is invalid ({why})', hint=hint)

        for key in ("command", "apiVersion"):
            if not exec_config.get(key):
                raise invalid(f"missing key {key!r}")
        self.api_version = str(exec_config["apiVersion"])
        if self.api_version not in _EXEC_API_VERSIONS:
            raise ConfigError(
                f'the exec plugin of user "{user}" uses apiVersion "{self.api_version}", which '
                "is not supported",
                hint=f"use {' or '.join(_EXEC_API_VERSIONS)}",
            )
        self._mode = str(exec_config.get("interactiveMode") or "IfAvailable")
        if self._mode not in ("Never", "IfAvailable", "Always"):
            raise ConfigError(
                f'the exec plugin of user "{user}" has interactiveMode "{self._mode}"',
                hint="use Never, IfAvailable or Always",
            )
        args, entries = exec_config.get("args") or [], exec_config.get("env") or []
        if not (isinstance(args, list) and isinstance(entries, list)) or not all(
            isinstance(entry, Mapping) for entry in entries
        ):
            raise invalid("args and env must be lists; env entries need a name and a value")
        missing = next((k for entry in entries for k in ("name", "value") if k not in entry), "")
        if missing:
            raise invalid(f"missing key {missing!r}")
        self._env: dict[str, str] = {entry["name"]: entry["value"] for entry in entries}
        command = exec_config["command"]
        if not (
            isinstance(command, str)
            and all(isinstance(arg, str) for arg in args)
            and all(isinstance(k, str) and isinstance(v, str) for k, v in self._env.items())
        ):
            raise invalid(
                "command, args and env values must be strings", hint="quote them in the kubeconfig"
            )
        self._args: list[str] = list(args)
        # client-go resolves a command containing a path separator against the kubeconfig's
        # folder; a bare name is looked up on PATH. The plugin runs in the current folder.
        if os.sep in command and not os.path.isabs(command):
            command = os.path.normpath(os.path.join(base_path, command))
        self._command = command
        self._install_hint = first_line(str(exec_config.get("installHint") or ""))

    def describe(self) -> str:
        name = os.path.basename(self._command) or self._command
        return f'exec credential plugin "{name}" of user "{self._user}"'

    @staticmethod
    def _stdin_is_terminal() -> bool:
        try:
            return sys.stdin is not None and sys.stdin.isatty()
        except (AttributeError, ValueError, OSError):
            return False

    def _abort(self) -> None:
        with self._mutex:
            self._aborted = True
            proc = self._proc
        if proc is not None:
            _kill_plugin(proc)

    def _fetch(self) -> tuple[str, _dt.datetime | None, float | None]:
        interactive = self._mode != "Never" and self._stdin_is_terminal()
        if self._mode == "Always" and not interactive:
            raise ConfigError(
                f"the {self.describe()} needs an interactive terminal (interactiveMode: Always)",
                hint="log in from a terminal first or change interactiveMode",
            )
        info: dict[str, Any] = {
            "apiVersion": self.api_version,
            "kind": "ExecCredential",
            "spec": {"interactive": interactive},
        }
        if self._cluster_info is not None:
            info["spec"]["cluster"] = self._cluster_info
        # The environment as of now, like a fresh kubectl process, plus the kubeconfig's.
        env = {**os.environ, **self._env, "KUBERNETES_EXEC_INFO": json.dumps(info)}
        try:
            proc = subprocess.Popen(
                [self._command, *self._args],
                stdin=None if interactive else subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                # Interactive plugins prompt on stderr, so it stays on the terminal then.
                stderr=None if interactive else subprocess.PIPE,
                env=env,
                # Its own session, so that stopping it stops what it started too (a shell
                # script's children would otherwise keep its output pipe open). Not for an
                # interactive plugin: it must keep the terminal to prompt on.
                start_new_session=not interactive,
            )
        except FileNotFoundError:
            hint = f" ({self._install_hint})" if self._install_hint else ""
            raise ConfigError(
                f"the {self.describe()} was not found{hint}",
                hint="install it or fix users[].user.exec.command in the kubeconfig",
            ) from None
        except OSError as exc:
            raise ConfigError(
                f"cannot start the {self.describe()} ({exc.strerror or type(exc).__name__})",
                hint="check users[].user.exec.command in the kubeconfig",
            ) from None
        with self._mutex:
            self._proc = proc
            aborted = self._aborted
        if aborted:
            _kill_plugin(proc)
        try:
            stdout, stderr = proc.communicate(timeout=self._timeout)
        except subprocess.TimeoutExpired:
            _stop_plugin(proc)
            raise ConfigError(
                f"the {self.describe()} did not finish within {_seconds(self._timeout)}s and was "
                "stopped",
                hint="run it by hand to see what it waits for (a login, the network); if it "
                "needs longer, raise plugin_timeout (Cluster(plugin_timeout=...), "
                "%config PodMagic.plugin_timeout)",
            ) from None
        finally:
            with self._mutex:
                self._proc = None
        if proc.returncode != 0:
            detail = self._stderr_line(stderr) if stderr else ""
            if not detail and interactive:
                detail = "see its messages above"
            detail = f": {detail}" if detail else ""
            raise ConfigError(
                f"the {self.describe()} failed with exit code {proc.returncode}{detail}",
                hint="fix the plugin's login; this shows only the first line of its stderr, "
                "anything like a credential blanked: run its command "
                "(users[].user.exec in the kubeconfig) in a terminal to see all it says",
            )
        if stderr:
            log.debug("%s wrote to stderr: %s", self.describe(), self._stderr_line(stderr))
        return self._parse(stdout)

    def _stderr_line(self, stderr: bytes) -> str:
        """What a message may say of the plugin's stderr: its first line, cut short, with the
        kubeconfig's secrets and anything that looks like a credential blanked. The rest stays
        out of errors, results and saved notebooks (kubectl shows a plugin's stderr on the
        terminal only, never in what it saves)."""
        line = first_line(stderr.decode("utf-8", "replace"))
        return one_line(blank_credentials(self._redact(line)), _STDERR_SHOWN)

    def _parse(self, stdout: bytes) -> tuple[str, _dt.datetime | None, None]:
        def bad(why: str) -> ConfigError:
            return ConfigError(
                f"the {self.describe()} printed {why}",
                hint="check the plugin and its version",
            )

        try:
            data = json.loads(stdout)
        except ValueError:
            raise bad("something that is not an ExecCredential JSON") from None
        if not isinstance(data, dict) or data.get("kind") != "ExecCredential":
            raise bad("something that is not an ExecCredential JSON")
        if data.get("apiVersion") != self.api_version:
            raise bad(f'apiVersion "{data.get("apiVersion")}" instead of "{self.api_version}"')
        status = data.get("status")
        if not isinstance(status, dict):
            raise bad("an ExecCredential without status")
        token = status.get("token")
        if not isinstance(token, str) or not token:
            if status.get("clientCertificateData"):
                raise ConfigError(
                    f"the {self.describe()} returned a client certificate instead of a token, "
                    "which is not supported yet",
                    hint="use a token-issuing plugin or put the certificate in the kubeconfig",
                )
            raise bad("an ExecCredential without a token")
        self._redact.add(token)
        expires_at = None
        if status.get("expirationTimestamp"):
            try:
                stamp = str(status["expirationTimestamp"])
                expires_at = parse_rfc3339(stamp)  # type: ignore[no-untyped-call]
            except ValueError:
                raise bad("an invalid expirationTimestamp") from None
        return f"Bearer {token}", expires_at, None


def _kill_plugin(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL a plugin and, when it has its own session, everything in its process group."""
    if proc.poll() is not None:
        return
    try:
        if os.name == "posix" and os.getpgid(proc.pid) == proc.pid:
            os.killpg(proc.pid, signal.SIGKILL)
            return
    except OSError:
        pass
    proc.kill()


def _stop_plugin(proc: subprocess.Popen[bytes]) -> None:
    """Kill a plugin that overran and reap it, without waiting on pipes that a process it
    moved out of its group may still hold open."""
    _kill_plugin(proc)
    try:
        proc.communicate(timeout=2)
    except subprocess.TimeoutExpired:
        for pipe in (proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()
        proc.wait()


def exec_cluster_info(
    server: str, cluster: Mapping[str, Any], ca_file: str | None, insecure: bool
) -> dict[str, Any]:
    """``spec.cluster`` of KUBERNETES_EXEC_INFO for plugins with provideClusterInfo."""
    info: dict[str, Any] = {"server": server}
    if cluster.get("tls-server-name"):
        info["tls-server-name"] = cluster["tls-server-name"]
    if insecure:
        info["insecure-skip-tls-verify"] = True
    if ca_file:
        with open(ca_file, "rb") as handle:
            info["certificate-authority-data"] = base64.b64encode(handle.read()).decode("ascii")
    if cluster.get("proxy-url"):
        info["proxy-url"] = cluster["proxy-url"]
    for extension in cluster.get("extensions") or []:
        if (
            isinstance(extension, dict)
            and extension.get("name") == "client.authentication.k8s.io/exec"
        ):
            info["config"] = extension.get("extension")
            break
    return info
