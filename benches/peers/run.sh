#!/usr/bin/env bash
# Peer benchmark (issue 8): `strata run` against DuckDB and Polars running the
# same rule pack (benches/peers/pack: proactive-care 1.0.0, frozen) on the same synthetic datasets.
#
#   benches/peers/run.sh                              # sizes 1,000,000 and 10,000,000 people
#   SIZES=1000000 REPEAT=3 benches/peers/run.sh       # one size
#
# Settings (environment):
#   STRATA     strata binary                 (default: target/release/strata; build it with
#                                             `cargo build --release`)
#   SIZES      people per dataset            (default: "1000000 10000000")
#   REPEAT     timed runs of each engine     (default: 3)
#   DATA_ROOT  datasets and outputs          (default: /tmp/strata-peers; the dataset of size N
#                                             is DATA_ROOT/N, made once by `strata synth` and reused)
#   CSV        1: also time strata on the same people written as CSV (DATA_ROOT/N-csv, made once
#                                             by `strata synth --format csv`; 18.6 GB at 10M), and
#                                             check it ranks them as from Parquet (default: 0)
#
# What it does:
#   1. makes a Python venv in benches/peers/.venv with requirements.txt (duckdb, polars);
#   2. per size N: `strata synth --patients N --practices max(20, N/50000) --seed 7`;
#   3. runs, REPEAT times and interleaved (strata, duckdb, tuned, polars, floor, strata, ...),
#      each under `/usr/bin/time -v`:
#        strata  `strata run --pack benches/peers/pack --data DIR --out OUT --name bench`
#        duckdb  proactive-care.duckdb.sql        (idiomatic SQL)
#        tuned   proactive-care.tuned.duckdb.sql  (hand-tuned SQL: one bit per codelist)
#        polars  proactive_care_polars.py         (lazy query, streaming engine)
#        floor   scan-floor.duckdb.sql            (DuckDB only reads every column of events.parquet)
#        csv     with CSV=1: `strata run` on DATA_ROOT/N-csv, the same people as CSV
#      (the page cache is warmed by reading the dataset once before the first run);
#   4. checks that duckdb, tuned and polars produce exactly strata's ranked lists
#      (check.py: same rows and same md5 of the sorted (practice_code, rank, patient_id, tier,
#      score) rows), printing PASS / FAIL per engine;
#   5. appends a dated section to benches/peers/RESULTS.md: the machine, the versions and, per
#      size, the medians of wall time, CPU time and peak RSS, with people/s and events/s, and
#      the medians of strata's stage timings (each run's manifest.json `timings_ms`).
# Exit status: non-zero when a run fails or any peer's lists differ from strata's.
# Not run by CI.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
STRATA="${STRATA:-$ROOT/target/release/strata}"
SIZES="${SIZES:-1000000 10000000}"
REPEAT="${REPEAT:-3}"
CSV="${CSV:-0}"
DATA_ROOT="${DATA_ROOT:-/tmp/strata-peers}"
PACK="$HERE/pack"
CODELISTS="$PACK/codelists"
VENV="$HERE/.venv"
PY="$VENV/bin/python"
RESULTS="$HERE/RESULTS.md"

if [[ ! -x "$STRATA" ]]; then
    echo "run.sh: no strata binary at $STRATA: run \`cargo build --release\` or set STRATA" >&2
    exit 2
fi
STRATA="$(cd "$(dirname "$STRATA")" && pwd)/$(basename "$STRATA")"
[[ -x /usr/bin/time ]] || { echo "run.sh: /usr/bin/time (GNU time) is needed" >&2; exit 2; }

# ---- 1. the peers -------------------------------------------------------------
if [[ ! -x "$PY" ]]; then
    python3 -m venv "$VENV"
fi
"$PY" -m pip install --quiet --disable-pip-version-check -r "$HERE/requirements.txt"

mkdir -p "$DATA_ROOT"
section="$(mktemp)"
trap 'rm -f "$section"' EXIT
failed=0

# run ENGINE REP LOG COMMAND...: one timed run; the /usr/bin/time report goes to TIMES/ENGINE.REP.time
run() {
    local engine="$1" rep="$2" log="$3"
    shift 3
    if ! /usr/bin/time -v -o "$TIMES/$engine.$rep.time" "$@" >>"$log" 2>&1; then
        echo "run.sh: $engine (run $rep) failed; its output is in $log" >&2
        tail -n 20 "$log" >&2
        exit 1
    fi
    printf '  %-7s run %s: %s s wall\n' "$engine" "$rep" \
        "$(sed -n 's/.*Elapsed (wall clock) time (h:mm:ss or m:ss): //p' "$TIMES/$engine.$rep.time")"
}

