"""Reports: the plots' data and files, the HTML in a real browser, and run comparison."""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest
from PIL import Image

from mrlbench import plots, sweep_plot
from mrlbench.leaderboard import Row

ROWS = [
    Row(
        e,
        "d",
        "faiss-exact",
        "CPU",
        label.split()[0],
        label,
        dims,
        metrics={} if acc is None else {"mAP@10": acc},
        mflops_per_query=cost,
        latency_ms_p50=ms,
    )
    for e, label, dims, acc, cost, ms in [
        ("mrl", "flat@16", "16", 0.70, 1.6, 0.20),
        ("mrl", "flat@8", "8", 0.60, 0.8, 0.10),
        ("mrl", "adaptive 8->64 @100", "8,64", 0.75, 0.9, 0.30),
        ("ff", "flat@8", "8", 0.55, 0.8, 0.10),
        ("ff", "broken", "8", None, None, None),
    ]
]


def test_plot_data():
    by_dim, by_cost, by_time = plots.figures(ROWS, [10])
    panel = by_dim.panels[0]
    assert panel.title == "faiss-exact" and panel.ylabel == "mAP@10"
    assert {s.label: (s.x, s.y) for s in panel.series} == {
        "ff": ((8.0,), (0.55,)),
        "mrl": ((8.0, 16.0), (0.60, 0.70)),
    }
    cost = {s.label: s for s in by_cost.panels[0].series}
    assert cost["mrl flat"].x == (0.8, 1.6) and cost["mrl flat"].line
    assert cost["mrl flat"].notes == ("8", "16")  # each point labelled with its dims
    marked = cost["mrl adaptive 8->64 @100"]
    assert (marked.x, marked.y, marked.line) == ((0.9,), (0.75,), False)
    times = {s.label: s for s in by_time.panels[0].series}
    assert times["mrl adaptive 8->64 @100"].x == (0.30,)
    assert not times["mrl flat"].line and times["mrl flat"].notes == ("8", "16")


def test_plots_are_valid_pngs(tmp_path):
    for figure in plots.figures(ROWS, [10]):
        path = plots.draw(figure, tmp_path)
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        with Image.open(path) as img:
            img.verify()


