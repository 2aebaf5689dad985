"""Personal data under PIPL: masked wherever it can leave the mall (logs, merchant views,
error messages), a copy for its owner, deletion, and the purge of inactive accounts."""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import logging
import subprocess
import time
from datetime import datetime, timedelta

import pytest

from shared.clock import SHANGHAI, Clock
from shared.masking import mask_log_handlers, mask_phone

from .conftest import open_shop, order_body, paid_order, rows_of, stored_bytes
from .test_cli import XINGCHENG, call, serving

PHONE = "13975318642"
NAME = "欧阳娜娜"
DETAIL = "麓山南路932号湖南大学德智园7栋502室"
# Pieces of the detail that no masked form keeps (the mask keeps the first six characters).
DETAIL_PIECES = ("932号", "湖南大学", "德智园", "502室")
ADDRESS = {"contact_name": NAME, "phone": PHONE, "district": "岳麓区", "detail": DETAIL,
           "lat": 28.18, "lng": 112.94}


def assert_no_personal_data(text: str, where: str) -> None:
    for secret in (PHONE, NAME, DETAIL, *DETAIL_PIECES):
        assert secret not in text, f"{secret!r} reached {where}"


@pytest.mark.slow  # CLI and server processes
def test_phone_name_and_address_never_reach_logs_merchants_or_errors(tmp_path):
    """A real `xingcheng serve`: a customer logs in, adds an address and has a delivery order
    paid, dispatched and delivered; the store's staff look at every view they have.  The log
    file (access log and the mall's own log), every merchant response and the error bodies
    carry none of the phone, the name or the address detail."""
    db, log_path = tmp_path / "scan.db", tmp_path / "serve.log"
    operator = subprocess.run([*XINGCHENG, "token", "--operator", "--db", str(db)],
                              capture_output=True, text=True, check=True,
                              timeout=60).stdout.strip()
    merchant_texts: list[str] = []
    keys = str(tmp_path / "payment-keys.json")
    with log_path.open("w") as log, serving(tmp_path / "payer.db", "--keys", keys, log=log,
                                            command="paysandbox") as payer, \
            serving(db, "--payer", payer, "--payer-keys", keys, log=log) as base:
        status, store = call(f"{base}/api/v1/admin/stores", "POST", token=operator, body={
            "name": "麓山南路粉店", "kind": "snacks", "district": "岳麓区", "lat": 28.18,
            "lng": 112.94})
        assert status == 201, store
        store_id = store["store_id"]
        assert call(f"{base}/api/v1/admin/stores/{store_id}/staff", "POST", token=operator,
                    body={"openid": "scan-merchant"})[0] == 201
        merchant = call(f"{base}/api/v1/auth/wx-login", "POST",
                        {"code": "sandbox:scan-merchant"})[1]["token"]
        status, product = call(f"{base}/api/v1/merchant/stores/{store_id}/products", "POST",
                               token=merchant, body={"name": "牛肉粉", "price_fen": 1500})
        assert status == 201, product
        sku_id = product["sku_id"]
        assert call(f"{base}/api/v1/merchant/stores/{store_id}/inventory/{sku_id}", "PUT",
                    token=merchant, body={"stock": 5})[0] == 200

        customer = call(f"{base}/api/v1/auth/wx-login", "POST",
                        {"code": "sandbox:scan-customer"})[1]["token"]
        status, address = call(f"{base}/api/v1/me/addresses", "POST", token=customer,
                               body=ADDRESS)
        assert status == 201, address
        assert address["contact_masked"] == f"欧*** {mask_phone(PHONE)} 麓山南路93***"
        # Refused inputs: the error names the field, never echoes the value.
        errors = [call(f"{base}/api/v1/me/addresses", "POST", token=customer,
                       body=ADDRESS | change)
                  for change in ({"phone": PHONE + "0"}, {"contact_name": NAME * 20},
                                 {"district": DETAIL[:20]}, {"detail": DETAIL * 6})]
        assert [status for status, _ in errors] == [400] * 4
        error_text = json.dumps([body for _, body in errors], ensure_ascii=False)
        assert_no_personal_data(error_text, "an error message")
        assert_no_personal_data(call(f"{base}/api/v1/stores?q={PHONE}")[1]["error"]["message"],
                                "an error message")

        status, order = call(f"{base}/api/v1/orders", "POST", token=customer, body={
            "store_id": store_id, "lines": [{"sku_id": sku_id, "qty": 2}],
            "fulfilment": "delivery", "address_id": address["id"]})
        assert status == 201, order
        order_id = order["order_id"]
        prepay = call(f"{base}/api/v1/orders/{order_id}/pay", "POST", token=customer)[1]
        assert call(f"{payer}/sandbox/payments/{prepay['prepay_id']}/complete", "POST",
                    body={"result": "success"})[0] == 202
        for _ in range(200):
            if call(f"{base}/api/v1/orders/{order_id}", token=customer)[1]["status"] == "paid":
                break
            time.sleep(0.02)

        staff = f"{base}/api/v1/merchant/stores/{store_id}"
        for url, method in ((f"{staff}/orders", "GET"), (f"{staff}/orders/{order_id}", "GET"),
                            (f"{staff}/pickup-queue", "GET"),
                            (f"{staff}/orders/{order_id}/dispatch", "POST"),
                            (f"{staff}/orders/{order_id}/delivered", "POST"),
                            (f"{staff}/orders?status=completed", "GET"),
                            (f"{staff}/audit-log", "GET")):
            status, body = call(url, method, token=merchant)
            assert status == 200, (url, body)
            merchant_texts.append(json.dumps(body, ensure_ascii=False))
        time.sleep(0.3)   # one access-log flush
    merchant_text = "\n".join(merchant_texts)
    assert f'"order_id": {order_id}' in merchant_text and '"completed"' in merchant_text
    assert_no_personal_data(merchant_text, "a merchant view")

    log_text = log_path.read_text(encoding="utf-8")
    assert '"route": "/api/v1/me/addresses"' in log_text and "mall ready on" in log_text
    assert mask_phone(PHONE) in log_text     # the query string above, masked
    assert_no_personal_data(log_text, "the mall's log")


