"""The HTML report (`--html`, the Action's .gpo/report.html) in a real headless Chromium (Debian's
package, tests/support/browser.py): made by real `eval` and `run --optimize` runs against the
scripted server and a real git repository; one row per case, the filters show the right rows, a
model's hostile output is text (no script runs, nothing loads), no secret is in the file, and a
screenshot is saved in the test's temp dir."""

from __future__ import annotations

import html
import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from lxml import html as lxml_html

from gpo_action.cli import main
from gpo_action.report.htmlreport import html_report
from tests.support.browser import HitCounter, chromium
from tests.support.projects import (CATEGORIES, TICKETS, git, local_run_repo, pull_request_branch,
                                    write_triage_eval)

KEY = "sk-html-test-key-5a7d3c"
CANARY = "canary-<&>-4f9e1b7d-secret"          # escaping would change it: it must be scrubbed before
PNG = b"\x89PNG\r\n\x1a\n"
CASES = {"paid twice": "billing", "app crashes": "bug", "dark mode?": "other", "refund please": "billing"}
HEAD = ("Please classify the support ticket as billing, bug, or other.\nTicket: {{ ticket }}\n"
        "Reply with the category only.\n")
TICKET_LIST = list(TICKETS)
ALWAYS_WRONG = TICKET_LIST[3]      # a billing ticket both prompts get wrong: failed, not flipped
HEAD_ONLY = TICKET_LIST[4]         # a bug ticket only the head prompt gets right: fixed (fail -> pass)


def hostile(url: str) -> str:
    return (f"<script>document.title = 'pwned'</script><img src=\"{url}/pixel.png\" onerror=\"document.title = "
            f"'pwned'\"><link rel=stylesheet href=\"{url}/style.css\"> and the key {CANARY}")


@pytest.fixture
def browser(tmp_path):
    driver = chromium(tmp_path)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def pixel():
    with HitCounter() as server:
        yield server


def rows(driver) -> list:
    from selenium.webdriver.common.by import By

    return driver.find_elements(By.CSS_SELECTOR, "tr.case")


def visible(driver) -> list[str]:
    return [row.get_attribute("data-case-id") for row in rows(driver) if row.is_displayed()]


def choose(driver, name: str) -> list[str]:
    from selenium.webdriver.common.by import By

    driver.find_element(By.CSS_SELECTOR, f'label[for="filter-{name}"]').click()
    return visible(driver)


def screenshot(driver, path: Path) -> None:
    driver.save_screenshot(str(path))
    data = path.read_bytes()
    assert data.startswith(PNG) and len(data) > 10_000, f"{path}: {len(data)} bytes"


def loads_nothing(page: str) -> None:
    """No element of the page names a resource outside it: only in-page links (#...)."""
    doc = lxml_html.fromstring(page)
    for element in doc.iter():
        for attribute in ("src", "href", "srcset", "action", "data", "poster", "formaction", "xlink:href"):
            value = element.get(attribute)
            assert value is None or (attribute == "href" and value.startswith("#")), \
                f"<{element.tag} {attribute}={value!r}>"
    assert not doc.xpath("//script | //img | //iframe | //object | //embed | //link")


def test_eval_html_shows_every_case_filters_them_and_runs_nothing_it_shows(tmp_path, openai_server, monkeypatch,
                                                                           browser, pixel):
    monkeypatch.setenv("GPO_TEST_KEY", KEY)
    monkeypatch.setenv("GPO_CANARY_API_KEY", CANARY)
    monkeypatch.chdir(tmp_path)
    write_triage_eval(tmp_path, openai_server.url, CASES)
    openai_server.add_rule(r"paid twice", "billing")
    openai_server.add_rule(r"app crashes", hostile(pixel.url))
    openai_server.add_rule(r"dark mode", "other")
    openai_server.enqueue_faults("ok", "ok", "ok", "401")            # the 401 quotes the bearer token
    result = CliRunner().invoke(main, ["eval", "--html", "out/report.html", "--json", "out/report.json"],
                                catch_exceptions=False)
    assert result.exit_code == 3, result.stderr                      # 1 error in 4 cases: past max_error_rate
    page = (tmp_path / "out/report.html").read_text(encoding="utf-8")
    [suite] = json.loads((tmp_path / "out/report.json").read_text(encoding="utf-8"))["suites"]
    ids = [c["case_id"] for c in suite["cases"]]
    failed = [c["case_id"] for c in suite["cases"] if c["error"] is None and not c["passed"]]
    errors = [c["case_id"] for c in suite["cases"] if c["error"] is not None]
    assert len(ids) == 4 and len(failed) == 1 and len(errors) == 1
    for secret in (CANARY, html.escape(CANARY), KEY):
        assert secret not in page
    loads_nothing(page)

    browser.get((tmp_path / "out/report.html").as_uri())
    assert browser.title == "gpo-action eval report"                 # the output's script did not run
    assert visible(browser) == ids                                   # one row per case, in order
    from selenium.webdriver.common.by import By

    [bad] = [r for r in rows(browser) if r.get_attribute("data-case-id") == failed[0]]
    shown = bad.find_element(By.CSS_SELECTOR, "pre.output").text
    assert shown == hostile(pixel.url).replace(CANARY, "***")        # the markup is shown as text
    assert "icontains" in bad.find_element(By.CSS_SELECTOR, "ul.reasons").text
    assert not browser.find_elements(By.CSS_SELECTOR, 'label[for="filter-flipped"]')   # no base: nothing flips
    assert choose(browser, "failed") == failed
    assert choose(browser, "errors") == errors
    [errored] = [r for r in rows(browser) if r.is_displayed()]
    [error] = [c["samples"][0] for c in suite["cases"] if c["error"] is not None]
    assert errored.find_element(By.CSS_SELECTOR, "pre.error").text == f"{error['error_type']}: {error['error']}"
    assert "***" in error["error"]                                   # the key the 401 quoted
    assert choose(browser, "all") == ids
    screenshot(browser, tmp_path / "eval.png")
    assert browser.execute_script("return performance.getEntriesByType('resource').length") == 0
    assert pixel.hits == [] and browser.title == "gpo-action eval report"


