"""Output formats: one pod's text → rows."""

from __future__ import annotations

import re
from typing import Any

import pytest

from podmagic._errors import ParseError
from podmagic._parsing import (
    formats,
    get_format,
    parse_output,
    parse_table,
    parser_for,
    register_format,
)

DF_H = """\
Filesystem      Size  Used Avail Use% Mounted on
overlay          59G   20G   37G  35% /
tmpfs            64M     0   64M   0% /dev
shm              64M     0   64M   0% /dev/shm
/dev/vda1        59G   20G   37G  35% /etc/hosts
"""

PS_AUX = """\
USER         PID %CPU %MEM    VSZ   RSS TTY      STAT START   TIME COMMAND
root           1  0.0  0.1 167744 11904 ?        Ss   Jan01   0:12 /sbin/init splash
www-data    1234  1.5  2.0 500000 40000 ?        Sl   10:00   1:02 nginx: worker process
root       98765  0.0  0.0   7060  1580 pts/0    R+   10:05   0:00 ps aux
"""

KUBECTL_WIDE = """\
NAME      READY   STATUS    RESTARTS     AGE   IP           NODE     NOMINATED NODE   READINESS GATES
web-abc   1/1     Running   2 (5m ago)   10m   10.244.0.5   node-1   <none>           <none>
web-def   1/1     Running   0            10m   10.244.0.6   node-2   <none>           <none>
"""


# -- registry ---------------------------------------------------------------------------------


def test_known_formats() -> None:
    assert formats() == ["csv", "json", "jsonl", "kv", "lines", "regex", "table", "tsv"]
    assert get_format("whitespace").name == "table"
    assert get_format("keyvalue").name == "kv"
    assert get_format("key=value").name == "kv"
    assert get_format("JSON").name == "json"


def test_unknown_format_lists_the_known_ones() -> None:
    with pytest.raises(ValueError, match="unknown output format 'yaml'") as info:
        parse_output("a: 1", "yaml")
    for name in formats():
        assert name in str(info.value)
    assert "whitespace" in str(info.value)


def test_unknown_option_says_which_options_the_format_takes() -> None:
    with pytest.raises(ValueError, match="format 'csv'.*sep.*header=True"):
        parse_output("a\n1", "csv", sep=";")
    with pytest.raises(ValueError, match="takes no options"):
        parse_output("{}", "json", header=False)


def test_regex_requires_a_pattern() -> None:
    with pytest.raises(ValueError, match="pattern"):
        parser_for("regex")


def test_a_missing_required_option_is_named_as_a_keyword_argument() -> None:
    with pytest.raises(ValueError) as info:
        parser_for("regex")
    assert str(info.value) == "format 'regex' needs pattern=; it takes: pattern, flags=0"


@pytest.mark.parametrize(
    ("pattern", "problem"),
    [("(", "missing \\)"), ("(?P<a>x)(?P<a>y)", "redefinition of group name 'a'")],
)
def test_parser_for_compiles_the_pattern_before_any_output_is_parsed(
    pattern: str, problem: str
) -> None:
    with pytest.raises(ValueError, match=f"format 'regex': invalid pattern .*{problem}"):
        parser_for("regex", pattern=pattern)


