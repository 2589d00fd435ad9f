"""The console at `/ui`, in headless Chromium, against a real 3-node cluster that requires a
token. What the page does is checked from outside it, with curl; each view's screenshot
is saved (see the `screenshots` fixture).

The page is opened as `http://localhost:PORT` while the members advertise
`http://127.0.0.1:PORT`: its requests to the other members are cross-origin, as a user's are.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import orjson
import pytest
from selenium import webdriver
from selenium.common.exceptions import NoAlertPresentException, StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import WebDriverWait

from kvnode.cluster.supervisor import LocalCluster
from tests.integration.conftest import all_ready, assert_clean_logs, leader_of, make_cluster
from tests.integration.test_tls import Pki, make_pki, ready, serve_tls

pytestmark = pytest.mark.slow

TOKEN = "console-root-token"
HOSTILE = "<img src=x onerror=alert(1)>"
WAIT_SECONDS = 60  # a deadline for what the page must show, generous for a busy machine


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    local = make_cluster(tmp_path_factory.mktemp("console"), auth_token=TOKEN)
    yield local
    local.stop_all()
    assert_clean_logs(local)


def page_of(local: LocalCluster, index: int) -> str:
    """The console of node `index`, as a user on this machine types it."""
    return f"http://localhost:{urlsplit(local.urls[index]).port}"


def curl(method: str, url: str, data: bytes | None = None) -> tuple[int, bytes]:
    """One request with curl and the cluster's token: the status and the body."""
    command = ["curl", "-s", "-X", method, "-H", f"Authorization: Bearer {TOKEN}"]
    command += ["-o", "-", "-w", "\n%{http_code}", url]
    if data is not None:
        command += ["--data-binary", "@-"]
    done = subprocess.run(command, input=data, capture_output=True, check=True, timeout=30)
    body, _, status = done.stdout.rpartition(b"\n")
    return int(status), body


def key_url(local: LocalCluster, key: str, index: int = 0) -> str:
    return f"{local.urls[index]}/kv/{quote(key, safe='')}"


def wait_for(browser: webdriver.Chrome, condition: Callable[[Any], Any], what: str) -> Any:
    """Until `condition(browser)` is truthy; a node re-drawing a table mid-look is retried."""

    def probe(driver: Any) -> Any:
        try:
            return condition(driver)
        except StaleElementReferenceException:
            return False

    return WebDriverWait(browser, WAIT_SECONDS, poll_frequency=0.1).until(probe, what)


def text_of(browser: webdriver.Chrome, selector: str) -> str:
    return str(browser.find_element(By.CSS_SELECTOR, selector).text)


def open_console(
    browser: webdriver.Chrome, page: str, view: str, *, token: str | None = TOKEN
) -> None:
    """A fresh page (nothing kept from an earlier test), logged in unless `token` is None."""
    browser.get("about:blank")
    browser.get(f"{page}/ui#{view}")
    wait_for(browser, lambda d: text_of(d, ".tab.active").strip(), "the page to start")
    if token is not None:
        browser.find_element(By.ID, "token").send_keys(token)
        browser.find_element(By.CSS_SELECTOR, "#login button").click()
        wait_for(browser, lambda d: "token in use" in text_of(d, "#login-state"), "the login")


def member_rows(browser: webdriver.Chrome) -> dict[str, WebElement]:
    rows = browser.find_elements(By.CSS_SELECTOR, "#members tbody tr")
    return {str(row.get_attribute("data-member")): row for row in rows}


def health(row: WebElement) -> str:
    return str(row.find_elements(By.TAG_NAME, "td")[-1].text)


def fill(browser: webdriver.Chrome, element_id: str, text: str) -> None:
    field = browser.find_element(By.ID, element_id)
    field.clear()
    field.send_keys(text)


def message(browser: webdriver.Chrome) -> str:
    return text_of(browser, "#message")


def assert_no_script_ran(browser: webdriver.Chrome) -> None:
    """No element or dialog came out of a key or a value: everything was shown as text."""
    assert browser.find_elements(By.TAG_NAME, "img") == []
    assert browser.find_elements(By.CSS_SELECTOR, "main script") == []
    with pytest.raises(NoAlertPresentException):
        browser.switch_to.alert.text  # noqa: B018 - reading it is the check


def restart(local: LocalCluster, index: int) -> None:
    local.start(index)
    asyncio.run(all_ready(local))


# -- cluster --------------------------------------------------------------------------


