"""The demo site in a real browser (headless Chromium through Selenium): a full MUSHRA session.

Builds a small site from development clips, serves it with a static file server, plays every
stimulus, moves the sliders, checks that the page blocks moving on until all are played,
completes the trials, downloads the results (JSON and CSV) and checks their contents; also
opens the samples page straight from disk. Screenshots go to ``demo-output/browser-test/``.
"""

from __future__ import annotations

import csv
import functools
import http.server
import json
import shutil
import threading
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.browser

REPO = Path(__file__).resolve().parents[2]
SHOTS = REPO / "demo-output" / "browser-test"


def _chromium() -> tuple[str, str]:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if not browser or not driver:
        pytest.skip("headless Chromium not installed (apt-get install chromium chromium-driver)")
    pytest.importorskip("selenium")
    return browser, driver


@pytest.fixture(scope="module")
def site(tmp_path_factory, demo_inputs) -> Path:
    from neuralcodec.demo.site import build_site

    return build_site(demo_inputs, tmp_path_factory.mktemp("browser") / "site", models=["speech"],
                      seconds=2.0, log=lambda _m: None)


@pytest.fixture(scope="module")
def server(site):
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(site)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


@pytest.fixture(scope="module")
def downloads(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("downloads")


@pytest.fixture(scope="module")
def browser(downloads):
    path, driver_path = _chromium()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = path
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1280,1400", "--autoplay-policy=no-user-gesture-required", "--mute-audio"):
        options.add_argument(arg)
    options.add_experimental_option("prefs", {"download.default_directory": str(downloads),
                                              "download.prompt_for_download": False})
    driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=options)
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


def _wait(predicate, timeout: float = 20.0, what: str = "condition"):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def _shot(driver, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(SHOTS / name))


def test_mushra_session_in_chromium(browser, server, site, downloads):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    browser.get(f"{server}/mushra.html")
    config = json.loads(browser.find_element(By.ID, "mushra-config").get_attribute("textContent"))
    assert len(config["trials"]) == 2
    browser.find_element(By.ID, "listener").send_keys("Test Listener")
    browser.find_element(By.ID, "start").click()
    expected: list[dict[str, int]] = []
    for index, trial in enumerate(config["trials"]):
        assert browser.find_element(By.ID, "progress-text").text == f"Trial {index + 1} of 2"
        browser.find_element(By.ID, "play-reference").click()
        buttons = browser.find_elements(By.CSS_SELECTOR, "#stimuli .stimulus button.play")
        sliders = browser.find_elements(By.CSS_SELECTOR, "#stimuli .stimulus input.rating")
        assert len(buttons) == len(trial["stimuli"]) >= 7  # reference, low-pass, 3 bitrates, anchors
        assert all(not s.is_enabled() for s in sliders)
        nxt = browser.find_element(By.ID, "next")
        values = {}
        for position, (button, slider) in enumerate(zip(buttons, sliders)):
            assert not nxt.is_enabled(), "moving on must wait until every stimulus was played"
            button.click()
            _wait(slider.is_enabled, what=f"stimulus {position} to start playing")
            steps = 10 * position + 5
            slider.send_keys(*([Keys.ARROW_RIGHT] * steps))
            values[position] = steps
            assert int(slider.get_attribute("value")) == steps
        _wait(nxt.is_enabled, what="the Next button")
        if index == 0:
            _shot(browser, "mushra-trial.png")
        expected.append(values)
        nxt.click()
    _wait(lambda: browser.find_element(By.ID, "done").is_displayed(), what="the end screen")
    browser.find_element(By.ID, "download-json").click()
    browser.find_element(By.ID, "download-csv").click()
    json_file = _wait(lambda: next(iter(downloads.glob("mushra-*.json")), None), what="the JSON download")
    csv_file = _wait(lambda: next(iter(downloads.glob("mushra-*.csv")), None), what="the CSV download")
    _shot(browser, "mushra-done.png")

    results = json.loads(_wait(lambda: json_file.read_text() if json_file.stat().st_size else "", what="JSON"))
    assert results["format"] == "neuralcodec-mushra" and results["listener"] == "Test Listener"
    assert len(results["trials"]) == 2
    for trial, config_trial, values in zip(results["trials"], config["trials"], expected):
        conditions = [s["condition"] for s in config_trial["stimuli"]]
        assert trial["id"] == config_trial["id"]
        assert sorted(trial["order"]) == sorted(conditions) and "reference" in trial["order"]
        assert {trial["ratings"][c] for c in conditions} == set(values.values())
        for position, condition in enumerate(trial["order"]):
            assert trial["ratings"][condition] == values[position]
            assert trial["plays"][condition] >= 1
    rows = list(csv.DictReader(_wait(lambda: csv_file.read_text(), what="CSV").splitlines()))
    assert len(rows) == sum(len(t["order"]) for t in results["trials"])
    assert {r["listener"] for r in rows} == {"Test Listener"}

    from neuralcodec.demo.scores import aggregate

    scores, kept, excluded = aggregate([json_file], screen=False)
    assert {s.condition for s in scores} == set(results["trials"][0]["ratings"])


def test_samples_page_opens_from_disk(browser, site):
    from selenium.webdriver.common.by import By

    browser.get((site / "samples.html").as_uri())
    players = browser.find_elements(By.TAG_NAME, "audio")
    assert len(players) >= 2 * 7
    images = browser.find_elements(By.CSS_SELECTOR, "img.spec, figure.plots img")
    browser.execute_script("document.querySelectorAll('img').forEach(function (i) { i.loading = 'eager'; });")
    _wait(lambda: all(browser.execute_script("return arguments[0].complete && arguments[0].naturalWidth > 0", i)
                      for i in images), what="every image to load")
    duration = _wait(lambda: browser.execute_script(
        "var a = document.querySelector('audio'); a.preload = 'auto'; a.load && a.readyState === 0 && a.load();"
        "return a.readyState >= 1 ? a.duration : 0;"), what="audio metadata")
    assert duration == pytest.approx(2.0, abs=0.05)
    _shot(browser, "samples.png")
