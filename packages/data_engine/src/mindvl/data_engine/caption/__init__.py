"""Recaptioning with vision-language models: Ray actor pools, a persistent cache, provenance.

``caption_dataset(ds, spec, work_dir)`` is the build stage; :class:`CaptionRunner` is the
Ray-free core; backends come from the ``mindvl.caption_backends`` entry-point group
(``hf`` lives in :mod:`.hf_backend`). Heavy imports (ray, torch, transformers) happen
inside functions, so importing this package is cheap.
"""

from mindvl.data_engine.caption.outcomes import caption_outcome, count_outcomes, funnel_entries
from mindvl.data_engine.caption.runner import ERROR_META, PROVENANCE_META, CaptionRunner
from mindvl.data_engine.caption.stage import caption_dataset, load_runner

__all__ = [
    "ERROR_META",
    "PROVENANCE_META",
    "CaptionRunner",
    "caption_dataset",
    "caption_outcome",
    "count_outcomes",
    "funnel_entries",
    "load_runner",
]
