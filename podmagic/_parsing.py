"""Turn one pod's output text into rows (a list of dicts), in a named format.

``parse_output(text, fmt, **options)`` is the whole interface; ``PodResults.parse()`` runs it
for every pod and joins the rows into one DataFrame with a ``pod`` column. Values are kept as
the strings they were in the output (JSON keeps its own types); converting numeric-looking
columns is left to ``PodResults.parse(infer=True)``.

Formats (aliases in brackets) and their options:

=====================  ================================================================
``json``               the whole output is one JSON document: an object is one row, a
                       list gives one row per item, a scalar is a row ``{"value": x}``
``jsonl`` [ndjson]     one JSON document per line, each treated like ``json``
``csv``                comma-separated with a header row; ``header=False`` for none,
                       ``columns=[...]`` to name them, ``delimiter=``
``tsv``                tab-separated, no quoting; ``header=False``, ``columns=[...]``
``lines``              one row per line, column ``line``; ``skip_blank=True`` drops blanks
``table`` [whitespace] a whitespace-aligned table with a header (``df -h``, ``ps aux``,
                       ``kubectl get``); see :func:`parse_table`
``kv`` [keyvalue,      ``key=value`` or ``key: value`` per line, one row per output;
key=value]             ``sep=`` to fix the separator, ``unquote=False`` to keep quotes
``regex``              one row per match of ``pattern=`` (named groups become columns),
                       with ``re.MULTILINE``; ``flags=`` for more
=====================  ================================================================

Typed columns: ``PodResults.parse(infer=True)`` (the default, and ``%pod --parse``) turns a
column of text into numbers when *every* non-empty value in it reads as one kind, with
:func:`typed_column`: plain numbers; percentages (``"26%"`` → ``26.0``: the number shown,
not a fraction); sizes in bytes (``"252G"`` → ``270582939648``: ``K``/``M``/``G``/``T``/
``P``/``E`` and ``Ki``/``Mi``/``KiB``… are powers of 1024, as ``df -h``, ``du -h``,
``ls -h`` and Kubernetes' ``Mi`` mean them; ``kB``/``MB``/``GB`` with a ``B`` and no ``i``
are powers of 1000; a bare number is bytes); durations in seconds (``"1h2m"`` → ``3720.0``,
``"3d"``, ``"45s"``, ``"250ms"``, Go's and kubectl's forms; ``w``, ``d``, ``h``, ``m``,
``s``, ``ms``, ``us``, ``ns``). A column with one value that does not read — ``-``,
``<none>``, a typo — stays text, as do mixed columns (``26%`` beside ``12G``). A column whose
values are all ``Nm`` alone is read as minutes, unless its name mentions CPU (kubectl's
millicores, ``250m``), where it stays text.

Malformed output raises :class:`~podmagic.ParseError` (the caller adds the pod); an
unknown format or option, a missing required option or an option value the format cannot
use (a ``pattern`` that does not compile) is a programming error and raises ``ValueError``
(``TypeError`` for an option of the wrong type) from :func:`parser_for`, before any output is
parsed.

Empty output (nothing but whitespace) is an error for the formats that need a header or a
document — ``json``, ``csv``, ``tsv``, ``table``: "the output is empty". For the record formats
— ``lines``, ``jsonl``, ``kv``, ``regex`` — it is zero rows, which ``PodResults.parse()`` lists
as a pod that gave no rows. A csv/tsv row with fewer or more fields than the header (or
``columns=``) names is an error; without either, rows are padded to the widest. A ``kv`` key
given twice is an error (which value is meant cannot be guessed), and so is a ``table`` row
whose fields cannot be placed under the header (see :func:`parse_table`).
"""

from __future__ import annotations

import csv
import functools
import itertools
import json
import math
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from ._errors import ParseError

__all__ = [
    "UNIT_KINDS",
    "Format",
    "Parser",
    "Row",
    "formats",
    "get_format",
    "parse_output",
    "parse_table",
    "parser_for",
    "register_format",
    "typed_column",
]

