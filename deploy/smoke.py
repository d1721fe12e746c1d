"""Deploy smoke: run the deploy recipe as written, once, and check that a POS sale reaches every channel.

The files under test are the ones an operator installs: the systemd units in
``deploy/systemd/`` (``--recipe systemd``, the default) or the ``Procfile`` (``--recipe
procfile``). Their command lines are read from those files and run as they stand; only the
install locations are mapped to this checkout (``/opt/stocklink`` → the repository,
``/opt/stocklink/.venv/bin`` → the running interpreter's venv, ``/etc/stocklink/…`` → files
written into a temporary directory). systemd itself is not needed: each unit's
``ExecStart`` runs with the unit's working directory and an environment made, as systemd makes
it, of its ``EnvironmentFile`` only. The environment file is ``deploy/stocklink.env.example``
with the values of this run filled in.

Around the recipe, standing in for the merchant's world: the sandboxes (Smaregi, ColorMe Shop,
Shopify, NextEngine) on loopback in this process, a TOML configuration pointing stocklink at
them (``deploy/shop1.toml.example`` with the sandboxes' addresses and credentials: only base
URLs differ from production), and three products linked on each channel. The
links are written into the database here, as the demo does: the console has no import command.

Then: ``/healthz`` must answer 200 with two workers registered, the operator created by the
recipe must log in, and a POS sale in the sandbox Smaregi must reach ColorMe, Shopify and
NextEngine within ``--timeout`` seconds. Prints ``deploy smoke OK …`` or the failure (with
the end of each process's log) and exits non-zero; every process it started is stopped.

    python deploy/smoke.py --database-url postgresql://…/empty_db --redis-url redis://127.0.0.1:6379/0

Needs an empty database (it refuses one with tables) and a Redis database of its own. The smoke
itself imports only what ``requirements.txt`` installs: ``.ci/run`` runs it with the python of a
venv made from that file alone, as a deployment's is, so a runtime package missing there fails CI.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

UNIT_DIR = ROOT / "deploy" / "systemd"
ENV_EXAMPLE = ROOT / "deploy" / "stocklink.env.example"
TOML_EXAMPLE = ROOT / "deploy" / "shop1.toml.example"
PROCFILE = ROOT / "Procfile"
README = ROOT / "README.md"

# Install locations the units and the README name, mapped to this checkout.
INSTALL_DIR = "/opt/stocklink"
INSTALL_BIN = "/opt/stocklink/.venv/bin"
ENV_FILE = "/etc/stocklink/stocklink.env"
CONFIG_FILE = "/etc/stocklink/shop1.toml"

# The operator's one-time commands, as the README's deploy section writes them (checked there).
SYSTEMD_OPERATOR_COMMANDS = [
    f"{INSTALL_BIN}/flask --app app --env-file {ENV_FILE} config load {CONFIG_FILE}",
    f"{INSTALL_BIN}/flask --app app --env-file {ENV_FILE} user create owner",
]
PROCFILE_OPERATOR_COMMANDS = ["flask --app app config load", "flask --app app user create owner"]

# systemd's default PATH for services.
SYSTEMD_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
STOP_TIMEOUT = 30.0
HOLD_S = 3.0
WORKERS = 2
PRODUCTS = [("9000001", "SMOKE-A", "スモーク Tシャツ", 10), ("9000002", "SMOKE-B", "スモーク マグカップ", 20),
            ("9000003", "SMOKE-C", "スモーク 手ぬぐい", 5)]
SALE = [("9000001", 3), ("9000002", 1)]  # SMOKE-C is not sold: it must stay as it was
CHANNEL_KINDS = ("colorme", "shopify", "nextengine")


class SmokeFailure(Exception):
    pass


def log(message: str) -> None:
    print(f"[deploy-smoke] {message}", flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- reading the files under test ------------------------------------------------------------

def parse_unit(path: Path) -> dict[str, dict[str, list[str]]]:
    """A systemd unit file as {section: {key: [values…]}} (repeated keys keep every value)."""
    sections: dict[str, dict[str, list[str]]] = {}
    current = None
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
            continue
        if current is None or "=" not in line:
            raise SmokeFailure(f"{path.name}: cannot read line {raw!r}")
        key, value = (part.strip() for part in line.split("=", 1))
        current.setdefault(key, []).append(value)
    return sections


def parse_env_file(text: str) -> dict[str, str]:
    """systemd's EnvironmentFile= format: KEY=VALUE lines, # and ; comments, optional quotes."""
    env = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        key, sep, value = line.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
            raise SmokeFailure(f"environment file: cannot read line {raw!r}")
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        env[key] = value
    return env


