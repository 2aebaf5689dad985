"""Believable customer journeys and store staff work, step by step over the real API.

Each step is a named request, so its latency is reported per step.  A journey's choices
come from its own random stream (seeded by the run seed and the session's number), so a
run can be replayed.  Think times are simulated seconds, shortened by the replay speed.

Customers react to the build they meet, or no gate could see a business regression: a
price above the one they know sends some away (more of the price-sensitive personas), and a
screen slower than their patience makes them leave.  Both draws are taken on every session,
whatever the build, so a baseline and a canary session walk the same random stream."""

from __future__ import annotations

import math
import random
import time
from dataclasses import dataclass, field

import gevent

from shared.masking import mask_text
from simulator import tables
from simulator.city import City
from simulator.sessions import FLASH_HUNT, Session

from .client_metrics import LoadMetrics
from .http_client import HttpClient, Reply
from .pickup_desk import PickupDesk, Ticket
from .records import RunRecords, SessionRecord

V1 = "/api/v1"
# Statuses that are business answers, not failures: sold out, sync below held stock.
# A build from before A/B experiments, the home screen's discovery or membership answers
# 404 to those screens: the mini-program shows them empty and the customer goes on.
EXPECTED = {"create_order": {409}, "stock_sync": {409}, "flash_buy": {409},
            "claim_coupon": {409}, "join_group": {409}, "experiments": {404},
            "recommendations": {404}, "search_city": {404}, "membership": {404}}
SHED_RETRIES = 3      # a shed request is tried again this often after its Retry-After
LONGEST_WAIT_S = 5.0  # a Retry-After longer than this is waited this long
PAY_RETRIES = 3       # taps on 重试 when paying could not start (payer or mall unreachable)
PAY_RETRY_WAIT_S = 1.0
SIDE_HEADER, REASON_HEADER = "X-Gray-Side", "X-Gray-Reason"   # gray/router.py
PERSONAS = {p.key: p for p in tables.personas()}
SEARCH_WORDS = tables.search_words()
# The share still buying is (shown / usual price) ** -(PRICE_ELASTICITY * price_sensitivity);
# see simulator/data/personas.toml.
PRICE_ELASTICITY = 8.0
FLASH_REFRESHES = 60  # a hunter refreshes an upcoming sale this often at most
# The share of the most coupon-sensitive shoppers who open the coupon list before ordering
# (scaled by each persona's coupon_sensitivity).
COUPON_LOOK = 0.4
REFUND_REASONS = ("quality", "missing_items", "wrong_items", "changed_mind")
REFUND_APPROVED = 0.8  # the share of refund requests a clerk approves
GROUP_WAIT_S = 20.0    # real seconds a group member watches the group at most


class JourneyEnded(Exception):
    """The journey stops here (nothing open nearby, sold out, the mall said no)."""


class RequestFailed(Exception):
    """A request's answer the step did not expect, as Locust's statistics file it."""


@dataclass
class Pace:
    speed: float
    max_real_seconds: float = 3.0

    def think(self, rng: random.Random, simulated_seconds: float) -> None:
        seconds = rng.expovariate(1 / simulated_seconds) / self.speed
        gevent.sleep(min(max(seconds, 0.005), self.max_real_seconds))


@dataclass
class Side:
    """One mall under load and what its sessions share: its HTTP session, its pickup desk
    and the delivery addresses its customers have registered there."""

    name: str                 # baseline | canary
    client: HttpClient
    # The customers' WeChat wallet: the payment sandbox this side's mall takes payments
    # through; None for a build from before the sandbox was a process (it pays in the mall).
    wallet: HttpClient | None = None
    desk: PickupDesk = field(default_factory=PickupDesk)
    addresses: dict[int, int] = field(default_factory=dict)  # user -> address id
    # Group buys' open groups as their share links go round: campaign -> group ids.
    groups: dict[int, list[int]] = field(default_factory=dict)


