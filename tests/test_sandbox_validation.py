"""Sandbox input is validated like a real API server's.

Manifests: one ``ManifestError`` line naming the file, the object and the field, before
anything is created. API bodies: 422 Invalid (or 400 BadRequest for a value of the wrong type)
``Status`` objects with causes, worded like the apiserver's, never a 500. Names and
``workingDir`` can never lead out of the sandbox's state folder.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import anyio
import pytest
from sandbox_client import api_client

from podmagic.sandbox import ManifestError, Sandbox
from podmagic.sandbox._validation import MAX_REPLICAS

SUBDOMAIN = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', "
    "and must start and end with an alphanumeric character (e.g. 'example.com', regex used for "
    "validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
)
LABEL = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must "
    "start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for "
    "validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
)
POD = "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {containers: [{name: c, image: i}]}\n"


def deployment(replicas: str, kind: str = "Deployment", field: str = "replicas") -> str:
    return (
        f"apiVersion: apps/v1\nkind: {kind}\nmetadata: {{name: web}}\nspec:\n  {field}: {replicas}\n"
        "  template: {spec: {containers: [{name: c, image: i}]}}\n"
    )


def start_error(manifest: Any, tmp_path: Path) -> str:
    """The ManifestError a sandbox with this manifest fails with; checks it left nothing behind."""
    state = tmp_path / "state"
    state.mkdir()
    sandbox = Sandbox(manifest, state_dir=state, kubeconfig=tmp_path / "kubeconfig")
    with pytest.raises(ManifestError) as raised:
        sandbox.start()
    sandbox.stop()
    # Nothing outside the state folder, nothing for pods inside it.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state"]
    assert not (state / "fs" / "pods").exists() or not any((state / "fs" / "pods").rglob("*"))
    message = str(raised.value)
    assert "\n" not in message
    return message


# -- manifests: replicas ---------------------------------------------------------------------------


def test_replicas_far_beyond_the_bound_are_refused_at_once(tmp_path: Path) -> None:
    # Used to expand until the pod network ran out: "coroutine raised StopIteration" after 12 s.
    assert start_error(deployment("100000000"), tmp_path) == (
        'Deployment "web" is invalid: spec.replicas: Invalid value: 100000000: '
        f"must be less than or equal to {MAX_REPLICAS} (the sandbox's limit)"
    )


def test_replicas_just_above_the_bound_are_refused(tmp_path: Path) -> None:
    assert (
        f"Invalid value: {MAX_REPLICAS + 1}: must be less than or equal to {MAX_REPLICAS}"
        in start_error(deployment(str(MAX_REPLICAS + 1)), tmp_path)
    )


def test_replicas_that_are_not_a_number_are_one_manifest_error(tmp_path: Path) -> None:
    # Used to be a raw ValueError from int("many").
    assert start_error(deployment("many"), tmp_path) == (
        'Deployment "web" is invalid: spec.replicas: Invalid value: "many": expected an integer, got string'
    )


def test_negative_replicas_are_refused_as_the_api_server_does(tmp_path: Path) -> None:
    # Used to start with no pods for the workload, silently.
    assert start_error(deployment("-1"), tmp_path) == (
        'Deployment "web" is invalid: spec.replicas: Invalid value: -1: must be greater than or equal to 0'
    )


@pytest.mark.parametrize("kind", ["ReplicaSet", "StatefulSet"])
def test_every_replicated_kind_checks_replicas(kind: str, tmp_path: Path) -> None:
    assert start_error(deployment("1.5", kind=kind), tmp_path) == (
        f'{kind} "web" is invalid: spec.replicas: Invalid value: 1.5: expected an integer, got number'
    )


def test_job_parallelism_is_checked_like_replicas(tmp_path: Path) -> None:
    manifest = deployment("lots", kind="Job", field="parallelism").replace("apps/v1", "batch/v1")
    assert start_error(manifest, tmp_path) == (
        'Job "web" is invalid: spec.parallelism: Invalid value: "lots": expected an integer, got string'
    )


def test_more_pods_than_the_pod_network_holds_are_refused_before_any_is_made(
    tmp_path: Path,
) -> None:
    manifest = "---\n".join(
        deployment(str(MAX_REPLICAS)).replace("name: web", f"name: web{n}") for n in range(7)
    )
    assert start_error(manifest, tmp_path) == (
        "the manifest asks for 70000 pods; the sandbox has room for 65534 more "
        "(at most 65534, one per address of 10.244.0.0/16)"
    )


def test_only_replicas_that_are_not_indexes_are_one_manifest_error(tmp_path: Path) -> None:
    manifest = deployment("2").replace(
        "metadata: {name: web}",
        "metadata: {name: web, annotations: {sandbox.podmagic.io/only-replicas: 'a,b'}}",
    )
    assert start_error(manifest, tmp_path) == (
        'Deployment "web" is invalid: metadata.annotations[sandbox.podmagic.io/only-replicas]: '
        'Invalid value: "a,b": expected comma-separated replica indexes (0, 1, ...)'
    )


# -- manifests: names and paths --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("manifest", "message"),
    [
        (
            POD.replace("name: p", "name: ../../../escaped"),
            f'Pod "../../../escaped" is invalid: metadata.name: Invalid value: "../../../escaped": {SUBDOMAIN}',
        ),
        (
            POD.replace("name: p", "name: Bad_Name"),
            f'Pod "Bad_Name" is invalid: metadata.name: Invalid value: "Bad_Name": {SUBDOMAIN}',
        ),
        (
            POD.replace("name: p", "name: p, namespace: ../../up"),
            f'Pod "p" is invalid: metadata.namespace: Invalid value: "../../up": {LABEL}',
        ),
        (
            POD.replace("name: c,", "name: ../c,"),
            f'Pod "p" is invalid: spec.containers[0].name: Invalid value: "../c": {LABEL}',
        ),
        (
            POD.replace("image: i", "image: i, workingDir: ../../../../outside"),
            (
                'Pod "p" is invalid: spec.containers[0].workingDir: Invalid value: "../../../../outside": must be an '
                "absolute path (the sandbox runs the command there, inside the container's root)"
            ),
        ),
        (
            POD.replace("image: i", "image: i, workingDir: /srv/../../../../outside"),
            (
                'Pod "p" is invalid: spec.containers[0].workingDir: Invalid value: "/srv/../../../../outside": '
                "must not contain '..'"
            ),
        ),
        (
            "apiVersion: v1\nkind: Namespace\nmetadata: {name: ../ns}\n",
            f'Namespace "../ns" is invalid: metadata.name: Invalid value: "../ns": {LABEL}',
        ),
        (
            deployment("1").replace("name: c,", "name: ../c,"),
            f'Deployment "web" is invalid: spec.template.spec.containers[0].name: Invalid value: "../c": {LABEL}',
        ),
        (
            deployment("1").replace("image: i", "image: i, workingDir: x/../../.."),
            (
                'Deployment "web" is invalid: spec.template.spec.containers[0].workingDir: Invalid value: '
                '"x/../../..": must be an absolute path (the sandbox runs the command there, inside the container\'s root)'
            ),
        ),
    ],
    ids=[
        "pod-name",
        "pod-name-underscore",
        "namespace",
        "container",
        "relative-workdir",
        "dotdot-workdir",
        "namespace-object",
        "template-container",
        "template-workdir",
    ],
)
def test_names_and_working_dirs_never_leave_the_state_folder(
    manifest: str, message: str, tmp_path: Path
) -> None:
    assert start_error(manifest, tmp_path) == message


def test_labels_are_checked_with_the_api_servers_rules(tmp_path: Path) -> None:
    manifest = POD.replace("name: p", "name: p, labels: {'bad key!': ok, app: 'bad value!'}")
    message = start_error(manifest, tmp_path)
    assert message.startswith(
        'Pod "p" is invalid: [metadata.labels: Invalid value: "bad key!": name part must '
        "consist of alphanumeric characters"
    )
    assert (
        'metadata.labels: Invalid value: "bad value!": a valid label must be an empty string'
        in message
    )


def test_several_problems_in_one_object_are_one_line(tmp_path: Path) -> None:
    manifest = (
        "apiVersion: v1\nkind: Pod\nmetadata: {name: Bad_Name}\n"
        "spec: {containers: [{name: C, workingDir: rel}, {name: C}]}\n"
    )
    message = start_error(manifest, tmp_path)
    assert message.startswith(
        'Pod "Bad_Name" is invalid: [metadata.name: Invalid value: "Bad_Name": '
    )
    assert (
        'spec.containers[0].workingDir: Invalid value: "rel": must be an absolute path' in message
    )
    assert 'spec.containers[1].name: Duplicate value: "C"' in message
    assert message.endswith("]")


def test_a_structure_of_the_wrong_type_is_one_manifest_error(tmp_path: Path) -> None:
    manifest = "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {containers: just-one}\n"
    assert start_error(manifest, tmp_path) == (
        'Pod "p" is invalid: spec.containers: Invalid value: "just-one": expected an array, got string'
    )


def test_a_manifest_file_is_named_in_the_error(tmp_path: Path) -> None:
    source = tmp_path / "cluster.yaml"
    source.write_text(POD + "---\n" + deployment("-3"))
    state = tmp_path / "state"
    with pytest.raises(ManifestError) as raised:
        Sandbox(source, state_dir=state).start()
    assert str(raised.value) == (
        f'{source}: Deployment "web" is invalid: spec.replicas: Invalid value: -3: '
        "must be greater than or equal to 0"
    )


def test_a_manifest_file_that_is_not_text_is_one_manifest_error(tmp_path: Path) -> None:
    source = tmp_path / "cluster.yaml"
    source.write_bytes(b"kind: Pod\nmetadata: {name: \xff}\n")
    with pytest.raises(ManifestError) as raised:
        Sandbox(source, state_dir=tmp_path / "state").start()
    assert str(raised.value) == f"{source}: not UTF-8 text (byte 27); a manifest is Kubernetes YAML"


def test_a_bad_document_changes_nothing_at_run_time(fresh: Sandbox) -> None:
    # The first document is fine: it is not loaded either, as the second is refused.
    good = POD.replace("name: p", "name: fine, namespace: t")
    with pytest.raises(ManifestError, match='^Pod "Bad" is invalid: metadata.name: '):
        fresh.apply(good + "---\n" + POD.replace("name: p", "name: Bad, namespace: t"))
    assert fresh.pods("t") == ["a", "b"]


# -- the API -----------------------------------------------------------------------------------------


SMALL = """
apiVersion: v1
kind: Namespace
metadata: {name: t}
---
apiVersion: v1
kind: Pod
metadata: {name: a, namespace: t}
spec:
  containers: [{name: main, image: busybox:1.36}]
