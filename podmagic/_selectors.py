"""Kubernetes label selectors and pod field selectors: parsing, matching, canonical text.

This module follows k8s.io/apimachinery ``pkg/labels/selector.go`` and
``pkg/fields/selector.go`` closely enough that the sandbox API server can return the
same error texts a real apiserver returns to kubectl, and the client engine can match
pods exactly as the server would have filtered them.

It is shared on purpose: the client needs it as much as the sandbox does. Target resolution
(:mod:`podmagic._query`, :mod:`podmagic._resolve`) uses it to

* check ``-l`` and ``--field-selector`` before any request, so that a typo is one local line
  naming the mistake (and a field pods cannot be selected by) rather than a server 400;
* turn a workload's ``spec.selector`` — ``matchLabels`` and ``matchExpressions`` — into the
  selector text of the LIST that finds its pods (:meth:`LabelSelector.from_spec`);
* apply a field selector to pods fetched by name, which the server cannot filter
  (:meth:`FieldSelector.matches_pod`).

The sandbox uses the same code to filter LISTs and to answer bad selectors in the
apiserver's words. It imports only :mod:`podmagic._podview` (no I/O, no dependencies), so
either side can use it alone.

The error texts are those of Kubernetes 1.32 (the kubectl generation this project
targets): "a qualified name ...", "must be no more than 63 characters". Later releases
rephrased a few of them.

Label selector grammar (comma means AND)::

    k=v  k==v  k!=v  k in (a,b)  k notin (a,b)  k  !k  k>5  k<5

Field selectors are the ``f=v``, ``f==v``, ``f!=v`` terms of ``fields.ParseSelector``,
with ``\\,`` ``\\=`` ``\\\\`` escapes in values, restricted to the fields a Pod exposes.
"""

from __future__ import annotations

import dataclasses
import enum
import re
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any, Final

from ._podview import section as _section
from ._podview import string as _text

__all__ = [
    "FieldRequirement",
    "FieldSelector",
    "LabelSelector",
    "Requirement",
    "SelectorError",
    "parse_label_selector",
    "pod_field_value",
]


class SelectorError(ValueError):
    """A selector could not be parsed or built; the message is apimachinery's text."""


# -- validation texts -------------------------------------------------------------------------
#
# The format strings double as the regexes: apimachinery prints the very pattern it used, so
# keeping one copy guarantees the message and the check never drift apart.

_QUALIFIED_NAME_FMT: Final = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]"
_QUALIFIED_NAME_ERR: Final = (
    "must consist of alphanumeric characters, '-', '_' or '.', "
    "and must start and end with an alphanumeric character"
)
_QUALIFIED_NAME_MAX: Final = 63
_LABEL_VALUE_FMT: Final = "(" + _QUALIFIED_NAME_FMT + ")?"
_LABEL_VALUE_ERR: Final = (
    "a valid label must be an empty string or consist of alphanumeric characters, "
    "'-', '_' or '.', and must start and end with an alphanumeric character"
)
_LABEL_VALUE_MAX: Final = 63
_DNS1123_LABEL_FMT: Final = "[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_DNS1123_SUBDOMAIN_FMT: Final = _DNS1123_LABEL_FMT + "(\\." + _DNS1123_LABEL_FMT + ")*"
_DNS1123_SUBDOMAIN_ERR: Final = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, "
    "'-' or '.', and must start and end with an alphanumeric character"
)
_DNS1123_SUBDOMAIN_MAX: Final = 253

# fullmatch, not match with "$": Python's "$" also matches before a trailing newline, Go's not.
_QUALIFIED_NAME_RE: Final = re.compile(_QUALIFIED_NAME_FMT)
_LABEL_VALUE_RE: Final = re.compile(_LABEL_VALUE_FMT)
_DNS1123_SUBDOMAIN_RE: Final = re.compile(_DNS1123_SUBDOMAIN_FMT)


def _regex_error(message: str, fmt: str, *examples: str) -> str:
    # Reproduces validation.RegexError byte for byte, including its doubled spaces.
    if not examples:
        return f"{message} (regex used for validation is '{fmt}')"
    listed = " or ".join(f"'{example}', " for example in examples)
    return f"{message} (e.g. {listed}regex used for validation is '{fmt}')"


