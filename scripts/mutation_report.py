"""Summarise a mutmut run (see scripts/mutation.sh): mutation score per module and the surviving mutants.

Usage: python scripts/mutation_report.py WORKDIR   (the folder mutmut ran in)
"""

from __future__ import annotations

import subprocess
import sys
from collections import Counter, defaultdict

# A mutant a test noticed: failed (killed), too slow (timeout) or crashed the test process (segfault).
CAUGHT = {"killed", "timeout", "segfault", "caught by type check"}


def mutant_statuses(workdir: str) -> dict[str, str]:
    """mutant name -> status, from `mutmut results --all true`."""
    out = subprocess.run(
        ["mutmut", "results", "--all", "true"], cwd=workdir, capture_output=True, text=True, check=True
    ).stdout
    statuses = {}
    for line in out.splitlines():
        name, sep, status = line.strip().rpartition(": ")
        if sep and "__mutmut_" in name:
            statuses[name] = status.strip()
    return statuses


def module_of(mutant: str) -> str:
    """`src.sentiment_mlops.jobs.arguments.x_training_args__mutmut_3` -> `sentiment_mlops.jobs.arguments`."""
    parts = mutant.split(".")
    for i, part in enumerate(parts):
        if part.startswith(("x_", "xǁ")):
            return ".".join(parts[:i]).removeprefix("src.")
    return mutant.rsplit(".", 1)[0]


def report(statuses: dict[str, str]) -> str:
    by_module: dict[str, Counter[str]] = defaultdict(Counter)
    survivors: dict[str, list[str]] = defaultdict(list)
    for name, status in statuses.items():
        module = module_of(name)
        by_module[module][status] += 1
        if status not in CAUGHT:
            survivors[module].append(f"{name} ({status})")
    lines = ["| module | mutants | caught | not caught | score |", "| --- | ---: | ---: | ---: | ---: |"]
    total = caught_total = 0
    for module in sorted(by_module):
        counts = by_module[module]
        n = sum(counts.values())
        caught = sum(counts[s] for s in CAUGHT)
        total, caught_total = total + n, caught_total + caught
        lines.append(f"| {module} | {n} | {caught} | {n - caught} | {100 * caught / n:.1f}% |")
    if total:
        lines.append(f"| all | {total} | {caught_total} | {total - caught_total} | {100 * caught_total / total:.1f}% |")
    lines += ["", "Mutants no test caught:"]
    for module in sorted(survivors):
        lines += [f"- {name}" for name in sorted(survivors[module])]
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    print(report(mutant_statuses(argv[1] if len(argv) > 1 else ".mutation")))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
