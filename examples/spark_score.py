"""Score a strata dataset with PySpark, one group of practices (a PCN) at a time.

The nightly `strata run` scores a whole dataset on one machine. When the
extract already lives in Spark (or is too large for one machine), the same
lists can be made by handing each primary care network (PCN) to
`strata.score` on a Spark executor:

    patients.groupBy(pcn).cogroup(events.groupBy(pcn)).applyInArrow(score_group, schema)

A practice's list is ranked within the practice, so any split that keeps
each practice whole gives exactly the rows of the run folder's
`list.parquet`. The groups are PCNs; a practice whose people name several
PCNs goes whole to the smallest code, and a practice with no PCN code is a
group of its own.

How the tables travel: every event table (each `*.parquet` of the dataset
except `patients` and `contacts`) and the `contacts` table are unioned into
one long DataFrame with a `table` column (patient_id, code, date, value for
events; patient_id, date, outcome for contacts; the other columns NULL).
Each event row gets its person's group by a join on patient_id (events for
people not in `patients` are dropped here; `strata run` ignores them too).
`score_group` splits the long table back by `table` and calls
`strata.score(pack, patients, events={...}, contacts=..., as_of=...)`.

Settled once, on the driver, before the job:

- the as-of date: `--as-of`, else `extract_date` from `dataset.toml`, else
  the latest date in any event table (the rules of `strata run`). It must
  be one date for every group: a group left to work it out alone would
  take its own latest event date.
- the output schema: `strata.score` of one person with empty event tables
  (zero patients is an error, as in `strata run`) gives the list's columns;
  each group's result is cast to it, since Spark accepts only `string` (not
  `large_string` or `string_view`) where the schema says string.

Usage (from the repository root, with `strata` and `pyspark` importable):

    python examples/spark_score.py --pack rules/proactive-care --data sample-data \\
        --out /tmp/spark-list --partitions 4

`--master` takes any Spark master (default local[2]). The result is one
Parquet file in the `--out` folder (Spark's layout), ordered by
practice_code then rank. Only Parquet datasets are read (convert CSV tables
first, or use `strata run`). On a cluster, every executor needs `strata`
and `pyarrow` installed in its Python.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import time
import tomllib
from pathlib import Path

# Functions of this module run on Spark's Python workers. When it is
# imported (by a test, say) rather than run as a script, the workers could
# not import it by name: have Spark's cloudpickle send it by value.
if __name__ != "__main__":  # pragma: no branch
    try:
        from pyspark import cloudpickle as _cloudpickle

        _cloudpickle.register_pickle_by_value(sys.modules[__name__])
    except ImportError:  # pyspark missing: nothing here can run anyway
        pass

EVENT_COLUMNS = ("patient_id", "code", "date", "value")
CONTACT_COLUMNS = ("patient_id", "date", "outcome")
LONG_COLUMNS = ("table", "patient_id", "code", "date", "value", "outcome")
PATIENT_DATE_COLUMNS = ("date_of_birth", "registration_end", "date_of_death")
CONTACTS = "contacts"
GROUP = "_strata_group"  # the group key column added to both sides


def make_session(master: str = "local[2]", partitions: int = 4, app: str = "strata-spark-score"):
    """A SparkSession set up for this job.

    - Python workers run the driver's interpreter (the one that has
      `strata` and `pyarrow`), not whatever `python3` is on PATH.
    - `spark.sql.shuffle.partitions` is the number of tasks the cogroup
      runs; adaptive execution is told not to merge them back into one.
    - Session time zone UTC: Parquet timestamps used as dates are cut to
      the UTC day, as `strata run` does.
    """
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    from pyspark.sql import SparkSession

    return (
        SparkSession.builder.master(master)
        .appName(app)
        .config("spark.sql.shuffle.partitions", str(partitions))
        .config("spark.default.parallelism", str(partitions))
        .config("spark.sql.adaptive.coalescePartitions.enabled", "false")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .getOrCreate()
    )


def dataset_tables(data: str | os.PathLike) -> tuple[Path, dict[str, Path], Path | None]:
    """(patients, {event table name: path}, contacts or None) of a Parquet dataset folder."""
    data = Path(data)
    if not data.is_dir():
        raise ValueError(f"{data}: not a dataset folder")
    csv = sorted(p.name for p in data.glob("*.csv") if not p.name.startswith("."))
    if csv:
        raise ValueError(
            f"{data}: CSV tables ({', '.join(csv)}): this example reads Parquet only; "
            "convert them or use `strata run`"
        )
    tables = {
        p.stem: p
        for p in sorted(data.glob("*.parquet"))
        if not p.name.startswith(".") and p.is_file()
    }
    if "patients" not in tables:
        raise ValueError(f"{data}: no patients.parquet")
    patients = tables.pop("patients")
    contacts = tables.pop(CONTACTS, None)
    return patients, tables, contacts


def dataset_extract_date(data: str | os.PathLike) -> dt.date | None:
    """`extract_date` from the dataset's `dataset.toml`, if there is one."""
    path = Path(data) / "dataset.toml"
    if not path.is_file():
        return None
    value = tomllib.loads(path.read_text(encoding="utf-8")).get("extract_date")
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    return dt.date.fromisoformat(str(value).strip())


