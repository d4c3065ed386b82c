"""What report.html and its figures show: plots that read in cost order, rows that
chain separately trained models listed apart, the environment as a table, legible
retrieval examples."""

from __future__ import annotations

import re

import numpy as np
import pytest
from PIL import Image

from mrlbench import html_report, plots
from mrlbench.leaderboard import Row
from mrlbench.store import write_json
from mrlbench.types import Dataset


def row(encoder, label, dims, acc, mflops, ms, backend="faiss-exact"):
    strategy = label.split()[0].split("@")[0]
    return Row(
        encoder,
        "d",
        backend,
        "CPU",
        strategy,
        label,
        dims,
        metrics={"mAP@10": acc},
        mflops_per_query=mflops,
        latency_ms_p50=ms,
    )


# exact flat@8 measured slower than flat@16: joined in dim order, the line zig-zags
ROWS = [
    row("mrl", "flat@8", "8", 0.60, 0.8, 0.25),
    row("mrl", "flat@16", "16", 0.70, 1.6, 0.20),
    row("mrl", "flat@64", "64", 0.72, 6.4, 0.40),
    row("mrl", "adaptive 8->64 @100", "8,64", 0.71, 0.9, 0.30),
    row("ff", "flat@8", "8", 0.58, 0.8, 0.24),
    row("ff", "flat@64", "64", 0.73, 6.4, 0.41),
    row("ff", "adaptive 8->64 @100", "8,64", 0.74, 0.9, 0.31),
    row("ff", "funnel 8->16,64 @100,10", "8,16,64", 0.75, 0.85, 0.35),
]
ENV = {
    "python": "3.11.7",
    "cpu_count": 2,
    "packages": {"faiss": "1.15.1", "numpy": "2.4.6"},
    "device": "CPU",
    "components": {"backend faiss-exact": {"faiss_threads": 2, "faiss_gpus": 0}},
    "threads": 2,
}


def arrays_encoders():
    """``mrl``: one array set; ``ff``: one array set per dim (fixed-feature models)."""
    from mrlbench_plugins.arrays import ArraysEncoder

    return {
        "mrl": ArraysEncoder(path="unused", config="mrl1_e0_ff64", dims=[8, 16, 64]),
        "ff": ArraysEncoder(
            path="unused",
            configs={"8": "mrl0_e0_ff8", "16": "mrl0_e0_ff16", "64": "mrl0_e0_ff64"},
        ),
    }


def chains(rows, encoders):
    return lambda r: html_report.models_of(r, encoders)


# ---------------------------------------------------------------------------- plots
def test_latency_plot_draws_points_labelled_with_dims_not_a_zigzag_line():
    by_dim, by_cost, by_time = plots.figures(ROWS, [10])
    for figure in (by_dim, by_cost, by_time):
        for series in figure.panels[0].series:
            if series.line:  # a line never runs back along its x axis
                assert list(series.x) == sorted(series.x), (figure.name, series.label)
    times = {s.label: s for s in by_time.panels[0].series}
    flat = times["mrl flat"]
    assert not flat.line
    assert flat.x == (0.20, 0.25, 0.40) and flat.notes == ("16", "8", "64")
    assert flat.y == (0.70, 0.60, 0.72)  # each point keeps its own accuracy
    cost = {s.label: s for s in by_cost.panels[0].series}
    assert cost["mrl flat"].line and cost["mrl flat"].notes == ("8", "16", "64")


def test_latency_png_has_no_line_through_the_flat_points(tmp_path, monkeypatch):
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.axes import Axes

    drawn = []
    original = Axes.plot

    def spy(self, *args, **kwargs):
        drawn.append((self.get_xlabel() or "", kwargs.get("label"), kwargs.get("linestyle")))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Axes, "plot", spy)
    latency = plots.figures(ROWS, [10])[2]
    path = plots.draw(latency, tmp_path)
    assert {style for _, _, style in drawn} == {"none"}  # markers only
    with Image.open(path) as img:
        assert img.size[0] > 600


def test_chained_rows_are_drawn_hollow_and_marked_in_the_legend():
    encoders = arrays_encoders()
    by_cost = plots.figures(ROWS, [10], chains(ROWS, encoders))[1]
    marks = {s.label: s for s in by_cost.panels[0].series if not s.line}
    assert marks["ff adaptive 8->64 @100 (chains 2 models)"].models == 2
    assert marks["ff funnel 8->16,64 @100,10 (chains 3 models)"].models == 3
    assert marks["mrl adaptive 8->64 @100"].models == 1


# ------------------------------------------------------------------ models per row
def test_encoders_count_the_models_behind_a_rows_dims():
    encoders = arrays_encoders()
    assert encoders["mrl"].models([8, 64]) == 1
    assert encoders["ff"].models([8, 64]) == 2
    assert encoders["ff"].models([8, 16, 64]) == 3
    assert encoders["ff"].models([16]) == 1
    assert html_report.models_of(ROWS[3], encoders) == 1
    assert html_report.models_of(ROWS[6], encoders) == 2
    assert html_report.models_of(ROWS[6], {}) == 1  # encoder unknown here: no claim


class NoImages(Dataset):
    name = "no-images"

    def split(self, which):
        return []