Row = dict[str, Any]
#: ``parser(text, **options) -> rows``; options are keyword-only parameters.
Parser = Callable[..., list[Row]]


#: ``check(**options)`` raises ``ValueError`` (``TypeError``) for option values (types) the
#: parser cannot use.
OptionCheck = Callable[..., None]


@dataclass(frozen=True)
class Format:
    """A registered output format; ``check`` validates its option values up front."""

    name: str
    parser: Parser
    aliases: tuple[str, ...] = ()
    check: OptionCheck | None = None


_FORMATS: dict[str, Format] = {}


def register_format(
    name: str,
    parser: Parser,
    *,
    aliases: Iterable[str] = (),
    replace: bool = False,
    check: OptionCheck | None = None,
) -> Format:
    """Register ``parser`` under ``name`` (and ``aliases``); names are case-insensitive.

    ``parser(text, **options)`` returns a list of dicts and raises ``ParseError`` for output
    it cannot read. Its options must be keyword-only parameters. ``check(**options)``, if
    given, raises ``ValueError`` for option values the parser cannot use: :func:`parser_for`
    runs it before any output is parsed (before a ``%pod --parse`` run even starts).
    """
    spec = Format(name.lower(), parser, tuple(a.lower() for a in aliases), check)
    keys = (spec.name, *spec.aliases)
    if not replace:
        taken = [k for k in keys if k in _FORMATS]
        if taken:
            raise ValueError(f"output format {taken[0]!r} is already registered")
    for key in keys:
        _FORMATS[key] = spec
    return spec


def formats() -> list[str]:
    """The registered formats, by name, sorted."""
    return sorted({spec.name for spec in _FORMATS.values()})


def _known() -> str:
    parts = []
    for name in formats():
        aliases = _FORMATS[name].aliases
        parts.append(f"{name} ({', '.join(aliases)})" if aliases else name)
    return ", ".join(parts)


def get_format(fmt: str) -> Format:
    """The format registered as ``fmt``; ``ValueError`` listing the known ones otherwise."""
    spec = _FORMATS.get(fmt.lower())
    if spec is None:
        raise ValueError(f"unknown output format {fmt!r}; known formats: {_known()}")
    return spec


def parser_for(fmt: str, **options: Any) -> Callable[[str], list[Row]]:
    """A one-argument parser for ``fmt`` with ``options`` bound, checked up front.

    Raises ``ValueError`` for an unknown format, an option the format does not take, a
    required option that is missing, or an option value the format cannot use (a ``pattern``
    that does not compile, a ``delimiter`` that is not one character …), and ``TypeError``
    for an option of the wrong type: all before any output is parsed. Options are named as keyword arguments (``pattern=``); ``%pod`` says
    ``--pattern`` itself.
    """
    import inspect

    spec = get_format(fmt)
    signature = inspect.signature(spec.parser)
    keywords = [
        p
        for p in list(signature.parameters.values())[1:]
        if p.kind is inspect.Parameter.KEYWORD_ONLY
    ]
    accepted = [
        p.name if p.default is inspect.Parameter.empty else f"{p.name}={p.default!r}"
        for p in keywords
    ]
    takes = f"it takes: {', '.join(accepted)}" if accepted else "it takes no options"
    missing = [
        p.name for p in keywords if p.default is inspect.Parameter.empty and p.name not in options
    ]
    if missing:
        needed = ", ".join(f"{name}=" for name in missing)
        raise ValueError(f"format {spec.name!r} needs {needed}; {takes}")
    try:
        signature.bind("", **options)
    except TypeError as exc:
        raise ValueError(f"format {spec.name!r}: {exc}; {takes}") from None
    if spec.check is not None:
        spec.check(**options)
    return functools.partial(spec.parser, **options)


def parse_output(text: str, fmt: str, **options: Any) -> list[Row]:
    """Parse one output ``text`` in format ``fmt``: a list of rows (dicts)."""
    return parser_for(fmt, **options)(text)


# -- helpers ----------------------------------------------------------------------------------


