"""What a full mainland mobile number looks like where reports and logs might leak one.

A number stands apart from its neighbours: not glued to other digits or letters.  Hex
tokens that reports rightly carry (a payer key's serial, a commit id, a request id) may hold
any run of eleven digits inside them; none of those is a phone number, and a check that
counted them failed one CI run in many for no leak at all.
"""

from __future__ import annotations

import re

FULL_PHONE = re.compile(r"(?<![0-9A-Za-z])1[3-9]\d{9}(?![0-9A-Za-z])")