---
apiVersion: v1
kind: Pod
metadata: {name: b, namespace: t}
spec:
  containers: [{name: main, image: busybox:1.36}]
"""


@pytest.fixture
def fresh(tmp_path: Path) -> Iterator[Sandbox]:
    """A sandbox of its own (namespace ``t``, pods ``a`` and ``b``), its state in ``tmp_path/state``."""
    with Sandbox(SMALL, state_dir=tmp_path / "state") as running:
        yield running


async def send(
    session: aiohttp.ClientSession,
    method: str,
    path: str,
    body: Any = None,
    data: bytes | None = None,
) -> tuple[int, Any]:
    kwargs: dict[str, Any] = (
        {"json": body}
        if data is None
        else {"data": data, "headers": {"Content-Type": "application/json"}}
    )
    async with session.request(method, path, **kwargs) as response:
        assert response.headers["Content-Type"].startswith("application/json")
        return response.status, json.loads(await response.read())


def pod_body(name: str = "made", **container: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {"containers": [{"name": "main", "image": "busybox:1.36", **container}]},
    }


def invalid(kind: str, name: str, causes: list[tuple[str, str, str]]) -> dict[str, Any]:
    """The apiserver's 422 body: ``causes`` as (reason, field, message without the field)."""
    problems = [f"{field}: {message}" for _, field, message in causes]
    joined = problems[0] if len(problems) == 1 else "[" + ", ".join(problems) + "]"
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": f'{kind} "{name}" is invalid: {joined}',
        "reason": "Invalid",
        "details": {
            "name": name,
            "kind": kind,
            "causes": [
                {"reason": reason, "message": message, "field": field}
                for reason, field, message in causes
            ],
        },
        "code": 422,
    }


