"""What the merchant reads about errors and stock changes, in the merchant's language.

Jobs and services store facts: an error's ``message_key`` and ``message_params``, a ledger
row's ``field``, ``cause`` and ``source_event`` codes. The sentences are here, as gettext
messages, and are rendered when a page or a mail is made (the web layer registers these
functions as template filters). A platform's own words (an API's error text) are never
part of a sentence: they are shown apart, as a detail.
"""
from __future__ import annotations

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_babel import ngettext

from stocklink.domain.delta import StockDivision
from stocklink.platforms.base import AuthError, ConnectionCheck, PlatformError, TemporaryError
from stocklink.platforms.registry import PLATFORMS, label_of

ERROR_MESSAGES = {
    "smaregi_auth": _l("Smaregi refused the credentials. Check the Smaregi settings."),
    "smaregi_unavailable": _l("Could not read the stock from Smaregi. Retrying automatically."),
    "inbox_row_failed": _l("Smaregi stock notification #%(row)s could not be applied. Retrying automatically."),
    "channel_auth": _l("Stopped by an authentication error. Save new credentials and delete this error to "
                       "resume."),
    "channel_settings": _l("Stopped: the setting %(field)s is missing or invalid. Correct it in the channel's "
                           "settings and delete this error to resume."),
    "channel_temporary": _l("A temporary error. Retrying automatically."),
    "unknown_item": _l("%(identifier)s does not exist on the channel."),
    "write_unconfirmed": _l("Could not confirm the stock write to %(identifier)s (before %(before)s, target "
                            "%(after)s, now %(now)s). It was not sent again, so as not to apply it twice: check "
                            "the stock."),
    "upload_rejected": _l("The channel could not process queue ID %(ref)s."),
    "registration_auth": _l("Smaregi refused the credentials for registering web orders (the app needs the "
                            "transactions and shipments scopes). Web orders stay reserved; fix the Smaregi "
                            "settings and delete this error to resume."),
}

SOURCES = {"smaregi": _l("Smaregi"), "channel": _l("Channel"), "registration": _l("Order registration"),
           "webhook": _l("Webhook")}

LEDGER_FIELDS = {"smaregi_stock": _l("Smaregi stock"), "reserved": _l("Reserved")}

# Smaregi 在庫区分 (platform-apis-smaregi §4.1), as the reason of a stock change.
DIVISIONS = {
    StockDivision.CORRECTION: _l("Correction (Smaregi)"),
    StockDivision.SALE: _l("Sale (Smaregi)"),
    StockDivision.PURCHASE: _l("Purchase (Smaregi)"),
    StockDivision.TRANSFER_OUT: _l("Transfer out (Smaregi)"),
    StockDivision.TRANSFER_IN: _l("Transfer in (Smaregi)"),
    StockDivision.RENTAL: _l("Rental (Smaregi)"),
    StockDivision.LAYAWAY: _l("Layaway (Smaregi)"),
    StockDivision.STOCKTAKE: _l("Stocktake (Smaregi)"),
    StockDivision.ADJUSTMENT: _l("Adjustment (Smaregi)"),
    StockDivision.SHIPMENT: _l("Shipment (Smaregi)"),
    StockDivision.EC_LINK: _l("Online store link (Smaregi)"),
    StockDivision.RETURN: _l("Return (Smaregi)"),
    StockDivision.PROMOTIONAL: _l("Promotional item (Smaregi)"),
    StockDivision.LOSS: _l("Loss (Smaregi)"),
    StockDivision.API: _l("Smaregi API"),
    StockDivision.SALES_ALLOCATION: _l("Sales allocation (Smaregi)"),
    StockDivision.RECEIVING_SHORTAGE: _l("Receiving shortage (Smaregi)"),
    StockDivision.ORDER_ALLOCATION: _l("Order allocation (Smaregi)"),
}

CAUSES = {
    "smaregi:notification": _l("Stock change notified by Smaregi"),
    "smaregi:backfill": _l("Periodic check against Smaregi"),
    "merchant:release_adjust": _l("Matched to Smaregi on release from the confirmation queue"),
    "catalogue_import": _l("Read in the Smaregi catalogue import"),
    "merchant:grid_total": _l("Total stock set on the product grid"),
    "order:reserved": _l("Reserved for a web order"),
    "order:returned": _l("Web order changed or cancelled before it was registered"),
    "order:released": _l("Web order registered in Smaregi"),
    "order:registered": _l("Read from Smaregi after registering a web order"),
    "order:cancelled": _l("Read from Smaregi after cancelling a web order"),
}


