"""Summarise the timed runs of one dataset size as a markdown table.

usage: report.py DATA_DIR TIMES_DIR CHECK_LOG

TIMES_DIR holds `/usr/bin/time -v` outputs named ENGINE.REP.time; the table
gives, per engine, the median over the repetitions of wall time, CPU time
(user + sys) and peak RSS, and people/s and events/s at the median wall time
(people = rows of patients.parquet, events = rows of events.parquet +
admissions.parquet). CHECK_LOG is the output of check.py, whose PASS/FAIL
verdicts are put next to each engine. For strata's runs (ENGINE.REP.manifest.json,
each run's manifest), the median of each stage's time (`timings_ms`) follows.
"""
import json
import re
import statistics
import sys
from pathlib import Path

import duckdb

ENGINES = [
    ("strata", "strata run"),
    ("duckdb", "DuckDB, idiomatic SQL"),
    ("tuned", "DuckDB, hand-tuned SQL"),
    ("polars", "Polars, lazy (streaming)"),
    ("floor", "scan floor: DuckDB reads every column of events.parquet"),
    ("csv", "strata run, the same people as CSV (CSV=1)"),
]


def parse_time(path: Path) -> tuple[float, float, float]:
    """(wall seconds, user+sys seconds, peak RSS in MiB) from `/usr/bin/time -v`."""
    text = path.read_text()

    def field(label: str) -> str:
        found = re.search(rf"^\s*{re.escape(label)}: (.+)$", text, re.M)
        if not found:
            sys.exit(f"{path}: no '{label}'")
        return found.group(1).strip()

    wall = 0.0
    for part in field("Elapsed (wall clock) time (h:mm:ss or m:ss)").split(":"):
        wall = wall * 60 + float(part)
    cpu = float(field("User time (seconds)")) + float(field("System time (seconds)"))
    rss = int(field("Maximum resident set size (kbytes)")) / 1024
    return wall, cpu, rss


def rows(path: Path) -> int:
    if not path.exists():
        return 0
    return duckdb.connect().execute("SELECT count(*) FROM read_parquet(?)", [str(path)]).fetchone()[0]


def main() -> None:
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    data_dir, times_dir, check_log = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
    people = rows(data_dir / "patients.parquet")
    events = rows(data_dir / "events.parquet") + rows(data_dir / "admissions.parquet")
    verdicts = {}
    for line in check_log.read_text().splitlines():
        found = re.match(r"\s*(PASS|FAIL) (\w+):", line)
        if found:
            verdicts[found.group(2)] = found.group(1)
    verdicts["strata"] = "reference"
    medians = {}
    for engine, _ in ENGINES:
        runs = [parse_time(p) for p in sorted(times_dir.glob(f"{engine}.*.time"))]
        if runs:
            medians[engine] = (len(runs), *(statistics.median(r[i] for r in runs) for i in range(3)))
    strata_wall = medians.get("strata", (0, 0.0))[1]

    print(f"{people:,} people, {events:,} events (events + admissions) in `{data_dir}`\n")
    print("| engine | runs | wall s | CPU s (user+sys) | peak RSS MiB | people/s | events/s | wall vs strata | same lists |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---|")
    for engine, label in ENGINES:
        if engine not in medians:
            continue
        n, wall, cpu, rss = medians[engine]
        ratio = f"{wall / strata_wall:.2f}x" if strata_wall else ""
        verdict = verdicts.get(engine, "n/a" if engine == "floor" else "not checked")
        print(f"| {label} | {n} | {wall:.2f} | {cpu:.2f} | {rss:,.0f} | {people / wall:,.0f} | "
              f"{events / wall:,.0f} | {ratio} | {verdict} |")
    print()
    for engine, label in ENGINES:
        manifests = sorted(times_dir.glob(f"{engine}.*.manifest.json"))
        if not manifests:
            continue
        runs = [json.loads(p.read_text())["timings_ms"] for p in manifests]
        stages = [s for s in runs[0] if all(s in r for r in runs)]
        # In the order a run takes them; the total last.
        order = ["pack", "read_patients", "execute", "rank", "leavers", "write_lists",
                 "write_other_lists", "hash_inputs", "report", "total"]
        stages.sort(key=lambda s: order.index(s) if s in order else len(order) - 1)
        cells = ", ".join(f"{s} {statistics.median(r[s] for r in runs):,.0f}" for s in stages)
        spread = ", ".join(f"{s} {min(r[s] for r in runs):,}–{max(r[s] for r in runs):,}"
                           for s in ("read_patients", "rank", "write_lists") if s in stages)
        print(f"{label}, stages (manifest `timings_ms`, ms, median of {len(runs)} runs): {cells}.")
        print(f"Range over the runs: {spread}.\n")


if __name__ == "__main__":
    main()
