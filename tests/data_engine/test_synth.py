"""The corpus kit: layout per format, truth matches files, faults, duplicates, determinism, CLI."""

from __future__ import annotations

import hashlib
import io
import json
import struct
import tarfile
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from PIL import Image

from mindvl.common.cli import cli
from mindvl.data_engine.synth.canvas import SHAPE_COLOURS
from mindvl.data_engine.synth.faults import FAULT_CLASSES, huge_header_png, pick_fault
from mindvl.data_engine.synth.kit import generate_corpus
from mindvl.data_engine.synth.records import CATEGORIES, FORMATS
from mindvl.data_engine.synth.truth import TRUTH_COLUMNS

N, RATE, SEED = 120, 0.5, 11
KW = dict(n=N, faults=RATE, seed=SEED, min_side=48, max_side=160)


@pytest.fixture(scope="module")
def corpora(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("kit")
    for fmt in FORMATS:
        generate_corpus(root / fmt, fmt=fmt, **KW)
    return {fmt: root / fmt for fmt in FORMATS}


def truth(root: Path) -> dict[str, dict]:
    return {row["id"]: row for row in pq.read_table(root / "truth.parquet").to_pylist()}


def read_back(root: Path, fmt: str) -> dict[str, dict]:
    """Per id: image bytes (None if absent), raw caption bytes, conversations, holding path."""
    out: dict[str, dict] = {}
    for cat in CATEGORIES:
        base = root / cat
        if fmt == "llava":
            for line in (base / "data.jsonl").read_bytes().splitlines():
                obj = json.loads(line.decode("utf-8", "surrogateescape"))
                img = base / obj["image"]
                out[obj["id"]] = {
                    "image": img.read_bytes() if img.exists() else None,
                    "caption": obj["caption"].encode("utf-8", "surrogateescape"),
                    "conversations": obj["conversations"],
                    "path": f"{cat}/{obj['image']}",
                }
        elif fmt == "webdataset":
            for shard in sorted(base.glob("shard-*.tar")):
                with tarfile.open(shard) as tar:
                    for m in tar.getmembers():
                        key, ext = m.name.split(".", 1)
                        rec = out.setdefault(key, {"path": f"{cat}/{shard.name}"})
                        data = tar.extractfile(m).read()
                        if ext == "txt":
                            rec["caption"] = data
                        elif ext == "json":
                            rec["conversations"] = json.loads(data)["conversations"]
                        else:
                            rec["image"] = data
        elif fmt == "parquet":
            for part in sorted(base.glob("part-*.parquet")):
                for row in pq.read_table(part).to_pylist():
                    out[row["id"]] = {
                        "image": row["image"],
                        "caption": row["caption"].encode(),
                        "conversations": json.loads(row["conversations"]),
                        "path": f"{cat}/{part.name}",
                    }
        else:
            for side in sorted(base.glob("*.json")):
                key = side.stem
                images = [p for p in base.glob(f"{key}.*") if p.suffix not in (".json", ".txt")]
                out[key] = {
                    "image": images[0].read_bytes() if images else None,
                    "caption": (base / f"{key}.txt").read_bytes(),
                    "conversations": json.loads(side.read_bytes())["conversations"],
                }
    return out


@pytest.mark.parametrize("fmt", FORMATS)
def test_layout_and_truth_match_files(corpora, fmt):
    root = corpora[fmt]
    rows = truth(root)
    got = read_back(root, fmt)
    assert set(got) == set(rows)
    assert pq.read_schema(root / "truth.parquet").names == list(TRUTH_COLUMNS)
    assert json.loads((root / "kit.json").read_text())["format"] == fmt
    n_orig = sum(
        1 for r in rows.values() if r["dup_kind"] in ("", "original") and not r["low_info"]
    )
    assert n_orig == N
    for rid, row in rows.items():
        rec = got[rid]
        assert "." not in rid and rid.startswith(f"{row['category']}-")
        assert row["format"] == fmt and row["path"].startswith(f"{row['category']}/")
        assert rec["conversations"] == [
            {"from": "human", "value": f"<image>\n{row['question']}"},
            {"from": "gpt", "value": row["answer"]},
        ]
        if "missing_image" in row["faults"]:
            assert rec["image"] is None and row["sha256"] == ""
            assert not (root / row["path"]).exists()
            continue
        assert (root / row["path"]).is_file()
        assert hashlib.sha256(rec["image"]).hexdigest() == row["sha256"]
        if "non_utf8_caption" not in row["faults"]:
            assert rec["caption"].decode("utf-8") == row["caption"]
        if row["width"]:
            with Image.open(io.BytesIO(rec["image"])) as im:
                im.load()
                assert im.size == (row["width"], row["height"])
                assert {"JPEG": "jpg", "PNG": "png", "WEBP": "webp"}[im.format] == row[
                    "image_format"
                ]
        else:
            assert {"truncated", "zero_byte", "huge_header"} & set(row["faults"])


def test_webdataset_tar_is_canonical(corpora):
    for shard in sorted(corpora["webdataset"].glob("*/shard-*.tar")):
        with tarfile.open(shard) as tar:
            members = tar.getmembers()
        names = [m.name for m in members]
        assert names == sorted(names) and len(names) <= 3000
        assert all(m.mtime == 0 and m.uid == 0 and m.gid == 0 for m in members)
        assert all(m.uname == "" and m.gname == "" for m in members)


def test_faults_planted_at_rate_and_recorded(corpora):
    rows = truth(corpora["llava"]).values()
    originals = [r for r in rows if r["dup_kind"] in ("", "original") and not r["low_info"]]
    faulty = [r for r in originals if r["faults"]]
    assert 0.35 * N <= len(faulty) <= 0.65 * N
    assert all(len(r["faults"]) == 1 for r in faulty)
    assert {r["faults"][0] for r in faulty} == set(FAULT_CLASSES)
    by_fault = {r["faults"][0]: r for r in faulty}
    assert len(by_fault["long_caption"]["caption"]) > 5000
    assert by_fault["empty_caption"]["caption"] == ""
    assert by_fault["tiny"]["width"] <= 16 and by_fault["tiny"]["height"] <= 16
    ext = by_fault["extreme_aspect"]
    assert max(ext["width"], ext["height"]) / min(ext["width"], ext["height"]) >= 50
    for r in faulty:
        if r["faults"] == ["non_english_caption"]:
            assert r["answer"].startswith(("Die Antwort", "La réponse", "La respuesta", "答案是"))
            assert not r["caption"].startswith(("A ", "An ", "The "))
    # Large-sample check of the decision itself: rate and a uniform class choice.
    picks = [pick_fault(np.random.default_rng(i), 0.2, "llava") for i in range(5000)]
    hits = [p for p in picks if p]
    assert 900 <= len(hits) <= 1100
    assert min(Counter(hits).values()) >= 60
    # Containers that cannot reference an absent file get "truncated" instead.
    for fmt in ("webdataset", "parquet"):
        assert not any("missing_image" in r["faults"] for r in truth(corpora[fmt]).values())


def test_huge_header_png_claims_huge_size_without_decoding(corpora, monkeypatch):
    data = huge_header_png(np.random.default_rng(0))
    assert len(data) < 200
    with pytest.raises(Image.DecompressionBombError):
        Image.open(io.BytesIO(data))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", None)
    assert Image.open(io.BytesIO(data)).size == (100_000, 100_000)
    assert struct.unpack(">II", data[16:24]) == (100_000, 100_000)
    rows = [r for r in truth(corpora["folder"]).values() if "huge_header" in r["faults"]]
    assert rows
    for row in rows:
        planted = (corpora["folder"] / row["path"]).read_bytes()
        assert row["image_format"] == "png" and row["path"].endswith(".png")
        assert Image.open(io.BytesIO(planted)).size == (100_000, 100_000)


@pytest.mark.parametrize("fmt", ["llava", "folder", "webdataset"])
def test_non_utf8_captions_are_invalid_bytes(corpora, fmt):
    rows = truth(corpora[fmt])
    got = read_back(corpora[fmt], fmt)
    bad = [rid for rid, r in rows.items() if "non_utf8_caption" in r["faults"]]
    assert bad
    for rid in bad:
        with pytest.raises(UnicodeDecodeError):
            got[rid]["caption"].decode("utf-8")
        assert "\ufffd" in rows[rid]["caption"]
    if fmt == "llava":
        lines = b"".join(p.read_bytes() for p in corpora[fmt].glob("*/data.jsonl")).splitlines()
        assert sum(1 for line in lines if not _is_utf8(line)) == len(bad)


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def test_parquet_non_utf8_is_replacement_garbage(corpora):
    rows = [r for r in truth(corpora["parquet"]).values() if "non_utf8_caption" in r["faults"]]
    assert rows and all(r["caption"].count("\ufffd") >= 3 for r in rows)


def _pixels(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as im:
        return np.asarray(im.convert("RGBA"), dtype=np.int16)


def test_duplicate_groups_are_what_they_claim(corpora):
    rows = list(truth(corpora["parquet"]).values())
    got = read_back(corpora["parquet"], "parquet")
    groups: dict[int, list[dict]] = {}
    for r in rows:
        if r["dup_group"] >= 0:
            groups.setdefault(r["dup_group"], []).append(r)
    assert len(groups) >= N * RATE / 4
    kinds = Counter(r["dup_kind"] for r in rows)
    for kind in ("exact", "near:resize", "near:recompress", "near:crop", "near:color_jitter"):
        assert kinds[kind] > 0, kind
    assert kinds["near:format_change"] + kinds["near:flatten_alpha"] > 0
    for members in groups.values():
        (orig,) = [m for m in members if m["dup_kind"] == "original"]
        assert not (set(orig["faults"]) - {"low_info"}) and len(members) >= 2
        base = _pixels(got[orig["id"]]["image"])
        for m in members:
            assert m["category"] == orig["category"] and m["caption"] == orig["caption"]
            if m["dup_kind"] == "exact":
                assert np.array_equal(_pixels(got[m["id"]]["image"]), base)
            elif m["dup_kind"].startswith("near:"):
                assert m["sha256"] != orig["sha256"]
    # Nothing outside a group shares bytes with anything else (zero_byte files excepted).
    shas = Counter(r["sha256"] for r in rows if r["dup_group"] < 0 and r["sha256"])
    empty = hashlib.sha256(b"").hexdigest()
    assert all(c == 1 for s, c in shas.items() if s != empty)


def test_low_info_hard_negatives(corpora):
    rows = [r for r in truth(corpora["folder"]).values() if r["low_info"]]
    assert len(rows) >= N * RATE / 2
    assert all(r["faults"] == ["low_info"] for r in rows)
    icons = [
        r
        for r in rows
        if r["dup_kind"] != "near:flatten_alpha" and r["answer"] and "icon" in r["caption"]
    ]
    assert len(icons) >= 2
    alphas = []
    for r in icons:
        with Image.open(corpora["folder"] / r["path"]) as im:
            assert im.mode == "RGBA" and r["image_format"] == "png"
            px = np.asarray(im)
        assert (px[..., :3] == px[0, 0, :3]).all()  # RGB flat: alpha alone carries the shape
        alphas.append(px[..., 3].tobytes())
    assert len(set(alphas)) == len(alphas)
    assert any(r["dup_kind"] == "near:flatten_alpha" for r in rows)
    assert any(r["dup_kind"] == "near:recompress" and r["category"] == "ocr" for r in rows)


def test_grounding_answers_point_at_the_named_colour(corpora):
    rows = truth(corpora["llava"]).values()
    checked = 0
    for r in rows:
        if r["category"] != "grounding" or r["faults"] or r["dup_kind"] not in ("", "original"):
            continue
        colour = r["question"].split()[3]
        x0, y0, x1, y1 = json.loads(r["answer"])
        with Image.open(corpora["llava"] / r["path"]) as im:
            w, h = im.size
            px = im.convert("RGB").getpixel((int((x0 + x1) / 2000 * w), int((y0 + y1) / 2000 * h)))
        assert np.abs(np.subtract(px, SHAPE_COLOURS[colour])).max() < 60, (r["id"], px, colour)
        checked += 1
    assert checked >= 10


def _file_hashes(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_same_arguments_give_identical_bytes(tmp_path):
    for fmt in FORMATS:
        a = generate_corpus(tmp_path / f"a-{fmt}", n=24, fmt=fmt, faults=0.4, seed=5, max_side=128)
        generate_corpus(tmp_path / f"b-{fmt}", n=24, fmt=fmt, faults=0.4, seed=5, max_side=128)
        ha, hb = _file_hashes(Path(a.out)), _file_hashes(tmp_path / f"b-{fmt}")
        assert ha == hb and len(ha) >= 6
    generate_corpus(tmp_path / "c", n=24, fmt="parquet", faults=0.4, seed=6, max_side=128)
    assert _file_hashes(tmp_path / "c") != _file_hashes(tmp_path / "a-parquet")


def test_clean_images_do_not_depend_on_fault_rate(tmp_path):
    clean = generate_corpus(tmp_path / "clean", n=16, fmt="folder", max_side=96)
    faulty = generate_corpus(tmp_path / "faulty", n=16, fmt="folder", faults=0.5, max_side=96)
    clean_shas = {r["sha256"] for r in truth(Path(clean.out)).values()}
    kept = {
        r["sha256"]
        for r in truth(Path(faulty.out)).values()
        if r["dup_kind"] in ("", "original") and not r["faults"]
    }
    assert kept and kept <= clean_shas


def test_heldout_uses_own_prefix_and_stream(tmp_path):
    train = generate_corpus(tmp_path / "train", n=8, fmt="parquet", max_side=96)
    held = generate_corpus(tmp_path / "held", n=8, fmt="parquet", max_side=96, heldout=True)
    held_rows = truth(Path(held.out))
    assert all(rid.startswith("heldout-") for rid in held_rows)
    train_shas = {r["sha256"] for r in truth(Path(train.out)).values()}
    assert not train_shas & {r["sha256"] for r in held_rows.values()}


def test_cli_runs_and_reports_per_category(tmp_path):
    out = tmp_path / "cli"
    res = CliRunner().invoke(
        cli,
        [
            "data",
            "synth",
            "--out",
            str(out),
            "--n",
            "8",
            "--format",
            "webdataset",
            "--faults",
            "0.25",
        ],
    )
    assert res.exit_code == 0, res.output
    lines = res.output.strip().splitlines()
    assert [line.split(":")[0] for line in lines] == list(CATEGORIES)
    assert (out / "truth.parquet").exists() and (out / "caption" / "shard-00000.tar").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--format", "tar"], "unknown format 'tar'"),
        (["--format", "llava", "--faults", "1.5"], "--faults must be between 0 and 1"),
        (["--format", "llava", "--min-side", "600"], "--min-side"),
    ],
)
def test_cli_user_errors_are_one_line(tmp_path, args, message):
    res = CliRunner().invoke(
        cli, ["data", "synth", "--out", str(tmp_path / "x"), "--n", "4", *args]
    )
    assert res.exit_code != 0
    assert len(res.output.strip().splitlines()) == 1 and message in res.output
    assert res.exception is None or isinstance(res.exception, SystemExit)


def test_cli_refuses_non_empty_output(tmp_path):
    (tmp_path / "keep.txt").write_text("x")
    res = CliRunner().invoke(
        cli, ["data", "synth", "--out", str(tmp_path), "--n", "4", "--format", "folder"]
    )
    assert res.exit_code != 0 and "not empty" in res.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.txt"]


def _scene_counts(caption: str) -> Counter:
    """Counts per shape from a scene caption like 'Two red circles and a blue square on ...'."""
    words = {"a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6}
    body = caption.split(" on a ")[0].lower().replace(" and ", ", ")
    counts: Counter = Counter()
    for phrase in body.split(", "):
        number, _colour, shape = phrase.split()
        counts[shape.rstrip("s")] += words[number]
    return counts


def test_answers_follow_from_captions(corpora):
    rows = [r for r in truth(corpora["parquet"]).values() if not r["faults"]]
    seen = Counter()
    for r in rows:
        q, a, cap = r["question"], r["answer"], r["caption"]
        if r["category"] == "caption":
            counts = _scene_counts(cap)
            if q == "How many shapes are there?":
                assert int(a) == sum(counts.values())
            elif q.startswith("How many "):
                assert int(a) == counts[q.split()[2][:-1]]
            elif q.startswith("What colour is the ") and q != "What colour is the background?":
                assert f"{a} {q.split()[4][:-1]}" in cap
        elif r["category"] == "ocr":
            assert f'"{a}"' in cap and q == "What text is written in the image?"
        elif r["category"] == "grounding":
            assert f"{' '.join(q.split()[3:5]).rstrip('?')} at {a}" in cap
        elif r["category"] == "chart" and q.startswith("What is the value"):
            label = q.rstrip("?").split()[-1]
            assert f"{label} {a}," in cap or f"{label} {a}." in cap
        seen[r["category"]] += 1
    assert min(seen[c] for c in CATEGORIES) >= 10


def test_text_only_conversations_written_as_llava_with_truth(tmp_path):
    import json

    import pyarrow.parquet as pq

    from mindvl.data_engine.synth.kit import generate_corpus

    generate_corpus(tmp_path / "k", 8, "webdataset", seed=3, max_side=96, text_only=12)
    lines = (tmp_path / "k" / "text" / "data.jsonl").read_text().splitlines()
    recs = [json.loads(x) for x in lines]
    assert len(recs) == 12 and all("image" not in r for r in recs)
    truth = pq.read_table(tmp_path / "k" / "truth.parquet").to_pylist()
    text = {r["id"]: r for r in truth if r["category"] == "text"}
    assert set(text) == {r["id"] for r in recs}
    for r in recs:
        q, a = r["conversations"][0]["value"], r["conversations"][1]["value"]
        assert text[r["id"]]["question"] == q and text[r["id"]]["answer"] == a
        if q.startswith("What is") and "plus" in q:
            x, y = (int(t) for t in q.removeprefix("What is ").removesuffix("?").split(" plus "))
            assert a == str(x + y)


def _llava_rows(out: str, category: str) -> dict[str, dict]:
    """A LLaVA-format corpus category's records by id."""
    lines = (Path(out) / category / "data.jsonl").read_text().splitlines()
    return {r["id"]: r for r in map(json.loads, lines)}


def test_qa_turns_add_true_follow_ups_and_keep_the_first_turn(tmp_path):
    """``qa_turns`` adds distinct follow-up questions to scenes (each answered by the image),
    changes nothing else, and leaves translated samples single-turn."""
    one = generate_corpus(tmp_path / "one", 40, "llava", faults=0.3, seed=4, max_side=96)
    four = generate_corpus(tmp_path / "four", 40, "llava", faults=0.3, seed=4, max_side=96,
                           qa_turns=4)  # fmt: skip
    for cat in ("ocr", "chart"):  # one question per image: unchanged
        assert _llava_rows(one.out, cat) == _llava_rows(four.out, cat)
    before, after = _llava_rows(one.out, "caption"), _llava_rows(four.out, "caption")
    assert before.keys() == after.keys()
    faults = {k: r["faults"] for k, r in truth(Path(four.out)).items()}
    multi = 0
    for key, row in after.items():
        turns = row["conversations"]
        assert turns[:2] == before[key]["conversations"]
        assert {k: v for k, v in row.items() if k != "conversations"} == {
            k: v for k, v in before[key].items() if k != "conversations"
        }
        if "non_english_caption" in faults[key]:
            assert len(turns) == 2
            continue
        questions = [t["value"] for t in turns[0::2]]
        assert len(turns) <= 8 and len(set(questions)) == len(questions)
        assert all("<image>" not in q for q in questions[1:])
        if faults[key]:
            continue  # a damaged caption (long, empty, non-UTF-8) is no reference
        counts = _scene_counts(row["caption"])
        for q, a in zip(questions[1:], [t["value"] for t in turns[3::2]], strict=True):
            if q == "How many shapes are there?":
                assert int(a) == sum(counts.values())
            elif q.startswith("How many "):
                assert int(a) == counts[q.split()[2][:-1]]
            elif q == "What colour is the background?":
                assert f"on a {a} background." in row["caption"]
            else:
                assert f"{a} {q.split()[4][:-1]}" in row["caption"]
        multi += len(turns) == 8
    assert multi >= 5


def test_describe_ends_clean_scenes_with_their_caption(tmp_path):
    plain = generate_corpus(tmp_path / "a", 40, "llava", faults=0.3, seed=4, max_side=96)
    desc = generate_corpus(tmp_path / "b", 40, "llava", faults=0.3, seed=4, max_side=96,
                           describe=True)  # fmt: skip
    faults = {k: r["faults"] for k, r in truth(Path(desc.out)).items()}
    for cat in CATEGORIES:
        before, after = _llava_rows(plain.out, cat), _llava_rows(desc.out, cat)
        assert before.keys() == after.keys()
        described = 0
        for b, a in ((before[k], after[k]) for k in before):
            extra = a["conversations"][len(b["conversations"]) :]
            assert a["conversations"][: len(b["conversations"])] == b["conversations"]
            if cat == "caption" and not faults[a["id"]]:
                assert extra == [{"from": "human", "value": "Describe the image."},
                                 {"from": "gpt", "value": a["caption"]}]  # fmt: skip
                described += 1
            else:
                assert extra == []
        assert described >= 5 if cat == "caption" else described == 0
