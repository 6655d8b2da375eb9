"""What every filter operator is: plain Python over one candidate, no Ray inside.

A subclass sets ``name`` (the recipe's ``op:``), ``stage`` (where its drops are counted),
a ``Params`` model (validated from the recipe; unknown keys are errors) and, for model-based
operators, ``resources`` (Ray resources of the actors that run it, e.g. ``{"num_gpus": 1}``
or ``{"resources": {"NPU": 1}}``). ``__call__`` returns ``None`` to keep (it may annotate
the candidate, e.g. with decoded sizes) or a short reason string to drop.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from pydantic import Field

from mindvl.common.config import StrictModel
from mindvl.common.tokens import ImageTokenRule
from mindvl.data_engine.record import Candidate, TextPart


class NoParams(StrictModel):
    pass


class JudgedTextParams(StrictModel):
    """Params of a text operator: which text of a sample it judges (``Candidate.texts``).

    The default is the sample's content, the caption or the assistant turns: a fixed
    instruction ("Describe the image.") shared by many samples must not decide whether a
    sample's answer is English, good or repetitive."""

    judge: TextPart = Field(
        default="assistant",
        description="assistant: caption / assistant turns; user: user turns; all: every turn",
    )


def judged_text(candidate: Candidate, part: TextPart) -> str:
    """The judged turns joined by newlines (empty if there are none)."""
    return "\n".join(candidate.texts(part))


@dataclass(frozen=True)
class OpContext:
    """What an operator may need from the build besides its params."""

    tokenizer_path: str | None = None
    image_rule: ImageTokenRule | None = None
    work_dir: str | None = None
    # image_decode computes the Laplacian variance only when something reads it (a build
    # sets this from its recipe: True when it has a ``blur`` operator)
    blur_score: bool = True
    # the recipe's image_decode params (ImageDecodeParams), which image filters decode with
    # when they find features missing (image_features.py); None: the defaults
    decode: Any = None


class Operator:
    name: ClassVar[str]
    stage: ClassVar[str] = "filter"
    Params: ClassVar[type[StrictModel]] = NoParams
    resources: ClassVar[dict[str, Any]] = {"num_cpus": 1}
    uses_actor: ClassVar[bool] = False  # True: heavy state (a model) loaded once per actor

    def __init__(self, params: StrictModel | None = None, context: OpContext | None = None) -> None:
        self.params = params if params is not None else self.Params()
        self.context = context or OpContext()

    def __call__(self, candidate: Candidate) -> str | None:
        raise NotImplementedError

    def apply(self, candidate: Candidate) -> Candidate:
        """Run on one candidate, recording a drop; dropped candidates pass through untouched."""
        if candidate.dropped:
            return candidate
        try:
            reason = self(candidate)
        except Exception as err:  # an operator's failure on one sample is a counted drop
            reason = f"error:{type(err).__name__}"
        if reason is not None:
            candidate.drop(self.stage, self.name, reason)
        return candidate
