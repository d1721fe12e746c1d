"""How a platform module declares itself to stocklink, once.

Each channel module ends with one :class:`Platform`: its kind, its name for the merchant,
its production base URL, the stock range it accepts (SPEC §3), the credentials and settings
the merchant enters (with labels and checks), how it takes stock, and its client class.
:mod:`stocklink.platforms.registry` registers each on one line; everything else (the Settings
screen, TOML provisioning, the push, the worker) reads the declaration.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


class InvalidSetting(ValueError):
    """A credential or setting the platform cannot use; ``key`` names it."""

    def __init__(self, key: str, message: str):
        super().__init__(f"{key}: {message}")
        self.key = key
        self.message = message


@dataclass(frozen=True)
class Field:
    """One credential or setting the merchant enters.

    ``kind``: ``text``, ``secret`` (stored encrypted, shown masked), ``bool`` or ``choice``
    (one of the values of ``choices``, ``(value, label)`` pairs). ``check`` turns an entered
    text into the stored value or raises :class:`ValueError` with the reason."""

    key: str
    label: Any  # a lazy gettext string
    kind: str = "text"
    required: bool = False
    default: Any = None
    choices: tuple[tuple[str, Any], ...] = ()
    check: Callable[[Any], Any] | None = None
    help: Any = None


@dataclass(frozen=True)
class Platform:
    """Everything stocklink knows of one channel kind.

    ``writes``: ``stock`` — the client writes each listing's stock (absolute, relative or
    compare-and-set, :class:`~stocklink.platforms.interfaces.StockWriter`); ``delta`` — it
    uploads accumulated increase / decrease counts (:class:`~stocklink.platforms.interfaces.DeltaWriter`,
    seed 001)."""

    kind: str
    label: Any
    base_url: str
    range_max: int
    client: type
    credentials: tuple[Field, ...]
    settings: tuple[Field, ...] = field(default=())
    writes: str = "stock"

    @property
    def delta(self) -> bool:
        return self.writes == "delta"

    @property
    def credential_keys(self) -> tuple[str, ...]:
        return tuple(f.key for f in self.credentials)

    def label_of(self, key: str) -> Any:
        """The label of ``settings.<key>`` or ``credentials.<key>`` (as validation names a field);
        ``None`` for a key that names neither."""
        group, _dot, name = key.partition(".")
        fields = {"settings": self.settings, "credentials": self.credentials}.get(group, ())
        return next((spec.label for spec in fields if spec.key == name), None)

    def clean_settings(self, raw: dict) -> dict:
        """The channel's platform settings, checked; a setting left out keeps its default.

        :raise InvalidSetting: an unknown key, a missing required one, or a value its check refuses."""
        if not isinstance(raw, dict):
            raise InvalidSetting("settings", "must be a table")
        known = {f.key: f for f in self.settings}
        for key in raw:
            if key not in known:
                raise InvalidSetting(key, "unknown setting for this kind")
        clean = {}
        for spec in self.settings:
            value = raw.get(spec.key)
            if value is None or value == "":
                if spec.required:
                    raise InvalidSetting(spec.key, "is required")
                continue  # the client applies ``default``; it is not stored
            clean[spec.key] = _checked(spec, value)
        return clean


def _checked(spec: Field, value: Any) -> Any:
    if spec.kind == "bool":
        if not isinstance(value, bool):
            raise InvalidSetting(spec.key, "must be true or false")
        return value
    if spec.kind == "choice":
        values = [choice for choice, _label in spec.choices]
        if value not in values:
            raise InvalidSetting(spec.key, f"must be one of {', '.join(values)}")
        return value
    if not isinstance(value, str | int) or isinstance(value, bool):
        raise InvalidSetting(spec.key, "must be text")
    value = str(value).strip()
    if spec.check is not None:
        try:
            return spec.check(value)
        except ValueError as exc:
            raise InvalidSetting(spec.key, str(exc)) from None
    return value
