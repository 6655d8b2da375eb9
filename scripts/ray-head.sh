#!/usr/bin/env bash
# A local Ray head of its own: its temp dir, ports, and auth token; stopped by its PID.
#
#   scripts/ray-head.sh start DIR [PORT_OFFSET]   start, wait until it takes jobs, print how to use it
#                                                 (RAY_HEAD_ARGS="--num-cpus 8" adds ray start flags)
#   scripts/ray-head.sh stop DIR                  stop exactly that head (not every Ray on the machine)
#                                                 and print the unset line for the exports
#
# The head runs the project's venv directly (.venv/bin/ray), not through `uv run`: under
# `uv run` every Ray process inherits VIRTUAL_ENV, and each `uv run` a job starts in its
# own copy of the working dir then warns that VIRTUAL_ENV does not match.
# Ports are Ray's defaults + PORT_OFFSET (default 1; the client server's 10001 - PORT_OFFSET,
# below the workers' range), so the head does not collide with a
# default Ray (or an embedded build's) on the same machine. `ray start --block` keeps the
# head's processes as children of one process; SIGTERM to it drains and stops them all.
set -euo pipefail

cmd=${1:?usage: ray-head.sh start|stop DIR [PORT_OFFSET]}
dir=${2:?usage: ray-head.sh start|stop DIR [PORT_OFFSET]}
off=${3:-1}
root=$(cd "$(dirname "$0")/.." && pwd)

case "$cmd" in
start)
    if [[ -f "$dir/head.pid" ]] && kill -0 "$(cat "$dir/head.pid")" 2>/dev/null; then
        echo "ray-head: a head is already running from $dir (pid $(cat "$dir/head.pid"))" >&2
        exit 2
    fi
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)
    (cd "$root" && uv sync -q)
    # this head's own token: Ray 2.60 authenticates jobs; ~/.ray/auth_token stays untouched
    [[ -s "$dir/auth_token" ]] || python3 -c "import secrets; print(secrets.token_hex(32), end='')" >"$dir/auth_token"
    export RAY_AUTH_MODE=token RAY_AUTH_TOKEN_PATH="$dir/auth_token"
    # on SIGTERM Ray 2.60 first drains the node for Serve, up to 30 s, which a head of
    # data builds only waits out: no drain unless the caller asks for one
    export RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S=${RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S:-0}
    env -u VIRTUAL_ENV setsid "$root/.venv/bin/ray" start --head --block --temp-dir "$dir" \
        --port $((6379 + off)) --ray-client-server-port $((10001 - off)) \
        --dashboard-host 127.0.0.1 --dashboard-port $((8265 + off)) \
        --dashboard-agent-listen-port $((52365 + off)) ${RAY_HEAD_ARGS:-} \
        >"$dir/head.log" 2>&1 &
    echo $! >"$dir/head.pid"
    for _ in $(seq 900); do  # 180 s in 0.2 s polls
        grep -q "block forever" "$dir/head.log" && break
        kill -0 "$(cat "$dir/head.pid")" 2>/dev/null || { tail -5 "$dir/head.log" >&2; exit 1; }
        sleep 0.2
    done
    grep -q "block forever" "$dir/head.log" || { echo "ray-head: not up after 180 s, see $dir/head.log" >&2; exit 1; }
    echo "export RAY_AUTH_MODE=token RAY_AUTH_TOKEN_PATH=$dir/auth_token"
    echo "export RAY_ADDRESS=http://127.0.0.1:$((8265 + off))"
    ;;
stop)
    pid=$(cat "$dir/head.pid" 2>/dev/null) || { echo "ray-head: no head.pid in $dir" >&2; exit 2; }
    kill "$pid" 2>/dev/null || true
    # the head is the leader of its own process group (setsid): wait for the whole group
    for _ in $(seq 300); do kill -0 -- "-$pid" 2>/dev/null || break; sleep 0.2; done
    # anything of this head still alive after a minute: by force
    if kill -0 -- "-$pid" 2>/dev/null; then kill -KILL -- "-$pid" 2>/dev/null || true; fi
    rm -f "$dir/head.pid"
    echo "unset RAY_ADDRESS RAY_AUTH_MODE RAY_AUTH_TOKEN_PATH"
    ;;
*)
    echo "usage: ray-head.sh start|stop DIR [PORT_OFFSET]" >&2
    exit 2
    ;;
esac
