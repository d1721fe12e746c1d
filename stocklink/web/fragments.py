"""One URL, two answers: the whole page, or for an htmx swap only its fragment (STYLE.md).

htmx 2 restores history after a cache miss with a GET that also carries ``HX-Request``
(its ``historyRestoreAsHxRequest`` config, on by default) and swaps the answer into
``<body>``: the Back button needs the whole page, so ``HX-History-Restore-Request`` wins.
Both headers change the answer, so both are in ``Vary``: a browser cache must not hand a
fragment to a navigation, nor a page to a swap.
"""
from __future__ import annotations

from flask import make_response, render_template, request

VARY = ("HX-Request", "HX-History-Restore-Request")


def wants_fragment() -> bool:
    """True for an htmx swap; False for a browser navigation and for htmx's history restore."""
    return (request.headers.get("HX-Request") == "true"
            and request.headers.get("HX-History-Restore-Request") != "true")


def page_or_fragment(page_template: str, fragment_template: str, **context):
    """``fragment_template`` for an htmx swap, otherwise ``page_template`` (which includes it);
    a 200 response with ``Vary: HX-Request, HX-History-Restore-Request`` either way."""
    template = fragment_template if wants_fragment() else page_template
    response = make_response(render_template(template, **context))
    response.vary.update(VARY)
    return response
