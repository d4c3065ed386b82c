"""The run folder as a user's system sees it: files follow the umask, component names
cannot leave the folder, and a second run into a busy folder refuses."""

from __future__ import annotations

import os
import stat

from mrlbench.store import run_lock

CONFIG = """
[run]
out = "{out}"
ks = [10]
latency_queries = 0
repeats = 1

[[encoders]]
plugin = "arrays"
name = "{name}"
path = "{path}"
config = "mrl1_e0_ff64"

[[backends]]
plugin = "faiss-exact"

[[strategies]]
plugin = "flat"
dims = [8]
"""


def write_config(tmp_path, arrays, name="mrl"):
    config = tmp_path / "run.toml"
    config.write_text(CONFIG.format(out=tmp_path / "run", name=name, path=arrays.folder))
    return config


def test_files_follow_the_umask(cli, arrays, tmp_path):
    old = os.umask(0o022)
    try:
        assert cli("run", write_config(tmp_path, arrays)).code == 0
    finally:
        os.umask(old)
    for name in ("leaderboard.json", "config.toml", "report.html"):
        mode = stat.S_IMODE((tmp_path / "run" / name).stat().st_mode)
        assert mode == 0o644, (name, oct(mode))  # readable by a web server or a colleague


def test_a_name_with_a_path_separator_is_refused(cli, arrays, tmp_path):
    result = cli("run", write_config(tmp_path, arrays, name="../x"))
    assert result.code == 2
    assert "error:" in result.err and "'../x'" in result.err
    assert not (tmp_path / "run").exists() and not (tmp_path / "x").exists()


def test_a_second_run_into_a_busy_folder_refuses(cli, arrays, tmp_path):
    config = write_config(tmp_path, arrays)
    with run_lock(tmp_path / "run"):
        result = cli("run", config)
    assert result.code == 2
    assert "in use by another mrlbench run" in result.err and "Traceback" not in result.err
    assert not (tmp_path / "run" / "leaderboard.json").exists()
    assert cli("run", config).code == 0  # free again once the first run is done
