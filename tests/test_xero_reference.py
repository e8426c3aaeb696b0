"""The repo's copy of Xero's specs and samples is the shared one, file for file."""
from __future__ import annotations

import pytest

from xero_reference import COPY, NAMES, SHARED


@pytest.mark.parametrize("name", NAMES)
def test_the_copy_in_the_repo_equals_the_shared_folder(name):
    shared = SHARED / name
    if not shared.is_dir():
        pytest.skip(f"{shared} is not beside this checkout: the tests use the repo's copy")
    files = lambda root: {p.relative_to(root): p.read_bytes() for p in root.rglob("*") if p.is_file()}
    assert files(COPY / name) == files(shared), (
        f"tests/reference/{name} differs from {shared}: copy the shared folder over it")
