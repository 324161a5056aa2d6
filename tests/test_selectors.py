"""Label and pod field selectors: matching, canonical text, and apimachinery's error texts."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from podmagic._selectors import (
    FieldRequirement,
    FieldSelector,
    LabelSelector,
    Requirement,
    SelectorError,
    parse_label_selector,
    pod_field_value,
)

# Expected texts are spelled out in full (from k8s.io/apimachinery, Kubernetes 1.32) rather than
# assembled from the module's own helpers, so a drift in either place fails here.
NAME_PART = (
    "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end "
    "with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for "
    "validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"
)
QUALIFIED_NAME = (
    "a qualified name must consist of alphanumeric characters, '-', '_' or '.', and must start "
    "and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex "
    "used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]') with an optional DNS "
    "subdomain prefix and '/' (e.g. 'example.com/MyName')"
)
PREFIX_PART = (
    "prefix part a lowercase RFC 1123 subdomain must consist of lower case alphanumeric "
    "characters, '-' or '.', and must start and end with an alphanumeric character (e.g. "
    "'example.com', regex used for validation is "
    "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
)
LABEL_VALUE = (
    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or "
    "'.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or "
    "'my_value',  or '12345', regex used for validation is "
    "'(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"
)
PARSE = "unable to parse requirement: "
BINARY_OPS = "in, notin, =, ==, !=, gt, lt"
LONG = "a" * 64

WEB = {"app": "web", "tier": "front", "replicas": "3", "app.kubernetes.io/name": "web"}


# -- label matching -------------------------------------------------------------------------

MATCHING = [
    # selector, labels, expected
    ("", {}, True),
    ("", WEB, True),
    ("app=web", WEB, True),
    ("app=db", WEB, False),
    ("app=web", {}, False),
    ("app==web", WEB, True),
    ("app==db", WEB, False),
    ("app!=db", WEB, True),
    ("app!=web", WEB, False),
    ("app!=web", {}, True),  # != also matches objects without the key
    ("app in (db,web)", WEB, True),
    ("app in (db,cache)", WEB, False),
    ("app in (web)", {}, False),
    ("app notin (db,cache)", WEB, True),
    ("app notin (db,web)", WEB, False),
    ("app notin (web)", {}, True),  # notin also matches objects without the key
    ("app", WEB, True),
    ("app", {"other": "x"}, False),
    ("!app", WEB, False),
    ("!app", {}, True),  # the key is absent
    ("!app", {"app": ""}, False),  # present with an empty value is still present
    ("replicas>2", WEB, True),
    ("replicas>3", WEB, False),
    ("replicas<4", WEB, True),
    ("replicas<3", WEB, False),
    ("replicas>2", {}, False),
    ("replicas<9", {}, False),
    ("app>1", WEB, False),  # "web" is not an integer
    ("app<1", WEB, False),
    ("n>1", {"n": "+2"}, True),  # Go's ParseInt accepts a sign
    ("n<1", {"n": "-2"}, True),
    ("n>1", {"n": "2.5"}, False),
    ("n>1", {"n": " 2"}, False),
    ("n>1", {"n": "1_0"}, False),
    ("n>1", {"n": "\u0663"}, False),  # ARABIC-INDIC DIGIT THREE is not a Go digit
    ("n>1", {"n": "9223372036854775808"}, False),  # overflows int64
    ("n<1", {"n": "-9223372036854775808"}, True),
    ("k=", {"k": ""}, True),
    ("k=", {}, False),
    ("k in (a,)", {"k": ""}, True),
    ("k in (a,)", {"k": "a"}, True),
    ("k in ()", {"k": ""}, True),
    ("k notin (,a)", {"k": ""}, False),
    ("app=web,tier=front", WEB, True),
    ("app=web,tier=back", WEB, False),
    ("app=web,!gone,replicas>1,tier in (front)", WEB, True),
    ("app.kubernetes.io/name=web", WEB, True),
    ("app.kubernetes.io/name=db", WEB, False),
    ("app.kubernetes.io/name", WEB, True),
    ("!app.kubernetes.io/name", WEB, False),
    ("  app = web ,\ttier\nin ( front , back )\r", WEB, True),
    ("app=web", None, False),
    ("!app", None, True),
    ("", None, True),
]


@pytest.mark.parametrize(("text", "labels", "expected"), MATCHING)
def test_label_selector_matching(text: str, labels: dict[str, str] | None, expected: bool) -> None:
    assert LabelSelector.parse(text).matches(labels) is expected


@pytest.mark.parametrize(
    ("key", "operator", "values", "labels", "expected"),
    [
        ("k", "=", ("v",), {"k": "v"}, True),
        ("k", "!=", ("v",), {}, True),
        ("k", "in", ("a", "b"), {"k": "b"}, True),
        ("k", "notin", ("a", "b"), {"k": "b"}, False),
        ("k", "exists", (), {"k": "x"}, True),
        ("k", "!", (), {"k": "x"}, False),
        ("k", "gt", ("10",), {"k": "11"}, True),
        ("k", "lt", ("10",), {"k": "10"}, False),
    ],
)
def test_requirement_matches_directly(
    key: str, operator: str, values: tuple[str, ...], labels: dict[str, str], expected: bool
) -> None:
    assert Requirement(key, operator, values).matches(labels) is expected


# -- canonical text -------------------------------------------------------------------------

CANONICAL = [
    ("", ""),
    ("a=b", "a=b"),
    ("a==b", "a==b"),
    ("a!=b", "a!=b"),
    ("  a  =  b  ", "a=b"),
    ("a=", "a="),
    ("x in (b,a,b)", "x in (a,b)"),
    ("x notin ( b , a )", "x notin (a,b)"),
    ("x in (a,)", "x in (,a)"),
    ("x in ()", "x in ()"),
    ("x in (,,,)", "x in ()"),
    ("x in (a,,b)", "x in (,a,b)"),
    ("k", "k"),
    ("!k", "!k"),
    ("! k", "!k"),
    ("k>5", "k>5"),
    ("k < 5", "k<5"),
    ("z=1,a=2,m", "a=2,m,z=1"),  # sorted by key, as Selector.String() is
    ("b=2,a=1,b!=3", "a=1,b=2,b!=3"),  # equal keys keep their order
    ("app.kubernetes.io/name=web", "app.kubernetes.io/name=web"),
    ("x in (in,notin)", "x in (in,notin)"),  # keywords are plain words in value position
    ("in=notin", "in=notin"),
    ("notin", "notin"),
    # A NUL that ends a token is swallowed by Go's lexer, so "c=\0d" reads as "c=d".
    ("a=b,c=\0d", "a=b,c=d"),
]


@pytest.mark.parametrize(("text", "canonical"), CANONICAL)
def test_label_selector_canonical_text(text: str, canonical: str) -> None:
    assert str(LabelSelector.parse(text)) == canonical


@pytest.mark.parametrize("text", [text for text, _ in CANONICAL])
def test_label_selector_round_trip(text: str) -> None:
    selector = LabelSelector.parse(text)
    assert LabelSelector.parse(str(selector)) == selector


def test_parse_structure_and_alias() -> None:
    selector = parse_label_selector("tier notin (b, a), app")
    assert selector.requirements == (
        Requirement("app", "exists"),
        Requirement("tier", "notin", ("a", "b")),
    )
    assert selector == LabelSelector.parse("app,tier notin (a,b)")
    assert parse_label_selector("") == LabelSelector()


def test_requirement_values_are_normalised() -> None:
    requirement = Requirement("k", "in", ("b", "a", "b"))
    assert requirement.values == ("a", "b")
    assert requirement == Requirement("k", "in", ("a", "b"))
    assert hash(requirement) == hash(Requirement("k", "in", ("a", "b")))
    assert str(requirement) == "k in (a,b)"
    with pytest.raises(dataclasses.FrozenInstanceError):
        requirement.key = "other"  # type: ignore[misc]


def test_is_empty() -> None:
    assert LabelSelector.parse("").is_empty
    assert LabelSelector.parse("  ").is_empty
    assert not LabelSelector.parse("a").is_empty


def test_and_combines_and_sorts() -> None:
    combined = LabelSelector.parse("z=1") & LabelSelector.parse("a in (x),!m")
    assert str(combined) == "a in (x),!m,z=1"
    assert combined.matches({"a": "x", "z": "1"})
    assert not combined.matches({"a": "x", "z": "1", "m": "here"})
    assert LabelSelector() & LabelSelector() == LabelSelector()


# -- parse errors ---------------------------------------------------------------------------

PARSE_ERRORS = [
    ("a (", PARSE + "found '(', expected: " + BINARY_OPS),
    ("x(a)", PARSE + "found '(', expected: " + BINARY_OPS),
    ("a b", PARSE + "found 'b', expected: " + BINARY_OPS),
    ("a=b c", "found 'c', expected: ',' or 'end of string'"),
    ("a=b)", "found ')', expected: ',' or 'end of string'"),
    ("!a=b", "found '=', expected: ',' or 'end of string'"),
    ("a,", "found '', expected: identifier after ','"),
    ("a,,b", "found ',', expected: identifier after ','"),
    (",a", "found ',', expected: !, identifier, or 'end of string'"),
    ("=a", "found '=', expected: !, identifier, or 'end of string'"),
    ("!", PARSE + "found '', expected: identifier"),
    ("!=a", "found '!=', expected: !, identifier, or 'end of string'"),
    ("a=(b)", PARSE + "found '(', expected: identifier"),
    ("a=!b", PARSE + "found '!', expected: identifier"),
    ("a in", PARSE + "found '' expected: '('"),
    ("a in b", PARSE + "found 'b' expected: '('"),
    ("a in (=)", PARSE + "found '=', expected: ',', ')' or identifier"),
    ("a in (b c)", PARSE + "found 'c', expected: ',' or ')'"),
    ("a in (b", PARSE + "found '', expected: ',' or ')'"),
    ("a in (b,=)", PARSE + "found '=', expected: ',', or identifier"),
    ("a in (b,", PARSE + "found '', expected: ',', or identifier"),
    # Kubernetes 1.32 swallows the second comma of ",," and then trips over ")".
    ("a in (b,,)", PARSE + "found ')', expected: ',', or identifier"),
    ("a in (,,)", PARSE + "found ')', expected: ',', or identifier"),
    # Go's lexer reads NUL as the end of input where a token would start.
    ("a=b, \0junk", "found '', expected: identifier after ','"),
    # invalid keys: the parser reports them with a nil field path
    ("-x=1", PARSE + '<nil>: Invalid value: "-x": ' + NAME_PART),
    ("x-", PARSE + '<nil>: Invalid value: "x-": ' + NAME_PART),
    ('a"b', PARSE + '<nil>: Invalid value: "a\\"b": ' + NAME_PART),
    ("a/b/c=1", PARSE + '<nil>: Invalid value: "a/b/c": ' + QUALIFIED_NAME),
    ("/a", PARSE + '<nil>: Invalid value: "/a": prefix part must be non-empty'),
    ("a/", PARSE + '<nil>: Invalid value: "a/": name part must be non-empty; ' + NAME_PART),
    ("Example.com/a", PARSE + '<nil>: Invalid value: "Example.com/a": ' + PREFIX_PART),
    (LONG, PARSE + f'<nil>: Invalid value: "{LONG}": name part must be no more than 63 characters'),
    (
        "a" * 254 + "/b",
        PARSE + f'<nil>: Invalid value: "{"a" * 254}/b": prefix part must be no more than 253 '
        "characters",
    ),
    # invalid values
    ("app=-x", PARSE + 'values[0][app]: Invalid value: "-x": ' + LABEL_VALUE),
    ("app!=x.", PARSE + 'values[0][app]: Invalid value: "x.": ' + LABEL_VALUE),
    (
        "app in (ok,-x)",
        PARSE + 'values[0][app]: Invalid value: "-x": ' + LABEL_VALUE,  # sorted: "-x" < "ok"
    ),
    (
        "k in (-a,-b)",
        PARSE
        + '[values[0][k]: Invalid value: "-a": '
        + LABEL_VALUE
        + ', values[1][k]: Invalid value: "-b": '
        + LABEL_VALUE
        + "]",
    ),
    (
        f"k={LONG}",
        PARSE + f'values[0][k]: Invalid value: "{LONG}": must be no more than 63 characters',
    ),
    (
        f"k={LONG}-",
        PARSE
        + f'values[0][k]: Invalid value: "{LONG}-": must be no more than 63 characters; '
        + LABEL_VALUE,
    ),
    # gt / lt bounds
    (
        "k>abc",
        PARSE + "values[0]: Invalid value: \"abc\": for 'Gt', 'Lt' operators, the value "
        "must be an integer",
    ),
    (
        "k<1.5",
        PARSE + "values[0]: Invalid value: \"1.5\": for 'Gt', 'Lt' operators, the value "
        "must be an integer",
    ),
    (
        "k>",
        PARSE + "values[0]: Invalid value: \"\": for 'Gt', 'Lt' operators, the value must be "
        "an integer",
    ),
    ("k>-1", PARSE + 'values[0][k]: Invalid value: "-1": ' + LABEL_VALUE),
    (
        "k>9223372036854775808",
        PARSE + "values[0]: Invalid value: \"9223372036854775808\": for 'Gt', 'Lt' operators, "
        "the value must be an integer",
    ),
]


@pytest.mark.parametrize(("text", "message"), PARSE_ERRORS)
def test_label_selector_parse_errors(text: str, message: str) -> None:
    with pytest.raises(SelectorError) as caught:
        LabelSelector.parse(text)
    assert str(caught.value) == message


def test_selector_error_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="^found ',', expected"):
        LabelSelector.parse(",")


REQUIREMENT_ERRORS = [
    (
        "k",
        "like",
        ("x",),
        (
            'operator: Unsupported value: "like": supported values: "in", "notin", "=", "==", '
            '"!=", "gt", "lt", "exists", "!"'
        ),
    ),
    (
        "k",
        "in",
        (),
        (
            "values: Invalid value: []string{}: for 'in', 'notin' operators, values set "
            "can't be empty"
        ),
    ),
    (
        "k",
        "=",
        ("a", "b"),
        (
            'values: Invalid value: []string{"a", "b"}: exact-match compatibility '
            "requires one single value"
        ),
    ),
    (
        "k",
        "!=",
        (),
        ("values: Invalid value: []string{}: exact-match compatibility requires one single value"),
    ),
    (
        "k",
        "exists",
        ("a",),
        (
            'values: Invalid value: []string{"a"}: values set must be empty for '
            "exists and does not exist"
        ),
    ),
    (
        "k",
        "gt",
        ("1", "2"),
        (
            "values: Invalid value: []string{\"1\", \"2\"}: for 'Gt', 'Lt' "
            "operators, exactly one value is required"
        ),
    ),
    ("-k", "exists", (), 'key: Invalid value: "-k": ' + NAME_PART),
    (
        "-k",
        "=",
        ("-v",),
        '[key: Invalid value: "-k": '
        + NAME_PART
        + ', values[0][-k]: Invalid value: "-v": '
        + LABEL_VALUE
        + "]",
    ),
]


@pytest.mark.parametrize(("key", "operator", "values", "message"), REQUIREMENT_ERRORS)
def test_requirement_construction_errors(
    key: str, operator: str, values: tuple[str, ...], message: str
) -> None:
    with pytest.raises(SelectorError) as caught:
        Requirement(key, operator, values)
    assert str(caught.value) == message


# -- workload spec.selector -----------------------------------------------------------------


def test_from_spec_match_labels_and_expressions() -> None:
    selector = LabelSelector.from_spec(
        {
            "matchLabels": {"app": "web", "app.kubernetes.io/part-of": "shop"},
            "matchExpressions": [
                {"key": "tier", "operator": "In", "values": ["front", "edge"]},
                {"key": "env", "operator": "NotIn", "values": ["dev"]},
                {"key": "release", "operator": "Exists"},
                {"key": "canary", "operator": "DoesNotExist", "values": []},
            ],
        }
    )
    assert str(selector) == (
        "app=web,app.kubernetes.io/part-of=shop,!canary,env notin (dev),release,"
        "tier in (edge,front)"
    )
    assert LabelSelector.parse(str(selector)) == selector
    pod = {"app": "web", "app.kubernetes.io/part-of": "shop", "tier": "edge", "release": "1"}
    assert selector.matches(pod)
    assert not selector.matches({**pod, "canary": "yes"})
    assert not selector.matches({**pod, "env": "dev"})
    assert not selector.matches({**pod, "tier": "back"})
    assert not selector.matches({k: v for k, v in pod.items() if k != "release"})


@pytest.mark.parametrize(
    "spec", [{}, {"matchLabels": {}, "matchExpressions": []}, {"matchLabels": None}]
)
def test_from_spec_empty_matches_everything(spec: dict[str, Any]) -> None:
    selector = LabelSelector.from_spec(spec)
    assert selector.is_empty
    assert selector.matches({"anything": "at-all"})
    assert str(selector) == ""


FROM_SPEC_ERRORS = [
    (
        {"matchExpressions": [{"key": "a", "operator": "Equals", "values": ["x"]}]},
        '"Equals" is not a valid label selector operator',
    ),
    ({"matchExpressions": [{"key": "a"}]}, '"" is not a valid label selector operator'),
    (
        {"matchExpressions": [{"key": "a", "operator": "In"}]},
        (
            "values: Invalid value: []string(nil): for 'in', 'notin' operators, values set can't be "
            "empty"
        ),
    ),
    (
        {"matchExpressions": [{"key": "a", "operator": "NotIn", "values": []}]},
        (
            "values: Invalid value: []string(nil): for 'in', 'notin' operators, values set can't be "
            "empty"
        ),
    ),
    (
        {"matchExpressions": [{"key": "a", "operator": "Exists", "values": ["x"]}]},
        (
            'values: Invalid value: []string{"x"}: values set must be empty for exists and does not '
            "exist"
        ),
    ),
    (
        {"matchExpressions": [{"key": "a", "operator": "In", "values": ["ok", "-x"]}]},
        'values[1][a]: Invalid value: "-x": ' + LABEL_VALUE,
    ),
    ({"matchLabels": {"-bad": "v"}}, 'key: Invalid value: "-bad": ' + NAME_PART),
    ({"matchLabels": {"app": "-v"}}, 'values[0][app]: Invalid value: "-v": ' + LABEL_VALUE),
]


@pytest.mark.parametrize(("spec", "message"), FROM_SPEC_ERRORS)
def test_from_spec_errors(spec: dict[str, Any], message: str) -> None:
    with pytest.raises(SelectorError) as caught:
        LabelSelector.from_spec(spec)
    assert str(caught.value) == message


# -- pod field selectors --------------------------------------------------------------------


def make_pod(**overrides: Any) -> dict[str, Any]:
    pod: dict[str, Any] = {
        "metadata": {"name": "web-0", "namespace": "shop"},
        "spec": {
            "nodeName": "node-a",
            "restartPolicy": "Always",
            "schedulerName": "default-scheduler",
            "serviceAccountName": "runner",
        },
        "status": {
            "phase": "Running",
            "podIP": "10.0.0.7",
            "podIPs": [{"ip": "10.0.0.7"}, {"ip": "fd00::7"}],
            "nominatedNodeName": "node-b",
        },
    }
    for path, value in overrides.items():
        section, key = path.split("__")
        if value is None:
            pod[section].pop(key, None)
        else:
            pod[section][key] = value
    return pod


POD = make_pod()
BARE_POD: dict[str, Any] = {"metadata": {"name": "bare"}}

FIELD_MATCHING = [
    ("", POD, True),
    ("metadata.name=web-0", POD, True),
    ("metadata.name==web-0", POD, True),
    ("metadata.name=web-1", POD, False),
    ("metadata.name!=web-1", POD, True),
    ("metadata.name!=web-0", POD, False),
    ("metadata.namespace=shop,status.phase=Running", POD, True),
    ("metadata.namespace=shop,status.phase!=Running", POD, False),
    ("spec.nodeName=node-a", POD, True),
    ("spec.host=node-a", POD, True),  # legacy alias of spec.nodeName
    ("spec.restartPolicy=Always", POD, True),
    ("spec.schedulerName=default-scheduler", POD, True),
    ("spec.serviceAccountName=runner", POD, True),
    (
        "spec.serviceAccountName=old",
        make_pod(spec__serviceAccountName=None, spec__serviceAccount="old"),
        True,
    ),
    ("spec.hostNetwork=false", POD, True),
    ("spec.hostNetwork=true", make_pod(spec__hostNetwork=True), True),
    ("spec.hostNetwork=false", make_pod(spec__hostNetwork=True), False),
    ("status.podIP=10.0.0.7", POD, True),
    ("status.podIP=fd00::7", POD, False),  # podIP is the first of podIPs
    ("status.podIPs=10.0.0.7", POD, True),
    ("status.podIPs=fd00::7", POD, True),
    ("status.podIPs=10.0.0.8", POD, False),
    ("status.podIPs!=fd00::7", POD, False),
    ("status.podIPs!=10.0.0.8", POD, True),
    ("status.podIPs=10.1.1.1", make_pod(status__podIPs=None, status__podIP="10.1.1.1"), True),
    ("status.podIP=10.1.1.1", make_pod(status__podIPs=[], status__podIP="10.1.1.1"), True),
    ("status.nominatedNodeName=node-b", POD, True),
    # missing fields read as ""
    ("spec.nodeName=", BARE_POD, True),
    ("spec.nodeName!=", BARE_POD, False),
    ("status.phase=", BARE_POD, True),
    ("status.podIP=", BARE_POD, True),
    ("status.podIPs=", BARE_POD, True),
    ("status.podIPs!=", POD, True),
    ("spec.hostNetwork=false", BARE_POD, True),
    ("metadata.namespace=", BARE_POD, True),
    ("spec.nodeName=node-a", {"spec": None}, False),  # a null section is not an error
    # escapes
    ("metadata.name=a\\,b", make_pod(metadata__name="a,b"), True),
    ("metadata.name=a\\=b", make_pod(metadata__name="a=b"), True),
    ("metadata.name=a\\\\b", make_pod(metadata__name="a\\b"), True),
    ("metadata.name=a\\,b,status.phase=Running", make_pod(metadata__name="a,b"), True),
    ("metadata.name!=a\\,b", make_pod(metadata__name="a,b"), False),
    (",metadata.name=web-0,", POD, True),  # empty terms are skipped
]


@pytest.mark.parametrize(("text", "pod", "expected"), FIELD_MATCHING)
def test_field_selector_matching(text: str, pod: dict[str, Any], expected: bool) -> None:
    assert FieldSelector.parse(text).matches_pod(pod) is expected


FIELD_CANONICAL = [
    ("", ""),
    ("metadata.name==web", "metadata.name=web"),
    ("status.phase!=Failed,metadata.name=web", "metadata.name=web,status.phase!=Failed"),
    ("spec.host=n1", "spec.nodeName=n1"),
    ("metadata.name=a\\,b\\=c\\\\d", "metadata.name=a\\,b\\=c\\\\d"),
    ("metadata.name==b,metadata.name=a", "metadata.name=a,metadata.name=b"),
]


@pytest.mark.parametrize(("text", "canonical"), FIELD_CANONICAL)
def test_field_selector_canonical_text(text: str, canonical: str) -> None:
    selector = FieldSelector.parse(text)
    assert str(selector) == canonical
    assert FieldSelector.parse(str(selector)) == selector


def test_field_selector_structure() -> None:
    selector = FieldSelector.parse("status.phase!=Failed,metadata.name==a\\,b")
    assert selector.terms == (
        FieldRequirement("metadata.name", "=", "a,b"),
        FieldRequirement("status.phase", "!=", "Failed"),
    )
    assert not selector.is_empty
    assert FieldSelector.parse("").is_empty


FIELD_ERRORS = [
    ("spec.containers=x", "field label not supported: spec.containers"),
    ("metadata.labels=x", "field label not supported: metadata.labels"),
    ("metadata.name = web", "field label not supported: metadata.name "),  # no trimming
    ("=web", "field label not supported: "),
    # terms are sorted before checking, so the first unsupported one in sort order is named
    ("zeta=1,alpha=2", "field label not supported: alpha"),
    # syntax errors win over unsupported fields, whatever their order
    ("alpha=1,zeta", "invalid selector: 'alpha=1,zeta'; can't understand 'zeta'"),
    ("metadata.name", "invalid selector: 'metadata.name'; can't understand 'metadata.name'"),
    ("metadata.name=a=b", "invalid field selector: unescaped character in value: 61"),
    ("metadata.name!==b", "invalid field selector: unescaped character in value: 61"),
    ("metadata.name=a\\x", "invalid field selector: invalid escape sequence: \\x"),
    ("metadata.name=a\\", "invalid field selector: invalid escape sequence: \\"),
]


@pytest.mark.parametrize(("text", "message"), FIELD_ERRORS)
def test_field_selector_errors(text: str, message: str) -> None:
    with pytest.raises(SelectorError) as caught:
        FieldSelector.parse(text)
    assert str(caught.value) == message


@pytest.mark.parametrize(
    ("field", "pod", "value"),
    [
        ("metadata.name", POD, "web-0"),
        ("metadata.namespace", POD, "shop"),
        ("spec.nodeName", POD, "node-a"),
        ("spec.host", POD, "node-a"),
        ("spec.restartPolicy", POD, "Always"),
        ("spec.schedulerName", POD, "default-scheduler"),
        ("spec.serviceAccountName", POD, "runner"),
        ("spec.hostNetwork", POD, "false"),
        ("spec.hostNetwork", make_pod(spec__hostNetwork=True), "true"),
        ("status.phase", POD, "Running"),
        ("status.podIP", POD, "10.0.0.7"),
        ("status.podIPs", POD, "10.0.0.7,fd00::7"),
        ("status.nominatedNodeName", POD, "node-b"),
        ("status.phase", BARE_POD, ""),
        ("status.podIPs", BARE_POD, ""),
        ("spec.nodeName", {}, ""),
    ],
)
def test_pod_field_value(field: str, pod: dict[str, Any], value: str) -> None:
    assert pod_field_value(pod, field) == value


def test_pod_field_value_unsupported() -> None:
    with pytest.raises(SelectorError) as caught:
        pod_field_value(POD, "status.hostIP")
    assert str(caught.value) == "field label not supported: status.hostIP"


def test_field_requirement_rejects_unknown_operator() -> None:
    with pytest.raises(SelectorError, match="unsupported field selector operator"):
        FieldRequirement("metadata.name", "in", "x")