def parse_procfile(path: Path) -> dict[str, str]:
    processes = {}
    for raw in path.read_text(encoding="utf-8").splitlines():
        if not raw.strip() or raw.lstrip().startswith("#"):
            continue
        name, sep, command = raw.partition(":")
        if not sep or not re.fullmatch(r"[a-z][a-z0-9_-]*", name.strip()):
            raise SmokeFailure(f"Procfile: cannot read line {raw!r}")
        processes[name.strip()] = command.strip()
    return processes


def expand_exec(line: str, env: dict[str, str], instance: str = "") -> list[str]:
    """An ExecStart= line as systemd runs it: words, ``%i`` / ``%%``, ``${VAR}`` (one word) and
    ``$VAR`` (split on whitespace) from the unit's environment."""
    if line[:1] in "-@+!:":
        raise SmokeFailure(f"exec prefix {line[0]!r} not handled: {line}")

    def specifiers(word: str) -> str:
        def one(match):
            spec = match.group(1)
            if spec == "%":
                return "%"
            if spec == "i":
                return instance
            raise SmokeFailure(f"specifier %{spec} not handled: {line}")
        return re.sub(r"%(.)", one, word)

    argv: list[str] = []
    for word in shlex.split(line):
        word = specifiers(word)
        whole = re.fullmatch(r"\$([A-Za-z_][A-Za-z0-9_]*)", word)
        if whole:
            argv.extend(env.get(whole.group(1), "").split())
            continue
        argv.append(re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}", lambda m: env.get(m.group(1), ""), word))
    return argv


@dataclass
class Paths:
    """Where this run puts what the recipe expects in /opt and /etc."""
    venv_bin: Path
    env_file: Path
    config_file: Path

    def localize(self, word: str) -> str:
        for prefix, local in ((INSTALL_BIN, str(self.venv_bin)), (ENV_FILE, str(self.env_file)),
                              (CONFIG_FILE, str(self.config_file)), (INSTALL_DIR, str(ROOT))):
            if word == prefix or word.startswith(prefix + "/"):
                return local + word[len(prefix):]
        return word


@dataclass
class Command:
    name: str
    argv: list[str]
    cwd: Path
    env: dict[str, str]
    stdin: str | None = None


@dataclass
class Recipe:
    """What the deploy files say to run, mapped to this machine."""
    migrate: Command
    config_load: Command
    user_create: Command
    web: Command
    workers: list[Command]
    cron: Command
    port: int
    checks: list[str] = field(default_factory=list)


