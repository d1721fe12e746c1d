"""Loading merchant settings from a TOML file, so a hosting provider provisions without clicks.

Everything is validated before anything is saved: an unknown key or a bad value raises
:class:`~stocklink.services.merchant_settings.SettingsError` naming it, and the database is left as it was.

    [smaregi]          # keys of SCHEMA under "smaregi."
    [sync]             # "sync."   [notify]  "notify."   [display]  [csv]
    [[channels]]       # kind, name, base_url, enabled, range_min, range_max, poll_interval_s,
                       # speed_up, heal_after_minutes, credentials = {…}, settings = {…}
"""
from __future__ import annotations

import tomllib
from typing import Any

from flask import current_app
from sqlalchemy import inspect, select

from stocklink.domain.text import clean_pasted_secret
from stocklink.infra.extensions import db
from stocklink.models import Channel
from stocklink.models._types import utcnow
from stocklink.platforms.declaration import N_, InvalidSetting
from stocklink.platforms.registry import PLATFORMS
from stocklink.services import merchant_settings
from stocklink.services.channel_clients import credentials_of, save_credentials
from stocklink.services.merchant_settings import SettingsError

SECTIONS = {"smaregi", "sync", "notify", "display", "csv"}
CHANNEL_KEYS = {"kind", "name", "base_url", "enabled", "range_min", "range_max", "poll_interval_s",
                "speed_up", "heal_after_minutes", "credentials", "settings"}
HEAL_AFTER_MAX = 10_080  # minutes: a week


def validate_channel(index: int, raw: dict) -> dict:
    """Check one ``[[channels]]`` entry (or the channel form) and return clean values."""
    where = f"channels[{index}]"
    if not isinstance(raw, dict):
        raise SettingsError(where, N_("must be a table"))
    for key in raw:
        if key not in CHANNEL_KEYS:
            raise SettingsError(f"{where}.{key}", N_("unknown setting"))
    kind = raw.get("kind")
    if kind not in PLATFORMS:
        raise SettingsError(f"{where}.kind", N_("must be one of %(choices)s"), choices=", ".join(PLATFORMS))
    name = raw.get("name")
    if not isinstance(name, str) or not name.strip() or len(name) > 100:
        raise SettingsError(f"{where}.name", N_("is required (at most %(length)s characters)"), length=100)
    platform = PLATFORMS[kind]
    base_url = raw.get("base_url", platform.base_url)
    if not isinstance(base_url, str) or not base_url.startswith(("http://", "https://")):
        raise SettingsError(f"{where}.base_url", N_("must be an http(s) URL"))
    if "{" in base_url:  # Shopify's is the shop's own: https://{shop}.myshopify.com
        raise SettingsError(f"{where}.base_url", N_("is required for this kind (%(example)s)"),
                            example=platform.base_url)
    clean: dict[str, Any] = {"kind": kind, "name": name.strip(), "base_url": base_url.strip().rstrip("/")}
    for key, default in (("enabled", True), ("speed_up", False)):
        value = raw.get(key, default)
        if not isinstance(value, bool):
            raise SettingsError(f"{where}.{key}", N_("must be true or false"))
        clean[key] = value
    for key, default, low, high in (("range_min", 0, 0, 999_999_999),
                                    ("range_max", PLATFORMS[kind].range_max, 0, 999_999_999),
                                    ("poll_interval_s", 180, 60, 86_400)):
        value = raw.get(key, default)
        if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
            raise SettingsError(f"{where}.{key}", N_("must be an integer from %(low)s to %(high)s"),
                                low=low, high=high)
        clean[key] = value
    # Blank (None) is off: the merchant reflects differences by hand (seed 002 差異商品 → 反映).
    heal = raw.get("heal_after_minutes")
    if heal is not None and (not isinstance(heal, int) or isinstance(heal, bool) or not 1 <= heal <= HEAL_AFTER_MAX):
        raise SettingsError(f"{where}.heal_after_minutes", N_("must be an integer from %(low)s to %(high)s"),
                            low=1, high=HEAL_AFTER_MAX)
    clean["heal_after_minutes"] = heal
    if clean["range_min"] > clean["range_max"]:
        raise SettingsError(f"{where}.range_min", N_("must not be above %(other)s"), other="range_max")
    creds = raw.get("credentials", {})
    if not isinstance(creds, dict) or not all(isinstance(v, str) for v in creds.values()):
        raise SettingsError(f"{where}.credentials", N_("must be a table of strings"))
    for key in creds:
        if key not in PLATFORMS[kind].credential_keys:
            raise SettingsError(f"{where}.credentials.{key}", N_("unknown credential for this kind"))
    clean["credentials"] = {k: clean_pasted_secret(v) for k, v in creds.items()}
    try:
        clean["settings"] = platform.clean_settings(raw.get("settings", {}))
    except InvalidSetting as exc:
        key = f"{where}.settings" if exc.key == "settings" else f"{where}.settings.{exc.key}"
        raise SettingsError.from_reason(key, exc) from None
    return clean


