"""Where the tests find Xero's OpenAPI specs and sample payloads (MIT, see each folder's LICENSE).

The project keeps them in `../shared/` beside the checkout, and that copy is the one checked when it
is there. A copy lives in tests/reference/ so the suite also runs from a clone anywhere else;
tests/test_xero_reference.py fails when the two differ, so the copy cannot drift unnoticed.
"""
from __future__ import annotations

from pathlib import Path

SHARED = Path(__file__).resolve().parents[2] / "shared"
COPY = Path(__file__).resolve().parent / "reference"
NAMES = ("xero-openapi", "xero-samples")


def folder(name: str) -> Path:
    """`xero-openapi` or `xero-samples`: the shared folder when present, else the repo's copy."""
    assert name in NAMES, name
    shared = SHARED / name
    return shared if shared.is_dir() else COPY / name


OPENAPI = folder("xero-openapi")
SAMPLES = folder("xero-samples")