def bad_request(message: str) -> dict[str, Any]:
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": "BadRequest",
        "code": 400,
    }


@pytest.mark.anyio
async def test_a_pod_with_a_bad_name_is_422_invalid_with_causes(fresh: Sandbox) -> None:
    async with api_client(fresh) as session:
        code, body = await send(session, "POST", "/api/v1/namespaces/t/pods", pod_body("Bad_Name"))
    assert (code, body) == (
        422,
        invalid(
            "Pod",
            "Bad_Name",
            [("FieldValueInvalid", "metadata.name", f'Invalid value: "Bad_Name": {SUBDOMAIN}')],
        ),
    )
    assert list(body) == [
        "kind",
        "apiVersion",
        "metadata",
        "status",
        "message",
        "reason",
        "details",
        "code",
    ]
    assert fresh.pods("t") == ["a", "b"]


@pytest.mark.anyio
async def test_a_malformed_pod_is_422_with_every_cause_never_500(fresh: Sandbox) -> None:
    body = {
        "metadata": {"name": "x" * 254},
        "spec": {"containers": [{"name": "Main", "workingDir": "../../.."}, {"name": "Main"}, {}]},
    }
    async with api_client(fresh) as session:
        code, answer = await send(session, "POST", "/api/v1/namespaces/t/pods", body)
    assert (code, answer) == (
        422,
        invalid(
            "Pod",
            "x" * 254,
            [
                (
                    "FieldValueInvalid",
                    "metadata.name",
                    f'Invalid value: "{"x" * 254}": must be no more than 253 characters',
                ),
                ("FieldValueInvalid", "spec.containers[0].name", f'Invalid value: "Main": {LABEL}'),
                (
                    "FieldValueInvalid",
                    "spec.containers[0].workingDir",
                    (
                        'Invalid value: "../../..": must be an absolute '
                        "path (the sandbox runs the command there, inside the container's root)"
                    ),
                ),
                ("FieldValueInvalid", "spec.containers[1].name", f'Invalid value: "Main": {LABEL}'),
                ("FieldValueDuplicate", "spec.containers[1].name", 'Duplicate value: "Main"'),
                ("FieldValueRequired", "spec.containers[2].name", "Required value"),
            ],
        ),
    )


@pytest.mark.anyio
async def test_path_escapes_in_api_bodies_are_refused_and_create_nothing(
    fresh: Sandbox, tmp_path: Path
) -> None:
    before = sorted(str(p) for p in tmp_path.rglob("*"))
    async with api_client(fresh) as session:
        for body in (
            pod_body("../../../../escaped"),
            pod_body(workingDir="/../../../../../escaped"),
            pod_body(workingDir="relative/../../../.."),
            {"metadata": {"generateName": "../../"}, "spec": pod_body()["spec"]},
        ):
            code, answer = await send(session, "POST", "/api/v1/namespaces/t/pods", body)
            assert (code, answer["reason"]) == (422, "Invalid"), answer
        code, answer = await send(
            session, "POST", "/api/v1/namespaces", {"metadata": {"name": "../up"}}
        )
        assert (code, answer) == (
            422,
            invalid(
                "Namespace",
                "../up",
                [("FieldValueInvalid", "metadata.name", f'Invalid value: "../up": {LABEL}')],
            ),
        )
    assert sorted(str(p) for p in tmp_path.rglob("*")) == before
    assert fresh.pods() == ["a", "b"]


@pytest.mark.anyio
async def test_generate_name_is_checked_as_a_prefix_and_cut_like_the_api_servers(
    fresh: Sandbox,
) -> None:
    async with api_client(fresh) as session:
        code, answer = await send(
            session,
            "POST",
            "/api/v1/namespaces/t/pods",
            {"metadata": {"generateName": "Web_"}, "spec": pod_body()["spec"]},
        )
        assert (code, answer) == (
            422,
            invalid(
                "Pod",
                "",
                [
                    (
                        "FieldValueInvalid",
                        "metadata.generateName",
                        f'Invalid value: "Web_": {SUBDOMAIN}',
                    )
                ],
            ),
        )
        code, created = await send(
            session,
            "POST",
            "/api/v1/namespaces/t/pods",
            {"metadata": {"generateName": "w" * 70 + "-"}, "spec": pod_body()["spec"]},
        )
        assert code == 201
        assert len(created["metadata"]["name"]) == 63
        assert created["metadata"]["name"].startswith("w" * 58)


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            {"metadata": {"name": "p"}, "spec": {"containers": "main"}},
            (
                'Pod in version "v1" cannot be handled as a Pod: spec.containers: Invalid value: "main": '
                "expected an array, got string"
            ),
        ),
        (
            {"metadata": {"name": "p"}, "spec": "none"},
            'Pod in version "v1" cannot be handled as a Pod: spec: Invalid value: "none": expected an object, got string',
        ),
        (
            {"metadata": ["p"], "spec": {}},
            'Pod in version "v1" cannot be handled as a Pod: metadata: Invalid value: expected an object, got array',
        ),
        (
            {"metadata": {"name": "p", "labels": {"app": {"x": 1}}}, "spec": pod_body()["spec"]},
            (
                'Pod in version "v1" cannot be handled as a Pod: metadata.labels[app]: Invalid value: '
                "expected a string, got object"
            ),
        ),
        (
            {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "workingDir": 7}]}},
            (
                'Pod in version "v1" cannot be handled as a Pod: spec.containers[0].workingDir: Invalid value: 7: '
                "expected a string, got number"
            ),
        ),
        (
            {"metadata": {"name": "p", "namespace": "elsewhere"}, "spec": pod_body()["spec"]},
            "the namespace of the provided object does not match the namespace sent on the request",
        ),
        (
            {"kind": "Deployment", "metadata": {"name": "p"}, "spec": pod_body()["spec"]},
            'the kind in the body ("Deployment") does not match the resource (pods)',
        ),
    ],
    ids=[
        "containers-string",
        "spec-string",
        "metadata-list",
        "label-object",
        "workdir-number",
        "namespace-mismatch",
        "kind-mismatch",
    ],
)
async def test_bodies_of_the_wrong_shape_are_400_bad_request(
    fresh: Sandbox, body: Any, message: str
) -> None:
    # Several of these used to be a 500 (AttributeError deep in the sandbox).
    async with api_client(fresh) as session:
        assert await send(session, "POST", "/api/v1/namespaces/t/pods", body) == (
            400,
            bad_request(message),
        )
    assert fresh.pods("t") == ["a", "b"]


