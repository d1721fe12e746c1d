"""The Smaregi clients of both API generations against the sandbox over real HTTP on loopback."""
from __future__ import annotations

import pytest

from stocklink.platforms.base import AuthError, ConnectionCheck, PlatformError, TemporaryError
from stocklink.platforms.smaregi import (
    LEGACY_BASE_URL,
    PLATFORM_API_BASE_URL,
    PLATFORM_ID_BASE_URL,
    PRODUCTION_RATES,
    RATE_RETRIES,
    SANDBOX_RATES,
    LegacySmaregiClient,
    PlatformSmaregiClient,
    SmaregiProduct,
    default_rate_limit,
    make_smaregi_client,
)
from stocklink.sandbox.catalogue import sample_products
from stocklink.sandbox.smaregi import SmaregiSandbox
from tests.e2e_helpers import CLIENT_ID, CLIENT_SECRET, CONTRACT, TOKEN

pytest_plugins = ["tests.fixtures_platforms"]
pytestmark = pytest.mark.usefixtures("smaregi_sample")  # every test here starts from the sample catalogue

TSHIRT_WHITE_S = "8000001"  # first sample product, stock 3 in 本店
NEVER_MOVED = "8000056"  # キャンバススニーカー: no stock row
UNMANAGED = "8000055"  # ギフトラッピング: stockControlDivision "1"
NEGATIVE = "8000054"  # リネンエプロン: stock -2


def settings(smaregi_server, generation: str, **overrides) -> dict:
    return {"api_generation": generation, "contract_id": CONTRACT, "access_token": TOKEN,
            "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, "store_id": "1",
            "legacy_base_url": f"{smaregi_server.url}/access/", "platform_id_base_url": smaregi_server.url,
            "platform_api_base_url": smaregi_server.url, **overrides}


@pytest.fixture(params=["legacy", "platform"])
def smaregi(request, smaregi_server, http):
    """Each test using it runs once per API generation, the client built by the factory."""
    return make_smaregi_client(settings(smaregi_server, request.param), session=http)


@pytest.fixture
def platform(smaregi_server, http) -> PlatformSmaregiClient:
    return PlatformSmaregiClient(smaregi_server.url, smaregi_server.url, CONTRACT, CLIENT_ID, CLIENT_SECRET, "1",
                                 session=http)


@pytest.fixture
def legacy(smaregi_server, http) -> LegacySmaregiClient:
    return LegacySmaregiClient(f"{smaregi_server.url}/access/", CONTRACT, TOKEN, "1", session=http)


def add_many(smaregi_sandbox: SmaregiSandbox, count: int, first: int = 9000001) -> list[str]:
    ids = [str(first + n) for n in range(count)]
    for n, product_id in enumerate(ids):
        smaregi_sandbox.add_product(product_id, f"追加商品 {n}", code=f"X{n:05d}", stock=n % 17)
    return ids


def test_factory_builds_the_configured_generation(smaregi_server, http):
    """make_smaregi_client returns the legacy or the Platform client as api_generation says."""
    assert isinstance(make_smaregi_client(settings(smaregi_server, "legacy"), http), LegacySmaregiClient)
    assert isinstance(make_smaregi_client(settings(smaregi_server, "platform"), http), PlatformSmaregiClient)


def test_factory_refuses_incomplete_settings():
    """Missing credentials or an unknown generation are an AuthError with code "config"."""
    with pytest.raises(AuthError) as excinfo:
        make_smaregi_client({"api_generation": "platform", "contract_id": "x", "store_id": "1"})
    assert excinfo.value.code == "config" and "client_id" in str(excinfo.value)
    with pytest.raises(AuthError):
        make_smaregi_client({"api_generation": "v3", "contract_id": "x"})


def test_default_base_urls_are_production():
    """The module's defaults point at Smaregi production hosts."""
    assert LEGACY_BASE_URL == "https://webapi.smaregi.jp/access/"
    assert (PLATFORM_ID_BASE_URL, PLATFORM_API_BASE_URL) == ("https://id.smaregi.jp", "https://api.smaregi.jp")


def test_fetch_stock_reads_the_configured_store(smaregi, smaregi_sandbox):
    """fetch_stock answers the configured store's stock, including negative stock."""
    expected = {p.product_id: p.stock for p in sample_products()[:5]}
    expected[NEGATIVE] = -2
    assert smaregi.fetch_stock(list(expected)) == expected
    smaregi_sandbox.seed_stock(TSHIRT_WHITE_S, 99, store_id="2")
    assert smaregi.fetch_stock([TSHIRT_WHITE_S]) == {TSHIRT_WHITE_S: expected[TSHIRT_WHITE_S]}


