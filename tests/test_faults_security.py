"""The fault matrix, cases 20–23: quoting, secrets, confirmation and RBAC (see test_faults.py
for the whole table). Runs against the session's sandbox with tests/manifests/faults.yaml
loaded as the namespace ``faults``.
"""

from __future__ import annotations

import base64
import copy
import datetime as dt
import logging
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from IPython.core.interactiveshell import InteractiveShell

from podmagic._client import Cluster
from podmagic._errors import ApiError, PodmagicError, PodsFailedError, RefusedError, SelectionError
from podmagic._portal import get_portal
from podmagic._results import ExecStatus
from podmagic.sandbox import Sandbox

MANIFESTS = Path(__file__).parent / "manifests"
NS = "faults"


@pytest.fixture(scope="module")
def ip(faults: Sandbox) -> Iterator[InteractiveShell]:
    shell = InteractiveShell.instance()
    shell.run_line_magic("load_ext", "podmagic")
    magic = shell.magics_manager.registry["PodMagic"]
    names = ("kubeconfig", "context", "namespace", "quiet", "protected_contexts", "confirm_above")
    saved = {name: getattr(magic, name) for name in names}
    magic.kubeconfig, magic.context, magic.namespace, magic.quiet = (
        str(faults.kubeconfig),
        None,
        NS,
        True,
    )
    yield shell
    for name, value in saved.items():
        setattr(magic, name, value)


def exec_requests(sandbox: Sandbox, pod: str | None = None) -> list[str]:
    paths = [r.path_qs for r in sandbox.requests() if r.path_qs.split("?")[0].endswith("/exec")]
    return [p for p in paths if pod is None or f"/pods/{pod}/exec" in p]


def run_cell(
    ip: InteractiveShell, capsys: pytest.CaptureFixture[str], cell: str
) -> tuple[Any, str]:
    capsys.readouterr()
    result = ip.run_cell(cell)
    captured = capsys.readouterr()
    return result, captured.out + captured.err


def assert_one_line_error(result: Any, printed: str) -> str:
    assert not result.success
    text = printed.strip()
    assert "Traceback" not in text and len(text.splitlines()) == 1, text
    return text


# -- 20. interpolated values stay one word each ----------------------------------------------------

# Any text a shell word can hold: everything but NUL (and lone surrogates, which are not text).
WORDS = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=30
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(value=WORDS, others=st.lists(WORDS, max_size=3))
def test_20_interpolated_values_reach_the_pod_byte_exact(
    ip: InteractiveShell, value: str, others: list[str]
) -> None:
    ip.user_ns.update(value=value, others=others)
    results = ip.run_line_magic(
        "pod", """pool-0 -e V={{value}} -- printf '[%s]' {{value}} {{others}} x{{value}}y "$V" """
    )
    [result] = results
    expected = f"[{value}]" + "".join(f"[{o}]" for o in others) + f"[x{value}y][{value}]"
    assert result.ok and result.stdout == expected.encode(), result.error


def test_20_hostile_values_stay_one_word(ip: InteractiveShell, tmp_path: Path) -> None:
    canary = tmp_path / "canary"
    hostile = [
        f"'; touch {canary}; '",
        f"$(touch {canary})",
        f"`touch {canary}`",
        "a\nb",
        "-n",
        "*",
        "\\",
        "'\"'\"'",
        "${IFS}",
        "\u00e9\u4e2d\U0001f600",
        "' || true #",
    ]
    ip.user_ns["hostile"] = hostile
    results = ip.run_cell_magic(
        "pod", "pool-0", 'for word in {{hostile}}; do printf "[%s]" "$word"; done\n'
    )
    assert results.stdout == "".join(f"[{h}]" for h in hostile).encode()
    assert not canary.exists()


# -- 21. no secret ends up anywhere ----------------------------------------------------------------


