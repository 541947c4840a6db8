"""OData query options of list operations: ``$filter``, ``$select``, ``$expand``, ``maxresults``.

``$filter`` (NOTES.md §8). Grammar::

    expr       := or_expr
    or_expr    := and_expr ("or" and_expr)*
    and_expr   := unary ("and" unary)*
    unary      := "not" unary | primary
    primary    := "(" expr ")"
                | "startswith" "(" property "," string ")" [("eq"|"ne") bool]
                | property op literal
    op         := eq | ne | gt | ge | lt | le
    literal    := 'string' (with '' as an escaped quote) | DateTime'...' | integer
                | true | false | null

Operators and keywords are matched case-insensitively; property names are case-sensitive
and must be in the resource's whitelist (:data:`JOB_FILTER_PROPERTIES`, ...), each with its
allowed operators. String and enum values compare case-insensitively (ids are
case-insensitive in Batch, NOTES.md §10.1); date-times compare as instants (exact .NET ticks);
a property absent from the object only satisfies ``ne``. Every problem is a 400
``InvalidQueryParameterValue`` with ``QueryParameterName=$filter``, ``QueryParameterValue``
and a ``Reason`` sentence.

The predicate takes the **wire-shaped** JSON dict of the resource (``executionInfo/endTime``
reads ``obj["executionInfo"]["endTime"]``, an ISO string).

``maxresults``: a value that is not an integer is 400 ``InvalidQueryParameterValue``; an
integer outside 1..1000 is 400 ``OutOfRangeQueryParameterValue`` (NOTES.md §6, §9.2); both
carry ``QueryParameterName``, ``QueryParameterValue`` and ``Reason``.

``$select``: comma list of top-level REST names; :func:`apply_select` keeps only those keys
(plus ``odata.*`` annotations, which are not entity properties).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from batch_emulator.protocol.errors import BatchError, invalid_query_parameter
from batch_emulator.protocol.formats import dotnet_ticks, parse_http_date, parse_timestamp_ticks

__all__ = [
    "EXPANDABLE",
    "JOB_FILTER_PROPERTIES",
    "MAX_RESULTS_LIMIT",
    "NODE_FILTER_PROPERTIES",
    "POOL_FILTER_PROPERTIES",
    "TASK_FILTER_PROPERTIES",
    "FilterProperty",
    "Predicate",
    "apply_select",
    "parse_expand",
    "parse_filter",
    "parse_maxresults",
    "parse_select",
]

Predicate = Callable[[Mapping[str, Any]], bool]
Kind = Literal["string", "enum", "datetime", "int"]

_CMP_OPS = frozenset({"eq", "ne", "gt", "ge", "lt", "le"})
_ALL = frozenset(_CMP_OPS | {"startswith"})
_EQ = frozenset({"eq"})
_EQ_NE = frozenset({"eq", "ne"})

MAX_RESULTS_LIMIT = 1000
EXPANDABLE = frozenset({"stats"})


@dataclass(frozen=True)
class FilterProperty:
    """A filterable property: where it lives in the wire JSON, its type and operators."""

    path: tuple[str, ...]
    kind: Kind
    ops: frozenset[str]
    #: Allowed enum values (lower-case); None = any.
    values: frozenset[str] | None = None


def _dt(path: str) -> FilterProperty:
    return FilterProperty(tuple(path.split("/")), "datetime", _CMP_OPS)


_JOB_STATES = frozenset(
    {"active", "disabling", "disabled", "enabling", "terminating", "completed", "deleting"}
)
_TASK_STATES = frozenset({"active", "preparing", "running", "completed"})

#: List jobs (NOTES.md §8). ``state`` allows eq and ne (the current docs show both).
JOB_FILTER_PROPERTIES: Mapping[str, FilterProperty] = {
    "id": FilterProperty(("id",), "string", _ALL),
    "state": FilterProperty(("state",), "enum", _EQ_NE, _JOB_STATES),
    "stateTransitionTime": _dt("stateTransitionTime"),
    "creationTime": _dt("creationTime"),
    "lastModified": _dt("lastModified"),
    "executionInfo/startTime": _dt("executionInfo/startTime"),
    "executionInfo/endTime": _dt("executionInfo/endTime"),
    "executionInfo/poolId": FilterProperty(("executionInfo", "poolId"), "string", _ALL),
}

#: List tasks (NOTES.md §8). ``state`` allows only eq, as documented. The docs name the
#: last-modified property ``lastModifiedTime`` although the JSON field is ``lastModified``;
#: both names are accepted.
TASK_FILTER_PROPERTIES: Mapping[str, FilterProperty] = {
    "id": FilterProperty(("id",), "string", _ALL),
    "state": FilterProperty(("state",), "enum", _EQ, _TASK_STATES),
    "stateTransitionTime": _dt("stateTransitionTime"),
    "creationTime": _dt("creationTime"),
    "lastModifiedTime": FilterProperty(("lastModified",), "datetime", _CMP_OPS),
    "lastModified": _dt("lastModified"),
    "executionInfo/startTime": _dt("executionInfo/startTime"),
    "executionInfo/endTime": _dt("executionInfo/endTime"),
    "executionInfo/exitCode": FilterProperty(("executionInfo", "exitCode"), "int", _CMP_OPS),
    "executionInfo/result": FilterProperty(
        ("executionInfo", "result"), "enum", _EQ_NE, frozenset({"success", "failure"})
    ),
}

#: List pools (OData filter doc, S8).
POOL_FILTER_PROPERTIES: Mapping[str, FilterProperty] = {
    "id": FilterProperty(("id",), "string", _ALL),
    "state": FilterProperty(("state",), "enum", _EQ_NE, frozenset({"active", "deleting"})),
    "allocationState": FilterProperty(
        ("allocationState",), "enum", _EQ_NE, frozenset({"steady", "resizing", "stopping"})
    ),
    "vmSize": FilterProperty(("vmSize",), "string", _EQ_NE),
    "creationTime": _dt("creationTime"),
    "lastModified": _dt("lastModified"),
    "stateTransitionTime": _dt("stateTransitionTime"),
    "allocationStateTransitionTime": _dt("allocationStateTransitionTime"),
}

# Every BatchNodeState value, so a filter on a state the emulator never reaches is valid
# (and matches nothing) rather than a 400.
_NODE_STATES = frozenset(
    {
        "idle",
        "rebooting",
        "reimaging",
        "running",
        "unusable",
        "creating",
        "starting",
        "waitingforstarttask",
        "starttaskfailed",
        "unknown",
        "leavingpool",
        "offline",
        "preempted",
        "upgradingos",
        "deallocated",
        "deallocating",
    }
)

#: List nodes (OData filter doc, "List nodes in a pool"), plus ``id``, which the doc does
#: not list but which selects one node cheaply.
NODE_FILTER_PROPERTIES: Mapping[str, FilterProperty] = {
    "id": FilterProperty(("id",), "string", frozenset({"eq", "ne", "startswith"})),
    "state": FilterProperty(("state",), "enum", _EQ_NE, _NODE_STATES),
    "stateTransitionTime": _dt("stateTransitionTime"),
    "lastBootTime": _dt("lastBootTime"),
    "allocationTime": _dt("allocationTime"),
}


# --------------------------------------------------------------------------- tokenizer

_TOKEN_RE = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<datetime>[Dd][Aa][Tt][Ee][Tt][Ii][Mm][Ee]'(?:[^']|'')*')
  | (?P<string>'(?:[^']|'')*')
  | (?P<number>-?\d+(?![\w.]))
  | (?P<name>[A-Za-z_$][A-Za-z0-9_$]*(?:/[A-Za-z_$][A-Za-z0-9_$]*)*)
  | (?P<punct>[(),])
    """,
    re.VERBOSE,
)


