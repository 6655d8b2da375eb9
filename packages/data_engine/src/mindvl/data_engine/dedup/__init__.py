"""Global deduplication across all sources of a build, before mixing.

Entry points:

* ``dedup_dataset(ds, spec, eval_sets=None) -> (Dataset, DedupStats)``: Ray Data,
  distributed (``ray_dedup.py``). ``ds`` holds ``Candidate.to_row()`` rows after the
  ``image_decode`` operator (``pixel_hashes``, ``phashes``, ``signatures``,
  ``information``, ``widths``/``heights``, optional ``quality``). Rows already dropped
  pass through untouched and are not counted. The input is materialised once.
* ``dedup_rows`` / ``dedup_candidates`` / ``plan_dedup``: the same rules in pure Python
  (``core.py``), for small inputs, tests and the benchmark.
* ``eval_hashes_from_images(list_of_encoded_bytes) -> list[EvalImage]``: fingerprints of
  evaluation images. The engine reads every corpus named in ``spec.decontaminate`` (format
  ``spec.decontaminate_format``) with its readers, passes all images' bytes here and hands
  the list to ``dedup_dataset`` as ``eval_sets`` (plain ``(phash, signature, pixel_hash)``
  or ``(..., information)`` tuples work too). A non-list third argument (e.g. an
  ``OpContext``) is ignored; with ``spec.decontaminate`` set, missing fingerprints are an
  error.

What a row gets: drops are ``("dedup", "exact_dedup" | "near_dedup" | "decontaminate",
reason)`` with reasons ``same_image_and_text``, ``same_image``, ``near_duplicate``,
``eval_image``; every member of a duplicate group, survivor included, gets
``meta["dup_group"]``, dropped members ``meta["dup_survivor"]`` (the kept row's key);
decontaminated rows get ``meta["dup_group"] = "eval-<index of the eval image>"``.
The rules (order of stages, exact vs near, low-information guard, survivor rule) are in
``core.py``.
"""

from mindvl.data_engine.dedup.core import dedup_candidates, dedup_rows, plan_dedup
from mindvl.data_engine.dedup.decontaminate import EvalImage
from mindvl.data_engine.dedup.rule import NearRule


def dedup_dataset(ds, spec, eval_sets=None):  # noqa: ANN001, ANN201 (lazy Ray import)
    """Ray Data entry point; see ``ray_dedup.dedup_dataset``."""
    from mindvl.data_engine.dedup.ray_dedup import dedup_dataset as _run

    return _run(ds, spec, eval_sets)


__all__ = [
    "EvalImage",
    "NearRule",
    "dedup_candidates",
    "dedup_dataset",
    "dedup_rows",
    "plan_dedup",
]