def test_fetch_stock_without_a_stock_row_is_zero(smaregi):
    """A product that never moved (and an unknown id) has no stock row and reads as 0."""
    assert smaregi.fetch_stock([NEVER_MOVED, "123456789"]) == {NEVER_MOVED: 0, "123456789": 0}


def test_fetch_stock_for_many_ids_pages_beyond_one_page(smaregi, smaregi_sandbox):
    """Stock for 1,100+ ids is read in pages of 1000, each id answered, missing rows as 0."""
    extra = add_many(smaregi_sandbox, 1100)
    ids = [p.product_id for p in sample_products()] + extra
    smaregi_sandbox.api_log.clear()
    stock = smaregi.fetch_stock(ids)
    assert len(stock) == len(ids)
    assert stock[extra[20]] == 20 % 17 and stock[NEVER_MOVED] == 0 and stock[NEGATIVE] == -2
    reads = [entry for entry in smaregi_sandbox.api_log if "stock" in entry]
    assert len(reads) == 2, reads  # 1000 + the rest, not one request per product


def test_iter_products_pages_through_the_catalogue(smaregi, smaregi_sandbox):
    """iter_products yields every product over several pages with its variant fields."""
    add_many(smaregi_sandbox, 1001)
    products = list(smaregi.iter_products())
    assert len(products) == 56 + 1001
    assert len({p.product_id for p in products}) == len(products)
    first = products[0]
    assert first == SmaregiProduct("8000001", "TS01-WH-S", "オーガニックコットンTシャツ", "S", "ホワイト",
                                   "TS01", True, sample_products()[0].image_url)
    by_id = {p.product_id: p for p in products}
    assert products[-1].product_id == "9001001" and products[-1].image_url is None
    assert by_id[UNMANAGED].stock_managed is False
    assert by_id["8000037"].name == "帆布トートバッグ" and by_id["8000037"].size is None


def test_products_carry_their_image_url(smaregi, smaregi_sandbox):
    """Both generations read the product image's URL; a product without one has None."""
    smaregi_sandbox.add_product("9100001", "画像つき", code="IMG1", image_url="https://img.example.test/1.png")
    smaregi_sandbox.add_product("9100002", "画像なし", code="IMG2")
    listed = {p.product_id: p.image_url for p in smaregi.iter_products()}
    assert listed["9100001"] == "https://img.example.test/1.png" and listed["9100002"] is None
    assert listed[TSHIRT_WHITE_S].startswith("data:image/png;base64,")
    got = smaregi.get_products(["9100001", "9100002"])
    assert (got["9100001"].image_url, got["9100002"].image_url) == ("https://img.example.test/1.png", None)


def test_get_products_returns_known_ids_only(smaregi, smaregi_sandbox):
    """get_products answers the products asked for; unknown ids are left out (few and many ids)."""
    few = smaregi.get_products([TSHIRT_WHITE_S, UNMANAGED, "999999"])
    assert set(few) == {TSHIRT_WHITE_S, UNMANAGED}
    assert few[UNMANAGED].stock_managed is False and few[UNMANAGED].name == "ギフトラッピング"
    many = smaregi.get_products([p.product_id for p in sample_products()] + ["999999"])
    assert len(many) == 56 and many[TSHIRT_WHITE_S].color == "ホワイト"


def test_set_stock_is_absolute_and_recorded_as_division_15(smaregi, smaregi_sandbox):
    """set_stock sets the store's stock and Smaregi records 在庫区分 15 with the memo."""
    assert smaregi.set_stock(TSHIRT_WHITE_S, 42, memo="stocklink 手動修正") == 42
    assert smaregi_sandbox.stock_of(TSHIRT_WHITE_S) == 42
    change = smaregi_sandbox.history[-1]
    assert (change.division, change.stock_amount, change.memo) == ("15", 42, "stocklink 手動修正")
    assert smaregi.fetch_stock([TSHIRT_WHITE_S]) == {TSHIRT_WHITE_S: 42}