@pytest.mark.anyio
@pytest.mark.parametrize(
    "data",
    [
        b"[1, 2]",
        b'"pod"',
        b"{not json",
        b"\xff\xfe",
        b'{"metadata": {"name": NaN}}',
        b"[" * 100_000 + b"]" * 100_000,
    ],
    ids=["array", "string", "malformed", "not-utf8", "nan", "deeply-nested"],
)
async def test_bodies_that_are_not_json_objects_are_400(fresh: Sandbox, data: bytes) -> None:
    async with api_client(fresh) as session:
        for path in ("/api/v1/namespaces/t/pods", "/api/v1/namespaces", "/sandbox/tokens"):
            code, answer = await send(session, "POST", path, data=data)
            assert (code, answer["reason"]) == (400, "BadRequest"), (path, answer)


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("ttl", "shown"),
    [
        ("1e308", "1e+308"),
        ("4294967297", "4294967297"),
        ("0", "0"),
        ("-5", "-5"),
        ("1e-400", "0.0"),
    ],
)
async def test_token_ttl_is_finite_positive_and_bounded(
    fresh: Sandbox, ttl: str, shown: str
) -> None:
    # {"ttl": 1e308} used to be a 500 (the expiry did not fit in a date).
    async with api_client(fresh) as session:
        code, answer = await send(
            session, "POST", "/sandbox/tokens", data=b'{"ttl": ' + ttl.encode() + b"}"
        )
    detail = f"Invalid value: {shown}: must be above 0 and at most 4294967296 seconds"
    assert (code, answer) == (
        400,
        {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": f"ttl: {detail}",
            "reason": "BadRequest",
            "details": {
                "causes": [{"reason": "FieldValueInvalid", "message": detail, "field": "ttl"}]
            },
            "code": 400,
        },
    )


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("ttl", "message"),
    [
        ('"an hour"', 'ttl must be a number of seconds, got "an hour"'),
        ("true", "ttl must be a number of seconds, got true"),
        (
            "Infinity",
            (
                "the body of the request was in an unknown format: invalid character 'I' looking for "
                "beginning of value"
            ),
        ),
    ],
)
async def test_token_ttl_of_the_wrong_type_is_400(fresh: Sandbox, ttl: str, message: str) -> None:
    async with api_client(fresh) as session:
        answer = await send(
            session, "POST", "/sandbox/tokens", data=b'{"ttl": ' + ttl.encode() + b"}"
        )
    assert answer == (400, bad_request(message))


@pytest.mark.anyio
async def test_token_ttl_at_the_bound_is_accepted(fresh: Sandbox) -> None:
    async with api_client(fresh) as session:
        code, answer = await send(session, "POST", "/sandbox/tokens", {"ttl": 2**32})
    assert code == 201
    assert answer["expirationTimestamp"].startswith("2")


@pytest.mark.parametrize("ttl", [1e308, float("inf"), float("nan"), 0, -1, 2.0**32 + 1])
def test_the_python_api_refuses_the_same_ttls(fresh: Sandbox, ttl: float) -> None:
    with pytest.raises(
        ValueError, match=r"^ttl must be a number of seconds above 0 and at most 4294967296, got "
    ):
        fresh.issue_token(ttl)


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("path", "message"),
    [
        (
            "/api/v1/namespaces/t/pods?limit=ten",
            'strconv.ParseInt: parsing "ten": invalid syntax (query parameter limit)',
        ),
        (
            "/api/v1/pods?limit=99999999999999999999",
            'strconv.ParseInt: parsing "99999999999999999999": value out of range (query parameter limit)',
        ),
        (
            "/api/v1/namespaces/t/pods?watch=true&timeoutSeconds=soon",
            'strconv.ParseInt: parsing "soon": invalid syntax (query parameter timeoutSeconds)',
        ),
    ],
)
async def test_bad_integer_query_parameters_are_400(
    fresh: Sandbox, path: str, message: str
) -> None:
    async with api_client(fresh) as session, session.get(path) as response:
        assert response.status == 400
        assert json.loads(await response.read()) == bad_request(message)


# -- the catch-all -----------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_an_unexpected_error_is_a_500_status_without_details_and_is_logged(
    fresh: Sandbox, caplog: pytest.LogCaptureFixture
) -> None:
    assert fresh.cluster is not None

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("secret-value-7f3a must not reach the client")

    fresh.cluster.list_pods = broken  # type: ignore[method-assign]
    with caplog.at_level(logging.ERROR, logger="podmagic.sandbox"):
        async with (
            api_client(fresh) as session,
            session.get("/api/v1/namespaces/t/pods") as response,
        ):
            assert response.status == 500
            text = (await response.read()).decode()
    assert "secret-value" not in text and "Traceback" not in text
    message = (
        "Internal error occurred: the sandbox failed to serve this request; its log "
        "(logger podmagic.sandbox) has the details"
    )
    assert json.loads(text) == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": "InternalError",
        "details": {"causes": [{"message": message.removeprefix("Internal error occurred: ")}]},
        "code": 500,
    }
    logged = [r for r in caplog.records if r.name == "podmagic.sandbox"]
    assert [r.getMessage() for r in logged] == [
        "unexpected error serving GET /api/v1/namespaces/t/pods"
    ]
    assert logged[0].exc_info is not None