@dataclass
class Walk:
    """What one session (or one clerk) needs: its side, the city, and where results go."""

    side: Side
    city: City
    metrics: LoadMetrics
    records: RunRecords
    pace: Pace
    usual_prices: dict[int, int]          # sku id -> the price customers know, fen
    record: SessionRecord | None = None   # None for staff
    patience_s: float = math.inf
    # Behind a gray router, every side by name: the router's answer names the side of each
    # request (its sample is filed there) and, at the first answer a rule decided rather
    # than a default, the side of the whole session (`RunRecords.assign`).
    routed: dict[str, Side] | None = None
    # The scenario's [experiment_response]: experiment -> arm -> share of that arm's
    # customers who leave before ordering.
    experiment_response: dict[str, dict[str, float]] = field(default_factory=dict)

    def call(self, method: str, path: str, name: str, token: str | None = None,
             json: object = None, headers: dict | None = None,
             client: HttpClient | None = None) -> tuple[int, object]:
        """One request to this side's mall (or to `client`), timed, counted and judged.  A
        request the mall sheds (503 with Retry-After) is tried again after that wait, as the
        mini-program does, up to SHED_RETRIES times; the wait counts against patience."""
        client = client or self.side.client
        if token:
            headers = {**headers, "Authorization": f"Bearer {token}"} if headers else \
                {"Authorization": f"Bearer {token}"}
        context = {"side": self.side.name}
        expected = EXPECTED.get(name, ())
        started = time.perf_counter()
        for attempt in range(SHED_RETRIES + 1):
            reply = client.send(method, path, json, headers)
            if self.routed is not None:
                self._follow_router(reply, context)
            status, body = reply.status_code, reply.json()
            retry_after = shed_wait(reply)
            failure = None   # a shed request is counted apart, not as a failure
            if not (200 <= status < 300 or status in expected or retry_after is not None):
                failure = RequestFailed(mask_text(
                    f"{status}: {str(body)[:200]}" if status else f"no answer: {reply.error!r}"))
            client.report(method, path, name, reply, context, failure)
            if retry_after is None or attempt == SHED_RETRIES:
                break
            gevent.sleep(retry_after)
        if time.perf_counter() - started > self.patience_s:
            self.lose("impatient")
        return status, body

    def _follow_router(self, resp: Reply, context: dict) -> None:
        assert self.routed is not None
        side = resp.headers.get(SIDE_HEADER)
        if side not in self.routed:
            return  # the router never answered (connection error): the session's side
        context["side"] = side
        decided = resp.headers.get(REASON_HEADER, "default") != "default"
        if decided and self.record is not None and self.record.side is None:
            self.side = self.routed[side]
            self.records.assign(self.record, side)

    def lose(self, reason: str) -> None:
        """The customer leaves because of what this build did to them."""
        assert self.record is not None
        self.metrics.sessions_lost.labels(self.side.name, self.record.persona, reason).inc()
        raise JourneyEnded(reason)

    def count_order(self, outcome: str) -> None:
        self.metrics.orders.labels(self.side.name, outcome).inc()


def shed_wait(resp: Reply) -> float | None:
    """Seconds to wait before trying again if the mall shed this request, else None."""
    if resp.status_code != 503:
        return None
    try:
        return min(float(resp.headers.get("Retry-After", "")), LONGEST_WAIT_S)
    except ValueError:
        return None


