"""The reference pipeline's retrieval loops (RAIVNLab/MRL ``retrieval/reranking.ipynb``),
re-created as independent references, with scikit-learn's ``normalize`` as the notebook."""

from __future__ import annotations

import numpy as np
from sklearn.preprocessing import normalize


def reference_rerank(db_rerank, queries, use_funnel, rerank_dim, shortlist, neighbors):
    """The notebook's ``rerank`` loop. ``db_rerank`` and ``queries`` are normalised at the
    full size first, as in the notebook; ``neighbors`` is copied (the notebook's view
    writes into its caller's array)."""
    neighbors = np.array(neighbors)
    if use_funnel:
        assert len(rerank_dim) == len(shortlist)
    for i in range(len(rerank_dim)):
        db_rerank_new = db_rerank[:, : rerank_dim[i]]
        neighbors_new = neighbors[:, : shortlist[i]]
        for j in range(len(neighbors)):
            query_vector = queries[j][: rerank_dim[i]]
            nn_indices = neighbors_new[j][: shortlist[i]]
            NN_vectors_higher_dim = normalize(db_rerank_new[nn_indices].squeeze(), axis=1)
            L2_distances_reranked = np.linalg.norm(
                NN_vectors_higher_dim - query_vector[: rerank_dim[i]], axis=1
            )
            reranked_neighbor_indices = np.argsort(L2_distances_reranked)
            reranked_neighbors = neighbors_new[j, reranked_neighbor_indices]
            neighbors_new[j] = reranked_neighbors
        neighbors = neighbors_new
    return neighbors


def assert_same_order_up_to_ties(
    ours: np.ndarray, ref: np.ndarray, xb: np.ndarray, xq: np.ndarray, dim: int
) -> None:
    """Each row holds the same ids, and where the orders differ the reference's own
    float32 distances (at ``dim``) are tied, so both orders are valid sorts."""
    assert ours.shape == ref.shape
    db, q = normalize(xb[:, :dim]), normalize(xq[:, :dim])
    for row in np.flatnonzero((ours != ref).any(axis=1)):
        assert set(ours[row]) == set(ref[row]), f"row {row} holds other ids"
        dist = np.linalg.norm(db[ours[row]] - q[row], axis=1)
        assert np.all(np.diff(dist) >= -4 * np.finfo(np.float32).eps * dist[1:]), row
