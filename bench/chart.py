"""The benchmark's PNG: throughput by cap, PSS per job, step p95, memory over jobs, the queue."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from bench.report import (
    SCENARIO_LABELS,
    STEP_ORDER,
    STEP_SHORT,
    VARIANT_LABELS,
    VARIANTS,
    BenchReport,
)


def _plot_jobs_per_s(ax: Any, rows: Iterable[Any], x: str, **style: Any) -> None:
    """One line of jobs/s over the rows' `x`, in its order; no line when nothing was measured
    (the panel then says so)."""
    points = sorted(rows, key=lambda r: getattr(r, x))
    if points:
        ax.plot(
            [getattr(r, x) for r in points], [r.jobs_per_s for r in points], marker="o", **style
        )


def write_chart(report: BenchReport, path: Path) -> None:
    """Six panels in one PNG; empty panels say what was not measured."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 4, figsize=(23, 10))
    ok = [r for r in report.throughput if r.status == "ok"]

    for ax, scenario in ((axes[0][0], "cpu"), (axes[0][1], "latency")):
        for variant in VARIANTS:
            _plot_jobs_per_s(
                ax,
                (r for r in ok if r.scenario == scenario and r.variant == variant),
                "cap",
                label=VARIANT_LABELS[variant],
            )
        ax.set_title(f"{SCENARIO_LABELS[scenario]}: jobs/s by context cap")
        ax.set_xlabel("cap (concurrent jobs)")
        ax.set_ylabel("jobs/s")
        ax.set_xticks([1, 2, 3, 4])
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend(fontsize=8)
            ax.set_ylim(bottom=0)
        else:
            ax.text(0.5, 0.5, "not measured", ha="center", transform=ax.transAxes)

    cpu = [r for r in ok if r.scenario == "cpu"] or ok
    caps = sorted({r.cap for r in cpu})
    present = [v for v in VARIANTS if any(r.variant == v for r in cpu)]
    width = 0.8 / max(1, len(present))
    for ax, attr, title, unit in (
        (axes[0][2], "pss_per_job_mb", "peak PSS of the Chromium tree per concurrent job", "MB"),
        (axes[0][3], "cpu_s_per_job", "CPU seconds per job (client side, CPU-bound)", "CPU s"),
    ):
        for i, variant in enumerate(present):
            values = []
            for cap in caps:
                r = next((x for x in cpu if x.variant == variant and x.cap == cap), None)
                values.append((getattr(r, attr) or 0) if r else 0)
            ax.bar(
                [c + (i - (len(present) - 1) / 2) * width for c in caps],
                values,
                width,
                label=VARIANT_LABELS[variant],
            )
        ax.set_title(title)
        ax.set_xlabel("cap")
        ax.set_ylabel(f"{unit} per job")
        ax.set_xticks(caps or [1])
        if present:
            ax.legend(fontsize=8)
        ax.grid(alpha=0.3, axis="y")

    ax = axes[1][0]
    # The cap where most variants ran (ties: the highest), so the steps compare like for like.
    top = max(caps, key=lambda c: (sum(r.cap == c for r in cpu), c)) if caps else None
    rows = [r for r in cpu if r.cap == top]
    for i, r in enumerate(sorted(rows, key=lambda r: VARIANTS.index(r.variant))):
        ax.barh(
            [i * (len(STEP_ORDER) + 1) + j for j in range(len(STEP_ORDER))],
            [r.step_p95_s.get(s, 0) for s in STEP_ORDER],
            label=VARIANT_LABELS[r.variant],
        )
    ax.set_yticks(
        [i * (len(STEP_ORDER) + 1) + j for i in range(len(rows)) for j in range(len(STEP_ORDER))]
    )
    ax.set_yticklabels([STEP_SHORT.get(s, s) for _ in rows for s in STEP_ORDER], fontsize=6)
    ax.invert_yaxis()
    ax.set_title(f"p95 seconds per step (CPU-bound, cap {top})")
    ax.set_xlabel("seconds")
    if rows:
        ax.legend(fontsize=8)

    ax = axes[1][1]
    m = report.memory
    if m and m.marks:
        ax.plot(
            [x.jobs for x in m.marks],
            [x.window_peak_mb or 0 for x in m.marks],
            marker="o",
            label="peak since the last mark",
        )
        ax.plot(
            [x.jobs for x in m.marks if x.processes],  # none while the browser relaunches
            [x.pss_mb for x in m.marks if x.processes],
            marker=".",
            linestyle="--",
            label="at the mark",
        )
        for k in range(m.recycle_browser_after, m.jobs + 1, m.recycle_browser_after):
            ax.axvline(k, color="grey", alpha=0.4, linestyle=":")
        ax.set_ylim(bottom=0)
        ax.legend(fontsize=8)
    else:
        ax.text(0.5, 0.5, report.memory_status, ha="center", transform=ax.transAxes)
    ax.set_title(
        f"memory mode: runner PSS over jobs (cap {m.cap if m else '-'}; dotted: browser recycle)"
    )
    ax.set_xlabel("jobs done")
    ax.set_ylabel("PSS MB")
    ax.grid(alpha=0.3)

    ax = axes[1][2]
    for impl, workload, style in (
        ("store", "lifecycle", "-"),
        ("raw", "lifecycle", "-"),
        ("store", "claim_complete", "--"),
        ("raw", "claim_complete", "--"),
    ):
        _plot_jobs_per_s(
            ax,
            (q for q in report.queue if q.impl == impl and q.workload == workload),
            "claimers",
            linestyle=style,
            label=f"{impl} {workload}",
        )
    if ax.lines:
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.legend(fontsize=8)
    else:
        ax.text(0.5, 0.5, report.queue_status, ha="center", transform=ax.transAxes)
    ax.set_title(f"queue mode (PostgreSQL, claimers as {report.queue_claimers_as})")
    ax.set_xlabel("concurrent claimers")
    ax.set_ylabel("jobs/s")
    ax.grid(alpha=0.3, which="both")

    ax = axes[1][3]
    ax.axis("off")
    ax.set_title("targets")
    for i, t in enumerate(report.targets):
        colour = {True: "green", False: "red", None: "grey"}[t.met]
        ax.text(
            0,
            1 - i * 0.13,
            f"{t.verdict}: {t.name}",
            color=colour,
            fontsize=10,
            fontweight="bold",
            transform=ax.transAxes,
            va="top",
        )
        ax.text(
            0, 1 - i * 0.13 - 0.05, t.measured[:70], fontsize=8, transform=ax.transAxes, va="top"
        )

    mc = report.machine
    fig.suptitle(
        f"submissions-pipeline benchmark ({report.mode}, {report.started_at:%Y-%m-%d %H:%M} UTC) "
        f"- {mc.cpus} x {mc.cpu_model}, load {mc.load_avg_start[0]:.1f}"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