# -- exec: a working directory that leads out at run time ---------------------------------------------


@pytest.mark.anyio
async def test_exec_refuses_a_working_dir_a_symlink_leads_out_of_the_root(tmp_path: Path) -> None:
    manifest = POD.replace("image: i", "image: i, workingDir: /srv")
    outside = tmp_path / "outside"
    outside.mkdir()
    with Sandbox(manifest, state_dir=tmp_path / "state") as sandbox:
        assert sandbox.cluster is not None
        srv = sandbox.cluster.container_root("default", "p", "c") / "srv"
        srv.rmdir()
        srv.symlink_to(outside)  # what `ln -s` in a pod's command could do
        params = [
            ("command", "touch"),
            ("command", "made-here"),
            ("stdout", "true"),
            ("stderr", "true"),
        ]
        status = None
        async with (
            api_client(sandbox) as session,
            session.ws_connect(
                "/api/v1/namespaces/default/pods/p/exec",
                params=params,
                protocols=["v5.channel.k8s.io"],
            ) as ws,
        ):
            async for message in ws:
                if message.data[0] == 3:
                    status = json.loads(message.data[1:])
    assert status is not None
    assert status["reason"] == "InternalError"
    assert (
        "workingDir '/srv' of container 'c' leads out of the container's root" in status["message"]
    )
    assert list(outside.iterdir()) == []


# -- real clients ------------------------------------------------------------------------------------


BAD_POD = "apiVersion: v1\nkind: Pod\nmetadata: {name: Bad_Name}\nspec: {containers: [{name: c, image: i}]}\n"


@pytest.mark.kubectl
@pytest.mark.parametrize("version", ["1.30", "1.31", "1.32", "1.33"])
def test_kubectl_prints_the_invalid_pod_as_a_real_cluster_does(
    version: str, kubectl_factory: Callable[[str], Any], sandbox: Sandbox, tmp_path: Path
) -> None:
    kubectl = kubectl_factory(version)
    manifest = tmp_path / "bad.yaml"
    manifest.write_text(BAD_POD)
    result = kubectl("create", "-f", str(manifest), "--validate=false")
    assert result.returncode == 1
    assert result.stderr.decode() == (
        f'The Pod "Bad_Name" is invalid: metadata.name: Invalid value: "Bad_Name": {SUBDOMAIN}\n'
    )
    assert "Bad_Name" not in sandbox.pods()


@pytest.mark.official_client
def test_the_official_client_gets_an_api_exception_422(sandbox: Sandbox) -> None:
    from kubernetes import client, config
    from kubernetes.client.rest import ApiException

    with config.new_client_from_config(config_file=str(sandbox.kubeconfig)) as session:
        pod = client.V1Pod(
            metadata=client.V1ObjectMeta(name="Bad_Name"),
            spec=client.V1PodSpec(
                containers=[client.V1Container(name="c", image="i", working_dir="../../..")]
            ),
        )
        with pytest.raises(ApiException) as raised:
            client.CoreV1Api(session).create_namespaced_pod("conf", pod)
    assert raised.value.status == 422
    body = json.loads(raised.value.body)
    assert (body["reason"], [c["field"] for c in body["details"]["causes"]]) == (
        "Invalid",
        ["metadata.name", "spec.containers[0].workingDir"],
    )


def test_python_api_documents_that_are_not_objects_are_one_manifest_error(fresh: Sandbox) -> None:
    with pytest.raises(
        ManifestError, match=r"^document 2 is a str, not a mapping \(a Kubernetes object\)$"
    ):
        fresh.apply(
            [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "n"}}, "kind: Pod"]
        )  # type: ignore[list-item]
    assert "n" not in fresh.call(lambda: list(fresh.cluster.namespaces))  # type: ignore[union-attr]


@pytest.mark.anyio
async def test_a_namespace_from_generate_name(fresh: Sandbox) -> None:
    async with api_client(fresh) as session:
        code, created = await send(
            session,
            "POST",
            "/api/v1/namespaces",
            {"metadata": {"generateName": "team-", "labels": {"tier": "2"}}},
        )
    assert code == 201
    assert (
        created["metadata"]["name"].startswith("team-") and len(created["metadata"]["name"]) == 10
    )
    assert created["metadata"]["labels"]["tier"] == "2"


@pytest.mark.parametrize("kind", ["Deployment", "ReplicaSet", "DaemonSet", "Job"])
def test_replica_names_of_long_workload_names_are_cut_like_generate_name(
    kind: str, tmp_path: Path
) -> None:
    # A 253-character workload name used to make pod names too long for a folder (a raw OSError).
    manifest = deployment("1", kind=kind).replace("name: web", "name: " + "w" * 253)
    if kind == "Job":
        manifest = manifest.replace("apps/v1", "batch/v1").replace("replicas", "parallelism")
    with Sandbox(manifest, state_dir=tmp_path / "state") as sandbox:
        pods = sandbox.pods()
    assert pods and all(len(pod) == 63 and pod.startswith("w" * 58) for pod in pods)


def test_a_statefulset_whose_pod_names_cannot_be_labels_is_refused(tmp_path: Path) -> None:
    name = "s" * 61  # its last pod, NAME-11, would have 64 characters
    message = start_error(
        deployment("12", kind="StatefulSet").replace("name: web", f"name: {name}"), tmp_path
    )
    assert message == (
        f'StatefulSet "{name}" is invalid: metadata.name: Invalid value: "{name}": must be no more '
        f"than 60 characters (its last pod, {'s' * 20}..., must be a valid label value)"
    )


