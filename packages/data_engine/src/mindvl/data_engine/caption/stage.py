"""Recaptioning as a Ray Data stage: an actor pool of caption models over candidate rows.

``caption_dataset`` adds one ``map_batches`` with a callable class: each actor loads the
backend once (on the accelerator Ray reserved for it: ``num_gpus=1`` for CUDA, the custom
``NPU`` resource for Ascend, one CPU otherwise), opens its own cache writer under
``work_dir/caption_cache/`` and runs a :class:`CaptionRunner` per batch. Only the
``caption``, ``conversation`` and ``meta`` columns are rewritten, so every other column
(images, hashes, drop reasons, extra columns) and the block schema pass through as they are.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mindvl.common.caption_backend import backend_class
from mindvl.common.errors import UserError
from mindvl.common.recipe import CaptionSpec
from mindvl.data_engine.caption.cache import CACHE_DIR, CaptionCache
from mindvl.data_engine.caption.runner import CaptionRunner
from mindvl.data_engine.device import actor_resources, pick_cluster_device
from mindvl.data_engine.record import Candidate

REWRITTEN = ("caption", "conversation", "meta")
# columns a Candidate needs for captioning: identity, images (+ sizes for batching),
# drop state, and the rewritten ones
READ = (
    "key",
    "source",
    "category",
    "raw_id",
    "images",
    "widths",
    "heights",
    "drop_reason",
    *REWRITTEN,
)
ROWS_PER_GENERATION_BATCH = 4  # a Ray batch holds this many generation batches


def load_runner(
    spec: CaptionSpec, work_dir: str | Path, device: str, cache_dir: str | Path | None = None
) -> CaptionRunner:
    """Backend + cache + runner, as one actor (or a single process) uses them."""
    backend = backend_class(spec.backend)(spec.model, device)
    cache = CaptionCache(cache_dir or Path(work_dir) / CACHE_DIR)
    return CaptionRunner(spec, backend, cache)


class CaptionStage:
    """The ``map_batches`` callable: one per actor, holding the model."""

    def __init__(self, spec_json: str, work_dir: str, device: str, cache_dir: str | None) -> None:
        spec = CaptionSpec.model_validate_json(spec_json)
        self.runner = load_runner(spec, work_dir, device, cache_dir)

    def __call__(self, table: Any) -> Any:
        import pyarrow as pa

        candidates = [Candidate.from_row(r) for r in table.select(list(READ)).to_pylist()]
        self.runner.run(candidates)
        rows = [c.to_row() for c in candidates]
        for name in REWRITTEN:
            i = table.schema.get_field_index(name)
            field = table.schema.field(i)
            if pa.types.is_null(field.type):
                field = pa.field(name, pa.string())
            table = table.set_column(i, field, pa.array([r[name] for r in rows], type=field.type))
        return table


def caption_dataset(
    ds: Any, spec: CaptionSpec, work_dir: str | Path, *, cache_dir: str | Path | None = None
) -> Any:
    """Recaption the candidate rows of ``ds`` (a ``ray.data.Dataset``); returns a new one.

    Dropped rows and rows of categories without a prompt pass through untouched. The cache
    lives in ``work_dir/caption_cache/`` unless ``cache_dir`` is given: point several
    builds (recipes) at one ``cache_dir`` to share finished captions between them. Every
    actor must see the same path (a shared filesystem on a multi-node cluster).
    """
    import ray

    if not spec.enabled or not spec.categories:
        return ds
    backend_class(spec.backend)  # an unknown backend fails here, before any actor starts
    if spec.backend == "hf" and not Path(str(spec.model)).is_dir():
        raise UserError(f"caption.model: {spec.model} is not a local model folder")
    device = pick_cluster_device(spec.device, ray.cluster_resources())
    return ds.map_batches(
        CaptionStage,
        fn_constructor_args=(
            spec.model_dump_json(),
            str(work_dir),
            device,
            None if cache_dir is None else str(cache_dir),
        ),
        batch_format="pyarrow",
        batch_size=spec.batch_size * ROWS_PER_GENERATION_BATCH,
        concurrency=spec.concurrency,
        **actor_resources(device),
    )
