"""The kinds of request the serving benchmark loads: each a path, a sample body and a wrk script.

Every script makes each request's body in Lua (``wrk.format`` per request, for every kind alike,
so wrk does the same work whatever the kind). Kinds that vary draw from a generator seeded per
wrk thread: an arbitrary coverage from about 490,000 values, a planned sale starting at any of
40 hours of the window with any of 401 discounts, so that no cache keyed on the request helps.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from string import Template
from typing import Any

NAMES = ("default", "coverage", "what-if", "capacity")  # in the order they are loaded
HORIZON = 24
WHAT_IF_HORIZON = 48
SALE_KIND = "flash_sale"  # a kind the example data's sale calendar knows
SALE_HOURS = 4
SALE_STARTS = range(1, 41)  # hours after the origin: every sale ends inside the 48-hour window
SAMPLE_SALE_START = 30  # the sample what-if (whose answer the bare app sends): origin + 30 h
SAMPLE_DISCOUNT, SAMPLE_COVERAGE = 30.0, 0.737

# Lua: the thread ids that seed each thread's generator, and one body per request.
SCRIPT = Template("""\
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("id", threads)
end
function init(args)
  math.randomseed(id)
end
$body
function request()
  return wrk.format(nil, nil, nil, body())
end
""")
FIXED = Template("local function body() return [==[$json]==] end")
COVERAGE = Template("""\
local function body()
  return string.format('{"horizon":$horizon,"coverage":%.6f}', 0.5 + 0.49 * math.random())
end""")
WHAT_IF = Template("""\
local starts = {$starts}
local ends = {$ends}
local function body()
  local i = math.random(#starts)
  return string.format(
    '{"horizon":$horizon,"events":[{"start":"%s","end":"%s","kind":"$kind",'
    .. '"discount_pct":%.1f}]}', starts[i], ends[i], math.random(100, 500) / 10)
end""")


@dataclass(frozen=True)
class Kind:
    """One kind of request: where it goes, a sample of it, and the Lua making each body."""

    name: str
    path: str
    sample: dict[str, Any]  # the bare app answers the service's bytes for this body
    lua_body: str  # defines ``body()``, a Lua function returning one request's JSON

    @property
    def sample_json(self) -> str:
        """The sample body as sent."""
        return compact(self.sample)

    def script(self) -> str:
        """The wrk script."""
        return SCRIPT.substitute(body=self.lua_body)


def compact(body: dict[str, Any]) -> str:
    """JSON without spaces, as the Lua scripts write it."""
    return json.dumps(body, separators=(",", ":"))


def _hour(stamp: datetime) -> str:
    return f"{stamp:%Y-%m-%dT%H:%M:%S}"


def _sale(origin: datetime, start_hours: int, discount: float) -> dict[str, Any]:
    start = origin + timedelta(hours=start_hours)
    end = start + timedelta(hours=SALE_HOURS)
    return {"start": _hour(start), "end": _hour(end), "kind": SALE_KIND, "discount_pct": discount}


def _fixed(name: str, path: str, body: dict[str, Any]) -> Kind:
    return Kind(name, path, body, FIXED.substitute(json=compact(body)))


def _what_if(origin: datetime) -> Kind:
    sample = {
        "horizon": WHAT_IF_HORIZON,
        "events": [_sale(origin, SAMPLE_SALE_START, SAMPLE_DISCOUNT)],
    }
    sales = [_sale(origin, hours, SAMPLE_DISCOUNT) for hours in SALE_STARTS]
    lua = WHAT_IF.substitute(
        starts=", ".join(f'"{sale["start"]}"' for sale in sales),
        ends=", ".join(f'"{sale["end"]}"' for sale in sales),
        horizon=WHAT_IF_HORIZON,
        kind=SALE_KIND,
    )
    return Kind("what-if", "/forecast", sample, lua)


def kinds(origin: datetime) -> dict[str, Kind]:
    """Every kind, by name; ``origin``: the first forecast hour (what-if sales lie after it)."""
    coverage_sample = {"horizon": HORIZON, "coverage": SAMPLE_COVERAGE}
    every = [
        _fixed("default", "/forecast", {"horizon": HORIZON}),
        Kind("coverage", "/forecast", coverage_sample, COVERAGE.substitute(horizon=HORIZON)),
        _what_if(origin),
        _fixed("capacity", "/capacity", {"horizon": HORIZON}),
    ]
    return {kind.name: kind for kind in every}