def systemd_recipe(paths: Paths, env_file_vars: dict[str, str], port: int, password: str) -> Recipe:
    units = {p.name: parse_unit(p) for p in UNIT_DIR.iterdir() if p.suffix in (".service", ".target")}
    expected = {"stocklink-migrate.service", "stocklink-web.service", "stocklink-worker@.service",
                "stocklink-cron.service", "stocklink.target"}
    if set(units) != expected:
        raise SmokeFailure(f"deploy/systemd holds {sorted(units)}, expected {sorted(expected)}")
    checks = []
    for name in ("stocklink-web.service", "stocklink-worker@.service", "stocklink-cron.service"):
        service = units[name]["Service"]
        if service.get("Restart") != ["always"]:
            raise SmokeFailure(f"{name}: Restart= must be always, is {service.get('Restart')}")
        if "stocklink-migrate.service" not in " ".join(units[name]["Unit"].get("Requires", [])):
            raise SmokeFailure(f"{name}: must require stocklink-migrate.service")
        checks.append(f"{name} Restart=always, requires the migration")
    if units["stocklink-migrate.service"]["Service"].get("Type") != ["oneshot"]:
        raise SmokeFailure("stocklink-migrate.service must be Type=oneshot")

    def command(unit_name: str, label: str, instance: str = "") -> Command:
        service = units[unit_name]["Service"]
        if service.get("ExecStartPre"):
            raise SmokeFailure(f"{unit_name}: ExecStartPre= not handled by the smoke")
        (exec_start,) = service["ExecStart"]
        (env_file,) = service["EnvironmentFile"]
        (cwd,) = service["WorkingDirectory"]
        if env_file.lstrip("-") != ENV_FILE:
            raise SmokeFailure(f"{unit_name}: EnvironmentFile={env_file}, the README says {ENV_FILE}")
        env = {"PATH": SYSTEMD_PATH, "LANG": "C.UTF-8", "HOME": str(paths.env_file.parent),
               **parse_env_file(paths.env_file.read_text(encoding="utf-8"))}
        argv = [paths.localize(word) for word in expand_exec(exec_start, env, instance)]
        return Command(label, argv, Path(paths.localize(cwd)), env)

    readme = " ".join(README.read_text(encoding="utf-8").split())  # lines may wrap
    operator = []
    for text in SYSTEMD_OPERATOR_COMMANDS:
        if text not in readme:
            raise SmokeFailure(f"README no longer shows the command the smoke runs: {text}")
        operator.append([paths.localize(word) for word in shlex.split(text)])
    operator_env = {"PATH": SYSTEMD_PATH, "LANG": "C.UTF-8", "HOME": str(paths.env_file.parent)}
    return Recipe(
        migrate=command("stocklink-migrate.service", "migrate"),
        config_load=Command("config-load", operator[0], ROOT, operator_env),
        user_create=Command("user-create", operator[1], ROOT, operator_env, stdin=f"{password}\n{password}\n"),
        web=command("stocklink-web.service", "web"),
        workers=[command("stocklink-worker@.service", f"worker@{n}", str(n)) for n in range(1, WORKERS + 1)],
        cron=command("stocklink-cron.service", "cron"),
        port=port, checks=checks)


def procfile_recipe(paths: Paths, env_file_vars: dict[str, str], port: int, password: str) -> Recipe:
    """A Heroku-style platform: the variables set in its settings, the venv on PATH, ``$PORT``,
    each process type run by a shell in the application directory."""
    processes = parse_procfile(PROCFILE)
    if set(processes) != {"release", "web", "worker", "cron"}:
        raise SmokeFailure(f"Procfile holds {sorted(processes)}, expected release, web, worker, cron")
    env = {"PATH": f"{paths.venv_bin}:{SYSTEMD_PATH}", "LANG": "C.UTF-8", "HOME": str(paths.env_file.parent),
           "PORT": str(port), **env_file_vars}

    def command(kind: str, label: str) -> Command:
        return Command(label, ["/bin/sh", "-c", f"exec {processes[kind]}"], ROOT, env)

    readme = " ".join(README.read_text(encoding="utf-8").split())  # lines may wrap
    for text in PROCFILE_OPERATOR_COMMANDS:
        if text not in readme:
            raise SmokeFailure(f"README no longer shows the command the smoke runs: {text}")
    return Recipe(
        migrate=command("release", "release"),
        config_load=Command("config-load", ["flask", "--app", "app", "config", "load", str(paths.config_file)],
                            ROOT, env),
        user_create=Command("user-create", ["flask", "--app", "app", "user", "create", "owner"], ROOT, env,
                            stdin=f"{password}\n{password}\n"),
        web=command("web", "web"),
        workers=[command("worker", f"worker.{n}") for n in range(1, WORKERS + 1)],
        cron=command("cron", "cron"),
        port=port)


# -- the merchant's world: sandboxes, configuration, links --------------------------------------

@dataclass
class World:
    server: object
    url: str
    smaregi: object
    colorme: object
    shopify: object
    nextengine: object
    customer_code: str
    items: dict[str, dict[str, str]]  # product code -> {kind: channel identifier}

    def stop(self) -> None:
        self.server.stop()


def start_world() -> World:
    import logging

    from werkzeug.middleware.dispatcher import DispatcherMiddleware

    from stocklink.sandbox import colorme, nextengine, shopify
    from stocklink.sandbox import smaregi as smaregi_sandbox

    sm = smaregi_sandbox.SmaregiSandbox(contract_id="smoke")
    cm, sh = colorme.ColorMeSandbox(), shopify.ShopifySandbox()
    ne = nextengine.NextEngineSandbox(rotate="on_expiry", auto_process=True)

    def not_found(_environ, start_response):
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"not found"]

    app = DispatcherMiddleware(not_found, {
        "/smaregi": smaregi_sandbox.create_app(sm), "/colorme": colorme.create_app(cm),
        "/shopify": shopify.create_app(sh), "/nextengine": nextengine.create_app(ne)})
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # not a line per sandbox request
    server = smaregi_sandbox.serve_smaregi(app)
    items = {}
    for product_id, code, name, stock in PRODUCTS:
        sm.add_product(product_id, name, code=code, price=1000, stock=stock)
        ne.add_goods(code, stock, name=name)
        items[code] = {"colorme": str(cm.add_product(name, stocks=stock, model_number=code)),
                       "shopify": str(sh.add_item(code, stock)), "nextengine": code}
    return World(server, server.url, sm, cm, sh, ne, secrets.token_urlsafe(12), items)


def toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)  # a JSON string is a TOML basic string
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {toml_value(v)}" for k, v in value.items()) + " }"
    raise TypeError(value)


def merchant_toml(world: World) -> str:
    """``deploy/shop1.toml.example`` with this run's values: the Smaregi contract and every
    channel's base URL and credentials are the sandboxes'; every other key of the example is
    kept (so ``config load`` must accept them)."""
    import tomllib

    data = tomllib.loads(TOML_EXAMPLE.read_text(encoding="utf-8"))
    url, sm = world.url, world.smaregi
    data["smaregi"].update({
        "api_generation": "legacy", "contract_id": sm.contract_id, "access_token": sm.access_token,
        "store_id": "1", "customer_code": world.customer_code, "legacy_base_url": f"{url}/smaregi/access/",
        "platform_id_base_url": f"{url}/smaregi", "platform_api_base_url": f"{url}/smaregi",
        "client_id": sm.client_id, "client_secret": sm.client_secret})
    ne_tokens = world.nextengine.login()
    credentials = {"colorme": {"access_token": world.colorme.issue_token()},
                   "shopify": {"access_token": world.shopify.issue_token()},
                   "nextengine": {"access_token": ne_tokens["access_token"],
                                  "refresh_token": ne_tokens["refresh_token"]}}
    kinds = sorted(c["kind"] for c in data.get("channels", []))
    if kinds != sorted(CHANNEL_KINDS):
        raise SmokeFailure(f"the example TOML has channels {kinds}, the smoke links {sorted(CHANNEL_KINDS)}")
    for channel in data["channels"]:
        kind = channel["kind"]
        channel["base_url"] = f"{url}/{kind}"
        channel["credentials"] = credentials[kind]
        if kind == "shopify":
            channel["settings"] = {**channel.get("settings", {}), "location_id": str(world.shopify.default_location)}
    lines = []
    for section, values in data.items():
        if section == "channels":
            continue
        lines += [f"[{section}]"] + [f"{k} = {toml_value(v)}" for k, v in values.items()] + [""]
    for channel in data["channels"]:
        lines += ["[[channels]]"] + [f"{k} = {toml_value(v)}" for k, v in channel.items()] + [""]
    text = "\n".join(lines)
    if "CHANGE-ME" in text:
        raise SmokeFailure("the example TOML has a CHANGE-ME the smoke does not fill")
    return text


def env_file_text(database_url: str, redis_url: str, instance: Path, port: int) -> str:
    """``deploy/stocklink.env.example`` with this run's values: every key of the example is kept
    (so the app must start with them), the CHANGE-ME ones and the addresses replaced."""
    values = {
        "DATABASE_URL": database_url, "REDIS_URL": redis_url, "SECRET_KEY": secrets.token_urlsafe(48),
        "STOCKLINK_INSTANCE_PATH": str(instance), "STOCKLINK_BIND": f"127.0.0.1:{port}",
        "STOCKLINK_PUBLIC_URL": f"http://127.0.0.1:{port}",
        "SESSION_COOKIE_SECURE": "0",  # the smoke talks plain HTTP to gunicorn (no nginx)
        "MAIL_SERVER": "127.0.0.1", "MAIL_PORT": "25", "MAIL_USE_TLS": "0", "MAIL_USERNAME": "",
        "MAIL_PASSWORD": "", "MAIL_SUPPRESS_SEND": "1",
    }
    out, seen = [], set()
    for line in ENV_EXAMPLE.read_text(encoding="utf-8").splitlines():
        key = line.split("=", 1)[0].strip() if "=" in line and not line.lstrip().startswith("#") else None
        if key in values:
            out.append(f"{key}={values[key]}")
            seen.add(key)
        else:
            out.append(line)
    out += [f"{k}={v}" for k, v in values.items() if k not in seen]
    text = "\n".join(out) + "\n"
    if "CHANGE-ME" in text:
        raise SmokeFailure("the example environment file has a CHANGE-ME the smoke does not fill")
    return text


