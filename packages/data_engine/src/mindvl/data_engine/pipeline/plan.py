"""Everything a build decides on the driver before Ray starts any work.

Sources are listed and split into sorted units, input files recorded (size + mtime),
operator params validated and grouped into Ray stages: consecutive stateless operators
share one task stage (Ray fuses them anyway); each ``uses_actor`` operator gets its own
actor pool with the resources it declares. Any problem here is a one-line user error, so
a bad recipe or a missing source fails before any work.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mindvl.common.config import validate_data
from mindvl.common.errors import UserError
from mindvl.common.manifest import InputFile
from mindvl.common.recipe import Recipe
from mindvl.data_engine.pipeline.decontam import eval_units
from mindvl.data_engine.pipeline.parts import choose_buckets
from mindvl.data_engine.readers import plan_source
from mindvl.data_engine.readers.base import ReadUnit


@dataclass
class OpGroup:
    specs: list[dict[str, Any]]  # {"op", "params", "index"}
    uses_actor: bool = False
    resources: dict[str, Any] = field(default_factory=dict)
    concurrency: int = 1

    @property
    def names(self) -> str:
        return "+".join(s["op"] for s in self.specs)


@dataclass
class BuildPlan:
    units: list[ReadUnit]
    inputs: list[InputFile]
    units_per_source: dict[str, int]
    op_groups: list[OpGroup]
    buckets: int
    eval_units: list[ReadUnit] = field(default_factory=list)  # dedup.decontaminate corpora


def plan_operators(recipe: Recipe, source: str) -> list[OpGroup]:
    from mindvl.data_engine.ops.registry import OPERATORS, operator_class

    groups: list[OpGroup] = []
    for i, spec in enumerate(recipe.operators):
        if spec.op not in OPERATORS:
            raise UserError(
                f"{source}: operators[{i}].op: unknown operator {spec.op!r} "
                f"(allowed: {', '.join(sorted(OPERATORS)) or 'none registered'})"
            )
        cls = operator_class(spec.op)
        validate_data(spec.params, cls.Params, source, prefix=f"operators[{i}].params")
        entry = {"op": spec.op, "params": spec.params, "index": i}
        if cls.uses_actor:
            res = dict(cls.resources)
            conc = int(res.pop("concurrency", 1))
            groups.append(OpGroup([entry], True, res, conc))
        elif groups and not groups[-1].uses_actor:
            groups[-1].specs.append(entry)
        else:
            groups.append(OpGroup([entry]))
    return groups


def plan_build(recipe: Recipe, source: str) -> BuildPlan:
    units: list[ReadUnit] = []
    inputs: list[InputFile] = []
    per_source: dict[str, int] = {}
    for spec in recipe.sources:
        u, inp = plan_source(spec)
        units += u
        inputs += inp
        per_source[spec.name] = len(u)
    groups = plan_operators(recipe, source)
    total = sum(i.size for i in inputs)
    evals = eval_units(recipe.dedup)
    return BuildPlan(units, inputs, per_source, groups, choose_buckets(total), evals)


def check_resources(groups: list[OpGroup], available: dict[str, float]) -> None:
    """Fail before work if an actor pool asks for resources the cluster does not have."""
    for g in groups:
        need = {"CPU": g.resources.get("num_cpus", 1), "GPU": g.resources.get("num_gpus", 0)}
        need.update(g.resources.get("resources", {}))
        for name, amount in need.items():
            if amount and available.get(name, 0) < amount:
                raise UserError(
                    f"operator {g.names} needs {amount} {name} per actor but the Ray cluster has "
                    f"{available.get(name, 0):g} (connect with --address to a cluster that has it)"
                )