def test_add_stock_is_relative_and_returns_the_new_total(smaregi, smaregi_sandbox):
    """add_stock changes the stock by a delta and answers the resulting stock."""
    before = smaregi_sandbox.stock_of(TSHIRT_WHITE_S)
    assert smaregi.add_stock(TSHIRT_WHITE_S, -5) == before - 5
    assert smaregi.add_stock(NEVER_MOVED, 4) == 4
    assert smaregi_sandbox.stock_of(NEVER_MOVED) == 4


def test_writing_an_unknown_product_is_a_platform_error(smaregi):
    """A write to a product Smaregi does not know raises PlatformError (not Auth/Temporary)."""
    with pytest.raises(PlatformError) as excinfo:
        smaregi.set_stock("7777777", 1)
    assert type(excinfo.value) is PlatformError
    assert excinfo.value.code in ("41", "not_found")


def test_stock_beyond_the_bounds_is_refused(smaregi, smaregi_sandbox):
    """Stock above 999,999,999 is refused by Smaregi and nothing changes."""
    with pytest.raises(PlatformError):
        smaregi.set_stock(TSHIRT_WHITE_S, 1_000_000_000)
    with pytest.raises(PlatformError):
        smaregi.add_stock(TSHIRT_WHITE_S, 999_999_999)
    assert smaregi_sandbox.stock_of(TSHIRT_WHITE_S) == sample_products()[0].stock


def test_get_stock_change_reads_one_history_row(smaregi, smaregi_sandbox):
    """get_stock_change returns the 在庫変動履歴 row a notification names, or None."""
    [change] = smaregi_sandbox.sell([(TSHIRT_WHITE_S, 2)])
    found = smaregi.get_stock_change(TSHIRT_WHITE_S, str(change.id))
    assert (found.amount, found.stock_amount, found.stock_division) == (-2, change.stock_amount, "02")
    assert smaregi.get_stock_change(TSHIRT_WHITE_S, "999999") is None


def test_stock_changes_after_reads_the_entries_past_each_cursor(smaregi, smaregi_sandbox):
    """stock_changes_after lists, oldest first, each product's 在庫変動履歴 entries with an id past
    its cursor, of the configured store only; an unknown product has none."""
    smaregi_sandbox.add_store("2", "倉庫")
    first = smaregi_sandbox.sell([(TSHIRT_WHITE_S, 1), (NEGATIVE, 1)])
    smaregi_sandbox.sell([(TSHIRT_WHITE_S, 1)], store_id="2")
    second = smaregi_sandbox.refund([(TSHIRT_WHITE_S, 1)])
    third = smaregi_sandbox.sell([(TSHIRT_WHITE_S, 2)])
    found = smaregi.stock_changes_after({TSHIRT_WHITE_S: first[0].id, NEGATIVE: first[1].id - 1, "9999999": 0})
    assert [(int(c.change_id), c.amount, c.stock_amount, c.stock_division) for c in found[TSHIRT_WHITE_S]] == [
        (second[0].id, 1, 3, "12"), (third[0].id, -2, 1, "02")]
    assert [int(c.change_id) for c in found[NEGATIVE]] == [first[1].id]
    assert found["9999999"] == []
    assert smaregi.stock_changes_after({TSHIRT_WHITE_S: third[0].id}) == {TSHIRT_WHITE_S: []}


def test_stock_changes_after_pages_to_the_cursor(smaregi, smaregi_sandbox):
    """More entries past the cursor than one page holds are all read, each once."""
    start = smaregi_sandbox.sell([(TSHIRT_WHITE_S, 1)])[0].id
    for _ in range(130):
        smaregi_sandbox.refund([(TSHIRT_WHITE_S, 1)])
    found = smaregi.stock_changes_after({TSHIRT_WHITE_S: start})[TSHIRT_WHITE_S]
    assert len(found) == 130 == len({c.change_id for c in found})
    assert [int(c.change_id) for c in found] == sorted(int(c.change_id) for c in found)


