"""Settings: Smaregi, sync rules, notifications and channels, each with "test connection"."""
from __future__ import annotations

import ipaddress
from urllib.parse import quote, urlsplit

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy import select

from stocklink.infra.crypto import mask
from stocklink.infra.extensions import db
from stocklink.jobs.inbox import retry_now
from stocklink.jobs.push import enqueue_push
from stocklink.models import Channel
from stocklink.platforms.base import PlatformError
from stocklink.platforms.registry import PLATFORMS
from stocklink.services import merchant_settings
from stocklink.services.channel_clients import UnsupportedChannel, credentials_of, make_channel_client
from stocklink.services.incidents import maybe_resume
from stocklink.services.merchant_settings import SCHEMA, SettingsError
from stocklink.services.merchant_text import connection_text, platform_error_text
from stocklink.services.provisioning import upsert_channel, validate_channel
from stocklink.services.smaregi_stock import smaregi_client

bp = Blueprint("settings", __name__, url_prefix="/settings")

SMAREGI_FIELDS = ["api_generation", "contract_id", "access_token", "client_id", "client_secret", "store_id",
                  "customer_code", "webhook_secret_header", "webhook_secret", "registration_mode",
                  "terminal_id", "legacy_base_url", "platform_id_base_url", "platform_api_base_url"]
SYNC_FIELDS = ["sync.unlinkable_mode", "sync.link_second_key", "sync.stale_after_minutes", "display.images",
               "csv.encoding"]
NOTIFY_FIELDS = [k for k in SCHEMA if k.startswith("notify.")]

# The labels of settings/index.html, so a refused value is named as the merchant saw it.
SETTING_LABELS = {
    "smaregi.api_generation": _l("API generation"), "smaregi.contract_id": _l("Contract ID"),
    "smaregi.access_token": _l("Access token (legacy)"), "smaregi.client_id": _l("Client ID (Platform)"),
    "smaregi.client_secret": _l("Client secret (Platform)"), "smaregi.store_id": _l("Store ID"),
    "smaregi.customer_code": _l("Customer code"),
    "smaregi.webhook_secret_header": _l("Webhook secret header (Platform)"),
    "smaregi.webhook_secret": _l("Webhook secret (Platform)"),
    "smaregi.registration_mode": _l("Register web sales as"),
    "smaregi.terminal_id": _l("Terminal ID (transactions)"), "smaregi.legacy_base_url": _l("Legacy API URL"),
    "smaregi.platform_id_base_url": _l("Platform ID URL"), "smaregi.platform_api_base_url": _l("Platform API URL"),
    "sync.unlinkable_mode": _l("Products that cannot be linked"), "display.images": _l("Show product images"),
    "csv.encoding": _l("CSV export encoding"), "sync.link_second_key": _l("Second link key"),
    "sync.stale_after_minutes": _l("Warn when a channel has not synced for (minutes)"),
    "notify.error_to": _l("Error mail to"), "notify.unlinkable_to": _l("Unlinkable mail to"),
    "notify.report_to": _l("Report mail to"), "notify.low_stock_to": _l("Low-stock mail to"),
    "notify.errors_on": _l("Errors"), "notify.unlinkable_on": _l("Unlinkable products"),
    "notify.report_on": _l("Per-run reports"), "notify.low_stock_on": _l("Low stock"),
    "notify.low_stock_threshold": _l("Low-stock threshold (all products)"),
}


def webhook_url() -> str | None:
    """The URL to register in Smaregi, whole: the customer code in its path is what authenticates
    Smaregi (:mod:`stocklink.web.webhooks`), so a masked one could not be pasted. Built on
    ``STOCKLINK_PUBLIC_URL`` if set, else on this request's host. ``None`` until a customer code is saved.
    Shown only to a logged-in operator, never logged."""
    code = merchant_settings.get("smaregi.customer_code")
    if not code:
        return None
    base = current_app.config.get("PUBLIC_URL") or request.host_url
    return f"{base.rstrip('/')}/webhooks/smaregi/{quote(code, safe='')}"