def test_the_log_mask_covers_tracebacks():
    """An exception quoting a phone is written masked, message and traceback alike."""
    logger = logging.getLogger("test_privacy.traceback")
    logger.propagate = False
    out = io.StringIO()
    logger.addHandler(logging.StreamHandler(out))
    mask_log_handlers(logger)
    try:
        raise ValueError(f"no such customer {PHONE}")
    except ValueError:
        logger.exception("lookup of %s failed", PHONE)
    text = out.getvalue()
    assert "Traceback" in text and text.count(mask_phone(PHONE)) == 2
    assert PHONE not in text




OTHER = {"contact_name": "刘德华", "phone": "13600001111", "district": "芙蓉区",
         "detail": "五一大道766号中天广场22楼", "lat": 28.19, "lng": 112.98}


async def _customer_with_address(mall, openid: str, address: dict) -> tuple[str, int]:
    token = await mall.api.login(openid)
    made = await mall.api.post("/api/v1/me/addresses", token=token, json=address)
    assert made.status == 201, made.body
    return token, made.body["id"]


async def test_my_data_is_mine_decrypted_and_nobody_elses(mall, shop):
    """Two customers with addresses and paid orders: each copy holds its owner's phone,
    name and address in full, their orders with lines and payments, and nothing of the other."""
    alice, alice_address = await _customer_with_address(mall, "alice", ADDRESS)
    bob, _ = await _customer_with_address(mall, "bob", OTHER)
    alice_order = await paid_order(mall, shop, alice, qty=2)
    bob_order = await paid_order(mall, shop, bob, qty=3)

    mine = await mall.api.get("/api/v1/me/data", token=alice)
    assert mine.status == 200, mine.body
    data = mine.body
    assert data["profile"]["openid"] == "alice" and data["profile"]["phone"] is None
    assert [(a["id"], a["contact_name"], a["phone"], a["detail"]) for a in data["addresses"]] \
        == [(alice_address, NAME, PHONE, DETAIL)]
    assert [o["order_id"] for o in data["orders"]] == [alice_order]
    order = data["orders"][0]
    assert order["total_fen"] == 2 * shop.price_fen and order["status"] == "paid"
    assert [(line["sku_id"], line["qty"]) for line in order["lines"]] == [(shop.sku_id, 2)]
    assert [(p["order_id"], p["amount_fen"], p["status"]) for p in data["payments"]] \
        == [(alice_order, 2 * shop.price_fen, "succeeded")]
    text = json.dumps(data, ensure_ascii=False)
    for other in (OTHER["contact_name"], OTHER["phone"], OTHER["detail"], "bob"):
        assert other not in text
    assert f'"order_id": {bob_order}' not in text

    theirs = (await mall.api.get("/api/v1/me/data", token=bob)).body
    assert [a["phone"] for a in theirs["addresses"]] == [OTHER["phone"]]
    assert [o["order_id"] for o in theirs["orders"]] == [bob_order]
    assert PHONE not in json.dumps(theirs) and NAME not in json.dumps(theirs, ensure_ascii=False)
    # Staff see their own (empty) profile through it, not their customers'.
    staff = (await mall.api.get("/api/v1/me/data", token=shop.merchant)).body
    assert staff["orders"] == [] and staff["profile"]["store_ids"] == [shop.store_id]
    assert (await mall.api.get("/api/v1/me/data")).status == 401


