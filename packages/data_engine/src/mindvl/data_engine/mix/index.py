"""``index.parquet``: one row per sample in shard order, for diffs and audits without
opening the shards."""

from __future__ import annotations

from pathlib import Path

from mindvl.common.sample import Sample

INDEX_SCHEMA_FIELDS = (
    ("key", "string"),
    ("origin_key", "string"),
    ("source", "string"),
    ("category", "string"),
    ("shard", "string"),
    ("image_tokens", "int64"),
    ("text_tokens", "int64"),
    ("phash", "string"),  # the images' perceptual hashes, comma-joined
    ("caption_provenance", "string"),  # JSON, or null
)


def index_schema():
    import pyarrow as pa

    return pa.schema([(n, getattr(pa, t)()) for n, t in INDEX_SCHEMA_FIELDS])


def index_row(sample: Sample, shard: str) -> dict:
    prov = sample.caption_provenance
    return {
        "key": sample.key,
        "origin_key": sample.origin_key,
        "source": sample.source,
        "category": sample.category,
        "shard": shard,
        "image_tokens": sample.tokens.image,
        "text_tokens": sample.tokens.text,
        "phash": ",".join(im.phash or "" for im in sample.images) or None,
        "caption_provenance": None if prov is None else prov.model_dump_json(),
    }


def write_index(path: Path, rows: list[dict]) -> None:
    """Write atomically; the same rows give the same bytes."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pylist(rows, schema=index_schema())
    tmp = path.with_name(f".{path.name}.tmp")
    pq.write_table(table, tmp, compression="zstd", row_group_size=1 << 20)
    tmp.replace(path)
