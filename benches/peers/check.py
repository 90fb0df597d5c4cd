"""Check that every peer produced the same ranked lists as strata.

usage: check.py STRATA_LIST.parquet NAME=PEER.parquet [NAME=PEER.parquet ...]

Each file is reduced, by the same DuckDB query, to the canonical rows
(practice_code, rank, patient_id, tier, score), with the score as an exact
DECIMAL(38,10), sorted by practice_code and rank; the fingerprint is the row
count and the md5 of those rows written as text, one per line. A peer passes
when both equal strata's. On a mismatch the first differing rows are printed.
Exit status: 0 when every peer passes, 1 otherwise.
"""
import sys

import duckdb

CANONICAL = """
    SELECT practice_code::VARCHAR AS practice_code,
           rank::BIGINT AS rank,
           patient_id::BIGINT AS patient_id,
           tier::VARCHAR AS tier,
           score::DECIMAL(38, 10) AS score
    FROM read_parquet('{path}')
"""


def canonical(path: str) -> str:
    return CANONICAL.format(path=path.replace("'", "''"))


def fingerprint(con, path: str):
    return con.execute(
        f"""SELECT count(*),
                   md5(coalesce(string_agg(concat_ws('|', practice_code, rank, patient_id, tier, score), chr(10)
                                ORDER BY practice_code, rank), ''))
            FROM ({canonical(path)})"""
    ).fetchone()


def main() -> int:
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    con = duckdb.connect()
    reference = sys.argv[1]
    ref_rows, ref_md5 = fingerprint(con, reference)
    print(f"  strata   rows={ref_rows} md5={ref_md5} ({reference})")
    failed = False
    for arg in sys.argv[2:]:
        name, path = arg.split("=", 1)
        rows, md5 = fingerprint(con, path)
        ok = rows == ref_rows and md5 == ref_md5
        print(f"  {'PASS' if ok else 'FAIL'} {name}: rows={rows} md5={md5}")
        if not ok:
            failed = True
            # first the people listed differently (by practice, tier, score; rank aside),
            # else, when the same people are listed, the rows ranked differently
            for columns in ("practice_code, patient_id, tier, score", "*"):
                a = f"SELECT {columns} FROM ({canonical(reference)})"
                b = f"SELECT {columns} FROM ({canonical(path)})"
                diff = con.execute(
                    f"""SELECT * FROM (
                            (SELECT 'only strata' AS side, * FROM ({a} EXCEPT {b}))
                            UNION ALL
                            (SELECT 'only {name}' AS side, * FROM ({b} EXCEPT {a})))
                        ORDER BY ALL LIMIT 20"""
                ).fetchall()
                if diff:
                    print("       differing rows (" + columns.replace("*", "practice_code, rank, patient_id, tier, score") + "):")
                    for row in diff:
                        print("        ", *row)
                    break
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
