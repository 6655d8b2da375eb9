"""The evaluation set: a verified shard build read once into memory.

Every sample read feeds the validation loss; conversation samples with exactly one image
also become scored items: the question is the first user turn without ``<image>``, the
reference is the assistant turn that answers it. Generation sees no history, so later
turns of a multi-turn sample are not scored (their loss still counts). Held-out sets are
small, so keeping their encoded bytes in memory is the simple choice.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from mindvl.common.manifest import RatioManifest
from mindvl.common.sample import IMAGE_PLACEHOLDER, Sample
from mindvl.trainer.data.shards import RawSample, check_shards, iter_groups
from mindvl.trainer.evaluation.tasks import TaskSet


@dataclass(frozen=True)
class EvalItem:
    key: str
    category: str
    task: str
    question: str
    reference: str
    image: bytes  # encoded, as stored in the shard
    size: tuple[int, int]  # original (width, height)


@dataclass
class EvalSet:
    root: Path
    manifest: RatioManifest
    raw: list[RawSample]  # every sample read, in shard order (validation loss)
    items: list[EvalItem]  # the scored subset
    skipped: Counter = field(default_factory=Counter)  # not scored, by reason


def question_answer(sample: Sample) -> tuple[str, str] | None:
    """(question, reference) of the first user turn and the assistant turn after it."""
    turns = sample.conversation or []
    for i, turn in enumerate(turns[:-1]):
        if turn.role == "user" and turns[i + 1].role == "assistant":
            question = " ".join(turn.content.replace(IMAGE_PLACEHOLDER, " ").split())
            return question, turns[i + 1].content.strip()
    return None


def to_item(raw: RawSample, tasks: TaskSet) -> tuple[EvalItem | None, str | None]:
    """A scored item, or None and the reason it is not scored."""
    if "json" not in raw.members:
        return None, "no json member"
    sample = Sample.from_json_bytes(raw.members["json"])
    if sample.conversation is None:
        return None, "caption sample"
    if len(sample.images) != 1:
        return None, "not exactly one image"
    qa = question_answer(sample)
    if qa is None:
        return None, "no user turn answered by the assistant"
    image = sample.images[0]
    if image.member not in raw.members:
        return None, "missing image member"
    question, reference = qa
    item = EvalItem(
        key=sample.key,
        category=sample.category,
        task=tasks.classify(question),
        question=question,
        reference=reference,
        image=raw.members[image.member],
        size=(image.width, image.height),
    )
    return item, None


def read_eval_set(root: str | Path, tasks: TaskSet, limit: int | None = None) -> EvalSet:
    """The first ``limit`` samples (all by default) of a manifest-verified build."""
    root = Path(root)
    manifest = RatioManifest.load(root)
    check_shards(manifest, root)
    out = EvalSet(root=root, manifest=manifest, raw=[], items=[])
    for index, shard in enumerate(manifest.shards):
        for raw, _ in iter_groups(root / shard.name, index):
            if limit is not None and len(out.raw) >= limit:
                return out
            out.raw.append(raw)
            item, reason = to_item(raw, tasks)
            if item is None:
                out.skipped[reason] += 1
            else:
                out.items.append(item)
    return out
