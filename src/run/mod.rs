//! The run as a library call: [`RunConfig`] -> [`run`] -> [`RunSummary`].
//!
//! The CLI, the tests and any other front end call this; it checks the
//! pack, reads the dataset, plans, executes, ranks and writes the run
//! folder atomically. [`Job::load`] is the loading path it shares with
//! [`explain`]: the same pack, dataset, as-of date and plan.

pub mod examples;
pub mod explain;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use chrono::NaiveDate;

use crate::dataset::{quality, Dataset, Patients};
use crate::error::Error;
use crate::list::{self, manifest, RunDir};
use crate::pack::Pack;
use crate::plan::Plan;

pub use examples::{test_pack, ExampleResult, ExamplesReport};
pub use explain::{explain, reference_run, ExplainConfig};

/// What a nightly run is asked to do.
#[derive(Debug, Clone, Default)]
pub struct RunConfig {
    /// The rule pack folder (holding pack.toml).
    pub pack: PathBuf,
    /// The dataset folder.
    pub data: PathBuf,
    /// Where runs are kept: the run is written to `out/<as-of>-<pack id>`
    /// (or `out/<name>`).
    pub out: PathBuf,
    pub name: Option<String>,
    /// Default: the dataset's extract date, else its latest event date.
    pub as_of: Option<NaiveDate>,
    /// An earlier run folder, to mark who is new and how tiers moved.
    pub previous: Option<PathBuf>,
    /// Worker threads (default: all cores).
    pub threads: Option<usize>,
    /// Exact counts in report.html instead of the small-number rules.
    pub exact_counts: bool,
    /// Calls a practice makes in a week (overrides the pack's
    /// `[list] capacity`).
    pub capacity: Option<u32>,
    /// Recorded in the manifest.
    pub command_line: Vec<String>,
}

/// What a run did.
#[derive(Debug, Clone)]
pub struct RunSummary {
    /// The run folder, renamed into place.
    pub dir: PathBuf,
    pub as_of: NaiveDate,
    pub in_population: u64,
    pub listed: usize,
    pub practices: usize,
    /// Per stage, in milliseconds (also in the manifest).
    pub timings_ms: BTreeMap<String, u64>,
}

/// A pack and a dataset loaded and planned for one as-of date.
#[derive(Debug)]
pub struct Job {
    pub pack: Pack,
    pub dataset: Dataset,
    pub patients: Patients,
    pub as_of: NaiveDate,
    /// Where the as-of date came from (for the manifest).
    pub as_of_source: &'static str,
    pub plan: Plan,
}

/// Stage timings, in the order the stages ran.
pub(crate) struct Stopwatch {
    lap: Instant,
    timings: BTreeMap<String, u64>,
}

impl Stopwatch {
    pub(crate) fn new() -> Stopwatch {
        Stopwatch {
            lap: Instant::now(),
            timings: BTreeMap::new(),
        }
    }

    fn lap(&mut self, stage: &str) -> u64 {
        let ms = self.lap.elapsed().as_millis() as u64;
        self.timings.insert(stage.to_string(), ms);
        self.lap = Instant::now();
        ms
    }
}

impl Job {
    /// Checks the pack, opens the dataset, settles the as-of date, reads
    /// the patients and plans.
    pub fn load(pack_dir: &Path, data: &Path, as_of: Option<NaiveDate>) -> Result<Job, Error> {
        Self::load_timed(pack_dir, data, as_of, &mut Stopwatch::new())
    }

    fn load_timed(
        pack_dir: &Path,
        data: &Path,
        as_of: Option<NaiveDate>,
        watch: &mut Stopwatch,
    ) -> Result<Job, Error> {
        let pack = crate::pack::load(pack_dir)?;
        watch.lap("pack");
        let dataset = Dataset::open(data)?;
        Self::with_dataset(pack, dataset, as_of, watch)
    }

