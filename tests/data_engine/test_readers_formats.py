"""Readers on tiny inline corpora: every record leaves as exactly one kept or dropped candidate."""

from __future__ import annotations

import io
import json
import os
import tarfile
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mindvl.common.errors import UserError
from mindvl.common.recipe import SourceSpec
from mindvl.common.sample import make_key
from mindvl.data_engine.readers import plan_source, read_unit

JPEG = b"\xff\xd8\xff\xe0" + b"jpeg-bytes" * 3
PNG = b"\x89PNG\r\n\x1a\n" + b"png-bytes"
CONV = [{"from": "human", "value": "<image>\nWhat is it?"}, {"from": "gpt", "value": "A cat."}]


def read_all(path: Path | str, fmt: str, **options) -> list:
    spec = SourceSpec(name="src", path=str(path), format=fmt, category="cat", options=options)
    units, _ = plan_source(spec)
    return [c for u in units for c in read_unit(u)]


def reasons(cands) -> Counter:
    return Counter(c.drop_reason for c in cands)


def write_llava(root: Path, lines: list[bytes]) -> Path:
    (root / "images").mkdir(parents=True)
    (root / "images" / "a.jpg").write_bytes(JPEG)
    (root / "images" / "b.png").write_bytes(PNG)
    (root / "data.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    return root


def rec(**kw) -> bytes:
    return json.dumps(kw).encode()


def test_llava_roles_images_and_counted_drops(tmp_path):
    outside = tmp_path / "secret.jpg"
    outside.write_bytes(JPEG)
    root = write_llava(
        tmp_path / "src",
        [
            rec(id="a", image="images/a.jpg", conversations=CONV, caption="cap a"),
            rec(id="b", image="images/b.png", caption="A png."),
            b'{"id": "broken", "image": ',  # bad JSON
            rec(id="m", image="images/missing.jpg", caption="x"),
            rec(id="esc", image="../secret.jpg", caption="x"),
            rec(id="abs", image=str(outside), caption="x"),
            b'{"id": "latin", "caption": "Caf\xe9"}',
            rec(
                id="noturns", image="images/a.jpg", conversations=[{"from": "robot", "value": "?"}]
            ),
        ],
    )
    cands = read_all(root, "llava")
    by_id = {c.raw_id: c for c in cands}
    assert len(cands) == 8
    a = by_id["a"]
    assert (
        a.key == make_key("src", "a")
        and a.images[0].data == JPEG
        and len(a.images) == 1
        and a.caption is None
    )
    assert [t["role"] for t in a.conversation] == ["user", "assistant"]
    assert (
        by_id["b"].caption == "A png."
        and by_id["b"].images[0].data == PNG
        and len(by_id["b"].images) == 1
    )
    assert by_id["m"].drop_reason == "missing_image"
    assert by_id["esc"].drop_reason == "unsafe_path"
    assert by_id["abs"].drop_reason == "unsafe_path"
    assert by_id["latin"].drop_reason == "non_utf8_text"
    assert by_id["noturns"].drop_reason == "bad_conversation"
    bad = [c for c in cands if c.drop_reason == "bad_json"]
    assert len(bad) == 1 and bad[0].raw_id.startswith("data.jsonl@")
    assert all(
        c.drop_stage == "read" and c.drop_op == "llava" and not c.images for c in cands if c.dropped
    )


def test_llava_prefer_caption(tmp_path):
    root = write_llava(
        tmp_path / "s", [rec(id="a", image="images/a.jpg", conversations=CONV, caption="cap a")]
    )
    (c,) = read_all(root, "llava", prefer="caption")
    assert c.caption == "cap a" and c.conversation is None


def test_llava_byte_range_chunks_neither_lose_nor_repeat_lines(tmp_path):
    lines = [rec(id=f"r{i}", image="images/a.jpg", caption="x" * (i % 7)) for i in range(50)]
    root = write_llava(tmp_path / "s", lines)
    whole = read_all(root, "llava")
    spec = SourceSpec(
        name="src", path=str(root), format="llava", category="cat", options={"chunk_bytes": 37}
    )
    units, _ = plan_source(spec)
    assert len(units) > 20
    chunked = [c for u in units for c in read_unit(u)]
    assert [c.key for c in chunked] == [c.key for c in whole]
    assert len({c.key for c in chunked}) == 50


def _tar(path: Path, members: list[tuple[tarfile.TarInfo, bytes | None]]) -> Path:
    with tarfile.open(path, "w") as tf:
        for info, data in members:
            if data is not None:
                info.size = len(data)
                tf.addfile(info, io.BytesIO(data))
            else:
                tf.addfile(info)
    return path


def _file(name: str, data: bytes) -> tuple[tarfile.TarInfo, bytes]:
    return tarfile.TarInfo(name), data


def _special(name: str, kind: bytes, link: str = "") -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, link
    return info, None


def test_webdataset_groups_and_hostile_members(tmp_path):
    (tmp_path / "shards").mkdir()
    _tar(
        tmp_path / "shards" / "shard-00000.tar",
        [
            _file("s1.jpg", JPEG),
            _file("s1.txt", b"A red square."),
            _file("s2.png", PNG),
            _file("s2.json", json.dumps({"conversations": CONV, "caption": "c"}).encode()),
            _file("../evil.jpg", JPEG),
            _file("/etc/abs.jpg", JPEG),
            _special("link.jpg", tarfile.SYMTYPE, "/etc/passwd"),
            _special("hard.jpg", tarfile.LNKTYPE, "s1.jpg"),
            _special("dev.jpg", tarfile.CHRTYPE),
            _file("s3.txt", b"no image here"),
            _file("s4.jpg", JPEG),
            _file("s4.txt", b"\xff\xfe bad utf8"),
            _file("s5.jpg", JPEG),
            _file("s5.json", b"{not json"),
        ],
    )
    cands = read_all(tmp_path / "shards" / "*.tar", "webdataset")
    by_id = {c.raw_id: c for c in cands}
    assert (
        by_id["s1"].caption == "A red square."
        and by_id["s1"].images[0].data == JPEG
        and len(by_id["s1"].images) == 1
    )
    assert by_id["s2"].conversation[1] == {"role": "assistant", "content": "A cat."}
    assert by_id["s3"].drop_reason == "missing_image"
    assert by_id["s4"].drop_reason == "non_utf8_text"
    assert by_id["s5"].drop_reason == "bad_json"
    unsafe = [c for c in cands if c.drop_reason == "unsafe_member"]
    assert len(unsafe) == 5 and all(c.drop_op == "webdataset" and not c.images for c in unsafe)
    assert len(cands) == 10


def test_webdataset_truncated_tar_is_a_counted_drop(tmp_path):
    good = _tar(tmp_path / "a.tar", [_file(f"k{i}.jpg", JPEG * 200) for i in range(4)])
    data = good.read_bytes()
    (tmp_path / "cut").mkdir()
    (tmp_path / "cut" / "a.tar").write_bytes(data[: len(data) // 2])
    cands = read_all(tmp_path / "cut", "webdataset")
    assert cands and any(c.drop_reason == "truncated_tar" for c in cands)


def test_parquet_reader(tmp_path):
    table = pa.table(
        {
            "id": ["p0", "p1", None],
            "image": [JPEG, None, PNG],
            "image_format": ["jpg", "jpg", "png"],
            "caption": ["cap", "cap", "third"],
            "conversations": [json.dumps(CONV), None, "not json"],
        }
    )
    (tmp_path / "pq").mkdir()
    pq.write_table(table, tmp_path / "pq" / "part-00000.parquet", row_group_size=2)
    cands = read_all(tmp_path / "pq", "parquet")
    assert len(cands) == 3
    assert cands[0].raw_id == "p0" and cands[0].conversation[0]["role"] == "user"
    assert cands[1].drop_reason == "missing_image"
    assert (
        cands[2].raw_id == "part-00000.parquet#rg1:0" and cands[2].drop_reason == "bad_conversation"
    )


def test_folder_reader_with_sidecars_and_symlink_escape(tmp_path):
    root = tmp_path / "f"
    (root / "sub").mkdir(parents=True)
    (root / "x.jpg").write_bytes(JPEG)
    (root / "x.txt").write_text("A caption.")
    (root / "sub" / "y.png").write_bytes(PNG)
    (root / "sub" / "y.json").write_text(json.dumps({"conversations": CONV}))
    (root / "z.txt").write_text("orphan caption")
    (root / "w.jpg").write_bytes(JPEG)
    (root / "w.txt").write_bytes(b"\xe9t\xe9")
    secret = tmp_path / "secret.jpg"
    secret.write_bytes(JPEG)
    os.symlink(secret, root / "s.jpg")
    (root / "s.txt").write_text("points outside")
    cands = read_all(root, "folder")
    by_id = {c.raw_id: c for c in cands}
    assert (
        by_id["x"].caption == "A caption."
        and by_id["x"].images[0].data == JPEG
        and len(by_id["x"].images) == 1
    )
    assert by_id["sub/y"].conversation[0]["content"].startswith("<image>")
    assert by_id["z"].drop_reason == "missing_image"
    assert by_id["w"].drop_reason == "non_utf8_text"
    assert by_id["s"].drop_reason == "unsafe_path" and not by_id["s"].images
    assert len(cands) == 5


def test_missing_source_and_empty_glob_fail_before_work(tmp_path):
    with pytest.raises(UserError, match="path not found"):
        read_all(tmp_path / "nope", "llava")
    with pytest.raises(UserError, match="matches nothing"):
        read_all(tmp_path / "*.tar", "webdataset")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="no parquet input"):
        read_all(tmp_path / "empty", "parquet")
    with pytest.raises(UserError, match=r"source src: options\.colour: unknown field \(allowed: "):
        read_all(tmp_path, "llava", colour="red")
