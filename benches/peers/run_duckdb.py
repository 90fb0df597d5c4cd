"""Run one of the DuckDB queries of this folder and write its result as Parquet.

usage: run_duckdb.py QUERY.sql DATA_DIR CODELIST_DIR OUT.parquet [AS_OF]

The query file is one SELECT (comments allowed); it reads the variables
data_dir, codelist_dir and (optionally) as_of.
"""
import sys

import duckdb


def main() -> None:
    if len(sys.argv) not in (5, 6):
        sys.exit(__doc__)
    query_file, data_dir, codelist_dir, out = sys.argv[1:5]
    query = open(query_file, encoding="utf-8").read().strip().rstrip(";")
    con = duckdb.connect()
    con.execute("SET VARIABLE data_dir = ?", [data_dir])
    con.execute("SET VARIABLE codelist_dir = ?", [codelist_dir])
    if len(sys.argv) == 6:
        con.execute("SET VARIABLE as_of = ?::DATE", [sys.argv[5]])
    out_sql = out.replace("'", "''")
    con.execute(f"COPY ({query}\n) TO '{out_sql}' (FORMAT parquet)")


if __name__ == "__main__":
    main()
