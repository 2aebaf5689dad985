"""The city as files (CSV and JSON), byte-identical for the same seed: the record of what a
run was driven with, and what the load tests read.  Personal data only masked."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from .city import City
from .loader import manifest

FILES = ("city.json", "stores.csv", "products.csv", "customers.csv")


def _writer(path: Path):
    handle = path.open("w", newline="", encoding="utf-8")
    return handle, csv.writer(handle, lineterminator="\n")


def export(city: City, directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "city.json").write_text(
        json.dumps(manifest(city), ensure_ascii=False, indent=2, sort_keys=True) + "\n",
        encoding="utf-8")
    handle, out = _writer(directory / "stores.csv")
    with handle:
        out.writerow(["store_id", "name", "kind", "district_code", "district", "place", "lat",
                      "lng", "opens_at", "closes_at", "merchant_openid"])
        for s in city.stores:
            out.writerow([s.id, s.name, s.kind, s.district_code, s.district, s.place,
                          f"{s.lat:.5f}", f"{s.lng:.5f}", s.opens_at, s.closes_at,
                          s.merchant_openid])
    handle, out = _writer(directory / "products.csv")
    with handle:
        out.writerow(["store_id", "product_id", "sku_id", "name", "spec", "price_fen", "stock",
                      "tags", "scenes"])
        for s in city.stores:
            for p in s.products:
                for k in p["skus"]:
                    out.writerow([s.id, p["product_id"], k["sku_id"], p["name"], k["spec"],
                                  k["price_fen"], k["stock"], "|".join(p["tags"]),
                                  "|".join(p["scenes"])])
    handle, out = _writer(directory / "customers.csv")
    customers, pools = city.customers, city.pools
    with handle:
        out.writerow(["user_id", "openid", "persona", "district", "lat", "lng", "name",
                      "phone"])
        for i, openid in enumerate(customers.openids):
            person = customers.person[i]
            out.writerow([i + 1, openid, city.persona_keys[customers.persona[i]],
                          city.district_names[customers.district[i]],
                          f"{customers.lat[i]:.5f}", f"{customers.lng[i]:.5f}",
                          pools.masked_names[person], pools.masked_phones[person]])
    return [directory / name for name in FILES]
