"""The NextEngine client against the NextEngine sandbox over real HTTP on loopback."""
from __future__ import annotations

import ast
import inspect

import pytest
import requests

from stocklink.platforms import nextengine as nextengine_module
from stocklink.platforms.base import AuthError, ConnectionCheck, TemporaryError
from stocklink.platforms.nextengine import NextEngineClient, build_delta_csv
from stocklink.sandbox.nextengine import NextEngineSandbox, create_app
from stocklink.sandbox.server import serve_in_thread


def _serve(sandbox: NextEngineSandbox):
    server = serve_in_thread(create_app(sandbox))
    sandbox.url = server.url
    return server


@pytest.fixture
def ne():
    """A fresh NextEngine sandbox (rotating tokens on every call) served on loopback."""
    sandbox = NextEngineSandbox()
    server = _serve(sandbox)
    yield sandbox
    server.stop()


@pytest.fixture
def ne_on_expiry():
    """A NextEngine sandbox that rotates tokens only once the access token expired."""
    sandbox = NextEngineSandbox(rotate="on_expiry")
    server = _serve(sandbox)
    yield sandbox
    server.stop()


class Saved(list):
    """Records every credentials dict the client hands to on_credentials."""

    @property
    def last(self) -> dict:
        return self[-1]


@pytest.fixture
def make_client():
    """Build clients (logged in to the given sandbox) with sessions closed after the test."""
    sessions = []

    def make(sandbox, credentials=None, timeout=5.0, saved=None) -> NextEngineClient:
        session = requests.Session()
        sessions.append(session)
        return NextEngineClient(sandbox.url, credentials or sandbox.login(), session=session,
                                timeout=timeout, on_credentials=saved.append if saved is not None else None)

    yield make
    for session in sessions:
        session.close()


def api_requests(sandbox, path: str) -> list[dict]:
    return [r for r in sandbox.requests if r["path"] == path]


def test_connection_names_the_company(ne, make_client):
    """test_connection answers with the company the tokens belong to."""
    assert make_client(ne).test_connection() == ConnectionCheck(account="サンドボックス商店")


def test_read_stock_in_one_search(ne, make_client):
    """read_stock asks /api_v1_master_stock/search once for all codes; unknown codes are None."""
    ne.add_goods("A-001", 5)
    ne.add_goods("B-007", 0)
    assert make_client(ne).read_stock(["A-001", "B-007", "ZZZ"]) == {"A-001": 5, "B-007": 0, "ZZZ": None}
    [search] = api_requests(ne, "/api_v1_master_stock/search")
    assert search["body"]["stock_goods_id-in"] == "A-001,B-007,ZZZ"
    assert search["headers"]["Content-Type"] == "application/x-www-form-urlencoded"


def test_upload_deltas_sends_the_csv_and_stays_pending(ne, make_client):
    """upload_deltas sends each delta as zaiko_su, one CSV line per row, and the upload waits in the queue."""
    ne.add_goods("A-001", 10)
    ne.add_goods("B-007", 1)
    client = make_client(ne)
    que_id = client.upload_deltas([("A-001", -2), ("B-007", 5)], key="k1")
    assert que_id
    [upload] = ne.uploads
    assert upload == {"que_id": que_id, "data_type": "csv",
                      "csv": "syohin_code,zaiko_su\nA-001,-2\nB-007,5\n"}
    assert client.pending_status([que_id])[que_id]["status"] == "waiting"
    assert ne.stock("A-001") == 10  # nothing moves before the queue runs


def test_queue_status_processed(ne, make_client):
    """pending_status reports waiting, then processed once NextEngine ran the queue."""
    ne.add_goods("A-001", 10)
    client = make_client(ne)
    que_id = client.upload_deltas([("A-001", -3)], key="run-1")
    assert client.pending_status([que_id])[que_id]["status"] == "waiting"
    assert ne.process_queue() == [que_id]
    status = client.pending_status([que_id])[que_id]
    assert (status["status"], status["status_id"], status["errors"]) == ("processed", "2", [])
    assert ne.stock("A-001") == 7


def test_queue_reports_unknown_goods_per_row(ne, make_client):
    """A row for goods NextEngine does not know fails with 「○○は必須です」 and its line; good rows apply."""
    ne.add_goods("A-001", 10)
    client = make_client(ne)
    que_id = client.upload_deltas([("A-001", 2), ("NEW-1", 4)], key="a")
    ne.process_queue()
    status = client.pending_status([que_id])[que_id]
    assert status["status"] == "error"
    [error] = status["errors"]
    assert error["line"] == 3  # NEW-1's line in the CSV, after the header and A-001
    assert "仕入先コードは必須です" in error["message"] and "NEW-1" in error["message"]
    assert ne.stock("A-001") == 12


