"""`newsletter stats --html` as a reader of it sees it in Chromium, the last issues side by side with the list's
growth, and `check` warning when click counting is on but the service does not answer."""

from __future__ import annotations

import datetime as dt
import json

import httpx
from click.testing import CliRunner
from click_fixtures import READER, add_link, click_links, landing_site, received_html, send
from conftest import EXAMPLE_ISSUE
from PIL import Image
from serve_helpers import set_newsletter, set_stats

from newsletter.cli import main


def newsletter(running, *args: str) -> str:
    result = CliRunner().invoke(main, ["--root", str(running.root), *args])
    assert result.exit_code == 0, result.output
    return result.output


def test_the_stats_page_renders_its_charts_in_chromium(click_world, click_clock, click_page, tmp_path):
    from playwright.sync_api import expect

    with landing_site() as (landing, _):
        add_link(click_world, landing)
        send(click_world)
        click_clock.offset = dt.timedelta(minutes=20)
        for address in (READER, "grace@example.org"):
            link = click_links(received_html(click_world, address), click_world.url)[1]
            httpx.get(link, headers={"User-Agent": f"browser of {address}"})
    out = tmp_path / "stats.html"
    newsletter(click_world, "stats", str(click_world.root / "issues" / EXAMPLE_ISSUE), "--html", str(out))

    click_page.set_viewport_size({"width": 1000, "height": 1600})
    click_page.goto(out.as_uri())
    expect(click_page.get_by_role("heading", name="Clicks per link")).to_be_visible()
    expect(click_page.locator(".tile").filter(has_text="human clickers")).to_contain_text("2")
    expect(click_page.locator(".tile").filter(has_text="human clickers")).to_contain_text("50.0%")
    expect(click_page.get_by_text("opens, inflated by privacy proxies")).to_be_visible()
    expect(click_page.get_by_role("cell", name=landing)).to_be_visible()
    charts = click_page.locator("figure svg")
    expect(charts).to_have_count(2)
    for chart in range(2):  # drawn by matplotlib, and laid out on the page with a real size
        box = charts.nth(chart).bounding_box()
        assert box["width"] > 300 and box["height"] > 100
    assert "Matplotlib" in charts.first.evaluate("svg => svg.outerHTML")
    shot = tmp_path / "stats.png"
    click_page.screenshot(path=str(shot), full_page=True)  # kept in the test's folder, to look at
    colours = Image.open(shot).convert("RGB").getcolors(maxcolors=1 << 24) or []
    accent = sum(count for count, colour in colours if colour == (0x2F, 0x6F, 0xBA))  # the charts' bars and line
    assert accent > 500, f"the charts show no bars in {shot}"


def test_stats_without_an_issue_compares_the_last_issues_and_shows_the_list_growing(click_world):
    send(click_world)
    answer = httpx.post(f"{click_world.url}/subscribe/example", data={"email": "new.reader@example.com"})
    assert answer.status_code == 200
    [confirm] = click_world.links("new.reader@example.com", "/confirm/")
    assert httpx.post(confirm).status_code == 200
    output = newsletter(click_world, "stats")
    assert EXAMPLE_ISSUE in output and "list example: growth" in output
    week = [line for line in output.splitlines() if line.strip().startswith("20")]
    assert week and "+1" in week[-1]
    data = json.loads(newsletter(click_world, "stats", "--format", "json"))
    assert [issue["issue"] for issue in data["issues"]] == [EXAMPLE_ISSUE]
    assert sum(w["joined"] for w in data["list_growth"]["example"]) == 1


def test_check_warns_when_clicks_are_on_and_the_service_does_not_answer(newsletter_root):
    set_stats(newsletter_root, clicks="true")
    set_newsletter(newsletter_root, unsubscribe_url='"http://127.0.0.1:9/unsubscribe/{token}"')  # nobody there
    result = CliRunner().invoke(main, ["check", f"issues/{EXAMPLE_ISSUE}", "--format", "json"])
    codes = {finding["code"] for finding in json.loads(result.output)["findings"]}
    assert "click-service-unreachable" in codes


def test_check_is_quiet_about_clicks_when_the_service_answers(click_world):
    result = CliRunner().invoke(main, ["--root", str(click_world.root), "check",
                                       str(click_world.root / "issues" / EXAMPLE_ISSUE), "--format", "json"])
    codes = {finding["code"] for finding in json.loads(result.output)["findings"]}
    assert "click-service-unreachable" not in codes and "clicks-without-service" not in codes


# The preview server builds the issue on its first request: seconds on a loaded machine, more than httpx's 5 s
# default once (a bound, not a speed the test depends on).
PAGE_TIMEOUT = 120.0


def test_the_preview_server_and_the_archive_show_the_stats_page_when_asked(click_world, click_clock):
    from newsletter.config import load_settings
    from newsletter.looking.preview_server import make_preview_server

    issue = click_world.root / "issues" / EXAMPLE_ISSUE
    settings = load_settings(click_world.root)
    server = make_preview_server(settings, issue, port=0).start()
    try:
        before = httpx.get(f"{server.url}stats", timeout=PAGE_TIMEOUT)
        assert before.status_code == 200 and "No stats yet" in before.text  # never sent: no id, nothing to count
        send(click_world)
        click_clock.offset = dt.timedelta(minutes=15)
        link = click_links(received_html(click_world, READER), click_world.url)[1]
        httpx.get(link, headers={"User-Agent": "a reader"})
        page_text = httpx.get(f"{server.url}stats", timeout=PAGE_TIMEOUT).text
    finally:
        server.close()
    assert "1</b><span>human clickers (25.0%)" in page_text and page_text.count("<svg") == 2

    site = click_world.root / "site"
    newsletter(click_world, "archive", "--out", str(site))
    assert not (site / EXAMPLE_ISSUE / "stats.html").exists()  # not unless asked
    newsletter(click_world, "archive", "--out", str(site), "--stats")
    published = (site / EXAMPLE_ISSUE / "stats.html").read_text(encoding="utf-8")
    assert "human clickers (25.0%)" in published and READER not in published
