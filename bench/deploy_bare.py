"""A bare Prefect flow shaped like the demo batch (40 tasks, 4 threads): bench/deployment.py."""

from __future__ import annotations

from prefect import flow, task
from prefect.cache_policies import NO_CACHE
from prefect.task_runners import ThreadPoolTaskRunner


@task(cache_policy=NO_CACHE, persist_result=False)
def unit(i: int) -> int:
    return i


@flow(name="bare-batch", task_runner=ThreadPoolTaskRunner(max_workers=4), persist_result=True)
def bare_batch(tasks: int = 40) -> int:
    """As many trivial tasks as the demo batch has cases, on the same runner.

    Args:
        tasks: Number of tasks to submit.
    """
    futures = [unit.submit(i) for i in range(tasks)]
    return sum(f.result() for f in futures)
