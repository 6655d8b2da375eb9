"""Test-only fault: SIGKILL this process once the shard writer has been handed N bytes.

:func:`install` wraps the ``write_shards`` that ``mix.stage`` calls so that each member the
writer takes counts its tar bytes (header, data, padding); the member that reaches N kills
the process before it is written, leaving finished shards and one partial temp file, as a
real crash mid-shard would. Run as a script, ``python crash_hook.py N ARGS...`` installs it
and runs ``mindvl ARGS...`` in this process (where a build writes its shards).
"""

from __future__ import annotations

import os
import signal
import sys


def install(limit: int) -> None:
    from mindvl.common.shard_format import member_size
    from mindvl.data_engine.mix import stage

    real = stage.write_shards
    written = [0]

    def write_shards(out_dir, name, plan, member_data):
        def counted(i):
            for member, data in member_data(i):
                written[0] += member_size(member, len(data))
                if written[0] >= limit:
                    os.kill(os.getpid(), signal.SIGKILL)
                yield member, data

        return real(out_dir, name, plan, counted)

    stage.write_shards = write_shards


if __name__ == "__main__":
    install(int(sys.argv[1]))
    from mindvl.common.cli import main

    main(sys.argv[2:])