def test_legacy_stock_changes_since_a_second_and_for_many_products(legacy, smaregi_sandbox):
    """Legacy: a product without a cursor is read from a notified second on (updDateTime >=);
    many products are read in one scan of the store after the smallest cursor."""
    ids = add_many(smaregi_sandbox, 15)
    moved = smaregi_sandbox.sell([(pid, 1) for pid in ids])
    cursors = {pid: change.id - 1 for pid, change in zip(ids, moved, strict=True)}
    calls = len(smaregi_sandbox.api_log)
    found = legacy.stock_changes_after(cursors)
    assert len(smaregi_sandbox.api_log) == calls + 1
    assert {pid: [int(c.change_id) for c in rows] for pid, rows in found.items()} == {
        pid: [change.id] for pid, change in zip(ids, moved, strict=True)}
    second = moved[0].legacy_row()["updDateTime"]
    entries = legacy.stock_changes_after({}, {ids[0]: second})[ids[0]]
    assert moved[0].id in [int(c.change_id) for c in entries]
    assert all(c.upd_date_time >= second and c.product_id == ids[0] for c in entries)
    assert legacy.stock_changes_after({}, {ids[0]: "2999-01-01 00:00:00"}) == {ids[0]: []}


def test_platform_stock_changes_ask_newest_first(platform, smaregi_sandbox):
    """Platform: one GET /stock/changes per product, newest first, one page when the cursor is near."""
    start = smaregi_sandbox.sell([(TSHIRT_WHITE_S, 1)])[0].id
    smaregi_sandbox.refund([(TSHIRT_WHITE_S, 1)])
    calls = len(smaregi_sandbox.api_log)
    [entry] = platform.stock_changes_after({TSHIRT_WHITE_S: start})[TSHIRT_WHITE_S]
    [request] = smaregi_sandbox.api_log[calls:]
    assert request.startswith(f"GET /{CONTRACT}/pos/stock/changes/{TSHIRT_WHITE_S}/1?") and "sort=id%3Adesc" in request
    assert entry.stock_division == "12"


def test_platform_stock_changes_of_many_products_stay_within_the_rate_limit(platform, smaregi_sandbox):
    """Reading the history of more products than the GET rate allows per second spaces the calls:
    the sandbox plan's 10 GET/s is never exceeded, so no 429."""
    ids = add_many(smaregi_sandbox, 14)
    smaregi_sandbox.configure(rate_limit=(10, 4))
    found = platform.stock_changes_after({pid: 0 for pid in ids})
    assert all(len(found[pid]) == 1 for pid in ids)  # each one's initial stock entry


def test_test_connection_describes_the_contract(smaregi):
    """test_connection succeeds with what it found: the product count and the store."""
    check = smaregi.test_connection()
    assert (check.products, check.store, check.store_checked) == (56, "1", True)


def test_test_connection_with_an_unknown_store_is_an_auth_error(smaregi_server, http):
    """A store id the contract does not have is a setting the merchant must fix (AuthError)."""
    for generation in ("legacy", "platform"):
        smaregi = make_smaregi_client(settings(smaregi_server, generation, store_id="77"), http)
        with pytest.raises(AuthError):
            smaregi.test_connection()


@pytest.mark.parametrize("generation", ["legacy", "platform"])
def test_wrong_credentials_raise_auth_error_without_leaking_them(smaregi_server, http, generation):
    """Wrong credentials raise AuthError on both generations; the message holds no secret."""
    wrong = settings(smaregi_server, generation, access_token="wrong-token-555", client_secret="wrong-secret-555")
    with pytest.raises(AuthError) as excinfo:
        make_smaregi_client(wrong, http).fetch_stock([TSHIRT_WHITE_S])
    assert "555" not in str(excinfo.value) and TOKEN not in str(excinfo.value)


def test_wrong_contract_id_is_an_auth_error(smaregi_server, http):
    """An unknown 契約ID is legacy error 14 → AuthError."""
    with pytest.raises(AuthError) as excinfo:
        make_smaregi_client(settings(smaregi_server, "legacy", contract_id="nope"), http).fetch_stock(["1"])
    assert excinfo.value.code == "14"


def test_legacy_disabled_function_and_ip_are_auth_errors(legacy, smaregi_sandbox):
    """Legacy 23 (function disabled) and 24 (IP not allowed) are settings to fix: AuthError."""
    smaregi_sandbox.configure(disabled_functions={"stock_ref"})
    with pytest.raises(AuthError) as excinfo:
        legacy.fetch_stock([TSHIRT_WHITE_S])
    assert excinfo.value.code == "23"
    smaregi_sandbox.configure(disabled_functions=set(), allowed_ips={"10.0.0.1"})
    with pytest.raises(AuthError) as excinfo:
        legacy.fetch_stock([TSHIRT_WHITE_S])
    assert excinfo.value.code == "24"


