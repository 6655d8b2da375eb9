"""Loading YAML configs into typed models: unknown keys are errors, errors name the field path.

Every config in mindvl (recipes, train stages) is a pydantic model with ``extra="forbid"``;
:func:`load_model` turns pydantic's errors into one line per problem of the form
``FILE: sources[0].formt: unknown field (allowed: name, path, format, ...)``.
"""

from __future__ import annotations

import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from mindvl.common.errors import ConfigError

M = TypeVar("M", bound=BaseModel)


class StrictModel(BaseModel):
    """Base of every config and record model: unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", validate_assignment=False)


def _loc_to_str(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "<root>"


def _model_at(model: type[BaseModel], loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """Walk ``loc`` through the model's annotations to the model that holds its last key."""
    current: Any = model
    for part in loc[:-1]:
        if isinstance(part, int) or current is None:
            continue
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return None
        field = current.model_fields.get(str(part))
        if field is None:
            return None
        current = _unwrap(field.annotation)
    if isinstance(current, type) and issubclass(current, BaseModel):
        return current
    return None


def _unwrap(annotation: Any) -> Any:
    """The first BaseModel inside list[...], dict[str, ...], Optional[...] and unions."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _unwrap(arg)
        if found is not None:
            return found
    return None


def describe_errors(err: ValidationError, model: type[BaseModel], prefix: str = "") -> list[str]:
    """One readable line per pydantic error, naming the field path and what was allowed."""
    lines = []
    for e in err.errors():
        loc = tuple(p for p in e["loc"] if not (isinstance(p, str) and p.startswith("function-")))
        path = _loc_to_str(loc)
        if prefix:
            path = prefix + ("" if path.startswith("[") or path == "<root>" else ".") + path
            path = path.replace(".<root>", "")
        if e["type"] == "extra_forbidden":
            holder = _model_at(model, loc)
            allowed = ", ".join(holder.model_fields) if holder else "?"
            lines.append(f"{path}: unknown field (allowed: {allowed})")
        elif e["type"] == "missing":
            lines.append(f"{path}: required field is missing")
        else:
            msg = e["msg"]
            got = e.get("input")
            shown = repr(got) if not isinstance(got, dict | list) else type(got).__name__
            lines.append(f"{path}: {msg} (got {shown[:60]})")
    return lines


def validate_data(data: Any, model: type[M], source: str, prefix: str = "") -> M:
    """Validate already-parsed data; raise :class:`ConfigError` naming ``source`` and fields."""
    try:
        return model.model_validate(data)
    except ValidationError as err:
        lines = describe_errors(err, model, prefix)
        raise ConfigError(f"{source}: " + "; ".join(lines)) from None


def read_yaml(path: str | Path) -> Any:
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{p}: config file not found")
    try:
        return yaml.safe_load(p.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as err:
        first = " ".join(str(err).split())
        raise ConfigError(f"{p}: not valid YAML: {first}") from None


def load_model(path: str | Path, model: type[M]) -> M:
    """Read a YAML file and validate it into ``model``."""
    data = read_yaml(path)
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    return validate_data(data, model, str(path))