def _max_len_error(length: int) -> str:
    return f"must be no more than {length} characters"


def _byte_len(text: str) -> int:
    # Go measures strings in UTF-8 bytes.
    return len(text.encode("utf-8", "surrogatepass"))


def _dns1123_subdomain_errors(value: str) -> list[str]:
    errors = []
    if _byte_len(value) > _DNS1123_SUBDOMAIN_MAX:
        errors.append(_max_len_error(_DNS1123_SUBDOMAIN_MAX))
    if not _DNS1123_SUBDOMAIN_RE.fullmatch(value):
        errors.append(_regex_error(_DNS1123_SUBDOMAIN_ERR, _DNS1123_SUBDOMAIN_FMT, "example.com"))
    return errors


def _label_key_errors(key: str) -> list[str]:
    """validation.IsQualifiedName: optional DNS-subdomain prefix, '/', a name of <= 63."""
    parts = key.split("/")
    errors: list[str] = []
    if len(parts) == 1:
        name = parts[0]
    elif len(parts) == 2:
        prefix, name = parts
        if not prefix:
            errors.append("prefix part must be non-empty")
        else:
            errors.extend("prefix part " + msg for msg in _dns1123_subdomain_errors(prefix))
    else:
        return [
            "a qualified name "
            + _regex_error(_QUALIFIED_NAME_ERR, _QUALIFIED_NAME_FMT, "MyName", "my.name", "123-abc")
            + " with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"
        ]
    if not name:
        errors.append("name part must be non-empty")
    elif _byte_len(name) > _QUALIFIED_NAME_MAX:
        errors.append("name part " + _max_len_error(_QUALIFIED_NAME_MAX))
    if not _QUALIFIED_NAME_RE.fullmatch(name):
        errors.append(
            "name part "
            + _regex_error(_QUALIFIED_NAME_ERR, _QUALIFIED_NAME_FMT, "MyName", "my.name", "123-abc")
        )
    return errors


def _label_value_errors(value: str) -> list[str]:
    errors = []
    if _byte_len(value) > _LABEL_VALUE_MAX:
        errors.append(_max_len_error(_LABEL_VALUE_MAX))
    if not _LABEL_VALUE_RE.fullmatch(value):
        errors.append(
            _regex_error(_LABEL_VALUE_ERR, _LABEL_VALUE_FMT, "MyValue", "my_value", "12345")
        )
    return errors


# -- Go formatting helpers ------------------------------------------------------------------

_GO_ESCAPES: Final = {
    "\a": "\\a",
    "\b": "\\b",
    "\f": "\\f",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
    "\v": "\\v",
}


def _go_quote(text: str) -> str:
    """Go's %q (strconv.Quote), which field.Error uses to show the offending value."""
    out = ['"']
    for char in text:
        if char in '"\\':
            out.append("\\" + char)
        elif char.isprintable():
            out.append(char)
        elif char in _GO_ESCAPES:
            out.append(_GO_ESCAPES[char])
        elif ord(char) < 0x80:
            out.append(f"\\x{ord(char):02x}")
        elif ord(char) < 0x10000:
            out.append(f"\\u{ord(char):04x}")
        else:
            out.append(f"\\U{ord(char):08x}")
    out.append('"')
    return "".join(out)


def _go_string_slice(values: tuple[str, ...], is_nil: bool) -> str:
    """Go's %#v of a []string, which is how a wrong number of values is reported."""
    if is_nil and not values:
        return "[]string(nil)"
    return "[]string{" + ", ".join(_go_quote(value) for value in values) + "}"


def _invalid(path: str, shown_value: str, detail: str) -> str:
    # field.Invalid(...).Error()
    return f"{path}: Invalid value: {shown_value}: {detail}"


def _aggregate(errors: list[str]) -> str:
    # field.ErrorList.ToAggregate().Error(): duplicates dropped, several shown as a list.
    unique = list(dict.fromkeys(errors))
    return unique[0] if len(unique) == 1 else "[" + ", ".join(unique) + "]"


_INT64_MIN: Final = -(2**63)
_INT64_MAX: Final = 2**63 - 1


