"""The side stores a sync stops on, checked up front so a person is told before pressing a button.

jobs.sqlite (a damaged page is only met when read, so it is checked whole) and the vault folder (a
file in its place would otherwise only surface when a tenant's tokens are read). The admin app's
frame asks on every page; each problem is its StorageError sentence naming the file and the fix.
"""
from __future__ import annotations

from ..errors import StorageError
from ..settings import Settings
from ..storage import as_storage_error
from ..vault import Vault
from . import jobs as J


def jobs_problem(settings: Settings) -> StorageError | None:
    """jobs.sqlite checked whole: its sentence when damaged (anything else still raises)."""
    try:
        J.check(settings)
    except Exception as exc:  # whatever the damage raised: its sentence if it is about the disk, else re-raised
        se = as_storage_error(exc, J.path(settings))
        if se is None:
            raise
        return se
    return None


def problems(settings: Settings) -> list[StorageError]:
    jobs = jobs_problem(settings)
    out: list[StorageError] = [jobs] if jobs is not None else []
    try:
        Vault(settings).names()
    except StorageError as exc:
        out.append(exc)
    return out
