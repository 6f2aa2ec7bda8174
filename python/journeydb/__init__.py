"""journeydb: an embedded customer-journey database, from Python.

    import journeydb
    con = journeydb.demo("demo.journeydb")            # or journeydb.connect(path)
    res = con.query("FUNNEL visit -> add_to_cart -> purchase WITHIN 7d")
    res.fetchall()          # tuples, no dependency
    res.to_pandas()         # or to_arrow(), to_polars(); pyarrow.table(res), polars.DataFrame(res)
    con.append(frame)       # any Arrow stream producer (pandas, polars, pyarrow, DuckDB) or a list of dicts

The statements are journeydb's query language (docs/QUERY.md). Results hand their columns over
through the Arrow PyCapsule interface (``__arrow_c_stream__``), so pyarrow, polars, pandas and
DuckDB read them without journeydb importing any of them.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping

from . import _journeydb
from ._journeydb import (
    Connection,
    Error,
    ImportError,
    QueryError,
    Result,
    Snapshot,
    StorageError,
    __version__,
)

__all__ = [
    "Connection",
    "Error",
    "ImportError",
    "QueryError",
    "Result",
    "Snapshot",
    "StorageError",
    "connect",
    "demo",
    "__version__",
]


def connect(path: str | "os.PathLike[str]", read_only: bool = False, create: bool = True) -> Connection:
    """Open the database at ``path``; create it when missing (unless ``create=False``).

    ``read_only=True`` opens it beside a writer in another process; writes then raise.
    """
    return _journeydb.connect(path, read_only, create)


def demo(path: str | "os.PathLike[str]", events: int = 1_000_000) -> Connection:
    """Open the demo database at ``path``, making it first (about ``events`` synthetic events,
    customer profiles and two saved cohorts) when the directory holds none."""
    return _journeydb.demo(path, events)


def _append(self: Connection, data: Any, **options: Any) -> int:
    """Append events as one unit: every row or none.

    ``data`` is any Arrow stream producer (an object with ``__arrow_c_stream__``: a pyarrow
    Table or RecordBatchReader, a pandas or polars DataFrame, a DuckDB relation) or an iterable
    of dicts. Columns ``customer`` (str or int), ``ts`` (a timestamp, or integers whose unit is
    inferred and reported as a warning unless ``ts_unit`` is given), ``event``, optionally
    ``stage``; every other column is a property. Options as for ``import_file``. Returns the
    number of events written.
    """
    if hasattr(data, "__arrow_c_stream__"):
        return self._append_arrow(data, **options)
    if isinstance(data, Mapping):
        raise Error("append takes a list of dicts (or an Arrow stream), not one dict: wrap it in a list")
    if isinstance(data, (str, bytes)) or not isinstance(data, Iterable):
        kind = type(data).__name__
        raise Error(f"append takes an Arrow stream producer or a list of dicts, not {kind}")
    return self._append_rows(list(data), **options)


def _to_arrow(self: Result) -> Any:
    """The result as a ``pyarrow.Table`` (needs pyarrow)."""
    import pyarrow

    return pyarrow.table(self)


def _to_pandas(self: Result) -> Any:
    """The result as a ``pandas.DataFrame`` (needs pandas and pyarrow)."""
    return _to_arrow(self).to_pandas()


def _to_polars(self: Result) -> Any:
    """The result as a ``polars.DataFrame`` (needs polars)."""
    import polars

    return polars.DataFrame(self)


def _execute(self: Connection, text: str) -> Result:
    """The same as ``query``."""
    return self.query(text)


Connection.append = _append  # type: ignore[attr-defined]
Connection.execute = _execute  # type: ignore[attr-defined]
Result.to_arrow = _to_arrow  # type: ignore[attr-defined]
Result.to_pandas = _to_pandas  # type: ignore[attr-defined]
Result.to_polars = _to_polars  # type: ignore[attr-defined]
# DuckDB's names for the same conversions.
Result.arrow = _to_arrow  # type: ignore[attr-defined]
Result.df = _to_pandas  # type: ignore[attr-defined]
Result.pl = _to_polars  # type: ignore[attr-defined]