def test_the_cluster_view_lists_the_members_and_shows_a_killed_node_as_down(
    browser: webdriver.Chrome, cluster: LocalCluster, screenshots: Path
) -> None:
    open_console(browser, page_of(cluster, 0), "cluster")
    names = {node.node_id for node in cluster.nodes}

    def all_up(driver: Any) -> bool:
        rows = member_rows(driver)
        return set(rows) == names and all(health(row) == "up" for row in rows.values())

    wait_for(browser, all_up, "three members, each up")
    leader = asyncio.run(leader_of(cluster))
    leader_rows = browser.find_elements(By.CSS_SELECTOR, "#members tbody tr.leader")
    assert [row.get_attribute("data-member") for row in leader_rows] == [
        cluster.nodes[leader].node_id
    ]
    victim = next(i for i in range(1, len(cluster.nodes)) if i != leader)
    victim_id = cluster.nodes[victim].node_id
    cluster.kill(victim)
    try:
        wait_for(
            browser,
            lambda d: (
                health(member_rows(d)[victim_id]) == "down"
                and "down" in str(member_rows(d)[victim_id].get_attribute("class"))
            ),
            f"{victim_id} shown as down",
        )
        browser.save_screenshot(str(screenshots / "cluster.png"))
    finally:
        restart(cluster, victim)
    wait_for(browser, all_up, f"{victim_id} shown as up again")


# -- keys -----------------------------------------------------------------------------


def test_without_the_token_the_page_says_it_needs_one(
    browser: webdriver.Chrome, cluster: LocalCluster
) -> None:
    open_console(browser, page_of(cluster, 0), "keys", token=None)
    wait_for(browser, lambda d: "needs a token" in message(d), "the page to ask for a token")
    assert browser.find_elements(By.CSS_SELECTOR, "#listing tbody tr") == []


def test_a_token_limited_to_a_prefix_works_within_it_only(
    browser: webdriver.Chrome, cluster: LocalCluster
) -> None:
    scoped = "team-token-for-the-console"
    status, body = curl(
        "POST",
        f"{cluster.urls[0]}/auth/tokens",
        b'{"role": "readwrite", "prefixes": ["team/"], "token": "%s"}' % scoped.encode(),
    )
    assert status == 201, body
    assert curl("PUT", key_url(cluster, "team/doc"), b"ours")[0] == 201
    open_console(browser, page_of(cluster, 0), "keys", token=scoped)
    wait_for(browser, lambda d: message(d).startswith("forbidden (403)"), "the root refused")
    fill(browser, "goto-prefix", "team/")
    browser.find_element(By.CSS_SELECTOR, "#goto button").click()
    open_key(browser, "", "team/doc")
    assert text_of(browser, "#detail-value") == "ours"

    browser.find_element(By.ID, "new-key").click()
    fill(browser, "editor-key", "elsewhere/x")
    fill(browser, "editor-value", "no")
    browser.find_element(By.ID, "save").click()
    wait_for(browser, lambda d: message(d).startswith("forbidden (403)"), "the write refused")
    assert curl("GET", key_url(cluster, "elsewhere/x"))[0] == 404


def test_a_key_is_created_edited_and_deleted_through_the_page(
    browser: webdriver.Chrome, cluster: LocalCluster, screenshots: Path
) -> None:
    key = "console/greeting"
    open_console(browser, page_of(cluster, 0), "keys")
    browser.find_element(By.ID, "new-key").click()
    fill(browser, "editor-key", key)
    fill(browser, "editor-value", "hello")
    fill(browser, "editor-ttl", "600")
    browser.find_element(By.ID, "save").click()
    wait_for(browser, lambda d: message(d) == f"Saved {key}.", "the key to be created")
    assert curl("GET", key_url(cluster, key, 1)) == (200, b"hello")

    wait_for(browser, lambda d: text_of(d, "#detail-key") == key, "the new key to be shown")
    browser.find_element(By.ID, "edit").click()
    fill(browser, "editor-value", "hello again")
    browser.find_element(By.ID, "save").click()
    wait_for(browser, lambda d: text_of(d, "#detail-value") == "hello again", "the edit shown")
    assert curl("GET", key_url(cluster, key, 2)) == (200, b"hello again")
    assert text_of(browser, "#detail-ttl").endswith(" s")  # its TTL, counting down
    browser.save_screenshot(str(screenshots / "keys.png"))

    browser.find_element(By.ID, "delete").click()
    wait_for(browser, lambda d: text_of(d, "#confirm-key") == key, "the confirmation")
    assert curl("GET", key_url(cluster, key))[0] == 200, "nothing is deleted before confirming"
    browser.find_element(By.ID, "confirm-yes").click()
    wait_for(browser, lambda d: message(d) == f"Deleted {key}.", "the key to be deleted")
    assert curl("GET", key_url(cluster, key))[0] == 404