def _as_date(col, dtype):
    """A date column: Parquet timestamps cut to the day (session time zone: UTC)."""
    from pyspark.sql.types import DateType

    return col if isinstance(dtype, DateType) else col.cast("date")


def read_dataset(spark, data):
    """(patients, long events, event table names, raw event DataFrames) for a dataset folder.

    `patients` keeps every column (packs read extra patient columns by
    name) plus the group key; the long table has LONG_COLUMNS plus the key.
    """
    from pyspark.sql import functions as F

    patients_path, event_paths, contacts_path = dataset_tables(data)
    patients = spark.read.parquet(str(patients_path))
    for name in PATIENT_DATE_COLUMNS:
        if name in patients.columns:
            patients = patients.withColumn(name, _as_date(F.col(name), patients.schema[name].dataType))
    id_type = patients.schema["patient_id"].dataType

    # One group per PCN; a practice is never split between groups.
    if "pcn_code" in patients.columns:
        practice_group = patients.groupBy("practice_code").agg(F.min("pcn_code").alias(GROUP))
        key = F.coalesce(F.col(GROUP), F.concat(F.lit("practice "), F.col("practice_code")))
        patients = (
            patients.join(F.broadcast(practice_group), "practice_code", "left")
            .withColumn(GROUP, key)
            .select(*[F.col(f"`{c}`") for c in patients.columns], GROUP)
        )
    else:
        patients = patients.withColumn(GROUP, F.col("practice_code"))

    raw_events = {}
    parts = []
    for name, path in event_paths.items():
        df = spark.read.parquet(str(path))
        raw_events[name] = df
        # value is optional; text values are cast too (bad text becomes NULL
        # here, where `strata run` would stop with an error).
        value = F.col("value").cast("double") if "value" in df.columns else F.lit(None).cast("double")
        parts.append(
            df.select(
                F.lit(name).alias("table"),
                F.col("patient_id").cast(id_type).alias("patient_id"),
                F.col("code").cast("string").alias("code"),
                _as_date(F.col("date"), df.schema["date"].dataType).alias("date"),
                value.alias("value"),
                F.lit(None).cast("string").alias("outcome"),
            )
        )
    if contacts_path is not None:
        df = spark.read.parquet(str(contacts_path))
        parts.append(
            df.select(
                F.lit(CONTACTS).alias("table"),
                F.col("patient_id").cast(id_type).alias("patient_id"),
                F.lit(None).cast("string").alias("code"),
                _as_date(F.col("date"), df.schema["date"].dataType).alias("date"),
                F.lit(None).cast("double").alias("value"),
                F.col("outcome").cast("string").alias("outcome")
                if "outcome" in df.columns
                else F.lit(None).cast("string").alias("outcome"),
            )
        )
    if parts:
        long = parts[0]
        for part in parts[1:]:
            long = long.unionByName(part)
    else:
        long = spark.createDataFrame(
            [], f"table string, patient_id {id_type.simpleString()}, code string, date date, "
            "value double, outcome string"
        )
    # The key is re-derived under a new name: a column of `patients` itself
    # on both sides of the cogroup would be an ambiguous self-join to Spark.
    keys = patients.select(F.col("patient_id"), F.col(GROUP).alias("_key"))
    long = (
        long.join(keys, "patient_id", "inner")
        .select(*LONG_COLUMNS, F.col("_key").alias(GROUP))
    )
    return patients, long, list(event_paths), raw_events


def _plain_string_types(schema):
    """The schema with large/view string and binary types made plain (what Spark takes)."""
    import pyarrow as pa

    def plain(t):
        if pa.types.is_large_string(t) or pa.types.is_string_view(t):
            return pa.string()
        if pa.types.is_large_binary(t) or pa.types.is_binary_view(t):
            return pa.binary()
        if pa.types.is_dictionary(t):
            return plain(t.value_type)
        return t

    return pa.schema([f.with_type(plain(f.type)) for f in schema])


def make_score_group(pack, event_names, has_contacts, as_of, out_schema=None, score=None, threads=None):
    """The function given to applyInArrow: (patients, long events) -> list rows of one group.

    `score` is `strata.score` unless a stand-in is given (tests); `threads`
    defaults to the task's CPUs (spark.task.cpus), so concurrent tasks do
    not each take every core.
    """
    pack = str(pack)
    event_names = list(event_names)

    def score_group(patients, long):
        import pyarrow as pa
        import pyarrow.compute as pc

        score_fn = score
        if score_fn is None:
            import strata

            score_fn = strata.score
        n_threads = threads
        if n_threads is None:
            try:
                from pyspark import TaskContext

                ctx = TaskContext.get()
                n_threads = ctx.cpus() if ctx is not None else None
            except Exception:
                n_threads = None
        patients = patients.drop_columns([GROUP]) if GROUP in patients.column_names else patients
        if out_schema is not None and patients.num_rows == 0:
            return out_schema.empty_table()
        names = long.column("table")
        events = {
            name: long.filter(pc.equal(names, name)).select(list(EVENT_COLUMNS))
            for name in event_names
        }
        contacts = (
            long.filter(pc.equal(names, CONTACTS)).select(list(CONTACT_COLUMNS))
            if has_contacts
            else None
        )
        result = score_fn(
            pack, patients, events=events, contacts=contacts, as_of=as_of, threads=n_threads
        )
        if not isinstance(result, pa.Table):
            result = pa.table(result)
        if out_schema is None:
            return result
        missing = [n for n in out_schema.names if n not in result.column_names]
        if missing or len(result.column_names) != len(out_schema.names):
            raise ValueError(
                f"score returned columns {result.column_names}, expected {out_schema.names}"
            )
        return result.select(out_schema.names).cast(out_schema)

    return score_group