@pytest.mark.anyio
async def test_a_pod_beyond_the_pod_network_is_403_not_500(fresh: Sandbox) -> None:
    cluster = fresh.cluster
    assert cluster is not None

    def exhaust() -> None:
        cluster._ips = iter(())  # type: ignore[assignment]
        cluster.ips_left = 0

    fresh.call(exhaust)
    async with api_client(fresh) as session:
        code, answer = await send(session, "POST", "/api/v1/namespaces/t/pods", pod_body())
    assert (code, answer["reason"]) == (403, "Forbidden")
    assert answer["message"] == (
        'pods "made" is forbidden: the sandbox has given out all 65534 pod addresses '
        "of 10.244.0.0/16; start a new sandbox for more pods"
    )


ENV_NAME = (
    "a valid environment variable name must consist of alphabetic characters, digits, '_', '-', or '.', "
    "and must not start with a digit (e.g. 'my.env-name',  or 'MY_ENV.NAME',  or 'MyEnvName1', regex used "
    "for validation is '[-._a-zA-Z][-._a-zA-Z0-9]*')"
)


@pytest.mark.anyio
async def test_env_entries_are_checked_before_an_exec_could_trip_on_them(fresh: Sandbox) -> None:
    async with api_client(fresh) as session:
        code, answer = await send(
            session,
            "POST",
            "/api/v1/namespaces/t/pods",
            pod_body(
                env=[
                    {"name": "1ST", "value": "x"},
                    {"value": "y"},
                    {"name": "OK", "value": "a\x00b"},
                ]
            ),
        )
        assert (code, answer) == (
            422,
            invalid(
                "Pod",
                "made",
                [
                    (
                        "FieldValueInvalid",
                        "spec.containers[0].env[0].name",
                        f'Invalid value: "1ST": {ENV_NAME}',
                    ),
                    ("FieldValueRequired", "spec.containers[0].env[1].name", "Required value"),
                    (
                        "FieldValueInvalid",
                        "spec.containers[0].env[2].value",
                        'Invalid value: "a\\u0000b": must not contain a NUL character',
                    ),
                ],
            ),
        )
        code, answer = await send(
            session, "POST", "/api/v1/namespaces/t/pods", pod_body(env=[{"name": 7}])
        )
        assert (code, answer) == (
            400,
            bad_request(
                'Pod in version "v1" cannot be handled as a Pod: spec.containers[0].env[0].name: Invalid value: 7: '
                "expected a string, got number"
            ),
        )
    assert fresh.pods("t") == ["a", "b"]


@pytest.mark.anyio
async def test_a_null_env_value_is_empty_as_go_decodes_it(fresh: Sandbox) -> None:
    async with api_client(fresh) as session:
        code, _ = await send(
            session,
            "POST",
            "/api/v1/namespaces/t/pods",
            pod_body(env=[{"name": "EMPTY", "value": None}]),
        )
        assert code == 201
        params = [
            ("command", "sh"),
            ("command", "-c"),
            ("command", 'printf "[%s]" "$EMPTY"'),
            ("stdout", "true"),
        ]
        stdout = b""
        async with session.ws_connect(
            "/api/v1/namespaces/t/pods/made/exec", params=params, protocols=["v5.channel.k8s.io"]
        ) as ws:
            async for message in ws:
                if message.data[0] == 1:
                    stdout += message.data[1:]
    assert stdout == b"[]"


# -- checked before anything is stored (outside probes) ---------------------------------------------


def pod_folders(fresh: Sandbox) -> list[str]:
    """Every pod folder of namespace ``t`` in the sandbox's state."""
    folder = fresh.state_dir / "fs" / "pods" / "t"
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def annotated(annotations: dict[str, Any], **container: Any) -> dict[str, Any]:
    body = pod_body("probe", **container)
    body["metadata"]["annotations"] = annotations
    return body


FILES = "sandbox.podmagic.io/files"


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("key", "value", "detail"),
    [
        # Each used to answer 400 or 500 while the pod was stored and shown Running.
        (
            FILES,
            "../../../../tmp/x/pwned1: hello",
            "'../../../../tmp/x/pwned1': must not contain '..'",
        ),
        (
            FILES,
            "{[: x",
            "expected a YAML mapping of relative path to text (while parsing a flow node",
        ),
        (FILES, "- a\n- b", "expected a YAML mapping of relative path to text"),
        (
            FILES,
            "a" * 256 + ": x",
            f"'{'a' * 256}': each part between '/' must be no more than 255 bytes (NAME_MAX)",
        ),
        (FILES, "a: x\na/b: y", "'a' is both a file and the folder of 'a/b'"),
        (FILES, "a: [1, 2]", "'a': the content of each path must be text"),
        ("sandbox.podmagic.io/exec-delay", "nan", "expected seconds from 0 to 3600"),
        ("sandbox.podmagic.io/exec-delay", "1e308", "expected seconds from 0 to 3600"),
        ("sandbox.podmagic.io/retry-after", "inf", "expected seconds from 0 to 3600"),
        (
            "sandbox.podmagic.io/throttle",
            str(2**31),
            "expected a whole number from 0 to 2147483647",
        ),
        (
            "sandbox.podmagic.io/phase",
            "Sleeping",
            "expected one of Failed, Pending, Running, Succeeded",
        ),
    ],
)
async def test_sandbox_annotations_are_422_at_create_time_and_nothing_is_stored(
    fresh: Sandbox, tmp_path: Path, key: str, value: str, detail: str
) -> None:
    outside = sorted(str(p) for p in tmp_path.rglob("*") if "state" not in p.parts)
    async with api_client(fresh) as session:
        code, answer = await send(
            session, "POST", "/api/v1/namespaces/t/pods", annotated({key: value})
        )
    assert (code, answer["reason"]) == (422, "Invalid"), answer
    [cause] = answer["details"]["causes"]
    assert cause["field"] == f"metadata.annotations[{key}]"
    assert cause["message"].startswith(f"Invalid value: {json.dumps(value)}: {detail}")
    assert "\n" not in answer["message"]
    assert fresh.pods("t") == ["a", "b"]
    assert "probe" not in pod_folders(fresh)
    assert sorted(str(p) for p in tmp_path.rglob("*") if "state" not in p.parts) == outside


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("working_dir", "detail"),
    [
        (
            "/" + "a" * 5000,
            "must be no more than 2048 bytes (the sandbox's limit)",
        ),  # used to be a 500
        ("/" + "a" * 256, "each part between '/' must be no more than 255 bytes (NAME_MAX)"),
    ],
)
async def test_a_working_dir_too_long_for_the_file_system_is_422_and_creates_nothing(
    fresh: Sandbox, working_dir: str, detail: str
) -> None:
    async with api_client(fresh) as session:
        code, answer = await send(
            session, "POST", "/api/v1/namespaces/t/pods", pod_body(workingDir=working_dir)
        )
    assert (code, answer) == (
        422,
        invalid(
            "Pod",
            "made",
            [
                (
                    "FieldValueInvalid",
                    "spec.containers[0].workingDir",
                    f"Invalid value: {json.dumps(working_dir)}: {detail}",
                )
            ],
        ),
    )
    assert fresh.pods("t") == ["a", "b"] and "made" not in pod_folders(fresh)


