"""Filter operators against the corpus kit's planted faults (truth.parquet).

Per fault class: recall = planted samples the owning operator drops with the expected
reason; precision = those drops over drops of that reason among planted-class and clean
samples (a sample with another planted fault, e.g. a 2000x20 ``extreme_aspect`` image that
is also under ``min_side``, is neither a hit nor a false alarm). Each operator runs on its
own after image_decode, so an earlier filter cannot hide a later one's misses. The kit's
``low_info`` images are dedup hard negatives (icons, sparse documents, line art), i.e. valid
samples: low_information must keep almost all of them.
"""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest

from mindvl.data_engine.ops.registry import build_operator
from mindvl.data_engine.record import Candidate
from mindvl.data_engine.synth.kit import generate_corpus

OPS = {
    "image_decode": {},
    "image_size": {"min_side": 32},
    "aspect_ratio": {"max_ratio": 10},
    "low_information": {},  # default floor
    "text_length": {"min_chars": 1, "max_chars": 4000},
    "language_id": {"languages": ["en"]},
}
IMAGE_OPS = ("image_size", "aspect_ratio", "low_information")  # need decoded features
OWNERS = {  # fault class -> (operator, reason prefix)
    "truncated": ("image_decode", "undecodable"),
    "zero_byte": ("image_decode", "empty_image"),
    "huge_header": ("image_decode", "decompression_bomb"),
    "tiny": ("image_size", "too_small"),
    "extreme_aspect": ("aspect_ratio", "aspect_ratio"),
    "empty_caption": ("text_length", "too_short"),
    "long_caption": ("text_length", "too_long"),
    "non_english_caption": ("language_id", "language:"),
}
CORRUPT = ("truncated", "zero_byte", "huge_header")


def run_ops(row: dict, ops: dict) -> dict[str, str | None]:
    c = Candidate(
        key=row["id"], source="kit", category="c", raw_id=row["id"],
        images=[row["image"] or b""], caption=row["caption"],
        conversation=json.loads(row["conversations"] or "null"),
    )  # fmt: skip
    reasons = {"image_decode": ops["image_decode"](c)}
    for name in OPS.keys() - {"image_decode"}:
        decoded = reasons["image_decode"] is None
        reasons[name] = ops[name](c) if decoded or name not in IMAGE_OPS else None
    return reasons


@pytest.fixture(scope="module")
def measured(tmp_path_factory) -> dict[str, dict[str, float]]:
    root = tmp_path_factory.mktemp("kit") / "corpus"
    generate_corpus(root, 200, "parquet", faults=0.4, seed=11)
    truth = {r["id"]: set(r["faults"]) for r in pq.read_table(root / "truth.parquet").to_pylist()}
    ops = {
        name: build_operator(name, params, "test", i)
        for i, (name, params) in enumerate(OPS.items())
    }
    reasons = {}
    for part in sorted(root.glob("*/part-*.parquet")):
        for row in pq.read_table(part).to_pylist():
            reasons[row["id"]] = run_ops(row, ops)
    clean = {i for i, faults in truth.items() if faults <= {"low_info"}}
    result = {}
    for fault, (op, prefix) in OWNERS.items():
        actual = {i for i, faults in truth.items() if fault in faults}
        flagged = {i for i, r in reasons.items() if (r[op] or "").startswith(prefix)}
        hits, false_alarms = len(actual & flagged), len(clean & flagged)
        result[fault] = {
            "n": len(actual),
            "recall": hits / max(1, len(actual)),
            "precision": hits / max(1, hits + false_alarms),
        }
    hard = {i for i, faults in truth.items() if faults == {"low_info"}}
    dropped = {i for i in hard if reasons[i]["low_information"] is not None}
    result["low_info_hard_negatives"] = {"n": len(hard), "dropped_share": len(dropped) / len(hard)}
    dropped_clean = {i for i in clean - hard if reasons[i]["low_information"] is not None}
    result["low_information_on_clean"] = {"n": len(clean - hard), "dropped": len(dropped_clean)}
    print(json.dumps(result, indent=1))
    return result


def test_corrupt_files_all_caught(measured) -> None:
    for fault in CORRUPT:
        assert measured[fault]["n"] > 0, fault
        assert measured[fault]["recall"] == 1.0, (fault, measured[fault])
        assert measured[fault]["precision"] == 1.0, (fault, measured[fault])


@pytest.mark.parametrize("fault", ["tiny", "extreme_aspect", "empty_caption", "long_caption"])
def test_geometry_and_length_faults(measured, fault) -> None:
    assert measured[fault]["n"] > 0
    assert measured[fault]["recall"] == 1.0, measured[fault]
    assert measured[fault]["precision"] == 1.0, measured[fault]


def test_language_and_low_information(measured) -> None:
    assert measured["non_english_caption"]["recall"] >= 0.9, measured["non_english_caption"]
    assert measured["non_english_caption"]["precision"] >= 0.9, measured["non_english_caption"]
    assert measured["low_info_hard_negatives"]["dropped_share"] <= 0.05
    assert measured["low_information_on_clean"]["dropped"] == 0
