"""The use cases: what stocklink does with Smaregi's notifications, the stock ledger, the
unlinkable-product rules, incidents, the outbox, the merchant's settings and the channel
clients. Services return facts; the jobs, web views and CLI that call them enqueue work."""
