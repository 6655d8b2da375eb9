"""Text-only instruction conversations for the SFT stage (no image), with exact answers.

Always written as LLaVA JSONL (``DIR/text/data.jsonl``, records without an ``image`` key),
whatever ``--format`` the image categories use: the other raw formats carry one image per
record. Questions come from a few fixed templates so answers can be scored exactly.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

WORDS = ("circle", "square", "triangle", "chart", "window", "garden", "yellow", "number",
         "letter", "shape", "answer", "purple", "orange", "bottle", "river")  # fmt: skip
CATEGORY = "text"


def render_text_task(rng: np.random.Generator) -> tuple[str, str]:
    kind = int(rng.integers(4))
    a, b = int(rng.integers(0, 20)), int(rng.integers(0, 20))
    word = WORDS[int(rng.integers(len(WORDS)))]
    if kind == 0:
        return f"What is {a} plus {b}?", str(a + b)
    if kind == 1:
        hi, lo = max(a, b), min(a, b)
        return f"What is {hi} minus {lo}?", str(hi - lo)
    if kind == 2:
        return f"What is the first letter of the word {word}?", word[0]
    return f"How many letters does the word {word} have?", str(len(word))


def text_only_rows(n: int, seed: int, heldout: bool) -> list[dict[str, object]]:
    """``n`` LLaVA-style records; the seed stream differs for held-out sets."""
    rng = np.random.default_rng([seed, 1 if heldout else 0, 7919])
    prefix = "heldout-" if heldout else ""
    rows = []
    for i in range(n):
        question, answer = render_text_task(rng)
        rows.append({
            "id": f"{prefix}{CATEGORY}-{i:06d}",
            "conversations": [{"from": "human", "value": question}, {"from": "gpt", "value": answer}],
        })  # fmt: skip
    return rows


def write_text_only(root: Path, rows: list[dict[str, object]]) -> str:
    base = root / CATEGORY
    base.mkdir(parents=True, exist_ok=True)
    lines = [
        json.dumps(r, sort_keys=True, ensure_ascii=False, separators=(",", ":")) + "\n"
        for r in rows
    ]
    (base / "data.jsonl").write_text("".join(lines), encoding="utf-8")
    return f"{CATEGORY}/data.jsonl"


def truth_rows(rows: list[dict[str, object]], path: str) -> list[dict[str, object]]:
    return [
        {
            "id": r["id"],
            "category": CATEGORY,
            "format": "llava",
            "path": path,
            "image_format": "",
            "width": 0,
            "height": 0,
            "faults": [],
            "dup_group": -1,
            "dup_kind": "",
            "low_info": False,
            "question": r["conversations"][0]["value"],
            "answer": r["conversations"][1]["value"],
            "caption": "",
            "sha256": "",
        }  # fmt: skip
        for r in rows
    ]
