"""The demo report from fake-but-valid inputs: a saved RatioManifest, index/rejects
Parquet, metrics.jsonl rows shaped like the trainer's, and an eval JSON shaped like
``mindvl eval``'s (validated against the trainer's EvalReport when it is installed)."""

import json
import re
import xml.etree.ElementTree as ET

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mindvl.common.manifest import (
    CategoryMix,
    DedupStats,
    FunnelEntry,
    MixtureRecord,
    RatioManifest,
    RecipeRecord,
    SourceFunnel,
    TokenizerRecord,
)
from mindvl.common.report import build_demo_report, write_demo_report
from mindvl.common.tokens import ImageTokenRule


def cat_mix(name, target, fs, ft, samples):
    return CategoryMix(
        category=name, available_samples=samples, available_tokens=10 * samples,
        target_fraction=target, selected_unique=samples, repeats=0, samples=samples,
        image_tokens=8 * samples, text_tokens=2 * samples,
        achieved_fraction_samples=fs, achieved_fraction_tokens=ft,
    )  # fmt: skip


def make_build(d, stage, categories=("caption", "<b>")):
    d.mkdir(parents=True)
    cats = [cat_mix(categories[0], 0.6, 0.625, 0.6, 5), cat_mix(categories[1], 0.4, 0.375, 0.4, 3)]
    m = RatioManifest(
        name=f"demo-{stage}", stage=stage, code_version="0.1.0", seed=0,
        recipe=RecipeRecord(text="name: r\n", digest="d"), tokenizer=TokenizerRecord(path="t", digest="x"),
        image_tokens=ImageTokenRule(), inputs=[],
        sources=[SourceFunnel(source="cap", category=categories[0], input=9, kept=5, dropped=4),
                 SourceFunnel(source="weird", category=categories[1], input=4, kept=3, dropped=1)],
        funnel=[FunnelEntry(source="cap", stage="filter", op="resolution", reason="too_small", count=3),
                FunnelEntry(source="cap", stage="dedup", op="exact", reason="duplicate", count=1),
                FunnelEntry(source="weird", stage="read", op="decode", reason="corrupt <img>", count=1)],
        dedup=DedupStats(exact_groups=1, exact_dropped=1),
        mixture=MixtureRecord(unit="samples", budget=8, max_repeat=1.0, shortfall="fail", categories=cats),
        shards=[], total_samples=8, total_image_tokens=64, total_text_tokens=16, selected_keys_digest="k",
    )  # fmt: skip
    m.save(d / "manifest.json")
    cats_col = [categories[0]] * 5 + [categories[1]] * 3
    pq.write_table(
        pa.table({"key": [f"k{i}" for i in range(8)], "source": ["cap"] * 5 + ["weird"] * 3,
                  "category": cats_col, "shard": [f"{stage}-00000.tar"] * 8,
                  "image_tokens": [8] * 8, "text_tokens": [2] * 8}),
        d / "index.parquet",
    )  # fmt: skip
    pq.write_table(
        pa.table({"key": ["r0", "r1", "r2", "r3", "r4"], "source": ["cap"] * 4 + ["weird"],
                  "stage": ["filter"] * 3 + ["dedup", "read"], "op": ["resolution"] * 3 + ["exact", "decode"],
                  "reason": ["too_small"] * 3 + ["duplicate", "corrupt <img>"]}),
        d / "rejects.parquet",
    )  # fmt: skip
    return d


def make_run(d, losses, val=None):
    d.mkdir(parents=True)
    rows = []
    for i, loss in enumerate(losses, start=1):
        row = {"step": i, "loss": loss, "lr": 1e-3, "grad_norm": 1.0, "loss_tokens": 100,
               "llm_tokens": 480, "vit_tokens": 64, "tokens_per_s": 1000.0 + i, "padding": 0.25,
               "samples_per_pack": 3.0, "step_s": 0.5, "tokens_seen": 480 * i}  # fmt: skip
        if val is not None:
            row["val_loss"] = val[i - 1]
        rows.append(json.dumps(row, sort_keys=True))
    (d / "metrics.jsonl").write_text("\n".join(rows) + "\n")
    return d


def score(n, correct, answer, base_correct):
    return {"n": n, "correct": correct, "accuracy": correct / n, "baseline_answer": answer,
            "baseline_correct": base_correct, "baseline_accuracy": base_correct / n}  # fmt: skip


