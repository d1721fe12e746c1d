"""Merchant settings: a fixed schema, stored in the ``settings`` table, secrets encrypted.

One place defines every key (:data:`SCHEMA`); the Settings screens, the TOML loader
(``STOCKLINK_CONFIG`` / ``flask config load``) and the jobs all read and write through
:func:`get`, :func:`get_all` and :func:`save`.
"""
from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from typing import Any

from flask import current_app

from stocklink.domain.linking import DEFAULT_UNLINKABLE_MODE, UnlinkableMode
from stocklink.domain.matching import SECOND_KEYS
from stocklink.domain.text import clean_pasted_secret
from stocklink.infra.crypto import SecretUnreadable, decrypt, encrypt
from stocklink.infra.extensions import db
from stocklink.models.settings import Setting
from stocklink.platforms.declaration import N_, InvalidSetting
from stocklink.platforms.smaregi import LEGACY_BASE_URL, PLATFORM_API_BASE_URL, PLATFORM_ID_BASE_URL


class SettingsError(InvalidSetting):
    """A merchant setting (or a TOML key) is unknown or its value is invalid; ``key`` names it,
    ``message`` is the English sentence, ``template`` and ``params`` make it in the reader's language."""


@dataclass(frozen=True)
class Field:
    kind: str  # str | secret | int | bool | choice | emails | url
    default: Any = ""
    choices: tuple[str, ...] = ()
    minimum: int | None = None
    maximum: int | None = None


SCHEMA: dict[str, Field] = {
    "smaregi.api_generation": Field("choice", "legacy", ("legacy", "platform")),
    "smaregi.contract_id": Field("str"),
    "smaregi.access_token": Field("secret"),
    "smaregi.client_id": Field("str"),
    "smaregi.client_secret": Field("secret"),
    "smaregi.store_id": Field("str", "1"),
    "smaregi.customer_code": Field("secret"),
    "smaregi.webhook_secret_header": Field("str", "x-sdsch-secret"),
    "smaregi.webhook_secret": Field("secret"),
    "smaregi.registration_mode": Field("choice", "shipment", ("shipment", "transaction")),
    "smaregi.terminal_id": Field("str", "1"),
    # Smaregi's production URLs, as the clients declare them.
    "smaregi.legacy_base_url": Field("url", LEGACY_BASE_URL),
    "smaregi.platform_id_base_url": Field("url", PLATFORM_ID_BASE_URL),
    "smaregi.platform_api_base_url": Field("url", PLATFORM_API_BASE_URL),
    # The link rule's second key (紐づけ条件の追加): none, the Smaregi product id, or the base channel's code.
    "sync.link_second_key": Field("choice", SECOND_KEYS[0], SECOND_KEYS),
    "sync.unlinkable_mode": Field("choice", DEFAULT_UNLINKABLE_MODE.value, tuple(m.value for m in UnlinkableMode)),
    "notify.error_to": Field("emails"),
    "notify.unlinkable_to": Field("emails"),
    "notify.report_to": Field("emails"),
    "notify.low_stock_to": Field("emails"),
    "notify.errors_on": Field("bool", True),
    "notify.unlinkable_on": Field("bool", True),
    "notify.report_on": Field("bool", True),
    "notify.low_stock_on": Field("bool", False),
    "notify.low_stock_threshold": Field("int", 0, minimum=0, maximum=999_999_999),
    # Minutes without a successful read or write, while work waits, before a channel is warned about.
    "sync.stale_after_minutes": Field("int", 30, minimum=5, maximum=1440),
    "display.images": Field("bool", True),
    "csv.encoding": Field("choice", "cp932", ("cp932", "utf-8")),
}

SECRET_KINDS = {"secret"}
_EMAIL = re.compile(r"^[^@\s,;]+@[^@\s,;]+\.[^@\s,;]+$")