def _unique(names: Iterable[str]) -> list[str]:
    """Column names made unique (``NAME``, ``NAME_2``); a blank name becomes ``colN``."""
    used: set[str] = set()
    out = []
    for index, name in enumerate(names):
        name = name or f"col{index}"
        unique, count = name, 1
        while unique in used:
            count += 1
            unique = f"{name}_{count}"
        used.add(unique)
        out.append(unique)
    return out


def _as_row(value: Any) -> Row:
    if isinstance(value, dict):
        return {str(k): v for k, v in value.items()}
    return {"value": value}


def _json_error(exc: json.JSONDecodeError) -> str:
    return f"line {exc.lineno}, column {exc.colno}: not valid JSON ({exc.msg})"


# -- formats ----------------------------------------------------------------------------------


def _parse_json(text: str) -> list[Row]:
    if not text.strip():
        raise ParseError("the output is empty", fmt="json")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ParseError(_json_error(exc), fmt="json") from None
    if isinstance(data, list):
        return [_as_row(item) for item in data]
    return [_as_row(data)]


def _parse_jsonl(text: str) -> list[Row]:
    rows = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            rows.append(_as_row(json.loads(line)))
        except json.JSONDecodeError as exc:
            raise ParseError(
                f"line {number}: not valid JSON ({exc.msg} at column {exc.colno})", fmt="jsonl"
            ) from None
    return rows


def _records(
    records: list[tuple[int, list[str]]],
    *,
    fmt: str,
    header: bool,
    columns: Sequence[str] | None,
) -> list[Row]:
    """Rows from split records, each with exactly as many fields as the header names.

    ``records`` are (line number, fields). With ``header`` the first record names the
    columns, unless ``columns`` does (then the header record is dropped). Empty output is an
    error: there is not even a header. With neither a header nor ``columns``, short records
    are padded with None to the widest.
    """
    if not records:
        raise ParseError("the output is empty", fmt=fmt)
    named = header or columns is not None
    if header:
        first = records.pop(0)[1]
        names = _unique(columns if columns is not None else [f.strip() for f in first])
    elif columns is not None:
        names = _unique(columns)
    else:
        width = max((len(fields) for _, fields in records), default=0)
        names = [f"col{i}" for i in range(width)]
    rows = []
    for number, fields in records:
        if len(fields) > len(names) or (named and len(fields) < len(names)):
            raise ParseError(
                f"line {number}: {len(fields)} field{'' if len(fields) == 1 else 's'} where "
                f"the header has {len(names)}",
                fmt=fmt,
            )
        row: Row = dict.fromkeys(names)
        row.update(zip(names, fields))
        rows.append(row)
    return rows


def _parse_csv(
    text: str,
    *,
    header: bool = True,
    columns: Sequence[str] | None = None,
    delimiter: str = ",",
) -> list[Row]:
    if not text.strip():
        raise ParseError("the output is empty", fmt="csv")
    # keepends: a quoted field may span lines.
    reader = csv.reader(text.splitlines(keepends=True), delimiter=delimiter, strict=True)
    try:
        records = [(reader.line_num, fields) for fields in reader if fields]
    except csv.Error as exc:
        raise ParseError(f"line {reader.line_num}: {exc}", fmt="csv") from None
    return _records(records, fmt="csv", header=header, columns=columns)


def _parse_tsv(
    text: str, *, header: bool = True, columns: Sequence[str] | None = None
) -> list[Row]:
    records = [
        (number, line.split("\t"))
        for number, line in enumerate(text.splitlines(), 1)
        if line.strip()
    ]
    return _records(records, fmt="tsv", header=header, columns=columns)


def _parse_lines(text: str, *, skip_blank: bool = False) -> list[Row]:
    return [{"line": line} for line in text.splitlines() if line.strip() or not skip_blank]


_TOKEN = re.compile(r"\S+")


def _overlaps(span: tuple[int, int], other: tuple[int, int]) -> bool:
    return span[0] < other[1] and other[0] < span[1]