def link_products(world: World, env: dict[str, str]) -> None:
    """Products as Smaregi knows them and their listings on the three channels, in the database."""
    os.environ.update(env)
    from sqlalchemy import select

    from stocklink import create_app
    from stocklink.infra.extensions import db
    from stocklink.models import Channel, Listing, Product

    app = create_app()
    with app.app_context():
        channels = {c.kind: c for c in db.session.scalars(select(Channel))}
        if set(channels) != set(CHANNEL_KINDS):
            raise SmokeFailure(f"config load made channels {sorted(channels)}")
        for product_id, code, name, stock in PRODUCTS:
            product = Product(smaregi_product_id=product_id, product_code=code, name=name, stock_managed=True,
                              smaregi_stock=stock, reserved=0)
            db.session.add(product)
            for kind, channel in channels.items():
                db.session.add(Listing(channel=channel, product=product, sku=code, title=name,
                                       identifier=world.items[code][kind],
                                       last_confirmed_quantity=stock if kind == "nextengine" else None))
        db.session.commit()
        db.engine.dispose()


def channel_stock(world: World, code: str) -> dict[str, int | None]:
    items = world.items[code]
    return {"smaregi": world.smaregi.stock_of(next(p for p, c, _n, _s in PRODUCTS if c == code)),
            "colorme": world.colorme.stock(int(items["colorme"])),
            "shopify": world.shopify.stock(int(items["shopify"])),
            "nextengine": world.nextengine.stock(items["nextengine"])}


# -- processes -------------------------------------------------------------------------------------

@dataclass
class Child:
    name: str
    proc: subprocess.Popen
    log_path: Path

    def alive(self) -> bool:
        return self.proc.poll() is None

    def tail(self, lines: int = 25) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


class Processes:
    """Every process the smoke starts, each in its own session so that stopping it stops what it
    forked (gunicorn's workers); :meth:`stop_all` runs whatever happened."""

    def __init__(self, log_dir: Path):
        self.log_dir = log_dir
        self.children: list[Child] = []
        self.finished: list[Child] = []

    def start(self, command: Command) -> Child:
        log_path = self.log_dir / f"{command.name}.log"
        with open(log_path, "wb") as out:
            proc = subprocess.Popen(command.argv, cwd=command.cwd, env=command.env, stdout=out,
                                    stderr=subprocess.STDOUT,
                                    stdin=subprocess.PIPE if command.stdin is not None else subprocess.DEVNULL,
                                    start_new_session=True)
        if command.stdin is not None:
            proc.stdin.write(command.stdin.encode())
            proc.stdin.close()
        child = Child(command.name, proc, log_path)
        self.children.append(child)
        return child

    def run(self, command: Command, timeout: float = 120.0) -> Child:
        """Run a one-shot command to its end; fail unless it exits 0."""
        log(f"$ {shlex.join(command.argv)}")
        child = self.start(command)
        started = time.monotonic()
        try:
            child.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise SmokeFailure(f"{command.name} still running after {timeout:.0f} s:\n{child.tail()}") from None
        finally:
            if child.alive():
                _signal_group(child.proc, signal.SIGKILL)
                child.proc.wait(timeout=5)
            self.children.remove(child)
            self.finished.append(child)
        if child.proc.returncode != 0:
            raise SmokeFailure(f"{command.name} exited with {child.proc.returncode}:\n{child.tail()}")
        log(f"  {command.name} done in {time.monotonic() - started:.1f} s")
        return child

    def check_alive(self) -> None:
        for child in self.children:
            if not child.alive():
                raise SmokeFailure(f"{child.name} exited with {child.proc.returncode}:\n{child.tail()}")

    def stop_all(self) -> list[str]:
        """SIGTERM (what systemd sends), SIGKILL after STOP_TIMEOUT; returns the ones killed."""
        for child in self.children:
            if child.alive():
                _signal_group(child.proc, signal.SIGTERM)
        killed = []
        deadline = time.monotonic() + STOP_TIMEOUT
        for child in self.children:
            try:
                child.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                killed.append(child.name)
                _signal_group(child.proc, signal.SIGKILL)
                child.proc.wait(timeout=5)
            _signal_group(child.proc, signal.SIGKILL)  # anything left in its group
        self.finished += self.children
        self.children = []
        return killed