def unreachable_host(url: str) -> bool:
    """Whether ``url``'s host is this machine only (localhost, a loopback address), which
    Smaregi's servers cannot reach."""
    host = (urlsplit(url).hostname or "").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback or ipaddress.ip_address(host).is_unspecified
    except ValueError:
        return False


def _form_values(keys: list[str]) -> dict:
    """Read a form: blank secrets keep the stored value; unchecked boxes are false."""
    values = {}
    for key in keys:
        field = SCHEMA[key]
        if field.kind == "bool":
            values[key] = request.form.get(key) == "1"
        elif field.kind == "secret":
            if request.form.get(key, "").strip():
                values[key] = request.form[key]
        elif key in request.form:
            values[key] = request.form[key]
    return values


@bp.get("/")
def index():
    smaregi = merchant_settings.get_all("smaregi.")
    masked = {k: mask(smaregi[k]) for k in ("access_token", "client_secret", "customer_code", "webhook_secret")}
    channels = db.session.scalars(select(Channel).order_by(Channel.id)).all()
    url = webhook_url()
    return render_template("settings/index.html", smaregi=smaregi, masked=masked, values=merchant_settings.get_all(),
                           channels=channels, webhook_url=url, webhook_unreachable=bool(url) and unreachable_host(url),
                           schema=SCHEMA)


def _flash_refused(exc: SettingsError, label) -> None:
    """Why nothing was saved, in the reader's language: the field by ``label(key)``, then the reason
    (``params["other"]`` names another field, so it is labelled too)."""
    params = {name: label(value) if name == "other" else value for name, value in exc.params.items()}
    flash(_("Not saved: %(key)s %(message)s", key=label(exc.key), message=_(exc.template, **params)), "error")


def _setting_label(key: str) -> str:
    label = SETTING_LABELS.get(key)
    return str(label) if label is not None else key


def _save(keys: list[str], message: str, *, then=None):
    try:
        merchant_settings.save(_form_values(keys))
    except SettingsError as exc:
        db.session.rollback()
        _flash_refused(exc, _setting_label)
        return redirect(url_for("settings.index"), 303)
    if then is not None:
        then()
    flash(message, "info")
    return redirect(url_for("settings.index"), 303)


@bp.post("/smaregi")
def save_smaregi():
    # New credentials: notifications that failed against Smaregi are retried at once.
    return _save([f"smaregi.{k}" for k in SMAREGI_FIELDS], _("Smaregi settings saved."), then=retry_now)


@bp.post("/sync")
def save_sync():
    return _save(SYNC_FIELDS, _("Sync settings saved."))


@bp.post("/notify")
def save_notify():
    return _save(NOTIFY_FIELDS, _("Notification settings saved."))


@bp.post("/smaregi/test")
def test_smaregi():
    try:
        result = smaregi_client().test_connection()
    except PlatformError as exc:
        flash(_("Smaregi connection failed: %(error)s", error=platform_error_text(exc)), "error")
    except Exception as exc:
        flash(_("Smaregi connection failed: %(error)s", error=type(exc).__name__), "error")
    else:
        flash(_("Smaregi connection OK: %(result)s", result=connection_text(result)), "info")
    return redirect(url_for("settings.index"), 303)


def _as_int(value: str) -> int | str:
    """A typed number as an int (full-width digits too); anything else is left for validation to
    refuse by name (``str.isdigit`` is true for "²", which ``int`` refuses)."""
    try:
        return int(value)
    except ValueError:
        return value