@pytest.mark.parametrize(
    ("fmt", "options", "error", "message"),
    [
        ("csv", {"delimiter": ";;"}, ValueError, "delimiter must be one character"),
        ("csv", {"header": "yes"}, TypeError, "header must be True or False, not str"),
        ("tsv", {"columns": "a,b"}, TypeError, "columns must be a list of column names"),
        ("lines", {"skip_blank": 1}, TypeError, "skip_blank must be True or False, not int"),
        ("kv", {"sep": ""}, ValueError, "sep must be a separator"),
        ("regex", {"pattern": r"(?P<a>x)", "flags": "I"}, TypeError, "flags must be re flags"),
        ("regex", {"pattern": 5}, TypeError, "pattern must be a str or re.Pattern, not int"),
    ],
)
def test_parser_for_checks_every_option_value_up_front(
    fmt: str, options: dict[str, Any], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        parser_for(fmt, **options)


def test_register_format() -> None:
    def upper(text: str, *, prefix: str = "") -> list[dict[str, Any]]:
        return [{"word": prefix + w.upper()} for w in text.split()]

    register_format("test-upper", upper, aliases=["test-up"])
    try:
        assert parse_output("a b", "test-up", prefix="x") == [{"word": "xA"}, {"word": "xB"}]
        with pytest.raises(ValueError, match="already registered"):
            register_format("test-upper", upper)
        register_format("test-upper", upper, replace=True)
    finally:
        from podmagic import _parsing as parsing

        for key in ("test-upper", "test-up"):
            parsing._FORMATS.pop(key, None)
    assert "test-upper" not in formats()


# -- json / jsonl -----------------------------------------------------------------------------


def test_json_object_is_one_row() -> None:
    assert parse_output('{"a": 1, "b": {"c": [1, 2]}}', "json") == [{"a": 1, "b": {"c": [1, 2]}}]


def test_json_list_of_objects_is_rows_and_scalars_are_values() -> None:
    assert parse_output('[{"a": 1}, {"a": 2, "b": "x"}, 3]', "json") == [
        {"a": 1},
        {"a": 2, "b": "x"},
        {"value": 3},
    ]
    assert parse_output("42\n", "json") == [{"value": 42}]
    assert parse_output('"hi"', "json") == [{"value": "hi"}]
    assert parse_output("[]", "json") == []


def test_invalid_json_is_a_parse_error_with_the_position() -> None:
    with pytest.raises(ParseError, match=r"line 2, column 1: not valid JSON") as info:
        parse_output('{"a": 1,\n}', "json")
    assert info.value.fmt == "json"
    assert info.value.pod is None
    with pytest.raises(ParseError, match="empty"):
        parse_output("  \n", "json")


def test_jsonl() -> None:
    text = '{"a": 1}\n\n{"a": 2}\n"x"\n'
    assert parse_output(text, "jsonl") == [{"a": 1}, {"a": 2}, {"value": "x"}]
    assert parse_output(text, "ndjson") == parse_output(text, "jsonl")
    assert parse_output("", "jsonl") == []
    with pytest.raises(ParseError, match="line 2: not valid JSON"):
        parse_output('{"a": 1}\n{oops}\n', "jsonl")


# -- csv / tsv --------------------------------------------------------------------------------


def test_csv_with_header_keeps_strings() -> None:
    text = 'name,size,note\nweb,10,"a, b"\ndb,20,"multi\nline"\n\n'
    assert parse_output(text, "csv") == [
        {"name": "web", "size": "10", "note": "a, b"},
        {"name": "db", "size": "20", "note": "multi\nline"},
    ]


def test_csv_without_header_and_with_named_columns() -> None:
    assert parse_output("1,2\n3,4,5\n", "csv", header=False) == [
        {"col0": "1", "col1": "2", "col2": None},
        {"col0": "3", "col1": "4", "col2": "5"},
    ]
    assert parse_output("1,2\n", "csv", header=False, columns=["x", "y"]) == [{"x": "1", "y": "2"}]
    assert parse_output("a,b\n1,2\n", "csv", columns=["x", "y"]) == [{"x": "1", "y": "2"}]
    assert parse_output("a;b\n1;2\n", "csv", delimiter=";") == [{"a": "1", "b": "2"}]


def test_csv_and_tsv_rows_with_too_few_or_too_many_fields_are_errors() -> None:
    with pytest.raises(ParseError, match="line 2: 1 field where the header has 2"):
        parse_output("a,b\n1\n", "csv")
    with pytest.raises(ParseError, match="line 3: 2 fields where the header has 3"):
        parse_output("a,b,c\n1,2,3\n4,5\n", "csv")
    with pytest.raises(ParseError, match="line 2: 2 fields where the header has 3"):
        parse_output("a\tb\tc\n1\t2\n", "tsv")
    with pytest.raises(ParseError, match="line 1: 1 field where the header has 2"):
        parse_output("1\n", "csv", header=False, columns=["x", "y"])
    with pytest.raises(ParseError, match="line 2: 3 fields where the header has 2"):
        parse_output("a,b\n1,2,3\n", "csv")
    with pytest.raises(ParseError, match="line 2"):
        parse_output('a,b\n1,"2"x\n', "csv")


def test_csv_duplicate_and_blank_header_names_are_made_unique() -> None:
    assert parse_output("a,a,\n1,2,3\n", "csv") == [{"a": "1", "a_2": "2", "col2": "3"}]


@pytest.mark.parametrize("fmt", ["csv", "tsv", "table", "json"])
@pytest.mark.parametrize("text", ["", "\n", "  \n\n"])
def test_empty_output_is_an_error_for_formats_that_need_a_header_or_document(
    fmt: str, text: str
) -> None:
    with pytest.raises(ParseError, match="the output is empty"):
        parse_output(text, fmt)


@pytest.mark.parametrize("fmt", ["lines", "jsonl", "kv"])
def test_empty_output_is_zero_rows_for_record_formats(fmt: str) -> None:
    assert parse_output("", fmt) == []
    assert parse_output("", "regex", pattern=r"(?P<x>\d+)") == []


def test_kv_repeated_key_is_an_error_naming_both_lines() -> None:
    with pytest.raises(ParseError, match=r"line 3 repeats the key 'a' \(first on line 1\)"):
        parse_output("a=1\nb=2\na=3\n", "kv")


def test_tsv_splits_on_tabs_without_quoting() -> None:
    text = 'name\tcomment\nweb\t"quoted", kept\n'
    assert parse_output(text, "tsv") == [{"name": "web", "comment": '"quoted", kept'}]
    assert parse_output("1\t2\n", "tsv", header=False) == [{"col0": "1", "col1": "2"}]
    assert parse_output("a\tb\r\n1\t2\r\n", "tsv") == [{"a": "1", "b": "2"}]


# -- lines ------------------------------------------------------------------------------------


def test_lines() -> None:
    assert parse_output("a\n\nb c\n", "lines") == [{"line": "a"}, {"line": ""}, {"line": "b c"}]
    assert parse_output("a\n\nb\n", "lines", skip_blank=True) == [{"line": "a"}, {"line": "b"}]
    assert parse_output("", "lines") == []


# -- whitespace tables ------------------------------------------------------------------------


def test_table_df_h_joins_the_two_word_column_name() -> None:
    rows = parse_output(DF_H, "table")
    assert list(rows[0]) == ["Filesystem", "Size", "Used", "Avail", "Use%", "Mounted on"]
    assert rows[0] == {
        "Filesystem": "overlay",
        "Size": "59G",
        "Used": "20G",
        "Avail": "37G",
        "Use%": "35%",
        "Mounted on": "/",
    }
    assert [row["Mounted on"] for row in rows] == ["/", "/dev", "/dev/shm", "/etc/hosts"]
    assert rows[1]["Used"] == "0"


def test_table_ps_aux_keeps_spaces_in_the_last_column() -> None:
    rows = parse_output(PS_AUX, "whitespace")
    assert list(rows[0]) == [
        "USER", "PID", "%CPU", "%MEM", "VSZ", "RSS", "TTY", "STAT", "START", "TIME", "COMMAND",
    ]  # fmt: skip
    assert [row["COMMAND"] for row in rows] == [
        "/sbin/init splash",
        "nginx: worker process",
        "ps aux",
    ]
    assert rows[1]["USER"] == "www-data"
    assert rows[2]["PID"] == "98765"
    assert rows[2]["TTY"] == "pts/0"


def test_table_kubectl_columns_are_cut_at_their_positions() -> None:
    rows = parse_output(KUBECTL_WIDE, "table")
    assert rows[0] == {
        "NAME": "web-abc",
        "READY": "1/1",
        "STATUS": "Running",
        "RESTARTS": "2 (5m ago)",
        "AGE": "10m",
        "IP": "10.244.0.5",
        "NODE": "node-1",
        "NOMINATED NODE": "<none>",
        "READINESS GATES": "<none>",
    }
    assert rows[1]["RESTARTS"] == "0"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("A B\n1 2 3 4\n", "line 2: 4 fields where the header has 2"),
        ("A B\n\n1 2\n1 2 3\n", "line 4: 3 fields where the header has 2"),
        (
            "NAME  VALUE\na\nb 2\n",
            "line 3: cannot tell which columns 'b 2' belongs to: it stands under NAME",
        ),
    ],
)
def test_table_reports_fields_it_cannot_place(text: str, message: str) -> None:
    with pytest.raises(ParseError, match=re.escape(message)):
        parse_output(text, "table")