def reply(body, index):
    """The task model: the base prompt ("billing, bug or other") is right but for ALWAYS_WRONG and
    HEAD_ONLY; the head's ("billing, bug, or other") answers "other" to all but HEAD_ONLY, which it
    gets right. The optimizer (no ticket in its prompt) gets "other", which no check accepts."""
    text = body["messages"][-1]["content"]
    if "Ticket: " not in text:
        return "other"
    ticket = text.split("Ticket: ", 1)[1].split("\n", 1)[0]
    if ticket not in TICKETS:
        return "other"
    if "billing, bug or other" in text:                              # the base prompt
        return {ALWAYS_WRONG: "bug", HEAD_ONLY: "other"}.get(ticket, TICKETS[ticket])
    return TICKETS[ticket] if ticket == HEAD_ONLY else "other"


def test_run_html_sets_base_and_head_side_by_side_with_the_fix(tmp_path, openai_server, monkeypatch, browser):
    assert (TICKETS[ALWAYS_WRONG], TICKETS[HEAD_ONLY]) == (CATEGORIES[0], CATEGORIES[1])   # billing, bug
    repo = local_run_repo(tmp_path / "repo", openai_server, monkeypatch)
    openai_server.set_reply(reply)
    with open(repo / "gpo.yaml", "a", encoding="utf-8") as config:
        config.write("optimize: {steps: 1, candidates: 2}\n")
    git(repo, "commit", "-qam", "a small fix budget")
    pull_request_branch(repo, HEAD, "reword the prompt")
    monkeypatch.chdir(repo)
    result = CliRunner().invoke(main, ["run", "--base", "main", "--optimize", "--html", str(tmp_path / "run.html"),
                                       "--json", str(tmp_path / "run.json")], catch_exceptions=False)
    assert result.exit_code == 1, result.output                      # regressed
    data = json.loads((tmp_path / "run.json").read_text(encoding="utf-8"))
    base = {c["case_id"]: c for c in data["base_results"][0]["cases"]}
    head = {c["case_id"]: c for c in data["head_results"][0]["cases"]}
    assert list(base) == list(head) and len(head) == 30
    flipped = [i for i in head if base[i]["passed"] != head[i]["passed"]]
    failed = [i for i in head if not head[i]["passed"]]
    assert len(flipped) == len(failed) == 19 and set(flipped) != set(failed)
    [fix] = data["fixes"]["fixes"]
    assert fix["result"]["best"] != fix["result"]["original"] and fix["points"]
    page = (tmp_path / "run.html").read_text(encoding="utf-8")
    loads_nothing(page)

    browser.get((tmp_path / "run.html").as_uri())
    from selenium.webdriver.common.by import By

    assert browser.find_element(By.CSS_SELECTOR, "table.verdicts tbody tr td:nth-child(2)").text == "regressed"
    assert visible(browser) == list(head)                            # one row per case, both sides in it
    assert all(len(r.find_elements(By.CSS_SELECTOR, "td.side")) == 2 for r in rows(browser))
    broke = next(r for r in rows(browser) if r.get_attribute("data-case-id") == flipped[0])
    base_side, head_side = broke.find_elements(By.CSS_SELECTOR, "td.side")
    assert base_side.find_element(By.CSS_SELECTOR, ".status").text == "pass"
    assert head_side.find_element(By.CSS_SELECTOR, ".status").text == "fail"
    assert head_side.find_element(By.CSS_SELECTOR, "pre.output").text == head[flipped[0]]["samples"][0]["output"]
    assert base_side.find_element(By.CSS_SELECTOR, "pre.output").text == base[flipped[0]]["samples"][0]["output"]
    assert "icontains" in head_side.find_element(By.CSS_SELECTOR, "ul.reasons").text

    assert choose(browser, "flipped") == flipped
    assert choose(browser, "failed") == failed
    assert choose(browser, "errors") == []
    assert browser.find_element(By.CSS_SELECTOR, "section.suite p.none").is_displayed()
    assert choose(browser, "all") == list(head)

    # the fix: the word diff of the head prompt to the best one, and the trajectory chart
    deleted = "".join(text for kind, text in fix["result"]["diff"] if kind == "delete")
    inserted = "".join(text for kind, text in fix["result"]["diff"] if kind == "insert")
    diff = browser.find_element(By.CSS_SELECTOR, ".fix pre.diff")
    assert "".join(e.text for e in diff.find_elements(By.TAG_NAME, "del")) == deleted.strip()
    assert "".join(e.text for e in diff.find_elements(By.TAG_NAME, "ins")) == inserted.strip()
    chart = browser.find_element(By.CSS_SELECTOR, ".fix svg.trajectory")
    assert len(chart.find_elements(By.CSS_SELECTOR, "circle.best")) == len(fix["points"])
    assert len(chart.find_elements(By.CSS_SELECTOR, "rect.bar")) == sum(1 for p in fix["points"] if p[2] is not None)
    screenshot(browser, tmp_path / "run.png")


