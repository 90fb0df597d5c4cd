-- benches/peers/pack/pack.toml as one DuckDB query: the idiomatic version
-- (plain joins, count(DISTINCT ...), max(...) FILTER (...), row_number()).
--
-- Parameters (DuckDB variables, set before the query):
--   SET VARIABLE data_dir     = '/tmp/strata-peers/1000000';     -- the dataset folder (Parquet)
--   SET VARIABLE codelist_dir = 'benches/peers/pack/codelists'; -- the pack's codelists
--   SET VARIABLE as_of        = DATE '2020-03-23';  -- optional; default: extract_date of dataset.toml
--
-- Result: the listed people, one row each:
--   practice_code, rank (from 1 within the practice), patient_id, tier ('tier-1'..), score (exact decimal)
-- benches/peers/run_duckdb.py runs it as COPY (<this query>) TO '<out>.parquet'.
--
-- Semantics follow rules/FORMAT.md ("How a person is decided") at the as-of date:
-- events and contacts after the as-of date never count; windows include both ends;
-- codelist codes are normalised (trimmed, dots removed, upper case) and matched exactly
-- against event codes (strata synth writes event codes already normalised).
WITH
params AS (
    SELECT coalesce(
               getvariable('as_of')::DATE,
               regexp_extract(content, '(?m)^\s*extract_date\s*=\s*"?(\d{4}-\d{2}-\d{2})', 1)::DATE
           ) AS as_of
    FROM read_text(getvariable('data_dir') || '/dataset.toml')
),
windows AS (
    SELECT as_of,
           CAST(as_of - INTERVAL 24 MONTH AS DATE) AS since_2_years,   -- '2 years': calendar, clamped
           as_of - 14                              AS since_14_days    -- '14 days'
    FROM params
),
-- codelist name -> file, as declared in pack.toml (all bound to the events table)
codelist_files (name, file) AS (
    VALUES
        ('lives_alone',                 'lives-alone.csv'),
        ('housebound',                  'opensafely-housebound.csv'),
        ('no_longer_housebound',        'opensafely-no-longer-housebound.csv'),
        ('shield',                      'shield.csv'),
        ('nonshield',                   'nonshield.csv'),
        ('moderate_frailty',            'modfrail_cod.csv'),
        ('severe_frailty',              'sevfrail_cod.csv'),
        ('asthma',                      'ast_cod.csv'),
        ('atrial_fibrillation',         'afib_cod.csv'),
        ('coronary_heart_disease',      'chd_cod.csv'),
        ('chronic_kidney_disease',      'ckd_cod.csv'),
        ('copd',                        'copd_cod.csv'),
        ('dementia',                    'dem_cod.csv'),
        ('diabetes',                    'dm_cod.csv'),
        ('epilepsy',                    'epil_cod.csv'),
        ('heart_failure',               'hf_cod.csv'),
        ('hypertension',                'hyp_cod.csv'),
        ('learning_disability',         'ld_cod.csv'),
        ('severe_mental_illness',       'mh_cod.csv'),
        ('osteoporosis',                'osteo_cod.csv'),
        ('peripheral_arterial_disease', 'pad_cod.csv'),
        ('rheumatoid_arthritis',        'rarth_cod.csv'),
        ('stroke',                      'strk_cod.csv')
),
codelist_rows AS (
    SELECT * FROM read_csv(
        [getvariable('codelist_dir') || '/lives-alone.csv',
         getvariable('codelist_dir') || '/opensafely-housebound.csv',
         getvariable('codelist_dir') || '/opensafely-no-longer-housebound.csv',
         getvariable('codelist_dir') || '/shield.csv',
         getvariable('codelist_dir') || '/nonshield.csv',
         getvariable('codelist_dir') || '/modfrail_cod.csv',
         getvariable('codelist_dir') || '/sevfrail_cod.csv',
         getvariable('codelist_dir') || '/ast_cod.csv',
         getvariable('codelist_dir') || '/afib_cod.csv',
         getvariable('codelist_dir') || '/chd_cod.csv',
         getvariable('codelist_dir') || '/ckd_cod.csv',
         getvariable('codelist_dir') || '/copd_cod.csv',
         getvariable('codelist_dir') || '/dem_cod.csv',
         getvariable('codelist_dir') || '/dm_cod.csv',
         getvariable('codelist_dir') || '/epil_cod.csv',
         getvariable('codelist_dir') || '/hf_cod.csv',
         getvariable('codelist_dir') || '/hyp_cod.csv',
         getvariable('codelist_dir') || '/ld_cod.csv',
         getvariable('codelist_dir') || '/mh_cod.csv',
         getvariable('codelist_dir') || '/osteo_cod.csv',
         getvariable('codelist_dir') || '/pad_cod.csv',
         getvariable('codelist_dir') || '/rarth_cod.csv',
         getvariable('codelist_dir') || '/strk_cod.csv'],
        header = true, all_varchar = true, union_by_name = true, filename = true)
),
codelists AS (
    SELECT DISTINCT f.name, upper(replace(trim(r.code), '.', '')) AS code
    FROM codelist_rows r
    JOIN codelist_files f ON r.filename = getvariable('codelist_dir') || '/' || f.file
),
patients AS (
    SELECT p.patient_id, p.practice_code, p.imd_decile,
           CASE WHEN p.date_of_birth <= w.as_of THEN
               year(w.as_of) - year(p.date_of_birth)
               - CASE WHEN (month(w.as_of), day(w.as_of)) < (month(p.date_of_birth), day(p.date_of_birth))
                      THEN 1 ELSE 0 END
           END AS age,
           (p.registration_end IS NULL OR p.registration_end > w.as_of) AS registered,
           (p.date_of_death IS NULL OR p.date_of_death > w.as_of) AS alive
    FROM read_parquet(getvariable('data_dir') || '/patients.parquet') p, windows w
),
population AS (
    SELECT patient_id, practice_code, imd_decile, age
    FROM patients
    WHERE registered AND alive AND age >= 18
),
coded_events AS (
    SELECT e.patient_id, c.name, e.date
    FROM read_parquet(getvariable('data_dir') || '/events.parquet') e
    JOIN codelists c ON c.code = e.code
    JOIN population p ON p.patient_id = e.patient_id
    CROSS JOIN windows w
    WHERE e.date <= w.as_of
),
per_person AS (
    SELECT e.patient_id,
           count(*) FILTER (WHERE e.name = 'lives_alone') > 0                  AS lives_alone,
           max(e.date) FILTER (WHERE e.name = 'housebound')                    AS housebound_last,
           max(e.date) FILTER (WHERE e.name = 'no_longer_housebound')          AS no_longer_housebound_last,
           max(e.date) FILTER (WHERE e.name = 'shield')                        AS shield_last,
           max(e.date) FILTER (WHERE e.name = 'nonshield')                     AS nonshield_last,
           count(DISTINCT e.name) FILTER (WHERE e.name IN (
               'asthma', 'atrial_fibrillation', 'coronary_heart_disease', 'chronic_kidney_disease',
               'copd', 'dementia', 'diabetes', 'epilepsy', 'heart_failure', 'hypertension',
               'learning_disability', 'severe_mental_illness', 'osteoporosis',
               'peripheral_arterial_disease', 'rheumatoid_arthritis', 'stroke'))  AS ltc_count,
           count(*) FILTER (WHERE e.name IN ('moderate_frailty', 'severe_frailty')
                              AND e.date >= w.since_2_years) > 0               AS frail
    FROM coded_events e, windows w
    GROUP BY e.patient_id
),
recently_contacted AS (
    SELECT DISTINCT c.patient_id
    FROM read_parquet(getvariable('data_dir') || '/contacts.parquet') c, windows w
    WHERE c.date >= w.since_14_days AND c.date <= w.as_of
),
features AS (
    SELECT p.patient_id, p.practice_code, p.age,
           coalesce(f.lives_alone, false) AS lives_alone,
           -- latest_of(housebound, no_longer_housebound) = 'housebound'; a same-day tie goes to the second
           coalesce(f.housebound_last IS NOT NULL
                    AND (f.no_longer_housebound_last IS NULL
                         OR f.housebound_last > f.no_longer_housebound_last), false) AS housebound,
           coalesce(f.ltc_count, 0) AS ltc_count,
           coalesce(f.frail, false) AS frail,
           p.imd_decile AS deprivation_decile,
           -- override "shielding": latest code wins, exclude (nonshield) wins a same-day tie
           CASE
               WHEN f.shield_last IS NULL AND f.nonshield_last IS NULL THEN NULL
               WHEN f.nonshield_last IS NULL OR f.shield_last > f.nonshield_last THEN 'in'
               ELSE 'out'
           END AS shielding,
           rc.patient_id IS NOT NULL AS contacted_14_days
    FROM population p
    LEFT JOIN per_person f ON f.patient_id = p.patient_id
    LEFT JOIN recently_contacted rc ON rc.patient_id = p.patient_id
),
scored AS (
    SELECT *,
           CASE WHEN lives_alone THEN 3 ELSE 0 END
         + CASE WHEN housebound THEN 2 ELSE 0 END
         + CASE WHEN ltc_count >= 3 THEN 3 ELSE 0 END
         + CASE WHEN ltc_count BETWEEN 1 AND 2 THEN 1 ELSE 0 END
         + CASE WHEN frail THEN 2 ELSE 0 END
         + CASE WHEN deprivation_decile <= 2 THEN 1.5 ELSE 0 END   -- NULL decile: no points
         + CASE WHEN age >= 80 THEN 2 ELSE 0 END
         + CASE WHEN age BETWEEN 70 AND 79 THEN 1 ELSE 0 END
           AS score
    FROM features
),
tiered AS (
    SELECT *,
           CASE
               WHEN shielding = 'in' THEN 'tier-1'
               WHEN score >= 8 THEN 'tier-1'
               WHEN score >= 5 THEN 'tier-2'
               WHEN score >= 3 THEN 'tier-3'
           END AS tier
    FROM scored
),
listed AS (
    SELECT * FROM tiered
    WHERE shielding IS DISTINCT FROM 'out'
      AND NOT contacted_14_days
      AND tier IS NOT NULL
)
SELECT practice_code,
       row_number() OVER (PARTITION BY practice_code
                          ORDER BY tier,            -- 'tier-1' < 'tier-2' < 'tier-3': pack order
                                   score DESC, age DESC, patient_id) AS rank,
       patient_id,
       tier,
       CAST(score AS DECIMAL(38, 10)) AS score
FROM listed
ORDER BY practice_code, rank
