"""`serverfree report`: the page opened in a real Chromium (Debian's, driven by playwright); it fails on a
console error, a request for anything outside the page, or a figure that is missing or drawn empty."""
from pathlib import Path

import pytest

from orchestrator.cli import main
from simulator.scenarios.sweep import plan_sweep, read_result, write_result
from simulator.scenarios.sweep_spec import parse_vary
from simulator.scenarios.sweep_task import run_batch

CHROMIUM = "/usr/bin/chromium"
FIGURES = ("backup-window", "failover-rate", "bottlenecks", "topology")
TOPO = Path(__file__).resolve().parents[2] / "scenarios" / "topologies" / "small.yaml"
SCENARIO = f"""
topology: {TOPO}
options: {{enableserverfree: yes}}
volumes: [{{id: "CLIENT1:H:", size: 1GiB}}]
faults:
  - {{kind: switch_port_down, target: SW1/3, at_percent: 50, job: "CLIENT1:H:"}}
jobs:
  - backup: "CLIENT1:H:"
    expect: {{path: server-free+lan-free}}
"""


@pytest.fixture(scope="module")
def result(tmp_path_factory):
    """A small sweep's result, its runs made in this process (the Dask path has its own tests)."""
    tmp = tmp_path_factory.mktemp("report")
    scen = tmp / "s.yaml"
    scen.write_text(SCENARIO)
    plan = plan_sweep(scen, [parse_vary("faults.0.at_percent=0,30,60,90,100")], seeds=2)
    rows = run_batch(plan.base, str(plan.scenario.parent), str(scen), plan.runs)
    out = tmp / "result.parquet"
    write_result(rows, plan.columns, out, plan.meta)
    return out


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian package chromium is not installed (./dev setup installs it)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield b
        b.close()


def problems_in(browser, page_file: Path) -> tuple[list[str], object]:
    """Console errors, page errors, foreign requests and missing or empty figures of a page."""
    page = browser.new_page()
    found: list[str] = []
    page.on("console", lambda m: found.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
    page.on("pageerror", lambda e: found.append(f"page error: {e}"))
    page.on("request", lambda r: None if r.url == page_file.as_uri() or r.url.startswith("data:")
            else found.append(f"request outside the page: {r.url}"))
    page.goto(page_file.as_uri(), wait_until="load")
    for fid in FIGURES:
        svg = page.locator(f"figure#{fid} svg")
        box = svg.first.bounding_box() if svg.count() else None
        if not box or box["width"] < 50 or box["height"] < 50:
            found.append(f"figure {fid} missing or empty ({box})")
    return found, page


def test_report_opens_in_chromium_with_every_figure_and_no_error(result, browser, tmp_path, capsys):
    page_file = tmp_path / "report.html"
    assert main(["report", str(result), "-o", str(page_file)]) == 0
    assert "10 runs ->" in capsys.readouterr().out
    found, page = problems_in(browser, page_file)
    assert found == []
    # the fault point table: one row per point, the rate of jobs that failed over in each
    points = page.locator("table:not(.sortable) tbody tr")
    assert points.all_inner_texts()[0].split("\t")[:4] == ["0", "2", "2", "1"]
    assert points.count() == 5
    assert page.locator("figure#topology svg circle.zone").count() >= 4  # zones drawn
    assert page.locator("figure#topology svg text.lun").count() == 1  # ARR1's one LUN
    assert page.locator("figure#topology svg rect.pool").count() == 1  # SFPOOL around DRV1
    # the runs table sorts on a click (the page's own script runs)
    runs = page.locator("table.sortable tbody tr td:first-child")
    first = runs.all_text_contents()
    page.locator("table.sortable th").first.click()
    page.locator("table.sortable th").first.click()  # descending
    assert runs.all_text_contents() == sorted(first, key=int, reverse=True)
    page.close()


def test_the_check_catches_a_broken_page(browser, tmp_path):
    bad = tmp_path / "bad.html"
    bad.write_text('<html><body><figure id="backup-window"><svg width="300" height="200"></svg></figure>'
                   '<img src="http://127.0.0.1:9/x.png"><script>undefinedFunction()</script></body></html>')
    found, page = problems_in(browser, bad)
    page.close()
    assert any("undefinedFunction" in f for f in found)
    assert any("request outside the page" in f for f in found)
    assert any("figure topology missing" in f for f in found)


def test_csv_result_gives_the_same_figures(result, tmp_path):
    rows, meta = read_result(result)
    csv_out = tmp_path / "r.csv"
    write_result(rows, list(rows[0]), csv_out, meta)
    back, meta2 = read_result(csv_out)
    assert meta2 == meta and [r["backup_window_s"] for r in back] == [r["backup_window_s"] for r in rows]
    assert main(["report", str(csv_out), "-o", str(tmp_path / "r.html")]) == 0
    text = (tmp_path / "r.html").read_text()
    assert all(f'<figure id="{f}">' in text for f in FIGURES)


def test_bad_result_is_one_line(tmp_path, capsys):
    assert main(["report", str(tmp_path / "none.parquet"), "-o", str(tmp_path / "x.html")]) == 2
    assert "none.parquet: no such sweep result" in capsys.readouterr().err
    junk = tmp_path / "junk.parquet"
    junk.write_text("not parquet")
    assert main(["report", str(junk), "-o", str(tmp_path / "x.html")]) == 2
    assert "junk.parquet: not a Parquet file" in capsys.readouterr().err


def test_result_of_unknown_format_names_the_argument(tmp_path, capsys):
    assert main(["report", "/etc/hostname", "-o", str(tmp_path / "x.html")]) == 2
    err = capsys.readouterr().err
    # the path is the RESULT argument, not the -o option (which names the page)
    assert "RESULT /etc/hostname: a sweep result is Parquet (.parquet) or CSV (.csv)" in err and "-o" not in err