def customer_journey(walk: Walk, session: Session, user_id: int, rng: random.Random) -> None:
    """Open the mini-program, find a store nearby, browse, and maybe buy.  Every request
    after login carries the customer's token, as the mini-program's request wrapper sends it
    (and as a gray router needs it to keep a customer on one side)."""
    c = walk.city.customers
    persona = PERSONAS[session.persona]
    walk.patience_s = persona.patience_s * rng.lognormvariate(0, 0.5)
    status, login = walk.call("POST", f"{V1}/auth/wx-login", "login",
                              json={"code": f"sandbox:{c.openids[user_id - 1]}"})
    if status != 200:
        raise JourneyEnded("login")
    token = login["token"]
    arms = _experiment_arms(walk, token)
    if session.journey == FLASH_HUNT:
        flash_hunt(walk, token, rng)
        return
    grouping = rng.random() < persona.group_buy_share   # drawn by every session alike
    if session.journey in ("pickup_order", "delivery_order") and grouping \
            and group_buy(walk, token, rng):
        return
    lat, lng = c.lat[user_id - 1], c.lng[user_id - 1]
    _home_screen(walk, token, lat, lng, arms, rng.choice(SEARCH_WORDS))
    stores = []
    for radius in (3, 10):
        _, found = walk.call("GET", f"{V1}/stores?lat={lat}&lng={lng}&radius_km={radius}"
                             "&open_now=true&limit=10", "nearby_stores", token)
        stores = (found or {}).get("items", [])
        if stores:
            break
    if not stores:
        raise JourneyEnded("no open store nearby")
    store = rng.choices(stores[:5], weights=[1 / (1 + s["distance_km"]) for s in stores[:5]])[0]
    walk.pace.think(rng, 20)
    scene = rng.choice(persona.scenes)
    _, page = walk.call("GET", f"{V1}/stores/{store['id']}/products?scene={scene}&limit=20",
                        "catalogue", token)
    items = (page or {}).get("items", [])
    if not items:
        _, page = walk.call("GET", f"{V1}/stores/{store['id']}/products?limit=20", "catalogue",
                            token)
        items = (page or {}).get("items", [])
    if rng.random() < 0.3:
        word = rng.choice(SEARCH_WORDS)
        _, found = walk.call("GET", f"{V1}/stores/{store['id']}/products?q={word}", "search",
                             token)
        items = (found or {}).get("items", []) or items
    in_stock = [p for p in items if any(k["available"] > 0 for k in p["skus"])]
    if not in_stock:
        raise JourneyEnded("nothing in stock")
    walk.pace.think(rng, 15)
    viewed = rng.choice(in_stock)
    walk.call("GET", f"{V1}/stores/{store['id']}/products/{viewed['product_id']}", "product",
              token)
    walk.records.reach(walk.record, "viewed")
    if session.journey == "browse":
        return
    walk.pace.think(rng, 30)
    if walk.experiment_response and rng.random() >= _share_staying(walk, arms):
        raise JourneyEnded("left in an experiment's arm")   # drawn by every session alike
    _place_order(walk, session, persona, token, user_id, store, in_stock, rng)


def _home_screen(walk: Walk, token: str, lat: float, lng: float, arms: dict[str, str],
                 word: str) -> None:
    """The home screen before a store is picked, as the customer's arms shape it: scene
    recommendations (首页场景推荐), ranked as `recommendation_strategy` says, or a search
    box first (`home_entry` = search) where the customer types a word."""
    if arms.get("home_entry") == "search":
        walk.call("GET", f"{V1}/search?q={word}&lat={lat}&lng={lng}&radius_m=3000"
                  "&open_now=true", "search_city", token)
        return
    strategy = arms.get("recommendation_strategy", "nearby")
    walk.call("GET", f"{V1}/recommendations?lat={lat}&lng={lng}&strategy={strategy}",
              "recommendations", token)


def _experiment_arms(walk: Walk, token: str) -> dict[str, str]:
    """The arms the mall puts this customer in, asked for at launch as the mini-program
    does, and kept on the session's record for `xingcheng experiment`."""
    _, told = walk.call("GET", f"{V1}/me/experiments", "experiments", token)
    arms = {e["key"]: e["arm"] for e in (told or {}).get("experiments", [])}
    walk.record.arms = ";".join(f"{key}={arm}" for key, arm in arms.items())
    return arms


def _share_staying(walk: Walk, arms: dict[str, str]) -> float:
    """The share of customers in these arms who go on to order, by the scenario's data."""
    staying = 1.0
    for key, arm in arms.items():
        staying *= 1 - walk.experiment_response.get(key, {}).get(arm, 0.0)
    return staying


