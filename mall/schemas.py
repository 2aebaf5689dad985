r"""Request shapes.  Bodies are strict (a price of "12" or 12.5 is refused, never coerced);
query strings are lax, since every query value arrives as text.

Digits in patterns are `[0-9]`, never `\d`: pydantic's regex engine reads `\d` as any Unicode
digit, so ٠١٢ or full-width digits got through into phones, opening hours and pickup codes
(where `hmac.compare_digest` then raised on the non-ASCII text)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints, field_validator

Id = Annotated[int, Field(gt=0, le=2**62)]
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=60)]
Clock = Annotated[str, StringConstraints(pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$|^24:00$")]
Tag = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=12,
                                       pattern=r"^[^\x00-\x1f,]+$")]
Scene = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,31}$")]
# A cursor the server issued is base64 of an int up to 2**62 (26 characters); a long one was
# base64 of deeply nested JSON, and json.loads raised RecursionError (a 500) on it.
Cursor = Annotated[str, StringConstraints(max_length=64)]
Latitude = Annotated[float, Field(ge=-90, le=90)]
Longitude = Annotated[float, Field(ge=-180, le=180)]


class _Text(BaseModel):
    @field_validator("*")
    @classmethod
    def _no_nul(cls, value: object) -> object:
        """No text holds a NUL character: PostgreSQL cannot store one, and no name, tag or
        search needs it; refused here, naming the field, on either engine."""
        texts = value if isinstance(value, list) else [value]
        if any(isinstance(text, str) and "\x00" in text for text in texts):
            raise ValueError("must not contain a NUL character")
        return value


class Body(_Text):
    model_config = ConfigDict(extra="forbid", strict=True)


class Query(_Text):
    # Frozen: one parse of a query string is shared by every request sending it.
    model_config = ConfigDict(extra="forbid", frozen=True)


class WxLogin(Body):
    code: Annotated[str, StringConstraints(min_length=1, max_length=128)]


class StoreIn(Body):
    name: Name
    kind: Annotated[str, StringConstraints(pattern=r"^[a-z_]{1,32}$")]
    district: Annotated[str, StringConstraints(min_length=1, max_length=20)]
    business_circle: Annotated[str, StringConstraints(max_length=40)] | None = None
    lat: Latitude
    lng: Longitude
    opens_at: Clock = "00:00"
    closes_at: Clock = "24:00"


class PickupPointIn(Body):
    kind: Literal["counter", "locker"] = "locker"
    name: Name
    lat: Latitude
    lng: Longitude


class StaffIn(Body):
    openid: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_\-]{1,64}$")]


class ProductIn(Body):
    name: Name
    price_fen: Annotated[int, Field(gt=0, le=100_000_000)]
    tags: Annotated[list[Tag], Field(max_length=10)] = []
    scenes: Annotated[list[Scene], Field(max_length=10)] = []
    description: Annotated[str, StringConstraints(max_length=500)] = ""
    spec: Annotated[str, StringConstraints(min_length=1, max_length=20)] = "标准"


Stock = Annotated[int, Field(ge=0, le=1_000_000)]


class StockIn(Body):
    stock: Stock


class StockItem(Body):
    sku_id: Id
    stock: Stock


class BulkStockIn(Body):
    items: Annotated[list[StockItem], Field(min_length=1, max_length=500)]


class AddressIn(Body):
    contact_name: Name
    phone: Annotated[str, StringConstraints(pattern=r"^1[3-9][0-9]{9}$")]
    district: Annotated[str, StringConstraints(min_length=1, max_length=20)]
    detail: Annotated[str, StringConstraints(strip_whitespace=True, min_length=2,
                                             max_length=120)]
    lat: Latitude | None = None
    lng: Longitude | None = None


class OrderLineIn(Body):
    sku_id: Id
    qty: Annotated[int, Field(gt=0, le=99)]


class OrderIn(Body):
    store_id: Id
    lines: Annotated[list[OrderLineIn], Field(min_length=1, max_length=50)]
    fulfilment: Literal["pickup", "delivery"]
    pickup_point_id: Id | None = None
    address_id: Id | None = None
    coupon_id: Id | None = None   # one of my coupons, to take its discount off this order
    # Member points to redeem on this order (worth fen_per_point each, see /member-levels).
    points: Annotated[int, Field(ge=1, le=10**7)] | None = None


Fen = Annotated[int, Field(gt=0, le=10**9)]


class CouponTemplateIn(Body):
    """A coupon template: 满减 (`threshold`: `discount_fen` off from `threshold_fen`),
    `fixed` (`discount_fen` off), or `percent` (`percent_off`, at most `cap_fen`); usable at
    one store, a district's stores, a campus's stores (by business circle) or anywhere."""
    title: Name
    kind: Literal["threshold", "fixed", "percent"]
    threshold_fen: Annotated[int, Field(ge=0, le=10**9)] = 0
    discount_fen: Fen | None = None
    percent_off: Annotated[int, Field(ge=1, le=99)] | None = None
    cap_fen: Fen | None = None
    scope: Literal["store", "district", "campus", "city"]
    store_id: Id | None = None
    district: Annotated[str, StringConstraints(min_length=1, max_length=20)] | None = None
    campus: Annotated[str, StringConstraints(min_length=1, max_length=40)] | None = None
    starts_at: AwareDatetime
    ends_at: AwareDatetime
    total_qty: Annotated[int, Field(ge=1, le=10**7)]
    per_user_limit: Annotated[int, Field(ge=1, le=100)] = 1


class FlashSaleIn(Body):
    """A flash sale (秒杀): `quantity` units of one of the store's SKUs at `price_fen`, below
    its list price, from `starts_at` to `ends_at`; an order made in it must be paid within
    `pay_within_seconds` (mall clock) or its units go back on sale."""
    title: Name
    sku_id: Id
    price_fen: Fen
    quantity: Annotated[int, Field(ge=1, le=100_000)]
    per_user_limit: Annotated[int, Field(ge=1, le=10)] = 1
    starts_at: AwareDatetime
    ends_at: AwareDatetime
    pay_within_seconds: Annotated[int, Field(ge=30, le=3600)] = 300


class CampaignOrderIn(Body):
    """An order in a campaign (a group buy: one unit of its SKU at the group price): only
    how it is fulfilled is the customer's to say."""
    fulfilment: Literal["pickup", "delivery"] = "pickup"
    pickup_point_id: Id | None = None
    address_id: Id | None = None


