"""Smaregi clients: the legacy スマレジAPI and the Platform API behind one interface.

Both clients offer the same methods (``fetch_stock``, ``iter_products``, ``get_products``,
``set_stock``, ``add_stock``, ``get_stock_change``, ``stock_changes_after``, ``test_connection``,
and for web sales ``register_sale``, ``find_sale``, ``cancel_sale``)
and differ only in wire format (``legacy``, ``platform``; what both share is in ``common``,
the webhook bodies are parsed in ``webhook``); :func:`make_smaregi_client` picks one from the
merchant's settings. The sandbox differs from production by base URLs alone
(platform-apis-smaregi.md Part A).

Errors (SPEC §6): credentials or merchant-side configuration → :class:`AuthError`;
maintenance, 5xx, 429, timeouts → :class:`TemporaryError`; anything else
→ :class:`PlatformError` carrying Smaregi's code. Messages never contain tokens or secrets.
"""
from __future__ import annotations

import requests

from stocklink.platforms.base import DEFAULT_TIMEOUT, AuthError
from stocklink.platforms.smaregi.common import (
    LEGACY_BASE_URL,
    PLATFORM_API_BASE_URL,
    PLATFORM_ID_BASE_URL,
    PRODUCTION_RATES,
    RATE_RETRIES,
    SANDBOX_RATES,
    FoundSale,
    SaleLine,
    SaleRegistration,
    SmaregiProduct,
    SmaregiStockChange,
    UnknownOutcome,
    default_rate_limit,
)
from stocklink.platforms.smaregi.legacy import LegacySmaregiClient
from stocklink.platforms.smaregi.platform import PlatformSmaregiClient

__all__ = ["FoundSale", "SaleLine", "SaleRegistration", "UnknownOutcome",
           "LEGACY_BASE_URL", "PLATFORM_API_BASE_URL", "PLATFORM_ID_BASE_URL", "PRODUCTION_RATES", "RATE_RETRIES",
           "SANDBOX_RATES", "LegacySmaregiClient", "PlatformSmaregiClient", "SmaregiClient", "SmaregiProduct",
           "SmaregiStockChange", "default_rate_limit", "make_smaregi_client"]

SmaregiClient = LegacySmaregiClient | PlatformSmaregiClient


def make_smaregi_client(settings: dict, session: requests.Session | None = None,
                        timeout: float = DEFAULT_TIMEOUT) -> SmaregiClient:
    """The client the settings ask for; incomplete settings raise :class:`AuthError` (code ``config``).

    Keys (``stocklink.services.merchant_settings`` ``smaregi.*`` without the prefix): ``api_generation``,
    ``contract_id``, ``access_token``, ``client_id``, ``client_secret``, ``store_id``,
    ``terminal_id`` (the register web-sale transactions are written on, default "1"),
    ``register_sales`` (true: the Platform token also asks for the sale scopes,
    ``common.SALE_SCOPES``), and the base URLs ``legacy_base_url``, ``platform_id_base_url``,
    ``platform_api_base_url``.
    """
    generation = settings.get("api_generation") or "legacy"
    required = {"legacy": ("contract_id", "access_token", "store_id"),
                "platform": ("contract_id", "client_id", "client_secret", "store_id")}.get(generation)
    if required is None:
        raise AuthError(f"unknown Smaregi API generation {generation!r}", code="config")
    missing = [key for key in required if not str(settings.get(key) or "").strip()]
    if missing:
        raise AuthError(f"Smaregi settings incomplete: {', '.join(missing)}", code="config")
    terminal_id = str(settings.get("terminal_id") or "").strip() or "1"
    register_sales = str(settings.get("register_sales") or "").lower() in ("1", "true", "on")
    if generation == "legacy":
        return LegacySmaregiClient(settings.get("legacy_base_url") or LEGACY_BASE_URL,
                                   settings["contract_id"], settings["access_token"], settings["store_id"],
                                   session=session, timeout=timeout, terminal_id=terminal_id)
    return PlatformSmaregiClient(settings.get("platform_id_base_url") or PLATFORM_ID_BASE_URL,
                                 settings.get("platform_api_base_url") or PLATFORM_API_BASE_URL,
                                 settings["contract_id"], settings["client_id"], settings["client_secret"],
                                 settings["store_id"], session=session, timeout=timeout, terminal_id=terminal_id,
                                 register_sales=register_sales)
