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


def N_(template: str) -> str:
    """Mark ``template`` for extraction without translating it: the sentence is put into the
    reader's language where it is shown (``gettext(exc.template, **exc.params)``)."""
    return template


def _filled(template: str, params: dict) -> str:
    return template % params if params else template  # as gettext does: no params, no formatting


class InvalidValue(ValueError):
    """Why a ``check`` refuses a value: a fixed English ``template`` marked with :func:`N_` and its
    ``params``; ``str()`` is the English sentence. A check that raises a plain :class:`ValueError`
    is shown in English in every language."""

    def __init__(self, template: str, **params: Any):
        super().__init__(_filled(template, params))
        self.template = template
        self.params = params


class InvalidSetting(ValueError):
    """A credential or setting the platform cannot use; ``key`` names it.

    ``message`` is the English sentence (TOML loading and the CLI print it); the console shows
    ``gettext(template, **params)``, which reads after the field's name ("is required")."""

    def __init__(self, key: str, template: str, **params: Any):
        self.key = key
        self.template = template
        self.params = params
        self.message = _filled(template, params)
        super().__init__(f"{key}: {self.message}")

    @classmethod
    def from_reason(cls, key: str, reason: ValueError) -> InvalidSetting:
        """The setting ``key`` refused for ``reason`` (an :class:`InvalidValue`, an
        :class:`InvalidSetting` naming another key, or a plain :class:`ValueError`)."""
        if isinstance(reason, InvalidSetting | InvalidValue):
            return cls(key, reason.template, **reason.params)
        return cls(key, str(reason))


@dataclass(frozen=True)
class Field:
    """One credential or setting the merchant enters.

    ``kind``: ``text``, ``secret`` (stored encrypted, shown masked), ``bool`` or ``choice``
    (one of the values of ``choices``, ``(value, label)`` pairs). ``check`` turns an entered
    text into the stored value or raises :class:`InvalidValue` with the reason."""

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
    # The channel's documented request rate (requests per second, platform-apis-channels.md);
    # background reads (catalogue import, read-back) are paced to a fraction of it.
    rate_per_s: float = 1.0
    # Web orders (SPEC §5, seed 002's status conditions): the platform's order statuses as
    # ``(value, label)``, matched against :attr:`ChannelOrder.status`, and the ones an order must
    # have to be deducted unless the merchant chose otherwise.
    order_statuses: tuple[tuple[str, Any], ...] = ()
    order_statuses_default: tuple[str, ...] = ()
    # A platform that pushes orders: ``order_webhook(credentials, headers, body)`` checks one
    # delivery and returns a :class:`~stocklink.platforms.interfaces.WebhookDelivery`, or raises
    # ``WebhookRefused`` / ``WebhookMalformed`` (same module).
    order_webhook: Callable[[dict, Any, bytes], Any] | None = None

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
            raise InvalidSetting("settings", N_("must be a table"))
        known = {f.key: f for f in self.settings}
        for key in raw:
            if key not in known:
                raise InvalidSetting(key, N_("unknown setting for this kind"))
        clean = {}
        for spec in self.settings:
            value = raw.get(spec.key)
            if value is None or value == "":
                if spec.required:
                    raise InvalidSetting(spec.key, N_("is required"))
                continue  # the client applies ``default``; it is not stored
            clean[spec.key] = _checked(spec, value)
        return clean


def _checked(spec: Field, value: Any) -> Any:
    if spec.kind == "bool":
        if not isinstance(value, bool):
            raise InvalidSetting(spec.key, N_("must be true or false"))
        return value
    if spec.kind == "choice":
        values = [choice for choice, _label in spec.choices]
        if value not in values:
            raise InvalidSetting(spec.key, N_("must be one of %(choices)s"), choices=", ".join(values))
        return value
    if not isinstance(value, str | int) or isinstance(value, bool):
        raise InvalidSetting(spec.key, N_("must be text"))
    value = str(value).strip()
    if spec.check is not None:
        try:
            return spec.check(value)
        except ValueError as exc:
            raise InvalidSetting.from_reason(spec.key, exc) from None
    return value
