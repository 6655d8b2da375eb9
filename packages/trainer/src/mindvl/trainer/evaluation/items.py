"""The evaluation set: a verified shard build read once into memory.

Every sample read feeds the validation loss; conversation samples with exactly one image
also become scored items, one per user turn that the next assistant turn answers: the
question is that user turn without ``<image>``, the reference is the answer. Each item is
asked on its own, with the image and without the earlier turns (as VQA sets score several
questions per image), so a held-out set written with several questions per image gives
several items per sample. Held-out sets are small, so keeping their encoded bytes in
memory is the simple choice.
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
    turn: int = 0  # which question of its sample (0: the first)


@dataclass
class EvalSet:
    root: Path
    manifest: RatioManifest
    raw: list[RawSample]  # every sample read, in shard order (validation loss)
    items: list[EvalItem]  # the scored subset
    skipped: Counter = field(default_factory=Counter)  # not scored, by reason


def question_answers(sample: Sample) -> list[tuple[str, str]]:
    """(question, reference) for every user turn followed by an assistant turn, in order."""
    turns = sample.conversation or []
    out = []
    for i, turn in enumerate(turns[:-1]):
        if turn.role == "user" and turns[i + 1].role == "assistant":
            question = " ".join(turn.content.replace(IMAGE_PLACEHOLDER, " ").split())
            out.append((question, turns[i + 1].content.strip()))
    return out


def to_items(raw: RawSample, tasks: TaskSet) -> tuple[list[EvalItem], str | None]:
    """The sample's scored items, or none and the reason it is not scored."""
    if "json" not in raw.members:
        return [], "no json member"
    sample = Sample.from_json_bytes(raw.members["json"])
    if sample.conversation is None:
        return [], "caption sample"
    if len(sample.images) != 1:
        return [], "not exactly one image"
    qas = question_answers(sample)
    if not qas:
        return [], "no user turn answered by the assistant"
    image = sample.images[0]
    if image.member not in raw.members:
        return [], "missing image member"
    items = [
        EvalItem(
            key=sample.key,
            category=sample.category,
            task=tasks.classify(question),
            question=question,
            reference=reference,
            image=raw.members[image.member],
            size=(image.width, image.height),
            turn=turn,
        )
        for turn, (question, reference) in enumerate(qas)
    ]
    return items, None


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
            items, reason = to_items(raw, tasks)
            if reason is not None:
                out.skipped[reason] += 1
            out.items += items
    return out