def _place_order(walk: Walk, session: Session, persona, token: str, user_id: int, store: dict,
                 in_stock: list[dict], rng: random.Random) -> None:
    size = min(rng.randint(*persona.basket), len(in_stock))
    lines = []
    for product in rng.sample(in_stock, size):
        sku = rng.choice([k for k in product["skus"] if k["available"] > 0])
        lines.append({"sku_id": sku["sku_id"], "qty": 1 if rng.random() < 0.8 else 2,
                      "price_fen": sku["price_fen"]})
    _judge_prices(walk, persona, lines, rng.random())
    subtotal = sum(line["price_fen"] * line["qty"] for line in lines)
    for line in lines:
        del line["price_fen"]
    coupon_id = _coupon(walk, persona, token, store["id"], subtotal, rng.random())
    points = _points(walk, persona, token, subtotal, rng.random())
    delivery = session.journey == "delivery_order" or (
        session.journey in ("abandon", "cancel") and rng.random() > persona.pickup_share)
    body: dict = {"store_id": store["id"], "lines": lines,
                  "fulfilment": "delivery" if delivery else "pickup"}
    if delivery:
        body["address_id"] = _address(walk, token, user_id, rng)
    key = f"{walk.city.seed}-{user_id}-{rng.getrandbits(64):016x}"
    status, order = walk.call("POST", f"{V1}/orders", "create_order", token,
                              body | ({"coupon_id": coupon_id} if coupon_id else {})
                              | ({"points": points} if points else {}),
                              {"Idempotency-Key": key})
    if status == 409 and (coupon_id or points) and str(order["error"]["code"]).startswith(
            ("coupon", "points", "not_enough_points")):
        # The coupon or the points do not apply after all (the coupon's discount left less
        # for points to pay): the customer orders without them.
        status, order = walk.call("POST", f"{V1}/orders", "create_order", token, body,
                                  {"Idempotency-Key": f"{key}-plain"})
    if status == 409:
        walk.count_order("out_of_stock")
        raise JourneyEnded("sold out")
    if status != 201:
        raise JourneyEnded("order refused")
    order_id = order["order_id"]
    walk.count_order("created")
    record = walk.record
    record.items = sum(line["qty"] for line in lines)
    walk.metrics.basket_items.labels(walk.side.name).observe(record.items)
    walk.records.reach(record, "ordered")
    if session.journey == "abandon":
        walk.count_order("abandoned")
        return  # the unpaid order expires and gives its stock back
    if session.journey == "cancel":
        walk.pace.think(rng, 20)
        walk.call("POST", f"{V1}/orders/{order_id}/cancel", "cancel_order", token)
        walk.count_order("cancelled")
        return
    _see_through(walk, token, order, store["id"], body["fulfilment"], rng)


def _see_through(walk: Walk, token: str, order: dict, store_id: int, fulfilment: str,
                 rng: random.Random) -> None:
    """Pay an order just made, wait for the payer's word, and hand it to the store's desk."""
    code = _pay_for(walk, token, order, rng)
    _to_desk(walk, token, order, store_id, fulfilment, code, rng)


def _pay_for(walk: Walk, token: str, order: dict, rng: random.Random) -> str | None:
    """Pay an order just made and wait for the payer's word; its pickup code."""
    walk.records.reach(walk.record, "paying")
    walk.patience_s = math.inf  # once paying, a customer sees the order through
    _pay(walk, token, order["order_id"], rng)
    code = _wait_paid(walk, token, order["order_id"])
    walk.record.gmv_fen = order["total_fen"]
    walk.records.reach(walk.record, "paid")
    walk.metrics.gmv_yuan.labels(walk.side.name).inc(order["total_fen"] / 100)
    return code


def _to_desk(walk: Walk, token: str, order: dict, store_id: int, fulfilment: str,
             code: str | None, rng: random.Random) -> None:
    """The paid order handed to the store's desk (the customer at the counter); now and
    then the customer will ask for a refund once they have the goods."""
    record = walk.record
    persona = PERSONAS[record.persona]
    regret = rng.random() < persona.refund_share        # drawn on every paid order alike
    reason = rng.choice(REFUND_REASONS)
    walk.side.desk.hand_in(Ticket(store_id, order["order_id"], fulfilment, code,
                                  order["total_fen"], record,
                                  (token, reason) if regret else None))


