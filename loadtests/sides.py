"""Which mall a customer meets: a stable hash of who they are, so a customer stays on one
side for a whole journey and on the same side in every run with the same share."""

from __future__ import annotations

import hashlib

BASELINE, CANARY = "baseline", "canary"


def side_of(openid: str, canary_share: float) -> str:
    digest = hashlib.blake2b(openid.encode(), digest_size=8, person=b"xc-sides").digest()
    return CANARY if int.from_bytes(digest, "big") / 2**64 < canary_share else BASELINE
