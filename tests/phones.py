"""What a full mainland mobile number looks like where reports and logs might leak one.

A number stands apart from its neighbours: not glued to other digits or letters.  Hex
tokens that reports rightly carry (a payer key's serial, a commit id, a request id) may hold
any run of eleven digits inside them; none of those is a phone number, and a check that
counted them failed one CI run in many for no leak at all.  Nor is the tail of a decimal
fraction (Locust's stats history prints latencies such as 655.5341130604288, and one in a
great many runs has eleven digits after the point that start 1[3-9]).
"""

from __future__ import annotations

import re

FULL_PHONE = re.compile(r"(?<![0-9A-Za-z.])1[3-9]\d{9}(?![0-9A-Za-z])")
