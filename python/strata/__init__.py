"""strata from Python: the same Rust engine, rule packs and lists as the
``strata`` command line, called in-process.

- ``check(pack_dir)``: a pack's diagnostics (an empty list when it is sound).
- ``run(pack_dir, data_dir, out_dir, ...)``: the nightly run, writing the same
  run folder as ``strata run``; returns a summary dict.
- ``score(pack_dir, patients, events={...}, contacts=None, as_of=...)``: the
  people a run would list, as a ``pyarrow.Table`` with the columns of
  ``list.parquet``, from any Arrow-compatible tables (pyarrow, Polars,
  DuckDB, pandas), passed through the Arrow C data interface.

Errors raise ``InputError`` (bad pack, data or argument: the CLI's exit 2)
or ``StrataError`` (everything else), with the CLI's messages.
"""

from __future__ import annotations

import datetime as _dt
import os as _os
from typing import Any, Mapping, Optional, Union

from . import _strata
from ._strata import InputError, StrataError

__all__ = ["check", "run", "score", "InputError", "StrataError", "__version__"]

__version__ = _strata.version()

PathLike = Union[str, "_os.PathLike[str]"]
DateLike = Union[_dt.date, str, None]


def _date(value: DateLike, name: str) -> Optional[_dt.date]:
    if value is None or isinstance(value, _dt.date) and not isinstance(value, _dt.datetime):
        return value
    if isinstance(value, _dt.datetime):
        return value.date()
    if isinstance(value, str):
        try:
            return _dt.date.fromisoformat(value.strip())
        except ValueError:
            raise InputError(f"{name}: {value!r} is not a date (expected YYYY-MM-DD)") from None
    raise InputError(f"{name}: expected a date or a YYYY-MM-DD string, got {type(value).__name__}")


def _arrow(obj: Any, what: str) -> Any:
    """An object the engine can read through ``__arrow_c_stream__``."""
    if hasattr(obj, "__arrow_c_stream__"):
        return obj
    # Older pandas, DuckDB and Polars without the PyCapsule protocol.
    import pyarrow as pa

    if hasattr(obj, "to_arrow"):  # Polars
        return obj.to_arrow()
    if hasattr(obj, "arrow") and callable(obj.arrow):  # DuckDB relation
        return obj.arrow()
    try:
        import pandas as pd

        if isinstance(obj, pd.DataFrame):
            return pa.Table.from_pandas(obj, preserve_index=False)
    except ImportError:
        pass
    if isinstance(obj, (pa.RecordBatch, pa.RecordBatchReader)):
        return obj
    raise InputError(
        f"{what}: not an Arrow table (give a pyarrow Table, Polars DataFrame, "
        f"DuckDB relation or pandas DataFrame), got {type(obj).__name__}"
    )


def check(pack_dir: PathLike) -> list:
    """Checks a rule pack; returns its diagnostics as dicts (code, severity,
    message, file, line, column, help, text), empty when the pack is sound."""
    return _strata.check(_os.fspath(pack_dir))


def run(
    pack_dir: PathLike,
    data_dir: PathLike,
    out_dir: PathLike,
    as_of: DateLike = None,
    previous: Optional[PathLike] = None,
    threads: Optional[int] = None,
    capacity: Optional[int] = None,
    exact_counts: bool = False,
    name: Optional[str] = None,
) -> dict:
    """Runs the nightly batch, writing the same run folder as ``strata run``
    (``previous="auto"`` compares with the latest earlier run in out_dir).
    Returns dir, as_of, in_population, listed, practices, timings_ms."""
    return _strata.run(
        _os.fspath(pack_dir),
        _os.fspath(data_dir),
        _os.fspath(out_dir),
        as_of=_date(as_of, "as_of"),
        previous=None if previous is None else _os.fspath(previous),
        threads=threads,
        capacity=capacity,
        exact_counts=exact_counts,
        name=name,
    )


def score(
    pack_dir: PathLike,
    patients: Any,
    events: Optional[Mapping[str, Any]] = None,
    contacts: Any = None,
    as_of: DateLike = None,
    threads: Optional[int] = None,
    imd: Optional[str] = None,
    lsoa_vintage: Optional[Union[int, str]] = None,
):
    """Scores people without writing anything. ``patients`` and each of
    ``events`` (table name -> table, e.g. ``{"events": ..., "admissions": ...}``)
    and ``contacts`` follow the dataset contract of a run folder. Returns a
    ``pyarrow.Table`` with the rows and columns of ``list.parquet``, practice
    by practice, by rank. ``as_of`` defaults to the latest event date.
    ``imd`` ("2019" or "2025") and ``lsoa_vintage`` (2011 or 2021), given
    together, say which deprivation index applies to ``lsoa_code`` (as in
    dataset.toml; default IMD 2019 on 2011 LSOAs)."""
    tables = {str(k): _arrow(v, str(k)) for k, v in (events or {}).items()}
    return _strata.score(
        _os.fspath(pack_dir),
        _arrow(patients, "patients"),
        events=tables,
        contacts=None if contacts is None else _arrow(contacts, "contacts"),
        as_of=_date(as_of, "as_of"),
        threads=threads,
        imd=None if imd is None else str(imd),
        lsoa_vintage=None if lsoa_vintage is None else str(lsoa_vintage),
    )
