"""GraphiQL works offline: headless Chromium loads it from Herald alone and runs a query."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from app import __version__
from app.config import Settings
from app.http.graphiql import ASSETS_DIR, render_graphiql
from tests.conftest import Server, StartWorker, create_api_key, serve
from tests.fake_whatsapp import seed_campaign

selenium = pytest.importorskip("selenium", reason="selenium is in the [dev] extra")

from selenium import webdriver  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.remote.webelement import WebElement  # noqa: E402
from selenium.webdriver.support import expected_conditions as ec  # noqa: E402
from selenium.webdriver.support.wait import WebDriverWait  # noqa: E402

CHROMIUM = ("chromium", "/usr/bin/chromium")
CHROMEDRIVER = ("chromedriver", "/usr/bin/chromedriver")
QUERY = "{ version }"
START = "mutation Start($id: ID!) { startCampaign(id: $id) { __typename } }"


def _which(candidates: tuple[str, ...]) -> str | None:
    for name in candidates:
        found = shutil.which(name)
        if found:
            return found
    return None


def _install_chromium() -> tuple[str, str]:
    """Debian's chromium + chromium-driver, installed with apt-get when missing."""
    browser, driver = _which(CHROMIUM), _which(CHROMEDRIVER)
    if browser and driver:
        return browser, driver
    apt = shutil.which("apt-get")
    if apt is None or os.geteuid() != 0:
        pytest.skip("chromium/chromedriver missing and apt-get is not usable (needs root)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = [apt, "install", "-y", "--no-install-recommends", "chromium", "chromium-driver"]
    result = subprocess.run(install, env=env, capture_output=True, text=True, timeout=600)
    if result.returncode != 0:  # stale package lists: refresh once and retry
        subprocess.run([apt, "update"], env=env, capture_output=True, timeout=300)
        result = subprocess.run(install, env=env, capture_output=True, text=True, timeout=600)
    browser, driver = _which(CHROMIUM), _which(CHROMEDRIVER)
    if result.returncode != 0 or not (browser and driver):
        pytest.skip(f"could not install chromium: {result.stderr.strip()[-300:]}")
    return browser, driver


@pytest.fixture(scope="module")
def browser() -> Iterator[webdriver.Chrome]:
    binary, driver_path = _install_chromium()
    profile = tempfile.mkdtemp(prefix="herald-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        "--window-size=1400,900",
        f"--user-data-dir={profile}",
    ):
        options.add_argument(flag)
    # Every network request the page makes is read back from the performance log.
    options.set_capability("goog:loggingPrefs", {"performance": "ALL", "browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(executable_path=driver_path))
    driver.set_page_load_timeout(20)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def _requested_urls(driver: webdriver.Chrome) -> list[str]:
    urls = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.requestWillBeSent":
            urls.append(message["params"]["request"]["url"])
    return urls


def test_graphiql_runs_a_query_offline(server: Server, browser: webdriver.Chrome) -> None:
    # given: the IDE page
    browser.get(f"{server.url}/graphql")
    wait = WebDriverWait(browser, 15)
    editor = wait.until(
        ec.presence_of_element_located((By.CSS_SELECTOR, ".graphiql-query-editor .CodeMirror"))
    )

    # when: a query is typed into the editor (replacing the example) and run
    editor.click()
    keys = editor.find_element(By.CSS_SELECTOR, "textarea")
    keys.send_keys(Keys.CONTROL, "a")
    keys.send_keys(Keys.DELETE)
    keys.send_keys(QUERY)
    typed = browser.execute_script("return arguments[0].CodeMirror.getValue();", editor)
    assert typed == QUERY
    browser.find_element(By.CSS_SELECTOR, "button.graphiql-execute-button").click()

    # then: the result pane shows the data
    def result_text(driver: webdriver.Chrome) -> str | bool:
        text: str = driver.execute_script(
            "var cm = document.querySelector('.result-window .CodeMirror');"
            "return cm ? cm.CodeMirror.getValue() : '';"
        )
        return text if '"version"' in text else False

    result = json.loads(str(wait.until(result_text)))
    assert result["data"] == {"version": __version__}
    assert "errors" not in result

    # and: nothing was fetched from anywhere but Herald
    urls = _requested_urls(browser)
    network = [u for u in urls if urlsplit(u).scheme in ("http", "https", "ws", "wss")]
    assert network, urls
    assert [u for u in network if urlsplit(u).hostname != "127.0.0.1"] == []
    assert any(u.endswith("/graphiql-assets/graphiql.min.js") for u in network)
    assert any(urlsplit(u).path == "/graphql" for u in network[1:])  # the query itself
    severe = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert severe == []

    # and: the Content-Security-Policy lets GraphiQL's dialogs work too (they add styles)
    browser.find_element(By.CSS_SELECTOR, '[aria-label="Open settings dialog"]').click()
    wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, ".graphiql-dialog")))
    logged = [e["message"] for e in browser.get_log("browser")]
    assert [m for m in logged if "Content Security Policy" in m] == []


