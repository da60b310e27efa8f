"""The subset of SOQL the pipeline's Salesforce client sends, parsed and run over in-memory rows.

SELECT fields (and COUNT(Id) with an alias) FROM object, WHERE with AND / OR / NOT and
parentheses over =, !=, <>, <, <=, >, >=, IN, NOT IN and LIKE against string, number, boolean,
null and date-time literals, GROUP BY, ORDER BY (ASC / DESC, NULLS FIRST / LAST) and LIMIT.
Anything else is a MALFORMED_QUERY, as Salesforce would answer.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

_TOKEN = re.compile(
    r"""\s*(?:
        (?P<datetime>\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:?\d{2}))
      | (?P<string>'(?:[^'\\]|\\.)*')
      | (?P<number>-?\d+(?:\.\d+)?)
      | (?P<op><=|>=|!=|<>|=|<|>)
      | (?P<punct>[(),])
      | (?P<name>[A-Za-z_][A-Za-z0-9_.]*)
    )""",
    re.VERBOSE,
)

_KEYWORDS = {
    "SELECT", "FROM", "WHERE", "AND", "OR", "NOT", "IN", "LIKE", "ORDER", "BY", "ASC", "DESC",
    "LIMIT", "GROUP", "NULLS", "FIRST", "LAST", "NULL", "TRUE", "FALSE", "COUNT",
}  # fmt: skip


class MalformedQuery(ValueError):
    """The query is not SOQL this server understands (Salesforce: MALFORMED_QUERY)."""


def parse_datetime(text: str) -> datetime:
    """A SOQL date-time literal or a stored value (`...Z`, `+00:00`, `+0000`)."""
    text = text.replace("Z", "+00:00")
    if re.search(r"[+-]\d{4}$", text):
        text = f"{text[:-2]}:{text[-2:]}"
    return datetime.fromisoformat(text)


@dataclass
class Query:
    """A parsed query: what to select, from which object, which rows and in what order."""

    object: str
    fields: list[str]
    counts: dict[str, str] = field(default_factory=dict)  # alias -> counted field
    where: Callable[[dict[str, Any]], bool] = lambda _row: True
    group_by: list[str] = field(default_factory=list)
    order_by: list[tuple[str, bool, bool]] = field(default_factory=list)  # name, desc, nulls last
    limit: int | None = None

    def run(self, rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
        """The result rows: selected fields only (aggregates as `alias`)."""
        matched = [r for r in rows if self.where(r)]
        if self.counts or self.group_by:
            matched = self._aggregate(matched)
        for name, desc, nulls_last in reversed(self.order_by):
            present = [r for r in matched if r.get(name) is not None]
            absent = [r for r in matched if r.get(name) is None]
            present.sort(key=lambda r, n=name: r[n], reverse=desc)
            matched = present + absent if nulls_last else absent + present
        if self.limit is not None:
            matched = matched[: self.limit]
        if self.counts or self.group_by:
            return matched
        return [{f: r.get(f) for f in self.fields} for r in matched]

    def _aggregate(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        groups: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
        for row in rows:
            groups.setdefault(tuple(row.get(g) for g in self.group_by), []).append(row)
        if not self.group_by:
            groups = {(): rows}
        out = []
        for key, members in groups.items():
            result = dict(zip(self.group_by, key, strict=True))
            for alias, counted in self.counts.items():
                result[alias] = sum(1 for m in members if counted == "*" or m.get(counted))
            out.append(result)
        return out


class _Parser:
    def __init__(self, text: str):
        self.tokens: list[tuple[str, str]] = []
        pos = 0
        text = text.strip()
        while pos < len(text):
            m = _TOKEN.match(text, pos)
            if not m or m.end() == pos:
                raise MalformedQuery(f"unexpected token at: {text[pos : pos + 20]!r}")
            kind = m.lastgroup or ""
            value = m.group(kind)
            if kind == "name" and value.upper() in _KEYWORDS:
                kind, value = "kw", value.upper()
            self.tokens.append((kind, value))
            pos = m.end()
            while pos < len(text) and text[pos].isspace():
                pos += 1
        self.i = 0

    # ------------------------------------------------------------------ tokens
    def peek(self, offset: int = 0) -> tuple[str, str]:
        j = self.i + offset
        return self.tokens[j] if j < len(self.tokens) else ("eof", "")

    def take(self, kind: str | None = None, value: str | None = None) -> str:
        k, v = self.peek()
        if (kind and k != kind) or (value and v != value):
            raise MalformedQuery(f"expected {value or kind}, found {v or 'end of query'!r}")
        self.i += 1
        return v

    def at(self, kind: str, value: str | None = None) -> bool:
        k, v = self.peek()
        return k == kind and (value is None or v == value)

    def skip(self, kind: str, value: str) -> bool:
        if self.at(kind, value):
            self.i += 1
            return True
        return False

    # ------------------------------------------------------------------ grammar
    def query(self) -> Query:
        self.take("kw", "SELECT")
        fields, counts = self.select_list()
        self.take("kw", "FROM")
        q = Query(object=self.take("name"), fields=fields, counts=counts)
        if self.skip("kw", "WHERE"):
            q.where = self.disjunction()
        if self.skip("kw", "GROUP"):
            self.take("kw", "BY")
            q.group_by = self.names()
        if self.skip("kw", "ORDER"):
            self.take("kw", "BY")
            q.order_by = self.order_items()
        if self.skip("kw", "LIMIT"):
            q.limit = int(self.take("number"))
        if not self.at("eof"):
            raise MalformedQuery(f"unexpected {self.peek()[1]!r}")
        return q

    def select_list(self) -> tuple[list[str], dict[str, str]]:
        fields: list[str] = []
        counts: dict[str, str] = {}
        while True:
            if self.skip("kw", "COUNT"):
                self.take("punct", "(")
                counted = "*" if self.at("punct", ")") else self.take("name")
                self.take("punct", ")")
                alias = self.take("name") if self.at("name") else f"expr{len(counts)}"
                counts[alias] = counted
            else:
                fields.append(self.take("name"))
            if not self.skip("punct", ","):
                return fields, counts

    def names(self) -> list[str]:
        out = [self.take("name")]
        while self.skip("punct", ","):
            out.append(self.take("name"))
        return out

    def order_items(self) -> list[tuple[str, bool, bool]]:
        items = []
        while True:
            name = self.take("name")
            desc = self.skip("kw", "DESC")
            if not desc:
                self.skip("kw", "ASC")
            nulls_last = desc
            if self.skip("kw", "NULLS"):
                nulls_last = self.take("kw") == "LAST"
            items.append((name, desc, nulls_last))
            if not self.skip("punct", ","):
                return items

    def disjunction(self) -> Callable[[dict[str, Any]], bool]:
        parts = [self.conjunction()]
        while self.skip("kw", "OR"):
            parts.append(self.conjunction())
        return parts[0] if len(parts) == 1 else lambda r: any(p(r) for p in parts)

    def conjunction(self) -> Callable[[dict[str, Any]], bool]:
        parts = [self.negation()]
        while self.skip("kw", "AND"):
            parts.append(self.negation())
        return parts[0] if len(parts) == 1 else lambda r: all(p(r) for p in parts)

    def negation(self) -> Callable[[dict[str, Any]], bool]:
        if self.skip("kw", "NOT"):
            inner = self.negation()
            return lambda r: not inner(r)
        if self.skip("punct", "("):
            inner = self.disjunction()
            self.take("punct", ")")
            return inner
        return self.comparison()

    def comparison(self) -> Callable[[dict[str, Any]], bool]:
        name = self.take("name")
        negate = self.skip("kw", "NOT")
        if self.skip("kw", "IN"):
            self.take("punct", "(")
            values = [self.literal()]
            while self.skip("punct", ","):
                values.append(self.literal())
            self.take("punct", ")")
            return lambda r: (_value(r, name, values[0]) in values) != negate
        if negate:
            raise MalformedQuery("NOT must precede IN or a condition")
        if self.skip("kw", "LIKE"):
            pattern = self.literal()
            regex = re.compile(
                "^" + re.escape(str(pattern)).replace("%", ".*").replace("_", ".") + "$", re.I
            )
            return lambda r: r.get(name) is not None and bool(regex.match(str(r[name])))
        op = self.take("op")
        value = self.literal()
        return lambda r: _compare(_value(r, name, value), op, value)

    def literal(self) -> Any:
        kind, text = self.peek()
        self.i += 1
        if kind == "string":
            return re.sub(r"\\(.)", r"\1", text[1:-1])
        if kind == "number":
            return float(text) if "." in text else int(text)
        if kind == "datetime":
            return parse_datetime(text)
        if kind == "kw" and text in ("TRUE", "FALSE"):
            return text == "TRUE"
        if kind == "kw" and text == "NULL":
            return None
        raise MalformedQuery(f"expected a value, found {text or 'end of query'!r}")


def _value(row: dict[str, Any], name: str, like: Any) -> Any:
    value = row.get(name)
    if isinstance(like, datetime) and isinstance(value, str):
        return parse_datetime(value)
    return value


def _compare(left: Any, op: str, right: Any) -> bool:
    if op == "=":
        return left == right
    if op in ("!=", "<>"):
        return left != right
    if left is None or right is None:
        return False
    return {
        "<": left < right,
        "<=": left <= right,
        ">": left > right,
        ">=": left >= right,
    }[op]


def parse(text: str) -> Query:
    """Parse one SOQL query; raises MalformedQuery."""
    return _Parser(text).query()
