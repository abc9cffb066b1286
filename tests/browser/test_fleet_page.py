"""The fleet page in a real headless Chromium (Debian's chromium + chromedriver, via Selenium),
against real ingest, API and flusher processes on their own Redis and Postgres.

Short liveness thresholds make a worker go offline within seconds of its last beat; every wait
polls the DOM with a deadline. Screenshots at desktop and phone width are saved under the
pytest base temp directory (`screenshots/`) and their paths printed.
"""

from __future__ import annotations

import asyncio
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.faults.harness import Stack, WorkerCredentials, now_ms, rfc3339_ms

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
if CHROMIUM is None or CHROMEDRIVER is None:
    pytest.skip(
        "no headless browser: the fleet page tests need `chromium` and `chromedriver` on PATH "
        "(Debian: apt-get install chromium chromium-driver)",
        allow_module_level=True,
    )
webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed")

from selenium.common.exceptions import StaleElementReferenceException  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

# Beats every second; stale after 1.5 s, offline after 3 s without one.
LIVENESS_ENV = {
    "HB_HEARTBEAT_INTERVAL": "1",
    "HB_STALE_AFTER": "1.5",
    "HB_OFFLINE_AFTER": "3",
    "HB_FLUSH_INTERVAL": "1",
    "HB_EVENT_POLL_INTERVAL": "0.5",
}
WAIT = 30.0  # the deadline of every DOM wait
FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    started = Stack(tmp_path_factory.mktemp("fleet-stack"), workers=3, env=LIVENESS_ENV)
    try:
        asyncio.run(started.start())
        yield started
    finally:
        started.close()


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path / 'chromium-profile'}")
    options.add_argument("--window-size=1280,800")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    service = webdriver.ChromeService(executable_path=CHROMEDRIVER)
    driver = webdriver.Chrome(options=options, service=service)
    try:
        yield driver
    finally:
        driver.quit()


class Beater:
    """Beats one worker through ingest every 0.3 s from a thread until stopped."""

    def __init__(self, ingest_url: str, worker: WorkerCredentials) -> None:
        self.url = f"{ingest_url}/v1/workers/{worker.worker_id}/activity-heartbeat"
        self.headers = {"Authorization": f"Bearer {worker.token}"}
        self.answers: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with httpx.Client(timeout=5.0) as client:
            while not self._stop.is_set():
                body = {
                    "isActiveRecently": True,
                    "openSessionCount": 2,
                    "sentAt": rfc3339_ms(now_ms()),
                }
                self.answers.append(
                    client.post(self.url, json=body, headers=self.headers).status_code
                )
                self._stop.wait(0.3)

    def __enter__(self) -> Beater:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)


def wait_for(driver: Any, condition: Any, what: str) -> Any:
    # The page re-renders as events arrive: an element found a moment ago may be replaced.
    waiting = WebDriverWait(
        driver, WAIT, poll_frequency=0.1, ignored_exceptions=[StaleElementReferenceException]
    )
    return waiting.until(lambda d: condition(d), message=f"not within {WAIT:g} s: {what}")


def badge_of(driver: Any, worker_id: str) -> str | None:
    rows = driver.find_elements(By.CSS_SELECTOR, f'tr[data-worker-id="{worker_id}"] .badge')
    return rows[0].text if rows else None


def screenshot(driver: Any, directory: Path, name: str, width: int, height: int) -> Path:
    driver.set_window_size(width, height)
    # The layout follows the new width before the shot: wait until the viewport has it.
    wait_for(driver, lambda d: d.execute_script("return window.innerWidth") <= width, "resize")
    path = directory / name
    driver.save_screenshot(str(path))
    print(f"screenshot: {path}")
    return path


