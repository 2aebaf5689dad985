"""The data tables of `simulator/data/`, read once and typed."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from functools import cache
from importlib import resources


def _load(name: str) -> dict:
    return tomllib.loads(resources.files("simulator").joinpath("data", name)
                         .read_text(encoding="utf-8"))


def minutes(hhmm: str) -> int:
    hours, mins = hhmm.split(":")
    return int(hours) * 60 + int(mins)


@dataclass(frozen=True)
class District:
    code: str
    name: str
    en: str
    centre: tuple[float, float]
    area_km2: float
    population: int


@dataclass(frozen=True)
class Place:
    name: str
    kind: str
    district: str
    at: tuple[float, float]
    weight: float
    reach_km: float


@dataclass(frozen=True)
class Bump:
    at_minute: float
    width: float
    weight: float


@dataclass(frozen=True)
class Persona:
    key: str
    name: str
    share: float
    home: dict[str, float]
    near: dict[str, float]
    basket: tuple[int, int]
    price_sensitivity: float
    patience_s: float
    coupon_sensitivity: float
    refund_share: float
    group_buy_share: float
    member_share: float
    member_spent_yuan: tuple[int, int]
    points_share: float
    pickup_share: float
    journeys: dict[str, float]
    scenes: tuple[str, ...]
    weekday: tuple[Bump, ...]
    weekend: tuple[Bump, ...]


@dataclass(frozen=True)
class ProductTemplate:
    name: str
    low_fen: int
    high_fen: int
    tags: tuple[str, ...]
    scenes: tuple[str, ...]


@dataclass(frozen=True)
class StoreKind:
    code: str
    share: float
    hours: tuple[tuple[str, str], ...]
    near: dict[str, float]
    brand_words: tuple[str, ...]
    suffixes: tuple[str, ...]
    specs: tuple[tuple[str, float], ...]
    products: tuple[ProductTemplate, ...]


@dataclass(frozen=True)
class Preset:
    name: str
    stores: int
    customers: int
    skus_per_store: int
    daily_orders: int


@dataclass(frozen=True)
class Peak:
    name: str
    window: tuple[str, str]
    day: str
    crest: str | None


@cache
def geography() -> tuple[tuple[District, ...], tuple[Place, ...]]:
    data = _load("changsha.toml")
    districts = tuple(District(d["code"], d["name"], d["en"], tuple(d["centre"]), d["area_km2"],
                               d["population"]) for d in data["district"])
    reach = data["reach_km"]
    centres = tuple(Place(f"{d.name}中心", "centre", d.name, d.centre, 1.0, reach["centre"])
                    for d in districts)
    places = tuple(Place(p["name"], p["kind"], p["district"], tuple(p["at"]), p["weight"],
                         reach[p["kind"]]) for p in data["place"])
    return districts, centres + places


@cache
def river() -> tuple[tuple[float, float], ...]:
    return tuple(tuple(point) for point in _load("changsha.toml")["xiang_river"])


def _bumps(rows: list[dict]) -> tuple[Bump, ...]:
    return tuple(Bump(minutes(r["at"]), r["width"], r["weight"]) for r in rows)


@cache
def personas() -> tuple[Persona, ...]:
    return tuple(Persona(
        key=p["key"], name=p["name"], share=p["share"], home=p["home"], near=p["near"],
        basket=tuple(p["basket"]), price_sensitivity=p["price_sensitivity"],
        patience_s=p["patience_s"],
        coupon_sensitivity=p["coupon_sensitivity"], refund_share=p["refund_share"],
        group_buy_share=p["group_buy_share"], member_share=p["member_share"],
        member_spent_yuan=tuple(p["member_spent_yuan"]), points_share=p["points_share"],
        pickup_share=p["pickup_share"],
        journeys=p["journeys"], scenes=tuple(p["scenes"]), weekday=_bumps(p["weekday"]),
        weekend=_bumps(p["weekend"]),
    ) for p in _load("personas.toml")["persona"])


@cache
def search_words() -> tuple[str, ...]:
    return tuple(_load("searches.toml")["words"])


@cache
def store_kinds() -> tuple[StoreKind, ...]:
    return tuple(StoreKind(
        code=k["code"], share=k["share"], hours=tuple(tuple(h) for h in k["hours"]),
        near=k["near"], brand_words=tuple(k["brand_words"]), suffixes=tuple(k["suffixes"]),
        specs=tuple((name, float(f)) for name, f in k["specs"]),
        products=tuple(ProductTemplate(n, lo, hi, tuple(t), tuple(s))
                       for n, lo, hi, t, s in k["products"]),
    ) for k in _load("store_kinds.toml")["kind"])


@cache
def presets() -> dict[str, Preset]:
    return {name: Preset(name, **values) for name, values in _load("presets.toml").items()}


@cache
def peaks() -> dict:
    data = _load("peaks.toml")
    data["peak"] = {name: Peak(name, tuple(p["window"]), p["day"], p.get("crest"))
                    for name, p in data["peak"].items()}
    return data


@dataclass(frozen=True)
class FlashSaleCampaign:
    title: str
    at: str                          # HH:MM local time, each day
    lasts_minutes: int
    store_kind: str
    place_kind: str
    stores: int
    quantity: tuple[int, int]
    price_share: tuple[float, float]
    per_user_limit: int
    pay_within_seconds: int


@cache
def flash_sale_campaigns() -> tuple[FlashSaleCampaign, ...]:
    return tuple(FlashSaleCampaign(
        title=c["title"], at=c["at"], lasts_minutes=c["lasts_minutes"],
        store_kind=c["store_kind"], place_kind=c["place_kind"], stores=c["stores"],
        quantity=tuple(c["quantity"]), price_share=tuple(c["price_share"]),
        per_user_limit=c["per_user_limit"], pay_within_seconds=c["pay_within_seconds"],
    ) for c in _load("campaigns.toml")["flash_sale"])


@dataclass(frozen=True)
class CouponCampaign:
    title: str
    at: str
    lasts_minutes: int
    scope: str                       # campus | district
    kind: str
    threshold_fen: int
    discount_fen: int | None
    percent_off: int | None
    cap_fen: int | None
    total_qty: int
    per_user_limit: int


@dataclass(frozen=True)
class GroupBuyCampaign:
    title: str
    at: str
    lasts_minutes: int
    store_kind: str
    place_kind: str
    stores: int
    group_size: int
    time_limit_minutes: int
    price_share: float


@cache
def coupon_campaigns() -> tuple[CouponCampaign, ...]:
    return tuple(CouponCampaign(
        title=c["title"], at=c["at"], lasts_minutes=c["lasts_minutes"], scope=c["scope"],
        kind=c["kind"], threshold_fen=c.get("threshold_fen", 0),
        discount_fen=c.get("discount_fen"), percent_off=c.get("percent_off"),
        cap_fen=c.get("cap_fen"), total_qty=c["total_qty"], per_user_limit=c["per_user_limit"],
    ) for c in _load("campaigns.toml")["coupon"])


@cache
def group_buy_campaigns() -> tuple[GroupBuyCampaign, ...]:
    return tuple(GroupBuyCampaign(
        title=c["title"], at=c["at"], lasts_minutes=c["lasts_minutes"],
        store_kind=c["store_kind"], place_kind=c["place_kind"], stores=c["stores"],
        group_size=c["group_size"], time_limit_minutes=c["time_limit_minutes"],
        price_share=c["price_share"],
    ) for c in _load("campaigns.toml")["group_buy"])


@dataclass(frozen=True)
class MemberPrices:
    store_share: float
    skus: tuple[int, int]
    price_share: tuple[float, float]
    min_level: dict[str, float]


@cache
def member_prices() -> MemberPrices:
    c = _load("campaigns.toml")["member_prices"]
    return MemberPrices(store_share=c["store_share"], skus=tuple(c["skus"]),
                        price_share=tuple(c["price_share"]), min_level=c["min_level"])