def _channel_form(channel: Channel | None) -> dict:
    """The channel form as a ``[[channels]]`` entry; only the kind's own credentials and settings
    are read. Blank secrets keep the stored value; a form without the settings fields (an
    older page) keeps the stored settings."""
    kind = channel.kind if channel else request.form.get("kind", "")
    platform = PLATFORMS.get(kind)
    raw = {
        "kind": kind,
        "name": request.form.get("name", ""),
        "base_url": request.form.get("base_url", "").strip() or (platform.base_url if platform else ""),
        "enabled": request.form.get("enabled") == "1",
        "speed_up": request.form.get("speed_up") == "1",
    }
    for key in ("range_min", "range_max", "poll_interval_s", "heal_after_minutes"):
        value = request.form.get(key, "").strip()
        if value:
            raw[key] = _as_int(value)
    if platform is None:
        return raw
    raw["credentials"] = {k: request.form[f"cred_{k}"] for k in platform.credential_keys
                          if request.form.get(f"cred_{k}", "").strip()}
    if request.form.get("settings_shown") != "1":
        raw["settings"] = dict(channel.settings or {}) if channel else {}
        return raw
    settings = {}
    for spec in platform.settings:
        name = f"set_{spec.key}"
        if spec.kind == "bool":
            settings[spec.key] = request.form.get(name) == "1"
        elif request.form.get(name, "").strip():
            settings[spec.key] = request.form[name].strip()
    raw["settings"] = settings
    return raw


CHANNEL_LABELS = {"kind": _l("Kind"), "name": _l("Name"), "base_url": _l("Base URL"),
                  "range_min": _l("Stock range minimum"), "range_max": _l("Stock range maximum"),
                  "poll_interval_s": _l("Order poll interval (seconds)"),
                  "heal_after_minutes": _l("Reflect differences automatically after (minutes)")}


def _field_label(platform, key: str) -> str:
    """The form's label for the key a validation error names (``settings.location_id`` → ロケーションID)."""
    label = platform.label_of(key) if platform else None
    return str(label if label is not None else CHANNEL_LABELS.get(key, key))


def _render_channel_form(channel: Channel | None, kind: str | None, *, form=None, status: int = 200):
    masked = {k: mask(v) for k, v in credentials_of(channel).items()} if channel else {}
    return render_template("settings/channel.html", channel=channel, platform=PLATFORMS.get(kind or ""),
                           platforms=PLATFORMS, form=form, masked=masked,
                           stored=dict(channel.settings or {}) if channel else {}), status


@bp.route("/channels/new", methods=["GET", "POST"])
@bp.route("/channels/<int:channel_id>", methods=["GET", "POST"])
def channel_form(channel_id: int | None = None):
    """A new channel: first its kind (``?kind=``), then the form with that kind's credentials and
    settings, each with its label. :raise 404: no such channel."""
    channel = db.session.get(Channel, channel_id) if channel_id else None
    if channel_id and channel is None:
        abort(404)
    kind = channel.kind if channel else (request.form.get("kind") or request.args.get("kind"))
    if request.method == "POST":
        try:
            values = validate_channel(0, _channel_form(channel))
            saved = upsert_channel(values, channel)
            resumed = maybe_resume(saved)
            db.session.commit()
        except SettingsError as exc:
            db.session.rollback()
            platform = PLATFORMS.get(kind or "")
            _flash_refused(exc, lambda key: _field_label(platform, key.replace("channels[0].", "")))
            return _render_channel_form(channel, kind, form=request.form, status=400)
        if resumed:
            enqueue_push(saved.id)
            flash(_("New credentials saved and no error left: the channel resumed."), "info")
        flash(_("Channel saved."), "info")
        return redirect(url_for("settings.index"), 303)
    return _render_channel_form(channel, kind)


@bp.post("/channels/<int:channel_id>/test")
def test_channel(channel_id: int):
    channel = db.session.get(Channel, channel_id) or abort(404)
    try:
        result = make_channel_client(channel).test_connection()
    except UnsupportedChannel:
        flash(_("This channel kind is not supported yet."), "error")
    except PlatformError as exc:
        flash(_("%(name)s connection failed: %(error)s", name=channel.name, error=platform_error_text(exc)), "error")
    except Exception as exc:
        flash(_("%(name)s connection failed: %(error)s", name=channel.name, error=type(exc).__name__), "error")
    else:
        flash(_("%(name)s connection OK: %(result)s", name=channel.name, result=connection_text(result)), "info")
    return redirect(url_for("settings.index"), 303)
