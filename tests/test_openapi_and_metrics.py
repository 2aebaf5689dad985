"""The OpenAPI document matches the real routes both ways; metrics carry route templates."""

from __future__ import annotations

import re

from mall.dashboard_page import PAGE

from .conftest import order_body


async def test_openapi_matches_the_router_both_ways(mall, shop):
    api = mall.api
    doc = (await api.get("/api/v1/openapi.json")).body
    assert doc["openapi"].startswith("3.")
    documented = {(method.upper(), path) for path, ops in doc["paths"].items() for method in ops}
    # Every route but the dashboard page's files (mall/dashboard_page.py), which are no API.
    served = {(route.method, route.resource.canonical) for route in mall.server.app.router.routes()
              if route.method != "HEAD" and not route.resource.canonical.startswith(
                  PAGE.rstrip("/"))}
    assert documented == served
    # Every documented operation reaches a real handler: substituting its path parameters,
    # the server never answers "no such route" or "method not allowed".
    for method, path in sorted(documented):
        concrete = re.sub(r"{store_id}", str(shop.store_id), path)
        concrete = re.sub(r"{\w+}", "1", concrete)
        reply = await api.call(method, concrete, token=shop.operator,
                               data=b"{}", headers={"Content-Type": "application/json"})
        assert reply.status != 405, (method, path)
        if reply.status == 404:
            assert reply.error["message"] != "no such route", (method, path)
    # Bodies and security are described.
    create = doc["paths"]["/api/v1/orders"]["post"]
    ref = create["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    order_schema = doc["components"]["schemas"][ref.rsplit("/", 1)[1]]
    assert set(order_schema["required"]) == {"store_id", "lines", "fulfilment"}
    assert create["security"] == [{"bearer": []}]
    assert "security" not in doc["paths"]["/api/v1/stores"]["get"]


async def test_metrics_exposition(mall, shop):
    api = mall.api
    customer = await api.login("counted")
    await api.post("/api/v1/orders", token=customer, json=order_body(shop))
    await api.get(f"/api/v1/stores/{shop.store_id}")
    await api.get("/api/v1/stores/0")
    text = await api.metrics()
    for name in ("mall_http_requests_total", "mall_http_request_duration_seconds_bucket",
                 "mall_orders_total", "mall_gmv_yuan_total", "mall_payment_notifications",
                 "mall_stock_oversold_total", "mall_pickup_code_failures_total"):
        assert name in text, name
    assert ('mall_http_requests_total{method="GET",route="/api/v1/stores/{store_id}",'
            'status_class="2xx"} 1.0') in text
    assert ('mall_http_requests_total{method="GET",route="/api/v1/stores/{store_id}",'
            'status_class="4xx"} 1.0') in text
    assert ('mall_http_request_duration_seconds_count{method="POST",route="/api/v1/orders",'
            'status_class="2xx"} 1.0') in text
    assert await api.metric('mall_orders_total{change="created"}') == 1
