"""The diff dict as a terminal report or as Markdown (same sections, same order)."""

from __future__ import annotations

import json
from typing import Any

from mindvl.data_engine.manifest_cli.text_table import markdown_table, text_table


def _v(x: Any) -> str:
    return "-" if x is None else json.dumps(x) if not isinstance(x, str) else x


def sections(d: dict[str, Any]) -> list[tuple[str, list[str], list[list[object]]]]:
    t = d["totals"]
    out: list[tuple[str, list[str], list[list[object]]]] = [
        (
            "Totals",
            ["", "A", "B", "delta"],
            [
                ["samples", t["samples_a"], t["samples_b"], t["samples_b"] - t["samples_a"]],
                ["tokens", t["tokens_a"], t["tokens_b"], t["tokens_b"] - t["tokens_a"]],
            ],
        ),
        (
            f"Mixture (ratio by {d['unit']})",
            [
                "category",
                "target A",
                "target B",
                "ratio A",
                "ratio B",
                "Δratio",
                "samples A",
                "samples B",
                "Δsamples",
                "Δtokens",
            ],
            [
                [
                    c["category"],
                    c["target_a"],
                    c["target_b"],
                    *_ratios(c, d["unit"]),
                    c["samples_a"],
                    c["samples_b"],
                    c["samples_delta"],
                    c["tokens_delta"],
                ]
                for c in d["categories"]
            ],
        ),
    ]
    if not d["code_same"]:
        out.append(
            (
                "Code version differs",
                ["", "A", "B"],
                [["code_version", d["a"]["code_version"], d["b"]["code_version"]]],
            )
        )
    src = d["sources"]
    if src["added"] or src["removed"]:
        out.append(
            (
                "Sources",
                ["change", "source"],
                [["added", s] for s in src["added"]] + [["removed", s] for s in src["removed"]],
            )
        )
    if d["recipe"]:
        out.append(
            (
                "Recipe changes",
                ["path", "A", "B"],
                [[r["path"], _v(r["a"]), _v(r["b"])] for r in d["recipe"]],
            )
        )
    if d["funnel"]:
        out.append(
            (
                "Funnel deltas",
                ["source", "stage", "op", "reason", "A", "B", "delta"],
                [
                    [f["source"], f["stage"], f["op"], f["reason"], f["a"], f["b"], f["delta"]]
                    for f in d["funnel"]
                ],
            )
        )
    s = d["samples"]
    if s is None:
        out.append(("Samples", ["note"], [["index.parquet missing next to A or B: not compared"]]))
    elif s["per_source"]:
        out.append(
            (
                "Samples added/removed",
                ["source", "added", "removed"],
                [[r["source"], r["added"], r["removed"]] for r in s["per_source"]],
            )
        )
        if "added_keys" in s:
            out.append(
                (
                    "Keys",
                    ["change", "key"],
                    [["+", k] for k in s["added_keys"]] + [["-", k] for k in s["removed_keys"]],
                )
            )
    sh = d["shards"]
    if sh["added"] or sh["removed"] or sh["changed"]:
        rows = (
            [["added", n] for n in sh["added"]]
            + [["removed", n] for n in sh["removed"]]
            + [["changed", n] for n in sh["changed"]]
        )
        out.append((f"Shards ({sh['unchanged']} unchanged)", ["change", "shard"], rows))
    return out


def _ratios(c: dict[str, Any], unit: str) -> list[float]:
    k = "tokens" if unit == "tokens" else "samples"
    return [c[f"ratio_{k}_a"], c[f"ratio_{k}_b"], c[f"ratio_{k}_delta"]]


def _title(d: dict[str, Any]) -> str:
    a, b = d["a"], d["b"]
    same = "identical selection" if d["selected_keys_same"] else "selection differs"
    same += "" if d["code_same"] else "; code version differs"
    return f"A: {a['path']} ({a['name']}/{a['stage']})\nB: {b['path']} ({b['name']}/{b['stage']})\n{same}"


def render_text(d: dict[str, Any]) -> str:
    parts = [_title(d)]
    for title, head, rows in sections(d):
        parts.append(f"{title}\n{text_table(head, rows)}")
    return "\n\n".join(parts)


def render_markdown(d: dict[str, Any]) -> str:
    parts = ["## Manifest diff", "```\n" + _title(d) + "\n```"]
    for title, head, rows in sections(d):
        parts.append(f"### {title}\n\n{markdown_table(head, rows)}")
    return "\n\n".join(parts)
