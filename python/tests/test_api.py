"""The Python API against the CLI: same run folder, same list, same messages.

Paths are found from this file (the repository root is two folders up);
outputs go to pytest's tmp_path. The CLI is found as `_repo.strata_bin` says.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
import subprocess
import tomllib
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import strata

from _repo import LIST_ORDER, PACK, REPO, cli_run, strata_bin

SAMPLE = REPO / "sample-data"
# Keys of manifest.json that differ between two runs of the same inputs.
VOLATILE_MANIFEST_KEYS = ("timings_ms", "command_line")


def sample_as_of() -> dt.date:
    meta = tomllib.loads((SAMPLE / "dataset.toml").read_text(encoding="utf-8"))
    as_of = meta["extract_date"]
    return as_of if isinstance(as_of, dt.date) else dt.date.fromisoformat(str(as_of))


def sample_tables() -> tuple[Path, dict[str, Path], Path]:
    """(patients, {event table: path}, contacts) of the sample dataset."""
    tables = {p.stem: p for p in sorted(SAMPLE.glob("*.parquet"))}
    patients = tables.pop("patients")
    contacts = tables.pop("contacts")
    assert tables, "the sample has event tables"
    return patients, tables, contacts


def without(manifest: dict, keys=VOLATILE_MANIFEST_KEYS) -> dict:
    return {k: v for k, v in manifest.items() if k not in keys}


def files_under(folder: Path) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def cli_sample_run(tmp_path_factory) -> Path:
    """The CLI's run of the sample with the everyday pack (made once)."""
    return cli_run(PACK, SAMPLE, tmp_path_factory.mktemp("cli"))


def test_error_classes():
    assert issubclass(strata.StrataError, Exception)
    assert issubclass(strata.InputError, strata.StrataError)


def test_run_writes_the_cli_run_folder(tmp_path, cli_sample_run):
    summary = strata.run(str(PACK), str(SAMPLE), str(tmp_path / "py"))

    assert {"dir", "as_of", "in_population", "listed", "practices", "timings_ms"} <= set(summary)
    run_dir = Path(summary["dir"])
    assert isinstance(summary["dir"], str) and run_dir.is_dir()
    assert run_dir.parent == tmp_path / "py"
    assert run_dir.name == cli_sample_run.name
    assert summary["as_of"] == sample_as_of()
    assert type(summary["as_of"]) is dt.date

    manifest = json.loads((run_dir / "manifest.json").read_text(encoding="utf-8"))
    cli_manifest = json.loads((cli_sample_run / "manifest.json").read_text(encoding="utf-8"))
    assert summary["in_population"] == manifest["people"]["in_population"]
    assert summary["listed"] == manifest["people"]["listed"]
    assert without(manifest) == without(cli_manifest)

    py_lists, cli_lists = files_under(run_dir / "lists"), files_under(cli_sample_run / "lists")
    assert sorted(py_lists) == sorted(cli_lists)
    for name in cli_lists:
        assert py_lists[name] == cli_lists[name], f"lists/{name} differs"
    assert (run_dir / "list.parquet").read_bytes() == (cli_sample_run / "list.parquet").read_bytes()
    # report.html holds no paths or timings: two CLI runs give the same bytes.
    assert (run_dir / "report.html").read_bytes() == (cli_sample_run / "report.html").read_bytes()


def _read_polars():
    pl = pytest.importorskip("polars")
    patients, events, contacts = sample_tables()
    return (
        pl.read_parquet(patients),
        {name: pl.read_parquet(path) for name, path in events.items()},
        pl.read_parquet(contacts),
    )


def _read_duckdb():
    duckdb = pytest.importorskip("duckdb")

    def rel(path: Path):
        quoted = str(path).replace("'", "''")
        return duckdb.sql(f"select * from '{quoted}'")

    patients, events, contacts = sample_tables()
    return rel(patients), {name: rel(path) for name, path in events.items()}, rel(contacts)


def _read_pyarrow():
    patients, events, contacts = sample_tables()
    return (
        pq.read_table(patients),
        {name: pq.read_table(path) for name, path in events.items()},
        pq.read_table(contacts),
    )


@pytest.mark.parametrize(
    "reader, as_of",
    [
        pytest.param(_read_polars, "date", id="polars"),
        pytest.param(_read_duckdb, "date", id="duckdb"),
        pytest.param(_read_duckdb, "text", id="duckdb-as-of-text"),
        pytest.param(_read_pyarrow, "date", id="pyarrow"),
    ],
)
def test_score_gives_the_cli_list(reader, as_of, cli_sample_run):
    patients, events, contacts = reader()
    as_of_value = sample_as_of() if as_of == "date" else sample_as_of().isoformat()

    result = strata.score(str(PACK), patients, events=events, contacts=contacts, as_of=as_of_value)

    assert isinstance(result, pa.Table)
    expected = pq.read_table(cli_sample_run / "list.parquet")
    assert result.column_names == expected.column_names
    assert result.schema.equals(expected.schema), f"{result.schema}\n!=\n{expected.schema}"
    assert result.num_rows == expected.num_rows
    # Already in list order (practice_code, then rank) ...
    assert result.equals(result.sort_by(LIST_ORDER))
    # ... and the same rows as the CLI's list.parquet.
    assert result.sort_by(LIST_ORDER).equals(expected.sort_by(LIST_ORDER))