@dataclass(frozen=True)
class _Tok:
    kind: str  # datetime | string | number | name | punct | end
    text: str
    pos: int


class _FilterSyntaxError(Exception):
    pass


def _tokenize(text: str) -> list[_Tok]:
    toks: list[_Tok] = []
    pos = 0
    while pos < len(text):
        m = _TOKEN_RE.match(text, pos)
        if m is None:
            if text[pos] == "'" or text[pos:].lower().startswith("datetime'"):
                raise _FilterSyntaxError(f"Unterminated string literal at position {pos}.")
            raise _FilterSyntaxError(f"Unexpected character {text[pos]!r} at position {pos}.")
        kind = m.lastgroup or ""  # every alternative is a named group
        if kind != "ws":
            toks.append(_Tok(kind, m.group(), pos))
        pos = m.end()
    toks.append(_Tok("end", "", len(text)))
    return toks


# --------------------------------------------------------------------------- literals


@dataclass(frozen=True)
class _Lit:
    kind: Literal["string", "datetime", "int", "bool", "null"]
    value: Any  # str | int (ticks or integer) | bool | None
    text: str


def _unquote(s: str) -> str:
    return s[1:-1].replace("''", "'")


def _datetime_ticks(raw: str) -> int:
    try:
        return parse_timestamp_ticks(raw)
    except ValueError:
        pass
    try:
        return dotnet_ticks(parse_http_date(raw))
    except ValueError as exc:
        raise _FilterSyntaxError(
            f"DateTime'{raw}' is not an ISO 8601 or RFC 1123 date-time."
        ) from exc


