"""The time-zone list of the subscribe and preferences forms: places' zones, by region, in the reader's words.

A real server on a synced store, as tests/test_subscribe_http.py runs it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine

from tests.support.delivery import Clock
from tests.support.timelines import HLPF, NOW, WriteTimeline
from tests.support.web import AMINA, BASE, SECRET, running, stored, sync
from tracker.config import Settings
from tracker.feeds.calendars import Calendars
from tracker.web.app import create_app
from tracker.web.signups import Signups

ISOLATED = "\u2066{}\u2069"  # the offset stays one left-to-right piece in a right-to-left label


@pytest.fixture
def site(engine: Engine, schedules: Path, write_timeline: WriteTimeline) -> Iterator[httpx.Client]:
    """The app in a real server on a store with one timeline; a request's email work is done before the next."""
    write_timeline("hlpf", HLPF)
    sync(engine, schedules)
    calendars = Calendars(engine, base_url=BASE, cancelled_grace=timedelta(days=30), clock=Clock(NOW),
                          check_interval=0, secret=SECRET)  # fmt: skip
    signups = Signups()
    app = create_app(engine, calendars, settings=Settings(base_url=BASE, timezone="Europe/Zurich"), signups=signups)
    hooks = {"response": [lambda _: signups.drain()]}
    with running(app) as url, httpx.Client(base_url=url, timeout=10, event_hooks=hooks) as client:
        yield client


def selected_zones(page: str) -> list[str]:
    return re.findall(r'<option value="([^"]+)" selected>', zone_list(page))


def zone_list(page: str) -> str:
    found = re.search(r'<select id="f-timezone" name="timezone"[^>]*>(.*?)</select>', page, re.S)
    assert found is not None, page[:300]
    return found.group(1)


def test_the_form_offers_places_zones_only_grouped_by_region(site: httpx.Client) -> None:
    zones = zone_list(site.get("/subscribe?lang=en").text)

    values = re.findall(r'<option value="([^"]+)"', zones)
    assert "Europe/Zurich" in values and "America/New_York" in values and "UTC" in values
    assert not {"Factory", "Navajo", "US/Eastern", "EST", "Etc/GMT+5", "posixrules"} & set(values)
    assert len(values) < 450  # each place once, where the tz database has 600 names
    assert re.findall(r'<optgroup label="([^"]+)">', zones) == [
        "Africa", "Americas", "Antarctica", "Asia", "Atlantic Ocean", "Europe", "Indian Ocean", "Oceania",
    ]  # fmt: skip
    offset = ISOLATED.format("UTC+01:00")  # tests run on 1 February 2017: winter in Geneva
    assert f'<option value="Europe/Zurich" selected>Switzerland (Zurich) — {offset}</option>' in zones


def test_zone_names_are_in_the_reader_s_language_with_the_offset_kept_left_to_right(site: httpx.Client) -> None:
    french = zone_list(site.get("/subscribe?lang=fr").text)
    arabic = zone_list(site.get("/subscribe?lang=ar").text)

    assert f'<option value="America/New_York">États-Unis (New York) — {ISOLATED.format("UTC-05:00")}</option>' in french
    assert '<optgroup label="Océan Atlantique">' in french
    assert f'<option value="Asia/Kolkata">الهند (كالكتا) — {ISOLATED.format("UTC+05:30")}</option>' in arabic
    assert '<optgroup label="أوروبا">' in arabic


def test_an_old_zone_name_sent_is_kept_as_its_place_s_zone(site: httpx.Client, engine: Engine) -> None:
    response = site.post("/subscribe", json={**AMINA, "timezone": "US/Eastern"})

    assert response.status_code == 202
    subscriber = stored(engine, str(AMINA["email"]))
    assert subscriber is not None and subscriber.timezone == "America/New_York"


def test_a_city_sent_as_a_zone_is_refused_with_the_zone_to_choose(site: httpx.Client) -> None:
    response = site.post("/subscribe", json={**AMINA, "timezone": "Geneva"})

    assert response.status_code == 422
    assert "unknown time zone 'Geneva' (did you mean 'Europe/Zurich'?)" in response.text


