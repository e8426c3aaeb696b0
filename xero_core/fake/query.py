"""`where` and `order` for the fake's list endpoints.

Xero evaluates `where` as a .NET dynamic-LINQ expression over the resource's properties. We parse
the common subset strictly and refuse the rest with a 400 (never silently ignore a filter):

    expr    := and ( ("OR" | "||") and )*
    and     := unary ( ("AND" | "&&") unary )*
    unary   := "NOT" unary | "(" expr ")" | compare
    compare := Field op literal | Field "." (Contains|StartsWith|EndsWith) "(" string ")"
             | Field "!=" null | Field == null | Field (a bool field alone)
    literal := "text" | DateTime(y,m,d[,h,mi,s]) | Guid("…") | number | true | false | null

Fields are looked up case-insensitively in a per-resource table of (getter, kind).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, timezone
from decimal import Decimal, InvalidOperation
from typing import Any, Callable

UTC = timezone.utc


class QueryError(ValueError):
    """A where/order expression the fake (like Xero) cannot run; served as 400."""


@dataclass(frozen=True)
class Field:
    getter: Callable[[Any], Any]
    kind: str     # "str" | "date" | "datetime" | "guid" | "money" | "int" | "bool"


_TOKEN = re.compile(r"""
    \s*(?:
      (?P<str>"(?:[^"\\]|\\.)*")
     |(?P<op>==|!=|>=|<=|&&|\|\||=|>|<|\(|\)|,|\.)
     |(?P<num>-?\d+(?:\.\d+)?)
     |(?P<name>[A-Za-z_][A-Za-z0-9_]*)
    )""", re.VERBOSE)


def _tokenize(text: str) -> list[tuple[str, str]]:
    out, pos = [], 0
    text = text.strip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise QueryError(f"Syntax error in where clause at position {pos}: {text[pos:pos + 20]!r}")
        kind = m.lastgroup
        if kind is None:  # every alternative of _TOKEN is a named group
            raise QueryError(f"Syntax error in where clause at position {pos}: {text[pos:pos + 20]!r}")
        val = m.group(kind)
        if kind == "str":
            val = re.sub(r"\\(.)", r"\1", val[1:-1])
        out.append((kind, val))
        pos = m.end()
        while pos < len(text) and text[pos].isspace():
            pos += 1
    return out


Predicate = Callable[[Any], bool]  # a record -> whether the where clause keeps it


class _Parser:
    def __init__(self, text: str, fields: dict[str, Field], type_name: str) -> None:
        self.toks = _tokenize(text)
        self.i = 0
        self.fields = {k.lower(): (k, f) for k, f in fields.items()}
        self.type_name = type_name

    def peek(self, k: int = 0) -> tuple[str, str]:
        j = self.i + k
        return self.toks[j] if j < len(self.toks) else ("end", "")

    def take(self, kind: str | None = None, value: str | None = None) -> tuple[str, str]:
        tok = self.peek()
        if (kind and tok[0] != kind) or (value is not None and tok[1].upper() != value.upper()):
            want = value or kind
            raise QueryError(f"Syntax error in where clause: expected {want!r} but found {tok[1] or 'end of text'!r}")
        self.i += 1
        return tok

    def is_word(self, *words: str) -> bool:
        k, v = self.peek()
        return (k == "name" and v.upper() in words) or (k == "op" and v in words)

    def parse(self) -> Predicate:
        if not self.toks:
            raise QueryError("The where clause is empty")
        pred = self.expr()
        if self.peek()[0] != "end":
            raise QueryError(f"Syntax error in where clause: unexpected {self.peek()[1]!r}")
        return pred

    def expr(self) -> Predicate:
        parts = [self.conj()]
        while self.is_word("OR", "||"):
            self.i += 1
            parts.append(self.conj())
        if len(parts) == 1:
            return parts[0]
        ps = tuple(parts)
        return lambda r: any(p(r) for p in ps)

    def conj(self) -> Predicate:
        parts = [self.unary()]
        while self.is_word("AND", "&&"):
            self.i += 1
            parts.append(self.unary())
        if len(parts) == 1:
            return parts[0]
        ps = tuple(parts)
        return lambda r: all(p(r) for p in ps)

    def unary(self) -> Predicate:
        if self.is_word("NOT", "!"):
            self.i += 1
            inner = self.unary()
            return lambda r: not inner(r)
        if self.peek() == ("op", "("):
            self.i += 1
            inner = self.expr()
            self.take("op", ")")
            return inner
        return self.compare()

    def field(self) -> tuple[str, Field]:
        if self.peek()[0] != "name":
            raise QueryError("Expression expected")
        parts = [self.take("name")[1]]
        while self.peek() == ("op", ".") and self.peek(1)[0] == "name" and \
                self.peek(1)[1].lower() not in ("contains", "startswith", "endswith", "tolower", "toupper"):
            self.i += 1
            parts.append(self.take("name")[1])
        path = ".".join(parts)
        hit = self.fields.get(path.lower())
        if hit is None:
            raise QueryError(f"No property or field '{path}' exists in type '{self.type_name}'")
        return hit

    def literal(self) -> tuple[str, Any]:
        kind, val = self.peek()
        if kind == "str":
            self.i += 1
            return "str", val
        if kind == "num":
            self.i += 1
            return "num", Decimal(val)
        if kind == "name":
            up = val.upper()
            if up in ("TRUE", "FALSE"):
                self.i += 1
                return "bool", up == "TRUE"
            if up == "NULL":
                self.i += 1
                return "null", None
            if up in ("DATETIME", "DATETIMEOFFSET") and self.peek(1) == ("op", ".") \
                    and self.peek(2)[1].upper() == "PARSE":
                # DateTime.Parse("2022-06-01T00:00:00"), as several SDKs send
                self.i += 3
                self.take("op", "(")
                text = self.take("str")[1]
                self.take("op", ")")
                try:
                    parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
                except ValueError:
                    raise QueryError(f"String was not recognized as a valid DateTime: {text!r}") from None
                return "datetime", parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
            if up in ("DATETIME", "DATE", "DATETIMEOFFSET"):
                self.i += 1
                self.take("op", "(")
                nums = [int(self.take("num")[1])]
                while self.peek() == ("op", ","):
                    self.i += 1
                    nums.append(int(self.take("num")[1]))
                self.take("op", ")")
                if len(nums) not in (3, 6):
                    raise QueryError("DateTime() takes (year, month, day) or (year, month, day, hour, minute, second)")
                try:
                    y, mo, d, h, mi, sec = (*nums, 0, 0, 0)[:6]  # 3 or 6 numbers (checked above)
                    return "datetime", datetime(y, mo, d, h, mi, sec, tzinfo=UTC)
                except ValueError as e:
                    raise QueryError(f"DateTime{tuple(nums)} is not a valid date: {e}") from None
            if up == "GUID":
                self.i += 1
                self.take("op", "(")
                g = self.take("str")[1]
                self.take("op", ")")
                if not re.fullmatch(r"[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}", g):
                    raise QueryError(f"Guid(\"{g}\") is not a valid GUID")
                return "guid", g.lower()
        raise QueryError("Expression expected" if kind in ("end", "op") else
                         f"No property or field '{val}' exists in type '{self.type_name}'")

    def compare(self) -> Predicate:
        name, f = self.field()
        get = f.getter
        if self.peek() == ("op", ".") and self.peek(1)[0] == "name":
            self.i += 1
            method = self.take("name")[1].lower()
            if method in ("tolower", "toupper"):
                self.take("op", "(")
                self.take("op", ")")
                get = _cased(get, str.lower if method == "tolower" else str.upper)
                if self.peek() == ("op", ".") and self.peek(1)[0] == "name":
                    self.i += 1
                    method = self.take("name")[1].lower()
                else:
                    return self._binary(name, Field(get, "str"))
            if f.kind not in ("str", "guid"):
                raise QueryError(f"No applicable method '{method}' exists in type '{f.kind}' ({name})")
            self.take("op", "(")
            arg = self.take("str")[1]
            self.take("op", ")")
            fn = {"contains": str.__contains__, "startswith": str.startswith, "endswith": str.endswith}.get(method)
            if fn is None:
                raise QueryError(f"No applicable method '{method}' exists on '{name}'")
            return lambda r: fn(get(r) or "", arg)
        return self._binary(name, Field(get, f.kind))

    def _binary(self, name: str, f: Field) -> Predicate:
        k, op = self.peek()
        if k != "op" or op not in ("==", "!=", ">=", "<=", ">", "<", "="):
            if f.kind == "bool":
                return lambda r: bool(f.getter(r))
            raise QueryError(f"Syntax error in where clause: expected an operator after '{name}'")
        self.i += 1
        op = "==" if op == "=" else op
        lk, lv = self.literal()
        value = _coerce(name, f.kind, lk, lv, op)
        get = f.getter
        if f.kind in ("date", "datetime"):
            raw = get
            get = lambda r: _as_datetime(raw(r))  # noqa: E731
        elif f.kind == "guid":
            raw = get
            get = lambda r: (raw(r) or "").lower() or None  # noqa: E731
        cmp: Predicate = {
            "==": lambda a: a == value, "!=": lambda a: a != value,
            ">=": lambda a: a is not None and a >= value, "<=": lambda a: a is not None and a <= value,
            ">": lambda a: a is not None and a > value, "<": lambda a: a is not None and a < value,
        }[op]
        return lambda r: cmp(get(r))


def _cased(get: Callable[[Any], Any], case: Callable[[str], str]) -> Callable[[Any], str]:
    """ToLower()/ToUpper() on a field: None reads as ""."""
    return lambda r: case(get(r) or "")


def _as_datetime(v: Any) -> datetime | None:
    if v is None or isinstance(v, datetime):
        return v
    return datetime(v.year, v.month, v.day, tzinfo=UTC)


_NET_FIELD = {"str": "String", "guid": "Guid", "date": "DateTime", "datetime": "DateTime", "money": "Decimal",
              "int": "Int32", "bool": "Boolean"}
_NET_LITERAL = {"str": "String", "num": "Decimal", "datetime": "DateTime", "guid": "Guid", "bool": "Boolean"}


def _coerce(name: str, kind: str, lk: str, lv: Any, op: str) -> Any:
    if lk == "null":
        if op not in ("==", "!="):
            raise QueryError(f"Operator '{op}' incompatible with null ({name})")
        return None
    ok = {
        "str": ("str",), "guid": ("guid", "str"), "date": ("datetime",), "datetime": ("datetime",),
        "money": ("num",), "int": ("num",), "bool": ("bool",),
    }[kind]
    if lk not in ok:
        raise QueryError(f"Operator '{op}' incompatible with operand types '{_NET_FIELD[kind]}' and "
                         f"'{_NET_LITERAL[lk]}'")
    if kind in ("str",) and op not in ("==", "!="):
        raise QueryError(f"Operator '{op}' incompatible with operand types 'String' and 'String'")
    if kind == "guid" and lk == "str":
        return lv.lower()
    if kind == "money":
        return lv
    if kind == "int":
        return int(lv)
    return lv


def compile_where(text: str, fields: dict[str, Field], type_name: str) -> Callable[[Any], bool]:
    return _Parser(text, fields, type_name).parse()


def order_key(text: str, fields: dict[str, Field], type_name: str) -> list[tuple[Field, bool]]:
    """`"UpdatedDateUTC DESC, Name"` -> [(field, descending)], applied right to left."""
    keys: list[tuple[Field, bool]] = []
    lower = {k.lower(): f for k, f in fields.items()}
    for part in text.split(","):
        words = part.split()
        if not words or len(words) > 2 or (len(words) == 2 and words[1].upper() not in ("ASC", "DESC")):
            raise QueryError(f"Invalid order clause: {part.strip()!r} (use 'Field', 'Field ASC' or 'Field DESC')")
        f = lower.get(words[0].lower())
        if f is None:
            raise QueryError(f"No property or field '{words[0]}' exists in type '{type_name}'")
        keys.append((f, len(words) == 2 and words[1].upper() == "DESC"))
    return keys


def apply_order(items: list[Any], keys: list[tuple[Field, bool]]) -> list[Any]:
    items = list(items)
    for f, desc in reversed(keys):
        get = f.getter
        # None sorts first ascending (as SQL Server does)
        items.sort(key=lambda r: (get(r) is not None, _sortable(get(r))), reverse=desc)
    return items


def _sortable(v: Any) -> Any:
    if v is None:
        return ""
    if isinstance(v, datetime):
        return v.timestamp()
    if isinstance(v, date):
        return datetime(v.year, v.month, v.day, tzinfo=UTC).timestamp()
    if isinstance(v, str):
        return v.lower()
    return v


def parse_decimal(text: str) -> Decimal:
    try:
        return Decimal(text)
    except InvalidOperation:
        raise QueryError(f"{text!r} is not a number") from None