def open_key(browser: webdriver.Chrome, folder: str, name: str) -> None:
    """Navigate the listing to `folder` (one level under the root) and open `name`."""
    if folder:
        wait_for(
            browser,
            lambda d: d.find_element(By.CSS_SELECTOR, f'#listing tr[data-folder="{folder}"]'),
            f"the folder {folder}",
        )
        browser.find_element(By.CSS_SELECTOR, f'#listing tr[data-folder="{folder}"] button').click()

    def the_key(driver: Any) -> WebElement | None:
        for row in driver.find_elements(By.CSS_SELECTOR, "#listing tbody tr"):
            if row.get_attribute("data-key") == folder + name:
                return row  # type: ignore[no-any-return]
        return None

    row = wait_for(browser, the_key, f"the key {folder + name}")
    row.find_element(By.TAG_NAME, "button").click()
    wait_for(browser, lambda d: text_of(d, "#detail-key") == folder + name, "the key's details")


def test_an_edit_after_a_concurrent_change_is_reported_not_written(
    browser: webdriver.Chrome, cluster: LocalCluster
) -> None:
    key = "conflict/doc"
    assert curl("PUT", key_url(cluster, key), b"first")[0] == 201
    open_console(browser, page_of(cluster, 0), "keys")
    open_key(browser, "conflict/", "doc")
    assert text_of(browser, "#detail-value") == "first"
    assert curl("PUT", key_url(cluster, key, 1), b"theirs")[0] == 200  # meanwhile

    browser.find_element(By.ID, "edit").click()
    fill(browser, "editor-value", "mine")
    browser.find_element(By.ID, "save").click()
    wait_for(browser, lambda d: message(d).startswith("Conflict"), "the conflict")
    assert curl("GET", key_url(cluster, key)) == (200, b"theirs")

    browser.find_element(By.ID, "cancel-edit").click()
    browser.find_element(By.ID, "delete").click()
    browser.find_element(By.ID, "confirm-yes").click()
    wait_for(browser, lambda d: "Nothing was deleted" in message(d), "the delete's conflict")
    assert curl("GET", key_url(cluster, key)) == (200, b"theirs")


def test_markup_in_a_key_and_its_value_is_shown_as_text(
    browser: webdriver.Chrome, cluster: LocalCluster
) -> None:
    value = "<script>alert(2)</script><b>bold</b>"
    assert curl("PUT", key_url(cluster, HOSTILE), value.encode())[0] == 201
    assert curl("PUT", key_url(cluster, f"tricky/{HOSTILE}"), b"\x00\xff binary")[0] == 201
    open_console(browser, page_of(cluster, 0), "keys")
    open_key(browser, "", HOSTILE)
    assert text_of(browser, "#detail-value") == value
    assert_no_script_ran(browser)

    browser.find_element(By.CSS_SELECTOR, "#crumbs button").click()  # back to the root
    open_key(browser, "tricky/", HOSTILE)
    assert text_of(browser, "#detail-hex").startswith("00000000  00 ff 20 62")
    assert text_of(browser, "#detail-base64") == "AP8gYmluYXJ5"
    assert_no_script_ran(browser)


# -- watch ----------------------------------------------------------------------------


def event_keys(browser: webdriver.Chrome) -> list[str]:
    rows = browser.find_elements(By.CSS_SELECTOR, "#events tbody tr")
    return [str(row.find_elements(By.TAG_NAME, "td")[3].text) for row in rows]


def put_anywhere(local: LocalCluster, key: str, value: bytes, skip: int) -> None:
    """Write through any live node but `skip`, retrying while a new leader is elected."""

    def written(_driver: Any = None) -> bool:
        for index in range(len(local.nodes)):
            if index != skip and curl("PUT", key_url(local, key, index), value)[0] in (200, 201):
                return True
        return False

    WebDriverWait(None, WAIT_SECONDS, poll_frequency=0.5).until(written, f"writing {key}")


