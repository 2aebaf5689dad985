"""Building the city: stores with their catalogues, and customers with their personas and
homes, all drawn from one seed.

Each concern draws from its own random stream (`Random("<seed>:stores")`, ...), so changing
the number of customers does not move a single store.  Ids are assigned here, in order,
and written as they are: the city's ids are the mall's ids."""

from __future__ import annotations

import random
from array import array
from collections import Counter
from dataclasses import dataclass, field
from itertools import accumulate

from . import tables
from .geography import Territory, territory
from .provider import PersonPools, changsha_faker
from .tables import Place, Preset

MAX_HOMES_PER_PLACE = 2000  # home positions per place; customers share them like buildings
SOLD_OUT_SHARE = 0.05


@dataclass
class Store:
    id: int
    name: str
    kind: str
    district_code: str
    district: str
    place: str
    lat: float
    lng: float
    opens_at: str
    closes_at: str
    merchant_openid: str
    products: list[dict] = field(default_factory=list)  # each with product_id and skus

    @property
    def sku_count(self) -> int:
        return sum(len(p["skus"]) for p in self.products)


@dataclass
class Customers:
    """A million customers as columns, not objects: ~40 bytes each instead of ~500."""

    openids: list[str]
    persona: bytearray
    district: bytearray
    lat: array
    lng: array
    person: array          # index into the name/phone pools

    def __len__(self) -> int:
        return len(self.openids)


@dataclass
class City:
    preset: Preset
    seed: int
    stores: list[Store]
    customers: Customers
    pools: PersonPools
    persona_keys: tuple[str, ...]
    district_names: tuple[str, ...]

    def customer_ids_by_persona(self) -> dict[str, list[int]]:
        ids: dict[str, list[int]] = {key: [] for key in self.persona_keys}
        for index, persona in enumerate(self.customers.persona):
            ids[self.persona_keys[persona]].append(index + 1)
        return ids

    def counts(self) -> dict:
        districts = self.district_names
        personas = self.persona_keys
        return {
            "stores": len(self.stores),
            "skus": sum(s.sku_count for s in self.stores),
            "customers": len(self.customers),
            "stores_by_district": dict(sorted(Counter(s.district for s in self.stores).items())),
            "stores_by_kind": dict(sorted(Counter(s.kind for s in self.stores).items())),
            "customers_by_district": {districts[i]: n for i, n in
                                      sorted(Counter(self.customers.district).items())},
            "customers_by_persona": {personas[i]: n for i, n in
                                     sorted(Counter(self.customers.persona).items())},
        }


def _apportion(total: int, shares: list[float]) -> list[int]:
    """Largest-remainder split of `total` by `shares`: exact, and stable for a seed."""
    raw = [total * s / sum(shares) for s in shares]
    counts = [int(r) for r in raw]
    for i in sorted(range(len(raw)), key=lambda i: counts[i] - raw[i])[:total - sum(counts)]:
        counts[i] += 1
    return counts


def _place_weights(places: tuple[Place, ...], near: dict[str, float], other: float
                   ) -> list[float]:
    return [p.weight * near.get(p.kind, other) for p in places]


def build_stores(preset: Preset, seed: int, land: Territory) -> list[Store]:
    fake = changsha_faker(seed)
    rng = random.Random(f"{seed}:stores")
    kinds = tables.store_kinds()
    districts = {d.name: d for d in tables.geography()[0]}
    stores: list[Store] = []
    next_product = next_sku = 1
    counts = _apportion(preset.stores, [k.share for k in kinds])
    for kind, count in zip(kinds, counts, strict=True):
        weights = list(accumulate(_place_weights(land.places, kind.near, 0.05)))
        for _ in range(count):
            place = rng.choices(land.places, cum_weights=weights)[0]
            lat, lng = land.point_near(place, rng, spread=0.4)
            opens, closes = fake.opening_hours(kind)
            store_id = len(stores) + 1
            store = Store(store_id, fake.store_name(kind, place.name), kind.code,
                          districts[place.district].code, place.district, place.name, lat, lng,
                          opens, closes, f"merchant-{seed}-{store_id:05d}")
            for product in fake.product_lines(kind, preset.skus_per_store):
                product["product_id"] = next_product
                next_product += 1
                for sku in product["skus"]:
                    sku["sku_id"] = next_sku
                    next_sku += 1
                    sold_out = rng.random() < SOLD_OUT_SHARE
                    sku["stock"] = 0 if sold_out else rng.randint(5, 200)
                store.products.append(product)
            stores.append(store)
    return stores


def build_customers(count: int, seed: int, land: Territory, pools: PersonPools
                    ) -> Customers:
    rng = random.Random(f"{seed}:customers")
    personas = tables.personas()
    districts = tables.geography()[0]
    district_index = {d.name: i for i, d in enumerate(districts)}
    # Home positions: a pool per place, drawn once; customers pick from them.
    pool_rng = random.Random(f"{seed}:homes")
    per_place = min(MAX_HOMES_PER_PLACE, max(50, count // 50))
    homes = {place.name: [land.point_near(place, pool_rng) for _ in range(per_place)]
             for place in land.places}
    persona_cum = list(accumulate(p.share for p in personas))
    plans = []
    for persona in personas:
        names = list(persona.home)
        home_cum = list(accumulate(persona.home.values()))
        by_district = {}
        for name in names:
            places = tuple(p for p in land.places if p.district == name)
            by_district[name] = (places, list(accumulate(
                _place_weights(places, persona.near, 0.2))))
        plans.append((names, home_cum, by_district))
    openids: list[str] = []
    persona_col, district_col = bytearray(), bytearray()
    lat_col, lng_col, person_col = array("d"), array("d"), array("I")
    pool_size = len(pools.names)
    for _ in range(count):
        p = rng.choices(range(len(personas)), cum_weights=persona_cum)[0]
        names, home_cum, by_district = plans[p]
        district = rng.choices(names, cum_weights=home_cum)[0]
        places, place_cum = by_district[district]
        place = rng.choices(places, cum_weights=place_cum)[0]
        lat, lng = homes[place.name][rng.randrange(per_place)]
        openids.append(f"o{rng.getrandbits(96):024x}")
        persona_col.append(p)
        district_col.append(district_index[district])
        lat_col.append(lat)
        lng_col.append(lng)
        person_col.append(rng.randrange(pool_size))
    return Customers(openids, persona_col, district_col, lat_col, lng_col, person_col)


def build_city(preset: Preset, seed: int, *, stores: int | None = None,
               customers: int | None = None, skus_per_store: int | None = None) -> City:
    """The whole city for a preset, with optional size overrides."""
    preset = Preset(preset.name, stores or preset.stores, customers or preset.customers,
                    skus_per_store or preset.skus_per_store, preset.daily_orders)
    land = territory()
    pools = PersonPools(changsha_faker(seed + 1))
    districts = tables.geography()[0]
    return City(
        preset=preset, seed=seed,
        stores=build_stores(preset, seed, land),
        customers=build_customers(preset.customers, seed, land, pools),
        pools=pools,
        persona_keys=tuple(p.key for p in tables.personas()),
        district_names=tuple(d.name for d in districts),
    )
