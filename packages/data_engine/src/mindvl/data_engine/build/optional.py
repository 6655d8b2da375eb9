"""Stages written elsewhere (dedup, captioning, mixing) are looked up when a build runs.

A missing module means "not installed here": the build skips that stage and says so.
An import error *inside* an installed module is a bug and is raised, not hidden.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any


def optional_stage(module: str, attr: str) -> Callable[..., Any] | None:
    try:
        mod = importlib.import_module(module)
    except ModuleNotFoundError as err:
        if err.name and (module == err.name or module.startswith(err.name + ".")):
            return None
        raise
    return getattr(mod, attr, None)
