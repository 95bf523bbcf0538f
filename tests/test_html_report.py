"""``archsearch report``: one self-contained HTML page per search directory (html_report.py).

Three real tiny searches (a digits evolution run, a one-shot DARTS run, an nsga2 run with
latency) are made once per module; the page of each is checked as text and, when Debian's
``chromium`` and ``chromium-driver`` are installed (``.ci/run`` installs them), opened in a real
headless browser: no console error, every section there, every plot rendered, a screenshot
saved, and the trials table sorts on a click.
"""

from __future__ import annotations

import os
import re
import shutil
import time

import numpy as np
import pytest

import archsearch
from archsearch import html_report
from archsearch.config import Config
from archsearch.core import Fidelity, TrialState
from archsearch.errors import ArchsearchError, JournalError
from archsearch.html_report import SECTIONS, LiveReport, write_report
from archsearch.storage.journal import Journal
from conftest import TINY, tiny_config, tree_digest

pytestmark = pytest.mark.usefixtures("one_thread")


# -- runs --------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("runs")
    try:
        out = {}
        out["evolution"] = str(root / "evolution")
        archsearch.run_search(tiny_config(strategy={"name": "evolution"}, budget={"trials": 6}), out["evolution"],
                              quiet=True)
        out["darts"] = str(root / "darts")
        darts = Config.from_dict({**TINY, "space": {"name": "darts", "channels": 4, "cells": 2, "nodes": 2},
                                  "strategy": {"name": "darts", "epochs": 2, "batch_size": 32}})
        archsearch.run_search(darts, out["darts"], quiet=True)
        out["nsga2"] = str(root / "nsga2")
        archsearch.run_search(tiny_config(strategy={"name": "nsga2", "population_size": 2}, budget={"trials": 4},
                                          evaluator={"latency": True, "latency_repeats": 2}), out["nsga2"],
                              quiet=True)
    finally:
        torch.set_num_threads(before)
    return out


def read(path: str) -> str:
    with open(path, encoding="utf-8") as fh:
        return fh.read()


EXTERNAL = re.compile(r"""(?:src|href|xlink:href|action)\s*=\s*["']?\s*(?:https?:)?//""", re.I)


def synthetic_run(directory: str, rewards: list[float], failed: int = 0, strategy: str = "random") -> str:
    """A search directory written through the journal API: one trial per reward (chain space, with
    a 3-epoch learning curve each), then ``failed`` failed trials."""
    from archsearch.spaces import create_space

    os.makedirs(directory)
    config = tiny_config(strategy={"name": strategy}, budget={"trials": max(1, len(rewards) + failed)})
    space = create_space("chain", **config.options("space"))
    journal = Journal(os.path.join(directory, Journal.FILENAME), create=True, lock=True,
                      meta={"config": config.to_dict(), "created_at": time.time() - 100.0,
                            "data": {"name": "digits", "input_shape": [1, 8, 8], "num_classes": 10,
                                     "train": 1079, "valid": 359, "test": 359}})
    rng = np.random.default_rng(0)
    try:
        for reward in rewards:
            n = journal.create_trial(space.sample(rng), Fidelity(epochs=3), None)
            journal.mark_running(n)
            curve = [{"epoch": float(e), "valid_acc": reward * e / 3, "train_loss": 2.0 / e} for e in (1, 2, 3)]
            journal.finish_trial(n, TrialState.COMPLETE, {"valid_acc": reward, "params": 1000.0 + n,
                                                          "flops": 5e4 + n}, reward, None, 1.5, curve)
        for _ in range(failed):
            n = journal.create_trial(space.sample(rng), Fidelity(epochs=3), None)
            journal.mark_running(n)
            journal.finish_trial(n, TrialState.FAILED, {}, None, "RuntimeError: out of memory\n  traceback line",
                                 0.2, [])
        journal.set_meta("elapsed", 100.0)
    finally:
        journal.close()
    return directory