def _value_ticks(value: Any) -> int | None:
    if isinstance(value, datetime):
        return dotnet_ticks(value)
    if isinstance(value, str):
        try:
            return parse_timestamp_ticks(value)
        except ValueError:
            return None
    return None


# --------------------------------------------------------------------------- parser


def _lookup(obj: Mapping[str, Any], path: tuple[str, ...]) -> Any:
    cur: Any = obj
    for part in path:
        if not isinstance(cur, Mapping):
            return None
        cur = cur.get(part)
    return cur


def _compare(op: str, left: Any, right: Any) -> bool:
    if left is None or right is None:
        if op == "eq":
            return left is None and right is None
        if op == "ne":
            return not (left is None and right is None)
        return False
    match op:
        case "eq":
            return bool(left == right)
        case "ne":
            return bool(left != right)
        case "gt":
            return bool(left > right)
        case "ge":
            return bool(left >= right)
        case "lt":
            return bool(left < right)
        case _:
            return bool(left <= right)


def _normalise(kind: str, value: Any) -> Any:
    """Bring an object's value to the comparison domain of ``kind`` (None if it cannot)."""
    if value is None:
        return None
    if kind in ("string", "enum"):
        return value.casefold() if isinstance(value, str) else None
    if kind == "datetime":
        return _value_ticks(value)
    if kind == "int":
        return value if isinstance(value, int) and not isinstance(value, bool) else None
    if kind == "bool":
        return value if isinstance(value, bool) else None
    return None


