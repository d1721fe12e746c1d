"""RQ's worker and cron scheduler as ``flask worker`` / ``flask cron`` run them: they outlive
a Redis restart.

What RQ does alone when Redis goes away: an idle worker retries its dequeue, but an error
anywhere else (a heartbeat, a job's bookkeeping) ends its work loop, and the process exits;
its scheduler process (delayed jobs, retries) dies and is started again only at the next
10-minute maintenance; and a restarted Redis has forgotten the worker's registration, so
``/healthz`` saw no worker though one was working. The cron scheduler stops on the first
error. Here:

- an idle worker retries a lost Redis at most 5 s apart (RQ: up to 60 s);
- a worker whose loop ends on a Redis failure waits for Redis (backoff :data:`RECONNECT`)
  and starts again as a new worker; only a stop signal (or ``--burst``) ends the command;
- a worker beats every :data:`KEEP_ALIVE` seconds from a thread, also while a job runs,
  and registers itself again when Redis no longer knows it;
- a dead scheduler process is started again within :data:`KEEP_ALIVE` seconds of the
  worker's next heartbeat (if this worker gets the scheduler lock);
- the cron scheduler keeps its loop through Redis errors and registers itself again.
"""
from __future__ import annotations

import logging
import signal
import threading
import time

from redis import Redis
from redis.exceptions import RedisError
from rq import SimpleWorker, Worker, worker_registration
from rq.cron import CronScheduler
from rq.exceptions import StopRequested

from stocklink.infra.queues import WORKER_TTL

log = logging.getLogger("rq.worker")

KEEP_ALIVE = 5.0  # seconds between a worker's heartbeats
RECONNECT = (1, 2, 5, 10, 30)  # seconds between attempts to reach a lost Redis (the last repeats)
HEALTHY_RUN = 60.0  # a worker that ran this long before failing starts the backoff again


def _pause(failures: int) -> float:
    return RECONNECT[min(failures, len(RECONNECT)) - 1]


class KeptAlive:
    """Mixin for RQ worker classes: heartbeat thread, re-registration, scheduler restart."""

    # RQ's idle dequeue retries a lost Redis 1, 2, 4 … up to 60 s apart: that long after Redis
    # is back, queued jobs (and the scheduler process's restart) would still wait.
    max_connection_wait_time = 5.0
    stop_signalled = False
    _keep_scheduler = False
    _scheduler_checked = 0.0

    def bootstrap(self, *args, **kwargs):
        super().bootstrap(*args, **kwargs)
        self._beats_stop, self._beat_lock = threading.Event(), threading.Lock()
        threading.Thread(target=self._beat, name="stocklink-heartbeat", daemon=True).start()

    def _beat(self) -> None:
        while not self._beats_stop.wait(KEEP_ALIVE):
            with self._beat_lock:  # teardown waits for a beat under way: no registering after death
                if self._beats_stop.is_set():
                    return
                try:
                    super().heartbeat()
                    self.register_again_if_forgotten()
                except RedisError:  # the work loop meets the same failure and handles it
                    pass

    def register_again_if_forgotten(self) -> bool:
        """A restarted (or flushed) Redis has lost this worker: register it again. Returns
        whether it had to."""
        with self.connection.pipeline(transaction=False) as pipe:
            pipe.sismember(self.redis_workers_keys, self.key)
            pipe.hexists(self.key, "birth")
            listed, described = pipe.execute()
        if listed and described:
            return False
        with self.connection.pipeline() as pipe:
            pipe.hset(self.key, mapping=self.serialize())
            worker_registration.register(self, pipe)
            pipe.expire(self.key, self.worker_ttl + 60)
            pipe.execute()
        self.log.warning("Worker %s: Redis had forgotten this worker; registered again", self.name)
        return True

    def heartbeat(self, timeout=None, pipeline=None):
        super().heartbeat(timeout, pipeline)
        if pipeline is None:
            self._restart_scheduler_if_dead()

    def _start_scheduler(self, burst=False, *args, **kwargs):
        self._keep_scheduler = not burst
        super()._start_scheduler(burst, *args, **kwargs)

    def _restart_scheduler_if_dead(self) -> None:
        """In the main thread (it forks): RQ itself looks only every 10 minutes. Not once the
        worker is stopping: Ctrl-C reaches the scheduler process too, and one started again then
        would outlive the stop (``make run`` waited on it)."""
        if not self._keep_scheduler or self.scheduler is None or self.is_horse or self._stop_requested:
            return
        process = self.scheduler._process
        if process is not None and process.is_alive():
            return
        if time.monotonic() - self._scheduler_checked < KEEP_ALIVE:
            return
        self._scheduler_checked = time.monotonic()
        self.scheduler.acquire_locks(auto_start=True)

    def request_stop(self, signum, frame):
        self.stop_signalled = True
        super().request_stop(signum, frame)

    def request_force_stop(self, signum, frame):
        self.stop_signalled = True
        super().request_force_stop(signum, frame)

    def teardown(self):
        if hasattr(self, "_beats_stop"):
            self._beats_stop.set()
            with self._beat_lock:
                pass
        try:
            super().teardown()
        except RedisError as exc:  # Redis is gone: the registration expires by itself
            self.log.warning("Worker %s: could not register its end (%s)", self.name, exc)
            if self.pubsub_thread:  # RQ's command listener would retry for ever
                self.pubsub_thread.stop()
                self.pubsub_thread.join(timeout=1)


