"""The baseline for benchmarks/fanout.py: bare Celery tasks that do nothing but count."""

from __future__ import annotations

import os

import redis
from celery import Celery

BROKER = os.environ.get("BENCH_BROKER", "redis://127.0.0.1:6379/0")
app = Celery("bare", broker=BROKER)
app.conf.update(
    task_serializer="json",
    accept_content=["json"],
    task_acks_late=True,
    worker_prefetch_multiplier=1,
    task_ignore_result=True,
)
counter = redis.Redis.from_url(BROKER)


@app.task(name="bare.noop")
def noop(round_key: str) -> None:
    counter.incr(round_key)
