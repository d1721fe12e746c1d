"""Building a platform client for a channel row, and persisting rotated credentials."""
from __future__ import annotations

from flask import current_app

from stocklink.infra.crypto import decrypt, encrypt
from stocklink.infra.extensions import db
from stocklink.models import Channel
from stocklink.models._types import utcnow
from stocklink.platforms.base import AuthError
from stocklink.platforms.declaration import InvalidSetting, Platform
from stocklink.platforms.registry import PLATFORMS


class UnsupportedChannel(Exception):
    """No platform is registered for this channel's kind."""


class InvalidChannelSettings(AuthError):
    """The channel's stored settings are not what its platform needs; ``key`` names the field
    (``settings.location_id``). Level 9, like a refused credential (SPEC §6)."""

    def __init__(self, key: str, message: str):
        super().__init__(f"{key} {message}", code="config")
        self.key = key
        self.reason = message


def platform_of(channel: Channel) -> Platform:
    try:
        return PLATFORMS[channel.kind]
    except KeyError:
        raise UnsupportedChannel(channel.kind) from None


def reads_orders(channel: Channel) -> bool:
    """Whether the channel's client reads web orders (:class:`~stocklink.platforms.interfaces.OrderReader`)."""
    platform = PLATFORMS.get(channel.kind)
    return platform is not None and hasattr(platform.client, "read_orders")


def credentials_of(channel: Channel) -> dict:
    return decrypt(channel.credentials_encrypted, default={}) or {}


def save_credentials(channel: Channel, credentials: dict, *, by_merchant: bool) -> None:
    """Store credentials encrypted. ``by_merchant`` marks new credentials entered on the
    Settings screen or in TOML (which may resume a stopped channel, SPEC §6); token rotation
    by the platform itself does not."""
    channel.credentials_encrypted = encrypt(credentials)
    if by_merchant:
        channel.credentials_updated_at = utcnow()


def make_channel_client(channel: Channel, session=None):
    """The client for ``channel``, waiting ``CHANNEL_TIMEOUT`` seconds for each answer; rotated
    tokens (NextEngine) are committed at once in a separate transaction, so a crash after a call
    cannot lose the only valid token.

    :raise InvalidChannelSettings: (an :class:`AuthError`, code ``config``) the channel's settings
        are not what its platform needs, named by the field: like a refused credential, the
        channel stops until the merchant fixes them (SPEC §6), instead of a push failing and
        retrying unseen.
    """
    platform = platform_of(channel)
    try:
        settings = platform.clean_settings(dict(channel.settings or {}))
    except InvalidSetting as exc:
        raise InvalidChannelSettings(f"settings.{exc.key}", exc.message) from None
    channel_id = channel.id

    def persist(new_credentials: dict) -> None:
        with db.engine.begin() as conn:
            conn.execute(Channel.__table__.update().where(Channel.__table__.c.id == channel_id)
                         .values(credentials_encrypted=encrypt(new_credentials)))

    return platform.client(channel.base_url, credentials_of(channel), settings, session=session,
                           timeout=current_app.config["CHANNEL_TIMEOUT"], on_credentials=persist)
