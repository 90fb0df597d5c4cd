"""benches/peers/pack/pack.toml as one lazy Polars query.

usage: proactive_care_polars.py DATA_DIR CODELIST_DIR OUT.parquet [AS_OF]

DATA_DIR is a dataset folder in strata's input contract (Parquet: patients,
events, contacts, and dataset.toml for the as-of date, which AS_OF overrides);
CODELIST_DIR is the pack's codelists folder. Writes the listed people, one row
each: practice_code, rank (from 1 within the practice), patient_id, tier
('tier-1'..) and score (exact Decimal(38, 10)); the same result as
proactive-care.duckdb.sql, with the semantics of rules/FORMAT.md ("How a
person is decided"): events and contacts after the as-of date never count,
windows include both ends, codelist codes are normalised (trimmed, dots
removed, upper case) and matched exactly against event codes.
"""
import calendar
import datetime as dt
import re
import sys
from decimal import Decimal
from pathlib import Path

import polars as pl

# codelist name -> file, as declared in pack.toml (all bound to the events table)
CODELISTS = {
    "lives_alone": "lives-alone.csv",
    "housebound": "opensafely-housebound.csv",
    "no_longer_housebound": "opensafely-no-longer-housebound.csv",
    "shield": "shield.csv",
    "nonshield": "nonshield.csv",
    "moderate_frailty": "modfrail_cod.csv",
    "severe_frailty": "sevfrail_cod.csv",
    "asthma": "ast_cod.csv",
    "atrial_fibrillation": "afib_cod.csv",
    "coronary_heart_disease": "chd_cod.csv",
    "chronic_kidney_disease": "ckd_cod.csv",
    "copd": "copd_cod.csv",
    "dementia": "dem_cod.csv",
    "diabetes": "dm_cod.csv",
    "epilepsy": "epil_cod.csv",
    "heart_failure": "hf_cod.csv",
    "hypertension": "hyp_cod.csv",
    "learning_disability": "ld_cod.csv",
    "severe_mental_illness": "mh_cod.csv",
    "osteoporosis": "osteo_cod.csv",
    "peripheral_arterial_disease": "pad_cod.csv",
    "rheumatoid_arthritis": "rarth_cod.csv",
    "stroke": "strk_cod.csv",
}
LTC = [
    "asthma", "atrial_fibrillation", "coronary_heart_disease", "chronic_kidney_disease",
    "copd", "dementia", "diabetes", "epilepsy", "heart_failure", "hypertension",
    "learning_disability", "severe_mental_illness", "osteoporosis",
    "peripheral_arterial_disease", "rheumatoid_arthritis", "stroke",
]
NAME = pl.Enum(list(CODELISTS))
SCORE = pl.Decimal(38, 10)


def points(value: str) -> pl.Expr:
    return pl.lit(Decimal(value), SCORE)


def minus_months(day: dt.date, months: int) -> dt.date:
    """Calendar months back, clamped to the end of the month (2020-03-31 - 1 month = 2020-02-29)."""
    index = day.year * 12 + day.month - 1 - months
    year, month = divmod(index, 12)
    month += 1
    return dt.date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def extract_date(data_dir: Path) -> dt.date:
    text = (data_dir / "dataset.toml").read_text(encoding="utf-8")
    found = re.search(r'(?m)^\s*extract_date\s*=\s*"?(\d{4}-\d{2}-\d{2})', text)
    if not found:
        sys.exit(f"{data_dir / 'dataset.toml'}: no extract_date")
    return dt.date.fromisoformat(found.group(1))


def codelists(codelist_dir: Path) -> pl.LazyFrame:
    frames = [
        pl.read_csv(codelist_dir / file, columns=["code"], schema_overrides={"code": pl.String})
        .with_columns(name=pl.lit(name, NAME))
        for name, file in CODELISTS.items()
    ]
    return (
        pl.concat(frames)
        .with_columns(pl.col("code").str.strip_chars().str.replace_all(".", "", literal=True).str.to_uppercase())
        .unique()
        .lazy()
    )


