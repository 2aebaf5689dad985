"""A Faker provider for Changsha's local retail, built the way Faker's locale providers are:
data tables apart (here, data/store_kinds.toml), methods that draw from them with the
generator's own random source so `seed_instance` makes every draw replayable."""

from __future__ import annotations

from faker import Faker
from faker.providers import BaseProvider

from shared.masking import mask_name, mask_phone

from .tables import ProductTemplate, StoreKind

FLAVOURS = ("", "招牌", "经典", "特辣", "微辣", "升级", "网红", "老长沙")


class ChangshaProvider(BaseProvider):
    def store_name(self, kind: StoreKind, place_name: str) -> str:
        """A fictional local brand with its branch: 湘辣口味虾(坡子街店)."""
        brand = self.random_element(kind.brand_words) + self.random_element(kind.suffixes)
        branch = place_name.split("/")[0].split(" ")[0].removesuffix("一带")
        return f"{brand}({branch}店)"

    def opening_hours(self, kind: StoreKind) -> tuple[str, str]:
        return self.random_element(kind.hours)

    def product_lines(self, kind: StoreKind, skus: int) -> list[dict]:
        """About `skus` SKUs as products with their specs: names, prices in fen, tags."""
        products: list[dict] = []
        count = 0
        rounds = 0
        while count < skus:
            flavour = FLAVOURS[rounds % len(FLAVOURS)]
            for template in self.random_sample(kind.products, len(kind.products)):
                if count >= skus:
                    break
                product = self._product(template, flavour, kind, skus - count)
                products.append(product)
                count += len(product["skus"])
            rounds += 1
        return products

    def _product(self, template: ProductTemplate, flavour: str, kind: StoreKind,
                 room: int) -> dict:
        base = self.random_int(template.low_fen // 100, template.high_fen // 100) * 100
        n_specs = min(room, self.random_int(1, len(kind.specs)))
        specs = sorted(self.random_sample(kind.specs, n_specs), key=lambda s: s[1])
        return {
            "name": f"{flavour}{template.name}",
            "tags": list(template.tags),
            "scenes": list(template.scenes),
            "skus": [{"spec": spec, "price_fen": max(10, round(base * factor / 10) * 10)}
                     for spec, factor in specs],
        }


class PersonPools:
    """Names and phones drawn from Faker's zh_CN once, then sampled: Faker per customer
    costs ~85 us, a pool draw ~1 us (see ../shared/reference-figures.md)."""

    def __init__(self, fake: Faker, size: int = 4000) -> None:
        self.names = [fake.name() for _ in range(size)]
        self.phones = [fake.phone_number() for _ in range(size)]
        self.masked_names = [mask_name(n) for n in self.names]
        self.masked_phones = [mask_phone(p) for p in self.phones]


def changsha_faker(seed: int) -> Faker:
    fake = Faker("zh_CN")
    fake.add_provider(ChangshaProvider)
    fake.seed_instance(seed)
    return fake


