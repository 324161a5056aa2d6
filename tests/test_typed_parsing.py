"""Typed parsing (issue 13, item 5): ``--parse`` / ``parse()`` turn percentages, sizes,
durations and numbers into numeric columns when every non-empty value reads (mixed columns stay
text; the text on request as ``NAME_raw``); ``-o NAME --parse FMT`` stores the results with the
frame at ``NAME.frame``; ``to_parquet`` writes it with the run's provenance. Against the
sandbox, and on values for the unit rules."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pandas as pd
import pytest
from IPython.core.interactiveshell import InteractiveShell

from podmagic import Cluster, PodResults
from podmagic._parsing import typed_column
from podmagic._results import ExecStatus, PodResult

# df -h as busybox and coreutils print it, with a duration column of our own.
DF = (
    "Filesystem      Size  Used Avail Use%  Age Mounted on\\n"
    "overlay         252G   65G  187G  26% 1h2m /\\n"
    "tmpfs            64M     0   64M   0%   3d /dev\\n"
    "shm            1.5Ki  512B   1Ki  34%  45s /dev/shm\\n"
)
GiB = 2**30
#: The command that prints it (printf's own % escaped).
PRINT_DF = "printf '" + DF.replace("%", "%%") + "'"


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        (["26%", "0%", "99.5%"], ("percent", [26.0, 0.0, 99.5])),
        (["252G", "64M", "0", "1.5Ki", "512B"], ("bytes", [252 * GiB, 64 * 2**20, 0, 1536, 512])),
        (["10MB", "1kB", "2GiB"], ("bytes", [10_000_000, 1000, 2 * GiB])),
        (["1h2m", "3d", "45s", "250ms", "1w"], ("seconds", [3720, 259200, 45, 0.25, 604800])),
        (["5m", "10m"], ("seconds", [300, 600])),
        (["26%", None, ""], ("percent", [26.0, None, None])),
    ],
)
def test_units_read_as_numbers(values: list[str | None], expected: tuple[str, list[float]]) -> None:
    assert typed_column("col", values) == expected


@pytest.mark.parametrize(
    ("name", "values"),
    [
        ("mixed", ["26%", "12G"]),
        ("dash", ["26%", "-"]),
        ("typo", ["1G", "1Q"]),
        ("numbers", ["1", "2"]),  # plain numbers are pandas' to read, not units
        ("CPU(cores)", ["250m", "5m"]),  # kubectl top's millicores, not minutes
        ("words", ["web", "db"]),
    ],
)
def test_columns_that_do_not_all_read_stay_text(name: str, values: list[str]) -> None:
    assert typed_column(name, values) is None


def test_df_from_pods_becomes_numeric_columns_with_units(cluster: Cluster) -> None:
    results = cluster.run(PRINT_DF, selector="app=db")
    frame = results.parse("table")
    assert frame["Size"].dtype == "Int64"
    assert frame["Size"].tolist() == [252 * GiB, 64 * 2**20, 1536] * 2
    assert frame["Used"].tolist() == [65 * GiB, 0, 512] * 2
    assert frame["Use%"].tolist() == [26.0, 0.0, 34.0] * 2
    assert frame["Age"].tolist() == [3720.0, 259200.0, 45.0] * 2
    assert frame["Filesystem"].tolist()[:3] == ["overlay", "tmpfs", "shm"]
    assert frame.attrs["units"] == {
        "Size": "bytes",
        "Used": "bytes",
        "Avail": "bytes",
        "Use%": "percent",
        "Age": "seconds",
    }
    # Sorted as numbers, not as text ("64M" > "252G" as strings).
    assert frame.sort_values("Size")["Filesystem"].tolist()[-1] == "overlay"
    with_raw = results.parse("table", raw=True)
    assert list(with_raw.columns)[:6] == [
        "pod",
        "Filesystem",
        "Size",
        "Size_raw",
        "Used",
        "Used_raw",
    ]
    assert with_raw["Use%_raw"].tolist()[:3] == ["26%", "0%", "34%"]
    as_text = results.parse("table", infer=False)
    assert as_text["Size"].tolist()[:1] == ["252G"]


def test_a_column_with_one_odd_value_stays_text(cluster: Cluster) -> None:
    results = cluster.run("printf 'name,used\\na,26%%\\nb,n/a\\n'", "solo")
    frame = results.parse("csv")
    assert frame["used"].tolist() == ["26%", "n/a"]
    assert "used" not in frame.attrs["units"]


def test_magic_out_with_parse_stores_the_results_with_the_frame(ip: InteractiveShell) -> None:
    assert ip.run_line_magic("pod", f"-l app=db -o disk --parse table -- {PRINT_DF}") is None
    disk = ip.user_ns["disk"]
    assert isinstance(disk, PodResults) and len(disk) == 2 and disk.ok
    assert isinstance(disk.frame, pd.DataFrame)
    assert disk.frame["Use%"].tolist() == [26.0, 0.0, 34.0] * 2
    assert disk.provenance is not None and disk.provenance.selector == "app=db"
    # Without -o the cell's value is the DataFrame, as before; --raw keeps the text.
    frame = ip.run_line_magic("pod", f"-l app=db --parse table --raw -- {PRINT_DF}")
    assert isinstance(frame, pd.DataFrame) and frame["Size_raw"].tolist()[0] == "252G"


def test_to_parquet_writes_the_frame_with_provenance_in_its_metadata(
    ip: InteractiveShell, tmp_path: Path
) -> None:
    import pyarrow.parquet as pq

    ip.run_line_magic("pod", f"-l app=db -o disk --parse table -- {PRINT_DF}")
    disk = ip.user_ns["disk"]
    path = tmp_path / "disk.parquet"
    disk.to_parquet(path)
    back = pd.read_parquet(path)
    assert back["Size"].tolist() == disk.frame["Size"].tolist()
    assert back["Use%"].tolist() == [26.0, 0.0, 34.0] * 2
    saved = json.loads(pq.read_schema(path).metadata[b"podmagic.provenance"])
    assert saved["context"] == "podmagic-sandbox" and saved["selector"] == "app=db"
    assert [p["pod"] for p in saved["pods"]] == ["db-0", "db-1"]
    assert all(p["uid"] for p in saved["pods"])
    # The results themselves, one row a pod, when asked.
    whole = tmp_path / "results.parquet"
    disk.to_parquet(whole, parsed=False)
    assert pd.read_parquet(whole)["pod"].tolist() == ["db-0", "db-1"]
    assert b"podmagic.provenance" in pq.read_schema(whole).metadata


def test_to_parquet_of_unparsed_results_insisting_on_a_frame_says_how() -> None:
    made = PodResults([PodResult(context="c", namespace="n", pod="p", status=ExecStatus.OK)])
    with pytest.raises(ValueError, match="no parsed frame; parse them"):
        made.to_parquet("never.parquet", parsed=True)


def test_to_parquet_without_pyarrow_says_which_extra_to_install(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    made = PodResults([PodResult(context="c", namespace="n", pod="p", status=ExecStatus.OK)])
    with pytest.raises(ImportError) as caught:
        made.to_parquet(tmp_path / "x.parquet")
    assert str(caught.value) == "to_parquet needs pyarrow: pip install 'podmagic[parquet]'"
    assert not (tmp_path / "x.parquet").exists()