AUTHED_QUERY = "{ contacts { totalCount } }"


@pytest.fixture
def dev_server(settings: Settings, admin_key: str) -> Iterator[Server]:
    """`herald dev`'s app: GraphiQL with the dev key, bound to loopback."""
    update = {"graphiql_api_key": admin_key, "graphiql": True, "host": "127.0.0.1"}
    with serve(settings.model_copy(update=update)) as running:
        yield running


def _run(browser: webdriver.Chrome, wait: WebDriverWait, query: str) -> dict[str, Any]:
    editor = browser.find_element(By.CSS_SELECTOR, ".graphiql-query-editor .CodeMirror")
    browser.execute_script("arguments[0].CodeMirror.setValue(arguments[1]);", editor, query)
    browser.execute_script(
        "var cm = document.querySelector('.result-window .CodeMirror');"
        "if (cm) cm.CodeMirror.setValue('');"
    )
    browser.find_element(By.CSS_SELECTOR, "button.graphiql-execute-button").click()

    def result_text(driver: webdriver.Chrome) -> str | bool:
        text: str = driver.execute_script(
            "var cm = document.querySelector('.result-window .CodeMirror');"
            "return cm ? cm.CodeMirror.getValue() : '';"
        )
        return text if text.strip().startswith("{") else False

    answer: dict[str, Any] = json.loads(str(wait.until(result_text)))
    return answer


def _headers_editor(browser: webdriver.Chrome) -> WebElement:
    """Open the Headers tab and return its (now visible) editor."""
    tabs = browser.find_elements(By.CSS_SELECTOR, ".graphiql-editor-tools button")
    next(tab for tab in tabs if tab.text.strip() == "Headers").click()
    editors = browser.find_elements(By.CSS_SELECTOR, "section.graphiql-editor-tool .CodeMirror")
    shown = [e for e in editors if e.is_displayed()]
    assert len(shown) == 1, len(shown)
    return shown[0]


def test_graphiql_shows_the_dev_key_in_its_headers_tab(
    dev_server: Server, browser: webdriver.Chrome, admin_key: str
) -> None:
    # given: a fresh profile's view of the IDE (no headers kept from an earlier page)
    browser.get(f"{dev_server.url}/graphql")
    browser.execute_script("window.localStorage.clear();")
    browser.get(f"{dev_server.url}/graphql")
    wait = WebDriverWait(browser, 15)
    wait.until(
        ec.presence_of_element_located((By.CSS_SELECTOR, ".graphiql-query-editor .CodeMirror"))
    )

    # when: the Headers tab is opened
    editor = _headers_editor(browser)
    shown = browser.execute_script("return arguments[0].CodeMirror.getValue();", editor)

    # then: it holds the dev key, and a query that needs a key runs with it
    assert json.loads(shown) == {"Authorization": f"Bearer {admin_key}"}
    assert "data" in _run(browser, wait, AUTHED_QUERY)
    # and what is sent is what is shown: without the header the same query is refused
    browser.execute_script("arguments[0].CodeMirror.setValue('{}');", editor)
    refused = _run(browser, wait, AUTHED_QUERY)
    assert [e["extensions"]["code"] for e in refused["errors"]] == ["UNAUTHENTICATED"]


