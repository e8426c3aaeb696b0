"""Validate accounting JSON bodies against Xero's own OpenAPI response schemas.

`validate_accounting(path_template, body_bytes)` parses the body (numbers as Decimal, so the
2-dp rule can be checked on the exact text), resolves `$ref`s against the whole spec, checks
`uuid` formats, and applies the wire rules the spec expresses as vendor extensions:
`x-is-msdate`/`x-is-msdate-time` strings must be `/Date(ms[+0000])/`, and `x-is-money` numbers
must carry exactly 2 decimals. Tolerated, per ../shared/xero-openapi/QUIRKS.md: the envelope
keys are in no schema (they are allowed, not required); CurrencyRate (6 dp), Quantity (4 dp),
UnitAmount with unitdp=4, and tax rates are marked money but are not 2 dp.
"""
from __future__ import annotations

import functools
import json
import re
from decimal import Decimal

import jsonschema
import yaml

from xero_reference import OPENAPI

SPEC = OPENAPI / "xero_accounting.yaml"
_MSDATE = re.compile(r"^/Date\(-?\d+([+-]\d{4})?\)/$")
_NOT_TWO_DP = {"CurrencyRate", "Quantity", "UnitAmount", "TaxRate", "EffectiveRate", "DisplayTaxRate",
               "DiscountRate", "Rate"}


@functools.lru_cache(maxsize=1)
def spec() -> dict:
    # The spec's YAML contains unquoted timestamps in examples; BaseLoader-free safe_load is fine
    # for the schema parts we use.
    return yaml.safe_load(SPEC.read_text())


def response_schema_ref(path: str, method: str = "get", status: str = "200") -> str:
    op = spec()["paths"][path][method]
    return op["responses"][status]["content"]["application/json"]["schema"]["$ref"]


def _inline(node, stack: frozenset = frozenset(), depth: int = 0):
    """The schema with `$ref`s inlined (cycles and deep levels keep their `$ref`): jsonschema then
    skips most reference resolution, which halves the time to validate a 1000-invoice page."""
    if isinstance(node, dict):
        if "$ref" in node:
            name = node["$ref"].rsplit("/", 1)[-1]
            if name in stack or depth > 4:
                return node
            return _inline(spec()["components"]["schemas"][name], stack | {name}, depth + 1)
        return {k: _inline(v, stack, depth) for k, v in node.items() if k not in ("example", "examples")}
    if isinstance(node, list):
        return [_inline(v, stack, depth) for v in node]
    return node


@functools.lru_cache(maxsize=None)
def _validator(ref: str):
    root = {**_inline({"$ref": ref}), "components": spec()["components"]}
    cls = jsonschema.validators.validator_for({"$schema": "http://json-schema.org/draft-04/schema#"})
    return cls(root, format_checker=_format_checker())


def _format_checker():
    fc = jsonschema.FormatChecker(formats=())

    @fc.checks("uuid", raises=ValueError)
    def _uuid(value):
        if not isinstance(value, str):
            return True
        return bool(re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", value))

    return fc


def _resolve(node: dict) -> dict:
    while "$ref" in node:
        parts = node["$ref"].lstrip("#/").split("/")
        cur = spec()
        for p in parts:
            cur = cur[p]
        node = cur
    return node


def _wire_rules(instance, schema: dict, path: str, errors: list) -> None:
    schema = _resolve(schema)
    if isinstance(instance, dict):
        props = schema.get("properties", {})
        for k, v in instance.items():
            if k in props:
                _wire_rules(v, props[k], f"{path}.{k}", errors)
    elif isinstance(instance, list):
        items = schema.get("items")
        if items:
            for i, v in enumerate(instance):
                _wire_rules(v, items, f"{path}[{i}]", errors)
    else:
        if (schema.get("x-is-msdate") or schema.get("x-is-msdate-time")) and isinstance(instance, str):
            if not _MSDATE.match(instance):
                errors.append(f"{path}: {instance!r} is not a /Date(ms)/ value")
        name = path.rsplit(".", 1)[-1]
        if schema.get("x-is-money") and isinstance(instance, Decimal) and name not in _NOT_TWO_DP:
            if instance.as_tuple().exponent != -2:
                errors.append(f"{path}: money {instance} is not written with 2 decimals")


def parse(body: bytes):
    return json.loads(body, parse_float=Decimal)


def validate_accounting(path_template: str, body: bytes) -> dict:
    """Raise AssertionError listing every problem; return the parsed document."""
    doc = parse(body)
    ref = response_schema_ref(path_template)
    errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in _validator(ref).iter_errors(doc)]
    _wire_rules(doc, {"$ref": ref}, "$", errors)
    for key in ("Id", "Status", "ProviderName", "DateTimeUTC"):
        if key not in doc:
            errors.append(f"envelope key {key} missing")
    if "DateTimeUTC" in doc and not _MSDATE.match(str(doc["DateTimeUTC"])):
        errors.append(f"DateTimeUTC {doc['DateTimeUTC']!r} is not /Date(ms)/")
    if errors:
        raise AssertionError(f"{path_template}: {len(errors)} schema problems:\n  " + "\n  ".join(errors[:30]))
    return doc


_SINGLE = {"Accounts": "AccountID", "TrackingCategories": "TrackingCategoryID", "Contacts": "ContactID",
           "Invoices": "InvoiceID", "BankTransactions": "BankTransactionID", "Payments": "PaymentID",
           "CreditNotes": "CreditNoteID", "Journals": "JournalID"}


def template_for(subpath: str) -> str:
    """The spec path for a concrete accounting subpath: `/Invoices/abc` -> `/Invoices/{InvoiceID}`."""
    parts = [p for p in subpath.split("?")[0].split("/") if p]
    if len(parts) == 2 and parts[0] in _SINGLE:
        key = "JournalNumber" if parts[0] == "Journals" and parts[1].isdigit() else _SINGLE[parts[0]]
        if parts[0] == "Contacts" and not re.fullmatch(r"[0-9a-fA-F-]{36}", parts[1]):
            key = "ContactNumber"
        return f"/{parts[0]}/{{{key}}}"
    return "/" + "/".join(parts)
