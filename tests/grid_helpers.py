"""A small catalogue for the product grid's tests: two channels, five products, one set."""
from __future__ import annotations

import re
from dataclasses import dataclass

from stocklink.infra.extensions import db
from stocklink.models import Channel, Listing, Product, SetComponent
from stocklink.services.search_text import refresh_listings, refresh_products

SWAP = {"HX-Request": "true"}


@dataclass
class Shop:
    ch1: int
    ch2: int
    white: int  # Tシャツ ホワイト / S, 5 in stock, on ch1 (sync on, a difference) and ch2
    black: int  # Tシャツ ブラック / M, 0 in stock, on ch1 (sync off) and on ch2 claimed twice
    linen: int  # リネンシャツ, 12 in stock, linked nowhere
    gift: int  # a set of 2 white + 1 linen: 2 available
    cotton: int  # 100%コットン C_100, 100 in stock
    white_ch1: int  # listing ids
    black_ch1: int


def make_shop(app) -> Shop:
    with app.app_context():
        ch1 = Channel(kind="colorme", name="カラーミー", base_url="http://127.0.0.1:9/")
        ch2 = Channel(kind="shopify", name="Shopify", base_url="http://127.0.0.1:9/")
        db.session.add_all([ch1, ch2])
        db.session.flush()
        white = Product(smaregi_product_id="8000001", product_code="TS-WH-S", name="Tシャツ",
                        variation="ホワイト / S", smaregi_stock=5)
        black = Product(smaregi_product_id="8000002", product_code="TS-BK-M", name="Tシャツ",
                        variation="ブラック / M", smaregi_stock=0)
        linen = Product(smaregi_product_id="8000003", product_code="LN-01", name="リネンシャツ", smaregi_stock=12)
        gift = Product(smaregi_product_id="8000004", product_code="GIFT-1", name="ギフトセット", is_set=True)
        cotton = Product(smaregi_product_id="8000005", product_code="C_100", name="100%コットン", smaregi_stock=100)
        db.session.add_all([white, black, linen, gift, cotton])
        db.session.flush()
        db.session.add_all([SetComponent(set_product_id=gift.id, component_id=white.id, quantity=2),
                            SetComponent(set_product_id=gift.id, component_id=linen.id, quantity=1)])
        white_ch1 = Listing(channel_id=ch1.id, product_id=white.id, identifier="101", sku="SKU-ABC1",
                            last_confirmed_quantity=4, difference=True)
        black_ch1 = Listing(channel_id=ch1.id, product_id=black.id, identifier="102", sku="SKU-XYZ2",
                            sync_enabled=False, last_confirmed_quantity=0)
        db.session.add_all([white_ch1, black_ch1,
                            Listing(channel_id=ch2.id, product_id=white.id, identifier="201", sku="TS-WH-S",
                                    last_confirmed_quantity=5),
                            Listing(channel_id=ch2.id, product_id=black.id, identifier="202", sku="TS-BK-M",
                                    link_problem="multiple", last_confirmed_quantity=0)])
        db.session.flush()
        refresh_products(None)
        refresh_listings(None)
        db.session.commit()
        return Shop(ch1.id, ch2.id, white.id, black.id, linen.id, gift.id, cotton.id, white_ch1.id, black_ch1.id)


def shown(html: str) -> list[int]:
    """The product ids of the grid rows in ``html``, in order."""
    return [int(x) for x in re.findall(r'<tr id="product-(\d+)"', html)]


def row_html(html: str, product_id: int) -> str:
    match = re.search(rf'<tr id="product-{product_id}".*?</tr>', html, re.S)
    assert match, f"no row for product {product_id}"
    return match.group(0)
