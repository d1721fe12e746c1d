"""Onboarding in a real browser (headless Chromium, :mod:`tests.fixtures_browser`): the Smaregi
import from the dashboard's setup checklist with its status fragment polling itself, a ColorMe
import that links by 型番 and names what it could not, linking and unlinking by hand on the link
screen (紐づけ), and that screen in English.

The import runs as an RQ job: the jobs are run between steps while the page stays open, so the
status shown afterwards can only have come from the fragment's own polling."""
from __future__ import annotations

from urllib.parse import urlsplit

from playwright.sync_api import expect

from tests.e2e_helpers import add_channel

pytest_plugins = ["tests.fixtures_browser"]

MARK = "window.__stocklinkSameDocument = true"
MARKED = "window.__stocklinkSameDocument === true"
UNMATCHED = "ZZ-NOPE-1"


def colorme_shop(colorme) -> None:
    """Two items whose 型番 are Smaregi sample codes, and one whose 型番 matches nothing."""
    colorme.add_product("オーガニックコットンTシャツ 白S", stocks=4, model_number="TS01-WH-S")
    colorme.add_product("オーガニックコットンTシャツ 黒M", stocks=2, model_number="TS01-BK-M")
    colorme.add_product("リネンシャツ", stocks=5, model_number=UNMATCHED)


def imported_shop(app, colorme) -> int:
    """Smaregi's and the ColorMe shop's catalogues imported from the command line; the channel id."""
    runner = app.test_cli_runner()
    assert runner.invoke(args=["catalogue", "import", "smaregi"]).exit_code == 0
    colorme_shop(colorme)
    channel_id = add_channel(app, colorme, "colorme", "カラーミー")
    result = runner.invoke(args=["catalogue", "import", "カラーミー"])
    assert result.exit_code == 0, result.output
    return channel_id


def test_smaregi_import_from_the_checklist_polls_to_done_and_ticks_the_step(page, login, console, screenshot,
                                                                           smaregi_sample, smaregi, jobs_runner):
    """今すぐ取り込む on the setup checklist queues the import; the status fragment polls itself to
    完了 with no reload once a worker ran it, and the checklist's import step is then ticked."""
    login()
    step = page.locator("#setup li:has(form[action$='/catalogue/import/smaregi'])")
    expect(step).to_have_class("todo")
    step.get_by_role("button", name="今すぐ取り込む").click()
    page.wait_for_url("**/catalogue/")
    status = page.locator(".import-status")
    expect(status).to_have_attribute("hx-trigger", "every 1s")  # waiting: it polls
    screenshot("queued")
    page.evaluate(MARK)
    assert jobs_runner() >= 1
    expect(status).to_contain_text("完了")
    expect(status).not_to_have_attribute("hx-trigger", "every 1s")  # done: polling stopped
    assert page.evaluate(MARKED), "the status reached 完了 by a page load, not by its polling"
    screenshot()
    page.goto("/")
    expect(step).to_have_class("done")
    expect(step.get_by_role("button")).to_have_text("もう一度取り込む")
    assert console.errors == [], "\n".join(console.errors)


def test_colorme_import_links_by_model_number_and_the_problem_shows_its_fix(app, page, login, console, screenshot,
                                                                           smaregi_sample, smaregi, colorme,
                                                                           jobs_runner):
    """The ColorMe import button links the two items whose 型番 are Smaregi codes; its status says
    so with one problem and links to the link screen, where the unmatched item shows its fix."""
    assert app.test_cli_runner().invoke(args=["catalogue", "import", "smaregi"]).exit_code == 0
    colorme_shop(colorme)
    channel_id = add_channel(app, colorme, "colorme", "カラーミー")
    login()
    page.goto("/catalogue/")
    page.get_by_role("button", name="カラーミーから商品を取り込む").click()
    page.wait_for_url("**/catalogue/")
    page.evaluate(MARK)
    assert jobs_runner() >= 1
    status = page.locator("section", has_text="カラーミー").locator(".import-status")
    expect(status).to_contain_text("完了")
    expect(status).to_contain_text("紐づけ2件、問題あり1件")
    fix = status.get_by_role("link", name="紐づけ画面で直す")
    expect(fix).to_be_visible()
    assert page.evaluate(MARKED)
    screenshot("imported")
    fix.click()
    page.wait_for_url("**/links/**")
    assert f"channel={channel_id}" in page.url and "state=problem" in page.url
    rows = page.locator("#rows tbody tr")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text(UNMATCHED)
    expect(rows.first).to_contain_text("この商品コードのスマレジ商品がありません")
    screenshot()
    assert console.errors == [], "\n".join(console.errors)


def test_link_by_hand_with_a_full_width_keyword_then_unlink(app, page, login, console, screenshot,
                                                            smaregi_sample, smaregi, colorme):
    """On the unmatched item's 紐づける page a full-width keyword finds the Smaregi product; linking
    shows it on the item's row, and unlinking leaves the row saying it was unlinked by hand."""
    channel_id = imported_shop(app, colorme)
    login()
    page.goto(f"/links/?channel={channel_id}&state=all")
    row = page.locator("#rows tbody tr", has_text=UNMATCHED)
    row.get_by_role("link", name="紐づける").click()
    search = page.locator("form.filters input[name=q]")
    search.fill("ｔｓ０１－ｎｖ－ｓ")  # full-width, lower case: folded to TS01-NV-S
    search.press("Enter")
    found = page.locator("#products tbody tr")
    expect(found).to_have_count(1)
    expect(found.first).to_contain_text("TS01-NV-S")
    screenshot("search")
    found.first.get_by_role("button", name="この商品に紐づける").click()
    page.wait_for_url("**/links/**")
    page.goto(f"/links/?channel={channel_id}&state=all")
    expect(row).to_contain_text("TS01-NV-S")
    expect(row).not_to_have_class("problem")
    screenshot("linked")
    row.get_by_role("button", name="紐づけ解除").click()
    expect(row).to_contain_text("手動で紐づけを解除しました")
    expect(row).not_to_contain_text("TS01-NV-S")
    screenshot()
    assert console.errors == [], "\n".join(console.errors)


def test_link_screen_switches_to_english_and_back(app, page, login, console, screenshot,
                                                  smaregi_sample, smaregi, colorme):
    """English from the header turns the link screen's title, filters and problem text English;
    日本語 turns them back, on the same screen."""
    channel_id = imported_shop(app, colorme)
    login()
    page.goto(f"/links/?channel={channel_id}&state=problem")
    expect(page.locator("h1")).to_have_text("紐づけ")
    page.locator("header .tools").get_by_role("button", name="English").click()
    expect(page.locator("html")).to_have_attribute("lang", "en")
    expect(page.locator("h1")).to_have_text("Links")
    expect(page.get_by_role("button", name="Link automatically again")).to_be_visible()
    expect(page.locator("#rows")).to_contain_text("No Smaregi product has this code")
    assert urlsplit(page.url).path == "/links/"
    screenshot()
    page.locator("header .tools").get_by_role("button", name="日本語").click()
    expect(page.locator("h1")).to_have_text("紐づけ")
    expect(page.locator("#rows")).to_contain_text("この商品コードのスマレジ商品がありません")
    assert console.errors == [], "\n".join(console.errors)
