"""``plot(results, topology, path)``: the topology with one session's paths, and bar charts of the metrics.

Uses ``matplotlib.figure.Figure`` directly (no pyplot, so no global state) and draws
the graph itself from a seeded networkx spring layout.
"""

from __future__ import annotations

import importlib
from typing import Any

from ..exceptions import ParameterError
from ..kmp import Topology
from .metrics import ModeResult, Results

PLOT_HINT = "install mpss-fast[sim] (or pip install matplotlib)"
_COLOURS = ("tab:blue", "tab:orange", "tab:green", "tab:purple", "tab:brown", "tab:pink", "tab:olive", "tab:cyan")


def check_matplotlib() -> Any:
    """matplotlib's ``Figure`` class; ``ParameterError`` with an install hint when matplotlib is missing."""
    try:
        return importlib.import_module("matplotlib.figure").Figure
    except ImportError:
        raise ParameterError(f"--plot needs matplotlib: {PLOT_HINT}") from None


def _layout(topology: Topology) -> dict[str, tuple[float, float]]:
    nx = importlib.import_module("networkx")
    return {name: (float(x), float(y)) for name, (x, y) in nx.spring_layout(topology.graph, seed=1).items()}


def _draw_topology(ax: Any, topology: Topology, results: Results) -> None:
    pos = _layout(topology)
    for link in topology.links:
        (xa, ya), (xb, yb) = pos[link.a], pos[link.b]
        ax.plot([xa, xb], [ya, yb], color="0.85", linewidth=0.8, zorder=1)
    sample = results.sample
    if sample is not None:
        for i, nodes in enumerate(sample.mpss_paths):
            ax.plot(
                *zip(*(pos[v] for v in nodes), strict=True),
                color=_COLOURS[i % len(_COLOURS)],
                linewidth=2.2,
                zorder=2,
                label=f"share {i + 1}",
            )
        ax.plot(
            *zip(*(pos[v] for v in sample.single_path), strict=True),
            color="black",
            linestyle="--",
            linewidth=1.2,
            zorder=3,
            label="single path",
        )
    bad = set(results.compromised)
    xs, ys = zip(*(pos[v] for v in topology.nodes), strict=True)
    colours = ["tab:red" if v in bad else "0.4" for v in topology.nodes]
    ax.scatter(xs, ys, s=14 if len(topology) > 40 else 30, c=colours, zorder=4)
    if sample is not None:
        for name in (sample.src, sample.dst):
            ax.annotate(name, pos[name], fontsize=8, zorder=5, xytext=(4, 4), textcoords="offset points")
        ax.set_title(f"session {sample.index}: k={sample.k} of n={sample.n} paths (red: compromised)", fontsize=9)
        ax.legend(fontsize=7, loc="best")
    ax.set_axis_off()


def _bars(ax: Any, title: str, modes: tuple[ModeResult, ModeResult], values: list[float | None]) -> None:
    shown = [0.0 if v is None else v for v in values]
    ax.bar(["MPSS", "single path"], shown, color=["tab:blue", "0.5"])
    for i, v in enumerate(values):
        ax.annotate("-" if v is None else f"{v:.3g}", (i, shown[i]), ha="center", va="bottom", fontsize=8)
    ax.set_title(title, fontsize=9)
    ax.tick_params(labelsize=8)


def plot(results: Results, topology: Topology, path: str) -> None:
    """Save the figure at ``path`` (PNG, or any format matplotlib knows from the extension)."""
    fig = check_matplotlib()(figsize=(12, 5))
    grid = fig.add_gridspec(2, 4)
    _draw_topology(fig.add_subplot(grid[:, :2]), topology, results)
    modes = (results.mpss, results.single_path)
    latency = [None if m.latency_p50_s is None else m.latency_p50_s * 1e3 for m in modes]
    panels: list[tuple[str, list[float | None]]] = [
        ("success ratio", [m.success_ratio for m in modes]),
        ("link key bits per key bit", [m.key_per_bit for m in modes]),
        ("latency p50 (ms)", latency),
        (f"keys exposed ({len(results.compromised)} bad relays)", [m.exposed_ratio for m in modes]),
    ]
    for i, (title, values) in enumerate(panels):
        _bars(fig.add_subplot(grid[i // 2, 2 + i % 2]), title, modes, values)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
