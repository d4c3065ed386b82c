"""AdANNS-IVF against rigid IVF at equal MFLOPs, from a finished run's leaderboard.

    python benchmarks/adanns/compare.py results/adanns/fmnist-ivf [--metric mAP@10]

A row's family comes from its backend's config table: ``faiss-ivf`` with ``coarse_dim``
is AdANNS (rows at or below the coarse dim are rigid IVF by construction, and count for
both), without it rigid. Prints, as markdown, the most accurate row of each family within
each MFLOPs budget (budgets at the families' own front points), and for every rigid front
point the MFLOPs AdANNS needs for at least its accuracy."""

from __future__ import annotations

import argparse
import json
import tomllib
from pathlib import Path


def families(run: Path) -> dict[str, str]:
    """Backend label -> ``rigid`` / ``adanns`` / ``exact`` from the run's config."""
    config = tomllib.loads((run / "config.toml").read_text())
    out = {}
    for table in config["backends"]:
        label = table.get("name", table["plugin"])
        if table["plugin"] in ("faiss-ivf", "faiss-ivfpq"):
            out[label] = "adanns" if "coarse_dim" in table else "rigid"
        elif table["plugin"] in ("faiss-exact", "torch-exact"):
            out[label] = "exact"
    return out


def front(points: list[tuple[float, float, str]]) -> list[tuple[float, float, str]]:
    """(MFLOPs, accuracy, name) points no other point beats on both, by MFLOPs."""
    best, kept = -1.0, []
    for cost, acc, name in sorted(points, key=lambda p: (p[0], -p[1])):
        if acc > best:
            kept.append((cost, acc, name))
            best = acc
    return kept


def best_within(points: list[tuple[float, float, str]], budget: float):
    fits = [p for p in points if p[0] <= budget * (1 + 1e-9)]
    return max(fits, key=lambda p: p[1], default=None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("--metric", default="mAP@10")
    args = parser.parse_args()
    kinds = families(args.run)
    rows = json.loads((args.run / "leaderboard.json").read_text())
    points: dict[str, list[tuple[float, float, str]]] = {"rigid": [], "adanns": [], "exact": []}
    for row in rows:
        kind = kinds.get(row["backend"])
        if row["status"] != "ok" or kind is None or row.get(args.metric) is None:
            continue
        name = f"{row['backend']} {row['label']}"
        point = (row["mflops_per_query"], row[args.metric], name)
        points[kind].append(point)
    fronts = {kind: front(p) for kind, p in points.items()}
    budgets = sorted({p[0] for kind in ("rigid", "adanns") for p in fronts[kind]})
    print(f"| MFLOPs budget | rigid IVF {args.metric} | AdANNS-IVF {args.metric} | difference |")
    print("|---|---|---|---|")
    for budget in budgets:
        r, a = best_within(points["rigid"], budget), best_within(points["adanns"], budget)
        if r is None or a is None:
            continue
        print(f"| {budget:.4g} | {r[1]:.4f} ({r[2]}) | {a[1]:.4f} ({a[2]}) | {a[1] - r[1]:+.4f} |")
    print()
    print(f"| rigid front point | {args.metric} | MFLOPs | AdANNS MFLOPs for as much | ratio |")
    print("|---|---|---|---|---|")
    for cost, acc, name in fronts["rigid"]:
        match = [p for p in points["adanns"] if p[1] >= acc]
        if not match:
            print(f"| {name} | {acc:.4f} | {cost:.4g} | never reached | |")
            continue
        cheapest = min(match, key=lambda p: p[0])
        print(
            f"| {name} | {acc:.4f} | {cost:.4g} | {cheapest[0]:.4g} ({cheapest[2]}) | "
            f"{cost / cheapest[0]:.2f}x |"
        )


if __name__ == "__main__":
    main()
