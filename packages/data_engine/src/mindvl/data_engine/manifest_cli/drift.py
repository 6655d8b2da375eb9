"""``--fail-on`` tolerances: which drifts between two builds are too much.

``ratio=F``   a category's achieved fraction (in B's mixture unit) moved by more than F;
``samples=N`` a category's sample count moved by more than N;
``tokens=F``  a category's tokens moved by more than F relative to A (0.05 = 5 %);
``funnel=N``  a drop count (source, stage, op, reason) moved by more than N;
``keys=N``    more than N samples were added plus removed (from the indexes).
"""

from __future__ import annotations

from typing import Any

from mindvl.common.errors import UserError

KINDS = ("ratio", "samples", "tokens", "funnel", "keys")


def parse_tolerances(specs: tuple[str, ...]) -> dict[str, float]:
    out: dict[str, float] = {}
    for spec in specs:
        for part in filter(None, (p.strip() for p in spec.split(","))):
            name, sep, value = part.partition("=")
            if not sep or name not in KINDS:
                raise UserError(
                    f"--fail-on {part!r}: expected KIND=VALUE with KIND one of {', '.join(KINDS)}"
                )
            try:
                out[name] = float(value)
            except ValueError:
                raise UserError(f"--fail-on {part!r}: {value!r} is not a number") from None
            if out[name] < 0:
                raise UserError(f"--fail-on {part!r}: tolerance must be >= 0")
    return out


def violations(diff: dict[str, Any], tol: dict[str, float]) -> list[str]:
    """One line per drift beyond tolerance."""
    out = []
    ratio_field = "ratio_tokens_delta" if diff["unit"] == "tokens" else "ratio_samples_delta"
    for c in diff["categories"]:
        if "ratio" in tol and abs(c[ratio_field]) > tol["ratio"] + 1e-12:
            out.append(
                f"ratio of {c['category']} moved by {c[ratio_field]:+.4f} (tolerance {tol['ratio']:g})"
            )
        if "samples" in tol and abs(c["samples_delta"]) > tol["samples"]:
            out.append(
                f"samples of {c['category']} moved by {c['samples_delta']:+d} (tolerance {tol['samples']:g})"
            )
        if "tokens" in tol:
            rel = abs(c["tokens_delta"]) / max(c["tokens_a"], 1)
            if rel > tol["tokens"] + 1e-12:
                out.append(
                    f"tokens of {c['category']} moved by {rel:.2%} (tolerance {tol['tokens']:g})"
                )
    if "funnel" in tol:
        for f in diff["funnel"]:
            if abs(f["delta"]) > tol["funnel"]:
                out.append(
                    f"funnel {f['source']}/{f['stage']}/{f['op']}/{f['reason']} moved by {f['delta']:+d} (tolerance {tol['funnel']:g})"
                )
    if "keys" in tol and diff["samples"] is None:
        out.append("keys cannot be checked: index.parquet is missing next to A or B")
    if "keys" in tol and diff["samples"] is not None:
        moved = diff["samples"]["added"] + diff["samples"]["removed"]
        if moved > tol["keys"]:
            out.append(f"{moved} samples added or removed (tolerance {tol['keys']:g})")
    return out
