"""Building a platform client for a channel row, and persisting rotated credentials."""
from __future__ import annotations

import importlib

from stocklink.infra.crypto import decrypt, encrypt
from stocklink.infra.extensions import db
from stocklink.models import Channel
from stocklink.models._types import utcnow

CLIENT_CLASSES = {
    "colorme": ("stocklink.platforms.colorme", "ColorMeClient"),
    "nextengine": ("stocklink.platforms.nextengine", "NextEngineClient"),
    "shopify": ("stocklink.platforms.shopify", "ShopifyClient"),
}


class UnsupportedChannel(Exception):
    """No client for this channel kind yet."""


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
    """The client for ``channel``; rotated tokens (NextEngine) are committed at once in a
    separate transaction, so a crash after a call cannot lose the only valid token."""
    try:
        module_name, class_name = CLIENT_CLASSES[channel.kind]
    except KeyError:
        raise UnsupportedChannel(channel.kind) from None
    cls = getattr(importlib.import_module(module_name), class_name)
    channel_id = channel.id

    def persist(new_credentials: dict) -> None:
        with db.engine.begin() as conn:
            conn.execute(Channel.__table__.update().where(Channel.__table__.c.id == channel_id)
                         .values(credentials_encrypted=encrypt(new_credentials)))

    return cls(channel.base_url, credentials_of(channel), dict(channel.settings or {}), session=session,
               on_credentials=persist)
