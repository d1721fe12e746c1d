"""A web order job that failed does not block its channel's polls or its order's registration:
the failed job's hash (kept for ``failure_ttl``) is replaced by a new job, while a job still
queued is not queued twice."""
from __future__ import annotations

from rq.job import Job, JobStatus
from rq.registry import FailedJobRegistry

from stocklink.infra.queues import ORDERS, get_queue, get_redis
from stocklink.jobs.orders import enqueue_poll, enqueue_registration


def _fail(job_id: str) -> None:
    """Leave the job as RQ's worker leaves a job that raised: out of the queue, in the failed registry."""
    queue = get_queue(ORDERS)
    job = Job.fetch(job_id, connection=get_redis())
    queue.remove(job)
    job.set_status(JobStatus.FAILED)
    FailedJobRegistry(queue=queue).add(job, ttl=86400, exc_string="TemporaryError: Shopify throttled the request")


def test_a_failed_poll_does_not_block_the_next_polls_of_its_channel(app):
    """After a poll job failed, the next webhook or cron tick queues a poll again."""
    with app.app_context():
        assert enqueue_poll(7) is True
        assert enqueue_poll(7) is False  # still queued: one poll per channel
        _fail("orders-poll-7")
        assert enqueue_poll(7) is True
        assert Job.fetch("orders-poll-7", connection=get_redis()).get_status() == JobStatus.QUEUED
        assert get_queue(ORDERS).job_ids.count("orders-poll-7") == 1


def test_a_registration_whose_retries_ran_out_is_queued_again_by_the_sweep(app):
    """The sweep's enqueue of an order whose job failed for good queues a new job."""
    with app.app_context():
        assert enqueue_registration(42) is True
        _fail("order-register-42")
        assert enqueue_registration(42) is True
        assert enqueue_registration(42) is False
