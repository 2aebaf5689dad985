"""The store operations dashboard (门店运营看板) at /merchant/: static files shipped in the
package (no front-end build), and plotly's script from the plotly package the reports use,
so the page draws its charts with nothing loaded from the internet.  The page reads the
same API as any client; these routes only hand out its files."""

from __future__ import annotations

from importlib import resources
from importlib.util import find_spec
from pathlib import Path

from aiohttp import web

from .errors import NotFound

PAGE = "/merchant/"
FILES = {"": "index.html", "index.html": "index.html", "dashboard.js": "dashboard.js",
         "dashboard.css": "dashboard.css"}
TYPES = {".html": "text/html", ".js": "text/javascript", ".css": "text/css"}
CACHE_SCRIPT_S = 86400   # plotly's 4 MB change only with the installed package


def plotly_script() -> Path | None:
    """plotly.min.js of the installed plotly package, found without importing plotly."""
    spec = find_spec("plotly")
    if spec is None or not spec.submodule_search_locations:
        return None
    script = Path(spec.submodule_search_locations[0]) / "package_data" / "plotly.min.js"
    return script if script.is_file() else None


async def _file(request: web.Request) -> web.StreamResponse:
    name = FILES.get(request.match_info["name"])
    if name is None:
        raise NotFound("page")
    body = resources.files("mall").joinpath("static", "merchant", name).read_bytes()
    return web.Response(body=body, content_type=TYPES[Path(name).suffix], charset="utf-8",
                        headers={"Cache-Control": "no-cache"})


async def _plotly(request: web.Request) -> web.StreamResponse:
    script = plotly_script()
    if script is None:
        raise NotFound("plotly.min.js (plotly is not installed)")
    return web.FileResponse(script, headers={"Content-Type": "text/javascript",
                                             "Cache-Control": f"max-age={CACHE_SCRIPT_S}"})


async def _to_page(request: web.Request) -> web.StreamResponse:
    raise web.HTTPFound(PAGE)


def setup_dashboard(app: web.Application) -> None:
    app.router.add_get("/merchant", _to_page)
    app.router.add_get(f"{PAGE}plotly.min.js", _plotly)
    app.router.add_get(PAGE + "{name:[a-z.]*}", _file)
