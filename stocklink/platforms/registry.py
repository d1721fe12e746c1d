"""The channel kinds stocklink can sync, each registered on one line.

A platform module declares itself once (:class:`~stocklink.platforms.declaration.Platform`:
label, production base URL, stock range, credentials and settings, client class); the
Settings screen, TOML provisioning, the push and the worker read it from here. Adding a
channel means one client module (with its ``PLATFORM``), one sandbox module and one line below.
"""
from __future__ import annotations

from stocklink.platforms import colorme, nextengine, shopify
from stocklink.platforms.declaration import Platform

PLATFORMS: dict[str, Platform] = {}


def register(platform: Platform) -> Platform:
    PLATFORMS[platform.kind] = platform
    return platform


def label_of(kind: str) -> str:
    """The kind's name for the merchant; a kind no longer registered shows as itself."""
    platform = PLATFORMS.get(kind)
    return str(platform.label) if platform else kind


register(colorme.PLATFORM)
register(nextengine.PLATFORM)
register(shopify.PLATFORM)