def test_page_is_served_with_a_strict_policy(stack: Stack) -> None:
    page = httpx.get(stack.api_url + "/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    policy = page.headers["content-security-policy"]
    assert "default-src 'none'" in policy and "script-src 'self'" in policy
    assert "connect-src 'self'" in policy
    for asset in ("fleet.js", "fleet.css"):
        assert f"/fleet-assets/{asset}" in page.text
        assert httpx.get(f"{stack.api_url}/fleet-assets/{asset}").status_code == 200
    # The template is served only rendered.
    assert httpx.get(f"{stack.api_url}/fleet-assets/fleet.html").status_code == 404


def test_fleet_page(stack: Stack, browser: Any, tmp_path_factory: pytest.TempPathFactory) -> None:
    shots = tmp_path_factory.getbasetemp() / "screenshots"
    shots.mkdir(exist_ok=True)
    leaving = stack.workers[0]  # beats, then falls silent and goes offline
    name = "fault-worker-0"

    with Beater(stack.ingest_url, leaving) as beater:
        wait_for(browser, lambda d: 202 in beater.answers or 200 in beater.answers, "a beat")

        # Sign in with the organization's API key.
        browser.get(stack.api_url + "/")
        wait_for(browser, lambda d: d.find_element(By.ID, "credential").is_displayed(), "form")
        browser.find_element(By.ID, "credential").send_keys(stack.api_key)
        browser.find_element(By.CSS_SELECTOR, "#sign-in-form button[type=submit]").click()
        wait_for(browser, lambda d: d.find_element(By.ID, "fleet").is_displayed(), "the fleet")
        stored = browser.execute_script("return sessionStorage.getItem('hb.credential')")
        assert stack.api_key in stored

        # The worker is online, in the table and in the summary.
        wait_for(browser, lambda d: badge_of(d, leaving.worker_id) == "online", "online badge")
        wait_for(browser, lambda d: d.find_element(By.ID, "count-online").text == "1", "summary")
        wait_for(
            browser,
            lambda d: d.find_element(By.ID, "stream-state").text == "live",
            "the event stream",
        )
        # Marks this document: it is still there after the live update, so nothing reloaded.
        browser.execute_script("window.fleetTestMark = 'same document'")

    # Silent now: the badge turns offline from the event stream, without a reload.
    wait_for(browser, lambda d: badge_of(d, leaving.worker_id) == "offline", "offline badge")
    assert browser.execute_script("return window.fleetTestMark") == "same document"
    wait_for(
        browser,
        lambda d: any(
            "offline" in item.text and leaving.worker_id in item.text
            for item in d.find_elements(By.CSS_SELECTOR, "#feed-items li")
        ),
        "an offline event in the feed",
    )
    assert browser.find_element(By.ID, "feed-items").get_attribute("aria-live") == "polite"
    wait_for(browser, lambda d: d.find_element(By.ID, "count-offline").text == "1", "summary")

    # Filter to offline: only that worker is listed (the others never beat).
    browser.find_element(By.CSS_SELECTOR, "input[name=liveness][value=offline]").click()
    browser.find_element(By.CSS_SELECTOR, "#filters button[type=submit]").click()

    def offline_only(d: Any) -> bool:
        rows = d.find_elements(By.CSS_SELECTOR, "#worker-rows tr")
        return [r.get_attribute("data-worker-id") for r in rows] == [leaving.worker_id]

    wait_for(browser, offline_only, "the offline filter")

    # The detail panel, opened from the keyboard.
    row = browser.find_element(By.CSS_SELECTOR, f'tr[data-worker-id="{leaving.worker_id}"]')
    row.send_keys("\n")
    wait_for(browser, lambda d: d.find_element(By.ID, "detail").is_displayed(), "the panel")
    wait_for(
        browser,
        lambda d: (
            d.find_element(By.ID, "detail-title").text == f"Worker {name}"
            and leaving.worker_id in d.find_element(By.ID, "detail").text
            and d.find_element(By.CSS_SELECTOR, "#detail .badge").text == "offline"
        ),
        "the panel's worker",
    )

    desktop = screenshot(browser, shots, "fleet-desktop-1280x800.png", 1280, 800)
    phone = screenshot(browser, shots, "fleet-phone-390x844.png", 390, 844)
    assert desktop.stat().st_size > 0 and phone.stat().st_size > 0

    # Nothing was refused by the page's Content-Security-Policy.
    refused = [
        entry["message"]
        for entry in browser.get_log("browser")
        if "Content Security Policy" in entry["message"]
    ]
    assert refused == []

    # Signing out forgets the credential.
    browser.find_element(By.ID, "sign-out").click()
    wait_for(browser, lambda d: d.find_element(By.ID, "sign-in").is_displayed(), "signed out")
    assert browser.execute_script("return sessionStorage.getItem('hb.credential')") is None

    # /docs renders the API's operations.
    browser.set_window_size(1280, 800)
    browser.get(stack.api_url + "/docs")
    wait_for(browser, lambda d: len(d.find_elements(By.CSS_SELECTOR, ".opblock")) > 5, "/docs")
    paths = {e.text for e in browser.find_elements(By.CSS_SELECTOR, ".opblock-summary-path")}
    assert "/v1/workers" in paths