def _client_key_and_certificate() -> tuple[bytes, bytes]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "podmagic-test-user")])
    now = dt.datetime.now(dt.timezone.utc)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return key_pem, certificate.public_bytes(serialization.Encoding.PEM)


class Secrets:
    """The secrets of one test: a kubeconfig with a token and a client key, a wrong-token
    kubeconfig, and an --env value."""

    def __init__(self, sandbox: Sandbox, folder: Path) -> None:
        assert sandbox.kubeconfig is not None and sandbox.token is not None
        key_pem, cert_pem = _client_key_and_certificate()
        self.token = sandbox.token
        self.wrong_token = "wrong-" + secrets.token_hex(16)
        self.env_value = "env-" + secrets.token_hex(16)
        self.key_data = base64.b64encode(key_pem).decode()
        key_lines = key_pem.decode().splitlines()
        self.key_body = key_lines[len(key_lines) // 2]  # a line of the PEM body
        document = yaml.safe_load(Path(sandbox.kubeconfig).read_text())
        document["users"][0]["user"].update(
            {
                "client-certificate-data": base64.b64encode(cert_pem).decode(),
                "client-key-data": self.key_data,
            }
        )
        self.kubeconfig = folder / "with-key"
        self.kubeconfig.write_text(yaml.safe_dump(document))
        wrong = copy.deepcopy(document)
        wrong["users"][0]["user"]["token"] = self.wrong_token
        self.wrong_kubeconfig = folder / "wrong-token"
        self.wrong_kubeconfig.write_text(yaml.safe_dump(wrong))

    @property
    def values(self) -> dict[str, str]:
        return {
            "token": self.token,
            "wrong token": self.wrong_token,
            "env value": self.env_value,
            "client-key-data": self.key_data,
            "client key PEM": self.key_body,
        }

    def assert_absent(self, where: str, text: str) -> None:
        for what, value in self.values.items():
            assert value not in text, f"the {what} appears in {where}"


def test_21_no_secret_in_results_reprs_errors_logs_or_exec_urls(
    faults: Sandbox,
    ip: InteractiveShell,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    found = Secrets(faults, tmp_path)
    for logger in ("", "podmagic", "websockets", "websockets.client", "aiohttp", "asyncio"):
        caplog.set_level(logging.DEBUG, logger=logger)
    # The capture sees DEBUG records from the loop thread, where the execs run.
    get_portal().call(lambda: logging.getLogger("podmagic.probe").debug("probe"))
    assert [r.getMessage() for r in caplog.records if r.name == "podmagic.probe"] == ["probe"]
    faults.clear_requests()
    cluster = Cluster(kubeconfig=found.kubeconfig, namespace=NS)
    assert cluster.credentials.has_client_certificate and cluster.credentials.auth_method == "token"
    env = {"SECRET": found.env_value}
    seen: list[str] = [repr(cluster), repr(cluster.credentials)]
    events: list[Any] = []

    ok = cluster.run(
        'printf %s "$SECRET" | wc -c', selector="app=pool", env=env, on_event=events.append
    )
    assert ok.ok and ok[0].stdout.strip() == str(len(found.env_value)).encode()
    # The timeout (2.5 s) ends pool-0's `sleep 4`, and leaves the cut pod's drop (0.4 s into
    # its exec) room to come first even when a loaded machine starts that exec late.
    broken = cluster.run(
        "echo partial; sleep 4", selector="app in (cut, locked, pool)", env=env, timeout=2.5
    )
    statuses = {r.pod: r.status for r in broken}
    assert statuses["cut"] is ExecStatus.ERROR and statuses["locked-0"] is ExecStatus.ERROR
    assert statuses["pool-0"] is ExecStatus.TIMEOUT
    failures: list[PodmagicError] = []
    with pytest.raises(PodsFailedError) as failed:
        cluster.run("exit 3", "pool-0", env=env).check()
    failures.append(failed.value)
    with pytest.raises(ApiError) as rejected:
        Cluster(kubeconfig=found.wrong_kubeconfig, namespace=NS).run("true", "pool-0", env=env)
    failures.append(rejected.value)
    revoked = Cluster(kubeconfig=found.wrong_kubeconfig, namespace=NS).run(
        "true", env=env, selection=cluster.select("pool-0")
    )
    assert revoked[0].status is ExecStatus.ERROR and "401" in (revoked[0].error or "")
    with pytest.raises(SelectionError) as missing:
        cluster.run("true", "pol-0", env=env)
    failures.append(missing.value)

    for results in (ok, broken, revoked, failed.value.results):
        seen += [
            repr(results),
            str(results),
            results._repr_html_(),
            results.to_dataframe().to_string(),
        ]
        seen += [repr(r) for r in results] + [r.error or "" for r in results]
        seen += [str(r.command) for r in results]
    seen += [repr(event) for event in events]
    seen += [str(error) for error in failures] + [repr(error) for error in failures]

    # The same through the magic, with its live text view on.
    magic = ip.magics_manager.registry["PodMagic"]
    magic.quiet = False
    ip.user_ns["secret_value"] = found.env_value
    try:
        _, printed = run_cell(
            ip,
            capsys,
            f"%pod -l app=pool --kubeconfig {found.kubeconfig} "
            "-e SECRET={{secret_value}} -- printenv SECRET | wc -c",
        )
        assert str(len(found.env_value) + 1) in printed
        result, failed_cell = run_cell(
            ip,
            capsys,
            f"%pod pool-0 --kubeconfig {found.kubeconfig} "
            "-e SECRET={{secret_value}} --check -- exit 3",
        )
        assert not result.success and "PodsFailedError" in failed_cell
        result, rejected_cell = run_cell(
            ip, capsys, f"%pod pool-0 --kubeconfig {found.wrong_kubeconfig} -- true"
        )
        assert_one_line_error(result, rejected_cell)
    finally:
        magic.quiet = True
    seen += [printed, failed_cell, rejected_cell]

    for index, text in enumerate(seen):
        found.assert_absent(f"output #{index}: {text[:80]!r}", text)
    log_text = "\n".join(f"{r.name} {r.getMessage()} {r.exc_text or ''}" for r in caplog.records)
    found.assert_absent("the logs", log_text + caplog.text)
    requests = faults.requests()
    assert any("/exec?" in r.path_qs for r in requests)
    found.assert_absent(
        "the requests the API server received",
        "\n".join(f"{r.method} {r.path_qs} {r.user_agent}" for r in requests),
    )


def test_21_saved_notebook_holds_no_secret(faults: Sandbox, tmp_path: Path) -> None:
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    found = Secrets(faults, tmp_path)
    secret_file = tmp_path / "secret.txt"
    secret_file.write_text(found.env_value)
    cells = [
        (
            f"%load_ext podmagic\n%config PodMagic.kubeconfig = {str(found.kubeconfig)!r}\n"
            f"%config PodMagic.namespace = {NS!r}"
        ),
        f"secret = open({str(secret_file)!r}).read().strip()",
        "%pod pool-0 -e SECRET={{secret}} -- printenv SECRET | wc -c",
        "r = %pod -l app=pool -e SECRET={{secret}} -- echo done\nr",
        "%pod pool-0 -e SECRET={{secret}} --check -- exit 3",
        "%pod cut -e SECRET={{secret}} -- echo partial; sleep 3",
        f"%pod pool-0 --kubeconfig {found.wrong_kubeconfig} -e SECRET={{{{secret}}}} -- true",
        "r.to_dataframe()",
    ]
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    notebook.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    client = nbclient.NotebookClient(
        notebook,
        timeout=120,
        kernel_name="python3",
        allow_errors=True,
        resources={"metadata": {"path": str(tmp_path)}},
    )
    client.execute()
    saved = tmp_path / "run.ipynb"
    nbformat.write(notebook, saved)
    text = saved.read_text()
    found.assert_absent("the saved notebook", text)

    def output_text(index: int) -> str:
        return str(notebook.cells[index].get("outputs", []))

    assert str(len(found.env_value) + 1) in output_text(2), "the env value reached the pod"
    assert "done" in output_text(3)
    assert "PodsFailedError" in output_text(4)
    assert "may still be running" in output_text(5)
    assert "ApiError" in output_text(6) and "401" in output_text(6)
    assert "pool-2" in output_text(7)


# -- 22. confirmation, and a dry run ---------------------------------------------------------------


def test_22_protected_context_and_large_fan_out_need_yes_and_dry_run_runs_nothing(
    faults: Sandbox, ip: InteractiveShell, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    canary = tmp_path / "ran"  # sandbox pods are local processes: this file appears if one ran
    magic = ip.magics_manager.registry["PodMagic"]
    faults.clear_requests()
    magic.protected_contexts = ["*sandbox*"]
    try:
        result, printed = run_cell(ip, capsys, f"%pod -l app=pool -- touch {canary}")
        line = assert_one_line_error(result, printed)
        assert line.startswith("RefusedError:") and "protected" in line and "--yes" in line
        assert "faults/pool-0" in line  # says where it would have run
        magic.protected_contexts = ["*prod*"]
        magic.confirm_above = 2
        result, printed = run_cell(ip, capsys, f"%pod -l app=pool -- touch {canary}")
        line = assert_one_line_error(result, printed)
        assert "3 pods is more than the 2" in line and "--yes" in line
        assert exec_requests(faults) == []

        result, printed = run_cell(
            ip, capsys, f"%pod -l 'app in (pool, states)' --dry-run -- touch {canary}"
        )
        assert result.success and result.result is None
        assert "dry run: nothing ran" in printed
        for pod in ("pool-0", "pool-1", "pool-2", "state-running"):
            assert f"run   {NS}/{pod} [main]" in printed
        assert f"skip  {NS}/state-pending: Pending" in printed
        assert exec_requests(faults) == [] and not canary.exists()

        confirmed = ip.run_line_magic("pod", "-l app=pool --yes -- echo confirmed")
        assert confirmed.ok and len(exec_requests(faults)) == 3
    finally:
        magic.protected_contexts = ["*prod*"]
        magic.confirm_above = 50
    with pytest.raises(RefusedError):
        ip.run_line_magic("pod", "-l '' -- true")


# -- 23. RBAC: listing allowed, exec forbidden -------------------------------------------------------


def test_23_rbac_forbidden_exec_is_one_clear_error_per_pod(
    faults: Sandbox, ip: InteractiveShell, capsys: pytest.CaptureFixture[str]
) -> None:
    faults.clear_requests()
    results = ip.run_line_magic("pod", "-l 'app in (locked, pool)' -- echo ran")
    outcome = {r.pod: r for r in results}
    assert all(outcome[p].ok for p in ("pool-0", "pool-1", "pool-2"))
    for pod in ("locked-0", "locked-1"):
        error = outcome[pod].error or ""
        assert outcome[pod].status is ExecStatus.ERROR and outcome[pod].started_at is None
        assert error.startswith(f"pod {NS}/{pod} (container main): exec could not start (HTTP 403)")
        assert (
            f'pods "{pod}" is forbidden: User "sandbox-user" cannot get resource "pods/exec"'
            in error
        ), "the server's own message"
        assert "kubectl auth can-i create pods/exec" in error  # what to try
        assert len(exec_requests(faults, pod)) == 1, "a 403 is not retried"
    shown = str(results)
    assert shown.count("HTTP 403") == 2 and "3 ok, 2 error" in shown
    result, printed = run_cell(ip, capsys, "%pod -l app=locked --check -- echo ran")
    line = assert_one_line_error(result, printed)
    assert line.startswith(
        "PodsFailedError: 2 of 2 pods failed: locked-0 (error), locked-1 (error)"
    )