def _parse_int64(text: str) -> int | None:
    """strconv.ParseInt(text, 10, 64), or None where Go reports an error."""
    digits = text[1:] if text[:1] in ("+", "-") else text
    # isdigit alone would accept non-ASCII digits, and int() would accept "_" and spaces.
    if not digits or not (digits.isascii() and digits.isdigit()):
        return None
    value = int(text)
    return value if _INT64_MIN <= value <= _INT64_MAX else None


# -- label requirements ---------------------------------------------------------------------

# validRequirementOperators, in the order apimachinery lists them in "supported values".
_OPERATORS: Final = ("in", "notin", "=", "==", "!=", "gt", "lt", "exists", "!")


def _requirement_errors(
    key: str, operator: str, values: tuple[str, ...], *, values_nil: bool = False
) -> list[str]:
    """Everything labels.NewRequirement would reject, as apimachinery words it."""
    errors = []
    key_errors = _label_key_errors(key)
    if key_errors:
        errors.append(_invalid("key", _go_quote(key), "; ".join(key_errors)))
    shown = _go_string_slice(values, values_nil)
    if operator in ("in", "notin"):
        if not values:
            errors.append(
                _invalid("values", shown, "for 'in', 'notin' operators, values set can't be empty")
            )
    elif operator in ("=", "==", "!="):
        if len(values) != 1:
            errors.append(
                _invalid("values", shown, "exact-match compatibility requires one single value")
            )
    elif operator in ("exists", "!"):
        if values:
            errors.append(
                _invalid("values", shown, "values set must be empty for exists and does not exist")
            )
    elif operator in ("gt", "lt"):
        if len(values) != 1:
            errors.append(
                _invalid("values", shown, "for 'Gt', 'Lt' operators, exactly one value is required")
            )
        for index, value in enumerate(values):
            if _parse_int64(value) is None:
                errors.append(
                    _invalid(
                        f"values[{index}]",
                        _go_quote(value),
                        "for 'Gt', 'Lt' operators, the value must be an integer",
                    )
                )
    else:
        supported = ", ".join(_go_quote(op) for op in _OPERATORS)
        errors.append(
            f"operator: Unsupported value: {_go_quote(operator)}: supported values: {supported}"
        )
    for index, value in enumerate(values):
        value_errors = _label_value_errors(value)
        if value_errors:
            errors.append(
                _invalid(f"values[{index}][{key}]", _go_quote(value), "; ".join(value_errors))
            )
    return errors