@pytest.mark.parametrize("kind", ["500", "maintenance"])
def test_server_errors_are_temporary(smaregi, smaregi_sandbox, kind):
    """HTTP 500 and maintenance (503) raise TemporaryError; the next call works."""
    smaregi.fetch_stock([TSHIRT_WHITE_S])  # the Platform token is in hand
    smaregi_sandbox.fail_next(kind)
    with pytest.raises(TemporaryError) as excinfo:
        smaregi.fetch_stock([TSHIRT_WHITE_S])
    assert excinfo.value.status in (500, 503)
    assert smaregi.fetch_stock([TSHIRT_WHITE_S])[TSHIRT_WHITE_S] == sample_products()[0].stock


def test_429_is_temporary_with_retry_after(smaregi, smaregi_sandbox):
    """HTTP 429 that persists raises TemporaryError carrying the Retry-After seconds (the Platform
    client first sends the read again RATE_RETRIES times, waiting Retry-After each time)."""
    smaregi.fetch_stock([TSHIRT_WHITE_S])
    waits = []
    if isinstance(smaregi, PlatformSmaregiClient):
        smaregi._sleep = waits.append
    before = len(smaregi_sandbox.api_log)
    smaregi_sandbox.fail_next("429", count=RATE_RETRIES + 1)
    with pytest.raises(TemporaryError) as excinfo:
        smaregi.fetch_stock([TSHIRT_WHITE_S])
    assert excinfo.value.status == 429 and excinfo.value.retry_after in (1.0, 2.0)
    retries = RATE_RETRIES if isinstance(smaregi, PlatformSmaregiClient) else 0
    assert len(smaregi_sandbox.api_log) - before == 1 + retries
    assert [w for w in waits if w >= 1] == [2.0] * retries  # Retry-After, not the pacing gaps


def test_a_platform_read_refused_with_429_once_is_sent_again(platform, smaregi_sandbox):
    """One 429 (another worker used the contract's budget) is waited out, not raised."""
    platform.fetch_stock([TSHIRT_WHITE_S])
    waits = []
    platform._sleep = waits.append
    smaregi_sandbox.fail_next("429")
    assert platform.fetch_stock([TSHIRT_WHITE_S]) == {TSHIRT_WHITE_S: sample_products()[0].stock}
    assert 2.0 in waits


def test_a_platform_write_refused_with_429_is_not_repeated(platform, smaregi_sandbox):
    """A write answered 429 raises at once: whether to send it again is the caller's decision."""
    platform.fetch_stock([TSHIRT_WHITE_S])
    before = len(smaregi_sandbox.api_log)
    smaregi_sandbox.fail_next("429")
    with pytest.raises(TemporaryError) as excinfo:
        platform.set_stock(TSHIRT_WHITE_S, 7)
    assert excinfo.value.rate_limited and len(smaregi_sandbox.api_log) - before == 1
    assert smaregi_sandbox.stock_of(TSHIRT_WHITE_S) == sample_products()[0].stock


def test_platform_reads_are_paced_under_the_rate_limit(smaregi_server, http, smaregi_sandbox):
    """A client told Smaregi's limit spaces its reads: a burst of 12 stock-change reads against a
    sandbox enforcing 4 GET/s is never refused (each request reaches Smaregi once)."""
    smaregi_sandbox.configure(rate_limit=(4, 2))
    platform = PlatformSmaregiClient(smaregi_server.url, smaregi_server.url, CONTRACT, CLIENT_ID, CLIENT_SECRET, "1",
                                     session=http, rate_limit=(3.5, 1.5))
    change = smaregi_sandbox.changes(TSHIRT_WHITE_S, "1")[0]
    before = len(smaregi_sandbox.api_log)
    for _ in range(12):
        assert platform.get_stock_change(TSHIRT_WHITE_S, str(change.id)).change_id == str(change.id)
    assert len(smaregi_sandbox.api_log) - before == 12  # no request refused and sent again


def test_default_rate_limits_follow_the_smaregi_host():
    """Smaregi's sandbox hosts get the sandbox plan's limits, every other host production's."""
    assert default_rate_limit("https://api.smaregi.dev") == SANDBOX_RATES == (10, 4)
    assert default_rate_limit("https://api.smaregi.jp/") == PRODUCTION_RATES == (50, 20)
    assert PlatformSmaregiClient("https://id.smaregi.dev", "https://api.smaregi.dev", "c", "i", "s", "1"
                                 ).rate_limit == SANDBOX_RATES