# -- the page as text --------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["evolution", "darts", "nsga2"])
def test_every_run_gets_a_self_contained_page_with_every_section(runs, name, tmp_path):
    run = runs[name]
    before = tree_digest(run)
    out = str(tmp_path / "report.html")
    assert write_report(run, out) == out
    assert tree_digest(run) == before  # with out given nothing is written into the run directory
    html = read(out)
    assert len(html.encode()) < 2_000_000
    for section in SECTIONS:
        assert f'id="{section}"' in html, section
    assert not EXTERNAL.search(html), EXTERNAL.search(html).group(0)
    assert "http://" not in html and "https://" not in html
    assert "location.reload" not in html and 'data-live="0"' in html and "http-equiv=\"refresh\"" not in html
    assert html.count('<svg class="plot"') >= 3  # diagram, search curve, learning curves (+ pareto, one-shot)
    assert 'data-status="finished"' in html
    assert "CPU latency" in html and re.search(r"\d ms", html)
    if name == "darts":
        assert 'data-plot="oneshot"' in html and "one-shot" in html and "normal=" in html
        assert "not a one-shot search" not in html
    else:
        assert "not a one-shot search" in html
    if name == "nsga2":
        assert 'data-plot="pareto"' in html and 'id="pareto-table"' in html
        assert "measured during the search" in html  # the search's own latency_b1
    else:
        assert "single-objective search: no Pareto front" in html
    assert "the search was not calibrated" in html
    assert "no trial failed" in html
    # final training is off in these runs: no predict/export commands, the reason instead
    assert "final.enabled=false" in html and "archsearch predict" not in html


def test_default_out_is_report_html_in_the_run_and_live_pages_reload(runs, tmp_path):
    run = str(tmp_path / "run")
    shutil.copytree(runs["evolution"], run)
    path = write_report(run, live=True)
    assert path == os.path.join(run, "report.html")
    html = read(path)
    assert 'data-live="1"' in html and "location.reload" in html and 'data-status="running"' in html
    assert "the search is running" in html
    write_report(run)
    html = read(path)
    assert "location.reload" not in html and "the search is running" not in html
    assert not [f for f in os.listdir(run) if f.endswith(".tmp")]


def test_failed_trials_outliers_and_a_large_search_stay_small(tmp_path):
    rewards = [0.9 + 0.0003 * i for i in range(295)] + [0.05, 0.1]  # two outliers far below the bulk
    run = synthetic_run(str(tmp_path / "big"), rewards, failed=3)
    out = write_report(run, str(tmp_path / "big.html"))
    html = read(out)
    assert len(html.encode()) < 2_000_000
    assert html.count(" data-trial=") == 50 and "247 more are not" in html
    assert "2 below the range (outliers)" in html and "3 failed" in html
    assert html.count("out of memory") >= 3 and "full error" in html
    assert "from the journal (config.yaml is missing)" in html  # falls back to the journal's config
    assert "1,079 train, 359 valid, 359 test" in html


def test_a_page_without_any_finished_trial(tmp_path):
    run = synthetic_run(str(tmp_path / "empty"), [])
    html = read(write_report(run, str(tmp_path / "empty.html")))
    for section in SECTIONS:
        assert f'id="{section}"' in html
    assert "no complete trial yet" in html and "no finished trial yet" in html


def test_the_diagram_is_embedded_and_a_failing_one_is_shown_not_fatal(runs, tmp_path, monkeypatch):
    from archsearch.spaces import SPACES

    html = read(write_report(runs["evolution"], str(tmp_path / "a.html")))
    assert 'data-plot="diagram"' in html and "cannot draw" not in html

    def broken(self, arch):
        raise RuntimeError("no picture today")

    monkeypatch.setattr(SPACES.get("chain"), "diagram", broken)
    html = read(write_report(runs["evolution"], str(tmp_path / "b.html")))
    assert "cannot draw the diagram: no picture today" in html and 'data-plot="diagram"' not in html
    for section in SECTIONS:
        assert f'id="{section}"' in html


# -- bad input ---------------------------------------------------------------------------------
def _one_line_error(excinfo) -> str:
    message = str(excinfo.value)
    assert message and "\n" not in message
    return message


