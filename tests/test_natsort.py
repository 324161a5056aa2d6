"""The one natural sort key, in kubectl's order (sortorder.NaturalLess, kubectl get --sort-by)."""

from __future__ import annotations

import random

import pytest

from podmagic._natsort import natural_key
from podmagic._results import ExecStatus, PodResult, PodResults

# (earlier, later) in kubectl's natural order.
ORDERED_PAIRS = [
    ("web-2", "web-10"),
    ("web", "web-1"),  # a name that ends sorts first
    ("web-1", "web-1a"),
    ("ab1", "abc"),  # a digit sorts before any other character
    ("ab9", "ab-"),
    ("web-2", "web-02"),  # equal numbers: fewer leading zeros first
    ("web-02", "web-002"),
    ("0", "00"),
    ("a1b", "a01a"),  # decided at the first number, whatever follows
    ("a01b001", "a001b01"),
    ("db-9", "db-10"),
    ("x99999999999999999999", "x100000000000000000000"),  # beyond 64 bits
    ("Web", "web"),  # byte order: upper case first
    ("é1", "é2"),
    ("z", "é"),  # UTF-8 byte order is code point order
    ("a1", "a١"),  # only ASCII digits are numbers: U+0661 is text, so after any digit
]


@pytest.mark.parametrize(("earlier", "later"), ORDERED_PAIRS)
def test_pairs_sort_in_kubectl_order(earlier: str, later: str) -> None:
    assert natural_key(earlier) < natural_key(later)
    assert not natural_key(later) < natural_key(earlier)


def test_distinct_names_never_tie() -> None:
    names = ["web-1", "web-01", "web-001", "web1", "web-1-", "web-", "web"]
    assert len({natural_key(name) for name in names}) == len(names)


def test_sorting_is_stable_under_shuffling() -> None:
    names = [f"pod-{i}" for i in range(30)] + ["pod-07", "pod-007", "pod-", "pod"]
    expected = sorted(names, key=natural_key)
    for seed in range(5):
        shuffled = names[:]
        random.Random(seed).shuffle(shuffled)
        assert sorted(shuffled, key=natural_key) == expected
    assert expected[:5] == ["pod", "pod-", "pod-0", "pod-1", "pod-2"]
    assert expected.index("pod-7") + 1 == expected.index("pod-07")


def test_output_groups_of_equal_size_list_pods_in_natural_order() -> None:
    def result(pod: str, out: bytes) -> PodResult:
        return PodResult(
            context="ctx",
            namespace="demo",
            pod=pod,
            container="app",
            status=ExecStatus.OK,
            exit_code=0,
            stdout=out,
        )

    results = PodResults([result("web-02", b"b"), result("web-10", b"c"), result("web-2", b"a")])
    assert [group.results[0].pod for group in results.groups()] == ["web-2", "web-02", "web-10"]
