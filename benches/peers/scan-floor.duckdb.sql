-- The scan floor: read and decode every column of every row of events.parquet, nothing else.
-- No engine that has to look at each event can be faster than simply reading the events.
--   SET VARIABLE data_dir = '/tmp/strata-peers/1000000';
-- (codelist_dir and as_of are accepted by run_duckdb.py and ignored.)
SELECT count(*) AS events,
       bit_xor(hash(patient_id, code, date, value)) AS checksum
FROM read_parquet(getvariable('data_dir') || '/events.parquet')
