"""Changes between two recorded recipes, down to single operator parameters.

Both recipe texts are parsed (with their recorded ``--var`` values) and flattened to
``path -> value``; sources are keyed by name and operators by ``op`` (``#2`` for a second
use), so reordering is not a change but a moved threshold is
(``operators.image_size.params.min_side: 32 -> 64``).
"""

from __future__ import annotations

from typing import Any

import yaml

from mindvl.common.manifest import RecipeRecord
from mindvl.common.recipe import substitute


def parse(record: RecipeRecord) -> Any:
    try:
        data = yaml.safe_load(record.text)
        return substitute(data, dict(record.variables), "<recipe>")
    except Exception:  # an unparsable record still diffs as text
        return {"<text>": record.text}


def _list_key(item: Any, seen: dict[str, int]) -> str | None:
    if isinstance(item, dict):
        for field in ("name", "op"):
            if isinstance(item.get(field), str):
                base = item[field]
                seen[base] = seen.get(base, 0) + 1
                return base if seen[base] == 1 else f"{base}#{seen[base]}"
    return None


def flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    if isinstance(data, dict):
        for k in sorted(data, key=str):
            out.update(flatten(data[k], f"{prefix}.{k}" if prefix else str(k)))
        if not data and prefix:
            out[prefix] = {}
    elif isinstance(data, list):
        seen: dict[str, int] = {}
        keys = [_list_key(x, seen) for x in data]
        if data and all(k is not None for k in keys):
            for k, x in zip(keys, data, strict=True):
                out.update(flatten(x, f"{prefix}.{k}"))
        else:
            out[prefix] = data
    else:
        out[prefix] = data
    return out


def recipe_changes(a: RecipeRecord, b: RecipeRecord) -> list[dict[str, Any]]:
    """``[{"path", "a", "b"}]`` for every added (a None), removed (b None) or changed value."""
    if a.digest == b.digest and a.variables == b.variables:
        return []
    fa, fb = flatten(parse(a)), flatten(parse(b))
    changes = []
    for path in sorted(set(fa) | set(fb)):
        va, vb = fa.get(path), fb.get(path)
        if path not in fa or path not in fb or va != vb:
            changes.append({"path": path, "a": va, "b": vb})
    return changes