class FlashOrderIn(CampaignOrderIn):
    """Buy in a flash sale: its SKU, at its price, at its store."""
    qty: Annotated[int, Field(ge=1, le=10)] = 1


class FlashSalesQuery(Query):
    store_id: Id | None = None
    district: Annotated[str, StringConstraints(min_length=1, max_length=20)] | None = None
    limit: Annotated[int, Field(ge=1, le=50)] = 20


class GroupBuyIn(Body):
    """A group-buy campaign (拼团): one of the store's SKUs at `group_price_fen`, below its
    list price, for groups of `group_size` that must fill within `time_limit_minutes`
    (mall clock) of being opened."""
    title: Name
    sku_id: Id
    group_price_fen: Fen
    group_size: Annotated[int, Field(ge=2, le=20)]
    time_limit_minutes: Annotated[int, Field(ge=1, le=7 * 24 * 60)] = 24 * 60
    starts_at: AwareDatetime
    ends_at: AwareDatetime




class GroupBuysQuery(Query):
    store_id: Id | None = None
    limit: Annotated[int, Field(ge=1, le=50)] = 20


class MemberPriceIn(Body):
    """What members from `min_level` up pay for this SKU; below its list price."""
    price_fen: Fen
    min_level: Annotated[str, StringConstraints(min_length=1, max_length=32)] = "regular"


class RefundIn(Body):
    """Ask for a refund of a paid order (before or after pickup), with a reason."""
    reason: Literal["changed_mind", "quality", "missing_items", "wrong_items", "late",
                    "other"]


class RefundDecisionIn(Body):
    decision: Literal["approve", "reject"]
    reject_reason: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1,
                                                    max_length=200)] | None = None


class RefundsQuery(Query):
    status: Annotated[str, StringConstraints(max_length=20)] | None = None
    limit: Annotated[int, Field(ge=1, le=50)] = 20


class CouponsQuery(Query):
    store_id: Id | None = None
    limit: Annotated[int, Field(ge=1, le=50)] = 20


class PickupCode(Body):
    code: Annotated[str, StringConstraints(pattern=r"^[0-9]{6}$")]


class StoresQuery(Query):
    lat: Latitude | None = None
    lng: Longitude | None = None
    radius_km: Annotated[float, Field(gt=0, le=50)] = 5.0
    district: Annotated[str, StringConstraints(min_length=1, max_length=20)] | None = None
    open_now: bool | None = None
    cursor: Cursor | None = None
    limit: Annotated[int, Field(ge=1, le=50)] = 20


class ProductsQuery(Query):
    tag: Tag | None = None
    scene: Scene | None = None
    q: Annotated[str, StringConstraints(min_length=1, max_length=30)] | None = None
    cursor: Cursor | None = None
    limit: Annotated[int, Field(ge=1, le=50)] = 20


