"""mrlbench: a plugin-based benchmark harness for Matryoshka (MRL) embedding retrieval.

The package is the public door for plugin authors: ``__all__`` lists, grouped by what
it is for, every name a plugin may import, and a plugin imports them from here (``from
mrlbench import Backend, ConfigError, hookimpl``). The built-in plugins import nothing
else from mrlbench (tests/test_plugins.py checks it); the modules behind the door may
change without notice.
"""

from __future__ import annotations

from mrlbench.arrays import CONFIG_RE, array_name, find_array, load_embeddings, load_labels
from mrlbench.console import (
    Col,
    emit_json,
    fitted_table,
    int_list,
    print_table,
    progress_bar,
    stderr,
)
from mrlbench.console import console as terminal
from mrlbench.cost import (
    rerank_mflops,
    rerank_selection_mflops,
    search_mflops,
    selection_mflops,
)
from mrlbench.errors import ConfigError, DataError, MrlbenchError, error_line, missing, requires
from mrlbench.execution import Executor, Placement, WorkUnit
from mrlbench.hookspecs import hookimpl
from mrlbench.index_cache import index_path
from mrlbench.knn import ExactIndex, exact_knn
from mrlbench.metrics import MODES as METRIC_MODES
from mrlbench.metrics import compute as compute_metrics
from mrlbench.neighbors import load as load_neighbors
from mrlbench.neighbors import save as save_neighbors
from mrlbench.neighbors import search_stem
from mrlbench.plugins import Registry, loaded_dirs, registry
from mrlbench.rerank import rerank as rerank_rows
from mrlbench.resume import MISSING, cached, remember
from mrlbench.search_stage import search_dim
from mrlbench.store import atomic_path, cache_dir, digest, save_npy, scan, write_json
from mrlbench.timing import stopwatch
from mrlbench.tune_space import TuneCandidate, TuneSpace
from mrlbench.types import (
    Backend,
    Component,
    Dataset,
    Embeddings,
    Encoder,
    Observer,
    Retrieval,
    RetrievalContext,
    SearchRequest,
    Shortlist,
    Strategy,
)
from mrlbench.vectors import block_rows, normalize_rows

__version__ = "0.1.0"

__all__ = ["__version__"]
# hooks and the component base classes (README: "Writing a plugin")
__all__ += [
    "Backend",
    "Component",
    "Dataset",
    "Encoder",
    "Executor",
    "Placement",
    "Strategy",
    "WorkUnit",
    "hookimpl",
]
# values that cross the plugin line
__all__ += [
    "Embeddings",
    "Observer",
    "Retrieval",
    "RetrievalContext",
    "SearchRequest",
    "Shortlist",
    "TuneCandidate",
    "TuneSpace",
]
# errors: one clear line for the user, no traceback
__all__ += ["ConfigError", "DataError", "MrlbenchError", "error_line", "missing", "requires"]
# the cost model and the timing procedure
__all__ += [
    "rerank_mflops",
    "rerank_selection_mflops",
    "search_mflops",
    "selection_mflops",
    "stopwatch",
]
# vectors and the exact kernel
__all__ += ["ExactIndex", "block_rows", "exact_knn", "normalize_rows", "rerank_rows"]
# arrays in the reference naming, neighbour files, metrics
__all__ += [
    "CONFIG_RE",
    "METRIC_MODES",
    "array_name",
    "compute_metrics",
    "find_array",
    "load_embeddings",
    "load_labels",
    "load_neighbors",
    "save_neighbors",
    "search_stem",
]
# files: atomic writes, content hashes, the cache folder, resumable progress
__all__ += [
    "MISSING",
    "atomic_path",
    "cache_dir",
    "cached",
    "digest",
    "remember",
    "save_npy",
    "scan",
    "write_json",
]
# the harness, for commands and executors
__all__ += ["Registry", "index_path", "loaded_dirs", "registry", "search_dim"]
# the terminal (rich): tables, progress, JSON output
__all__ += [
    "Col",
    "emit_json",
    "fitted_table",
    "int_list",
    "print_table",
    "progress_bar",
    "stderr",
    "terminal",
]