def settle_as_of(as_of, data, raw_events) -> dt.date:
    """--as-of, else dataset.toml's extract_date, else the latest event date (as `strata run`)."""
    from pyspark.sql import functions as F

    if as_of is not None:
        return as_of if isinstance(as_of, dt.date) else dt.date.fromisoformat(str(as_of))
    extract = dataset_extract_date(data)
    if extract is not None:
        return extract
    latest = None
    for df in raw_events.values():
        d = df.select(F.max(_as_date(F.col("date"), df.schema["date"].dataType))).first()[0]
        if d is not None and (latest is None or d > latest):
            latest = d
    if latest is None:
        raise ValueError("the dataset has no events and no extract_date: give --as-of")
    return latest


def spark_score(spark, pack, data, as_of=None, score=None, threads=None, check_duplicates=True):
    """The list of a whole dataset, scored one PCN per Spark group.

    Returns (DataFrame of list rows, as-of date, output Arrow schema). The
    DataFrame is lazy and unordered; `write_list` orders and writes it.
    """
    from pyspark.sql import functions as F
    from pyspark.sql.pandas.types import from_arrow_schema

    patients, long, event_names, raw_events = read_dataset(spark, data)
    as_of = settle_as_of(as_of, data, raw_events)
    has_contacts = dataset_tables(data)[2] is not None

    if check_duplicates:
        # Split into groups, a duplicate id in two PCNs would never meet
        # itself; `strata run` refuses such a dataset, and so does this.
        dup = patients.groupBy("patient_id").count().filter(F.col("count") > 1).limit(1).collect()
        if dup:
            raise ValueError("patients: duplicate patient_id (strata run refuses this dataset)")

    # The output schema, up front: score one person with empty event tables
    # (a patients table with no rows is refused, as by `strata run`).
    probe = make_score_group(pack, event_names, has_contacts, as_of, score=score, threads=1)
    sample = probe(patients.limit(1).toArrow(), long.limit(0).toArrow())
    out_schema = _plain_string_types(sample.schema)
    spark_schema = from_arrow_schema(out_schema)

    fn = make_score_group(
        pack, event_names, has_contacts, as_of, out_schema=out_schema, score=score, threads=threads
    )
    result = patients.groupBy(GROUP).cogroup(long.groupBy(GROUP)).applyInArrow(fn, spark_schema)
    return result, as_of, out_schema


def write_list(result, out, overwrite=False):
    """One Parquet file in `out` (Spark's folder layout), ordered by practice_code then rank."""
    (
        result.repartition(1)
        .sortWithinPartitions("practice_code", "rank")
        .write.mode("overwrite" if overwrite else "errorifexists")
        .parquet(str(out))
    )


def main(argv=None):
    parser = argparse.ArgumentParser(
        description="Score a strata dataset with PySpark, one PCN per group (see the module docstring)."
    )
    parser.add_argument("--pack", required=True, help="rule pack folder (holding pack.toml)")
    parser.add_argument("--data", required=True, help="dataset folder of Parquet tables")
    parser.add_argument("--out", required=True, help="output folder for the list (Parquet)")
    parser.add_argument("--as-of", type=dt.date.fromisoformat, default=None,
                        help="as-of date YYYY-MM-DD (default: extract_date, else latest event date)")
    parser.add_argument("--partitions", type=int, default=4,
                        help="shuffle partitions: tasks the groups are spread over (default 4)")
    parser.add_argument("--master", default="local[2]", help="Spark master (default local[2])")
    parser.add_argument("--threads", type=int, default=None,
                        help="strata threads per task (default: spark.task.cpus)")
    parser.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    args = parser.parse_args(argv)

    started = time.perf_counter()
    spark = make_session(args.master, args.partitions)
    session_s = time.perf_counter() - started
    try:
        t0 = time.perf_counter()
        result, as_of, _ = spark_score(spark, args.pack, args.data, as_of=args.as_of,
                                       threads=args.threads)
        write_list(result, args.out, overwrite=args.overwrite)
        job_s = time.perf_counter() - t0
        rows = spark.read.parquet(str(args.out)).count()
    finally:
        spark.stop()
    print(f"as-of {as_of}: {rows} listed, written to {args.out}")
    print(f"spark session {session_s:.1f} s, scoring and writing {job_s:.1f} s, "
          f"total {time.perf_counter() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