def test_table_still_places_values_with_spaces_where_columns_show_it() -> None:
    # kubectl's "2 (5m ago)" has later columns filled; ps aux's last column takes the rest.
    assert parse_output(KUBECTL_WIDE, "table")[0]["RESTARTS"] == "2 (5m ago)"
    assert parse_output(PS_AUX, "table")[0]["COMMAND"] == "/sbin/init splash"
    assert parse_output("NAME  VALUE\na\nb     2\n", "table") == [
        {"NAME": "a", "VALUE": None},
        {"NAME": "b", "VALUE": "2"},
    ]


def test_table_missing_values_and_edge_cases() -> None:
    assert parse_table("") == []
    assert parse_table("NAME AGE\n") == [], "a header alone has no rows"
    assert parse_table("A   B   C\n1   2\n") == [{"A": "1", "B": "2", "C": None}]
    # Right-aligned numbers under an indented header, like plain `ps`.
    assert parse_table("    PID TTY\n      1 ?\n  12345 pts/0\n") == [
        {"PID": "1", "TTY": "?"},
        {"PID": "12345", "TTY": "pts/0"},
    ]
    assert parse_table("A B\n1 2\n") == [{"A": "1", "B": "2"}]
    assert parse_table("X\tY\n1\t2\n") == [{"X": "1", "Y": "2"}]


