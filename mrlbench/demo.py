"""The built-in run configs: what ``mrlbench run`` does without a config file.

The default tells the MRL story on real images, offline: Fashion-MNIST (60,000 training
images as the database, 10,000 test images as queries), an MRL model and fixed-feature
models at every size, trained by mrlbench's own trainer on first use and cached, exact
and HNSW search, rigid IVF and AdANNS-IVF (coarse quantiser at 8 dims), single-shot
(flat) retrieval at every dim, adaptive and funnel retrieval.
``--quick`` is the same on a documented subset, for CI.
"""

from __future__ import annotations

_MODELS = """
[[encoders]]
plugin = "resnet50-mrl"
name = "mrl"
arch = "resnet-narrow-s2"       # residual blocks, 256-d pooled embedding (README: why)
dataset = {{ plugin = "fashion-mnist"{limits} }}
# the six per-dim losses averaged, so the backbone's step matches the one-loss FF models
train = {{ epochs = {epochs}{limit}, relative_importance = {weights} }}

[[encoders]]
plugin = "resnet50-ff"
name = "ff"                     # the fixed-feature baseline: one model per size
arch = "resnet-narrow-s2"
dataset = {{ plugin = "fashion-mnist"{limits} }}
sizes = [8, 16, 32, 64, 128, 256]
train = {{ epochs = {epochs}{limit} }}

[[encoders]]
plugin = "resnet50-ff"
name = "ff256-truncated"        # the FF-256 model cut to 8, 16, ... dims: no MRL
arch = "resnet-narrow-s2"
dataset = {{ plugin = "fashion-mnist"{limits} }}
sizes = [256]
truncate = true
train = {{ epochs = {epochs}{limit} }}

[[backends]]
plugin = "faiss-exact"

[[backends]]
plugin = "faiss-hnsw"
M = 32
ef_search = 64

[[backends]]
plugin = "faiss-ivf"            # rigid IVF: lists made and searched at the search dim
name = "ivf"
nlist = {nlist}
nprobe = 4

[[backends]]
plugin = "faiss-ivf"            # AdANNS-IVF: lists made at 8 dims, searched at each dim
name = "adanns-ivf"
nlist = {nlist}
nprobe = 4
coarse_dim = 8

[[strategies]]
plugin = "flat"                 # every dim of each encoder, k = max(ks)

[[strategies]]
plugin = "adaptive"             # 8 dims already separate 10 classes well
shortlist_dim = 8
rerank_dim = 256
shortlist = 200

[[strategies]]
plugin = "funnel"               # dims doubling, shortlists halving
shortlist_dim = 8
rerank_dims = [16, 32, 64, 128, 256]
shortlists = [200, 100, 50, 25, 10]
"""

_MEAN = "[" + ", ".join(["0.16666666666666666"] * 6) + "]"  # 1/6 for each of 6 dims

DEFAULT_CONFIG = """\
# mrlbench built-in demo: Matryoshka vs fixed-feature embeddings on Fashion-MNIST.
# Models are trained on first use and cached ($MRLBENCH_CACHE, default ~/.cache/mrlbench).
[run]
out = "results/demo"
ks = [10, 25, 50, 100]
metrics = "standard"
latency_queries = 200           # one-query timings of 72 search stages: the 10-minute budget
""" + _MODELS.format(limits="", epochs=1, limit="", weights=_MEAN, nlist=256)

QUICK_CONFIG = """\
# mrlbench --quick: the built-in demo on a subset (6,000 database and 1,000 query images,
# models trained on the same 6,000 images), for CI and a first look in about a minute.
[run]
out = "results/demo-quick"
ks = [10, 25, 50, 100]
metrics = "standard"
""" + _MODELS.format(
    limits=", limit_database = 6000, limit_queries = 1000",
    epochs=1,
    limit="",
    weights=_MEAN,
    nlist=64,  # about sqrt(6,000): FAISS wants at least 39 training points per list
)