@dataclasses.dataclass(frozen=True)
class Requirement:
    """One clause of a label selector.

    ``operator`` is one of ``=``, ``==``, ``!=``, ``in``, ``notin``, ``exists``, ``!`` (does
    not exist), ``gt``, ``lt``. Construction validates like ``labels.NewRequirement`` and
    raises :class:`SelectorError`; ``values`` are then stored sorted and de-duplicated, so
    that equal requirements compare equal however their values were listed.
    """

    key: str
    operator: str
    values: tuple[str, ...] = ()
    # Precomputed so that matching a thousand pods per list request stays cheap.
    _value_set: frozenset[str] = dataclasses.field(init=False, repr=False, compare=False)
    _bound: int = dataclasses.field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        values = tuple(self.values)
        errors = _requirement_errors(self.key, self.operator, values)
        if errors:
            raise SelectorError(_aggregate(errors))
        normalized = tuple(sorted(set(values)))
        object.__setattr__(self, "values", normalized)
        object.__setattr__(self, "_value_set", frozenset(normalized))
        bound = _parse_int64(normalized[0]) if self.operator in ("gt", "lt") else None
        object.__setattr__(self, "_bound", 0 if bound is None else bound)

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Whether a label set satisfies this requirement (apimachinery semantics).

        ``!=`` and ``notin`` also match objects without the key; ``gt``/``lt`` never match a
        missing or non-integer label value.
        """
        operator = self.operator
        value = labels.get(self.key)
        if operator in ("=", "==", "in"):
            return value is not None and value in self._value_set
        if operator in ("!=", "notin"):
            return value is None or value not in self._value_set
        if operator == "exists":
            return value is not None
        if operator == "!":
            return value is None
        if value is None:
            return False
        number = _parse_int64(value)
        if number is None:
            return False
        return number > self._bound if operator == "gt" else number < self._bound

    def __str__(self) -> str:
        operator = self.operator
        if operator == "exists":
            return self.key
        if operator == "!":
            return "!" + self.key
        if operator in ("in", "notin"):
            return f"{self.key} {operator} ({','.join(self.values)})"
        symbol = {"gt": ">", "lt": "<"}.get(operator, operator)
        return f"{self.key}{symbol}{self.values[0]}"


# -- label selector lexer and parser --------------------------------------------------------


class _Tok(enum.Enum):
    ERROR = enum.auto()
    END = enum.auto()
    CLOSE_PAREN = enum.auto()
    COMMA = enum.auto()
    NOT = enum.auto()
    DOUBLE_EQUALS = enum.auto()
    EQUALS = enum.auto()
    GREATER = enum.auto()
    IDENTIFIER = enum.auto()
    IN = enum.auto()
    LESS = enum.auto()
    NOT_EQUALS = enum.auto()
    NOT_IN = enum.auto()
    OPEN_PAREN = enum.auto()


_LITERALS: Final = {
    ")": _Tok.CLOSE_PAREN,
    ",": _Tok.COMMA,
    "!": _Tok.NOT,
    "==": _Tok.DOUBLE_EQUALS,
    "=": _Tok.EQUALS,
    ">": _Tok.GREATER,
    "in": _Tok.IN,
    "<": _Tok.LESS,
    "!=": _Tok.NOT_EQUALS,
    "notin": _Tok.NOT_IN,
    "(": _Tok.OPEN_PAREN,
}
_SPECIAL: Final = frozenset("=!(),><")
_WHITESPACE: Final = frozenset(" \t\r\n")
_BINARY_OPERATORS: Final = {
    _Tok.IN: "in",
    _Tok.NOT_IN: "notin",
    _Tok.EQUALS: "=",
    _Tok.DOUBLE_EQUALS: "==",
    _Tok.NOT_EQUALS: "!=",
    _Tok.GREATER: "gt",
    _Tok.LESS: "lt",
}
# Go's lexer reads a NUL byte exactly as it reads the end of the string.
_NUL: Final = "\0"

_Token = tuple[_Tok, str]


def _lex(text: str) -> list[_Token]:
    """Tokenize the way labels.Lexer does, including its treatment of NUL as end of input."""
    tokens: list[_Token] = []
    pos, end = 0, len(text)
    while True:
        while pos < end and text[pos] in _WHITESPACE:
            pos += 1
        if pos >= end or text[pos] == _NUL:
            tokens.append((_Tok.END, ""))
            return tokens
        start = pos
        if text[pos] in _SPECIAL:
            # Longest run of symbols that still spells an operator: "!=" beats "!", "==" beats
            # "=", but "=(" is "=" followed by "(".
            last: _Token | None = None
            while pos < end and text[pos] in _SPECIAL:
                kind = _LITERALS.get(text[start : pos + 1])
                if kind is None and last is not None:
                    break
                pos += 1
                if kind is not None:
                    last = (kind, text[start:pos])
            if last is None:
                tokens.append((_Tok.ERROR, f"error expected: keyword found '{text[start:pos]}'"))
            else:
                tokens.append(last)
        else:
            while pos < end and text[pos] not in _SPECIAL and text[pos] not in _WHITESPACE:
                if text[pos] == _NUL:
                    break
                pos += 1
            word = text[start:pos]
            tokens.append((_LITERALS.get(word, _Tok.IDENTIFIER), word))
        if pos < end and text[pos] == _NUL:
            # Go's reader consumes a NUL that ends a token; only a NUL where a token would
            # start ends the input.
            pos += 1


class _Parser:
    """labels.Parser: recursive descent over the token list, with one token of lookahead."""

    def __init__(self, text: str) -> None:
        self._tokens = _lex(text)
        self._position = 0

    def _peek(self, values: bool) -> _Token:
        # In value position "in" and "notin" are plain words: "x in (in, notin)" is legal.
        kind, literal = self._tokens[min(self._position, len(self._tokens) - 1)]
        if values and kind in (_Tok.IN, _Tok.NOT_IN):
            kind = _Tok.IDENTIFIER
        return kind, literal

    def _take(self, values: bool) -> _Token:
        token = self._peek(values)
        self._position += 1
        return token

    def parse(self) -> list[Requirement]:
        requirements: list[Requirement] = []
        while True:
            kind, literal = self._peek(values=True)
            if kind is _Tok.END:
                return requirements
            if kind not in (_Tok.IDENTIFIER, _Tok.NOT):
                raise SelectorError(
                    f"found '{literal}', expected: !, identifier, or 'end of string'"
                )
            try:
                requirements.append(self._requirement())
            except SelectorError as error:
                raise SelectorError(f"unable to parse requirement: {error}") from None
            kind, literal = self._take(values=True)
            if kind is _Tok.END:
                return requirements
            if kind is not _Tok.COMMA:
                raise SelectorError(f"found '{literal}', expected: ',' or 'end of string'")
            kind, literal = self._peek(values=True)
            if kind not in (_Tok.IDENTIFIER, _Tok.NOT):
                raise SelectorError(f"found '{literal}', expected: identifier after ','")

    def _requirement(self) -> Requirement:
        key, operator = self._key_and_inferred_operator()
        if operator is not None:
            return Requirement(key, operator)
        kind, literal = self._take(values=False)
        if kind not in _BINARY_OPERATORS:
            raise SelectorError(
                f"found '{literal}', expected: {', '.join(_BINARY_OPERATORS.values())}"
            )
        operator = _BINARY_OPERATORS[kind]
        values = self._value_set() if operator in ("in", "notin") else self._exact_value()
        return Requirement(key, operator, tuple(sorted(values)))

    def _key_and_inferred_operator(self) -> tuple[str, str | None]:
        operator = None
        kind, literal = self._take(values=True)
        if kind is _Tok.NOT:
            operator = "!"
            kind, literal = self._take(values=True)
        if kind is not _Tok.IDENTIFIER:
            raise SelectorError(f"found '{literal}', expected: identifier")
        errors = _label_key_errors(literal)
        if errors:
            # The parser validates keys with a nil field path, which Go prints as "<nil>".
            raise SelectorError(_invalid("<nil>", _go_quote(literal), "; ".join(errors)))
        if operator is None and self._peek(values=True)[0] in (_Tok.END, _Tok.COMMA):
            operator = "exists"
        # "!k" followed by anything but "," or the end is left for parse() to reject.
        return literal, operator

    def _value_set(self) -> set[str]:
        kind, literal = self._take(values=True)
        if kind is not _Tok.OPEN_PAREN:
            raise SelectorError(f"found '{literal}' expected: '('")
        kind, literal = self._peek(values=True)
        if kind is _Tok.CLOSE_PAREN:
            self._take(values=True)
            return {""}
        if kind not in (_Tok.IDENTIFIER, _Tok.COMMA):
            raise SelectorError(f"found '{literal}', expected: ',', ')' or identifier")
        values = self._identifier_list()
        if self._take(values=True)[0] is not _Tok.CLOSE_PAREN:
            raise SelectorError(f"found '{literal}', expected: ')'")
        return values

    def _identifier_list(self) -> set[str]:
        # Empty entries are empty-string values: "(a,)" and "(,a)" both mean {"", "a"}.
        # Kubernetes 1.32 swallows the second comma of ",,", so "(a,,)" is an error there;
        # that quirk is kept so the sandbox rejects what a 1.32 apiserver rejects.
        values: set[str] = set()
        while True:
            kind, literal = self._take(values=True)
            if kind is _Tok.IDENTIFIER:
                values.add(literal)
                kind, literal = self._peek(values=True)
                if kind is _Tok.CLOSE_PAREN:
                    return values
                if kind is not _Tok.COMMA:
                    raise SelectorError(f"found '{literal}', expected: ',' or ')'")
            elif kind is _Tok.COMMA:
                if not values:
                    values.add("")
                kind = self._peek(values=True)[0]
                if kind is _Tok.CLOSE_PAREN:
                    values.add("")
                    return values
                if kind is _Tok.COMMA:
                    self._take(values=True)
                    values.add("")
            else:
                raise SelectorError(f"found '{literal}', expected: ',', or identifier")

    def _exact_value(self) -> set[str]:
        if self._peek(values=True)[0] in (_Tok.END, _Tok.COMMA):
            return {""}
        kind, literal = self._take(values=True)
        if kind is not _Tok.IDENTIFIER:
            raise SelectorError(f"found '{literal}', expected: identifier")
        return {literal}


# -- label selector -------------------------------------------------------------------------

_NO_LABELS: Final[Mapping[str, str]] = MappingProxyType({})
_SPEC_OPERATORS: Final = {"In": "in", "NotIn": "notin", "Exists": "exists", "DoesNotExist": "!"}


def _checked_requirement(
    key: str, operator: str, values: tuple[str, ...], *, values_nil: bool = False
) -> Requirement:
    errors = _requirement_errors(key, operator, values, values_nil=values_nil)
    if errors:
        raise SelectorError(_aggregate(errors))
    return Requirement(key, operator, values)


def _string_list(raw: object, where: str) -> tuple[str, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, (list, tuple)) or not all(isinstance(item, str) for item in raw):
        raise SelectorError(f"{where} must be a list of strings")
    return tuple(raw)


@dataclasses.dataclass(frozen=True)
class LabelSelector:
    """A conjunction of label requirements, kept sorted by key like apimachinery's selector.

    The empty selector matches everything.
    """

    requirements: tuple[Requirement, ...] = ()

    def __post_init__(self) -> None:
        # A stable sort by key is what makes str() canonical and equality meaningful.
        ordered = tuple(sorted(self.requirements, key=lambda requirement: requirement.key))
        object.__setattr__(self, "requirements", ordered)

    @classmethod
    def parse(cls, text: str) -> LabelSelector:
        """Parse selector text as ``labels.Parse`` does; raise :class:`SelectorError`."""
        return cls(tuple(_Parser(text).parse()))

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any]) -> LabelSelector:
        """Convert a workload's ``spec.selector`` object, as ``metav1.LabelSelectorAsSelector``.

        ``matchLabels`` entries become ``key=value``; ``matchExpressions`` use the operators
        ``In``, ``NotIn``, ``Exists`` and ``DoesNotExist``. An empty object matches everything.
        """
        requirements: list[Requirement] = []
        match_labels = spec.get("matchLabels") or {}
        if not isinstance(match_labels, Mapping):
            raise SelectorError("matchLabels must be an object")
        # Go walks the map in random order; sorting keeps the first reported error stable.
        for key in sorted(match_labels):
            value = match_labels[key]
            if not isinstance(key, str) or not isinstance(value, str):
                raise SelectorError("matchLabels must map strings to strings")
            requirements.append(_checked_requirement(key, "=", (value,)))
        expressions = spec.get("matchExpressions") or []
        if not isinstance(expressions, (list, tuple)):
            raise SelectorError("matchExpressions must be a list")
        for index, expression in enumerate(expressions):
            if not isinstance(expression, Mapping):
                raise SelectorError(f"matchExpressions[{index}] must be an object")
            operator_name = expression.get("operator")
            if not isinstance(operator_name, str):
                operator_name = ""
            operator = _SPEC_OPERATORS.get(operator_name)
            if operator is None:
                raise SelectorError(
                    f"{_go_quote(operator_name)} is not a valid label selector operator"
                )
            key = expression.get("key")
            values = _string_list(expression.get("values"), f"matchExpressions[{index}].values")
            # Go copies the values with append([]string(nil), ...), so none at all shows as nil.
            requirements.append(
                _checked_requirement(
                    key if isinstance(key, str) else "", operator, values, values_nil=not values
                )
            )
        return cls(tuple(requirements))

    @property
    def is_empty(self) -> bool:
        """True when the selector places no restriction (and so matches everything)."""
        return not self.requirements

    def matches(self, labels: Mapping[str, str] | None) -> bool:
        """Whether every requirement holds for ``labels`` (``None`` means no labels)."""
        if labels is None:
            labels = _NO_LABELS
        for requirement in self.requirements:
            if not requirement.matches(labels):
                return False
        return True

    def __and__(self, other: LabelSelector) -> LabelSelector:
        if not isinstance(other, LabelSelector):
            return NotImplemented
        return LabelSelector(self.requirements + other.requirements)

    def __str__(self) -> str:
        """The canonical text, as ``Selector.String()`` renders it for ``?labelSelector=``."""
        return ",".join(str(requirement) for requirement in self.requirements)


def parse_label_selector(text: str) -> LabelSelector:
    """Parse label selector text; same as :meth:`LabelSelector.parse`."""
    return LabelSelector.parse(text)


# -- pod fields -----------------------------------------------------------------------------


def _pod_ips(pod: Mapping[str, Any]) -> list[str]:
    status = _section(pod, "status")
    entries = status.get("podIPs")
    ips = []
    if isinstance(entries, list):
        ips = [_text(entry, "ip") if isinstance(entry, Mapping) else "" for entry in entries]
    # The v1 -> internal conversion fills podIPs from the legacy podIP when only that is set.
    if not ips and _text(status, "podIP"):
        ips = [_text(status, "podIP")]
    return ips


def _service_account(pod: Mapping[str, Any]) -> str:
    spec = _section(pod, "spec")
    # The deprecated spec.serviceAccount is an alias the conversion honours when the new
    # field is empty.
    return _text(spec, "serviceAccountName") or _text(spec, "serviceAccount")


def _first_pod_ip(pod: Mapping[str, Any]) -> str:
    ips = _pod_ips(pod)
    return ips[0] if ips else ""


# pod.ToSelectableFields, read from the v1 JSON shape instead of the internal type.
_POD_FIELDS: Final[Mapping[str, Callable[[Mapping[str, Any]], str]]] = MappingProxyType(
    {
        "metadata.name": lambda pod: _text(_section(pod, "metadata"), "name"),
        "metadata.namespace": lambda pod: _text(_section(pod, "metadata"), "namespace"),
        "spec.nodeName": lambda pod: _text(_section(pod, "spec"), "nodeName"),
        "spec.restartPolicy": lambda pod: _text(_section(pod, "spec"), "restartPolicy"),
        "spec.schedulerName": lambda pod: _text(_section(pod, "spec"), "schedulerName"),
        "spec.serviceAccountName": _service_account,
        "spec.hostNetwork": lambda pod: (
            "true" if _section(pod, "spec").get("hostNetwork") is True else "false"
        ),
        "status.phase": lambda pod: _text(_section(pod, "status"), "phase"),
        "status.podIP": _first_pod_ip,
        "status.podIPs": lambda pod: ",".join(_pod_ips(pod)),
        "status.nominatedNodeName": lambda pod: _text(_section(pod, "status"), "nominatedNodeName"),
    }
)
# Old v1 clients send spec.host; the apiserver's field-label conversion renames it.
_POD_FIELD_ALIASES: Final = {"spec.host": "spec.nodeName"}


def _pod_field(field: str) -> str:
    canonical = _POD_FIELD_ALIASES.get(field, field)
    if canonical not in _POD_FIELDS:
        raise SelectorError(f"field label not supported: {field}")
    return canonical


def pod_field_value(pod: Mapping[str, Any], field: str) -> str:
    """The value a pod exposes for a selectable field; missing fields read as ``""``.

    ``spec.hostNetwork`` reads ``"true"``/``"false"``; ``status.podIPs`` reads all IPs joined
    with commas. Raises :class:`SelectorError` for fields pods cannot be selected by.
    """
    return _POD_FIELDS[_pod_field(field)](pod)


# -- field selectors ------------------------------------------------------------------------


def _split_terms(text: str) -> list[str]:
    # Commas split terms unless escaped; the escape stays in the term for the value parser.
    if not text:
        return []
    terms, start, escaped = [], 0, False
    for index, char in enumerate(text):
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == ",":
            terms.append(text[start:index])
            start = index + 1
    terms.append(text[start:])
    return terms


def _split_term(term: str) -> tuple[str, str, str] | None:
    # Field names cannot be escaped, so the first operator anywhere in the term splits it;
    # "!=" and "==" are tried before "=" at each position.
    for index in range(len(term)):
        for operator in ("!=", "==", "="):
            if term.startswith(operator, index):
                return term[:index], operator, term[index + len(operator) :]
    return None


def _unescape_value(value: str) -> str:
    if not any(char in value for char in "\\,="):
        return value
    out, escaped = [], False
    for char in value:
        if escaped:
            if char not in "\\,=":
                raise SelectorError(f"invalid field selector: invalid escape sequence: \\{char}")
            out.append(char)
            escaped = False
        elif char == "\\":
            escaped = True
        elif char in ",=":
            # Go formats the rune with %v, which prints its code point, e.g. 61 for "=".
            raise SelectorError(
                f"invalid field selector: unescaped character in value: {ord(char)}"
            )
        else:
            out.append(char)
    if escaped:
        raise SelectorError("invalid field selector: invalid escape sequence: \\")
    return "".join(out)


def _escape_value(value: str) -> str:
    return value.replace("\\", "\\\\").replace(",", "\\,").replace("=", "\\=")


@dataclasses.dataclass(frozen=True)
class FieldRequirement:
    """One ``field=value`` or ``field!=value`` term of a pod field selector.

    The field must be one pods can be selected by (``spec.host`` is accepted and renamed to
    ``spec.nodeName``); ``==`` is stored as ``=``.
    """

    field: str
    operator: str
    value: str
    _read: Callable[[Mapping[str, Any]], str] = dataclasses.field(
        init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        if self.operator not in ("=", "==", "!="):
            raise SelectorError(f"unsupported field selector operator: {self.operator!r}")
        field = _pod_field(self.field)
        object.__setattr__(self, "field", field)
        object.__setattr__(self, "operator", "!=" if self.operator == "!=" else "=")
        object.__setattr__(self, "_read", _POD_FIELDS[field])

    def matches_pod(self, pod: Mapping[str, Any]) -> bool:
        """Whether the pod satisfies this term."""
        if self.field == "status.podIPs":
            # The apiserver accepts status.podIPs but never fills it in, so upstream a
            # status.podIPs=X term matches no pod at all. Matching any one of the pod's IPs
            # is what the field name promises and what callers here rely on.
            found = self.value in (_pod_ips(pod) or [""])
        else:
            found = self._read(pod) == self.value
        return found if self.operator == "=" else not found

    def __str__(self) -> str:
        return f"{self.field}{self.operator}{_escape_value(self.value)}"


@dataclasses.dataclass(frozen=True)
class FieldSelector:
    """A conjunction of pod field terms, as ``fields.ParseSelector`` plus the pod field-label
    conversion the apiserver applies. The empty selector matches every pod."""

    terms: tuple[FieldRequirement, ...] = ()

    def __post_init__(self) -> None:
        # Sorting by canonical text makes parse(str(s)) == s hold; Go sorts the raw terms,
        # which only differs where "==" or "spec.host" was rewritten.
        object.__setattr__(self, "terms", tuple(sorted(self.terms, key=str)))

    @classmethod
    def parse(cls, text: str) -> FieldSelector:
        """Parse field selector text; raise :class:`SelectorError` with apimachinery's text."""
        parsed: list[tuple[str, str, str]] = []
        # Go sorts the raw terms before reading them, which decides which error is reported.
        for part in sorted(_split_terms(text)):
            if not part:
                continue
            split = _split_term(part)
            if split is None:
                raise SelectorError(f"invalid selector: '{text}'; can't understand '{part}'")
            field, operator, raw_value = split
            parsed.append((field, operator, _unescape_value(raw_value)))
        # Field names are checked only once the whole text has parsed, as in the apiserver.
        return cls(tuple(FieldRequirement(*term) for term in parsed))

    @property
    def is_empty(self) -> bool:
        """True when the selector places no restriction."""
        return not self.terms

    def matches_pod(self, pod: Mapping[str, Any]) -> bool:
        """Whether every term holds for the pod (a dict shaped like the API's Pod)."""
        for term in self.terms:
            if not term.matches_pod(pod):
                return False
        return True

    def __str__(self) -> str:
        return ",".join(str(term) for term in self.terms)
