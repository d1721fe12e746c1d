"""The database model, split by aggregate. Importing this package registers every table."""
from stocklink.models.catalogue import Product, SetComponent, StockHistoryCursor
from stocklink.models.channels import Channel, Listing
from stocklink.models.errors import ErrorRecord
from stocklink.models.imports import CatalogueImport
from stocklink.models.inbox import SmaregiInbox
from stocklink.models.intents import WriteIntent
from stocklink.models.ledger import StockLedger
from stocklink.models.notifications import OutboxMessage
from stocklink.models.orders import ChannelWebhook, ExpectedEcho, Order, OrderLine, Registration
from stocklink.models.review import ConfirmationItem, Exclusion
from stocklink.models.settings import Setting
from stocklink.models.users import User

__all__ = [
    "CatalogueImport", "Channel", "ChannelWebhook", "ConfirmationItem", "ErrorRecord", "Exclusion", "ExpectedEcho",
    "Listing", "Order", "OrderLine", "OutboxMessage", "Product", "Registration", "SetComponent", "Setting",
    "SmaregiInbox", "StockHistoryCursor", "StockLedger", "User", "WriteIntent",
]