    /// Settles the as-of date, reads the patients and plans, for a checked
    /// pack and an opened dataset (a folder, or tables in memory).
    pub(crate) fn with_dataset(
        pack: Pack,
        dataset: Dataset,
        as_of: Option<NaiveDate>,
        watch: &mut Stopwatch,
    ) -> Result<Job, Error> {
        let (as_of, as_of_source) = match (as_of, dataset.meta.extract_date) {
            (Some(d), _) => (d, "--as-of"),
            (None, Some(d)) => (d, "dataset.toml extract_date"),
            (None, None) => (
                quality::latest_event_date(&dataset)?.ok_or_else(|| {
                    Error::usage("the dataset has no events and no extract_date: give --as-of")
                })?,
                "latest event date",
            ),
        };
        let patients = dataset.read_patients()?;
        release_free_memory();
        watch.lap("read_patients");
        let plan = Plan::bind(&pack, &dataset, &patients, as_of)?;
        Ok(Job {
            pack,
            dataset,
            patients,
            as_of,
            as_of_source,
            plan,
        })
    }
}

/// Runs the nightly batch and writes the run folder.
pub fn run(config: &RunConfig) -> Result<RunSummary, Error> {
    in_pool(config.threads, || run_in_pool(config))
}

/// Runs `f` on `threads` worker threads (default: the global pool).
fn in_pool<T: Send>(
    threads: Option<usize>,
    f: impl FnOnce() -> Result<T, Error> + Send,
) -> Result<T, Error> {
    match threads {
        Some(0) => Err(Error::usage("--threads must be at least 1")),
        Some(n) => rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build()
            .map_err(|e| Error::Internal(format!("starting the worker threads: {e}")))?
            .install(f),
        None => f(),
    }
}

/// Scores a dataset without writing a run folder: the rows `list.parquet`
/// would hold, in its order (practice by practice, by rank), as Arrow
/// record batches (one a practice; none when nobody is listed). The same
/// pack check, plan, engine and ranking as [`run`]; no previous run, so no
/// `new_since_previous` columns. The Python API's `strata.score` is this.
pub fn score(
    pack_dir: &Path,
    dataset: Dataset,
    as_of: Option<NaiveDate>,
    threads: Option<usize>,
) -> Result<ScoreResult, Error> {
    in_pool(threads, || {
        let pack = crate::pack::load(pack_dir)?;
        let job = Job::with_dataset(pack, dataset, as_of, &mut Stopwatch::new())?;
        let Job {
            pack,
            patients,
            plan,
            dataset,
            as_of,
            ..
        } = &job;
        let outcomes = crate::exec::execute(plan, dataset, patients, crate::exec::Keep::Listed)?;
        let lists = list::rank(pack, plan, patients, &outcomes, None);
        let opts = list::ListOptions {
            with_previous: false,
            capacity: pack.list.capacity,
        };
        let (schema, batches) = list::list_batches(pack, plan, patients, &outcomes, &lists, &opts)?;
        Ok(ScoreResult {
            schema,
            batches,
            as_of: *as_of,
            in_population: outcomes.tally.in_population,
        })
    })
}

/// What [`score`] gives back.
#[derive(Debug, Clone)]
pub struct ScoreResult {
    /// The schema of `list.parquet` for this pack (also when nobody is listed).
    pub schema: arrow::datatypes::SchemaRef,
    pub batches: Vec<arrow::array::RecordBatch>,
    pub as_of: NaiveDate,
    pub in_population: u64,
}

