-- benches/peers/pack/pack.toml as one DuckDB query: the hand-tuned version.
--
-- Same parameters, result and semantics as proactive-care.duckdb.sql:
--   SET VARIABLE data_dir     = '/tmp/strata-peers/1000000';     -- the dataset folder (Parquet)
--   SET VARIABLE codelist_dir = 'benches/peers/pack/codelists'; -- the pack's codelists
--   SET VARIABLE as_of        = DATE '2020-03-23';  -- optional; default: extract_date of dataset.toml
-- Result: practice_code, rank, patient_id, tier, score (exact decimal), one row per listed person.
--
-- What is tuned: every codelist is one bit; each distinct code carries the OR of the bits of
-- the codelists holding it, so the events scan does one small hash join (code -> bits) and one
-- GROUP BY patient_id with bit_or() and four max(date)s: one pass per person, no DISTINCT,
-- no per-codelist rows. Features are bit tests (ltc_count is a popcount); the events are
-- aggregated before they meet the patients table, and only listed people are ranked.
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
-- codelist -> (file, bit); bits 0-15 are the 16 long-term conditions of ltc_count
codelist_bits (name, file, bit) AS (
    VALUES
        ('asthma',                      'ast_cod.csv',                          0),
        ('atrial_fibrillation',         'afib_cod.csv',                         1),
        ('coronary_heart_disease',      'chd_cod.csv',                          2),
        ('chronic_kidney_disease',      'ckd_cod.csv',                          3),
        ('copd',                        'copd_cod.csv',                         4),
        ('dementia',                    'dem_cod.csv',                          5),
        ('diabetes',                    'dm_cod.csv',                           6),
        ('epilepsy',                    'epil_cod.csv',                         7),
        ('heart_failure',               'hf_cod.csv',                           8),
        ('hypertension',                'hyp_cod.csv',                          9),
        ('learning_disability',         'ld_cod.csv',                          10),
        ('severe_mental_illness',       'mh_cod.csv',                          11),
        ('osteoporosis',                'osteo_cod.csv',                       12),
        ('peripheral_arterial_disease', 'pad_cod.csv',                         13),
        ('rheumatoid_arthritis',        'rarth_cod.csv',                       14),
        ('stroke',                      'strk_cod.csv',                        15),
        ('lives_alone',                 'lives-alone.csv',                     16),
        ('housebound',                  'opensafely-housebound.csv',           17),
        ('no_longer_housebound',        'opensafely-no-longer-housebound.csv', 18),
        ('shield',                      'shield.csv',                          19),
        ('nonshield',                   'nonshield.csv',                       20),
        ('moderate_frailty',            'modfrail_cod.csv',                    21),
        ('severe_frailty',              'sevfrail_cod.csv',                    22)
),
codelist_rows AS (
    SELECT * FROM read_csv(
        [getvariable('codelist_dir') || '/ast_cod.csv',
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
         getvariable('codelist_dir') || '/strk_cod.csv',
         getvariable('codelist_dir') || '/lives-alone.csv',
         getvariable('codelist_dir') || '/opensafely-housebound.csv',
         getvariable('codelist_dir') || '/opensafely-no-longer-housebound.csv',
         getvariable('codelist_dir') || '/shield.csv',
         getvariable('codelist_dir') || '/nonshield.csv',
         getvariable('codelist_dir') || '/modfrail_cod.csv',
         getvariable('codelist_dir') || '/sevfrail_cod.csv'],
        header = true, all_varchar = true, union_by_name = true, filename = true)
),
code_bits AS (   -- one row per code: the OR of the bits of every codelist that lists it
    SELECT upper(replace(trim(r.code), '.', '')) AS code,
           bit_or(1 << b.bit)::INTEGER AS bits
    FROM codelist_rows r
    JOIN codelist_bits b ON r.filename = getvariable('codelist_dir') || '/' || b.file
    GROUP BY ALL
),
per_person AS (  -- one pass over events: bits ever, bits in the last 2 years, four latest dates
    SELECT e.patient_id,
           bit_or(c.bits) AS ever,
           bit_or(CASE WHEN e.date >= w.since_2_years THEN c.bits ELSE 0 END) AS last_2_years,
           max(CASE WHEN c.bits & (1 << 17) <> 0 THEN e.date END) AS housebound_last,
           max(CASE WHEN c.bits & (1 << 18) <> 0 THEN e.date END) AS no_longer_housebound_last,
           max(CASE WHEN c.bits & (1 << 19) <> 0 THEN e.date END) AS shield_last,
           max(CASE WHEN c.bits & (1 << 20) <> 0 THEN e.date END) AS nonshield_last
    FROM read_parquet(getvariable('data_dir') || '/events.parquet') e
    JOIN code_bits c ON c.code = e.code
    CROSS JOIN windows w
    WHERE e.date <= w.as_of
    GROUP BY e.patient_id
),
recently_contacted AS (
    SELECT DISTINCT c.patient_id
    FROM read_parquet(getvariable('data_dir') || '/contacts.parquet') c, windows w
    WHERE c.date >= w.since_14_days AND c.date <= w.as_of
),
decided AS (
    SELECT p.patient_id, p.practice_code, p.age,
           -- override "shielding": latest code wins, the exclude code (nonshield) wins a same-day tie
           CASE
               WHEN f.shield_last IS NULL AND f.nonshield_last IS NULL THEN NULL
               WHEN f.nonshield_last IS NULL OR f.shield_last > f.nonshield_last THEN 'in'
               ELSE 'out'
           END AS shielding,
           bit_count(coalesce(f.ever, 0) & 65535) AS ltc_count,
             CASE WHEN coalesce(f.ever, 0) & (1 << 16) <> 0 THEN 3 ELSE 0 END            -- lives alone
           + CASE WHEN f.housebound_last IS NOT NULL
                   AND (f.no_longer_housebound_last IS NULL
                        OR f.housebound_last > f.no_longer_housebound_last) THEN 2 ELSE 0 END
           + CASE WHEN bit_count(coalesce(f.ever, 0) & 65535) >= 3 THEN 3
                  WHEN bit_count(coalesce(f.ever, 0) & 65535) >= 1 THEN 1 ELSE 0 END
           + CASE WHEN coalesce(f.last_2_years, 0) & ((1 << 21) | (1 << 22)) <> 0 THEN 2 ELSE 0 END
           + CASE WHEN p.imd_decile <= 2 THEN 1.5 ELSE 0 END                           -- NULL: no points
           + CASE WHEN p.age >= 80 THEN 2 WHEN p.age >= 70 THEN 1 ELSE 0 END
             AS score,
           rc.patient_id IS NOT NULL AS contacted_14_days
    FROM (
        SELECT p.patient_id, p.practice_code, p.imd_decile,
               year(w.as_of) - year(p.date_of_birth)
               - CASE WHEN (month(w.as_of), day(w.as_of)) < (month(p.date_of_birth), day(p.date_of_birth))
                      THEN 1 ELSE 0 END AS age
        FROM read_parquet(getvariable('data_dir') || '/patients.parquet') p, windows w
        WHERE (p.registration_end IS NULL OR p.registration_end > w.as_of)
          AND (p.date_of_death IS NULL OR p.date_of_death > w.as_of)
          AND p.date_of_birth <= w.as_of
    ) p
    LEFT JOIN per_person f ON f.patient_id = p.patient_id
    LEFT JOIN recently_contacted rc ON rc.patient_id = p.patient_id
    WHERE p.age >= 18
),
listed AS (
    SELECT practice_code, patient_id, age, score,
           CASE
               WHEN shielding = 'in' THEN 1
               WHEN score >= 8 THEN 1
               WHEN score >= 5 THEN 2
               WHEN score >= 3 THEN 3
           END AS tier_no
    FROM decided
    WHERE shielding IS DISTINCT FROM 'out' AND NOT contacted_14_days
)
SELECT practice_code,
       row_number() OVER (PARTITION BY practice_code
                          ORDER BY tier_no, score DESC, age DESC, patient_id) AS rank,
       patient_id,
       'tier-' || tier_no AS tier,
       CAST(score AS DECIMAL(38, 10)) AS score
FROM listed
WHERE tier_no IS NOT NULL
ORDER BY practice_code, rank