def _coupon(walk: Walk, persona, token: str, store_id: int, subtotal_fen: int,
            draw: float) -> int | None:
    """A coupon-sensitive shopper opens the store's coupon list, claims the first that
    applies to the basket (or finds it among hers) and names it on the order."""
    if draw >= COUPON_LOOK * persona.coupon_sensitivity:
        return None
    _, offered = walk.call("GET", f"{V1}/coupons?store_id={store_id}&limit=10", "coupons",
                           token)
    usable = [c for c in (offered or {}).get("items", [])
              if c["threshold_fen"] <= subtotal_fen and c["left"] > 0]
    if not usable:
        return None
    status, claimed = walk.call("POST", f"{V1}/coupons/{usable[0]['template_id']}/claim",
                                "claim_coupon", token)
    if status == 201:
        return claimed["coupon_id"]
    _, mine = walk.call("GET", f"{V1}/me/coupons", "my_coupons", token)
    return next((c["coupon_id"] for c in (mine or {}).get("items", [])
                 if c["template_id"] == usable[0]["template_id"]
                 and c["status"] == "available"), None)


def _points(walk: Walk, persona, token: str, subtotal_fen: int, draw: float) -> int | None:
    """A member who pays with points opens 我的会员 and redeems as many as the order allows
    (the share of it points may pay), or none when too few are left."""
    if draw >= persona.points_share:
        return None
    _, mine = walk.call("GET", f"{V1}/me/membership", "membership", token)
    if not mine or not mine.get("member"):
        return None
    most = min(subtotal_fen * mine["max_points_percent"] // 100, subtotal_fen - 1)
    points = min(mine["points"], most // mine["fen_per_point"])
    return points if points >= 100 else None


def flash_hunt(walk: Walk, token: str, rng: random.Random) -> None:
    """A 秒杀 hunter: opens the sale list, picks a sale on now or about to start, refreshes it
    until it starts (as early birds do), taps buy once, and pays if the tap won a unit."""
    _, listed = walk.call("GET", f"{V1}/flash-sales?limit=50", "flash_sales", token)
    listed = (listed or {}).get("items", [])
    sales = [sale for sale in listed if sale["state"] in ("upcoming", "on")]
    if not sales:   # 已抢光: the app shows every sale sold out, and the button is grey
        raise JourneyEnded("flash sales sold out" if listed else "no flash sale")
    sale = rng.choice(sales)
    walk.records.reach(walk.record, "viewed")
    for _ in range(FLASH_REFRESHES):
        if sale["state"] != "upcoming":
            break
        walk.pace.think(rng, 2)
        _, fresh = walk.call("GET", f"{V1}/flash-sales/{sale['sale_id']}", "flash_sale", token)
        sale = fresh or sale
    if sale["state"] != "on":
        walk.count_order(f"flash_{sale['state']}")
        raise JourneyEnded(f"flash sale {sale['state']}")
    key = f"{walk.city.seed}-flash-{rng.getrandbits(64):016x}"
    status, order = walk.call("POST", f"{V1}/flash-sales/{sale['sale_id']}/orders",
                              "flash_buy", token, {}, {"Idempotency-Key": key})
    if status == 409:
        walk.count_order("flash_sold_out")
        raise JourneyEnded("flash sale sold out")
    if status != 201:
        raise JourneyEnded("flash order refused")
    walk.count_order("created")
    walk.record.items = 1
    walk.records.reach(walk.record, "ordered")
    _see_through(walk, token, order, sale["store_id"], "pickup", rng)


def group_buy(walk: Walk, token: str, rng: random.Random) -> bool:
    """A neighbour's group (拼团) shared in the family chat is joined; with none open, the
    customer opens one and shares it.  Once paid they watch the group: when it forms they
    collect at the counter.  False when no group buy runs now (the usual journey goes on)."""
    _, listed = walk.call("GET", f"{V1}/group-buys?limit=20", "group_buys", token)
    campaigns = (listed or {}).get("items", [])
    if not campaigns:
        return False
    campaign = rng.choice(campaigns)
    walk.records.reach(walk.record, "viewed")
    shared = walk.side.groups.setdefault(campaign["group_buy_id"], [])
    key = f"{walk.city.seed}-group-{rng.getrandbits(64):016x}"
    status, order = 0, None
    while shared and status != 201:
        group_id = shared[-1]
        status, order = walk.call("POST", f"{V1}/groups/{group_id}/orders", "join_group",
                                  token, {}, {"Idempotency-Key": f"{key}-{group_id}"})
        # Full, closed, or this customer's own: not shared any more.  Other customers walk
        # beside this one and may have dropped it (or others) while it was asked.
        if status != 201 and group_id in shared:
            shared.remove(group_id)
    if status != 201:
        status, order = walk.call("POST", f"{V1}/group-buys/{campaign['group_buy_id']}/groups",
                                  "open_group", token, {}, {"Idempotency-Key": key})
        if status != 201:
            raise JourneyEnded("group refused")
        shared.append(order["group"]["group_id"])
    walk.count_order("created")
    walk.record.items = 1
    walk.records.reach(walk.record, "ordered")
    group_id = order["group"]["group_id"]
    deadline = time.monotonic() + min(campaign["time_limit_seconds"] / walk.pace.speed,
                                      GROUP_WAIT_S)
    formed = False
    code = _pay_for(walk, token, order, rng)
    while time.monotonic() < deadline:
        _, group = walk.call("GET", f"{V1}/groups/{group_id}", "group", token)
        if (group or {}).get("status") != "open":
            formed = (group or {}).get("status") == "succeeded"
            break
        walk.pace.think(rng, 60)
    if not formed:
        walk.count_order("group_not_formed")
        raise JourneyEnded("group not formed")
    _to_desk(walk, token, order, campaign["store_id"], "pickup", code, rng)
    return True


def _judge_prices(walk: Walk, persona, lines: list[dict], draw: float) -> None:
    """Compare the basket's prices with the ones the customer knows; too dear, they go."""
    shown = sum(line["price_fen"] * line["qty"] for line in lines)
    usual = sum(walk.usual_prices.get(line["sku_id"], line["price_fen"]) * line["qty"]
                for line in lines)
    if shown > usual > 0:
        still_buying = (shown / usual) ** -(PRICE_ELASTICITY * persona.price_sensitivity)
        if draw >= still_buying:
            walk.lose("too_expensive")


def _address(walk: Walk, token: str, user_id: int, rng: random.Random) -> int:
    addresses = walk.side.addresses
    if user_id not in addresses:
        c = walk.city.customers
        person = c.person[user_id - 1]
        status, made = walk.call("POST", f"{V1}/me/addresses", "add_address", token, {
            "contact_name": walk.city.pools.names[person],
            "phone": walk.city.pools.phones[person],
            "district": walk.city.district_names[c.district[user_id - 1]],
            "detail": f"{rng.randint(1, 300)}号 {rng.randint(1, 30)}栋 {rng.randint(101, 2808)}",
            "lat": c.lat[user_id - 1], "lng": c.lng[user_id - 1]})
        if status != 201:
            raise JourneyEnded("address refused")
        addresses[user_id] = made["id"]
    return addresses[user_id]


def _prepay(walk: Walk, token: str, order_id: int) -> dict:
    """The prepay for wx.requestPayment.  When the mall cannot reach its payer (503) or
    cannot be reached (no answer), the customer taps 重试 after a moment, a few times."""
    for attempt in range(PAY_RETRIES + 1):
        status, prepay = walk.call("POST", f"{V1}/orders/{order_id}/pay", "pay", token)
        if status == 201:
            return prepay
        if status not in (0, 503) or attempt == PAY_RETRIES:
            break
        gevent.sleep(PAY_RETRY_WAIT_S)
    raise JourneyEnded("payment refused")


def _pay(walk: Walk, token: str, order_id: int, rng: random.Random) -> None:
    for attempt in range(2):
        prepay = _prepay(walk, token, order_id)
        result = "fail" if attempt == 0 and rng.random() < 0.03 else "success"
        if walk.side.wallet is not None:   # wx.requestPayment: the wallet pays the payer
            walk.call("POST", f"/sandbox/payments/{prepay['prepay_id']}/complete",
                      "sandbox_pay", json={"result": result}, client=walk.side.wallet)
        else:
            walk.call("POST", f"{V1}/sandbox/payments/{prepay['prepay_id']}/complete",
                      "sandbox_pay", token, {"result": result})
        if result == "success":
            return
        gevent.sleep(0.2)


def _wait_paid(walk: Walk, token: str, order_id: int, timeout: float = 15.0) -> str | None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        gevent.sleep(0.15)
        status, order = walk.call("GET", f"{V1}/orders/{order_id}", "order_status", token)
        if status == 200 and order["status"] == "paid":
            return order.get("pickup_code")
    walk.count_order("never_paid")
    raise JourneyEnded("payment notification never arrived")


@dataclass
class Staff:
    """A store clerk working the desk: readies and hands over pickups, sends out deliveries,
    now and then restocks what runs low."""

    walk: Walk
    rng: random.Random
    tokens: dict[int, str] = field(default_factory=dict)

    def token(self, store_id: int) -> str:
        if store_id not in self.tokens:
            openid = self.walk.city.stores[store_id - 1].merchant_openid
            status, login = self.walk.call("POST", f"{V1}/auth/wx-login", "merchant_login",
                                           json={"code": f"sandbox:{openid}"})
            if status != 200:
                raise JourneyEnded("merchant login")
            self.tokens[store_id] = login["token"]
        return self.tokens[store_id]

    def work_once(self) -> bool:
        """Serve one batch from the desk; False when the desk was empty."""
        batch = self.walk.side.desk.take()
        if not batch:
            return False
        store_id = batch[0].store_id
        token = self.token(store_id)
        base = f"{V1}/merchant/stores/{store_id}"
        self.walk.call("GET", f"{base}/pickup-queue", "merchant_queue", token)
        for ticket in batch:
            if ticket.fulfilment == "pickup":
                self.walk.call("POST", f"{base}/orders/{ticket.order_id}/ready", "mark_ready",
                               token)
                status, _ = self.walk.call("POST", f"{base}/orders/{ticket.order_id}/pickup",
                                           "verify_pickup", token, {"code": ticket.code})
            else:
                self.walk.call("POST", f"{base}/orders/{ticket.order_id}/dispatch", "dispatch",
                               token)
                status, _ = self.walk.call("POST", f"{base}/orders/{ticket.order_id}/delivered",
                                           "delivered", token)
            if status == 200:
                self.walk.count_order("completed")
                self.walk.records.reach(ticket.record, "completed")
                if ticket.refund is not None:
                    self.after_sales(base, token, ticket)
        if self.rng.random() < 0.3:
            self.restock(store_id, token)
        return True

    def after_sales(self, base: str, token: str, ticket: Ticket) -> None:
        """The customer, home with the goods, asks for a refund (售后); the clerk decides at
        once: approves most (the payer pays back), rejects the rest with a reason."""
        customer, reason = ticket.refund
        status, _ = self.walk.call("POST", f"{V1}/orders/{ticket.order_id}/refund",
                                   "request_refund", customer, {"reason": reason})
        if status != 201:
            return
        approve = self.rng.random() < REFUND_APPROVED
        self.walk.call("POST", f"{base}/orders/{ticket.order_id}/refund", "decide_refund",
                       token, {"decision": "approve"} if approve else
                       {"decision": "reject", "reject_reason": "已核实商品无误"})
        self.walk.count_order("refund_approved" if approve else "refund_rejected")

    def restock(self, store_id: int, token: str) -> None:
        store = self.walk.city.stores[store_id - 1]
        product = self.rng.choice(store.products)
        sku = self.rng.choice(product["skus"])
        base = f"{V1}/merchant/stores/{store_id}/inventory/{sku['sku_id']}"
        status, level = self.walk.call("GET", base, "stock_level", token)
        if status == 200 and level["available"] < 10:
            self.walk.call("PUT", base, "stock_sync", token, {"stock": level["on_hand"] + 30})
