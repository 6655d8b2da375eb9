"""Fingerprints of the eval sets a recipe keeps out (``dedup.decontaminate``).

Each listed corpus is read with the same readers as a source (format
``dedup.decontaminate_format``), on the driver: eval sets are small. Missing paths are
user errors raised before any work.
"""

from __future__ import annotations

from typing import Any

from mindvl.common.recipe import DedupSpec, SourceSpec
from mindvl.data_engine.readers import plan_source, read_unit


def eval_units(spec: DedupSpec) -> list[Any]:
    units = []
    for i, path in enumerate(spec.decontaminate):
        src = SourceSpec(
            name=f"eval{i}", path=path, format=spec.decontaminate_format, category="eval"
        )
        units += plan_source(src)[0]
    return units


def eval_fingerprints(units: list[Any]) -> list[Any]:
    from mindvl.data_engine.ops.image_decode import eval_hashes_from_images

    images = (im.data for u in units for c in read_unit(u) if not c.dropped for im in c.images)
    return eval_hashes_from_images(images)