def setting(max_pixels, tasks, loss):
    total = {k: sum(t[k] for t in tasks.values()) for k in ("n", "correct", "baseline_correct")}
    overall = score(total["n"], total["correct"], "(per task)", total["baseline_correct"])
    return {
        "image_tokens": {"min_pixels": 3136, "max_pixels": max_pixels}, "max_new_tokens": 16,
        "overall": overall, "macro_accuracy": sum(t["accuracy"] for t in tasks.values()) / len(tasks),
        "tasks": tasks,
        "categories": {"chart": score(50, 20, "3", 10), "<b>": score(50, 30, "red", 25)},
        "val_loss": {"loss": loss, "loss_tokens": 900, "samples": 100, "packs": 4, "dropped": {},
                     "truncated": 0},
        "seconds": 2.5,
    }  # fmt: skip


def make_eval(path):
    chosen = {"colour": score(100, 62, "red", 21), "count": score(100, 40, "2", 25),
              "ocr_text": score(100, 5, "stop", 10)}  # fmt: skip
    other = {"colour": score(100, 50, "red", 21), "count": score(100, 20, "2", 25),
             "ocr_text": score(100, 4, "stop", 10)}  # fmt: skip
    report = {
        "checkpoint": "out/demo/sft/final", "tasks_file": "pipelines/eval/tasks.yaml",
        "data": {"path": "out/demo/eval", "manifest_name": "demo-eval", "stage": "eval",
                 "total_samples": 300, "samples_read": 300, "samples_scored": 300, "skipped": {},
                 "keys_digest": "abc123"},
        "settings": [setting(50176, other, 2.5), setting(100352, chosen, 2.1)],
        "resolution_search": {"criterion": "highest overall accuracy", "inference_file": "x/inference.json",
                              "chosen": {"min_pixels": 3136, "max_pixels": 100352},
                              "previous": {"min_pixels": 3136, "max_pixels": 50176}, "table_file": "x/t.json"},
    }  # fmt: skip
    path.write_text(json.dumps(report, indent=2))
    return path


@pytest.fixture
def inputs(tmp_path):
    builds = {"warmup": make_build(tmp_path / "b" / "warmup", "warmup"),
              "sft": make_build(tmp_path / "b" / "sft", "sft", ("chat", "caption"))}  # fmt: skip
    runs = {"warmup": make_run(tmp_path / "r" / "warmup", [4.0, 3.0, 2.5]),
            "sft": make_run(tmp_path / "r" / "sft", [2.0, 1.5], val=[2.2, 1.9]),
            "average": tmp_path / "r" / "average"}  # fmt: skip
    extra = {"timings": {"synth": 3.0, "train <warmup>": 9.0}, "seed": 0, "n": 800}
    return tmp_path, builds, runs, make_eval(tmp_path / "eval_report.json"), extra


def test_eval_fixture_matches_the_trainers_report_model(inputs):
    report = pytest.importorskip("mindvl.trainer.evaluation.report")
    report.EvalReport.model_validate_json(inputs[3].read_text())


def test_writes_both_files_with_the_right_headline(inputs, capsys):
    tmp, builds, runs, ev, extra = inputs
    md, html = write_demo_report(tmp / "out", builds, runs, ev, extra)
    expected = ("model beats the majority baseline on 2 of 3 tasks: colour 0.62 vs 0.21, "
                "count 0.40 vs 0.25 (overall 0.36 vs 0.19 on 300 items)")  # fmt: skip
    assert capsys.readouterr().out.strip() == expected
    md_text, html_text = md.read_text(), html.read_text()
    assert md.name == "report.md" and html.name == "report.html"
    assert f"**{expected}**" in md_text and expected in html_text
    # resolution table: the chosen row is marked, its val loss shown
    assert re.search(
        r"\| 100352 \| 3136 \| 128 \| 0\.357 \| 0\.187 \|.*\| 2\.1000 \|.*\| yes \|", md_text
    )
    assert re.search(r"\| 50176 \| 3136 \| 64 \|.*\| no \|", md_text)
    assert "Chosen max_pixels=100352 (was 50176); criterion: highest overall accuracy." in md_text
    assert "| seed | 0 |" in md_text and "| n | 800 |" in md_text
    # funnel by reason and the index / rejects cross-checks
    assert "resolution: too_small = 3" in md_text
    assert (
        "index.parquet: 8 rows (\\<b\\>: 3, caption: 5); matches the manifest's total_samples: yes"
        in md_text
    )
    assert "rejects.parquet: 5 rows (funnel drops in the manifest: 5)" in md_text
    # a run without metrics is n/a, not a crash
    assert "| average | n/a |" in md_text
    assert "| sft | 2 | 2.0000 | 1.5000 | 1.9000 | 960 |" in md_text


