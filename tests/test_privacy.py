"""Personal data under PIPL: masked wherever it can leave the mall (logs, merchant views,
error messages), a copy for its owner, deletion, and the purge of inactive accounts."""

from __future__ import annotations

import io
import json
import logging
import subprocess
import time

from mall.privacy import mask_log_handlers, mask_phone

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
    with log_path.open("w") as log, serving(db, log=log) as base:
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
        assert call(f"{base}/api/v1/sandbox/payments/{prepay['prepay_id']}/complete", "POST",
                    token=customer, body={"result": "success"})[0] == 202
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


