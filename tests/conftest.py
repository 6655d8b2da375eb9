"""Test order for the whole suite: every test that runs Ray in this process (it requests
``ray_local``, tests/data_engine/conftest.py) runs after every other test.

Ray leaves native threads in the driver after ``ray.shutdown()`` (gRPC's event engine and
timers, the GCS client's io thread). A gloo rank forked from it inherits their half-done
state; such ranks aborted now and then in glibc's heap checks (``malloc(): unaligned
fastbin chunk detected``) in a full run, never alone (the likely cause, not a proven one:
docs/BENCHMARKS.md). The trainer tests' fork sites check that no such thread is present
(``dist_helpers.assert_fork_safe``).
"""

from __future__ import annotations

import pytest

RAY_FIXTURE = "ray_local"


@pytest.hookimpl(trylast=True)  # after pytest's own grouping of items by fixture scope
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    def uses_ray(item: pytest.Item) -> bool:
        return RAY_FIXTURE in getattr(item, "fixturenames", ())

    items[:] = sorted(items, key=uses_ray)  # stable: each half keeps pytest's order
