"""``mindvl data train-quality``: train the fastText classifier the ``quality`` operator uses.

Input: JSONL lines ``{"text": ..., "label": "good"|"bad"}`` or fastText lines
``__label__good some text``. fastText's default ``bucket=2000000`` makes a ~128 MB file
for a tiny model; ``bucket=10000`` keeps it near 0.6 MB and ``--quantize`` near 0.1 MB,
which is what a data build wants to ship around.

fastText initialises its input matrix in ten blocks, one per training thread, so with
fewer than ten threads part of it keeps whatever memory held before: with fasttext-numpy2
0.10 we saw "Encountered NaN" in up to 70% of small runs and wildly varying models at
1-4 threads, none at 10. So training always uses ``TRAIN_THREADS`` = 10 threads (cheap:
the data is small); hogwild updates make models close but not bit-identical across runs.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import click

from mindvl.common.errors import UserError
from mindvl.data_engine.ops.quality import BAD, GOOD, LABEL_PREFIX, quality_text

TRAIN_THREADS = 10  # see the module docstring: fewer leave the input matrix partly uninitialised
# Even at 10 threads a run rarely ends in "Encountered NaN" (seen once in the quantize step
# of a CI run); training is then repeated with the next seeds before it counts as failed.
TRAIN_ATTEMPTS = 3


@dataclass(frozen=True)
class TrainedQuality:
    path: Path
    size_bytes: int
    examples: int
    labels: dict[str, int]
    accuracy: float | None  # on --valid, if given


def read_labelled(path: Path) -> list[tuple[str, str]]:
    """(label, text) pairs from JSONL or fastText-format lines; errors name the line."""
    if not path.is_file():
        raise UserError(f"train-quality: file not found: {path}")
    pairs = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        if line.startswith(LABEL_PREFIX):
            label, _, text = line.partition(" ")
            label = label.removeprefix(LABEL_PREFIX)
        else:
            try:
                row = json.loads(line)
                label, text = row["label"], row["text"]
            except (json.JSONDecodeError, KeyError, TypeError):
                raise UserError(
                    f'{path}:{n}: expected {{"text", "label"}} JSON or a __label__ line'
                ) from None
        if label not in (GOOD, BAD):
            raise UserError(f"{path}:{n}: label {label!r} is not {GOOD!r} or {BAD!r}")
        text = quality_text(str(text))
        if text:
            pairs.append((label, text))
    return pairs


def write_fasttext(pairs: list[tuple[str, str]], path: str) -> None:
    with open(path, "w", encoding="utf-8") as f:
        for label, text in pairs:
            f.write(f"{LABEL_PREFIX}{label} {text}\n")


def _fit(fasttext, data: str, seed: int, quantize: bool, params: dict):
    """One supervised fastText run on ``data`` (and its quantisation)."""
    model = fasttext.train_supervised(
        input=data, minn=2, maxn=4, seed=seed, thread=TRAIN_THREADS, verbose=0, **params
    )
    if quantize:
        model.quantize(input=data, retrain=False, qnorm=True, dsub=2)
    return model


def train_quality_model(
    train: Path,
    out: Path,
    *,
    valid: Path | None = None,
    bucket: int = 10_000,
    dim: int = 16,
    epoch: int = 25,
    lr: float = 0.5,
    word_ngrams: int = 2,
    quantize: bool = True,
    seed: int = 0,
) -> TrainedQuality:
    import fasttext

    pairs = read_labelled(train)
    labels = {lab: sum(1 for p, _ in pairs if p == lab) for lab in (GOOD, BAD)}
    if min(labels.values()) == 0:
        raise UserError(f"train-quality: need both {GOOD!r} and {BAD!r} examples, got {labels}")
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        data = os.path.join(tmp, "train.txt")
        write_fasttext(pairs, data)
        params = dict(dim=dim, epoch=epoch, lr=lr, wordNgrams=word_ngrams, bucket=bucket)
        for attempt in range(TRAIN_ATTEMPTS):
            try:
                model = _fit(fasttext, data, seed + attempt, quantize, params)
                break
            except RuntimeError as err:  # "Encountered NaN.": small data, a high lr, hogwild
                failure = err
        else:
            raise UserError(
                f"train-quality: training failed {TRAIN_ATTEMPTS} times ({failure}); "
                "try a lower --lr"
            )
        model.save_model(str(out))
        accuracy = None
        if valid is not None:
            held = read_labelled(valid)
            hits = sum(model.predict(t)[0][0] == LABEL_PREFIX + lab for lab, t in held)
            accuracy = hits / max(1, len(held))
    return TrainedQuality(out, out.stat().st_size, len(pairs), labels, accuracy)


@click.command("train-quality")
@click.option("--train", "train", type=click.Path(path_type=Path), required=True)
@click.option(
    "--out", type=click.Path(path_type=Path), required=True, help="model file (.ftz/.bin)"
)
@click.option("--valid", type=click.Path(path_type=Path), default=None, help="held-out examples")
@click.option("--bucket", type=click.IntRange(min=0), default=10_000, show_default=True)
@click.option("--dim", type=click.IntRange(min=2), default=16, show_default=True)
@click.option("--epoch", type=click.IntRange(min=1), default=25, show_default=True)
@click.option("--lr", type=float, default=0.5, show_default=True)
@click.option("--word-ngrams", type=click.IntRange(min=1), default=2, show_default=True)
@click.option("--quantize/--no-quantize", default=True, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
def train_quality(train: Path, out: Path, valid: Path | None, **kw) -> None:
    """Train the quality classifier from labelled good/bad texts."""
    result = train_quality_model(train, out, valid=valid, **kw)
    line = (
        f"wrote {result.path} ({result.size_bytes / 1024:.1f} KiB) from {result.examples} examples "
        f"(good {result.labels[GOOD]}, bad {result.labels[BAD]})"
    )
    if result.accuracy is not None:
        line += f"; held-out accuracy {result.accuracy:.3f}"
    click.echo(line)
