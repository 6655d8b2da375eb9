"""Global deduplication across all sources of a build, before mixing: a few named steps
over one rule (``rule.NearRule``), run in one process or on Ray.

1. fingerprint (``fingerprint.py``, called by the ``image_decode`` operator): pixel hash,
   pHash and signature of every image;
2. exact groups and candidates (``groups.py``, ``candidates.py``): rows matching an eval
   image are dropped first; rows are grouped by pixel hash (``spec.exact``: one sample per
   distinct picture) or by pixels + text (``exact: false``); the representatives with one
   image, enough ``information`` and a signature are paired by pHash banding;
3. compare (``compare.py``): each candidate pair's signatures under the rule;
4. near groups and decisions (``groups.py``): components of the accepted pairs, split into
   stars around their survivors; every row's decision.

Entry points: ``dedup_dataset(ds, spec, eval_sets)`` (Ray Data, ``ray_runner.py``) and
``plan_dedup`` / ``dedup_rows`` / ``dedup_candidates`` (``local.py``); both call the same
step functions. Drops are ``("dedup", "exact_dedup" | "near_dedup" | "decontaminate",
reason)`` with reasons ``same_image_and_text``, ``same_image``, ``near_duplicate``,
``eval_image``; every member of a duplicate group, survivor included, gets
``meta["dup_group"]``, dropped members ``meta["dup_survivor"]`` (the kept row's key);
decontaminated rows get ``meta["dup_group"] = "eval-<index of the eval image>"``. Samples
with several images are exact duplicates only when all their images match, in order, and
take no part in near dedup; rows without pixel hashes are left alone.
"""

from mindvl.data_engine.dedup.fingerprint import EvalImage
from mindvl.data_engine.dedup.local import dedup_candidates, dedup_rows, plan_dedup
from mindvl.data_engine.dedup.rule import NearRule


def dedup_dataset(ds, spec, eval_sets=None):  # noqa: ANN001, ANN201 (lazy Ray import)
    """Ray Data entry point; see ``ray_runner.dedup_dataset``."""
    from mindvl.data_engine.dedup.ray_runner import dedup_dataset as _run

    return _run(ds, spec, eval_sets)


__all__ = ["EvalImage", "NearRule", "dedup_candidates", "dedup_dataset", "dedup_rows", "plan_dedup"]
