"""The Ray Data map functions of a build: read, run operators, split off drops, write parts.

Each is plain Python over a ``pyarrow.Table`` batch (``batch_format="pyarrow"``); the
pipeline decides how Ray runs it (tasks, or an actor pool for ops that load a model).
Rows hold encoded image bytes only; decoded pixels never leave an operator call.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from mindvl.data_engine.pipeline.duplicate_keys import read_order
from mindvl.data_engine.pipeline.parts import write_part
from mindvl.data_engine.pipeline.progress import send
from mindvl.data_engine.pipeline.rows import conform, from_table, to_table
from mindvl.data_engine.readers import read_unit
from mindvl.data_engine.readers.base import ReadUnit

READ_CHUNK = 128  # candidates per output table of a read task


def _report(progress: Any, kind: str, table: pa.Table, units: int = 0, source: str = "") -> None:
    send(progress, kind, table, units, source)  # best-effort: never raises


def read_stage(batch: pa.Table, progress: Any = None) -> Iterator[pa.Table]:
    """One unit per batch -> tables of candidates (a generator, so memory stays per chunk).
    Each candidate gets its ``read_order`` from the unit's index in the plan (``index``)."""
    indexes = batch.column("index").to_pylist()
    for text, index in zip(batch.column("unit").to_pylist(), indexes, strict=True):
        unit = ReadUnit.from_json(text)
        chunk = []
        n_chunks = 0
        for position, cand in enumerate(read_unit(unit)):
            cand.read_order = read_order(index, position)
            chunk.append(cand)
            if len(chunk) >= READ_CHUNK:
                table = to_table(chunk)
                _report(progress, "read", table)
                n_chunks += 1
                yield table
                chunk = []
        table = to_table(chunk)
        _report(progress, "read", table, units=1, source=unit.source)
        if len(table) or not n_chunks:
            yield table


class OperatorStage:
    """Apply a run of operators to each candidate; also used as an actor class (the
    operators are built once in ``__init__``, so a model loads once per actor)."""

    def __init__(self, specs: list[dict[str, Any]], source: str, context: Any) -> None:
        from mindvl.data_engine.ops.registry import build_operator

        self.ops = [
            build_operator(s["op"], s["params"], source, s["index"], context) for s in specs
        ]

    def __call__(self, batch: pa.Table) -> pa.Table:
        cands = from_table(conform(batch))
        for op in self.ops:
            cands = [op.apply(c) for c in cands]
        return to_table(cands)


def apply_operators(
    batch: pa.Table, specs: list[dict[str, Any]], source: str, context: Any
) -> pa.Table:
    """Task form of :class:`OperatorStage` for stateless operators (rebuilt per batch: cheap)."""
    return OperatorStage(specs, source, context)(batch)


def split_dropped(batch: pa.Table, parts_dir: str, buckets: int, progress: Any) -> pa.Table:
    """Write dropped rows to staging parts; pass kept rows on (to dedup and captioning)."""
    batch = conform(batch)
    _report(progress, "filtered", batch)
    mask = batch.column("drop_reason").is_valid()
    write_part(batch.filter(mask), f"{parts_dir}/dropped", buckets)
    return batch.filter(pc.invert(mask))


def write_parts(batch: pa.Table, parts_dir: str, buckets: int, progress: Any) -> pa.Table:
    """Final stage: kept and late-dropped rows to staging parts; returns a tiny summary."""
    batch = conform(batch)
    _report(progress, "final", batch)
    mask = batch.column("drop_reason").is_valid()
    write_part(batch.filter(mask), f"{parts_dir}/dropped", buckets)
    write_part(batch.filter(pc.invert(mask)), f"{parts_dir}/kept", buckets)
    return pa.table({"rows": [len(batch)]})