def test_page_references_only_local_assets(server: Server) -> None:
    # when
    response = httpx.get(f"{server.url}/graphql", headers={"Accept": "text/html"})

    # then
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    policy = response.headers["content-security-policy"]
    assert "script-src 'self';" in policy
    assert "connect-src 'self';" in policy
    assert "frame-ancestors 'none'" in policy
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "no-referrer"
    assert "unpkg.com" not in response.text
    assert "https://" not in response.text
    for asset in ("graphiql.min.js", "graphiql.min.css", "react.production.min.js"):
        assert f'"/graphiql-assets/{asset}"' in response.text
        assert httpx.get(f"{server.url}/graphiql-assets/{asset}").status_code == 200


def test_default_headers_are_embedded_safely() -> None:
    # when
    page = render_graphiql(default_headers={"Authorization": "Bearer </script><x>"})

    # then: the value survives as JSON and cannot close the config tag
    assert "</script><x>" not in page
    start = page.index('type="application/json">') + len('type="application/json">')
    config = json.loads(page[start : page.index("</script>", start)])
    assert config["defaultHeaders"] == {"Authorization": "Bearer </script><x>"}


def test_assets_are_vendored_and_small() -> None:
    sizes = {path.name: path.stat().st_size for path in Path(ASSETS_DIR).iterdir()}
    assert {"graphiql.min.js", "graphiql.min.css", "herald-graphiql.js"} <= set(sizes)
    assert sum(sizes.values()) < 4 * 1024 * 1024


SUBSCRIPTION = (
    "subscription Live($id: ID!) { campaignProgress(id: $id) { status stats { total sent } } }"
)


def _result_json(driver: webdriver.Chrome) -> dict[str, Any] | None:
    text: str = driver.execute_script(
        "var cm = document.querySelector('.result-window .CodeMirror');"
        "return cm ? cm.CodeMirror.getValue() : '';"
    )
    try:
        parsed: dict[str, Any] = json.loads(text)
    except ValueError:
        return None
    return parsed


@pytest.mark.asyncio
async def test_graphiql_subscription_shows_a_campaign_moving(
    settings: Settings,
    admin_key: str,
    session: AsyncSession,
    browser: webdriver.Chrome,
    start_worker: StartWorker,
) -> None:
    # given GraphiQL in dev with its pre-filled key, subscribed to a draft campaign
    campaign_id = await seed_campaign(session, 400)
    worker = await start_worker(processes=1, whatsapp_rate_per_second=100, dispatch_batch_size=20)
    with serve(settings.model_copy(update={"graphiql_api_key": admin_key})) as ide:
        browser.get(f"{ide.url}/graphql")
        wait = WebDriverWait(browser, 60, poll_frequency=0.05)
        editor = wait.until(
            ec.presence_of_element_located((By.CSS_SELECTOR, ".graphiql-query-editor .CodeMirror"))
        )
        browser.execute_script(
            "arguments[0].CodeMirror.setValue(arguments[1]);", editor, SUBSCRIPTION
        )
        variables = browser.find_element(By.CSS_SELECTOR, ".graphiql-editor-tool .CodeMirror")
        browser.execute_script(
            "arguments[0].CodeMirror.setValue(arguments[1]);",
            variables,
            json.dumps({"id": str(campaign_id)}),
        )
        browser.find_element(By.CSS_SELECTOR, "button.graphiql-execute-button").click()

        def progress(driver: webdriver.Chrome) -> dict[str, Any] | bool:
            result = _result_json(driver)
            data = (result or {}).get("data") or {}
            return data.get("campaignProgress") or False

        first = wait.until(progress)
        assert first == {"status": "DRAFT", "stats": {"total": 0, "sent": 0}}

        # when the campaign starts
        async with httpx.AsyncClient() as client:
            response = await client.post(
                f"{ide.url}/graphql",
                json={"query": START, "variables": {"id": str(campaign_id)}},
                headers={"Authorization": f"Bearer {admin_key}"},
            )
        assert response.json()["data"]["startCampaign"]["__typename"] == "StartCampaignSuccess"

        # then the page's numbers move, up to the final event
        seen: list[int] = []

        def completed(driver: webdriver.Chrome) -> bool:
            now = progress(driver)
            if isinstance(now, dict):
                if not seen or seen[-1] != now["stats"]["sent"]:
                    seen.append(now["stats"]["sent"])
                return bool(now["status"] == "COMPLETED")
            return False

        wait.until(completed)
        last = progress(browser)
    worker.stop()

    assert last == {"status": "COMPLETED", "stats": {"total": 400, "sent": 400}}
    assert seen == sorted(seen)
    assert len([n for n in seen if 0 < n < 400]) >= 2, seen
    severe = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert severe == []


