"""What stocklink knows of each channel kind: label, production base URL, stock range.

Base URLs are settings that default to the real production hosts; the sandbox differs only
by base URL. Ranges follow SPEC §3 (seed 003's cart 0..999,999; Rakuten 0..99,999).
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ChannelKind:
    kind: str
    label: str
    default_base_url: str
    range_max: int
    delta: bool = False  # receives increase/decrease counts instead of absolute values
    credential_keys: tuple[str, ...] = ()


KINDS: dict[str, ChannelKind] = {k.kind: k for k in (
    ChannelKind("colorme", "カラーミーショップ", "https://api.shop-pro.jp", 999_999, False, ("access_token",)),
    ChannelKind("nextengine", "ネクストエンジン", "https://api.next-engine.org", 999_999, True,
                ("access_token", "refresh_token")),
    ChannelKind("shopify", "Shopify", "https://example.myshopify.com", 999_999, False, ("access_token",)),
    ChannelKind("rakuten", "楽天市場", "https://api.rms.rakuten.co.jp", 99_999, False,
                ("service_secret", "license_key")),
    ChannelKind("yahoo", "Yahoo!ショッピング", "https://circus.shopping.yahooapis.jp", 999_999, False,
                ("access_token", "refresh_token")),
    ChannelKind("amazon", "Amazon", "https://sellingpartnerapi-fe.amazon.com", 999_999, False,
                ("refresh_token", "client_id", "client_secret")),
    ChannelKind("aupay", "au PAY マーケット", "https://api.manager.wowma.jp", 999_999, False, ("api_key",)),
)}