def test_the_browser_s_zone_is_chosen_even_under_an_old_name(site: httpx.Client) -> None:
    page = site.get("/subscribe?lang=en").text

    assert selected_zones(page) == ["Europe/Zurich"]  # without JavaScript: the site's zone
    found = re.search(r"var other = (\{.*?\});", page)
    assert found is not None
    other = json.loads(found.group(1))
    assert other["Asia/Calcutta"] == "Asia/Kolkata" and other["Etc/UTC"] == "UTC"  # as Chrome may report them


def group_labels(page: str, group: str) -> list[str]:
    found = re.search(rf'<optgroup label="{group}">(.*?)</optgroup>', zone_list(page), re.S)
    assert found is not None, group
    return [label.rsplit(" — ", 1)[0] for label in re.findall(r"<option [^>]*>([^<]+)</option>", found.group(1))]


def in_order(labels: list[str], *starts: str) -> bool:
    """Whether the first label starting with each of *starts* comes in that order."""
    where = [next(i for i, label in enumerate(labels) if label.startswith(start)) for start in starts]
    return where == sorted(where)


def test_places_are_listed_in_the_reader_s_alphabetical_order_accents_aside(site: httpx.Client) -> None:
    africa = group_labels(site.get("/subscribe?lang=fr").text, "Afrique")
    americas = group_labels(site.get("/subscribe?lang=fr").text, "Amériques")
    asia = group_labels(site.get("/subscribe?lang=ru").text, "Азия")
    chinese = group_labels(site.get("/subscribe?lang=zh").text, "亚洲")

    assert in_order(africa, "Angola", "Bénin", "Botswana", "Burundi", "Cameroun")
    assert in_order(africa, "Djibouti", "Égypte", "Érythrée", "Espagne", "Eswatini", "Éthiopie", "Gabon")
    assert in_order(americas, "Équateur", "États-Unis", "Grenade", "Îles Caïmans", "Jamaïque")
    assert in_order(asia, "Израиль", "Иран", "Йемен", "Казахстан")  # й is a letter of its own, after и
    # Han characters keep their order; a country's zones stay together ahead of its regions'.
    assert chinese[2:4] == ["中国（上海）", "中国（乌鲁木齐）"]
    assert chinese[4:6] == ["中国澳门特别行政区（澳门）", "中国香港特别行政区（香港）"]


def test_an_old_name_the_browser_reports_selects_the_same_place_not_a_neighbour_on_its_clock(
    site: httpx.Client,
) -> None:
    found = re.search(r"var other = (\{.*?\});", site.get("/subscribe?lang=en").text)
    assert found is not None
    other = json.loads(found.group(1))

    assert other["Pacific/Truk"] == "Pacific/Chuuk"  # not Papua New Guinea's Port Moresby
    assert other["America/Coral_Harbour"] == "America/Atikokan"  # Canada, not Panama
    assert other["Africa/Asmera"] == "Africa/Asmara"  # Eritrea, not Kenya's Nairobi


# The page's own script under node, whose Intl (ICU, as in Chrome) reports Asia/Kolkata as "Asia/Calcutta".
PRESELECT = """
const html = require("fs").readFileSync(0, "utf8");
const zones = html.match(/<select id="f-timezone"[\\s\\S]*?<\\/select>/)[0];
const select = {options: [...zones.matchAll(/<option value="([^"]+)"/g)].map(m => ({value: m[1]})), selectedIndex: -1};
global.document = {getElementById: () => select};
eval(html.match(/<script>([\\s\\S]*?)<\\/script>/)[1]);
const reported = Intl.DateTimeFormat().resolvedOptions().timeZone;
process.stdout.write(reported + " " + select.options[select.selectedIndex].value);
"""


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
def test_the_page_s_script_selects_the_zone_the_browser_reports_under_an_old_name(site: httpx.Client) -> None:
    page = site.get("/subscribe?lang=en").text
    environment = {**os.environ, "TZ": "Asia/Kolkata"}

    done = subprocess.run(["node", "-e", PRESELECT], input=page, env=environment, capture_output=True, text=True,
                          timeout=60, check=True)  # fmt: skip

    assert done.stdout == "Asia/Calcutta Asia/Kolkata"