def _set_editor(browser: webdriver.Chrome, editor: WebElement, text: str) -> None:
    browser.execute_script("arguments[0].CodeMirror.setValue(arguments[1]);", editor, text)


@pytest.mark.asyncio
async def test_a_subscription_sends_the_headers_tab_as_its_connection_params(
    server: Server, session: AsyncSession, settings: Settings, browser: webdriver.Chrome
) -> None:
    # given GraphiQL with no key of its own, a viewer's key, and a draft campaign
    viewer = await create_api_key(settings, "viewer")
    campaign_id = await seed_campaign(session, 3)
    browser.get(f"{server.url}/graphql")
    browser.execute_script("window.localStorage.clear();")
    browser.get(f"{server.url}/graphql")
    wait = WebDriverWait(browser, 30, poll_frequency=0.05)
    editor = wait.until(
        ec.presence_of_element_located((By.CSS_SELECTOR, ".graphiql-query-editor .CodeMirror"))
    )
    _set_editor(browser, editor, SUBSCRIPTION)
    variables = browser.find_element(By.CSS_SELECTOR, ".graphiql-editor-tool .CodeMirror")
    _set_editor(browser, variables, json.dumps({"id": str(campaign_id)}))
    headers = _headers_editor(browser)

    # when a key that is not valid is typed in the Headers tab, and the subscription run
    _set_editor(browser, headers, json.dumps({"Authorization": "Bearer hk_not-a-real-key"}))
    refused = _run_text(browser, wait)

    # and then the viewer's key is typed there, and the subscription run again
    _set_editor(browser, headers, json.dumps({"Authorization": f"Bearer {viewer}"}))
    answered = _run_text(browser, wait)

    # then each run's socket carried the key the tab held when it started: refused as
    # unauthorized (4401), then the campaign's progress
    assert "4401" in refused, refused
    assert json.loads(answered)["data"] == {
        "campaignProgress": {"status": "DRAFT", "stats": {"total": 0, "sent": 0}}
    }


def _run_text(browser: webdriver.Chrome, wait: WebDriverWait) -> str:
    """Run the editor's operation; the result pane's text once it shows something."""
    browser.execute_script(
        "var cm = document.querySelector('.result-window .CodeMirror');"
        "if (cm) cm.CodeMirror.setValue('');"
    )
    browser.find_element(By.CSS_SELECTOR, "button.graphiql-execute-button").click()

    def shown(driver: webdriver.Chrome) -> str | bool:
        text: str = driver.execute_script(
            "var cm = document.querySelector('.result-window .CodeMirror');"
            "return cm ? cm.CodeMirror.getValue() : '';"
        )
        return text if text.strip() else False

    return str(wait.until(shown))


LEGACY_SOCKET = """
const done = arguments[arguments.length - 1];
const ws = new WebSocket(arguments[0], arguments[1]);
ws.onclose = (event) => done({code: event.code, reason: event.reason, protocol: ws.protocol});
"""


@pytest.mark.parametrize("protocol", ["graphql-ws", None])
def test_a_browser_is_told_why_its_subprotocol_is_refused(
    server: Server, browser: webdriver.Chrome, protocol: str | None
) -> None:
    # given a page of Herald's (its policy lets it open sockets to Herald)
    browser.get(f"{server.url}/graphql")
    url = server.url.replace("http://", "ws://", 1) + "/graphql"

    # when it opens a socket with the legacy subprotocol (or none)
    browser.set_script_timeout(20)
    closed = browser.execute_async_script(LEGACY_SOCKET, url, protocol or [])

    # then the browser sees the server's close code and reason, not a bare 1006
    assert closed["code"] == 4406, closed
    assert "use graphql-transport-ws" in closed["reason"]
    assert closed["protocol"] == (protocol or "")
