"""Japanese by default, English complete, a switch in the session."""
from __future__ import annotations

from pathlib import Path

import pytest
from babel.messages.pofile import read_po

from tests.conftest import csrf_token

TRANSLATIONS = Path(__file__).parent.parent / "stocklink" / "translations"


def test_login_page_is_japanese_by_default(client):
    """A new visitor sees ログイン."""
    html = client.get("/login").get_data(as_text=True)
    assert "ログイン" in html and 'lang="ja"' in html


def test_switch_to_english_and_back(client, logged_in):
    """The language switch changes the console's language for the session."""
    token = csrf_token(client, "/")
    client.post("/language", data={"lang": "en", "next": "/", "csrf_token": token})
    html = client.get("/").get_data(as_text=True)
    assert "Dashboard" in html and "ダッシュボード" not in html
    client.post("/language", data={"lang": "ja", "next": "/", "csrf_token": token})
    assert "ダッシュボード" in client.get("/").get_data(as_text=True)


@pytest.mark.parametrize("lang", ["ja", "en"])
def test_catalog_is_complete(lang):
    """Every message has a translation (no empty or fuzzy entries)."""
    with (TRANSLATIONS / lang / "LC_MESSAGES" / "messages.po").open("rb") as fh:
        catalog = read_po(fh)
    missing = [m.id for m in catalog if m.id and (m.fuzzy or not (
        m.string if isinstance(m.string, str) else all(m.string)))]
    assert missing == []


def test_catalog_covers_the_source(tmp_path):
    """Every string marked in the code and templates is in the ja catalog."""
    from babel.messages.extract import extract_from_dir
    root = Path(__file__).parent.parent
    with (TRANSLATIONS / "ja" / "LC_MESSAGES" / "messages.po").open("rb") as fh:
        known = {m.id if isinstance(m.id, str) else m.id[0] for m in read_po(fh) if m.id}
    found = set()
    method_map = [("stocklink/**.py", "python"), ("templates/**.html", "jinja2")]
    for _file, _line, message, _comments, _ctx in extract_from_dir(
            str(root), method_map,
            keywords={"_": None, "gettext": None, "ngettext": (1, 2), "_l": None, "lazy_gettext": None,
                      "N_": None}):
        found.add(message if isinstance(message, str) else message[0])
    assert found - known == set()