def parse_table(text: str) -> list[Row]:
    """Rows of a whitespace-aligned table whose first non-blank line is the header.

    Header words separated by one space are one column name (``Mounted on`` in ``df -h``,
    ``NOMINATED NODE`` in ``kubectl get -o wide``) unless some row has a value under the
    second word alone. Rows are then cut one of two ways:

    - when every value in every row starts exactly where its column's name starts
      (left-aligned, as ``kubectl get`` prints), at those positions, so values may contain
      spaces (``2 (5m ago)``);
    - otherwise by whitespace into as many fields as there are columns, the last column
      taking the rest of the line (``ps aux``'s COMMAND).

    Missing values are None. What cannot be placed is a :class:`~podmagic.ParseError`
    naming the line, as a csv row of the wrong length is: a row with more fields than a header whose columns are one space
    apart (``A B`` over ``1 2 3 4``), and a value with a space under one column when every
    column after it is empty (``b 2`` under ``NAME  VALUE``: one value, or two?).
    """
    numbered = [(n, line.expandtabs().rstrip()) for n, line in enumerate(text.splitlines(), 1)]
    numbered = [(n, line) for n, line in numbered if line.strip()]
    if not numbered:
        return []
    header, body = numbered[0][1], [line for _, line in numbered[1:]]
    line_numbers = [n for n, _ in numbered[1:]]
    words = [(m.start(), m.end()) for m in _TOKEN.finditer(header)]
    row_spans = [[(m.start(), m.end()) for m in _TOKEN.finditer(line)] for line in body]

    # Each column is a run of header words.
    columns: list[list[tuple[int, int]]] = [[words[0]]]
    for word in words[1:]:
        previous = columns[-1][-1]
        same_name = (
            bool(body)
            and word[0] == previous[1] + 1
            and not any(
                _overlaps(span, word) and not _overlaps(span, previous)
                for spans in row_spans
                for span in spans
            )
        )
        if same_name:
            columns[-1].append(word)
        else:
            columns.append([word])
    names = _unique([header[run[0][0] : run[-1][1]] for run in columns])
    starts = [run[0][0] for run in columns]

    def aligned(line: str) -> bool:
        return all(
            len(line) <= start or (line[start - 1] == " " and line[start] != " ")
            for start in starts[1:]
        )

    # A header whose columns are one space apart is padded by nothing: its rows are plain
    # space-separated fields, and a row with more of them than there are columns cannot be
    # placed (a padded header, as ps and kubectl print, lets the last column take the rest).
    tight = len(columns) > 1 and all(
        later[0][0] == earlier[-1][1] + 1 for earlier, later in itertools.pairwise(columns)
    )
    if tight:
        for number, line in zip(line_numbers, body):
            count = len(line.split())
            if count > len(names):
                raise ParseError(
                    f"line {number}: {count} fields where the header has {len(names)}",
                    fmt="table",
                )

    rows: list[Row] = []
    if all(aligned(line) for line in body):
        cuts = [0, *starts[1:]]
        ends: list[int | None] = [*starts[1:], None]
        for number, line in zip(line_numbers, body):
            values = [line[a:b].strip() or None for a, b in zip(cuts, ends)]
            for index, value in enumerate(values[:-1]):
                # "b 2" under NAME with VALUE empty: one value with a space (kubectl's
                # "2 (5m ago)"), or two values not under their columns; nothing tells which.
                if value and len(value.split()) > 1 and all(v is None for v in values[index + 1 :]):
                    raise ParseError(
                        f"line {number}: cannot tell which columns {value!r} belongs to: it "
                        f"stands under {names[index]} and every column after it is empty",
                        fmt="table",
                    )
            rows.append(dict(zip(names, values)))
    else:
        for line in body:
            fields: list[str | None] = list(line.split(None, len(names) - 1))
            fields += [None] * (len(names) - len(fields))
            rows.append(dict(zip(names, fields)))
    return rows


def _parse_table(text: str) -> list[Row]:
    if not text.strip():
        raise ParseError("the output is empty", fmt="table")
    return parse_table(text)


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        return value[1:-1]
    return value


