"""``flask --app app …`` commands: operators, configuration, workers and the cron scheduler."""
from __future__ import annotations

import secrets
import sys

import click
from flask import current_app
from flask.cli import AppGroup, with_appcontext

from stocklink import jobs
from stocklink.infra.extensions import db
from stocklink.infra.queues import ALL_QUEUES, worker_redis
from stocklink.infra.worker import run_cron, run_worker

# Every job module, and through them every registered platform client, is loaded before a
# worker takes its first job (see worker).
from stocklink.jobs import backfill, catalogue, inbox, mail, push, report  # noqa: F401
from stocklink.jobs.catalogue_import import run_now
from stocklink.models import Channel, User
from stocklink.services.merchant_settings import SettingsError
from stocklink.services.provisioning import load_file

user_cli = AppGroup("user", help="Manage operators who log in to the console.")
config_cli = AppGroup("config", help="Load merchant settings from a TOML file.")
catalogue_cli = AppGroup("catalogue", help="Import Smaregi's or a channel's catalogue.")


@user_cli.command("create")
@click.argument("username")
@click.option("--password", help="Password (prompted when omitted; generated with --generate).")
@click.option("--generate", is_flag=True, help="Generate a password and print it once.")
def create_user(username: str, password: str | None, generate: bool):
    """Create an operator, or reset the password of an existing one."""
    if generate:
        password = secrets.token_urlsafe(12)
    elif not password:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    if len(password) < 8:
        raise click.ClickException("password must be at least 8 characters")
    user = db.session.query(User).filter_by(username=username).first() or User(username=username)
    user.set_password(password)
    db.session.add(user)
    db.session.commit()
    click.echo(f"operator {username} saved" + (f", password: {password}" if generate else ""))


@config_cli.command("load")
@click.argument("path", type=click.Path(dir_okay=False))
def load_config(path: str):
    """Validate and apply a TOML settings file; nothing is saved if any key is wrong."""
    try:
        result = load_file(path)
    except SettingsError as exc:
        raise click.ClickException(f"not loaded, nothing saved: {exc}") from None
    click.echo(f"loaded {result['settings']} settings and {result['channels']} channel(s) from {path}")


@catalogue_cli.command("import")
@click.argument("source")
def import_catalogue(source: str):
    """Import SOURCE's catalogue and wait for it: ``smaregi``, or a channel's name (or id).

    A channel's import links its listings by the SKU rule; the first channel imported becomes
    the base channel. Exits non-zero with the reason when the import fails."""
    channel = None
    if source != "smaregi":
        channel = db.session.scalars(db.select(Channel).where(Channel.name == source)).first()
        if channel is None and source.isdigit():
            channel = db.session.get(Channel, int(source))
        if channel is None:
            names = ", ".join(db.session.scalars(db.select(Channel.name).order_by(Channel.id))) or "none"
            raise click.ClickException(f"no channel named {source!r} (channels: {names}; or 'smaregi')")
    try:
        row = run_now("smaregi" if channel is None else "channel", channel)
    except Exception as exc:  # the row holds the reason; the operator reads it here
        raise click.ClickException(f"import failed: {exc}") from None
    click.echo(f"imported {row.done} item(s): {row.created} new, {row.updated} updated, {row.removed} marked removed"
               + (f", {row.linked} linked, {row.problems} with a problem to fix on the link screen"
                  if channel is not None else ""))


@click.command("worker")
@click.argument("queues", nargs=-1)
@click.option("--burst", is_flag=True, help="Stop when the queues are empty.")
@click.option("--fork", is_flag=True, help="Run each job in a forked child (RQ's default Worker).")
@with_appcontext
def worker(queues, burst, fork):
    """Run an RQ worker (with RQ's scheduler for retries) on the named queues, default all.

    By default jobs run in the worker process itself (RQ's SimpleWorker): the job modules are
    imported once, here, so a job never runs code newer than the worker started with, and a
    notification is not slowed by a fork and fresh imports.
    A lost Redis does not end it: it reconnects with backoff and goes on (stocklink/infra/worker.py).
    """
    jobs.set_app(current_app._get_current_object())
    with worker_redis() as connection:
        run_worker(connection, list(queues or ALL_QUEUES), fork=fork, burst=burst)


@click.command("cron")
@with_appcontext
def cron():
    """Run RQ's cron scheduler with stocklink's periodic jobs (stocklink/jobs/cron_config.py);
    it keeps running through a Redis outage."""
    with worker_redis() as connection:
        run_cron(connection)
    sys.exit(0)


def init_app(app) -> None:
    app.cli.add_command(user_cli)
    app.cli.add_command(config_cli)
    app.cli.add_command(catalogue_cli)
    app.cli.add_command(worker)
    app.cli.add_command(cron)
