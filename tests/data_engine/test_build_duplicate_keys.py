"""A repeated sample key is a counted drop (read/duplicate_key), first occurrence kept."""

from __future__ import annotations

import pyarrow.parquet as pq

from mindvl.data_engine.pipeline.duplicate_keys import read_order
from mindvl.data_engine.pipeline.parts import finalize_bucket, write_part
from mindvl.data_engine.pipeline.rows import to_table
from mindvl.data_engine.record import Candidate


def _cand(key: str, order: int, drop: str | None = None) -> Candidate:
    c = Candidate(key=key, source="s", category="caption", raw_id=key, images=[b"img"])
    c.caption, c.read_order = "a caption", order
    if drop:
        c.drop("filter", "text_length", drop)
    return c


def test_first_occurrence_is_the_record_whatever_its_fate(tmp_path):
    parts = tmp_path / "parts"
    # unit 0 and unit 1 each hold key "a"; unit 1 holds "c" twice
    kept = [_cand("a", read_order(1, 0)), _cand("b", read_order(0, 1)),
            _cand("c", read_order(1, 1)), _cand("c", read_order(1, 2))]  # fmt: skip
    dropped = [_cand("a", read_order(0, 0), "too_short")]
    # two batches with the same keys (a shard copied under a second name) stay two parts
    write_part(to_table(kept[:1]), str(parts / "kept"), 1)
    write_part(to_table([_cand("a", read_order(2, 0))]), str(parts / "kept"), 1)
    write_part(to_table(kept[1:]), str(parts / "kept"), 1)
    write_part(to_table(dropped), str(parts / "dropped"), 1)
    assert len(list((parts / "kept" / "bucket-00000").glob("*.parquet"))) == 3

    counts = finalize_bucket(
        str(parts / "kept" / "bucket-00000"), str(parts / "dropped" / "bucket-00000"),
        str(tmp_path / "kept.parquet"), str(tmp_path / "dropped.parquet"), {"s": "llava"},
    )  # fmt: skip
    assert counts == (2, 4)
    k = pq.read_table(tmp_path / "kept.parquet").to_pylist()
    assert [(r["key"], r["read_order"]) for r in k] == [("b", 1), ("c", read_order(1, 1))]
    d = pq.read_table(tmp_path / "dropped.parquet").to_pylist()
    assert [
        (r["key"], r["read_order"], r["drop_stage"], r["drop_op"], r["drop_reason"]) for r in d
    ] == [
        ("a", 0, "filter", "text_length", "too_short"),
        ("a", read_order(1, 0), "read", "llava", "duplicate_key"),
        ("a", read_order(2, 0), "read", "llava", "duplicate_key"),
        ("c", read_order(1, 2), "read", "llava", "duplicate_key"),
    ]
    assert all(r["images"] == [] for r in d[1:])
    assert not (parts / "kept" / "bucket-00000").exists()

    # the rule is idempotent: finalising the marked rows again changes nothing
    write_part(pq.read_table(tmp_path / "kept.parquet"), str(parts / "kept"), 1)
    write_part(pq.read_table(tmp_path / "dropped.parquet"), str(parts / "dropped"), 1)
    again = finalize_bucket(
        str(parts / "kept" / "bucket-00000"), str(parts / "dropped" / "bucket-00000"),
        str(tmp_path / "k2.parquet"), str(tmp_path / "d2.parquet"), {"s": "llava"},
    )  # fmt: skip
    assert again == counts
    assert pq.read_table(tmp_path / "d2.parquet").equals(
        pq.read_table(tmp_path / "dropped.parquet")
    )
