"""Time from ``run_deployment`` to Completed: the demo batch vs a bare Prefect deployment.

Starts a local stack with ``wtb prefect up``'s code (server on a free loopback port, process
work pool, prefect.yaml deployed, a worker), deploys ``bench/deploy_bare.py:bare_batch`` (40
trivial tasks on 4 threads, like the demo's 40 case tasks) to the same pool, then triggers each
deployment from Python in alternation and reports the wall time to a final state, the run's
own duration (start to end, from the server) and the scheduling lag (creation to start:
the worker's poll). Stops what it started, by PID.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (
    machine_info,
    machine_line,
    markdown_table,
    print_table,
    update_results_section,
)

SECTION = "deployment"
TITLE = "Deployments: run_deployment to Completed (demo batch vs bare Prefect)"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _one(name: str, parameters: dict[str, object]) -> tuple[float, float, float]:
    from prefect.client.orchestration import get_client
    from prefect.deployments import run_deployment

    t0 = time.perf_counter()
    fr = run_deployment(name, parameters=parameters, timeout=900, poll_interval=0.5)
    wall = time.perf_counter() - t0
    assert fr.state is not None and fr.state.is_completed(), (name, fr.state)
    with get_client(sync_client=True) as client:
        run = client.read_flow_run(fr.id)
    assert run.start_time and run.end_time and run.created
    lag = (run.start_time - run.created).total_seconds()
    return wall, (run.end_time - run.start_time).total_seconds(), lag


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args(argv)
    from prefect.settings import PREFECT_API_URL, PREFECT_HOME, temporary_settings

    from wtb_cli import prefect_stack

    home = Path(tempfile.mkdtemp(prefix="wtb-bench-deploy-"))
    os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
    stack = prefect_stack.up(home, port=_free_port(), database_url=f"sqlite:///{home}/wtb.db")
    try:
        env = prefect_stack.stack_env(home, stack.api_url)
        prefect_stack._prefect(
            ["deploy", "bench/deploy_bare.py:bare_batch", "--name", "bare", "--pool", stack.pool],
            env,
            prefect_stack.repo_dir(),
        )
        runs = {
            "WTB demo batch (27 combos x 40 cases, 40 tasks)": (
                "wtb-batch-from-file/demo-batch",
                {},
            ),
            "bare Prefect flow (40 trivial tasks)": ("bare-batch/bare", {"tasks": 40}),
        }
        samples: dict[str, list[tuple[float, float, float]]] = {k: [] for k in runs}
        with temporary_settings({PREFECT_API_URL: stack.api_url, PREFECT_HOME: home}):
            for _ in range(args.rounds):
                for label, (name, params) in runs.items():
                    samples[label].append(_one(name, params))
    finally:
        prefect_stack.down(home)
    headers = ["deployment", "rounds", "wall to Completed s", "run duration s", "start lag s"]
    rows = []
    for label, got in samples.items():
        med = [statistics.median(x[i] for x in got) for i in range(3)]
        rows.append([label, len(got), f"{med[0]:.2f}", f"{med[1]:.2f}", f"{med[2]:.2f}"])
    wtb_wall = statistics.median(x[0] for x in samples[next(iter(runs))])
    bare_wall = statistics.median(x[0] for x in samples[list(runs)[1]])
    info = machine_info(["prefect", "sqlalchemy"])
    print(f"Machine: {machine_line(info)}")
    print_table(TITLE, headers, rows)
    note = (
        f"WTB minus bare: {wtb_wall - bare_wall:.2f} s of wall time for 1,080 scored results "
        f"(1,552 node runs with prefix sharing); both include the worker's poll and the flow-run "
        "process start. Medians of alternating rounds."
    )
    print(note)
    if not args.no_write:
        body = f"Machine: {machine_line(info)}\n\n{markdown_table(headers, rows)}\n\n{note}\n"
        print(f"wrote {update_results_section(SECTION, TITLE, body)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
