"""Global deduplication across all sources of a build, before mixing: a few named steps
over one rule (``rule.NearRule``), run in one process (``local.py``) or on Ray Data
(``ray_runner.py``), both calling the same step functions. Steps, drop reasons, the
``meta`` fields written and measured quality: docs/DEDUP.md.

1. fingerprint (``fingerprint.py``, called by the ``image_decode`` operator);
2. view and exact groups (``groups.py``), eval matches first (``decontaminate.py``);
3. candidates (``candidates.py``): pHash banding of the near-eligible representatives;
4. compare (``batch.py``, ``compare.py``, ``search.py``, ``pixels.py``): each candidate
   pair under the rule, a call's pairs screened together first;
5. near groups and decisions (``groups.py``).
"""

from mindvl.data_engine.dedup.fingerprint import EvalImage
from mindvl.data_engine.dedup.local import dedup_rows, plan_dedup
from mindvl.data_engine.dedup.ray_runner import dedup_dataset
from mindvl.data_engine.dedup.rule import NearRule

__all__ = ["EvalImage", "NearRule", "dedup_dataset", "dedup_rows", "plan_dedup"]