class RecommendationsQuery(Query):
    """The customer's point, when the mini-program has it (wx.getLocation), and how to rank:
    nearest store first, or lowest price first (the arms of the `recommendation_strategy`
    experiment, which the mini-program passes on as it was told them)."""
    lat: Latitude | None = None
    lng: Longitude | None = None
    strategy: Literal["nearby", "cheapest"] = "nearby"


class SearchQuery(Query):
    """Products by name or tag text (`q`), narrowed by tag, district, distance and opening
    hours; `q` may be empty when a tag, district or radius narrows the search instead."""
    q: Annotated[str, StringConstraints(strip_whitespace=True, max_length=30)] | None = None
    tag: Tag | None = None
    district: Annotated[str, StringConstraints(min_length=1, max_length=20)] | None = None
    open_now: bool | None = None
    lat: Latitude | None = None
    lng: Longitude | None = None
    radius_m: Annotated[int, Field(gt=0, le=50_000)] | None = None
    cursor: Cursor | None = None
    limit: Annotated[int, Field(ge=1, le=50)] = 20


class PageQuery(Query):
    cursor: Cursor | None = None
    limit: Annotated[int, Field(ge=1, le=50)] = 20


class StoreOrdersQuery(PageQuery):
    date: Annotated[str, StringConstraints(pattern=r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")] | None = None
    status: Annotated[str, StringConstraints(pattern=r"^[a-z_]{1,20}$")] | None = None


# A window's end: a local day (its midnight) or an ISO 8601 instant; the service reads it.
Instant = Annotated[str, StringConstraints(min_length=10, max_length=40,
                                           pattern=r"^[0-9]{4}-[0-9]{2}-[0-9]{2}")]


class KpisQuery(Query):
    """A dashboard's window on the mall's clock: [from, to), by default the current day."""
    from_: Instant | None = Field(None, alias="from")
    to: Instant | None = None
    granularity: Literal["hour", "day"] = "hour"


# Response shapes, for routes that declare one (the OpenAPI document then lets a client, and
# schemathesis, check every answer).  Not strict: they describe, they do not parse input.


class ProfileOut(BaseModel):
    user_id: int
    openid: str
    role: str
    nickname: str | None
    phone: str | None
    created_at: str
    last_active_at: str | None
    store_ids: list[int]


class AddressOut(BaseModel):
    id: int
    district: str
    contact_name: str | None
    phone: str | None
    detail: str | None
    lat: float | None
    lng: float | None
    created_at: str


class OrderLineOut(BaseModel):
    line_no: int
    sku_id: int
    product_name: str
    unit_price_fen: int
    qty: int


class OrderOut(BaseModel):
    order_id: int
    store_id: int
    status: str
    fulfilment: str
    pickup_point_id: int | None
    address_id: int | None
    total_fen: int
    points_used: int = 0
    points_fen: int = 0
    created_at: str
    expires_at: str
    paid_at: str | None
    ready_at: str | None
    closed_at: str | None
    lines: list[OrderLineOut]
    pickup_code: str | None = None


class PaymentOut(BaseModel):
    order_id: int
    amount_fen: int
    status: str
    transaction_id: str | None
    created_at: str
    settled_at: str | None


class MyDataOut(BaseModel):
    generated_at: str
    profile: ProfileOut
    addresses: list[AddressOut]
    orders: list[OrderOut]
    payments: list[PaymentOut]
    points_ledger: list[dict] = []


class ExperimentArmOut(BaseModel):
    key: str
    arm: str
    ends_at: str | None   # when the experiment stops, on the mall's clock; null: open-ended


class MyExperimentsOut(BaseModel):
    experiments: list[ExperimentArmOut]


class AccountDeletedOut(BaseModel):
    user_id: int
    deleted_at: str
    orders_kept: int


class RecommendationOut(BaseModel):
    store_id: int
    store_name: str
    district: str
    business_circle: str | None
    product_id: int
    product_name: str
    sku_id: int
    price_fen: int
    distance_m: int | None
    open_now: bool
    reason: str


class RecommendationsOut(BaseModel):
    scene: str
    scene_title: str
    at: str
    located: bool
    items: list[RecommendationOut]


class SearchHitOut(BaseModel):
    product_id: int
    product_name: str
    tags: list[str]
    store_id: int
    store_name: str
    district: str
    sku_id: int
    price_fen: int
    in_stock: bool
    open_now: bool
    distance_m: int | None
    matched_on: Literal["name", "tag", "filter"]
    reason: str


class SearchOut(BaseModel):
    items: list[SearchHitOut]
    total: int
    next_cursor: str | None