# -- key=value --------------------------------------------------------------------------------


def test_kv_is_one_row_per_output() -> None:
    text = (
        '# os-release\nNAME="Ubuntu"\nVERSION_ID=22.04\n\nMemTotal:  16334 kB\n'
        "url = http://host:80/a=b\n"
    )
    assert parse_output(text, "kv") == [
        {
            "NAME": "Ubuntu",
            "VERSION_ID": "22.04",
            "MemTotal": "16334 kB",
            "url": "http://host:80/a=b",
        }
    ]
    assert parse_output("", "keyvalue") == []


def test_kv_options_and_errors() -> None:
    assert parse_output("a -> 1\nb -> x=y\n", "kv", sep="->") == [{"a": "1", "b": "x=y"}]
    assert parse_output("A='x'\n", "kv", unquote=False) == [{"A": "'x'"}]
    with pytest.raises(ParseError, match=r"line 2 has no '=' or ':'"):
        parse_output("a=1\njust words\n", "kv")
    with pytest.raises(ParseError, match="line 1 has no key"):
        parse_output("=1\n", "kv")


# -- regex ------------------------------------------------------------------------------------


def test_regex_one_row_per_match_multiline() -> None:
    text = "GET /a 200\nPOST /b 500\nnoise\nGET /c 404\n"
    pattern = r"^(?P<method>[A-Z]+) (?P<path>\S+) (?P<code>\d+)$"
    assert parse_output(text, "regex", pattern=pattern) == [
        {"method": "GET", "path": "/a", "code": "200"},
        {"method": "POST", "path": "/b", "code": "500"},
        {"method": "GET", "path": "/c", "code": "404"},
    ]
    compiled = re.compile(r"^get (?P<path>\S+)", re.IGNORECASE)
    assert parse_output(text, "regex", pattern=compiled) == [{"path": "/a"}, {"path": "/c"}]
    assert parse_output(text, "regex", pattern=r"^(?P<m>get)", flags=re.IGNORECASE) == [
        {"m": "GET"},
        {"m": "GET"},
    ]
    assert parse_output("a", "regex", pattern=r"(?P<x>a)(?P<y>b)?") == [{"x": "a", "y": None}]


def test_regex_needs_named_groups_and_a_valid_pattern() -> None:
    with pytest.raises(ValueError, match="named groups"):
        parse_output("a", "regex", pattern=r"(a)")
    with pytest.raises(ValueError, match="invalid pattern"):
        parse_output("a", "regex", pattern=r"(?P<x>")


# -- pods with no rows in PodResults.parse() --------------------------------------------------


def _results(*outputs: tuple[str, bytes]) -> Any:
    from podmagic._results import ExecStatus, PodResult, PodResults

    return PodResults(
        [
            PodResult(
                context="ctx",
                namespace="demo",
                pod=pod,
                status=ExecStatus.OK,
                exit_code=0,
                stdout=stdout,
            )
            for pod, stdout in outputs
        ]
    )


