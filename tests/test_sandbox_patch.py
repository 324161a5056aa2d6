"""The sandbox's PATCH flavours: JSON merge (RFC 7386), strategic merge, JSON patch (RFC 6902)."""

from __future__ import annotations

import pytest

from podmagic.sandbox._patch import PatchError, json_patch, merge_patch, strategic_merge_patch

POD_SPEC = {
    "containers": [
        {"name": "a", "image": "busybox", "env": [{"name": "X", "value": "1"}]},
        {"name": "b", "image": "alpine", "ports": [{"containerPort": 80}]},
    ],
    "tolerations": [{"key": "k", "operator": "Exists"}],
}


def test_merge_patch_merges_maps_deletes_nulls_and_replaces_lists() -> None:
    target = {"a": {"b": 1, "c": 2}, "l": [1, 2], "gone": True}
    patched = merge_patch(target, {"a": {"c": None, "d": 3}, "l": [3], "gone": None})
    assert patched == {"a": {"b": 1, "d": 3}, "l": [3]}
    assert target == {"a": {"b": 1, "c": 2}, "l": [1, 2], "gone": True}  # untouched


def test_strategic_merge_merges_containers_by_name_and_env_by_name() -> None:
    patch = {
        "containers": [
            {"name": "a", "env": [{"name": "Y", "value": "2"}]},
            {"name": "c", "image": "new"},
        ]
    }
    patched = strategic_merge_patch(POD_SPEC, patch)
    names = [c["name"] for c in patched["containers"]]
    assert names == ["a", "b", "c"]
    assert patched["containers"][0]["image"] == "busybox"
    assert patched["containers"][0]["env"] == [
        {"name": "X", "value": "1"},
        {"name": "Y", "value": "2"},
    ]


def test_strategic_merge_replaces_a_list_without_merge_key() -> None:
    patched = strategic_merge_patch(POD_SPEC, {"tolerations": [{"key": "z"}]})
    assert patched["tolerations"] == [{"key": "z"}]


def test_strategic_merge_directives() -> None:
    deleted = strategic_merge_patch(POD_SPEC, {"containers": [{"name": "b", "$patch": "delete"}]})
    assert [c["name"] for c in deleted["containers"]] == ["a"]
    replaced = strategic_merge_patch(
        {"metadata": {"labels": {"a": "1", "b": "2"}}},
        {"metadata": {"labels": {"$patch": "replace", "c": "3"}}},
    )
    assert replaced == {"metadata": {"labels": {"c": "3"}}}
    ordered = strategic_merge_patch(
        POD_SPEC,
        {
            "$setElementOrder/containers": [{"name": "b"}, {"name": "a"}],
            "containers": [{"name": "a", "image": "x"}],
        },
    )
    assert [c["name"] for c in ordered["containers"]] == ["b", "a"]
    assert "$setElementOrder/containers" not in ordered
    pruned = strategic_merge_patch(
        {"finalizers": ["a", "b"]}, {"$deleteFromPrimitiveList/finalizers": ["a"]}
    )
    assert pruned == {"finalizers": ["b"]}


def test_strategic_merge_ports_merge_by_container_port() -> None:
    spec = {"containers": [{"name": "b", "ports": [{"containerPort": 80, "name": "http"}]}]}
    patch = {"containers": [{"name": "b", "ports": [{"containerPort": 443}]}]}
    patched = strategic_merge_patch(spec, patch)
    assert patched["containers"][0]["ports"] == [
        {"containerPort": 80, "name": "http"},
        {"containerPort": 443},
    ]


def test_strategic_merge_item_without_its_merge_key_is_an_error() -> None:
    with pytest.raises(PatchError, match="merge key: name"):
        strategic_merge_patch(POD_SPEC, {"containers": [{"image": "x"}]})


def test_json_patch_operations() -> None:
    doc = {"a": {"b": [1, 2]}, "c": 1}
    patched = json_patch(
        doc,
        [
            {"op": "add", "path": "/a/b/-", "value": 3},
            {"op": "add", "path": "/a/b/0", "value": 0},
            {"op": "replace", "path": "/c", "value": 2},
            {"op": "copy", "from": "/c", "path": "/d"},
            {"op": "move", "from": "/d", "path": "/e~1f"},
            {"op": "remove", "path": "/a/b/1"},
            {"op": "test", "path": "/c", "value": 2},
        ],
    )
    assert patched == {"a": {"b": [0, 2, 3]}, "c": 2, "e/f": 2}
    assert doc == {"a": {"b": [1, 2]}, "c": 1}


@pytest.mark.parametrize(
    ("operations", "message"),
    [
        ([{"op": "test", "path": "/c", "value": 9}], "testing value /c failed"),
        ([{"op": "remove", "path": "/nope"}], "nonexistent key"),
        ([{"op": "add", "path": "/x/y", "value": 1}], "missing path"),
        ([{"op": "jump", "path": "/c"}], "unexpected kind of operation"),
        ({"op": "add"}, "must be a list"),
    ],
)
def test_json_patch_failures_name_the_problem(operations: object, message: str) -> None:
    with pytest.raises(PatchError, match=message):
        json_patch({"c": 1}, operations)