class _Parser:
    def __init__(self, text: str, props: Mapping[str, FilterProperty] | None) -> None:
        self.text = text
        self.props = props
        self.toks = _tokenize(text)
        self.i = 0

    # -- token helpers
    def peek(self) -> _Tok:
        return self.toks[self.i]

    def next(self) -> _Tok:
        tok = self.toks[self.i]
        self.i += 1
        return tok

    def is_word(self, word: str) -> bool:
        tok = self.peek()
        return tok.kind == "name" and tok.text.lower() == word

    def expect_punct(self, p: str) -> None:
        tok = self.next()
        if tok.kind != "punct" or tok.text != p:
            raise _FilterSyntaxError(f"Expected {p!r} at position {tok.pos}, found {_show(tok)}.")

    # -- grammar
    def parse(self) -> Predicate:
        pred = self.or_expr()
        tok = self.peek()
        if tok.kind != "end":
            raise _FilterSyntaxError(f"Unexpected {_show(tok)} at position {tok.pos}.")
        return pred

    def or_expr(self) -> Predicate:
        parts = [self.and_expr()]
        while self.is_word("or"):
            self.next()
            parts.append(self.and_expr())
        if len(parts) == 1:
            return parts[0]
        return lambda obj: any(p(obj) for p in parts)

    def and_expr(self) -> Predicate:
        parts = [self.unary()]
        while self.is_word("and"):
            self.next()
            parts.append(self.unary())
        if len(parts) == 1:
            return parts[0]
        return lambda obj: all(p(obj) for p in parts)

    def unary(self) -> Predicate:
        if self.is_word("not"):
            self.next()
            inner = self.unary()
            return lambda obj: not inner(obj)
        return self.primary()

    def primary(self) -> Predicate:
        tok = self.peek()
        if tok.kind == "punct" and tok.text == "(":
            self.next()
            inner = self.or_expr()
            self.expect_punct(")")
            return inner
        if self.is_word("startswith") and self.toks[self.i + 1].text == "(":
            return self.startswith()
        if tok.kind == "name":
            return self.comparison()
        raise _FilterSyntaxError(
            f"Expected a property name, 'startswith(' or '(' at position {tok.pos}, "
            f"found {_show(tok)}."
        )

    def property(self, op: str) -> tuple[str, tuple[str, ...], Kind | None]:
        tok = self.next()
        if tok.kind != "name" or tok.text.lower() in _KEYWORDS:
            raise _FilterSyntaxError(
                f"Expected a property name at position {tok.pos}, found {_show(tok)}."
            )
        name = tok.text
        if self.props is None:
            return name, tuple(name.split("/")), None
        spec = self.props.get(name)
        if spec is None:
            allowed = ", ".join(sorted(self.props))
            raise _FilterSyntaxError(
                f"The property {name!r} cannot be used in a filter; filterable properties "
                f"are: {allowed}."
            )
        if op not in spec.ops:
            raise _FilterSyntaxError(
                f"The operator {op!r} is not supported for property {name!r}; use one of: "
                f"{', '.join(sorted(spec.ops))}."
            )
        return name, spec.path, spec.kind

    def literal(self) -> _Lit:
        tok = self.next()
        if tok.kind == "string":
            return _Lit("string", _unquote(tok.text), tok.text)
        if tok.kind == "datetime":
            return _Lit("datetime", _datetime_ticks(_unquote(tok.text[8:])), tok.text)
        if tok.kind == "number":
            return _Lit("int", int(tok.text), tok.text)
        if tok.kind == "name" and tok.text.lower() in ("true", "false"):
            return _Lit("bool", tok.text.lower() == "true", tok.text)
        if tok.kind == "name" and tok.text.lower() == "null":
            return _Lit("null", None, tok.text)
        raise _FilterSyntaxError(
            f"Expected a literal value at position {tok.pos}, found {_show(tok)}."
        )

    def startswith(self) -> Predicate:
        self.next()  # startswith
        self.expect_punct("(")
        name, path, kind = self.property("startswith")
        self.expect_punct(",")
        lit = self.literal()
        if lit.kind != "string" or kind not in (None, "string", "enum"):
            raise _FilterSyntaxError(
                f"startswith needs a string property and a quoted string, got {name!r} and "
                f"{lit.text}."
            )
        self.expect_punct(")")
        prefix = str(lit.value).casefold()
        negate = False
        if self.peek().kind == "name" and self.peek().text.lower() in ("eq", "ne"):
            op = self.next().text.lower()
            flag = self.literal()
            if flag.kind != "bool":
                raise _FilterSyntaxError(f"startswith(...) {op} needs true or false.")
            negate = (op == "eq") != bool(flag.value)

        def pred(obj: Mapping[str, Any]) -> bool:
            value = _lookup(obj, path)
            hit = isinstance(value, str) and value.casefold().startswith(prefix)
            return hit != negate

        return pred

    def comparison(self) -> Predicate:
        prop_tok = self.peek()
        op_tok = self.toks[self.i + 1]
        op = op_tok.text.lower()
        if op_tok.kind != "name" or op not in _CMP_OPS:
            if prop_tok.text.lower() in _KEYWORDS:
                raise _FilterSyntaxError(
                    f"Expected a property name at position {prop_tok.pos}, found {_show(prop_tok)}."
                )
            raise _FilterSyntaxError(
                f"Expected an operator (eq, ne, gt, ge, lt, le) after {prop_tok.text!r} at "
                f"position {op_tok.pos}, found {_show(op_tok)}."
            )
        name, path, kind = self.property(op)
        self.next()  # the operator
        lit = self.literal()
        if lit.kind == "null":
            if op not in ("eq", "ne"):
                raise _FilterSyntaxError(f"null can only be compared with eq or ne ({name!r}).")
            want_missing = op == "eq"
            return lambda obj: (_lookup(obj, path) is None) == want_missing
        domain = self._domain(name, kind, lit)
        right: Any = str(lit.value).casefold() if domain in ("string", "enum") else lit.value
        if domain == "bool" and op not in ("eq", "ne"):
            raise _FilterSyntaxError(f"Booleans can only be compared with eq or ne ({name!r}).")

        def pred(obj: Mapping[str, Any]) -> bool:
            left = _normalise(domain, _lookup(obj, path))
            return _compare(op, left, right)

        return pred

    def _domain(self, name: str, kind: Kind | None, lit: _Lit) -> str:
        """The comparison domain; rejects literals of the wrong type for the property."""
        if kind is None:
            return lit.kind
        expected = {"string": "string", "enum": "string", "datetime": "datetime", "int": "int"}
        if expected[kind] != lit.kind:
            example = {
                "string": "a quoted string like 'abc'",
                "datetime": "a date-time like DateTime'2026-01-01T00:00:00Z'",
                "int": "an integer",
            }[expected[kind]]
            raise _FilterSyntaxError(f"The property {name!r} must be compared with {example}.")
        if kind == "enum" and self.props is not None:
            allowed = self.props[name].values
            if allowed is not None and str(lit.value).lower() not in allowed:
                raise _FilterSyntaxError(
                    f"{lit.text} is not a valid value for {name!r}; use one of: "
                    f"{', '.join(sorted(allowed))}."
                )
        return kind


