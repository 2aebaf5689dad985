"""Which build serves a request in a gray release (灰度发布): the rules a release manager
sets, and the decision they give for one request.

Precedence, most specific first: a tester's header names a side outright; a request that
names a store goes where that store is (listed stores, or stores of listed districts); any
other request of a customer goes where that customer last went, or else where the share of
customers puts them (a stable hash of the user, so the same customers stay on the canary as
the share grows: 5% of customers are also in 25%).  Everything else goes to the baseline."""

from __future__ import annotations

import hashlib
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

BASELINE, CANARY = "baseline", "canary"
SIDES = (BASELINE, CANARY)
Side = Literal["baseline", "canary"]


class Rules(BaseModel):
    """What goes to the canary.  All empty: nothing (the state before and after a rollout)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    share: Annotated[float, Field(ge=0.0, le=1.0)] = 0.0
    stores: Annotated[frozenset[Annotated[int, Field(ge=1)]], Field(max_length=10_000)] = (
        frozenset())
    districts: Annotated[frozenset[Annotated[str, Field(min_length=1, max_length=20)]],
                         Field(max_length=50)] = frozenset()
    tester_header: bool = True    # honour `X-Gray-Side` from testers

    def describe(self) -> dict:
        return {"share": self.share, "stores": sorted(self.stores),
                "districts": sorted(self.districts), "tester_header": self.tester_header}


def share_of(user: str) -> float:
    """Where a customer falls in [0, 1): the same for the same user in every run."""
    digest = hashlib.blake2b(user.encode(), digest_size=8, person=b"xc-gray").digest()
    return int.from_bytes(digest, "big") / 2**64


class Decision:
    """The side of each request under one set of rules, with the stores of its districts
    resolved (by the router, from the mall's own store listing)."""

    def __init__(self, rules: Rules, district_stores: frozenset[int] = frozenset()) -> None:
        self.rules = rules
        self.canary_stores = rules.stores | district_stores
        self.by_store = bool(rules.stores or rules.districts)

    def side(self, *, tester: str | None, store_id: int | None, user: str | None,
             last: str | None) -> tuple[str, str]:
        """(side, why).  `last` is where this customer's session went before, if anywhere."""
        if tester in SIDES and self.rules.tester_header:
            return tester, "tester"
        if store_id is not None and self.by_store:
            return (CANARY if store_id in self.canary_stores else BASELINE), "store"
        if last is not None:
            return last, "session"
        if user is not None and self.rules.share > 0.0:
            return (CANARY if share_of(user) < self.rules.share else BASELINE), "share"
        return BASELINE, "default"