fn run_in_pool(config: &RunConfig) -> Result<RunSummary, Error> {
    let started = Instant::now();
    let mut watch = Stopwatch::new();
    let job = Job::load_timed(&config.pack, &config.data, config.as_of, &mut watch)?;
    let Job {
        pack,
        dataset,
        mut patients,
        as_of,
        as_of_source,
        plan,
    } = job;
    let (pack, dataset, plan, as_of, as_of_source) =
        (&pack, &dataset, &plan, &as_of, &as_of_source);
    let ms = |stage: &str| watch.timings.get(stage).copied().unwrap_or(0);
    tracing::info!(stage = "pack", pack = %pack.meta.id, version = %pack.meta.version, ms = ms("pack"), "rule pack checked");
    tracing::info!(stage = "patients", people = patients.len(), %as_of, ms = ms("read_patients"), mib = patients.memory_bytes() >> 20, "patients read");
    let name = config
        .name
        .clone()
        .unwrap_or_else(|| format!("{as_of}-{}", pack.meta.id));
    if name.is_empty() || name.contains(['/', '\\']) || name.starts_with('.') {
        return Err(Error::usage(format!(
            "--name {name:?} is not a plain folder name"
        )));
    }
    if config.out.exists() && !config.out.is_dir() {
        return Err(Error::usage(format!(
            "{}: --out is a file; give the folder runs are kept in",
            config.out.display()
        )));
    }
    // One run writes to an output root at a time (taken before the work,
    // so a second run fails at once).
    let _lock = list::OutputLock::acquire(&config.out, &name).map_err(|e| match e {
        Ok(holder) => Error::List(list::ListError::Locked {
            root: config.out.display().to_string(),
            holder,
        }),
        Err(e) => Error::List(list::ListError::from(e)),
    })?;
    // The input files are hashed for the manifest on a thread of their own,
    // while the engine scans them (the reads share the page cache).
    let (outcomes, inputs) = std::thread::scope(|s| {
        let hashing = s.spawn(|| hash_inputs(dataset, plan));
        let outcomes = crate::exec::execute(plan, dataset, &patients, crate::exec::Keep::Listed);
        let inputs = hashing
            .join()
            .unwrap_or_else(|_| Err(Error::Internal("hashing the inputs failed".into())));
        (outcomes, inputs)
    });
    let outcomes = outcomes?;
    release_free_memory();
    watch.lap("execute");

    let previous_dir = match config.previous.as_deref() {
        Some(p) if p == Path::new("auto") => {
            let found = latest_earlier_run(&config.out, &pack.meta.id, *as_of, &name);
            match &found {
                Some(dir) => {
                    tracing::info!(stage = "previous", run = %dir.display(), "comparing with the latest earlier run")
                }
                None => {
                    tracing::info!(
                        stage = "previous",
                        "no earlier run of this pack to compare with"
                    )
                }
            }
            found
        }
        other => other.map(Path::to_path_buf),
    };
    let previous = previous_dir
        .as_deref()
        .map(list::read_previous)
        .transpose()?;
    let lists = list::rank(pack, plan, &patients, &outcomes, previous.as_ref());
    let listed: usize = lists.iter().map(|l| l.entries.len()).sum();
    // The lap is taken outside the log line: a disabled level does not
    // evaluate its fields, and the manifest keeps every stage at any level.
    let rank_ms = watch.lap("rank");
    tracing::info!(
        stage = "rank",
        practices = lists.len(),
        listed,
        ms = rank_ms,
        "lists ranked"
    );

    // Who left the lists since the previous run: the last lookup of people
    // by id. The id index is then let go (at 62M people it is 377 MB, held
    // until now beside everything written below).
    let leavers = previous
        .as_ref()
        .map(|prev| list::changes::leavers(pack, &patients, &outcomes, &lists, prev, *as_of));
    patients.release_index();
    release_free_memory();
    watch.lap("leavers");

    let capacity = config.capacity.or(pack.list.capacity);
    let run = RunDir::create(&config.out.join(&name)).map_err(list::ListError::from)?;
    list::write_lists(
        &run,
        pack,
        plan,
        &patients,
        &outcomes,
        &lists,
        &list::ListOptions {
            with_previous: previous.is_some(),
            capacity,
        },
    )?;
    watch.lap("write_lists");
    let pcn_lists = pack.list.pcn_lists.then(|| {
        list::rank_within(
            pack,
            plan,
            &patients,
            &outcomes,
            previous.as_ref(),
            &patients.pcn_code,
            &|s| outcomes.listed(s),
        )
    });
    let recently_contacted = list::rank_within(
        pack,
        plan,
        &patients,
        &outcomes,
        None,
        &patients.practice_code,
        &|s| outcomes.recently_contacted(plan, s),
    );
    list::write_recently_contacted(&run, pack, plan, &patients, &outcomes, &recently_contacted)?;
    if let Some(leavers) = &leavers {
        list::changes::write_changes(&run, leavers)?;
    }
    if let Some(pcn) = &pcn_lists {
        list::write_pcn_lists(
            &run,
            pack,
            plan,
            &patients,
            &outcomes,
            pcn,
            previous.is_some(),
        )?;
    }
    watch.lap("write_other_lists");
    if std::env::var_os("STRATA_TEST_FAIL_AFTER_LISTS").is_some() {
        // A test hook: fail half way through writing a run.
        return Err(Error::Internal(
            "failing on purpose after writing the lists (STRATA_TEST_FAIL_AFTER_LISTS)".into(),
        ));
    }
    if let Some(ms) = std::env::var("STRATA_TEST_PAUSE_AFTER_LISTS_MS")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
    {
        // A test hook: hold the half-written run so a test can stop it.
        std::thread::sleep(std::time::Duration::from_millis(ms));
    }

    let inputs = finish_hashes(inputs?)?;
    watch.lap("hash_inputs");
    let (people, rules) = manifest::count_people(pack, &outcomes);
    let mut timings = watch.timings.clone();
    timings.insert("total".into(), started.elapsed().as_millis() as u64);
    let deprivation = crate::dataset::quality::DeprivationSummary::of(&patients);
    let mut m = manifest::Manifest {
        strata_version: env!("CARGO_PKG_VERSION"),
        pack: manifest::PackInfo {
            id: pack.meta.id.clone(),
            title: pack.meta.title.clone(),
            version: pack.meta.version.clone(),
            content_hash: pack.content_hash.clone(),
            uses: pack
                .uses
                .iter()
                .map(|u| manifest::UsedPackInfo {
                    alias: u.alias.clone(),
                    id: u.id.clone(),
                    version: u.version.clone(),
                    content_hash: u.content_hash.clone(),
                })
                .collect(),
        },
        as_of: as_of.to_string(),
        as_of_source: (*as_of_source).into(),
        command_line: config.command_line.clone(),
        inputs,
        people,
        patient_findings: crate::dataset::quality::patient_findings(
            &patients,
            *as_of,
            &deprivation,
        ),
        deprivation,
        tiers_by_practice: manifest::tiers_by_practice(pack, &lists),
        rules,
        tables: outcomes.tables.clone(),
        timings_ms: timings,
    };
    let report = crate::report::render(&crate::report::Inputs {
        pack,
        manifest: &m,
        patients: &patients,
        outcomes: &outcomes,
        lists: &lists,
        pcn_lists: pcn_lists.as_deref().unwrap_or(&[]),
        recently_contacted: &recently_contacted,
        previous: previous.as_ref(),
        leavers: leavers.as_deref(),
        as_of: *as_of,
        extract_date: dataset.meta.extract_date,
        capacity,
        counts: if config.exact_counts {
            crate::report::suppress::Counts::Exact
        } else {
            crate::report::suppress::Counts::SmallNumbersSuppressed
        },
    })
    .map_err(|e| Error::Internal(format!("rendering report.html: {e}")))?;
    run.write("report.html", report.as_bytes())
        .map_err(list::ListError::from)?;
    let report_ms = watch.lap("report");
    m.timings_ms.insert("report".into(), report_ms);
    m.timings_ms
        .insert("total".into(), started.elapsed().as_millis() as u64);
    let mut json = serde_json::to_vec_pretty(&m)
        .map_err(|e| Error::Internal(format!("encoding the manifest: {e}")))?;
    json.push(b'\n');
    run.write("manifest.json", &json)
        .map_err(list::ListError::from)?;
    let dir = run.commit().map_err(list::ListError::from)?;
    tracing::info!(
        stage = "done",
        listed,
        in_population = m.people.in_population,
        ms = started.elapsed().as_millis() as u64,
        "run written"
    );
    Ok(RunSummary {
        dir,
        as_of: *as_of,
        in_population: m.people.in_population,
        listed,
        practices: lists.len(),
        timings_ms: m.timings_ms.clone(),
    })
}

