"""A small corpus in all four formats with the hostile inputs of issue #23 planted."""

from __future__ import annotations

import io
import json
import os
import shutil
import tarfile
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

CONTROL = "a red\x00 square\x07 on\x9b white"  # NUL, BEL and a C1 control
DECOMPOSED = "cafe\u0301 sign in a street"  # NFD: e + combining acute
EMPTY_ANSWER = [
    {"from": "human", "value": "<image>\nWhat is shown?"},
    {"from": "gpt", "value": "  "},
]


def png(seed: int) -> bytes:
    img = Image.new("RGB", (64, 48), (seed * 37 % 256, seed * 91 % 256, seed * 53 % 256))
    for x in range(0, 64, 4):
        for y in range(seed % 7, 48, 5):
            img.putpixel((x, y), (255 - seed % 256, (x * 4) % 256, (y * 5) % 256))
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def conv(answer: str) -> list[dict[str, str]]:
    return [{"from": "human", "value": "<image>\nDescribe it."}, {"from": "gpt", "value": answer}]


def _llava(root: Path) -> None:
    d = root / "llava"
    (d / "images").mkdir(parents=True)
    recs = []
    for i in range(6):
        (d / "images" / f"{i}.png").write_bytes(png(i))
    recs.append({"id": "dup", "image": "images/0.png", "conversations": conv("the first of two")})
    recs.append({"id": "ok1", "image": "images/1.png", "conversations": conv(CONTROL)})
    recs.append({"id": "dup", "image": "images/2.png", "conversations": conv("the second of two")})
    recs.append({"id": "empty", "image": "images/3.png", "conversations": EMPTY_ANSWER})
    recs.append({"id": "nfd", "image": "images/4.png", "conversations": conv(DECOMPOSED)})
    recs.append(
        {"id": "ok2", "image": "images/5.png", "conversations": conv("a plain blue circle")}
    )
    (d / "data.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))


def _tar(path: Path, members: dict[str, bytes]) -> None:
    with tarfile.open(path, "w") as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))


def _webdataset(root: Path) -> None:
    d = root / "wds"
    d.mkdir()
    members = {
        "w0.png": png(10), "w0.txt": CONTROL.encode(),
        "w1.png": png(11), "w1.json": json.dumps({"conversations": EMPTY_ANSWER}).encode(),
        "w2.png": png(12), "w2.txt": b"a green triangle near a tree",
    }  # fmt: skip
    _tar(d / "a.tar", members)
    shutil.copyfile(d / "a.tar", d / "b.tar")  # the same shard under a second name


def _parquet(root: Path) -> None:
    d = root / "pq"
    d.mkdir()
    table = pa.table(
        {
            "id": ["p0", "p1", "p0", "p2"],
            "image": [png(20), png(21), png(22), png(23)],
            "caption": [CONTROL, None, "repeated id, later row", "an orange star"],
            "conversations": [None, json.dumps(EMPTY_ANSWER), None, None],
        }
    )
    pq.write_table(table, d / "rows.parquet")


def _folder(root: Path) -> None:
    d = root / "folder"
    (d / "real").mkdir(parents=True)
    for i in range(3):
        (d / "real" / f"f{i}.png").write_bytes(png(30 + i))
    (d / "real" / "f0.txt").write_text(CONTROL)
    (d / "real" / "f1.json").write_text(json.dumps({"conversations": EMPTY_ANSWER}))
    (d / "real" / "f2.txt").write_text("a purple hexagon on grass")
    os.symlink(d / "real", d / "linked", target_is_directory=True)
    os.symlink(d / "nowhere", d / "dangling")


RECIPE = """\
name: hostile
stage: hostile
seed: 1
tokenizer: {tok}
image_tokens: {{min_pixels: 3136, max_pixels: 12544}}
sources:
  - {{name: lv, path: "{root}/llava", format: llava, category: caption}}
  - {{name: wd, path: "{root}/wds", format: webdataset, category: caption, options: {{prefer: caption}}}}
  - {{name: pq, path: "{root}/pq", format: parquet, category: caption, options: {{prefer: caption, control_chars: drop}}}}
  - {{name: fd, path: "{root}/folder", format: folder, category: caption}}
operators:
  - {{op: image_decode, params: {{max_pixels_cap: 64000000}}}}
dedup: {{exact: true, near: {{enabled: false}}}}
shards: {{max_samples: 64, max_bytes: 67108864}}
"""


def make_hostile(root: Path, tok: Path) -> Path:
    for make in (_llava, _webdataset, _parquet, _folder):
        make(root)
    recipe = root / "hostile.yaml"
    recipe.write_text(RECIPE.format(root=root, tok=tok))
    return recipe
