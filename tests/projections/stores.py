"""A second store of the same backend, and a backup and restore of a store, as
an operator makes them: a copy of the SQLite file, or pg_dump and psql of the
PostgreSQL schema."""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit, urlunsplit

import pytest

from tests.services import postgres_schema_url


def other_store(database_url: str, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database on the backend of `database_url`."""
    if database_url.startswith("sqlite"):
        yield f"sqlite:///{tmp_path / 'other.db'}"
    else:
        yield from postgres_schema_url()


def _sqlite_path(url: str) -> Path:
    return Path(url.removeprefix("sqlite:///"))


def _postgres(url: str) -> tuple[str, str]:
    """(the server's URL without the schema, the schema)."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(query="")), parse_qs(parts.query)["schema"][0]


def backup(url: str, directory: Path) -> Path:
    """A backup of the store (taken while it is open)."""
    target = directory / "backup"
    if url.startswith("sqlite"):
        source, copy = sqlite3.connect(_sqlite_path(url)), sqlite3.connect(target)
        try:
            source.backup(copy)
        finally:
            copy.close()
            source.close()
        return target
    server, schema = _postgres(url)
    _run(["pg_dump", "--no-owner", "--schema", schema, "--file", str(target), server])
    return target


def restore(url: str, saved: Path) -> None:
    """The store as it was at the backup (every process of it closed)."""
    if url.startswith("sqlite"):
        path = _sqlite_path(url)
        for extra in ("-wal", "-shm"):
            Path(f"{path}{extra}").unlink(missing_ok=True)
        shutil.copyfile(saved, path)
        return
    server, schema = _postgres(url)
    _run(["psql", "--quiet", "-v", "ON_ERROR_STOP=1", "-c",
          f'DROP SCHEMA "{schema}" CASCADE', server])
    _run(["psql", "--quiet", "-v", "ON_ERROR_STOP=1", "--file", str(saved), server])


def _run(command: list[str]) -> None:
    if shutil.which(command[0]) is None:
        pytest.skip(f"{command[0]} is not installed")
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