def _parse_kv(text: str, *, sep: str | None = None, unquote: bool = True) -> list[Row]:
    row: Row = {}
    first_seen: dict[str, int] = {}
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if sep is not None:
            at = stripped.find(sep)
            width = len(sep)
        else:
            found = [i for i in (stripped.find("="), stripped.find(":")) if i >= 0]
            at = min(found) if found else -1
            width = 1
        if at < 0:
            wanted = repr(sep) if sep is not None else "'=' or ':'"
            raise ParseError(f"line {number} has no {wanted}: {stripped[:80]!r}", fmt="kv")
        if at == 0:
            raise ParseError(f"line {number} has no key: {stripped[:80]!r}", fmt="kv")
        key = stripped[:at].strip()
        value = stripped[at + width :].strip()
        if key in first_seen:
            raise ParseError(
                f"line {number} repeats the key {key!r} (first on line {first_seen[key]})",
                fmt="kv",
            )
        first_seen[key] = number
        row[key] = _unquote(value) if unquote else value
    return [row] if row else []


def _compile_pattern(pattern: object, flags: object) -> re.Pattern[str]:
    """``pattern`` compiled with ``re.MULTILINE``; ``ValueError`` saying what is wrong."""
    if not isinstance(flags, int) or isinstance(flags, bool):
        raise TypeError(
            f"format 'regex': flags must be re flags (an int), not {type(flags).__name__}"
        )
    if isinstance(pattern, re.Pattern):
        if not isinstance(pattern.pattern, str):
            raise TypeError("format 'regex': the pattern must match text (str), not bytes")
        source, flags = pattern.pattern, pattern.flags | flags
    elif isinstance(pattern, str):
        source = pattern
    else:
        raise TypeError(
            f"format 'regex': pattern must be a str or re.Pattern, not {type(pattern).__name__}"
        )
    try:
        compiled = re.compile(source, flags | re.MULTILINE)
    except re.error as exc:
        raise ValueError(f"format 'regex': invalid pattern {source!r}: {exc}") from None
    if not compiled.groupindex:
        raise ValueError(
            f"format 'regex': the pattern {compiled.pattern!r} has no named groups; "
            "name the columns like (?P<name>...)"
        )
    return compiled


def _check_regex(*, pattern: object, flags: object = 0) -> None:
    _compile_pattern(pattern, flags)


def _want(fmt: str, name: str, ok: bool, what: str, value: object) -> None:
    if not ok:
        raise TypeError(f"format {fmt!r}: {name} must be {what}, not {type(value).__name__}")


def _check_columns(fmt: str, header: object, columns: object) -> None:
    _want(fmt, "header", isinstance(header, bool), "True or False", header)
    if columns is not None:
        ok = (
            isinstance(columns, Sequence)
            and not isinstance(columns, str)
            and all(isinstance(c, str) for c in columns)
        )
        _want(fmt, "columns", ok, "a list of column names (str), or None", columns)


def _check_csv(*, header: object = True, columns: object = None, delimiter: object = ",") -> None:
    _check_columns("csv", header, columns)
    ok = isinstance(delimiter, str) and len(delimiter) == 1 and delimiter not in "\r\n\"'"
    if isinstance(delimiter, str) and not ok:
        raise ValueError(
            f"format 'csv': delimiter must be one character other than a quote or newline, "
            f"not {delimiter!r}"
        )
    _want("csv", "delimiter", ok, "one character (str)", delimiter)


def _check_tsv(*, header: object = True, columns: object = None) -> None:
    _check_columns("tsv", header, columns)


def _check_lines(*, skip_blank: object = False) -> None:
    _want("lines", "skip_blank", isinstance(skip_blank, bool), "True or False", skip_blank)


def _check_kv(*, sep: object = None, unquote: object = True) -> None:
    ok = sep is None or (isinstance(sep, str) and sep.strip() != "")
    if isinstance(sep, str) and not ok:
        raise ValueError("format 'kv': sep must be a separator such as '=' or ':', not blank")
    _want("kv", "sep", ok, "a str such as '=' or None", sep)
    _want("kv", "unquote", isinstance(unquote, bool), "True or False", unquote)