@pytest.mark.anyio
async def test_a_pod_whose_files_cannot_be_made_is_not_stored_and_leaves_no_folder(
    fresh: Sandbox,
) -> None:
    # The file "work" is also the container's workingDir: only making the folders can tell.
    body = annotated({FILES: "work: text"}, workingDir="/work")
    async with api_client(fresh) as session:
        code, answer = await send(session, "POST", "/api/v1/namespaces/t/pods", body)
    assert (code, answer["reason"]) == (400, "BadRequest")
    assert answer["message"].startswith("pod probe: its files could not be made (")
    assert fresh.pods("t") == ["a", "b"] and "probe" not in pod_folders(fresh)


@pytest.mark.anyio
async def test_a_token_ttl_too_large_for_a_float_is_400_with_a_cause(fresh: Sandbox) -> None:
    digits = "1" + "0" * 400  # used to be a 500 (OverflowError in math.isfinite)
    async with api_client(fresh) as session:
        code, answer = await send(
            session, "POST", "/sandbox/tokens", data=f'{{"ttl": {digits}}}'.encode()
        )
    assert (code, answer["reason"]) == (400, "BadRequest")
    assert answer["details"]["causes"] == [
        {
            "reason": "FieldValueInvalid",
            "field": "ttl",
            "message": f"Invalid value: {digits}: must be above 0 and at most 4294967296 seconds",
        }
    ]


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("change", "field", "got"),
    [
        (
            {"env": [{"name": "N", "value": 5}]},
            "spec.containers[0].env[0].value",
            "5: expected a string, got number",
        ),
        (
            {"args": ["sleep", 5]},
            "spec.containers[0].args",
            "expected an array of strings, got array",
        ),
        ({"labels": {"tier": 2}}, "metadata.labels[tier]", "2: expected a string, got number"),
        (
            {"annotations": {"on": True}},
            "metadata.annotations[on]",
            "true: expected a string, got boolean",
        ),
    ],
)
async def test_values_that_are_not_strings_are_400_as_the_api_server_cannot_decode_them(
    fresh: Sandbox, change: dict[str, Any], field: str, got: str
) -> None:
    body = pod_body()
    for key, value in change.items():
        (body["metadata"] if key in ("labels", "annotations") else body["spec"]["containers"][0])[
            key
        ] = value
    async with api_client(fresh) as session:
        code, answer = await send(session, "POST", "/api/v1/namespaces/t/pods", body)
    assert (code, answer) == (
        400,
        bad_request(
            f'Pod in version "v1" cannot be handled as a Pod: {field}: Invalid value: {got}'
        ),
    )
    assert fresh.pods("t") == ["a", "b"]


