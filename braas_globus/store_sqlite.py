"""The job store's SQLite connection: every SQLite error that is the disk's or the file's
fault (full, damaged, locked, unreadable) becomes one ``StoreError`` line that says what to
do, wherever it is met, for the connection itself translates them (``GuardedConnection``).
Its rows are read with their types checked (``Columns``): a value of the wrong type is
damage too.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, overload

from .disk import disk_is_full
from .errors import RunError

if TYPE_CHECKING:  # typeshed's name for what a statement's placeholders take (? or :name)
    from sqlite3 import _Parameters as Parameters
_CursorT = TypeVar("_CursorT", bound=sqlite3.Cursor)
_T = TypeVar("_T")

REBUILD_HINT = ("`braas-globus store check` lists what is wrong, and `braas-globus store "
                "rebuild` rebuilds the store from the job folders (it keeps this file)")


class StoreError(RunError):
    """The job store cannot be used as it is; ``kind`` says why: full, damaged, empty,
    locked or unreadable. The message is one line: ``what`` is wrong, then what to do."""

    def __init__(self, kind: str, what: str, todo: str) -> None:
        super().__init__(f"{what}: {todo}")
        self.kind, self.what = kind, what


def full_disk_error(path: Path, read_only: bool = False) -> StoreError:
    """The disk holding the store at ``path`` is full: it cannot be written (``read_only``:
    it was opened for reading only, because that disk is full)."""
    changed = "can be read but not changed" if read_only else "cannot be written"
    return StoreError("full", f"the disk holding {path.parent} is full, so the job store "
                              f"{path} {changed}",
                      "free space there, then retry (nothing in the store was changed)")


def no_room(path: Path) -> bool:
    """Is the disk holding ``path`` full: out of space, or out of inodes (no file can be
    made there, which is when SQLite cannot make its shared-memory file)?"""
    if disk_is_full(path):
        return True
    try:
        disk = os.statvfs(path.parent)
    except OSError:
        return False
    return disk.f_files > 0 and disk.f_ffree == 0  # f_files 0: no fixed number of inodes


def store_error(err: sqlite3.Error, path: Path, read_only: bool = False) -> StoreError | None:
    """The one line for an SQLite error that is the disk's or the file's fault; None for
    the rest (our own bugs: they keep their traceback for the crash report).

    SQLite names a full disk (SQLITE_FULL) only where a write ran out of room; a file it
    could not make there (the shared-memory file, on opening) is SQLITE_CANTOPEN or an I/O
    error, so those are a full disk where the disk is full. ``read_only`` connections are
    made only on a full disk, so a write they refuse is the full disk's too."""
    name = getattr(err, "sqlite_errorname", "") or ""
    text = str(err)
    folder = path.parent
    if name.startswith("SQLITE_FULL") or "disk is full" in text or \
            (read_only and (name.startswith("SQLITE_READONLY") or "readonly" in text)) or \
            ((name.startswith(("SQLITE_IOERR", "SQLITE_CANTOPEN")) or "I/O error" in text)
             and no_room(path)):
        return full_disk_error(path, read_only)
    if name.startswith("SQLITE_NOTADB") or "not a database" in text:
        return StoreError("damaged", f"{path} is not a braas-globus job store ({text}); it may "
                                     "be damaged", REBUILD_HINT)
    if name.startswith("SQLITE_CORRUPT") or "malformed" in text or "no such table" in text:
        return StoreError("damaged", f"the job store {path} is damaged ({text})", REBUILD_HINT)
    if name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")) or "locked" in text:
        return StoreError("locked", f"the job store {path} stayed locked by another braas-globus "
                                    f"process for 30 s ({text})", "retry in a moment")
    if name.startswith(("SQLITE_CANTOPEN", "SQLITE_PERM", "SQLITE_READONLY", "SQLITE_AUTH")) \
            or "unable to open" in text or "readonly" in text:
        return StoreError("unreadable", f"cannot open the job store {path} ({text})",
                          f"check that {folder} exists and that you may read and write it")
    if name.startswith("SQLITE_IOERR") or "I/O error" in text:
        return StoreError("unreadable", f"the disk holding the job store {path} failed ({text})",
                          f"check the disk, then {REBUILD_HINT}")
    return None


class GuardedCursor(sqlite3.Cursor):
    """A cursor whose disk and file errors are StoreError lines (see store_error)."""

    def _guard(self, call: Callable[[], _T]) -> _T:
        connection = self.connection
        if not isinstance(connection, GuardedConnection):  # made by GuardedConnection only
            return call()
        with connection.translated_errors():
            return call()

    def execute(self, sql: str, parameters: Parameters = (), /) -> GuardedCursor:
        return self._guard(lambda: super(GuardedCursor, self).execute(sql, parameters))

    def executemany(self, sql: str, seq_of_parameters: Iterable[Parameters], /
                    ) -> GuardedCursor:
        return self._guard(
            lambda: super(GuardedCursor, self).executemany(sql, seq_of_parameters))

    # These return what sqlite3's own do (Any: a row as the row factory makes it); the
    # typed reads are GuardedConnection.query and .rows.
    def fetchone(self) -> Any:
        return self._guard(super().fetchone)

    def fetchmany(self, size: int | None = 1) -> list[Any]:
        return self._guard(lambda: super(GuardedCursor, self).fetchmany(size))

    def fetchall(self) -> list[Any]:
        return self._guard(super().fetchall)

    def __next__(self) -> Any:
        return self._guard(super().__next__)