for N in $SIZES; do
    K=$(( N / 50000 ))
    (( K >= 20 )) || K=20
    DIR="$DATA_ROOT/$N"

    # ---- 2. the dataset (made once; a half-made one is remade) ------------------
    if [[ ! -f "$DIR/dataset.toml" ]]; then
        echo "== synth: $N people, $K practices -> $DIR"
        rm -rf "$DIR" "$DIR.partial"
        "$STRATA" synth --patients "$N" --practices "$K" --seed 7 --out "$DIR.partial" >/dev/null
        mv "$DIR.partial" "$DIR"
    fi
    if [[ "$CSV" == 1 && ! -f "$DIR-csv/dataset.toml" ]]; then
        echo "== synth: $N people, $K practices, as CSV -> $DIR-csv"
        rm -rf "$DIR-csv" "$DIR-csv.partial"
        "$STRATA" synth --patients "$N" --practices "$K" --seed 7 --format csv --out "$DIR-csv.partial" >/dev/null
        mv "$DIR-csv.partial" "$DIR-csv"
    fi

    OUT="$DATA_ROOT/out/$N"
    TIMES="$OUT/times"
    rm -rf "$OUT"
    mkdir -p "$TIMES"
    cat "$DIR"/*.parquet >/dev/null   # warm the page cache: every engine reads from memory
    if [[ "$CSV" == 1 ]]; then cat "$DIR-csv"/*.csv >/dev/null; fi

    # ---- 3. the timed runs, interleaved ------------------------------------------
    echo "== $N people: $REPEAT runs of each engine, interleaved"
    for rep in $(seq 1 "$REPEAT"); do
        run strata "$rep" "$OUT/strata.log" \
            "$STRATA" run --pack "$PACK" --data "$DIR" --out "$OUT/strata" --name bench --log-level warn
        cp "$OUT/strata/bench/manifest.json" "$TIMES/strata.$rep.manifest.json"
        run duckdb "$rep" "$OUT/duckdb.log" \
            "$PY" "$HERE/run_duckdb.py" "$HERE/proactive-care.duckdb.sql" "$DIR" "$CODELISTS" "$OUT/duckdb.parquet"
        run tuned "$rep" "$OUT/tuned.log" \
            "$PY" "$HERE/run_duckdb.py" "$HERE/proactive-care.tuned.duckdb.sql" "$DIR" "$CODELISTS" "$OUT/tuned.parquet"
        run polars "$rep" "$OUT/polars.log" \
            "$PY" "$HERE/proactive_care_polars.py" "$DIR" "$CODELISTS" "$OUT/polars.parquet"
        run floor "$rep" "$OUT/floor.log" \
            "$PY" "$HERE/run_duckdb.py" "$HERE/scan-floor.duckdb.sql" "$DIR" "$CODELISTS" "$OUT/floor.parquet"
        if [[ "$CSV" == 1 ]]; then
            run csv "$rep" "$OUT/csv.log" \
                "$STRATA" run --pack "$PACK" --data "$DIR-csv" --out "$OUT/csv" --name bench --log-level warn
            cp "$OUT/csv/bench/manifest.json" "$TIMES/csv.$rep.manifest.json"
        fi
    done

    # ---- 4. same lists? ---------------------------------------------------------------
    echo "== $N people: do the peers rank exactly the same people as strata?"
    check_status=0
    peers=(duckdb="$OUT/duckdb.parquet" tuned="$OUT/tuned.parquet" polars="$OUT/polars.parquet")
    if [[ "$CSV" == 1 ]]; then peers+=(csv="$OUT/csv/bench/list.parquet"); fi
    "$PY" "$HERE/check.py" "$OUT/strata/bench/list.parquet" "${peers[@]}" \
        | tee "$OUT/check.log" || check_status=$?
    if (( check_status != 0 )); then
        failed=1
        echo "run.sh: FAIL: a peer's lists differ from strata's at $N people (see above)" >&2
    fi

    {
        echo "### $N people ($K practices, seed 7)"
        echo
        "$PY" "$HERE/report.py" "$DIR" "$TIMES" "$OUT/check.log"
        echo '```text'
        cat "$OUT/check.log"
        echo '```'
        echo
    } >>"$section"
done

# ---- 5. RESULTS.md --------------------------------------------------------------------
if [[ ! -f "$RESULTS" ]]; then
    cat >"$RESULTS" <<'EOF'
# Peer benchmark results

Written by `benches/peers/run.sh` (see `benches/peers/README.md`); each run appends a dated
section. Times are medians over the repetitions; CPU is user + sys; people/s and events/s
are at the median wall time (events = rows of events.parquet + admissions.parquet).
EOF
fi
{
    echo
    echo "## $(date -u '+%Y-%m-%d %H:%M UTC'): sizes $SIZES, $REPEAT runs each"
    echo
    echo '```text'
    echo "cpu:     $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | sort -u | paste -sd ';')"
    echo "nproc:   $(nproc)"
    echo "free -g:"
    free -g
    echo "kernel:  $(uname -sr)"
    echo "strata:  $("$STRATA" --version) ($STRATA)"
    echo "duckdb:  $("$PY" -c 'import duckdb; print(duckdb.__version__)')"
    echo "polars:  $("$PY" -c 'import polars; print(polars.__version__)')"
    echo "python:  $("$PY" -c 'import sys; print(sys.version.split()[0])')"
    "$PY" -c 'import duckdb, polars'   # warm, then time what the peers' wall times include
    echo "python start + import (s wall, in every peer time): duckdb" \
        "$( { /usr/bin/time -f %e "$PY" -c 'import duckdb'; } 2>&1 ), polars" \
        "$( { /usr/bin/time -f %e "$PY" -c 'import polars'; } 2>&1 )"
    echo '```'
    echo
    cat "$section"
} >>"$RESULTS"
echo "== results appended to $RESULTS"

if (( failed )); then
    echo "run.sh: FAIL: see the check output above" >&2
    exit 1
fi
echo "== PASS: every peer produced strata's lists"
