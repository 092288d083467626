"""Where the store lives: a path, a URL, the AIOBGPROC_STORE variable, or the default file."""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import unquote, urlsplit

from .errors import StoreError
from .store import Store

STORE_VARIABLE = "AIOBGPROC_STORE"


def default_store_path() -> Path:
    """``$XDG_DATA_HOME/aiobgproc/aiobgproc.db`` (``~/.local/share/...`` when unset)."""
    data_home = os.environ.get("XDG_DATA_HOME") or os.path.join(
        os.path.expanduser("~"), ".local", "share"
    )
    return Path(data_home) / "aiobgproc" / "aiobgproc.db"


def describe(location: str | os.PathLike[str] | None) -> str:
    """The location a store argument resolves to, as text (for messages and the CLI)."""
    if location is None:
        return os.environ.get(STORE_VARIABLE) or str(default_store_path())
    return os.fspath(location)


def open_store(location: str | bytes | os.PathLike[str] | Store | None) -> Store:
    """A (not yet opened) store for a path, a ``sqlite:///`` URL or None (the default)."""
    if isinstance(location, bytes):
        location = os.fsdecode(location)  # a path as bytes, as os functions take them
    if location is not None and not isinstance(location, str | os.PathLike):
        if not all(callable(getattr(location, name, None)) for name in ("open", "close")):
            raise StoreError(
                "the store must be a path, a sqlite:/// or postgresql:// URL, or a Store, "
                f"not {type(location).__name__}"
            )
        return location
    text = describe(location)
    if not text:
        raise StoreError("the store location is empty")
    if "://" in text:
        parts = urlsplit(text)
        scheme = parts.scheme.lower()
        if scheme == "sqlite":
            path = unquote(parts.path)
            if parts.netloc not in ("", "localhost") or not path:
                raise StoreError(f"a SQLite URL looks like sqlite:///path/to/file, not {text!r}")
            # As in SQLAlchemy: sqlite:///relative.db and sqlite:////absolute/path.db
            text = path[1:] if path.startswith("/") else path
        elif scheme in ("postgresql", "postgres"):
            from .store.postgres import PostgresStore

            return PostgresStore(text)
        else:
            raise StoreError(f"unknown store URL scheme {parts.scheme!r} in {text!r}")
    from .store.sqlite import SQLiteStore  # imported here: the manager knows only the protocol

    return SQLiteStore(os.path.expanduser(text))