class Columns:
    """One row of the store, read column by column with its type checked: a value of the
    wrong type (a store written by hand, or damaged) is StoreError "damaged", as damage
    SQLite finds itself is."""

    __slots__ = ("_row", "_path")

    def __init__(self, row: sqlite3.Row, path: Path) -> None:
        self._row, self._path = row, path

    def _value(self, key: str | int, kinds: tuple[type, ...], kind: str) -> object:
        value: object = self._row[key]
        if not isinstance(value, kinds) or isinstance(value, bool):
            raise StoreError("damaged", f"the job store {self._path} is damaged (it holds a "
                                        f"{type(value).__name__} where {kind} belongs)",
                             REBUILD_HINT)
        return value

    def text(self, key: str | int) -> str:
        return str(self._value(key, (str,), "text"))

    def text_or_none(self, key: str | int) -> str | None:
        return None if self._row[key] is None else self.text(key)

    def integer(self, key: str | int) -> int:
        value = self._value(key, (int,), "a whole number")
        assert isinstance(value, int)  # _value checked it
        return value

    def integer_or_none(self, key: str | int) -> int | None:
        return None if self._row[key] is None else self.integer(key)

    def real(self, key: str | int) -> float:
        value = self._value(key, (int, float), "a number")
        assert isinstance(value, (int, float))  # _value checked it
        return float(value)

    def real_or_none(self, key: str | int) -> float | None:
        return None if self._row[key] is None else self.real(key)

    def json_object(self, key: str | int) -> dict[str, Any]:
        """A column of text that holds a JSON object."""
        value = json.loads(self.text(key))
        if not isinstance(value, dict):
            raise StoreError("damaged", f"the job store {self._path} is damaged (it holds a "
                                        f"JSON {type(value).__name__} where an object belongs)",
                             REBUILD_HINT)
        return value


class GuardedConnection(sqlite3.Connection):
    """The store's connection: damage met by any later query (a bad page is found only when
    it is read) is the same one line as damage met at open, never a traceback."""

    store_path: Path = Path("jobs.sqlite")
    read_only = False

    @contextmanager
    def translated_errors(self) -> Iterator[None]:
        try:
            yield
        except sqlite3.Error as err:
            translated = store_error(err, self.store_path, self.read_only)
            if translated is None:
                raise
            raise translated from None

    @overload
    def cursor(self, factory: None = None) -> GuardedCursor: ...
    @overload
    def cursor(self, factory: Callable[[sqlite3.Connection], _CursorT]) -> _CursorT: ...

    def cursor(self, factory: Callable[[sqlite3.Connection], sqlite3.Cursor] | None = None
               ) -> sqlite3.Cursor:
        return super().cursor(factory or GuardedCursor)

    def execute(self, sql: str, parameters: Parameters = (), /) -> GuardedCursor:
        return self.cursor().execute(sql, parameters)  # sqlite3's would not use cursor()

    def executemany(self, sql: str, parameters: Iterable[Parameters], /) -> GuardedCursor:
        return self.cursor().executemany(sql, parameters)

    def rows(self, sql: str, parameters: Parameters = ()) -> list[sqlite3.Row]:
        """The rows of a query, as sqlite3.Row (the store's row factory)."""
        found = self.execute(sql, parameters).fetchall()
        if not all(isinstance(row, sqlite3.Row) for row in found):
            raise TypeError("the store's connection makes its rows with sqlite3.Row")
        return found

    def query(self, sql: str, parameters: Parameters = ()) -> list[Columns]:
        """The rows of a query, their columns read with their types checked."""
        return [Columns(row, self.store_path) for row in self.rows(sql, parameters)]

    def query_one(self, sql: str, parameters: Parameters = ()) -> Columns | None:
        """The first row of a query, or None."""
        row = self.execute(sql, parameters).fetchone()
        if row is not None and not isinstance(row, sqlite3.Row):
            raise TypeError("the store's connection makes its rows with sqlite3.Row")
        return None if row is None else Columns(row, self.store_path)

    def pragma(self, name: str) -> Columns:
        """The row a PRAGMA that reads a setting answers (it always answers one)."""
        row = self.query_one(f"PRAGMA {name}")
        if row is None:
            raise StoreError("damaged", f"the job store {self.store_path} does not answer "
                                        f"PRAGMA {name}", REBUILD_HINT)
        return row


def connect(path: Path, read_only: bool = False) -> GuardedConnection:
    """A connection to the store. ``read_only`` is for a full disk: ``immutable`` reads the
    file as it is, without the shared-memory file SQLite cannot create there (the file was
    checkpointed when its last writer closed, which is when that file is missing)."""
    target = f"{path.resolve().as_uri()}?mode=ro&immutable=1" if read_only else str(path)
    db = sqlite3.connect(target, uri=read_only, timeout=30, isolation_level=None,
                         check_same_thread=False, factory=GuardedConnection)
    db.store_path, db.read_only = path, read_only
    db.row_factory = sqlite3.Row
    return db


def connect_read_only(path: Path) -> GuardedConnection:
    """A connection that never writes to the store (``store check``): a plain read-only one,
    or, on a full disk, one that reads the file as it is."""
    try:
        db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=30,
                             isolation_level=None, factory=GuardedConnection)
        db.store_path, db.row_factory = path, sqlite3.Row
        db.execute("PRAGMA user_version").fetchone()  # reading is what can fail
        return db
    except StoreError as err:
        if err.kind != "full":
            raise
        return connect(path, read_only=True)