def upsert_channel(values: dict, channel: Channel | None = None) -> Channel:
    """Create or update a channel from validated values; credentials only when given."""
    if channel is None:
        channel = db.session.scalars(select(Channel).where(Channel.name == values["name"])).first()
    if channel is None:
        channel = Channel(kind=values["kind"], name=values["name"])
        db.session.add(channel)
    for key in ("kind", "name", "base_url", "enabled", "range_min", "range_max", "poll_interval_s", "speed_up",
                "heal_after_minutes"):
        setattr(channel, key, values[key])
    if channel.id and dict(channel.settings or {}) != values["settings"]:
        channel.credentials_updated_at = utcnow()  # fixed settings may resume a stopped channel, like new credentials
    channel.settings = values["settings"]
    if values["credentials"]:
        current = credentials_of(channel) if channel.id else {}
        merged = {**current, **values["credentials"]}
        if merged != current:  # unchanged credentials must not count as "new" (SPEC §6 resume)
            save_credentials(channel, merged, by_merchant=True)
    db.session.flush()
    return channel


def apply_config(data: dict) -> dict:
    """Validate a parsed TOML document, then save it all in one transaction."""
    flat: dict[str, Any] = {}
    for section, values in data.items():
        if section == "channels":
            continue
        if section not in SECTIONS:
            raise SettingsError(section, N_("unknown section"))
        if not isinstance(values, dict):
            raise SettingsError(section, N_("must be a table"))
        for key, value in values.items():
            flat[f"{section}.{key}"] = value
    clean = merchant_settings.validate(flat)
    channels = data.get("channels", [])
    if not isinstance(channels, list):
        raise SettingsError("channels", N_("must be an array of tables ([[channels]])"))
    clean_channels = [validate_channel(i, c) for i, c in enumerate(channels)]
    names = [c["name"] for c in clean_channels]
    if len(set(names)) != len(names):
        raise SettingsError("channels", N_("channel names must be unique"))
    try:
        merchant_settings.save(clean, commit=False)
        for values in clean_channels:
            upsert_channel(values)
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise
    return {"settings": len(clean), "channels": len(clean_channels)}


def load_file(path: str) -> dict:
    """Parse and apply a TOML file. :raise SettingsError: on a syntax error, naming the file."""
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(path, N_("TOML syntax error: %(error)s"), error=str(exc)) from None
    except OSError as exc:
        raise SettingsError(path, N_("cannot read: %(reason)s"), reason=exc.strerror) from None
    return apply_config(data)


def load_on_start(app) -> None:
    """``STOCKLINK_CONFIG=path``: apply the file when the app starts (skipped before migrations)."""
    with app.app_context():
        if not inspect(db.engine).has_table("settings"):
            current_app.logger.warning("STOCKLINK_CONFIG not applied: run migrations first")
            return
        load_file(app.config["STOCKLINK_CONFIG"])
