"""The reference pipeline's names: the neighbours sub-folder of a config string, and the
dataset a neighbours file name ends with."""

from __future__ import annotations

import re
from pathlib import Path

from mrlbench import CONFIG_RE


def model_name(config: str) -> str:
    """The reference's neighbours sub-folder for a config string."""
    match = CONFIG_RE.match(config)
    if not match:
        return config
    if match.group(2) == "1":
        return "mrl_e"
    return "mrl" if match.group(1) == "1" else "ff"


STEM_DATASET = (
    re.compile(r"^[\w.-]+?_\d+dim_\d+shortlist_(?P<dataset>[^_]+?)(?:\.npy|\.csv)?$"),
    re.compile(r"^\d+dim-reranked\d+_\d+shortlist_(?P<dataset>[^_]+)_"),
    re.compile(r"^\d+dim-cascade\[[\d,]+\]_shortlist\[[\d,]+\]_(?P<dataset>[^_]+)_"),
)


def dataset_of(dataset: str | None, neighbours: str | None = None) -> str:
    """``--dataset`` when given, else the dataset a reference neighbours file name ends
    with (flat, reranked or funnel naming), else ``1K``."""
    if dataset:
        return dataset
    name = Path(neighbours).name if neighbours else ""
    for pattern in STEM_DATASET:
        found = pattern.match(name)
        if found:
            return found.group("dataset")
    return "1K"