def _coerce(key: str, field: Field, value: Any) -> Any:
    """Validate and normalise one value, or raise :class:`SettingsError` naming the key."""
    if field.kind in ("str", "secret", "url", "choice", "emails") and not isinstance(value, str):
        raise SettingsError(key, N_("must be a string"))
    if field.kind == "secret":
        return clean_pasted_secret(value)
    if field.kind == "str":
        return value.strip()
    if field.kind == "url":
        value = value.strip()
        if not re.match(r"^https?://[^\s]+$", value):
            raise SettingsError(key, N_("must be an http(s) URL"))
        return value
    if field.kind == "choice":
        value = value.strip()
        if value not in field.choices:
            raise SettingsError(key, N_("must be one of %(choices)s"), choices=", ".join(field.choices))
        return value
    if field.kind == "emails":
        addresses = [a.strip() for a in re.split(r"[,;\s]+", value) if a.strip()]
        bad = [a for a in addresses if not _EMAIL.match(a)]
        if bad:
            raise SettingsError(key, N_("not an e-mail address: %(address)s"), address=bad[0])
        return ", ".join(addresses)
    if field.kind == "bool":
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("1", "true", "on", "yes", "0", "false", "off", "no"):
            return value.lower() in ("1", "true", "on", "yes")
        raise SettingsError(key, N_("must be true or false"))
    if field.kind == "int":
        if isinstance(value, bool):
            raise SettingsError(key, N_("must be an integer"))
        try:
            number = int(str(value).strip())
        except ValueError:
            raise SettingsError(key, N_("must be an integer")) from None
        if field.minimum is not None and number < field.minimum:
            raise SettingsError(key, N_("must be at least %(minimum)s"), minimum=field.minimum)
        if field.maximum is not None and number > field.maximum:
            raise SettingsError(key, N_("must be at most %(maximum)s"), maximum=field.maximum)
        return number
    raise SettingsError(key, N_("unsupported kind"))  # pragma: no cover - schema error


def validate(values: dict[str, Any]) -> dict[str, Any]:
    """Check every key and value; return the normalised mapping. Raises on the first problem."""
    clean = {}
    for key, value in values.items():
        if key not in SCHEMA:
            raise SettingsError(key, N_("unknown setting"))
        clean[key] = _coerce(key, SCHEMA[key], value)
    return clean


def save(values: dict[str, Any], *, commit: bool = True) -> None:
    """Validate all values, then store them; nothing is stored if one is invalid."""
    clean = validate(values)
    for key, value in clean.items():
        secret = SCHEMA[key].kind in SECRET_KINDS
        stored = encrypt(value) if secret else json.dumps(value, ensure_ascii=False)
        row = db.session.get(Setting, key)
        if row is None:
            db.session.add(Setting(key=key, value=stored, secret=secret))
        else:
            row.value, row.secret = stored, secret
    forget_cached()
    if commit:
        db.session.commit()


CACHE_SECONDS = 1.0
_RAISE = object()


def cached(key: str) -> Any:
    """A setting as this process read it at most :data:`CACHE_SECONDS` ago.

    For the webhook's hot path (customer code, contract, unlinkable mode): a change saved
    in another process applies there within a second; :func:`save` clears this process's copy.
    """
    now = time.monotonic()
    entry = current_app.extensions.get("stocklink_settings_cache")
    if entry is None or now - entry[0] > CACHE_SECONDS:
        entry = (now, get_all(unreadable=None))
        current_app.extensions["stocklink_settings_cache"] = entry
    return entry[1][key]


def forget_cached() -> None:
    current_app.extensions.pop("stocklink_settings_cache", None)


def get(key: str) -> Any:
    """One setting's value, or its default."""
    field = SCHEMA[key]
    row = db.session.get(Setting, key)
    if row is None:
        return field.default
    return decrypt(row.value) if row.secret else json.loads(row.value)


def get_all(prefix: str = "", *, unreadable: Any = _RAISE) -> dict[str, Any]:
    """Every setting under ``prefix`` (``"smaregi."``) with defaults, keys without the prefix.

    A secret that cannot be decrypted raises, or is given as ``unreadable`` when that is passed.
    """
    rows = {r.key: r for r in db.session.query(Setting).filter(Setting.key.startswith(prefix))}
    result = {}
    for key, field in SCHEMA.items():
        if not key.startswith(prefix):
            continue
        row = rows.get(key)
        if row is None:
            value = field.default
        elif not row.secret:
            value = json.loads(row.value)
        else:
            try:
                value = decrypt(row.value)
            except SecretUnreadable:
                if unreadable is _RAISE:
                    raise
                value = unreadable
        result[key[len(prefix):]] = value
    return result


def smaregi_configured() -> bool:
    """Whether enough of Smaregi is set to talk to it (contract id and a credential)."""
    s = get_all("smaregi.")
    if not s["contract_id"]:
        return False
    if s["api_generation"] == "legacy":
        return bool(s["access_token"])
    return bool(s["client_id"] and s["client_secret"])
