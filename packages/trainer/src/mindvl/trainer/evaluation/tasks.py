"""Which task a question belongs to: regexes from a YAML file (data, not code).

The first pattern (in file order) that matches the question names its task; questions no
pattern matches go to ``unmatched``. Without a tasks file every question is one task.
"""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import Field, PrivateAttr, field_validator

from mindvl.common.config import StrictModel, read_yaml, validate_data
from mindvl.common.errors import ConfigError

DEFAULT_UNMATCHED = "other"


class TaskSet(StrictModel):
    """``tasks`` maps a task name to a regex searched (``re.search``) in the question."""

    tasks: dict[str, str] = Field(default_factory=dict)
    unmatched: str = DEFAULT_UNMATCHED
    _patterns: list[tuple[str, re.Pattern]] = PrivateAttr(default_factory=list)

    def model_post_init(self, __context) -> None:
        self._patterns = [(n, re.compile(p)) for n, p in self.tasks.items()]

    @field_validator("tasks")
    @classmethod
    def _compiles(cls, tasks: dict[str, str]) -> dict[str, str]:
        for name, pattern in tasks.items():
            try:
                re.compile(pattern)
            except re.error as err:
                raise ValueError(f"task {name!r}: bad regex {pattern!r}: {err}") from None
        return tasks

    def classify(self, question: str) -> str:
        for name, pattern in self._patterns:
            if pattern.search(question):
                return name
        return self.unmatched


def single_task(name: str = "all") -> TaskSet:
    """Every question in one task (no tasks file given)."""
    return TaskSet(tasks={}, unmatched=name)


def load_tasks(path: str | Path | None) -> TaskSet:
    if path is None:
        return single_task()
    data = read_yaml(path)
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping with 'tasks' at the top level")
    return validate_data(data, TaskSet, str(path))
