"""Where things are: which district a point of Changsha belongs to, and points near places.

The city is the union of discs around its places (data/changsha.toml); a point belongs to
the place whose distance, measured in units of that place's reach, is smallest — if that
is at most one reach.  A coarse grid remembers which places can compete in each cell, so a
lookup compares a handful of places instead of all of them."""

from __future__ import annotations

import random
from functools import cache
from math import cos, radians

from . import tables
from .tables import Place

KM_PER_DEG_LAT = 110.574
_CELL = 0.02  # degrees; ~2 km


class Territory:
    def __init__(self, places: tuple[Place, ...]) -> None:
        self.places = places
        lat0 = sum(p.at[0] for p in places) / len(places)
        self._km_per_deg_lng = 111.320 * cos(radians(lat0))
        self._cells: dict[tuple[int, int], tuple[Place, ...]] = {}

    def _km(self, lat: float, lng: float, place: Place) -> float:
        dy = (lat - place.at[0]) * KM_PER_DEG_LAT
        dx = (lng - place.at[1]) * self._km_per_deg_lng
        return (dx * dx + dy * dy) ** 0.5

    def _candidates(self, lat: float, lng: float) -> tuple[Place, ...]:
        key = (int(lat // _CELL), int(lng // _CELL))
        found = self._cells.get(key)
        if found is None:
            # Any place whose reach touches the cell (its centre, plus the cell's half
            # diagonal) may own a point inside it.
            clat, clng = (key[0] + 0.5) * _CELL, (key[1] + 0.5) * _CELL
            half_diag = 0.5 * _CELL * (KM_PER_DEG_LAT ** 2 + self._km_per_deg_lng ** 2) ** 0.5
            found = tuple(p for p in self.places
                          if self._km(clat, clng, p) <= p.reach_km + half_diag)
            self._cells[key] = found
        return found

    def place_of(self, lat: float, lng: float) -> Place | None:
        best, best_score = None, 1.0
        for place in self._candidates(lat, lng):
            score = self._km(lat, lng, place) / place.reach_km
            if score <= best_score:
                best, best_score = place, score
        return best

    def district_of(self, lat: float, lng: float) -> str | None:
        place = self.place_of(lat, lng)
        return place.district if place else None

    def point_near(self, place: Place, rng: random.Random, spread: float = 0.5
                   ) -> tuple[float, float]:
        """A point around `place` (normal, sigma = spread x reach) that belongs to its
        district; rounded to 1e-5 degrees (about a metre)."""
        sigma_lat = place.reach_km * spread / KM_PER_DEG_LAT
        sigma_lng = place.reach_km * spread / self._km_per_deg_lng
        for _ in range(100):
            lat = round(rng.gauss(place.at[0], sigma_lat), 5)
            lng = round(rng.gauss(place.at[1], sigma_lng), 5)
            if self.district_of(lat, lng) == place.district:
                return lat, lng
        return place.at  # a place always lies in its own district (checked by tests)


@cache
def territory() -> Territory:
    return Territory(tables.geography()[1])