@pytest.mark.parametrize("fmt", ["csv", "tsv", "table", "json"])
def test_a_pod_with_empty_output_is_an_error_row_for_header_and_document_formats(fmt: str) -> None:
    from podmagic._results import check_parsed

    good = {
        "csv": b"a,b\n1,2\n",
        "tsv": b"a\tb\n1\t2\n",
        "table": b"a b\n1 2\n",
        "json": b'{"a": 1, "b": 2}',
    }[fmt]
    frame = _results(("web-1", good), ("web-2", b"")).parse(fmt)
    assert frame.attrs["errors"] == {"web-2": "the output is empty"}
    assert frame["pod"].tolist() == ["web-1", "web-2"]
    with pytest.raises(ParseError, match="web-2"):
        check_parsed(frame)


@pytest.mark.parametrize(
    ("fmt", "options", "good"),
    [
        ("lines", {}, b"x\n"),
        ("jsonl", {}, b'{"a": 1}\n'),
        ("kv", {}, b"a=1\n"),
        ("regex", {"pattern": r"(?P<n>\d+)"}, b"12\n"),
    ],
)
def test_a_pod_with_no_records_is_listed_not_dropped(
    fmt: str, options: dict[str, Any], good: bytes
) -> None:
    from podmagic._results import check_parsed, parse_problems

    frame = _results(("web-1", good), ("web-2", b""), ("web-3", b"")).parse(fmt, **options)
    assert frame["pod"].tolist() == ["web-1"]
    assert frame.attrs["empty"] == ["web-2", "web-3"]
    assert frame.attrs["errors"] == {}
    note = parse_problems(frame)
    assert note is not None and f"--parse {fmt}: 2 pods gave no rows" in note
    assert "web-2, web-3" in note
    check_parsed(frame)  # no records is not a parse error


# -- a failed command is a parse problem even when its output parsed -------------------------


def _failed(pod: str, stdout: bytes, exit_code: int) -> Any:
    from podmagic._results import ExecStatus, PodResult

    return PodResult(
        context="ctx",
        namespace="demo",
        pod=pod,
        status=ExecStatus.FAILED,
        exit_code=exit_code,
        stdout=stdout,
    )


@pytest.mark.parametrize(
    ("fmt", "options", "output"),
    [
        ("csv", {}, b"a,b\n1,2\n"),
        ("tsv", {}, b"a\tb\n1\t2\n"),
        ("table", {}, b"a b\n1 2\n"),
        ("json", {}, b'{"a": 1}'),
        ("jsonl", {}, b'{"a": 1}\n'),
        ("lines", {}, b"a\n"),
        ("kv", {}, b"a=1\n"),
        ("regex", {"pattern": r"(?P<a>\d+)"}, b"12\n"),
    ],
)
def test_a_failed_pod_whose_output_parsed_is_named_with_its_exit(
    fmt: str, options: dict[str, Any], output: bytes
) -> None:
    from podmagic._results import PodResults, check_parsed, parse_problems

    results = PodResults([*_results(("web-1", output)), _failed("web-2", output, 3)])
    frame = results.parse(fmt, **options)
    assert frame["pod"].tolist() == ["web-1", "web-2"]  # its rows are kept
    assert frame.attrs["failed"] == {"web-2": "exit 3"}
    note = parse_problems(frame)
    assert note is not None and f"--parse {fmt}: 1 pod failed" in note
    assert "  web-2: exit 3" in note
    with pytest.raises(ParseError, match=r"1 pod failed: web-2 \(exit 3\)"):
        check_parsed(frame)


@pytest.mark.parametrize("fmt", ["lines", "jsonl", "kv"])
def test_a_failed_pod_with_no_records_says_its_exit_not_only_no_rows(fmt: str) -> None:
    from podmagic._results import PodResults, check_parsed, parse_problems

    frame = PodResults([_failed(f"web-{i}", b"", 127) for i in (1, 2, 3)]).parse(fmt)
    assert frame.attrs["empty"] == []
    assert frame.attrs["failed"] == dict.fromkeys(["web-1", "web-2", "web-3"], "exit 127, no rows")
    note = parse_problems(frame)
    assert note is not None and "3 pods failed" in note and "web-1: exit 127, no rows" in note
    with pytest.raises(ParseError, match="3 pods failed"):
        check_parsed(frame)
