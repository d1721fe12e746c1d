"""A deterministic demo catalogue for the Smaregi sandbox: a small apparel and goods shop.

Groups of size/colour variants share a ``group_code`` (each variant its own productId, as
in Smaregi), plus the awkward cases stocklink must handle: a store-only product, a product
with negative stock, a product outside stock control (stockControlDivision "1") and a
product that has never moved (no stock row).

Variants and some single products carry an image: a tiny PNG swatch of their colour as a
``data:`` URL, so the demo shows pictures without any external host (and the console's
``img-src 'self' data:`` policy allows it); others have none, as many real catalogues do.
"""
from __future__ import annotations

import base64
import struct
import zlib
from dataclasses import dataclass
from functools import cache

FIRST_PRODUCT_ID = 8000001
STORES = {"1": "本店", "2": "渋谷店"}


@dataclass(frozen=True)
class SampleProduct:
    product_id: str
    code: str
    name: str
    price: int
    group_code: str | None = None
    size: str | None = None
    color: str | None = None
    stock_control_division: str = "0"
    stock: int | None = None  # 本店 (store 1); None = no stock row yet
    branch_stock: int | None = None  # 渋谷店 (store 2)
    store_only: bool = False  # sold at the shop only: never linked to a web listing
    image_url: str | None = None  # a data: URL (see the module docstring); None without an image


_GROUPS = [
    ("TS01", "オーガニックコットンTシャツ", 3980, ["S", "M", "L", "XL"],
     [("WH", "ホワイト"), ("BK", "ブラック"), ("NV", "ネイビー")]),
    ("LS01", "リネンシャツ", 8800, ["S", "M", "L"], [("BG", "ベージュ"), ("GY", "グレー")]),
    ("SK01", "メリノウールソックス", 1650, ["23-25", "25-27"],
     [("GY", "グレー"), ("BR", "ブラウン"), ("GR", "グリーン")]),
    ("DN01", "セルビッジデニムパンツ", 14300, ["28", "30", "32", "34"],
     [("ID", "インディゴ"), ("BK", "ブラック")]),
    ("CP01", "コットンキャップ", 3300, ["フリー"],
     [("WH", "ホワイト"), ("BK", "ブラック"), ("KH", "カーキ"), ("NV", "ネイビー")]),
]

_SINGLES = [
    ("BAG01", "帆布トートバッグ", 4400), ("MUG01", "波佐見焼マグカップ", 2750),
    ("BTL01", "ステンレスボトル 500ml", 3520), ("TWL01", "今治ハンドタオル", 1320),
    ("TNG01", "注染手ぬぐい 麻の葉", 1210), ("WRP01", "蜜蝋ラップ Mサイズ", 1650),
    ("NTE01", "活版ノート A5", 990), ("PEN01", "真鍮ボールペン", 4950),
    ("CDL01", "ソイキャンドル ヒノキ", 2420), ("SOP01", "米ぬか石鹸", 880),
    ("TEA01", "有機ほうじ茶 100g", 1080), ("CHP01", "竹の箸 2膳セット", 1540),
    ("IRN01", "南部鉄器 栓抜き", 2200), ("BKM01", "木製ブックマーク", 660),
    ("PCH01", "リネンポーチ", 2860), ("SCF01", "ガーゼストール", 5280),
]


# Swatch colours (RGB) of the colour names above; the singles with an image use a neutral one.
_SWATCHES = {"ホワイト": (250, 250, 247), "ブラック": (34, 34, 34), "ネイビー": (31, 45, 84),
             "ベージュ": (222, 203, 170), "グレー": (150, 150, 150), "ブラウン": (120, 80, 50),
             "グリーン": (70, 120, 70), "インディゴ": (45, 55, 110), "カーキ": (140, 130, 80)}
_SINGLE_SWATCH = (200, 170, 120)


@cache
def swatch_png(rgb: tuple[int, int, int], size: int = 8) -> str:
    """A ``size`` × ``size`` PNG of one colour as a ``data:image/png;base64,…`` URL."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    row = b"\x00" + bytes(rgb) * size  # filter byte 0, then RGB pixels
    png = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 0))
           + chunk(b"IDAT", zlib.compress(row * size)) + chunk(b"IEND", b""))
    return "data:image/png;base64," + base64.b64encode(png).decode()


def _stock(index: int) -> int:
    """A spread of small, deterministic stock numbers (0 included)."""
    return (index * 7 + 3) % 23


def sample_products() -> list[SampleProduct]:
    """The demo catalogue: 56 products, productIds from 8000001, the same on every call."""
    products: list[SampleProduct] = []

    def add(**fields) -> None:
        index = len(products)
        product_id = str(FIRST_PRODUCT_ID + index)
        fields.setdefault("stock", _stock(index))
        fields.setdefault("branch_stock", _stock(index + 5) if index % 3 == 0 else None)
        products.append(SampleProduct(product_id=product_id, **fields))

    for group, name, price, sizes, colors in _GROUPS:
        for color_code, color in colors:
            for size in sizes:
                add(code=f"{group}-{color_code}-{size}", name=name, price=price, group_code=group,
                    size=size, color=color, image_url=swatch_png(_SWATCHES[color]))
    for n, (code, name, price) in enumerate(_SINGLES):
        add(code=code, name=name, price=price, image_url=swatch_png(_SINGLE_SWATCH) if n % 2 == 0 else None)
    add(code="SHOP01", name="店頭限定 手織りコースター", price=1100, store_only=True)
    add(code="APR01", name="リネンエプロン", price=6380, stock=-2)
    add(code="WRAP01", name="ギフトラッピング", price=330, stock_control_division="1", stock=None,
        branch_stock=None)
    add(code="SNK01", name="キャンバススニーカー (新作)", price=9900, size="26.0", color="オフホワイト",
        stock=None, branch_stock=None)
    return products


def load_sample(sandbox) -> list[SampleProduct]:
    """Add the two stores and every sample product with its initial stock to ``sandbox``."""
    for store_id, name in STORES.items():
        sandbox.add_store(store_id, name)
    products = sample_products()
    for p in products:
        sandbox.add_product(p.product_id, p.name, code=p.code, price=p.price, group_code=p.group_code,
                            size=p.size, color=p.color, stock_control_division=p.stock_control_division,
                            stock=p.stock, store_id="1", image_url=p.image_url)
        if p.branch_stock is not None:
            sandbox.seed_stock(p.product_id, p.branch_stock, store_id="2")
    return products
