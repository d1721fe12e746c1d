"""Infrastructure: the extensions, the database and Redis plumbing, encryption, leases,
the RQ worker runner, security headers and the translation catalogues. No use cases here."""
