"""Which products can be synced, and what to do with those that cannot (seed 000, seed 003, SPEC §4)."""

from collections.abc import Collection, Hashable, Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Generic, NamedTuple, TypeVar

from stocklink.domain.text import normalise_code

T = TypeVar("T", bound=Hashable)


def is_linkable(product_code: str | None, listing_identifier: str | None, store_only: bool) -> bool:
    """Return whether a product can be linked to a listing at all (seed 000).

    Seed 000 names the unlinkable cases: the Smaregi product code or the channel's
    identifier (ColorMe 型番) is not set, or the product is sold in the shop only and
    registered in Smaregi alone. Blank and whitespace-only codes count as not set.
    """
    if store_only:
        return False
    return normalise_code(product_code) is not None and normalise_code(listing_identifier) is not None


def is_stock_managed(stock_control_division: str | int | None) -> bool:
    """Return whether Smaregi manages this product's stock, i.e. whether it may be synced.

    Smaregi ``stockControlDivision``: ``0`` 在庫管理対象, ``1`` 在庫管理対象外. Seed 003: a
    ``1`` product sends no stock notifications and is never synced (SPEC §3). A missing
    value is Smaregi's default, ``0``.
    """
    return stock_control_division is None or str(stock_control_division).strip() != "1"


class Classification(NamedTuple, Generic[T]):
    """The products of one Smaregi notification, split three ways, each in notification order."""

    linkable: list[T]
    unlinkable: list[T]
    excluded: list[T]


def classify_notification_products(
    product_ids: Iterable[T], linked: Collection[T], excluded: Collection[T]
) -> Classification[T]:
    """Split a notification's products into linkable, unlinkable and excluded (SPEC §4).

    ``linked`` holds the products with at least one linked listing, ``excluded`` the
    exclusion list. Exclusion wins over a link: the merchant said "never sync this"
    (seed 000, excluded products are skipped silently in every mode). Each list keeps
    the order of the notification; a product named twice is listed once, at its first
    place, so it is neither synced nor mailed about twice.
    """
    linkable: list[T] = []
    unlinkable: list[T] = []
    skipped: list[T] = []
    seen: set[T] = set()
    for product_id in product_ids:
        if product_id in seen:
            continue
        seen.add(product_id)
        if product_id in excluded:
            skipped.append(product_id)
        elif product_id in linked:
            linkable.append(product_id)
        else:
            unlinkable.append(product_id)
    return Classification(linkable, unlinkable, skipped)


class UnlinkableMode(StrEnum):
    """The merchant's setting for notifications that contain unlinkable products (seed 000)."""

    SKIP = "skip"
    """Default: sync the rest, queue the unlinkable ones, e-mail every time."""
    AUTO_EXCLUDE = "auto_exclude"
    """Sync the rest, put the unlinkable ones on the exclusion list, e-mail once."""
    ABORT = "abort"
    """Legacy: sync nothing and answer Smaregi with an error so it can be resent."""


DEFAULT_UNLINKABLE_MODE = UnlinkableMode.SKIP


@dataclass(frozen=True)
class UnlinkableDecision(Generic[T]):
    """What to do with one notification's products.

    - ``apply``: products to sync now;
    - ``queue``: products to add to the confirmation queue (確認が必要な商品);
    - ``exclude``: products to add to the exclusion list (在庫連携対象外アイテム);
    - ``mail``: products to name in the e-mail to the merchant (none: no e-mail);
    - ``reject``: answer the notification with an error (abort mode); the products
      to name in the answer are those in ``mail``.
    """

    apply: tuple[T, ...]
    queue: tuple[T, ...]
    exclude: tuple[T, ...]
    mail: tuple[T, ...]
    reject: bool


def decide_unlinkable(
    mode: str,
    linkable: Iterable[T],
    unlinkable: Iterable[T],
    *,
    already_queued: Collection[T] = (),
    already_excluded: Collection[T] = (),
) -> UnlinkableDecision[T]:
    """Return what to do with a notification's linkable and unlinkable products (SPEC §4, seed 000).

    Seed 000's example: a sale of A ×2, B ×3 (unlinkable) and C ×1.

    - ``skip`` (default): A and C are synced; B goes into the confirmation queue (unless
      it is already there) and is mailed about **every** time it is skipped;
    - ``auto_exclude``: A and C are synced; B is added to the exclusion list and mailed
      about only when it is newly added. Pass the current list as ``already_excluded``;
      a caller racing another worker should still mail only the rows its own insert added;
    - ``abort``: nothing is synced; B is queued for the merchant's decision, named in
      the error e-mail, and the notification is rejected so Smaregi marks it failed and
      it can be resent once the merchant has decided (then it is processed in full).

    Products in ``already_excluded`` are dropped from ``unlinkable`` first: excluded
    products are skipped silently in every mode. With nothing left unlinkable, every mode
    simply syncs the linkable products.

    :raise ValueError: on an unknown mode.
    """
    chosen = UnlinkableMode(mode)
    apply = tuple(linkable)
    blocked = tuple(product for product in unlinkable if product not in already_excluded)
    to_queue = tuple(product for product in blocked if product not in already_queued)
    if not blocked:
        return UnlinkableDecision(apply=apply, queue=(), exclude=(), mail=(), reject=False)
    if chosen is UnlinkableMode.SKIP:
        return UnlinkableDecision(apply=apply, queue=to_queue, exclude=(), mail=blocked, reject=False)
    if chosen is UnlinkableMode.AUTO_EXCLUDE:
        return UnlinkableDecision(apply=apply, queue=(), exclude=blocked, mail=blocked, reject=False)
    return UnlinkableDecision(apply=(), queue=to_queue, exclude=(), mail=blocked, reject=True)