/// Gives memory freed by a stage back to the system. Reading a table
/// decodes into buffers that are freed once it is assembled; glibc keeps
/// such pages in its per-thread arenas (unavailable to the other threads
/// of the next stage) unless asked to trim them.
pub(crate) fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free pages to the kernel; it has no
    // preconditions and touches no live allocation.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// `--previous auto`: the run folder in `out` of the same pack with the
/// latest as-of date before `as_of` (the folder name breaks a tie), read
/// from each folder's manifest. Unfinished runs (hidden temporary
/// folders) and the run being written are never picked.
fn latest_earlier_run(out: &Path, pack_id: &str, as_of: NaiveDate, name: &str) -> Option<PathBuf> {
    let entries = std::fs::read_dir(out).ok()?;
    let mut best: Option<(NaiveDate, String, PathBuf)> = None;
    for entry in entries.flatten() {
        let dir = entry.path();
        let folder = entry.file_name().to_string_lossy().into_owned();
        if folder.starts_with('.') || folder == name || !dir.is_dir() {
            continue;
        }
        let Ok(bytes) = std::fs::read(dir.join("manifest.json")) else {
            continue;
        };
        let Ok(m) = serde_json::from_slice::<serde_json::Value>(&bytes) else {
            continue;
        };
        let same_pack = m["pack"]["id"].as_str() == Some(pack_id);
        let run_as_of = m["as_of"]
            .as_str()
            .and_then(crate::dataset::columns::parse_iso_date);
        if let (true, Some(d)) = (same_pack, run_as_of) {
            let candidate = (d, folder, dir);
            if d < as_of
                && best
                    .as_ref()
                    .is_none_or(|b| (&b.0, &b.1) < (&candidate.0, &candidate.1))
            {
                best = Some(candidate);
            }
        }
    }
    best.map(|b| b.2)
}

