"""Connecting a build to Ray: a cluster when an address is known, else an embedded one.

Locally the workers run this very interpreter, so Ray's ``uv run`` hook (which would
rebuild the environment for the workers from the working directory, slowly) is turned
off. Against a cluster the hook stays on: that is how a ``uv run`` driver ships its
environment to nodes that lack it (see docs/RAY_JOBS.md).

An embedded Ray is the build's own: its temp dir is ``temp_dir`` (``--ray-temp-dir``, or
``MINDVL_RAY_TEMP_DIR``, else Ray's default), its token authentication keeps the token in
the environment of its processes instead of writing ``~/.ray/auth_token``, a guard
(``ray_guard.py``) kills whatever it started once the build's process is gone, however
it went, and a failed start-up is one line (exit 2) with nothing left running.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from typing import Any

from mindvl.common.errors import UserError

TEMP_DIR_ENV = "MINDVL_RAY_TEMP_DIR"
AUTH_ENV = ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH")  # Ray's token auth settings


class RayStartError(UserError):
    """The embedded Ray did not come up."""


def init_ray(
    address: str | None = None,
    num_cpus: int | None = None,
    temp_dir: str | None = None,
    **kwargs: Any,
) -> None:
    address = address or os.environ.get("RAY_ADDRESS")
    if not address:
        os.environ["RAY_ENABLE_UV_RUN_RUNTIME_ENV"] = "0"
    import ray
    from ray._private import ray_constants

    if address:
        ray.init(address=address, log_to_driver=True, **kwargs)
        return
    ray_constants.RAY_ENABLE_UV_RUN_RUNTIME_ENV = False
    temp_dir = temp_dir or os.environ.get(TEMP_DIR_ENV) or None
    extra = {"_temp_dir": os.path.abspath(temp_dir)} if temp_dir else {}
    start_embedded(
        lambda: ray.init(
            # address="local": always a fresh embedded instance; a bare ray.init() would
            # attach to any cluster already running here (e.g. another user's `ray start`).
            address="local",
            num_cpus=num_cpus,
            include_dashboard=False,
            log_to_driver=True,
            **extra,
            **kwargs,
        )  # fmt: skip
    )


def _token_auth_in_env() -> Callable[[], None]:
    """Token auth as Ray enables it for a new local cluster, but with a fresh token held in
    the environment (Ray would otherwise write one into the home directory). A user's own
    RAY_AUTH_* settings win. Returns what undoes it (a failed start leaves the process as
    it was, so a later Ray in the same process is not half in token mode)."""
    if any(k in os.environ for k in AUTH_ENV):
        return lambda: None
    try:
        from ray._raylet import AuthenticationTokenLoader, Config
    except ImportError:  # a Ray without token auth: nothing to set
        return lambda: None

    def reload() -> None:
        Config.initialize("")  # what Ray's own token set-up does: re-read RAY_* settings
        AuthenticationTokenLoader.instance().reset_cache()

    def undo() -> None:
        os.environ.pop("RAY_AUTH_MODE", None)
        os.environ.pop("RAY_AUTH_TOKEN", None)
        reload()

    os.environ["RAY_AUTH_MODE"] = "token"
    os.environ["RAY_AUTH_TOKEN"] = secrets.token_hex(32)
    reload()
    return undo


def start_embedded(start, attempts: int = 3) -> None:
    """Run ``start()`` (which starts a local Ray head) so that every process it spawns
    carries this build's guard token; see ``ray_guard.py``. On a busy machine a raylet
    can miss Ray's start-up deadline: what was started is killed and it is tried again,
    ``attempts`` times in all, then reported in one line."""
    import ray

    from mindvl.data_engine.pipeline.ray_guard import marks, start_guard, sweep

    token = secrets.token_hex(8)
    start_guard(token)
    # The auth settings stay (the driver talks to its cluster with them). The guard's marks
    # only while the head starts: the raylet passes its environment on to the workers it
    # spawns later; other children of this process must not carry it.
    undo_auth = _token_auth_in_env()
    mark = marks(token)
    before = {k: os.environ.get(k) for k in mark}
    first, tried = "", 0
    for attempt in range(1, attempts + 1):
        tried = attempt
        os.environ.update(mark)
        try:
            start()
            return
        except Exception as err:  # noqa: BLE001 (any start-up failure becomes one line)
            lines = [s.strip() for s in str(err).splitlines() if s.strip()]
            first = lines[0] if lines else type(err).__name__
            try:
                ray.shutdown()
            finally:
                sweep(token)
        finally:
            for key, value in before.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
        if not any(w in first.lower() for w in ("timed out", "timeout", "deadline")):
            break  # not a start-up deadline: trying again would fail the same way
    undo_auth()
    what = f"{first}; {tried} attempts" if tried > 1 else first
    raise RayStartError(
        f"the embedded Ray did not start ({what}). Free memory or CPU and rerun, give the "
        "build fewer CPUs (--num-cpus) or a shorter --ray-temp-dir, or start Ray yourself "
        "(ray start --head) and pass --address"
    )