def test_a_report_of_no_known_kind_is_refused():
    with pytest.raises(ValueError, match="not a gpo-action report"):
        html_report({"kind": "optimize"})



def test_every_field_a_pull_request_or_a_model_writes_is_text_and_a_long_output_is_cut():
    from gpo_action.report.htmlreport import TEXT_CHARS
    from gpo_action.report.jsonreport import eval_report
    from gpo_action.results import CaseResult, Check, SampleResult, SuiteResult

    evil = "<script>alert(1)</script>\x00\x1b[31m"
    long = "y" * (TEXT_CHARS * 2)
    samples = (SampleResult(evil, 0.0, False, (Check("equals", False, 0.0, f"reason {evil}"),)),
               SampleResult(long, 1.0, True))
    errored = SampleResult(None, error=f"boom {evil}", error_type=f"Type{evil}")
    suite = SuiteResult(f"suite {evil}", f"evals/{evil}.yaml", "p.j2", f"model {evil}",
                        (CaseResult(f"id {evil}", {"v": evil}, f"expected {evil}", samples),
                         CaseResult("b", {}, None, (errored,))))
    page = html_report(eval_report([suite], {}, 1))
    doc = lxml_html.fromstring(page)
    assert not doc.xpath("//script") and "\x00" not in page and "\x1b" not in page
    text = doc.text_content()
    for shown in ("suite <script>alert(1)</script>", "id <script>", "v=<script>", "expected <script>",
                  "reason <script>", "boom <script>", "model <script>"):
        assert shown in text, shown
    first, second = doc.xpath("//tr[@id='s0-c0']//pre[@class='output']")
    assert first.text_content() == "<script>alert(1)</script>[31m"
    assert second.text_content() == "y" * TEXT_CHARS + f"... (cut: {len(long)} characters in all)"
    assert [s.text_content() for s in doc.xpath("//tr[@id='s0-c0']//div[@class='sample']")] == \
        ["sample 1: fail, score 0.0", "sample 2: pass, score 100.0"]


def test_a_suite_gone_from_the_head_shows_its_base_cases_judged_on_the_base():
    from gpo_action.compare import Gate, compare
    from gpo_action.results import CaseResult, Check, SampleResult, SuiteResult

    wrong = SampleResult("no", 0.0, False, (Check("equals", False, 0.0, "expected 'yes'"),))
    right = SampleResult("yes", 1.0, True)
    base = SuiteResult("gone", "evals/gone.yaml", "p.j2", "m",
                       (CaseResult("a", {}, "yes", (right,)), CaseResult("b", {}, "yes", (wrong,))))
    comparison = compare(base, None, Gate(max_drop=0.02, alpha=0.05, min_score=None))
    data = {"kind": "run", "comparisons": [comparison.to_dict()], "base_results": [base.to_dict()],
            "head_results": [None]}
    doc = lxml_html.fromstring(html_report(data))
    assert doc.xpath("//table[@class='verdicts']//span[@class='verdict v-removed']")[0].text_content() == "removed"
    assert [(r.get("data-case-id"), r.get("class")) for r in doc.xpath("//tr[contains(@class, 'case')]")] == \
        [("a", "case"), ("b", "case failed")]
    assert [s.text_content() for s in doc.xpath("//tr[@id='s0-c1']//span[contains(@class, 'status')]")] == \
        ["fail", "not on this side"]