def test_stock_never_goes_negative(ne, make_client):
    """A decrease beyond free stock fails for that row and leaves the stock alone."""
    ne.add_goods("A-001", 2)
    client = make_client(ne)
    que_id = client.upload_deltas([("A-001", -5)], key="neg")
    ne.process_queue()
    status = client.pending_status([que_id])[que_id]
    assert status["status"] == "error" and status["errors"][0]["line"] == 2
    assert ne.stock("A-001") == 2


def test_unknown_queue_id(ne, make_client):
    """A que_id NextEngine does not know is reported as unknown."""
    assert make_client(ne).pending_status(["424242"])["424242"]["status"] == "unknown"


def test_auto_process_applies_on_upload(make_client):
    """With auto_process the sandbox processes each upload immediately."""
    sandbox = NextEngineSandbox(auto_process=True)
    server = _serve(sandbox)
    try:
        sandbox.add_goods("A-001", 1)
        client = make_client(sandbox)
        que_id = client.upload_deltas([("A-001", 4)], key="x")
        assert client.pending_status([que_id])[que_id]["status"] == "processed"
        assert sandbox.stock("A-001") == 5
    finally:
        server.stop()


def test_an_unknown_code_fails_its_row_and_is_not_created(ne, make_client):
    """A code NextEngine does not know fails on its own line; read_stock still answers None for it."""
    ne.add_goods("A-001", 9)
    client = make_client(ne)
    que_id = client.upload_deltas([("A-001", -5), ("ZZZ", 4)], key="a")
    assert ne.uploads[0]["csv"] == "syohin_code,zaiko_su\nA-001,-5\nZZZ,4\n"
    ne.process_queue()
    assert [e["line"] for e in client.pending_status([que_id])[que_id]["errors"]] == [3]
    assert client.read_stock(["A-001", "ZZZ"]) == {"A-001": 4, "ZZZ": None}


def test_an_empty_upload_is_refused_before_anything_is_sent(ne, make_client):
    """With no rows there is nothing to upload: ValueError, and NextEngine receives nothing."""
    ne.add_goods("A-001", 3)
    with pytest.raises(ValueError, match="nothing to upload"):
        make_client(ne).upload_deltas([], key="a")
    assert ne.uploads == []


def test_same_key_uploads_once(ne, make_client):
    """upload_deltas with a key already uploaded by this client returns the same que_id."""
    ne.add_goods("A-001", 3)
    client = make_client(ne)
    first = client.upload_deltas([("A-001", 1)], key="same")
    assert client.upload_deltas([("A-001", 1)], key="same") == first
    assert len(ne.uploads) == 1


def test_rotated_tokens_are_persisted_and_old_token_refused(ne, make_client):
    """Every response's new tokens reach on_credentials and are used next; the old token gets 002002."""
    original = ne.login()
    saved = Saved()
    client = make_client(ne, dict(original, client_note="kept"), saved=saved)
    client.test_connection()
    assert saved.last["access_token"] != original["access_token"]
    assert saved.last["client_note"] == "kept"
    assert saved.last == {**client.credentials}
    client.read_stock(["A-001"])
    assert len(saved) == 2
    sent = api_requests(ne, "/api_v1_master_stock/search")[0]["body"]
    assert sent["access_token"] == saved[0]["access_token"]
    assert sent["refresh_token"] == saved[0]["refresh_token"]
    assert ne.current_tokens()["access_token"] == saved.last["access_token"]

    stale = make_client(ne, dict(original))
    with pytest.raises(AuthError) as caught:
        stale.test_connection()
    assert caught.value.code == "002002"
    assert original["access_token"] not in str(caught.value)


def test_expired_access_token_is_renewed_by_refresh_token(ne_on_expiry, make_client):
    """An expired access token with a live refresh token succeeds once and yields a new pair."""
    saved = Saved()
    client = make_client(ne_on_expiry, saved=saved)
    client.test_connection()
    assert saved == []  # on_expiry: nothing rotated while the access token is valid
    ne_on_expiry.advance(25 * 3600)
    client.test_connection()
    assert len(saved) == 1 and saved.last["access_token"] == ne_on_expiry.current_tokens()["access_token"]


def test_both_tokens_expired_needs_login(ne, make_client):
    """With both tokens expired NextEngine answers redirect, which is an AuthError."""
    client = make_client(ne)
    ne.expire_tokens()
    with pytest.raises(AuthError) as caught:
        client.test_connection()
    assert "login" in str(caught.value).lower()


def test_revoked_tokens_are_an_auth_error(ne, make_client):
    """Tokens NextEngine no longer knows raise AuthError."""
    client = make_client(ne)
    ne.revoke_tokens()
    with pytest.raises(AuthError):
        client.read_stock(["A-001"])


def test_maintenance_is_temporary_despite_http_200(ne, make_client):
    """NextEngine's 002007 (HTTP 200, result error) raises TemporaryError with a long retry_after."""
    client = make_client(ne)
    ne.set_maintenance(True)
    with pytest.raises(TemporaryError) as caught:
        client.test_connection()
    assert caught.value.code == "002007" and caught.value.retry_after >= 60