def test_sweep_plot_data(tmp_path):
    def row(backend: str, recall: float | None, qps: float) -> Row:
        metrics = {} if recall is None else {"knn_recall@10": recall}
        return Row("mrl", "d", backend, "CPU", "flat", "flat@16", "16", metrics=metrics, qps=qps)

    swept = [row(f"faiss-hnsw ef_search={ef}", r, q) for ef, r, q in SWEPT]
    rows = [*swept, row("faiss-exact", 1.0, 100.0)]
    figure = sweep_plot.recall_qps(rows, [10])
    assert figure is not None and figure.name == "plot_recall_vs_qps"
    (panel,) = figure.panels  # one per dataset; faiss-exact is no sweep: not drawn
    assert (panel.title, panel.xlabel, panel.logy) == ("d: ef_search swept", "knn_recall@10", True)
    line, dominated = panel.series
    assert (line.label, line.x, line.y, line.notes) == (
        "mrl faiss-hnsw flat@16",
        (0.8, 0.95),
        (900.0, 600.0),
        ("16", "64"),
    )
    assert line.line and not dominated.line  # ef 32: less recall and fewer QPS than ef 64
    assert (dominated.label, dominated.x, dominated.notes) == (line.label, (0.9,), ("32",))
    path = plots.draw(figure, tmp_path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sweep_plot.recall_qps(rows[2:], [10]) is None  # one value: no sweep
    assert sweep_plot.recall_qps(rows, [25]) is None  # no knn_recall@10
    assert sweep_plot.recall_qps([row(r.backend, None, 1.0) for r in swept], [10]) is None


SWEPT = [(16, 0.8, 900.0), (32, 0.9, 500.0), (64, 0.95, 600.0)]


@pytest.fixture(scope="session")
def chromium():
    """Debian's Chromium and ChromeDriver; installed here when missing (as root)."""
    missing = not (shutil.which("chromium") and shutil.which("chromedriver"))
    if missing and os.geteuid() == 0 and shutil.which("apt-get"):
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-qq"], capture_output=True, env=env)
        subprocess.run(
            ["apt-get", "install", "-y", "-qq", "chromium", "chromium-driver"],
            capture_output=True,
            env=env,
        )
    if not (shutil.which("chromium") and shutil.which("chromedriver")):
        pytest.skip(
            "Chromium and ChromeDriver (Debian chromium, chromium-driver) cannot be installed here"
        )
    return shutil.which("chromium"), shutil.which("chromedriver")


def test_report_renders_in_a_real_browser(quick_demo, chromium, tmp_path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    out, _ = quick_demo
    options = webdriver.ChromeOptions()
    options.binary_location = chromium[0]
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        f"--user-data-dir={tmp_path / 'profile'}",
        "--window-size=1400,1000",
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(chromium[1]), options=options)
    try:
        driver.get((out / "report.html").resolve().as_uri())
        images = driver.execute_script(
            "return Array.from(document.images).map(i => [i.src, i.complete, i.naturalWidth])"
        )
        assert len(images) >= 4  # three plots and retrieval examples
        broken = [src for src, complete, width in images if not complete or width == 0]
        assert not broken, f"broken images: {broken}"
        text = driver.execute_script("return document.body.innerText")
        assert "Accuracy view" in text and "Retrieval examples" in text
        # ff (one model per size) chains models in its adaptive and funnel rows
        assert "Rows that chain separately trained models" in text
        assert "chains 2 models" in text and "chains 6 models" in text
        env = driver.execute_script(
            "return Array.from(document.querySelectorAll('.env td')).map(td => td.innerText)"
        )
        assert "packages.faiss" in env and not any("{" in cell for cell in env)
        widths = {src.rsplit("/", 1)[-1]: width for src, _, width in images}
        assert widths["examples_ff.png"] >= 11 * 84  # a query and 10 neighbours, 84 px each
        shot = tmp_path / "report.png"
        driver.save_screenshot(str(shot))
        with Image.open(shot) as img:
            assert len(img.convert("L").getcolors(1 << 20) or []) > 10  # not blank
        errors = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
        assert not errors, errors
    finally:
        driver.quit()


def copy_run(src, dst):
    dst.mkdir()
    shutil.copy(src / "leaderboard.json", dst / "leaderboard.json")
    return dst


def test_compare_passes_identical_runs_and_flags_regressions(cli, quick_demo, tmp_path):
    out, _ = quick_demo
    a = copy_run(out, tmp_path / "a")
    b = copy_run(out, tmp_path / "b")
    r = cli("compare", a, b, "--fail-on-regression", "0", "--latency-tolerance", "0")
    assert r.code == 0, r.err
    assert "flat@8" in r.out

    rows = json.loads((b / "leaderboard.json").read_text())
    victim = next(
        row
        for row in rows
        if (row["label"], row["encoder"], row["backend"]) == ("flat@256", "mrl", "faiss-exact")
    )
    victim["mAP@10"] *= 0.9  # a 10% drop
    (b / "leaderboard.json").write_text(json.dumps(rows))
    r = cli("compare", a, b, "--fail-on-regression", "5")
    assert r.code == 1 and "1 regression(s)" in r.out
    assert "mrl / faiss-exact / flat@256: mAP@10" in " ".join(r.out.split())
    assert cli("compare", a, b, "--fail-on-regression", "20").code == 0
    assert cli("compare", a, b, "--latency-tolerance", "0").code == 0  # separate gates

    victim["mAP@10"] /= 0.9
    victim["latency_ms_p50"] *= 1.5  # 50% slower
    for run, board in ((b, rows), (a, json.loads((a / "leaderboard.json").read_text()))):
        for row in board:  # both runs recorded 5% timing noise: a 10% allowance
            row["timing_spread"] = 0.05
        (run / "leaderboard.json").write_text(json.dumps(board))
    assert cli("compare", a, b, "--fail-on-regression", "10").code == 0
    r = cli("compare", a, b, "--latency-tolerance", "30")  # 50% > 30% + 10%
    assert r.code == 1 and "latency_ms_p50" in r.out and "flat@256" in r.out
    assert cli("compare", a, b, "--latency-tolerance", "45").code == 0  # 50% < 45% + 10%
    assert cli("compare", a, tmp_path / "nope").code == 2
