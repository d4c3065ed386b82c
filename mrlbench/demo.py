"""The built-in run config: what ``mrlbench run`` does without a config file.

Until image encoders land, it runs on seeded synthetic Matryoshka-like embeddings that
the ``synthetic`` encoder generates in memory (no files, no network).
"""

from __future__ import annotations

DEFAULT_CONFIG = """\
# mrlbench built-in demo: seeded synthetic Matryoshka-like embeddings (no network).
[run]
out = "results/demo"
ks = [10, 25, 50, 100]
metrics = "standard"

[[encoders]]
plugin = "synthetic"
name = "synthetic-mrl"
n_database = 20000
n_queries = 2000
dim = 256
classes = 50
seed = 0

[[backends]]
plugin = "faiss-exact"

[[backends]]
plugin = "faiss-hnsw"
M = 32
ef_search = 64

[[strategies]]
plugin = "flat"
k = 200

[[strategies]]
plugin = "adaptive"
shortlist_dim = 16
rerank_dim = 256
shortlist = 200

[[strategies]]
plugin = "funnel"
shortlist_dim = 8
rerank_dims = [16, 32, 64, 128, 256]
shortlists = [200, 100, 50, 25, 10]
"""