def _signal_group(proc: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def wait_until(predicate, timeout: float, what: str, processes: Processes, interval: float = 0.2):
    deadline = time.monotonic() + timeout
    while True:
        processes.check_alive()
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            raise SmokeFailure(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


# -- the run ------------------------------------------------------------------------------------

def recorded_errors() -> list[str]:
    """The errors stocklink recorded for the merchant (the console's error list)."""
    from sqlalchemy import select

    from stocklink import create_app
    from stocklink.infra.extensions import db
    from stocklink.models import ErrorRecord

    app = create_app()
    with app.app_context():
        try:
            return [f"{e.level}: {e.message}" for e in db.session.scalars(select(ErrorRecord))]
        finally:
            db.engine.dispose()


def check_empty_redis(redis_url: str) -> None:
    from redis import Redis

    redis = Redis.from_url(redis_url)
    try:
        keys = redis.dbsize()
    finally:
        redis.close()
    if keys:
        raise SmokeFailure(f"the Redis database is not empty ({keys} keys): give the smoke one of its own")


def check_empty_database(database_url: str) -> None:
    from sqlalchemy import create_engine, inspect

    from stocklink.config import _database_url

    os.environ["DATABASE_URL"] = database_url
    engine = create_engine(_database_url(Path(tempfile.gettempdir())))
    try:
        tables = inspect(engine).get_table_names()
    finally:
        engine.dispose()
    if tables:
        raise SmokeFailure(f"the database is not empty ({len(tables)} tables): give the smoke a fresh one")


def login(base: str, password: str) -> None:
    """The operator the recipe created logs in to the console."""
    import requests

    session = requests.Session()
    page = session.get(f"{base}/login", timeout=10)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    if page.status_code != 200 or not token:
        raise SmokeFailure(f"GET /login answered {page.status_code} without a CSRF token")
    answer = session.post(f"{base}/login", data={"csrf_token": token.group(1), "username": "owner",
                                                 "password": password}, timeout=10, allow_redirects=False)
    if answer.status_code != 302:
        raise SmokeFailure(f"login as owner answered {answer.status_code}")
    dashboard = session.get(f"{base}/", timeout=10, allow_redirects=False)
    if dashboard.status_code != 200:
        raise SmokeFailure(f"the dashboard after login answered {dashboard.status_code}")


def smoke(args) -> str:
    import requests
    from redis import Redis
    from rq import Worker

    check_empty_database(args.database_url)
    check_empty_redis(args.redis_url)
    tmp = Path(tempfile.mkdtemp(prefix="stocklink-deploy-smoke-"))
    (tmp / "instance").mkdir()
    (tmp / "logs").mkdir()
    paths = Paths(venv_bin=Path(args.venv_bin), env_file=tmp / "stocklink.env", config_file=tmp / "shop1.toml")
    processes = Processes(tmp / "logs")
    world = None
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    password = secrets.token_urlsafe(12)
    ok = False
    try:
        world = start_world()
        # The merchant registers the webhook URL in Smaregi's 管理画面 (here: the sandbox's).
        world.smaregi.configure(notify_url=f"{base}/webhooks/smaregi/{world.customer_code}", notify_mode="legacy")
        log(f"sandboxes at {world.url}; recipe {args.recipe}; work files in {tmp}")
        paths.env_file.write_text(env_file_text(args.database_url, args.redis_url, tmp / "instance", port),
                                  encoding="utf-8")
        paths.config_file.write_text(merchant_toml(world), encoding="utf-8")
        env_vars = parse_env_file(paths.env_file.read_text(encoding="utf-8"))
        build = systemd_recipe if args.recipe == "systemd" else procfile_recipe
        recipe = build(paths, env_vars, port, password)
        for check in recipe.checks:
            log(f"checked: {check}")

        started = time.monotonic()
        processes.run(recipe.migrate, timeout=180)
        processes.run(recipe.config_load)
        processes.run(recipe.user_create)
        link_products(world, env_vars)
        log(f"linked {len(PRODUCTS)} products on {len(CHANNEL_KINDS)} channels")
        services_at = time.monotonic()
        for command in [recipe.web, *recipe.workers, recipe.cron]:
            log(f"start {command.name}: {shlex.join(command.argv)}")
            processes.start(command)

        def healthy():
            try:
                response = requests.get(f"{base}/healthz", timeout=3)
            except requests.RequestException:
                return None
            return response.status_code == 200 and response.json()
        health = wait_until(healthy, 90, "/healthz to answer 200", processes)
        redis = Redis.from_url(args.redis_url)
        try:
            wait_until(lambda: len(Worker.all(connection=redis)) == WORKERS, 30,
                       f"{WORKERS} RQ workers to register", processes)
        finally:
            redis.close()
        up_s = time.monotonic() - started
        log(f"services up {time.monotonic() - services_at:.1f} s after their start: /healthz "
            f"{health['checks']}, {WORKERS} workers registered")
        login(base, password)
        log("operator owner logged in")

        before = {code: channel_stock(world, code) for _pid, code, _n, _s in PRODUCTS}
        sold_at = time.monotonic()
        world.smaregi.sell(SALE)
        send = world.smaregi.sends[-1]
        if not send.ok:
            raise SmokeFailure(f"the webhook was not accepted: {send.last}")
        expected = {}
        for product_id, code, _name, stock in PRODUCTS:
            sold = sum(q for pid, q in SALE if pid == product_id)
            expected[code] = {k: stock - sold for k in ("smaregi", "colorme", "shopify", "nextengine")}

        def converged():
            return all(channel_stock(world, code) == expected[code] for code in expected)
        try:
            wait_until(converged, args.timeout, "the sale to reach every channel", processes, interval=0.1)
        except SmokeFailure:
            now = {code: channel_stock(world, code) for code in expected}
            raise SmokeFailure(f"after {args.timeout:.0f} s: channels {now}, expected {expected} "
                               f"(before the sale: {before})") from None
        reach_s = time.monotonic() - sold_at
        time.sleep(HOLD_S)  # and stays so: nothing applied twice by a late retry
        now = {code: channel_stock(world, code) for code in expected}
        if now != expected:
            raise SmokeFailure(f"{HOLD_S:.0f} s after converging: channels {now}, expected {expected}")
        errors = recorded_errors()
        if errors:
            raise SmokeFailure(f"stocklink recorded errors: {errors}")
        ok = True
        return (f"deploy smoke OK ({args.recipe}): PostgreSQL, Redis {args.redis_url}, gunicorn + "
                f"{WORKERS} workers + cron up in {up_s:.1f} s; POS sale reached ColorMe, Shopify and "
                f"NextEngine in {reach_s:.1f} s")
    finally:
        stop_at = time.monotonic()
        running = len(processes.children)
        killed = processes.stop_all()
        if running:
            log(f"stopped {running} processes in {time.monotonic() - stop_at:.1f} s")
        if world is not None:
            world.stop()
        if killed:
            log(f"did not stop within {STOP_TIMEOUT:.0f} s of SIGTERM, killed: {', '.join(killed)}")
        if not ok:
            for child in processes.finished:
                log(f"--- end of {child.name}.log (exit {child.proc.returncode})\n{child.tail()}")
        if ok and not args.keep:
            import shutil
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            log(f"kept {tmp}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--database-url", default=os.environ.get("DATABASE_URL"),
                        help="an empty PostgreSQL database (default: $DATABASE_URL)")
    parser.add_argument("--redis-url", default=os.environ.get("REDIS_URL"),
                        help="a Redis database for this run only (default: $REDIS_URL)")
    parser.add_argument("--recipe", choices=("systemd", "procfile"), default="systemd")
    parser.add_argument("--venv-bin", default=str(Path(sys.executable).parent),
                        help="stands in for /opt/stocklink/.venv/bin (default: this interpreter's)")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds for the sale to reach every channel")
    parser.add_argument("--keep", action="store_true", help="keep the work files and logs")
    args = parser.parse_args(argv)
    if not args.database_url or not args.redis_url:
        parser.error("--database-url and --redis-url (or DATABASE_URL and REDIS_URL) are required")
    try:
        log(smoke(args))
    except SmokeFailure as exc:
        log(f"FAILED: {exc}")
        return 1
    except Exception:  # noqa: BLE001 - a broken smoke fails CI as clearly as a broken deploy
        import traceback
        traceback.print_exc()
        log("FAILED: the smoke itself raised (above)")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
