"""Global deduplication across all sources of a build, before mixing.

Entry points: ``dedup_dataset`` (Ray Data, distributed), ``dedup_rows`` /
``dedup_candidates`` (pure Python, same semantics), ``eval_hashes_from_images`` (eval-set
fingerprints for decontamination). See ``core.py`` for the rules.
"""

from mindvl.data_engine.dedup.core import dedup_candidates, dedup_rows, plan_dedup
from mindvl.data_engine.dedup.decontaminate import EvalImage, eval_hashes_from_images


def dedup_dataset(ds, spec, eval_sets=None):  # noqa: ANN001, ANN201 (lazy Ray import)
    """Ray Data entry point; see ``ray_dedup.dedup_dataset``."""
    from mindvl.data_engine.dedup.ray_dedup import dedup_dataset as _run

    return _run(ds, spec, eval_sets)


__all__ = [
    "EvalImage",
    "dedup_candidates",
    "dedup_dataset",
    "dedup_rows",
    "eval_hashes_from_images",
    "plan_dedup",
]