def test_a_slow_answer_times_out_as_temporary(smaregi_server, smaregi_sandbox, http):
    """An answer slower than the client's timeout raises TemporaryError(code="timeout")."""
    smaregi = LegacySmaregiClient(f"{smaregi_server.url}/access/", CONTRACT, TOKEN, "1", session=http, timeout=0.2)
    smaregi_sandbox.fail_next("slow", seconds=0.6)
    with pytest.raises(TemporaryError) as excinfo:
        smaregi.fetch_stock([TSHIRT_WHITE_S])
    assert excinfo.value.code == "timeout"


def test_unreachable_smaregi_is_temporary(http):
    """A refused connection raises TemporaryError."""
    smaregi = LegacySmaregiClient("http://127.0.0.1:9/access/", CONTRACT, TOKEN, "1", session=http,
                                  timeout=1)
    with pytest.raises(TemporaryError):
        smaregi.fetch_stock(["1"])


def test_platform_token_is_cached(platform, smaregi_sandbox):
    """Several calls share one app token."""
    platform.fetch_stock([TSHIRT_WHITE_S])
    platform.set_stock(TSHIRT_WHITE_S, 3)
    platform.get_products([TSHIRT_WHITE_S])
    assert smaregi_sandbox.tokens_issued == 1


def test_platform_token_is_renewed_once_on_401(platform, smaregi_sandbox):
    """When Smaregi expires the token, the client gets a new one and the call succeeds."""
    platform.fetch_stock([TSHIRT_WHITE_S])
    smaregi_sandbox.expire_tokens()
    assert platform.fetch_stock([NEGATIVE]) == {NEGATIVE: -2}
    assert smaregi_sandbox.tokens_issued == 2
    smaregi_sandbox.fail_next("expired_token")
    assert platform.fetch_stock([NEGATIVE]) == {NEGATIVE: -2}
    assert smaregi_sandbox.tokens_issued == 3


def test_platform_token_is_renewed_before_it_expires(platform, smaregi_sandbox):
    """The cached token is replaced about 60 s before its expires_in runs out."""
    now = [1000.0]
    platform._clock = lambda: now[0]
    platform.fetch_stock([TSHIRT_WHITE_S])
    now[0] += 3500
    platform.fetch_stock([TSHIRT_WHITE_S])
    assert smaregi_sandbox.tokens_issued == 1
    now[0] += 45  # 3545 s: inside the last minute
    platform.fetch_stock([TSHIRT_WHITE_S])
    assert smaregi_sandbox.tokens_issued == 2


def test_platform_401_after_renewal_is_an_auth_error(platform, smaregi_sandbox):
    """If the renewed token is refused too, the client stops with AuthError (no loop)."""
    platform.fetch_stock([TSHIRT_WHITE_S])
    smaregi_sandbox.fail_next("expired_token", count=2)
    with pytest.raises(AuthError):
        platform.fetch_stock([TSHIRT_WHITE_S])
    assert smaregi_sandbox.tokens_issued == 2


def test_platform_revoked_client_secret_is_an_auth_error(platform, smaregi_sandbox):
    """A client secret changed in スマレジ・デベロッパーズ makes the renewal fail with AuthError."""
    platform.fetch_stock([TSHIRT_WHITE_S])
    smaregi_sandbox.configure(client_secret="rotated")
    smaregi_sandbox.expire_tokens()
    with pytest.raises(AuthError) as excinfo:
        platform.fetch_stock([TSHIRT_WHITE_S])
    assert excinfo.value.code == "invalid_client" and CLIENT_SECRET not in str(excinfo.value)


def test_platform_missing_scope_is_an_auth_error(platform, smaregi_sandbox):
    """Scopes the app lacks make the token request fail: AuthError."""
    smaregi_sandbox.configure(app_scopes={"pos.products:read"})
    with pytest.raises(AuthError):
        platform.fetch_stock([TSHIRT_WHITE_S])


def test_repr_shows_no_credentials(legacy, platform):
    """The clients' repr names the contract and store but no token or secret."""
    assert TOKEN not in repr(legacy) and CLIENT_SECRET not in repr(platform)


def test_legacy_test_connection_works_without_store_ref(legacy, smaregi_sandbox):
    """With 店舗情報参照 disabled, test_connection still succeeds and says the store is unchecked."""
    smaregi_sandbox.configure(disabled_functions={"store_ref"})
    assert legacy.test_connection() == ConnectionCheck(products=56, store="1", store_checked=False)