@pytest.mark.anyio
async def test_an_unsupported_field_ref_path_is_422_with_the_supported_values(
    fresh: Sandbox,
) -> None:
    env = [
        {"name": "X", "valueFrom": {"fieldRef": {"fieldPath": "metadata.nope"}}},
        {"name": "L", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
    ]
    async with api_client(fresh) as session:
        code, answer = await send(session, "POST", "/api/v1/namespaces/t/pods", pod_body(env=env))
    assert (code, answer) == (
        422,
        invalid(
            "Pod",
            "made",
            [
                (
                    "FieldValueNotSupported",
                    "spec.containers[0].env[0].valueFrom.fieldRef.fieldPath",
                    (
                        'Unsupported value: "metadata.nope": supported values: "metadata.name", "metadata.namespace", '
                        '"metadata.uid", "spec.nodeName", "spec.serviceAccountName", "status.hostIP", "status.hostIPs", '
                        '"status.podIP", "status.podIPs"'
                    ),
                )
            ],
        ),
    )


async def run_exec(
    session: aiohttp.ClientSession, pod: str, command: list[str]
) -> tuple[bytes, dict[str, Any], int | None]:
    """One exec to its end within a generous bound: (stdout, status frame, close code)."""
    params = [("command", part) for part in command] + [("stdout", "true")]
    stdout, frames = b"", []
    async with session.ws_connect(
        f"/api/v1/namespaces/t/pods/{pod}/exec",
        params=params,
        protocols=["v5.channel.k8s.io"],
        timeout=aiohttp.ClientWSTimeout(ws_close=10),
    ) as ws:
        with anyio.fail_after(15):
            async for message in ws:
                if message.data[0] == 1:
                    stdout += message.data[1:]
                elif message.data[0] == 3:
                    frames.append(json.loads(message.data[1:]))
        code = ws.close_code
    assert len(frames) == 1, frames
    return stdout, frames[0], code


@pytest.mark.anyio
async def test_a_working_dir_with_backslashes_stays_inside_the_container_root(
    fresh: Sandbox, tmp_path: Path
) -> None:
    # Backslashes are ordinary characters in Linux names: "/..\..\x" is one folder, in the root.
    async with api_client(fresh) as session:
        code, _ = await send(
            session, "POST", "/api/v1/namespaces/t/pods", pod_body(workingDir="/..\\..\\x")
        )
        assert code == 201
        stdout, status_frame, _ = await run_exec(session, "made", ["pwd"])
    root = fresh.state_dir / "fs" / "pods" / "t" / "made" / "main"
    assert status_frame["status"] == "Success"
    if fresh.isolation == "namespaces":  # the container's folder is its /
        assert stdout.decode().strip() == "/..\\..\\x"
        assert (root / "..\\..\\x").is_dir() and not (root.parent / "x").exists()
        return
    assert Path(stdout.decode().strip()) == root.resolve() / "..\\..\\x"
    assert [p.name for p in root.iterdir()] == ["..\\..\\x"]


@pytest.mark.anyio
async def test_an_exec_whose_process_cannot_start_gets_a_failure_status_and_a_clean_close(
    fresh: Sandbox, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import podmagic.sandbox._exec as exec_module

    async def cannot_start(spec: Any) -> Any:
        raise OSError(7, "Argument list too long")

    # Used to escape the handler after the upgrade: the client saw a broken WebSocket only
    # when its ping timed out.
    monkeypatch.setattr(exec_module, "start_process", cannot_start)
    with caplog.at_level(logging.ERROR, logger="podmagic.sandbox"):
        async with api_client(fresh) as session:
            stdout, status_frame, close_code = await run_exec(session, "a", ["true"])
    assert (stdout, close_code) == (b"", 1000)
    assert status_frame == {
        "metadata": {},
        "status": "Failure",
        "reason": "InternalError",
        "code": 500,
        "message": (
            "Internal error occurred: error executing command in container: failed to exec in container: "
            "failed to start exec: the sandbox could not start the process (OSError); its log "
            "(logger podmagic.sandbox) has the details"
        ),
        "details": {
            "causes": [
                {
                    "message": (
                        "error executing command in container: failed to exec in container: failed to start exec: the sandbox "
                        "could not start the process (OSError); its log (logger podmagic.sandbox) has the details"
                    )
                }
            ]
        },
    }
    assert "Argument list too long" in caplog.text


def test_annotate_refuses_delays_that_are_not_finite(fresh: Sandbox) -> None:
    from podmagic.sandbox._behaviour import BehaviourError

    for value in ("nan", "1e308", "-1"):
        with pytest.raises(
            BehaviourError, match=r"exec-delay: expected seconds from 0 to 3600, got "
        ):
            fresh.annotate("a", {"sandbox.podmagic.io/exec-delay": value}, namespace="t")


@pytest.mark.kubectl
def test_kubectl_prints_a_bad_sandbox_annotation_as_a_real_cluster_prints_an_invalid_field(
    kubectl_factory: Callable[[str], Any], sandbox: Sandbox, tmp_path: Path
) -> None:
    manifest = tmp_path / "files.yaml"
    manifest.write_text(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: files1\n  annotations:\n"
        "    sandbox.podmagic.io/files: '../../../../tmp/x/pwned1: hello'\n"
        "spec: {containers: [{name: c, image: i}]}\n"
    )
    result = kubectl_factory("1.33")(
        "create", "-n", "conf", "-f", str(manifest), "--validate=false"
    )
    assert (result.returncode, result.stderr.decode()) == (
        1,
        (
            'The Pod "files1" is invalid: metadata.annotations[sandbox.podmagic.io/files]: Invalid value: '
            "\"../../../../tmp/x/pwned1: hello\": '../../../../tmp/x/pwned1': must not contain '..'\n"
        ),
    )
    assert "files1" not in sandbox.pods("conf")


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("container", "spec", "cause"),
    [
        (
            {"ports": [{"containerPort": 99999}]},
            {},
            (
                "FieldValueInvalid",
                "spec.containers[0].ports[0].containerPort",
                "Invalid value: 99999: must be between 1 and 65535, inclusive",
            ),
        ),
        (
            {"volumeMounts": [{"name": "data", "mountPath": "/data"}]},
            {},
            ("FieldValueNotFound", "spec.containers[0].volumeMounts[0].name", 'Not found: "data"'),
        ),
        (
            {},
            {"restartPolicy": "Sometimes"},
            (
                "FieldValueNotSupported",
                "spec.restartPolicy",
                'Unsupported value: "Sometimes": supported values: "Always", "OnFailure", "Never"',
            ),
        ),
    ],
    ids=["port-range", "mount-without-volume", "restart-policy"],
)
async def test_pod_spec_rules_of_the_api_server_are_422_with_the_cause(
    fresh: Sandbox, container: dict[str, Any], spec: dict[str, Any], cause: tuple[str, str, str]
) -> None:
    body = pod_body(**container)
    body["spec"].update(spec)
    async with api_client(fresh) as session:
        assert await send(session, "POST", "/api/v1/namespaces/t/pods", body) == (
            422,
            invalid("Pod", "made", [cause]),
        )
    assert fresh.pods("t") == ["a", "b"]


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("metadata", "message"),
    [
        (
            {"ownerReferences": {"kind": "X"}},
            "metadata.ownerReferences: Invalid value: expected an array of objects, got object",
        ),
        (
            {"ownerReferences": [5]},
            "metadata.ownerReferences[0]: Invalid value: 5: expected an object, got number",
        ),
    ],
    ids=["map", "number"],
)
async def test_owner_references_of_the_wrong_shape_are_400_not_500(
    fresh: Sandbox, metadata: dict[str, Any], message: str
) -> None:
    body = pod_body()
    body["metadata"].update(metadata)
    async with api_client(fresh) as session:
        assert await send(session, "POST", "/api/v1/namespaces/t/pods", body) == (
            400,
            bad_request(f'Pod in version "v1" cannot be handled as a Pod: {message}'),
        )