def test_a_directory_that_is_not_a_search(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("hello")
    before = tree_digest(str(empty))
    with pytest.raises(JournalError) as excinfo:
        write_report(str(empty))
    assert "not a search directory" in _one_line_error(excinfo)
    assert tree_digest(str(empty)) == before
    with pytest.raises(JournalError) as excinfo:
        write_report(str(tmp_path / "missing"), str(tmp_path / "r.html"))
    assert "not a search directory" in _one_line_error(excinfo)
    assert not (tmp_path / "r.html").exists()


def test_a_corrupt_journal_leaves_the_directory_untouched(tmp_path):
    run = tmp_path / "corrupt"
    run.mkdir()
    (run / "journal.sqlite").write_bytes(os.urandom(1024) + b"garbage" * 200)
    (run / "config.yaml").write_text("seed: 0\n")
    before = tree_digest(str(run))
    for out in (None, str(tmp_path / "r.html")):
        with pytest.raises(JournalError) as excinfo:
            write_report(str(run), out)
        assert "journal" in _one_line_error(excinfo)
        assert tree_digest(str(run)) == before
    assert not (tmp_path / "r.html").exists()


def test_an_unwritable_out(runs, tmp_path):
    run = runs["evolution"]
    before = tree_digest(run)
    blocker = tmp_path / "file"
    blocker.write_text("x")
    for out, words in ((str(blocker / "report.html"), "is not a directory"),
                       (str(tmp_path / "no" / "such" / "report.html"), "does not exist"),
                       (str(tmp_path), "is a directory")):
        with pytest.raises(ArchsearchError) as excinfo:
            write_report(run, out)
        message = _one_line_error(excinfo)
        assert "cannot write the report" in message and words in message, message
        assert tree_digest(run) == before


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only directories")
def test_a_read_only_out_directory(runs, tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        with pytest.raises(ArchsearchError) as excinfo:
            write_report(runs["evolution"], str(locked / "report.html"))
        assert "cannot write the report" in _one_line_error(excinfo)
        assert os.listdir(locked) == []
    finally:
        locked.chmod(0o700)


# -- the live report ---------------------------------------------------------------------------
def test_live_report_throttles_and_writes_the_final_page_on_close(runs, tmp_path):
    run = str(tmp_path / "run")
    shutil.copytree(runs["evolution"], run)
    live = LiveReport(run)
    live.update()  # nothing measured yet: the first page waits until 2% of the time pays for it and the final
    assert live.writes == 0
    live._created -= 2 * html_report.FIRST_COST / html_report.SHARE
    live.update()
    assert live.writes == 1 and live.last_cost > 0
    assert "location.reload" in read(os.path.join(run, "report.html"))
    live.update()  # right after a write: it costs more than 2% of the time since, so no write
    assert live.writes == 1
    live.last_cost, live.seconds = 0.0, 0.0  # a free write is always worth it
    live.update()
    assert live.writes == 2
    live.last_cost, live.seconds = 0.0, 1e6  # ... unless earlier writes spent the budget already
    live.update()
    assert live.writes == 2
    live.last_cost = 1e6
    live.update(force=True)
    assert live.writes == 3
    live.close()
    assert live.writes == 4 and live.seconds > 0
    html = read(os.path.join(run, "report.html"))
    assert "location.reload" not in html and 'data-status="finished"' in html


def test_live_report_never_raises_and_warns_once(tmp_path):
    warnings: list[str] = []
    live = LiveReport(str(tmp_path / "nothing-here"), warn=warnings.append)
    live.update()
    live.update(force=True)
    live.close()
    assert len(warnings) == 1 and "\n" not in warnings[0]
    assert warnings[0].startswith("could not write") and "not a search directory" in warnings[0]
    assert not (tmp_path / "nothing-here").exists()

    def broken(message: str) -> None:
        raise RuntimeError("the warning callback itself fails")

    LiveReport(str(tmp_path / "nothing-here"), warn=broken).update()  # still no exception


# -- in a real browser -------------------------------------------------------------------------
def _binary(env: str, *names: str) -> str | None:
    if os.environ.get(env):  # an explicit path: used only if it is there
        return os.environ[env] if os.access(os.environ[env], os.X_OK) else None
    for name in names:
        found = shutil.which(name)
        if found:
            return found
    return None


@pytest.fixture(scope="module")
def browser():
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (pip install -e '.[dev]')")
    chromium = _binary("CHROMIUM", "chromium", "chromium-browser")
    driver_path = _binary("CHROMEDRIVER", "chromedriver")
    if not chromium or not driver_path:
        pytest.skip("chromium and chromedriver are not installed (apt-get install -y chromium chromium-driver; "
                    ".ci/run installs them when it can)")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1280,1000", "--allow-file-access-from-files"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=webdriver.ChromeService(executable_path=driver_path), options=options)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.mark.parametrize("name", ["evolution", "darts", "nsga2"])
def test_the_page_renders_in_headless_chromium(runs, browser, name, tmp_path):
    from selenium.webdriver.common.by import By

    out = tmp_path / "report.html"
    write_report(runs[name], str(out))
    browser.get_log("browser")  # drop anything from an earlier page
    browser.get(out.as_uri())
    assert browser.execute_script("return document.readyState") == "complete"
    assert browser.title.startswith("archsearch report")

    for section in SECTIONS:
        assert browser.find_elements(By.ID, section), f"section #{section} missing"
    sizes = browser.execute_script("""
        return Array.from(document.querySelectorAll('svg.plot, img')).map(function (e) {
            var r = e.getBoundingClientRect();
            return [e.tagName.toLowerCase(), e.getAttribute('data-plot'), r.width, r.height,
                    e.tagName.toLowerCase() === 'img' ? e.naturalWidth : -1,
                    e.querySelectorAll ? e.querySelectorAll('path, use, text, polygon').length : 0];
        });""")
    assert len(sizes) >= 3, sizes
    for tag, plot, width, height, natural, shapes in sizes:
        assert width > 50 and height > 30, (plot, width, height)
        assert natural != 0, plot
        assert tag == "img" or shapes > 5, (plot, shapes)
    urls = browser.execute_script("""
        return Array.from(document.querySelectorAll('[src], [href]')).map(function (e) {
            return e.getAttribute('src') || e.getAttribute('href'); });""")
    assert not [u for u in urls if re.match(r"(https?:)?//", u)], urls

    table = browser.find_element(By.ID, "trials-table")
    order = [int(r.get_attribute("data-trial")) for r in table.find_elements(By.CSS_SELECTOR, "tbody tr")]
    table.find_elements(By.CSS_SELECTOR, "thead th")[1].click()  # "trial": ascending
    clicked = [int(r.get_attribute("data-trial")) for r in table.find_elements(By.CSS_SELECTOR, "tbody tr")]
    assert clicked == sorted(order)
    assert clicked != order or order == sorted(order)
    table.find_elements(By.CSS_SELECTOR, "thead th")[1].click()  # again: descending
    assert [int(r.get_attribute("data-trial")) for r in table.find_elements(By.CSS_SELECTOR, "tbody tr")] == \
        sorted(order, reverse=True)
    table.find_elements(By.CSS_SELECTOR, "thead th")[3].click()  # params, numerically ("9,922" > "178")
    params = [float(c.get_attribute("data-sort")) for c in table.find_elements(By.CSS_SELECTOR, "tbody td:nth-child(4)")]
    assert params == sorted(params)

    height = browser.execute_script("return document.documentElement.scrollHeight")
    browser.set_window_size(1280, min(max(height, 800), 8000))
    browser.execute_script("window.scrollTo(0, 0)")
    shot = tmp_path / f"report-{name}.png"
    assert browser.save_screenshot(str(shot)) and shot.stat().st_size > 10_000

    errors = [e for e in browser.get_log("browser") if e.get("level") == "SEVERE"]
    assert not errors, errors