def test_the_watch_pane_shows_changes_and_resumes_on_another_node_when_its_node_dies(
    browser: webdriver.Chrome, cluster: LocalCluster, screenshots: Path
) -> None:
    page = 1  # the node serving the page, and the watch's first node
    open_console(browser, page_of(cluster, page), "watch")
    fill(browser, "watch-target", "live/")
    browser.find_element(By.ID, "watch-prefix").click()
    browser.find_element(By.ID, "watch-start").click()
    wait_for(browser, lambda d: "Watching" in text_of(d, "#watch-state"), "the watch to start")
    assert curl("PUT", key_url(cluster, "live/one"), b"1")[0] == 201
    wait_for(browser, lambda d: event_keys(d) == ["live/one"], "the change made with curl")

    page_node = cluster.nodes[page].node_id
    cluster.kill(page)
    try:
        put_anywhere(cluster, "live/two", b"2", skip=page)
        wait_for(browser, lambda d: event_keys(d) == ["live/two", "live/one"], "the later change")
        state = text_of(browser, "#watch-state")
        assert "Watching" in state and page_node not in state, state
        browser.save_screenshot(str(screenshots / "watch.png"))
    finally:
        restart(cluster, page)


# -- leases and locks -----------------------------------------------------------------


def test_leases_and_lock_queues_are_listed(
    browser: webdriver.Chrome, cluster: LocalCluster, screenshots: Path
) -> None:
    leases = []
    for _ in range(2):
        status, body = curl("POST", f"{cluster.urls[0]}/lease?ttl=120")
        assert status == 201, body
        leases.append(orjson.loads(body)["id"])
    for lease in leases:  # two contenders for one lock, in this order, as a Lock queues them
        url = key_url(cluster, f"locks/nightly/{lease}") + f"?lease={lease}"
        assert curl("PUT", url, b"")[0] == 201
    open_console(browser, page_of(cluster, 0), "coordination")
    holder, waiter = leases

    def queue(driver: Any) -> list[str]:
        row = driver.find_element(By.CSS_SELECTOR, '#locks tr[data-lock="nightly"]')
        return [str(cell.text) for cell in row.find_elements(By.TAG_NAME, "td")]

    cells = wait_for(browser, queue, "the lock's queue")
    assert cells[0] == "lock" and cells[1] == "nightly"
    assert cells[2].startswith(f"lease {holder},") and cells[3].startswith(f"lease {waiter} ")

    def lease_row(driver: Any) -> str:
        row = driver.find_element(By.CSS_SELECTOR, f'#leases tr[data-lease="{holder}"]')
        return str(row.text)

    assert f"locks/nightly/{holder}" in wait_for(browser, lease_row, "the holder's lease")
    browser.save_screenshot(str(screenshots / "leases-and-locks.png"))


# -- HTTPS ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


def test_the_console_works_over_https(browser: webdriver.Chrome, tmp_path: Path, pki: Pki) -> None:
    with serve_tls(tmp_path, pki, mutual=False) as endpoint:
        asyncio.run(ready(endpoint, pki, with_cert=False))
        page = f"https://{endpoint}"
        open_console(browser, page, "cluster", token=None)
        wait_for(
            browser,
            lambda d: [health(row) for row in member_rows(d).values()] == ["up"],
            "the one member, up, read over HTTPS",
        )
        open_console(browser, page, "keys", token=None)
        browser.find_element(By.ID, "new-key").click()
        fill(browser, "editor-key", "secure/page")
        fill(browser, "editor-value", "over tls")
        browser.find_element(By.ID, "save").click()
        wait_for(browser, lambda d: message(d) == "Saved secure/page.", "the key to be created")
        done = subprocess.run(
            ["curl", "-s", "--cacert", str(pki.ca), f"{page}/kv/secure/page"],
            capture_output=True,
            check=True,
            timeout=30,
        )
        assert done.stdout == b"over tls"


# -- a chaos report ---------------------------------------------------------------------


def test_a_chaos_report_shows_its_plots_with_the_fault_bands(
    browser: webdriver.Chrome, tmp_path: Path, screenshots: Path
) -> None:
    """A short real run (the leader killed), drawn by `kvnode chaos --report`."""
    report = tmp_path / "report"
    run = subprocess.run(
        [
            *(sys.executable, "-m", "kvnode", "chaos", "--duration", "8"),
            *("--nemesis", "kill-leader", "--clients", "4", "--watchers", "1"),
            *("--report", str(report)),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    browser.get((report / "index.html").as_uri())
    assert text_of(browser, "h1") == "kvnode chaos run: VALID"
    plots = browser.find_elements(By.CSS_SELECTOR, "svg")
    assert len(plots) >= 1 and all(plot.size["width"] > 300 for plot in plots)
    bands = browser.find_elements(By.CSS_SELECTOR, "svg [id='fault-kill']")
    assert bands, "a band for the killed leader"
    assert all(band.size["width"] > 0 and band.size["height"] > 0 for band in bands)
    assert browser.find_elements(By.CSS_SELECTOR, "svg [id^='leader-change']")
    browser.save_screenshot(str(screenshots / "chaos-report.png"))
