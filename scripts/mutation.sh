#!/usr/bin/env bash
# Mutation testing of the pure-Python core with mutmut (configured in pyproject.toml [tool.mutmut]):
# every mutant of the listed modules is run against the fast unit tests; a mutant no test notices is
# a behaviour no test checks. Results (score per module, surviving mutants) are printed at the end
# and recorded by hand in tests/MUTATION.md.
#
#   scripts/mutation.sh            # whole run (about 10-20 minutes on 2 cores)
#   scripts/mutation.sh --show M   # the diff of one surviving mutant M
#
# mutmut only finds a package under ./, src/ or source/, and this one lives under code/, so the run
# happens in a scratch copy (.mutation/, git-ignored) where code/ is laid out as src/.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
work="$root/.mutation"

if [[ "${1:-}" == "--show" ]]; then
    cd "$work" && exec mutmut show "$2"
fi

mkdir -p "$work"
rm -rf "$work/src" "$work/tests" && cp -a "$root/code" "$work/src"
cp -a "$root/tests" "$work/tests"
cp "$root/pyproject.toml" "$work/"
cd "$work"
rm -rf mutants  # a fresh run: no result of older sources is reused
# mutmut puts the mutated copy first on sys.path; a PYTHONPATH to the real sources would shadow it.
unset PYTHONPATH
mutmut run --max-children "${MUTMUT_CHILDREN:-2}" || true
mutmut export-cicd-stats >/dev/null 2>&1 || true
python "$root/scripts/mutation_report.py" "$work"
