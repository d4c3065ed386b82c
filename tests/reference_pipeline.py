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


def prefix_distances(xb: np.ndarray, ids: np.ndarray, query: np.ndarray, dim: int) -> np.ndarray:
    """float64 squared L2 between the normalised ``dim``-prefixes of one query and the
    database rows ``ids``."""
    rows = np.asarray(xb[ids, :dim], dtype=np.float64)
    q = np.asarray(query[:dim], dtype=np.float64)
    rows /= np.linalg.norm(rows, axis=1, keepdims=True)
    return ((rows - q / np.linalg.norm(q)) ** 2).sum(axis=1)


def assert_same_neighbours_up_to_ties(
    ours: np.ndarray, ref: np.ndarray, xb: np.ndarray, xq: np.ndarray, dim: int, atol=1e-5
) -> None:
    """Two exact k-NN answers at prefix ``dim`` are one search: each row is identical, or
    where it differs, its float64 distances agree rank by rank to ``atol``, so the two
    differ only where float32 broke a near-tie the other way (both are exact answers)."""
    assert ours.shape == ref.shape, (ours.shape, ref.shape)
    for row in np.flatnonzero((ours != ref).any(axis=1)):
        assert (ours[row] >= 0).all() and (ref[row] >= 0).all(), f"row {row} is padded"
        mine = prefix_distances(xb, ours[row], xq[row], dim)
        theirs = prefix_distances(xb, ref[row], xq[row], dim)
        worst = float(np.abs(mine - theirs).max())
        assert worst <= atol, f"row {row}: distances differ by {worst:.2e} at a rank, not a tie"


def assert_same_funnel_up_to_ties(
    ours: np.ndarray,
    ref: np.ndarray,
    xb: np.ndarray,
    xq: np.ndarray,
    shortlist: np.ndarray,
    dims: list[int],
    sizes: list[int],
    atol=1e-5,
) -> None:
    """Two funnel reranks (``reference_rerank``'s stages) of one shortlist are one
    computation: each row is identical, or where it differs, a float64 replay of the
    reference's stages for that row meets a near-tie (to ``atol``) that float32 may
    break either way: at a later stage's cut (then the kept sets may differ), or else in
    the final order (the same ids, the same distance at every rank)."""
    assert ours.shape == ref.shape, (ours.shape, ref.shape)
    for row in np.flatnonzero((ours != ref).any(axis=1)):
        candidates, cut_tie = shortlist[row, : sizes[0]], False
        for stage, (dim, size) in enumerate(zip(dims, sizes, strict=True)):
            dist = prefix_distances(xb, candidates[:size], xq[row], dim)
            order = np.argsort(dist, kind="stable")
            candidates, dist = candidates[:size][order], dist[order]
            if stage + 1 < len(sizes):
                cut = sizes[stage + 1]
                cut_tie |= bool(dist[cut] - dist[cut - 1] <= atol)
        if cut_tie:
            continue
        assert set(ours[row]) == set(ref[row]), f"row {row} differs from the reference"
        mine = prefix_distances(xb, ours[row], xq[row], dims[-1])
        theirs = prefix_distances(xb, ref[row], xq[row], dims[-1])
        worst = float(np.abs(mine - theirs).max())
        assert worst <= atol, f"row {row} differs from the reference: {worst:.2e}, not a tie"
