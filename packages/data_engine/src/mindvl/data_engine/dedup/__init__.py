"""Global deduplication across all sources of a build, before mixing.

Entry points (the Ray Data one lands next): ``dedup_rows`` /
``dedup_candidates`` (pure Python, same semantics), ``eval_hashes_from_images`` (eval-set
fingerprints for decontamination). See ``core.py`` for the rules.
"""

from mindvl.data_engine.dedup.core import dedup_candidates, dedup_rows, plan_dedup
from mindvl.data_engine.dedup.decontaminate import EvalImage, eval_hashes_from_images

__all__ = [
    "EvalImage",
    "dedup_candidates",
    "dedup_rows",
    "eval_hashes_from_images",
    "plan_dedup",
]
