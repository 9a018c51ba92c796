"""The monitoring report's figure: PSI per feature and model version against the threshold, and the
reference and live distributions of the features that moved most."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # Airflow workers are headless
import matplotlib.pyplot as plt  # noqa: E402

from sentiment_mlops.monitoring.profile import FEATURES  # noqa: E402


def drift_png(report: dict[str, Any], threshold: float, path: Path) -> Path:
    """One row per measured model version: its PSI bars, then its most drifted feature's
    reference vs live shares. A report with nothing measured gets a figure saying so."""
    measured = [v for v in report["versions"] if v.get("drift")]
    rows = max(1, len(measured))
    fig, axes = plt.subplots(rows, 2, figsize=(11, 3.2 * rows), squeeze=False)
    if not measured:
        for ax in axes[0]:
            ax.axis("off")
        axes[0][0].text(0, 0.5, f"no version with enough predictions in the window ({report['rows']} rows)")
    for (psi_ax, dist_ax), version in zip(axes, measured, strict=False):
        label = f"{version['model_name']} v{version['model_version']}"
        values = [version["drift"][f]["psi"] for f in FEATURES]
        colors = ["tab:red" if v > threshold else "tab:blue" for v in values]
        psi_ax.barh(list(FEATURES), values, color=colors)
        psi_ax.axvline(threshold, color="black", linestyle="--", linewidth=1, label=f"threshold {threshold:g}")
        psi_ax.set_title(f"PSI, {label} ({version['rows']:,} rows)")
        psi_ax.legend(loc="lower right", fontsize=8)
        worst = max(FEATURES, key=lambda f: version["drift"][f]["psi"])
        expected, actual = version["drift"][worst]["expected"], version["drift"][worst]["actual"]
        xs = range(len(expected))
        dist_ax.bar([x - 0.2 for x in xs], expected, width=0.4, label="reference (test split)")
        dist_ax.bar([x + 0.2 for x in xs], actual, width=0.4, label="live window")
        dist_ax.set_title(f"{worst}: share per bin")
        dist_ax.set_xlabel("bin")
        dist_ax.legend(fontsize=8)
    fig.suptitle(f"Model monitoring {report['window']['start']} .. {report['window']['end']}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