def test_fixed_feature_image_encoder_chains_one_model_per_size():
    pytest.importorskip("mrlbench_plugins.vision.encoders")
    from mrlbench_plugins.vision.encoders import ResNetFF, ResNetMRL

    ff = ResNetFF(dataset=NoImages(), sizes=[8, 16, 256])
    assert ff.models([8, 256]) == 2 and ff.models([8, 16, 256]) == 3 and ff.models([8]) == 1
    truncated = ResNetFF(dataset=NoImages(), sizes=[256], truncate=True)
    assert truncated.models([8, 256]) == 1
    assert ResNetMRL(dataset=NoImages(), dims=[8, 256]).models([8, 256]) == 1


# ------------------------------------------------------------------------ the page
@pytest.fixture
def page(tmp_path):
    write_json(tmp_path / "env.json", ENV)
    html_report.write(tmp_path, ROWS, [10], arrays_encoders())
    return (tmp_path / "report.html").read_text()


def section(page: str, start: str, end: str) -> str:
    return page[page.index(start) : page.index(end, page.index(start))]


def test_chained_rows_have_their_own_table_with_the_marker(page):
    view = section(page, "Accuracy view", "Cost view")
    single = section(view, "Single-model rows", "Rows that chain")
    chained = view[view.index("Rows that chain separately trained models") :]
    assert "chains" not in single
    assert single.count("<tr>") - 1 == 6  # under the header: mrl's 4 rows, ff's 2 flat
    assert "ff</td>" in single  # ff's flat rows: one model each
    labels = re.findall(r'class="text label">([^<]*)<span class="chained">([^<]*)<', chained)
    assert labels == [
        ("funnel 8-&gt;16,64 @100,10 ", "chains 3 models"),
        ("adaptive 8-&gt;64 @100 ", "chains 2 models"),
    ]
    cost = page[page.index("Cost view") :]
    assert cost.count("Rows that chain separately trained models") == 1
    assert cost.count("chains 2 models") == 1 and cost.count("chains 3 models") == 1


def test_no_chained_section_without_chained_rows(tmp_path):
    html_report.write(tmp_path, ROWS, [10], {})
    text = (tmp_path / "report.html").read_text()
    assert "Rows that chain" not in text and "chains" not in text.split("</style>")[1]


def test_environment_is_a_table_not_json(page):
    env = section(page, "<h2>Environment</h2>", "<h2>Accuracy against")
    assert env.count("<table>") == 3  # plain values, packages, components
    assert "<td>packages.faiss</td><td>1.15.1</td>" in env
    assert "<td>components.backend faiss-exact.faiss_threads</td><td>2</td>" in env
    assert "<td>python</td><td>3.11.7</td>" in env
    assert "{" not in env and "&quot;" not in env


def test_flatten_nested_environment():
    assert html_report.flatten({"a": {"b": {"c": 1}, "d": [1, 2]}, "e": None, "f": {}}) == [
        ("a.b.c", "1"),
        ("a.d", "1, 2"),
        ("e", ""),
        ("f", ""),
    ]


# ----------------------------------------------------------------- retrieval examples
def test_thumbnails_are_upscaled_nearest_neighbour():
    small = np.arange(28 * 28 * 3, dtype=np.uint8).reshape(28, 28, 3)
    big = plots.upscale(small)
    assert big.shape == (84, 84, 3)
    assert (big == small.repeat(3, axis=0).repeat(3, axis=1)).all()  # 3x3 blocks, no blur
    grey = plots.upscale(np.zeros((14, 28), np.uint8), 56)  # wide and grey: centred
    assert grey.shape == (56, 56, 3) and (grey[14:42] == 0).all() and (grey[:14] == 255).all()


def test_examples_figure_is_compact_and_legible(tmp_path):
    rng = np.random.default_rng(0)
    image = lambda: rng.integers(0, 200, (28, 28, 3), dtype=np.uint8)  # noqa: E731
    panels = [
        plots.Panel(
            label, image(), tuple((image(), j % 3 != 1) for j in range(10)), f"query {q}", n
        )
        for q in range(4)
        for label, n in (("flat@8", 1), ("flat@256", 1), ("adaptive 8->256 @200", 2))
    ]
    mosaic, texts = plots.mosaic(panels)
    cell = plots.THUMB + 2 * plots.FRAME
    assert (
        mosaic.shape[1] == plots.LABEL_WIDTH + plots.QUERY_GAP + 11 * (cell + plots.GAP) - plots.GAP
    )
    assert mosaic.shape[0] < 12 * (cell + plots.GAP) + 3 * plots.GROUP_GAP
    assert [t.text for t in texts if t.bold] == [f"query {q}" for q in range(4)]
    assert sum(t.text == "chains 2 models" for t in texts) == 4
    path = plots.draw_examples(panels, tmp_path, "examples")
    with Image.open(path) as img:
        assert img.size == (mosaic.shape[1], mosaic.shape[0])  # one pixel per mosaic pixel
        pixels = np.asarray(img.convert("RGB"))
    white = (pixels > 250).all(axis=2).mean()
    assert white < 0.3, f"{white:.0%} white"
    # the first neighbour of the first row: framed green, then the 84-px thumbnail
    left = plots.LABEL_WIDTH + cell + plots.GAP + plots.QUERY_GAP
    assert tuple(pixels[1, left + 1]) == (26, 152, 80)
    inner = pixels[
        plots.FRAME : plots.FRAME + plots.THUMB, left + plots.FRAME : left + cell - plots.FRAME
    ]
    assert inner.shape == (84, 84, 3)
    assert (inner == panels[0].neighbours[0][0].repeat(3, axis=0).repeat(3, axis=1)).all()