def query(data_dir: Path, codelist_dir: Path, as_of: dt.date) -> pl.LazyFrame:
    since_2_years = minus_months(as_of, 24)           # '2 years'
    since_14_days = as_of - dt.timedelta(days=14)     # '14 days'

    dob = pl.col("date_of_birth")
    age = pl.when(dob <= as_of).then(
        as_of.year - dob.dt.year()
        - ((dob.dt.month() > as_of.month) | ((dob.dt.month() == as_of.month) & (dob.dt.day() > as_of.day))).cast(pl.Int32)
    )
    population = (
        pl.scan_parquet(data_dir / "patients.parquet")
        .filter(
            (pl.col("registration_end").is_null() | (pl.col("registration_end") > as_of))
            & (pl.col("date_of_death").is_null() | (pl.col("date_of_death") > as_of))
        )
        .select("patient_id", "practice_code", "imd_decile", age.alias("age"))
        .filter(pl.col("age") >= 18)
    )

    name, date = pl.col("name"), pl.col("date")
    per_person = (
        pl.scan_parquet(data_dir / "events.parquet")
        .filter(date <= as_of)
        .join(codelists(codelist_dir), on="code", how="inner")
        .group_by("patient_id")
        .agg(
            lives_alone=(name == "lives_alone").any(),
            housebound_last=date.filter(name == "housebound").max(),
            no_longer_housebound_last=date.filter(name == "no_longer_housebound").max(),
            shield_last=date.filter(name == "shield").max(),
            nonshield_last=date.filter(name == "nonshield").max(),
            ltc_count=name.filter(name.is_in(LTC)).n_unique(),
            frail=(name.is_in(["moderate_frailty", "severe_frailty"]) & (date >= since_2_years)).any(),
        )
    )
    recently_contacted = (
        pl.scan_parquet(data_dir / "contacts.parquet")
        .filter((pl.col("date") >= since_14_days) & (pl.col("date") <= as_of))
        .select("patient_id")
        .unique()
        .with_columns(contacted_14_days=pl.lit(True))
    )

    hb, nlhb = pl.col("housebound_last"), pl.col("no_longer_housebound_last")
    sh, ns = pl.col("shield_last"), pl.col("nonshield_last")
    ltc, age_ = pl.col("ltc_count"), pl.col("age")
    zero = points("0")
    score = (
        pl.when(pl.col("lives_alone")).then(points("3")).otherwise(zero)
        # latest_of(housebound, no_longer_housebound) = 'housebound'; a same-day tie goes to the second
        + pl.when(hb.is_not_null() & (nlhb.is_null() | (hb > nlhb))).then(points("2")).otherwise(zero)
        + pl.when(ltc >= 3).then(points("3")).otherwise(zero)
        + pl.when(ltc.is_between(1, 2)).then(points("1")).otherwise(zero)
        + pl.when(pl.col("frail")).then(points("2")).otherwise(zero)
        + pl.when(pl.col("imd_decile") <= 2).then(points("1.5")).otherwise(zero)   # NULL: no points
        + pl.when(age_ >= 80).then(points("2")).otherwise(zero)
        + pl.when(age_.is_between(70, 79)).then(points("1")).otherwise(zero)
    )
    # override "shielding": latest code wins, the exclude code (nonshield) wins a same-day tie
    shielding = (
        pl.when(sh.is_null() & ns.is_null()).then(None)
        .when(ns.is_null() | (sh > ns)).then(pl.lit("in"))
        .otherwise(pl.lit("out"))
    )
    s = pl.col("score")
    tier_no = (
        pl.when(pl.col("shielding") == "in").then(1)
        .when(s >= points("8")).then(1)
        .when(s >= points("5")).then(2)
        .when(s >= points("3")).then(3)
    )
    return (
        population
        .join(per_person, on="patient_id", how="left")
        .join(recently_contacted, on="patient_id", how="left")
        .with_columns(
            pl.col("lives_alone", "frail", "contacted_14_days").fill_null(False),
            ltc.fill_null(0),
        )
        .with_columns(score=score, shielding=shielding)
        .with_columns(tier_no=tier_no)
        .filter(
            pl.col("tier_no").is_not_null()
            & pl.col("shielding").ne_missing("out")
            & ~pl.col("contacted_14_days")
        )
        .sort(["practice_code", "tier_no", "score", "age", "patient_id"],
              descending=[False, False, True, True, False])
        .select(
            "practice_code",
            rank=pl.int_range(1, pl.len() + 1, dtype=pl.Int64).over("practice_code"),
            patient_id="patient_id",
            tier=pl.format("tier-{}", pl.col("tier_no")),
            score="score",
        )
    )


def main() -> None:
    if len(sys.argv) not in (4, 5):
        sys.exit(__doc__)
    data_dir, codelist_dir, out = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
    as_of = dt.date.fromisoformat(sys.argv[4]) if len(sys.argv) == 5 else extract_date(data_dir)
    lazy = query(data_dir, codelist_dir, as_of)
    try:
        result = lazy.collect(engine="streaming")
    except TypeError:  # Polars without the engine= argument
        result = lazy.collect(streaming=True)
    result.write_parquet(out)


if __name__ == "__main__":
    main()