_KEYWORDS = frozenset({"and", "or", "not", "true", "false", "null"} | _CMP_OPS)


def _show(tok: _Tok) -> str:
    return "the end of the filter" if tok.kind == "end" else repr(tok.text)


def _always(_obj: Mapping[str, Any]) -> bool:
    return True


def parse_filter(text: str, properties: Mapping[str, FilterProperty] | None = None) -> Predicate:
    """Compile a ``$filter`` expression into a predicate over wire-shaped dicts.

    ``properties`` is the whitelist (e.g. :data:`TASK_FILTER_PROPERTIES`); None allows any
    property path and infers types from the literals. Blank text matches everything.
    """
    if not text.strip():
        return _always
    try:
        return _Parser(text, properties).parse()
    except _FilterSyntaxError as exc:
        raise invalid_query_parameter("$filter", text, str(exc)) from exc


# --------------------------------------------------------------------------- $select / $expand


def parse_select(text: str | None, allowed: Collection[str] | None = None) -> list[str] | None:
    """Parse ``$select`` into a de-duplicated list of names (None when absent/blank)."""
    if text is None or not text.strip():
        return None
    fields: list[str] = []
    for raw in text.split(","):
        name = raw.strip()
        if not name:
            raise invalid_query_parameter("$select", text, "The list contains an empty name.")
        if allowed is not None and name not in allowed:
            raise invalid_query_parameter(
                "$select", text, f"The property {name!r} cannot be selected."
            )
        if name not in fields:
            fields.append(name)
    return fields


def apply_select(obj: Mapping[str, Any], fields: Collection[str] | None) -> dict[str, Any]:
    """Keep only ``fields`` (and ``odata.*`` annotations) of ``obj``, in ``obj``'s order."""
    if fields is None:
        return dict(obj)
    return {k: v for k, v in obj.items() if k in fields or k.startswith("odata.")}


def parse_expand(text: str | None) -> frozenset[str]:
    """Parse ``$expand``; Batch only knows ``stats`` (NOTES.md §8)."""
    if text is None or not text.strip():
        return frozenset()
    names = frozenset(part.strip() for part in text.split(","))
    unknown = names - EXPANDABLE
    if unknown:
        raise invalid_query_parameter(
            "$expand", text, f"Only 'stats' can be expanded, not {', '.join(sorted(unknown))}."
        )
    return names


# --------------------------------------------------------------------------- maxresults


def parse_maxresults(value: str | None, default: int = MAX_RESULTS_LIMIT) -> int:
    """Parse ``maxresults`` (1..1000; absent → ``default``). See the module docstring."""
    if value is None:
        return default
    text = value.strip()
    if not re.fullmatch(r"[+-]?\d+", text):
        raise invalid_query_parameter("maxresults", value, "The value must be an integer.")
    n = int(text)
    if not 1 <= n <= MAX_RESULTS_LIMIT:
        raise BatchError.of(
            "OutOfRangeQueryParameterValue",
            values=[
                ("QueryParameterName", "maxresults"),
                ("QueryParameterValue", value),
                ("Reason", f"The value must be between 1 and {MAX_RESULTS_LIMIT}."),
            ],
        )
    return n
