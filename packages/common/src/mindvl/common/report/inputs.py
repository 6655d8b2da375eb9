"""Reading the demo's outputs as plain files (JSON, JSONL, Parquet), never through the
data engine's or trainer's classes: ``mindvl.common`` may not import them, and a report
should still come out when one step failed or a field is missing. Every reader returns
``None`` data plus a one-line note instead of raising, and the report shows "n/a".
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class Loaded:
    data: Any = None
    note: str = ""  # why data is None, or what was skipped while reading
    path: Path | None = None
    extra: dict = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.data is not None


def get(data: Any, *path: str | int, default: Any = None) -> Any:
    """``data[p0][p1]...`` or ``default`` when any step is missing or of the wrong type."""
    for p in path:
        in_list = isinstance(p, int) and isinstance(data, list) and -len(data) <= p < len(data)
        in_dict = isinstance(p, str) and isinstance(data, dict) and p in data
        if not (in_list or in_dict):
            return default
        data = data[p]
    return default if data is None else data


def number(value: Any) -> float | None:
    """A finite int/float (bools excluded) or None."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    v = float(value)
    return v if v == v and abs(v) != float("inf") else None


def read_json(path: Path) -> Loaded:
    if not path.is_file():
        return Loaded(note=f"{path.name} not found", path=path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        return Loaded(note=f"{path.name} is not valid JSON ({err.__class__.__name__})", path=path)
    if not isinstance(data, dict):
        return Loaded(note=f"{path.name} is not a JSON object", path=path)
    return Loaded(data=data, path=path)


def read_jsonl(path: Path) -> Loaded:
    """Rows that parse as JSON objects; unreadable lines are counted in the note, not fatal
    (a run killed mid-write leaves a torn last line)."""
    if not path.is_file():
        return Loaded(note=f"{path.name} not found", path=path)
    rows, bad = [], 0
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            bad += 1
            continue
        if isinstance(row, dict):
            rows.append(row)
        else:
            bad += 1
    note = f"{bad} unreadable line(s) skipped" if bad else ""
    return Loaded(data=rows, note=note, path=path)


def read_parquet(path: Path, columns: list[str]) -> Loaded:
    """The listed columns that exist (as a dict of Python lists); missing ones are noted."""
    if not path.is_file():
        return Loaded(note=f"{path.name} not found", path=path)
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(path)
        names = set(pf.schema_arrow.names)
        present = [c for c in columns if c in names]
        table = pf.read(columns=present)
    except Exception as err:  # noqa: BLE001 - any unreadable file becomes "n/a"
        return Loaded(
            note=f"{path.name} is not readable Parquet ({err.__class__.__name__})", path=path
        )
    missing = [c for c in columns if c not in names]
    note = f"columns missing: {', '.join(missing)}" if missing else ""
    data = {c: table.column(c).to_pylist() for c in present}
    return Loaded(data=data, note=note, path=path, extra={"rows": table.num_rows})