def _parse_regex(text: str, *, pattern: str | re.Pattern[str], flags: int = 0) -> list[Row]:
    compiled = _compile_pattern(pattern, flags)
    return [match.groupdict() for match in compiled.finditer(text)]


register_format("json", _parse_json)
register_format("jsonl", _parse_jsonl, aliases=["ndjson"])
register_format("csv", _parse_csv, check=_check_csv)
register_format("tsv", _parse_tsv, check=_check_tsv)
register_format("lines", _parse_lines, check=_check_lines)
register_format("table", _parse_table, aliases=["whitespace"])
register_format("kv", _parse_kv, aliases=["keyvalue", "key=value"], check=_check_kv)
register_format("regex", _parse_regex, check=_check_regex)


# -- typed columns ------------------------------------------------------------------------------

#: What :func:`typed_column` calls each kind of column it converts (``frame.attrs["units"]``).
UNIT_KINDS = ("percent", "bytes", "seconds")

_PERCENT = re.compile(r"^(-?\d+(?:\.\d+)?)\s?%$")
_SIZE = re.compile(r"^(\d+(?:\.\d+)?)\s?(?:([kKMGTPE])(i?)(B?)|(B))$")
_SIZE_POWERS = {"k": 1, "K": 1, "M": 2, "G": 3, "T": 4, "P": 5, "E": 6}
_DURATION = re.compile(r"^(?:\d+(?:\.\d+)?(?:ns|us|µs|ms|s|m|h|d|w))+$")
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h|d|w)")
_SECONDS = {
    "ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0,
    "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0,
}  # fmt: skip
_MINUTES_ONLY = re.compile(r"^\d+(?:\.\d+)?m$")
_NUMBER = re.compile(r"^-?\d+(?:\.\d+)?$")


def _percent(text: str) -> float | None:
    match = _PERCENT.match(text)
    return float(match.group(1)) if match else None


def _size(text: str) -> float | None:
    if _NUMBER.match(text) and not text.startswith("-"):
        return float(text)
    match = _SIZE.match(text)
    if match is None:
        return None
    number = float(match.group(1))
    if match.group(5):  # "512B"
        return number
    letter, binary, suffix_b = match.group(2), match.group(3), match.group(4)
    if letter == "k" and (binary or not suffix_b):
        return None  # "ki", "k": no tool writes these; leave them be
    base = 1000 if suffix_b and not binary else 1024
    return number * float(base ** _SIZE_POWERS[letter])


def _duration(text: str) -> float | None:
    if not _DURATION.match(text):
        return None
    return float(sum(float(n) * _SECONDS[unit] for n, unit in _DURATION_PART.findall(text)))


def _absent(value: object) -> bool:
    """None or NaN: a cell with no value."""
    return value is None or (isinstance(value, float) and math.isnan(value))


def typed_column(name: str, values: Sequence[object]) -> tuple[str, list[float | None]] | None:
    """``(kind, numbers)`` when every non-empty value of a text column reads as one kind
    (``"percent"``, ``"bytes"``, ``"seconds"``), else None; empty values give None.

    Plain numbers are not this function's (``pd.to_numeric`` reads them): a column is a
    size or a duration only when some value has a unit. See the module's docstring for the
    units and the choices made.
    """
    texts = [v.strip() if isinstance(v, str) else None for v in values]
    present = [t for t in texts if t]
    if not present or any(not isinstance(v, str) for v in values if not _absent(v)):
        return None
    readers: list[tuple[str, Callable[[str], float | None]]] = [
        ("percent", _percent),
        ("bytes", _size),
        ("seconds", _duration),
    ]
    for kind, read in readers:
        numbers = [read(t) for t in present]
        if any(n is None for n in numbers):
            continue
        if kind == "bytes" and all(_NUMBER.match(t) for t in present):
            return None  # plain numbers: not sizes
        if (
            kind == "seconds"
            and "cpu" in name.lower()
            and all(_MINUTES_ONLY.match(t) for t in present)
        ):
            return None  # kubectl top's millicores (250m), not minutes
        out: list[float | None] = []
        for text in texts:
            out.append(read(text) if text else None)
        return kind, out
    return None