async def test_deleting_my_account(start_mall):
    """Refused while an order is under way; then the personal data leaves the database (the
    file's bytes included), the order and its total stay, old tokens stop working, a repeat
    answers the same, the same openid starts afresh, and the audit log has it."""
    mall = await start_mall()
    db = mall.config.db_path
    shop = await open_shop(mall)
    token, used = await _customer_with_address(mall, "erase-me", ADDRESS)
    _, unused = await _customer_with_address(mall, "erase-me", OTHER)
    api = mall.api
    placed = await api.post("/api/v1/orders", token=token, headers={"Idempotency-Key": "k-1"},
                            json=order_body(shop, 2, fulfilment="delivery", address_id=used))
    assert placed.status == 201, placed.body
    order_id = placed.body["order_id"]

    refused = await api.delete("/api/v1/me", token=token)
    assert refused.status == 409 and refused.error["code"] == "live_orders"
    assert refused.error["order_ids"] == [order_id]
    assert "pending_payment" in refused.error["message"]
    assert (await api.delete("/api/v1/me", token=shop.merchant)).error["code"] == "staff_account"
    assert (await api.post(f"/api/v1/orders/{order_id}/cancel", token=token)).status == 200
    sealed = dict(await rows_of(db, "SELECT id, contact_enc FROM addresses"))
    masked = [row[0] for row in await rows_of(db, "SELECT contact_masked FROM addresses")]
    (user_id,) = (await rows_of(db, "SELECT id FROM users WHERE openid = 'erase-me'"))[0]

    deleted = await api.delete("/api/v1/me", token=token)
    assert deleted.status == 200, deleted.body
    assert deleted.body["user_id"] == user_id and deleted.body["orders_kept"] == 1
    # The mall still runs: its file and WAL no longer hold the ciphertexts or masked forms.
    raw = stored_bytes(db)
    assert len(raw) > 4096 and b"erase-me" not in raw
    for blob in sealed.values():
        assert blob not in raw
    for text in (*masked, mask_phone(PHONE), mask_phone(OTHER["phone"])):
        assert text.encode() not in raw, text
    again = await api.delete("/api/v1/me", token=token)
    assert (again.status, again.body) == (200, deleted.body)
    for path in ("/api/v1/me/data", "/api/v1/orders", "/api/v1/me/addresses"):
        gone = await api.get(path, token=token)
        assert gone.status == 401 and gone.error["code"] == "account_deleted", path

    assert await rows_of(db, "SELECT openid, nickname, phone_masked, phone_enc, deleted_at"
                         " FROM users WHERE id = ?", user_id) == [
        (f"deleted:{user_id}", None, None, None, deleted.body["deleted_at"])]
    assert await rows_of(db, "SELECT id, district_code, contact_masked, contact_enc, lat, lng"
                     " FROM addresses") == [(used, "430104", "", b"", None, None)]
    assert set(sealed) == {used, unused}     # the unused address went, the used one stayed
    assert await rows_of(db, "SELECT count(*) FROM idempotency_keys") == [(0,)]
    assert await rows_of(db, "SELECT id, user_id, total_fen, status FROM orders") \
        == [(order_id, user_id, 2 * shop.price_fen, "cancelled")]
    staff_view = await api.get(f"/api/v1/merchant/stores/{shop.store_id}/orders/{order_id}",
                               token=shop.merchant)
    assert staff_view.body["total_fen"] == 2 * shop.price_fen
    audit = await rows_of(db, "SELECT actor_id, actor_role, target_id, detail FROM audit_log"
                      " WHERE action = 'account.delete'")
    assert len(audit) == 1 and audit[0][:3] == (user_id, "customer", str(user_id))
    assert json.loads(audit[0][3]) == {"accounts": 1, "addresses_removed": 1,
                                       "addresses_anonymized": 1}

    fresh = await api.login("erase-me")
    mine = (await api.get("/api/v1/me/data", token=fresh)).body
    assert mine["profile"]["user_id"] != user_id
    assert mine["addresses"] == [] and mine["orders"] == []


def _purge(db, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*XINGCHENG, "privacy", "purge", "--db", str(db), *args],
                          capture_output=True, text=True, timeout=60)


_STATISTICS = ("SELECT store_id, substr(created_at, 1, 10), status, count(*), sum(total_fen)"
               " FROM orders GROUP BY 1, 2, 3 ORDER BY 1, 2, 3")


