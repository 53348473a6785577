#!/usr/bin/env bash
# Every benchmark of docs/performance.md, one after the other (never two at once: they time the same machine),
# on one PostgreSQL cluster. Figures go to <out>/*.json and <out>/*.log (default .cache/bench/<timestamp>).
#   bash bench/run_all.sh [--quick] [--out DIR] [--compare-ref REF]
#     --quick        fewer rounds, fleet of 5, no 1 GB backup drill (a smoke run of the scripts)
#     --compare-ref  the revision verify.yml and the time-to-NO-GO runs are compared with (default cc02c5b,
#                    the collection before the performance work)
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
export PATH="$root/.venv/bin:$PATH"
export ANSIBLE_COLLECTIONS_PATH="$root/.build/collections"
quick=0
out="$root/.cache/bench/$(date +%Y%m%dT%H%M%S)"
ref=cc02c5b
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) quick=1 ;;
    --out) out=$2; shift ;;
    --compare-ref) ref=$2; shift ;;
    *) echo "usage: $0 [--quick] [--out DIR] [--compare-ref REF]" >&2; exit 2 ;;
  esac
  shift
done
mkdir -p "$out"
if [ ! -x .venv/bin/python ] || [ ! -d .build/collections ]; then
  echo "run_all: run 'make setup' first" >&2
  exit 2
fi
pg_state="$out/pg.json"
python tests/harness/pgcluster.py start --state "$pg_state" >/dev/null || exit 1
trap 'python tests/harness/pgcluster.py stop --state "$pg_state" >/dev/null 2>&1' EXIT
export PGHARNESS_STATE="$pg_state"
failed=()

bench() {  # bench <name> <script> [args...]
  local name=$1
  shift
  echo "=== $name: $*"
  local started=$SECONDS
  python "$@" --json "$out/$name.json" 2>&1 | tee "$out/$name.log"
  local rc=${PIPESTATUS[0]}
  echo "=== $name: exit $rc after $((SECONDS - started)) s"
  [ "$rc" -eq 0 ] || failed+=("$name")
}

if [ "$quick" = 1 ]; then
  bench verify_vs_runbook bench/bench_verify_vs_runbook.py --rounds 2 --compare-ref "$ref"
  bench time_to_nogo bench/bench_time_to_nogo.py --rounds 1 --compare-ref "$ref"
  bench fleet bench/bench_fleet.py --hosts 5 --rounds 1 --db-once
  bench slo_analysis bench/bench_slo_analysis.py --rounds 1 --decision-rounds 1
  bench canary_judgement bench/bench_canary_judgement.py --runs 200 --faulty-runs 50
else
  bench verify_vs_runbook bench/bench_verify_vs_runbook.py --rounds 9 --timer --compare-ref "$ref"
  bench time_to_nogo bench/bench_time_to_nogo.py --rounds 3 --compare-ref "$ref"
  bench fleet bench/bench_fleet.py --hosts 20 --rounds 3 --db-once
  bench slo_analysis bench/bench_slo_analysis.py --rounds 3 --decision-rounds 4
  bench canary_judgement bench/bench_canary_judgement.py
  bench soak_schedule bench/bench_soak_schedule.py
  echo "=== backup_drill: bench/bench_backup_drill.py (1 GB database)"
  python bench/bench_backup_drill.py 2>&1 | tee "$out/backup_drill.log"
  [ "${PIPESTATUS[0]}" -eq 0 ] || failed+=("backup_drill")
fi
echo "run_all: figures in $out"
if [ ${#failed[@]} -gt 0 ]; then
  echo "run_all: targets missed (or a run failed): ${failed[*]}" >&2
  exit 1
fi
