"""English language ID on labelled captions: plain fastText top-1 vs the language_id operator.

Reads ops/data/language_captions.tsv (hand-written captions, 11 languages, short and long;
the design was tuned on it) and language_captions_holdout.tsv (written afterwards, only
measured), writes bench/results/language_id.json with, per subset (short = at most 6 words and, for
unspaced scripts, at most 12 characters): English recall / precision / F1 of each method,
and top-language accuracy over all languages.
Usage: uv run python bench/language_id.py
"""

from __future__ import annotations

import json
import time
from collections import Counter
from importlib.resources import files
from pathlib import Path

from mindvl.data_engine.ops.language_id import LanguageIdParams, decide, top1


def load_captions(name: str = "language_captions.tsv") -> list[tuple[str, str]]:
    text = (files("mindvl.data_engine.ops") / "data" / name).read_text()
    rows = [line.split("\t") for line in text.splitlines() if line and not line.startswith("#")]
    return [(lang, caption) for lang, caption in rows]


def is_short(text: str) -> bool:
    words = text.split()
    return len(words) <= 6 and (len(words) > 1 or len(text) <= 12)


def english_metrics(labels: list[str], keep: list[bool]) -> dict[str, float]:
    tp = sum(k and lab == "en" for lab, k in zip(labels, keep, strict=True))
    fp = sum(k and lab != "en" for lab, k in zip(labels, keep, strict=True))
    fn = sum((not k) and lab == "en" for lab, k in zip(labels, keep, strict=True))
    recall = tp / max(1, tp + fn)
    precision = tp / max(1, tp + fp)
    f1 = 2 * recall * precision / max(1e-9, recall + precision)
    return {"recall": round(recall, 4), "precision": round(precision, 4), "f1": round(f1, 4)}


def evaluate(rows: list[tuple[str, str]], params: LanguageIdParams) -> dict:
    labels = [lang for lang, _ in rows]
    base = [top1(text) for _, text in rows]
    ours = [decide(text, params) for _, text in rows]

    def accuracy(pred: list[str]) -> float:
        return round(sum(p == lab for p, lab in zip(pred, labels, strict=True)) / len(rows), 4)

    return {
        "n": len(rows),
        "languages": dict(sorted(Counter(labels).items())),
        "english": {
            "top1": english_metrics(labels, [lang == "en" for lang, _ in base]),
            f"top1_conf>={params.min_confidence}": english_metrics(
                labels, [lang == "en" and p >= params.min_confidence for lang, p in base]
            ),
            "language_id_op": english_metrics(labels, [keep for keep, _, _ in ours]),
        },
        "top_language_accuracy": {
            "top1": accuracy([lang for lang, _ in base]),
            "language_id_op": accuracy([best for _, best, _ in ours]),
        },
    }


def main() -> None:
    params = LanguageIdParams(languages=["en"])
    start, n_texts = time.perf_counter(), 0
    result: dict = {"params": params.model_dump()}
    for split, name in (
        ("dev", "language_captions.tsv"),
        ("holdout", "language_captions_holdout.tsv"),
    ):
        rows = load_captions(name)
        n_texts += 2 * len(rows)
        subsets = {
            "short": [r for r in rows if is_short(r[1])],
            "long": [r for r in rows if not is_short(r[1])],
            "all": rows,
        }
        result[split] = {"file": name} | {k: evaluate(v, params) for k, v in subsets.items() if v}
        for subset in subsets.keys() & result[split].keys():
            res = result[split][subset]
            print(split, subset, res["n"], json.dumps(res["english"]))
    result["ms_per_text"] = round(1000 * (time.perf_counter() - start) / n_texts, 3)
    out = Path(__file__).parent / "results" / "language_id.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