async def test_purge_anonymizes_inactive_customers_and_keeps_the_statistics(start_mall):
    """Customers active 400 days ago on the mall clock and one active now, through the real
    CLI on the real file: the dry run counts and writes nothing; the purge anonymizes the two
    idle customers with nothing under way, keeps staff, the one with a paid order and the
    recent one, leaves order counts and GMV per store and day alone, is audited, and a mall
    running on the file stops honouring the purged customer's token."""
    then = datetime.now(SHANGHAI) - timedelta(days=400)
    old = await start_mall(clock=Clock(then))
    db = old.config.db_path
    shop = await open_shop(old)
    idle, _ = await _customer_with_address(old, "idle", ADDRESS)
    bought = await old.api.login("bought")
    done = await paid_order(old, shop, bought, qty=2)
    code = (await old.api.get(f"/api/v1/orders/{done}", token=bought)).body["pickup_code"]
    staff = f"/api/v1/merchant/stores/{shop.store_id}/orders/{done}"
    assert (await old.api.post(f"{staff}/ready", token=shop.merchant)).status == 200
    assert (await old.api.post(f"{staff}/pickup", token=shop.merchant,
                               json={"code": code})).status == 200
    waiting = await old.api.login("waiting")
    await paid_order(old, shop, waiting)
    await old.server.close()
    statistics = await rows_of(db, _STATISTICS)
    assert sum(row[3] for row in statistics) == 2

    before = hashlib.sha256(stored_bytes(db)).hexdigest()
    dry = _purge(db, "--older-than", "365d", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert dry.stdout.startswith("dry run: 2 customer account(s)")
    assert hashlib.sha256(stored_bytes(db)).hexdigest() == before
    assert await rows_of(db, "SELECT count(*) FROM users WHERE deleted_at IS NOT NULL") == [(0,)]

    now = await start_mall(db_path=db)
    recent = await now.api.login("recent")
    assert (await now.api.get("/api/v1/orders", token=idle)).status == 200
    purged = await asyncio.to_thread(_purge, db, "--older-than", "365d", "--name", "dpo")
    assert purged.returncode == 0, purged.stderr
    assert purged.stdout.startswith("anonymized 2 customer account(s)"), purged.stdout
    for _ in range(100):   # the running mall's sweeper notices within a sweep
        refused = await now.api.get("/api/v1/orders", token=idle)
        if refused.status == 401:
            break
        await asyncio.sleep(0.05)
    assert refused.error["code"] == "account_deleted"
    assert (await now.api.get("/api/v1/orders", token=recent)).status == 200
    assert (await now.api.get("/api/v1/orders", token=waiting)).status == 200

    assert await rows_of(db, _STATISTICS) == statistics
    assert await rows_of(db, "SELECT openid FROM users WHERE deleted_at IS NOT NULL ORDER BY id") \
        == [(f"deleted:{user_id}",) for (user_id,) in await rows_of(
            db, "SELECT id FROM users WHERE deleted_at IS NOT NULL ORDER BY id")]
    kept = {row[0] for row in await rows_of(db, "SELECT openid FROM users")}
    assert {"merchant-1", "waiting", "recent", "operator:ops"} <= kept
    assert not {"idle", "bought"} & kept
    assert await rows_of(db, "SELECT count(*) FROM addresses") == [(0,)]
    audit = await rows_of(db, "SELECT a.actor_role, u.openid, a.detail FROM audit_log a"
                      " JOIN users u ON u.id = a.actor_id WHERE a.action = 'privacy.purge'")
    assert [row[:2] for row in audit] == [("operator", "operator:dpo")]
    detail = json.loads(audit[0][2])
    assert detail["count"] == 2
    cutoff = datetime.fromisoformat(detail["cutoff"])
    assert abs(cutoff - (datetime.now(SHANGHAI) - timedelta(days=365))) < timedelta(minutes=5)


@pytest.mark.slow  # CLI and server processes
def test_purge_refuses_bad_arguments_with_exit_2(tmp_path):
    db = tmp_path / "m.db"
    db.write_bytes(b"")
    for args, said in ((("--older-than", "365x"), "not a positive duration"),
                       (("--older-than", "0d"), "not a positive duration"),
                       (("--older-than", "99999999d"), "not a positive duration"),
                       (("--older-than", "40000d"), "longer than 100 years"),
                       ((), "Missing option '--older-than'")):
        result = _purge(db, *args)
        assert (result.returncode, said in result.stderr) == (2, True), result.stderr
    missing = subprocess.run([*XINGCHENG, "privacy", "purge", "--db", str(tmp_path / "no.db"),
                              "--older-than", "30m"], capture_output=True, text=True, timeout=60)
    assert missing.returncode == 2 and "does not exist" in missing.stderr
