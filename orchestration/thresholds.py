"""Thresholds in k6's syntax: `"http_req_duration{name:create_order}" = ["p(95)<300"]`.

A threshold names a metric (with an optional `{tag:value}` filter) and holds one or more
expressions `aggregation operator number`.  Aggregations: p(N), avg, med, min, max (trends,
in milliseconds), rate (share of true), count, value."""

from __future__ import annotations

import operator
import re
from dataclasses import dataclass

_KEY = re.compile(r"^(?P<metric>[a-z_][a-z0-9_]*)(\{(?P<tag>[a-z_]+):(?P<value>[^{}]+)\})?$")
_EXPR = re.compile(
    r"^\s*(?P<agg>p\((?P<pct>\d+(\.\d+)?)\)|avg|med|min|max|rate|count|value)\s*"
    r"(?P<op><=|>=|==|!=|<|>)\s*(?P<num>-?\d+(\.\d+)?)\s*$")
_OPS = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge,
        "==": operator.eq, "!=": operator.ne}

# What each metric can be asked, so a typo is caught before the run, not after.
METRICS = {
    "http_req_duration": {"trend"},
    "http_req_failed": {"rate"},
    "http_reqs": {"count"},
    "http_5xx": {"count"},
    "sessions_late": {"count", "rate"},
    "sessions_started": {"count"},
    "arrival_rate_error": {"value"},
    "order_completion": {"rate"},
    "conversion": {"rate"},
    "orders": {"count"},
    "gmv_yuan": {"value"},
    "oversold": {"count"},
}
_KIND = {"avg": "trend", "med": "trend", "min": "trend", "max": "trend", "rate": "rate",
         "count": "count", "value": "value"}


class ThresholdError(ValueError):
    pass


@dataclass(frozen=True)
class Threshold:
    key: str          # as written, e.g. http_req_duration{name:create_order}
    metric: str
    tag: tuple[str, str] | None
    expression: str   # as written, e.g. p(95)<300
    aggregation: str  # p95, avg, rate, ...
    op: str
    limit: float

    def holds(self, observed: float) -> bool:
        return _OPS[self.op](observed, self.limit)


def _line_of(text: str, key: str) -> int | None:
    """The line that defines `key` (quoted or bare) in the scenario's TOML text."""
    pattern = re.compile(rf'^\s*("{re.escape(key)}"|{re.escape(key)})\s*=')
    for number, line in enumerate(text.splitlines(), start=1):
        if pattern.match(line):
            return number
    return None


def parse_thresholds(table: dict[str, list[str]], source_text: str = "",
                     source: str = "thresholds") -> list[Threshold]:
    parsed = []
    for key, expressions in table.items():
        line = _line_of(source_text, key)
        where = f"{source}:{line}" if line else source
        match = _KEY.match(key)
        if match is None:
            raise ThresholdError(f"{where}: {key!r} is not `metric` or `metric{{tag:value}}`")
        metric = match["metric"]
        if metric not in METRICS:
            raise ThresholdError(f"{where}: unknown metric {metric!r}; known: "
                                 f"{', '.join(sorted(METRICS))}")
        if not isinstance(expressions, list) or not expressions:
            raise ThresholdError(f"{where}: {key} needs a list of expressions like "
                                 "[\"p(95)<300\"]")
        for expression in expressions:
            found = _EXPR.match(str(expression))
            if found is None:
                raise ThresholdError(f"{where}: {expression!r} is not `aggregation op number`,"
                                     " e.g. p(95)<300, rate<0.01, count==0")
            agg = f"p{found['pct']}" if found["pct"] else found["agg"]
            kind = "trend" if found["pct"] else _KIND[found["agg"]]
            if kind not in METRICS[metric]:
                raise ThresholdError(f"{where}: {metric} has no {found['agg']}; it is a "
                                     f"{'/'.join(sorted(METRICS[metric]))} metric")
            tag = (match["tag"], match["value"]) if match["tag"] else None
            parsed.append(Threshold(key, metric, tag, str(expression).strip(), agg,
                                    found["op"], float(found["num"])))
    return parsed