def test_overload_is_temporary_and_tokens_still_rotate(ne, make_client):
    """003002 (overload) raises TemporaryError, and the tokens it carried are still persisted."""
    saved = Saved()
    client = make_client(ne, saved=saved)
    ne.error_next(1, "003002")
    with pytest.raises(TemporaryError) as caught:
        client.test_connection()
    assert caught.value.code == "003002"
    assert len(saved) == 1
    assert client.test_connection().account == "サンドボックス商店"


def test_http_5xx_is_temporary(ne, make_client):
    """An HTTP 503 from NextEngine's front raises TemporaryError."""
    client = make_client(ne)
    ne.fail_next(1, 503)
    with pytest.raises(TemporaryError) as caught:
        client.test_connection()
    assert caught.value.status == 503


def test_slow_answer_times_out_as_temporary(ne, make_client):
    """A response slower than the client's timeout raises TemporaryError(code='timeout')."""
    client = make_client(ne, timeout=0.2)
    ne.set_delay(0.6)
    with pytest.raises(TemporaryError) as caught:
        client.test_connection()
    assert caught.value.code == "timeout"


def test_unknown_path_is_code_000001(ne):
    """The sandbox answers an unknown path HTTP 200 with code 000001, as NextEngine does."""
    with requests.Session() as session:
        body = session.post(f"{ne.url}/api_v1_nothing/search", data={"access_token": "x"}).json()
    assert (body["result"], body["code"]) == ("error", "000001")


def test_missing_access_token_is_002001(ne):
    """The sandbox refuses a call without access_token with 002001."""
    with requests.Session() as session:
        body = session.post(f"{ne.url}/api_v1_login_company/info", data={}).json()
    assert (body["result"], body["code"]) == ("error", "002001")


def test_neauth_issues_tokens_for_uid_and_state(ne):
    """/api_neauth exchanges a uid/state pair once for a token pair."""
    pair = ne.issue_uid_state()
    with requests.Session() as session:
        first = session.post(f"{ne.url}/api_neauth", data={**pair, "client_id": "c", "client_secret": "s"})
        again = session.post(f"{ne.url}/api_neauth", data={**pair, "client_id": "c", "client_secret": "s"})
    assert first.json()["result"] == "success" and first.json()["access_token"]
    assert again.json()["result"] == "redirect"


def test_build_delta_csv_format():
    """The upload CSV has the syohin_code,zaiko_su header and signed integers."""
    assert build_delta_csv([("A-1", 3), ("B-2", -1)]) == "syohin_code,zaiko_su\nA-1,3\nB-2,-1\n"


def test_production_code_does_not_import_the_sandbox():
    """The client module never imports stocklink.sandbox."""
    tree = ast.parse(inspect.getsource(nextengine_module))
    names = [n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
    names += [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
    assert not any(name.startswith("stocklink.sandbox") for name in names)
    assert nextengine_module.DEFAULT_BASE_URL == "https://api.next-engine.org"


def test_sandbox_control_endpoints(ne):
    """The /sandbox/ JSON endpoints add goods, sell, log in, expire tokens and run the queue."""
    with requests.Session() as s:
        s.post(f"{ne.url}/sandbox/goods", json={"goods_id": "A-001", "stock": 5})
        s.post(f"{ne.url}/sandbox/goods/A-001/stock", json={"stock": 4})
        assert s.get(f"{ne.url}/sandbox/goods/A-001").json()["stock"] == 4
        tokens = s.post(f"{ne.url}/sandbox/tokens").json()
        upload = s.post(f"{ne.url}/api_v1_master_goods/upload", data={
            **tokens, "data_type": "csv", "data": "syohin_code,zaiko_su\nA-001,2\n"}).json()
        assert upload["result"] == "success" and upload["access_token"] != tokens["access_token"]
        assert s.post(f"{ne.url}/sandbox/queue/process").json()["processed"] == [upload["que_id"]]
        assert s.get(f"{ne.url}/sandbox/uploads").json()["uploads"][0]["csv"].endswith("A-001,2\n")
        assert ne.stock("A-001") == 6
        s.post(f"{ne.url}/sandbox/tokens/expire", json={"refresh": True})
        body = s.post(f"{ne.url}/api_v1_login_company/info",
                      data={"access_token": upload["access_token"],
                            "refresh_token": upload["refresh_token"]}).json()
        assert body["result"] == "redirect"
        s.post(f"{ne.url}/sandbox/error-next", json={"count": 1, "code": "003001"})
        fresh = s.post(f"{ne.url}/sandbox/tokens").json()
        body = s.post(f"{ne.url}/api_v1_login_company/info", data=fresh).json()
        assert (body["result"], body["code"]) == ("error", "003001") and body["access_token"]
