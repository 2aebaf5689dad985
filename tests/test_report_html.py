"""report.html as a person opens it: headless Chromium (Debian's) renders the page of a real
short run, single and paired, offline, with no console error and no request but the file."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from .browser import CHROMIUM, watched_page
from .phones import FULL_PHONE
from .test_run import SHORT, xingcheng

ROOT = Path(__file__).resolve().parent.parent
pytestmark = [
    pytest.mark.slow,  # two real runs, then Chromium
    pytest.mark.skipif(not Path(CHROMIUM).exists(),
                       reason="Debian's chromium is missing (.ci/run installs it)")]


@pytest.fixture(scope="module")
def reports(tmp_path_factory, env) -> dict[str, Path]:
    """One real short run of each kind."""
    folder = tmp_path_factory.mktemp("report-html")
    scenario = folder / "short.toml"
    # Across 21:00, when the city's snack streets open their flash sales and hunters come.
    text = SHORT.format(name="short", extra='[events]\nflash_sale = "2026-11-27T21:00:00+08:00"')
    scenario.write_text(text.replace("22:20:00", "20:59:30").replace("22:26:40", "21:06:10"),
                        encoding="utf-8")
    made = {}
    for kind, extra in (("single", []), ("paired", ["--baseline", ".", "--canary", "."])):
        out = folder / kind
        result = xingcheng(["run", str(scenario), "--reports", str(out), *extra], env, ROOT)
        assert result.returncode in (0, 1, 3), result.stdout[-2000:] + result.stderr[-2000:]
        made[kind] = next(out.iterdir())
    return made


def render(report: Path, shot: Path) -> dict:
    with watched_page(1280, 900) as (page, seen):
        page.goto((report / "report.html").as_uri())
        page.wait_for_function("document.querySelectorAll('.main-svg').length > 0")
        seen["plots"] = page.locator(".js-plotly-plot").count()
        seen["empty_plots"] = page.evaluate(
            "[...document.querySelectorAll('.js-plotly-plot')]"
            ".filter(p => !p.querySelector('.main-svg')).length")
        seen["first"] = page.evaluate("document.querySelector('h1').nextElementSibling.id")
        seen["verdict"] = page.inner_text("#verdict")
        seen["marketing"] = page.inner_text("#marketing + table")
        page.screenshot(path=str(shot), full_page=True)
    shutil.copy(shot, report / "report.png")
    return seen


@pytest.mark.parametrize("kind", ["single", "paired"])
def test_report_renders_offline_without_errors(reports, kind, tmp_path):
    report = reports[kind]
    verdict = json.loads((report / "verdict.json").read_text())
    seen = render(report, Path(f"/tmp/report-{kind}.png"))
    assert seen["errors"] == []
    assert seen["requests"] == [(report / "report.html").as_uri()]   # nothing fetched
    assert seen["first"] == "verdict"
    expected = verdict["gate"]["verdict"] if kind == "paired" else (
        "pass" if verdict["passed"] else "fail")
    assert seen["verdict"].strip().lower() == expected
    assert seen["plots"] == (6 if kind == "paired" else 5) and seen["empty_plots"] == 0
    body = (report / "report.html").read_text(encoding="utf-8").split("<body>")[1]
    assert "https://" not in body and "http://" not in body   # no link to fetch later either
    assert not FULL_PHONE.search(body)    # never a full phone number
    taken = next(line for line in seen["marketing"].splitlines()
                 if line.startswith("flash-sale units: taken"))
    assert all(int(n.replace(",", "")) > 0 for n in taken.split("\t")[1:]), seen["marketing"]
