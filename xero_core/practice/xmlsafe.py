"""Hardened XML parsing for what Xero Practice Manager sends (text/xml).

XPM's XML never carries a DTD, so any document that declares one (the vehicle for "billion laughs"
entity bombs and external entities such as file:///etc/passwd) is refused outright rather than
parsed with care. The parser also never resolves entities, never touches the network, never
loads a DTD and keeps libxml2's limits on tree size; input is bounded before parsing starts.
"""
from __future__ import annotations

from lxml import etree

from ..errors import LedgerlinkError

MAX_XML_BYTES = 20 * 1024 * 1024  # a large practice's job list is a few MB


class UnsafeXml(LedgerlinkError):
    """The XML was refused: malformed, oversized, or carrying a DTD/entity declarations."""


def _parser() -> etree.XMLParser:
    # A fresh parser per call: lxml parsers are not thread-safe.
    return etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
        remove_comments=True,
        remove_pis=True,
    )


def parse_xml(data: bytes | str, *, what: str = "XML", max_bytes: int = MAX_XML_BYTES) -> etree._Element:
    """Parse `data` and return the root element, or raise UnsafeXml saying why in plain words."""
    if isinstance(data, str):
        data = data.encode("utf-8")
    if len(data) > max_bytes:
        raise UnsafeXml(
            f"{what} refused: {len(data):,} bytes is over the {max_bytes:,}-byte limit. "
            "Nothing was saved; if the practice really has this much data, raise the limit."
        )
    if not data.strip():
        raise UnsafeXml(f"{what} refused: the response was empty.")
    head = data[:4096].lower()
    # Cheap refusal before libxml2 sees it; the docinfo check below covers other encodings.
    if b"<!doctype" in head or b"<!entity" in data.lower():
        raise UnsafeXml(f"{what} refused: it declares a DTD or entities, which Xero never sends. Nothing was saved.")
    try:
        root = etree.fromstring(data, parser=_parser())
    except etree.XMLSyntaxError as exc:
        raise UnsafeXml(f"{what} is malformed and was not saved: {exc.msg or exc}") from None
    except ValueError as exc:  # e.g. unicode strings with an encoding declaration
        raise UnsafeXml(f"{what} could not be read and was not saved: {exc}") from None
    if root is None:
        raise UnsafeXml(f"{what} is malformed and was not saved: no root element.")
    info = root.getroottree().docinfo
    if info.internalDTD is not None or info.externalDTD is not None or info.doctype:
        raise UnsafeXml(f"{what} refused: it declares a DTD or entities, which Xero never sends. Nothing was saved.")
    # An undeclared entity reference survives as an Entity node when resolution is off; refuse it.
    for _ in root.iter(etree.Entity):
        raise UnsafeXml(f"{what} refused: it references an entity, which Xero never sends. Nothing was saved.")
    return root


def text(el: etree._Element | None, path: str) -> str | None:
    """The stripped text at `path` under `el`, or None when absent or empty."""
    if el is None:
        return None
    found = el.find(path)
    if found is None or found.text is None:
        return None
    value = found.text.strip()
    return value or None
