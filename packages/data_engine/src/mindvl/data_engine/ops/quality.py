"""Keep samples a project-trained fastText classifier scores as good enough.

The classifier is trained by ``mindvl data train-quality`` (:mod:`.train_quality`) from
labelled examples (``good`` / ``bad``); this operator loads it once per process, computes
P(good) of the sample's text, stores it in ``candidate.quality`` and drops below
``min_score`` with ``low_quality``. It scores the judged turns (``judge``, default the
caption / assistant turns) joined; a sample with no judged text is kept unscored. Training
and scoring share :func:`quality_text`, so both see the text the same way (one line,
lowercased, whitespace collapsed).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field

from mindvl.common.config import StrictModel
from mindvl.common.errors import UserError
from mindvl.data_engine.ops.base import JudgedTextParams, OpContext, Operator, judged_text
from mindvl.data_engine.record import Candidate

GOOD, BAD = "good", "bad"
LABEL_PREFIX = "__label__"


def quality_text(text: str) -> str:
    return " ".join(text.lower().split())


@lru_cache(maxsize=4)
def load_quality_model(path: str):
    import fasttext

    fasttext.FastText.eprint = lambda *args, **kwargs: None  # silence a load-time warning
    try:
        model = fasttext.load_model(path)
    except ValueError as err:
        raise UserError(f"quality: cannot load model {path}: {err}") from None
    if LABEL_PREFIX + GOOD not in model.get_labels():
        raise UserError(
            f"quality: model {path} has no {GOOD!r} label (labels: {model.get_labels()})"
        )
    return model


def good_probability(model, text: str) -> float:
    labels, probs = model.predict(quality_text(text), k=-1)
    return next(
        (float(p) for lab, p in zip(labels, probs, strict=True) if lab == LABEL_PREFIX + GOOD), 0.0
    )


class QualityParams(JudgedTextParams):
    model: str = Field(description="path of a model written by `mindvl data train-quality`")
    min_score: float = Field(default=0.5, ge=0.0, le=1.0, description="keep if P(good) >= this")


class Quality(Operator):
    """Reason ``low_quality``; the score is kept on ``candidate.quality`` either way."""

    name = "quality"
    Params = QualityParams

    def __init__(self, params: StrictModel | None = None, context: OpContext | None = None) -> None:
        super().__init__(params, context)
        if not Path(self.params.model).is_file():
            raise UserError(f"quality: model not found: {self.params.model}")

    def __call__(self, candidate: Candidate) -> str | None:
        text = judged_text(candidate, self.params.judge)
        if not text.strip():
            return None  # nothing judged (e.g. user turns of a caption sample)
        model = load_quality_model(str(Path(self.params.model).resolve()))
        candidate.quality = good_probability(model, text)
        return None if candidate.quality >= self.params.min_score else "low_quality"