def test_score_with_empty_event_tables(cli_sample_run):
    # Zero-row pyarrow tables travel as a schema and no batches at all: a
    # PCN without contacts hands over such a table, and the Spark example
    # gets its output schema by scoring one person with empty event tables.
    patients, events, contacts = _read_pyarrow()
    empty = {name: table.slice(0, 0) for name, table in events.items()}
    schema = pq.read_schema(cli_sample_run / "list.parquet")

    one = strata.score(str(PACK), patients.slice(0, 1), events=empty,
                       contacts=contacts.slice(0, 0), as_of=sample_as_of())
    assert one.num_rows <= 1
    assert one.schema.equals(schema)

    everyone = strata.score(str(PACK), patients, events=empty, contacts=contacts.slice(0, 0),
                            as_of=sample_as_of())
    assert everyone.schema.equals(schema)


def test_check_the_everyday_pack_has_no_errors():
    diagnostics = strata.check(str(PACK))
    assert isinstance(diagnostics, list)
    for d in diagnostics:
        assert {"code", "severity", "message", "file", "line", "column"} <= set(d)
        assert d["severity"] in ("error", "warning")
    assert [d for d in diagnostics if d["severity"] == "error"] == []


def test_check_reports_a_syntax_error_with_file_and_line(tmp_path):
    # The pack reads ../efi, so the two are copied side by side.
    rules = tmp_path / "rules"
    shutil.copytree(PACK, rules / PACK.name)
    shutil.copytree(REPO / "rules" / "efi", rules / "efi")
    pack_toml = rules / PACK.name / "pack.toml"
    text = pack_toml.read_text(encoding="utf-8")
    start = text.index('when = "', text.index("[[rules]]"))
    end = text.index('"', start + len('when = "'))
    broken = 'when = "lives_alone AND AND (ltc_count >= 2"'
    pack_toml.write_text(text[:start] + broken + text[end + 1:], encoding="utf-8")
    line = text[:start].count("\n") + 1

    diagnostics = strata.check(str(rules / PACK.name))

    errors = [d for d in diagnostics if d["severity"] == "error"]
    assert errors, diagnostics
    hit = [d for d in errors if Path(d["file"]).name == "pack.toml" and d["line"] == line]
    assert hit, f"no error at pack.toml:{line} in {errors}"
    assert isinstance(hit[0]["column"], int) and hit[0]["column"] >= 1
    assert hit[0]["code"] and hit[0]["message"]


def test_run_with_a_bad_date_raises_input_error(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "patients.csv").write_text(
        "patient_id,practice_code,pcn_code,date_of_birth,sex\n"
        "1,L82106,U82904,1950-01-01,F\n"
        "2,L82106,U82904,31/02/1950,M\n",  # line 3
        encoding="utf-8",
    )
    for table in ("events", "admissions", "medications"):
        (data / f"{table}.csv").write_text("patient_id,code,date,value\n", encoding="utf-8")

    with pytest.raises(strata.InputError) as info:
        strata.run(str(PACK), str(data), str(tmp_path / "out"), as_of=dt.date(2020, 3, 23))

    message = str(info.value)
    assert "patients.csv:" in message and "date_of_birth" in message
    assert "patients.csv:3:" in message
    # Nothing is left half-written.
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())

    # The CLI says the same thing, and exits 2.
    proc = subprocess.run(
        [str(strata_bin()), "--log-level", "warn", "run", "--pack", str(PACK), "--data", str(data),
         "--out", str(tmp_path / "cli"), "--as-of", "2020-03-23"],
        capture_output=True, text=True, check=False,
    )
    assert proc.returncode == 2
    assert message in proc.stderr


def test_score_applies_the_stated_deprivation_index(tmp_path):
    """imd/lsoa_vintage as dataset.toml states them: IoD2025 read from 2011 LSOAs."""
    pack = tmp_path / "pack"
    pack.mkdir()
    (pack / "pack.toml").write_text(
        '[pack]\nid = "dep"\ntitle = "Deprived"\nversion = "1"\nimd = "2025"\n\n'
        '[population]\nwhen = "registered AND alive"\n\n'
        '[[rules]]\nid = "deprived"\nwhen = "imd_quintile = 1"\npoints = 1\nreason = "Most deprived fifth"\n\n'
        '[[tiers]]\nid = "t"\nlabel = "T"\nwhen = "score >= 1"\n',
        encoding="utf-8",
    )
    patients = pa.table({
        "patient_id": pa.array([1, 2, 3], pa.int64()),
        "practice_code": ["A", "A", "A"],
        "date_of_birth": pa.array([dt.date(1950, 1, 1)] * 3),
        # E01000010 was split in 2021; its most deprived part is IoD2025 decile 1.
        # E01000001 is decile 8; W01000001 is not an English LSOA.
        "lsoa_code": ["E01000010", "E01000001", "W01000001"],
    })
    got = strata.score(pack, patients, as_of="2020-03-23", imd="2025", lsoa_vintage=2011)
    assert got.column("patient_id").to_pylist() == [1]
    assert got.column("imd_decile").to_pylist() == [1]
    # The pack needs IoD2025: the default (IMD 2019) is refused.
    with pytest.raises(strata.InputError, match=r"written for IoD2025"):
        strata.score(pack, patients, as_of="2020-03-23")
    with pytest.raises(strata.InputError, match=r"together"):
        strata.score(pack, patients, as_of="2020-03-23", imd="2025")
