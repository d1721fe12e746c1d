"""HTTP clients for Smaregi and the channels: one module per platform.

Every client is constructed from a base URL and credentials only, so the sandbox
differs from production by base URL alone. Errors are raised as the classes in
:mod:`stocklink.platforms.base`, which the jobs map to error levels (SPEC §6).
"""