class StocklinkSimpleWorker(KeptAlive, SimpleWorker):
    pass


class StocklinkForkWorker(KeptAlive, Worker):
    pass


def _stop(signum, frame):
    raise StopRequested()


def wait_for_redis(connection: Redis, failures: int) -> int:
    """Sleep and ping until Redis answers; returns the failures counted meanwhile."""
    while True:
        time.sleep(_pause(failures))
        try:
            connection.ping()
            return failures
        except RedisError as exc:
            failures += 1
            log.error("Redis still unreachable (%s); next attempt in %s s", exc, _pause(failures))


def run_worker(connection: Redis, queue_names: list[str], fork: bool = False, burst: bool = False) -> None:
    """Work the queues until a stop signal; a Redis failure means reconnect and go on."""
    worker_class = StocklinkForkWorker if fork else StocklinkSimpleWorker
    failures = 0
    while True:
        worker = worker_class(queue_names, connection=connection, worker_ttl=WORKER_TTL)
        started = time.monotonic()
        try:
            worker.work(with_scheduler=True, burst=burst)
        except RedisError as exc:  # before the loop (registration) or in RQ's teardown
            log.error("Worker %s: Redis failed (%s: %s)", worker.name, type(exc).__name__, exc)
        except StopRequested:
            return
        if burst or worker.stop_signalled:
            return
        failures = 1 if time.monotonic() - started > HEALTHY_RUN else failures + 1
        log.error("Worker %s stopped working (Redis lost?); starting again once Redis answers, "
                  "first attempt in %s s", worker.name, _pause(failures))
        signal.signal(signal.SIGINT, _stop)
        signal.signal(signal.SIGTERM, _stop)
        try:
            failures = wait_for_redis(connection, failures)
        except StopRequested:
            return


def run_cron(connection: Redis, config: str = "stocklink.jobs.cron_config") -> None:
    """RQ's cron scheduler loop, kept through Redis errors (RQ's own ``start`` ends on the first)."""
    scheduler = CronScheduler(connection=connection)
    scheduler.load_config_from_file(config)
    scheduler._install_signal_handlers()  # SIGINT/SIGTERM raise StopRequested
    registered, failures = False, 0
    try:
        while True:
            try:
                if not registered:
                    scheduler.register_birth()
                    registered = True
                if scheduler.enqueue_jobs():
                    scheduler.save()
                scheduler.heartbeat()  # registers it again when a restarted Redis forgot it
                failures = 0
            except RedisError as exc:
                failures += 1
                scheduler.log.error("CronScheduler %s: Redis failed (%s: %s); retrying in %s s",
                                    scheduler.name, type(exc).__name__, exc, _pause(failures))
                time.sleep(_pause(failures))
                continue
            # Beat at least every KEEP_ALIVE seconds, so a restarted Redis soon knows it again.
            time.sleep(min(scheduler.calculate_sleep_interval(), KEEP_ALIVE))
    except (StopRequested, KeyboardInterrupt):
        scheduler.log.info("CronScheduler %s: stop requested", scheduler.name)
    finally:
        try:
            scheduler.register_death()
        except Exception as exc:  # Redis gone, or it had forgotten us: the entry goes stale
            scheduler.log.warning("CronScheduler %s: could not register its end (%s)", scheduler.name, exc)