def test_html_has_one_svg_per_chart_and_is_static(inputs):
    tmp, builds, runs, ev, extra = inputs
    doc = build_demo_report(builds, runs, ev, extra)
    # 2 loss curves + 2 builds x (mixture + funnel) + task + category accuracy + timings
    assert doc.charts() == 9
    _, html = write_demo_report(tmp / "out", builds, runs, ev, extra)
    text = html.read_text()
    assert text.count("<svg") == 9
    assert text.count("</svg>") == 9
    for svg in re.findall(r"<svg.*?</svg>", text, flags=re.S):
        ET.fromstring(svg)  # each chart is well-formed XML
    # nothing to fetch: the only URLs are the SVG namespaces
    assert not re.findall(r"https?://(?!www\.w3\.org/(2000/svg|1999/xlink)\")", text)
    assert "<script" not in text and "<link" not in text
    # the sft run carries val_loss: its chart has two curves (legend entries)
    assert text.count(">train loss</text>") == 2 and text.count(">val loss</text>") == 1


def test_text_is_escaped(inputs):
    tmp, builds, runs, ev, extra = inputs
    _, html = write_demo_report(tmp / "out", builds, runs, ev, extra)
    text = html.read_text()
    assert "<b>" not in text and "&lt;b&gt;" in text
    assert "corrupt &lt;img&gt;" in text and "<img" not in text
    assert "train &lt;warmup&gt;" in text
    # Markdown renderers take inline HTML too: names are backslash-escaped there
    md = (tmp / "out" / "report.md").read_text()
    assert "| \\<b\\> | 0.400 |" in md and "<b>" not in md


def test_missing_inputs_give_na(tmp_path, capsys):
    builds = {"warmup": tmp_path / "nope"}
    runs = {"warmup": tmp_path / "nope-run"}
    md, html = write_demo_report(tmp_path / "out", builds, runs, tmp_path / "missing.json", {})
    text = md.read_text()
    assert "headline n/a: no evaluation report (missing.json not found)" in capsys.readouterr().out
    assert "Evaluation: n/a (missing.json not found)." in text
    assert "Manifest: n/a (manifest.json not found)." in text
    assert "Loss curve: n/a (metrics.jsonl not found" in text
    assert "Timings: n/a" in text
    assert html.read_text().count("<svg") == 0


def test_missing_optional_fields_give_na(inputs):
    tmp, builds, runs, ev, extra = inputs
    data = json.loads(ev.read_text())
    for s in data["settings"]:
        del s["val_loss"], s["categories"], s["tasks"]["count"]["baseline_accuracy"]
    data["resolution_search"] = None
    ev.write_text(json.dumps(data))
    manifest = builds["sft"] / "manifest.json"
    m = json.loads(manifest.read_text())
    del m["mixture"]["categories"][0]["achieved_fraction_tokens"], m["funnel"]
    manifest.write_text(json.dumps(m))
    (runs["warmup"] / "metrics.jsonl").write_text('{"step": 1, "loss": 3.0}\n{"step": 2, "lo')
    (builds["warmup"] / "index.parquet").unlink()
    md, _ = write_demo_report(tmp / "out", builds, runs, ev, extra)
    text = md.read_text()
    # without a search, the first setting is shown; count has no baseline so it is not "beaten"
    assert "model beats the majority baseline on 1 of 3 tasks: colour 0.50 vs 0.21" in text
    assert "Scores at max_pixels=50176, the first setting evaluated; validation loss n/a." in text
    assert "accuracy per category: n/a" in text
    assert "| count | 100 | 0.200 | n/a | n/a | 2 |" in text
    assert "| chat | 0.600 | 0.625 | n/a |" in text
    assert "index.parquet: n/a (index.parquet not found)." in text
    assert "| warmup | 1 | 3.0000 | 3.0000 | n/a | n/a | n/a | n/a | n/a |" in text
    assert "1 unreadable line(s) skipped" in text


def test_moe_run_gets_a_routing_balance_chart(tmp_path):
    from mindvl.common.report.document import Document, render_markdown
    from mindvl.common.report.train_sections import routing_series, training_sections

    run = make_run(tmp_path / "moe", [3.0, 2.0])
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    for r in rows:
        r.update({"experts_l1_cv": 0.5 / r["step"], "experts_l2_cv": 0.2, "experts_l1_min": 3.0})
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert routing_series(rows) == {
        "layer 1": [(1, 0.5), (2, 0.25)],
        "layer 2": [(1, 0.2), (2, 0.2)],
    }
    many = [{"step": 1, **{f"experts_l{i}_cv": float(i) for i in range(8)}}]
    assert routing_series(many) == {"mean of layers": [(1, 3.5)], "worst layer": [(1, 7.0)]}
    section = training_sections({"moe": run, "dense": make_run(tmp_path / "dense", [1.0])})
    doc = Document(title="t", headline="h", sections=[section])
    assert doc.charts() == 3  # two loss curves, one routing chart (the dense run has none)
    assert render_markdown(doc).count("tokens routed to each expert") == 1