def error_text(record) -> str:
    """The error's sentence in the current language; a row written before message keys (or
    with a key this version does not know) shows the text it was written with."""
    message = ERROR_MESSAGES.get(record.message_key or "")
    if message is None:
        return record.message
    params = _shown_params(record)
    try:
        return str(message) % params if params else str(message)
    except (KeyError, TypeError, ValueError):  # parameters from another version: the sentence alone
        return str(message)


def error_detail(record) -> str:
    """The platform's or the exception's own words, shown apart from the sentence ("" if none)."""
    return record.message if record.message_key in ERROR_MESSAGES else ""


def _shown_params(record) -> dict:
    params = {k: "—" if v is None else v for k, v in (record.message_params or {}).items()}
    if record.message_key == "channel_settings" and "field" in params:
        platform = PLATFORMS.get(record.channel.kind) if record.channel is not None else None
        label = platform.label_of(params["field"]) if platform else None
        params["field"] = str(label) if label is not None else params["field"].partition(".")[2] or params["field"]
    return params


def error_place(record) -> str:
    """Where the error happened: the channel's name, or the source's name for the merchant."""
    if record.channel is not None:
        return record.channel.name
    label = SOURCES.get(record.source)
    return str(label) if label is not None else record.source


def ledger_field(field: str) -> str:
    label = LEDGER_FIELDS.get(field)
    return str(label) if label is not None else field


def ledger_cause(cause: str) -> str:
    """Why the stock changed: ``smaregi:02:sale`` → 売上（スマレジ） / Sale (Smaregi). A Smaregi
    division this version does not know is named by its code; any other cause shows as itself."""
    known = CAUSES.get(cause)
    if known is not None:
        return str(known)
    origin, _colon, rest = cause.partition(":")
    if origin == "smaregi" and rest:
        code = rest.partition(":")[0]
        label = DIVISIONS.get(code)
        return str(label) if label is not None else _("Smaregi stock change (division %(code)s)", code=code)
    return cause


def ledger_source(source_event: str | None) -> str:
    """What the change came from: ``inbox:7,8`` → 在庫通知 #7, #8 / Stock notification #7, #8."""
    if not source_event:
        return ""
    if source_event.startswith("inbox:"):
        ids = ", ".join(f"#{i}" if i.isdigit() else i for i in source_event[len("inbox:"):].split(","))
        return _("Stock notification %(ids)s", ids=ids)
    if source_event == "backfill":
        return _("Periodic check")
    if source_event.startswith("order:"):  # order:<channel id>:<order id>#<revision>
        head, _sep, revision = source_event.rpartition("#")
        order_id = head.split(":", 2)[-1]
        return _("Web order %(id)s (revision %(revision)s)", id=order_id, revision=revision)
    return source_event


def connection_text(check: ConnectionCheck) -> str:
    """What a connection test found: ``Sandbox Shop / location Main / 56 products / store 1``."""
    parts = [check.account] if check.account else []
    if check.location:
        parts.append(_("location %(name)s", name=check.location))
    if check.products is not None:
        parts.append(ngettext("%(num)d product", "%(num)d products", check.products))
    if check.store is not None:
        store = " ".join(x for x in (check.store, check.store_name) if x)
        parts.append(_("store %(store)s", store=store) if check.store_checked else
                     _("store %(store)s (not checked: reading stores is not enabled in Smaregi)", store=store))
    return " / ".join(parts)


def platform_error_text(exc: PlatformError) -> str:
    """What a refused or failed call to a platform means for the merchant, with the platform's own
    words apart: ``The credentials or settings were refused. (Details: …)``."""
    if isinstance(exc, AuthError):
        sentence = (_("The settings are incomplete or were refused.") if exc.code in ("config", "store")
                    else _("The credentials were refused."))
    elif isinstance(exc, TemporaryError):
        sentence = _("No answer, or the service is busy or under maintenance. Try again later.")
    else:
        sentence = _("The service answered with an error.")
    return _("%(sentence)s (Details: %(text)s)", sentence=sentence, text=str(exc))


TEMPLATE_FILTERS = {"kind_label": label_of, "error_text": error_text, "error_detail": error_detail,
                    "error_place": error_place, "ledger_field": ledger_field, "ledger_cause": ledger_cause,
                    "ledger_source": ledger_source}