/// An input file's entry in the manifest, or where it will come from.
enum Input {
    Hashed(manifest::InputFile),
    /// A file the scan reads whole, in order (a CSV event table): it is
    /// hashed as it is read, not read a second time.
    ReadByScan(
        PathBuf,
        std::sync::Arc<std::sync::OnceLock<crate::dataset::FileDigest>>,
    ),
}

/// The BLAKE3 hash of every input file, for the manifest, but for those
/// the scan of `plan` reads whole ([`Input::ReadByScan`]; tables already
/// read whole, such as a CSV patients table, have their hash at hand).
fn hash_inputs(dataset: &Dataset, plan: &Plan) -> Result<Vec<Input>, Error> {
    let tables: Vec<&crate::dataset::TableFile> = std::iter::once(&dataset.patients)
        .chain(&dataset.event_tables)
        .chain(&dataset.contacts)
        .collect();
    dataset
        .files()
        .into_iter()
        .map(|path| {
            let table = tables.iter().find(|t| t.path == path);
            if let Some(d) = table.and_then(|t| t.read_digest.get()) {
                return Ok(Input::Hashed(manifest::InputFile::of(&path, d)));
            }
            let scanned = plan
                .tables
                .iter()
                .find(|(t, _)| t.path == path && t.format == crate::dataset::Format::Csv);
            if let Some((t, _)) = scanned {
                return Ok(Input::ReadByScan(path, t.read_digest.clone()));
            }
            hash_file(&path).map(Input::Hashed)
        })
        .collect()
}

/// The manifest's input files once the scan is over: those it read whole
/// have their hash (any it did not finish are hashed now).
fn finish_hashes(inputs: Vec<Input>) -> Result<Vec<manifest::InputFile>, Error> {
    inputs
        .into_iter()
        .map(|input| match input {
            Input::Hashed(f) => Ok(f),
            Input::ReadByScan(path, digest) => match digest.get() {
                Some(d) => Ok(manifest::InputFile::of(&path, d)),
                None => hash_file(&path),
            },
        })
        .collect()
}

fn hash_file(path: &Path) -> Result<manifest::InputFile, Error> {
    manifest::hash_file(path)
        .map_err(|e| Error::Internal(format!("hashing {}: {e}", path.display())))
}
