"""The viewer in Debian's headless chromium: list, one episode, token layers, no console errors.

Needs `apt-get install chromium chromium-driver` (scripts/setup_system.sh) and selenium
(dev extra). The screenshots go to pytest's tmp dir, never into the repo.
"""

import shutil
import threading

import pytest

from tirgym.view import build_view, make_server

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1400,900",
)


@pytest.fixture(scope="module")
def driver(tmp_path_factory):
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    if not (shutil.which(CHROMIUM) and shutil.which(CHROMEDRIVER)):
        pytest.skip("Debian chromium/chromium-driver not installed (scripts/setup_system.sh)")
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in FLAGS:
        opts.add_argument(flag)
    opts.add_argument(f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}")
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    drv = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    drv.implicitly_wait(5)
    yield drv
    drv.quit()


@pytest.fixture(scope="module")
def served(tiny_run):
    """The page for the tiny run, served the way `tirgym view` serves it."""
    html, data = build_view(tiny_run)
    server = make_server(html)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/", data
    server.shutdown()
    server.server_close()


def _errors(driver):
    return [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]


def test_list_episode_token_layers_and_group(driver, served, tmp_path):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    url, data = served
    n = data.count
    driver.get(url)
    assert driver.find_element(By.CSS_SELECTOR, "body[data-ready='1'][data-loaded='1']")
    assert driver.find_element(By.ID, "ep-count").text == f"{n} of {n} episodes"
    rows = driver.find_elements(By.CSS_SELECTOR, "tr.ep-row")
    assert len(rows) == n

    rows[1].click()
    head = driver.find_element(By.ID, "ep-head").text
    assert f"#{1}" in head and "seed" in head
    assert driver.find_elements(By.CSS_SELECTOR, "#sub-conv .msg.assistant")
    assert "outcome reward" in driver.find_element(By.CSS_SELECTOR, "#sub-conv .outcome").text

    driver.find_element(By.CSS_SELECTOR, "#subtabs button[data-sub='tokens']").click()
    tokens = driver.find_elements(By.CSS_SELECTOR, "#token-view span.t")
    ep = data.details[1]
    import json

    d = json.loads(ep)
    assert len(tokens) == len(d["ids"])
    layer = Select(driver.find_element(By.ID, "layer"))
    assert {o.get_attribute("value") for o in layer.options if o.is_enabled()} == {
        "mask",
        "logprob",
        "advantage",
        "planning",
    }
    layer.select_by_value("advantage")
    assert "advantage the update used" in driver.find_element(By.ID, "legend").text
    first_trained = d["mask"][0][0]
    token = driver.find_element(By.CSS_SELECTOR, f"#token-view span.t[data-k='{first_trained}']")
    ActionChains(driver).move_to_element(token).perform()
    info = driver.find_element(By.ID, "token-info").text
    assert f"id {d['ids'][first_trained]}" in info and "advantage" in info
    assert f"advantage {d['adv'][0]:.4f}" in info  # adv holds the trained tokens' values
    shot = tmp_path / "token_view.png"
    assert driver.save_screenshot(str(shot)) and shot.stat().st_size > 10_000

    driver.find_element(By.CSS_SELECTOR, "#subtabs button[data-sub='group']").click()
    group_size = sum(
        g == d["group"] and s == data.index["step"][1]
        for g, s in zip(data.index["group"], data.index["step"], strict=True)
    )
    assert len(driver.find_elements(By.CSS_SELECTOR, "#sub-group .card")) == group_size

    driver.find_element(By.CSS_SELECTOR, "#tabs button[data-tab='curves']").click()
    assert driver.find_elements(By.CSS_SELECTOR, "#curves svg.chart")
    assert f"step {data.index['step'][1]}" in driver.find_element(By.ID, "curves").text
    assert _errors(driver) == []


def test_filters_search_and_paging(driver, served):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import Select

    url, data = served
    driver.get(url)
    assert driver.find_element(By.CSS_SELECTOR, "body[data-loaded='1']")
    n = data.count
    Select(driver.find_element(By.ID, "f-success")).select_by_value("1")
    wins = sum(data.index["success"])
    assert driver.find_element(By.ID, "ep-count").text == f"{wins} of {n} episodes"
    Select(driver.find_element(By.ID, "f-success")).select_by_value("")
    step = driver.find_element(By.ID, "f-smin")
    step.send_keys("2", Keys.TAB)
    at2 = sum(s >= 2 for s in data.index["step"])
    assert driver.find_element(By.ID, "ep-count").text == f"{at2} of {n} episodes"
    step.clear()
    step.send_keys(Keys.TAB)
    box = driver.find_element(By.ID, "f-search")
    box.send_keys("no such text anywhere", Keys.ENTER)
    assert driver.find_element(By.ID, "ep-count").text == f"0 of {n} episodes"
    box.clear()
    box.send_keys("Guess", Keys.ENTER)  # search is case-insensitive; every task says it
    assert driver.find_element(By.ID, "ep-count").text == f"{n} of {n} episodes"
    assert _errors(driver) == []


def test_eval_dir_shows_the_per_env_table(driver, tmp_path):
    from selenium.webdriver.common.by import By

    from tirgym.eval.runner import evaluate
    from tirgym.view import write_page

    evaluate(
        "random",
        envs=["tirgym/GuessNumber-v0"],
        env_kwargs={"low": 1, "high": 4},
        seeds=4,
        samples=2,
        out_dir=tmp_path / "ev",
        charts=False,
    )
    html, data = build_view(tmp_path / "ev")
    driver.get(write_page(html, tmp_path / "ev.html").as_uri())
    assert driver.find_element(By.CSS_SELECTOR, "body[data-loaded='1']")
    assert driver.find_element(By.ID, "ep-count").text == "8 of 8 episodes"
    driver.find_element(By.CSS_SELECTOR, "#tabs button[data-tab='eval']").click()
    table = driver.find_element(By.CSS_SELECTOR, "#eval-body table.grid")
    heads = [th.text for th in table.find_elements(By.TAG_NAME, "th")]
    assert heads[:5] == ["env", "episodes", "tasks", "success", "pass@1"] and "pass@2" in heads
    rows = table.find_elements(By.CSS_SELECTOR, "tbody tr")
    labels = [r.find_element(By.TAG_NAME, "td").text for r in rows]
    assert labels == [*data.meta["results"]["envs"], "overall"] and len(labels) == 2
    assert "[" in rows[-1].text  # each rate with its interval
    assert _errors(driver) == []


def test_search_matches_non_ascii_and_markup_text(driver, tmp_path):
    """The query is escaped as the page's JSON escapes the text (\\uXXXX, <), case folded."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from view_helpers import make_episode

    from tirgym.episode import save_jsonl
    from tirgym.view import write_page

    eps = [make_episode(i) for i in range(5)]
    eps.append(make_episode(5, text='Ünïcode <tag> "quoted" \\ 🎲'))
    save_jsonl(tmp_path / "e.jsonl", eps)
    html, _ = build_view(tmp_path / "e.jsonl")
    driver.get(write_page(html, tmp_path / "e.html").as_uri())
    assert driver.find_element(By.CSS_SELECTOR, "body[data-loaded='1']")
    box = driver.find_element(By.ID, "f-search")
    for query in ("ünïcode <TAG>", '"quoted" \\ 🎲'):
        box.clear()
        box.send_keys(query, Keys.ENTER)
        assert driver.find_element(By.ID, "ep-count").text == "1 of 6 episodes", query
        assert driver.find_element(By.CSS_SELECTOR, "tr.ep-row td").text == "5"
    assert _errors(driver) == []
