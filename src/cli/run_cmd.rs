//! `strata run`: the nightly batch, from pack and dataset to a run folder.

use std::collections::BTreeMap;
use std::time::Instant;

use anyhow::Context;

use super::{RunArgs, UsageError};
use crate::dataset::{quality, Dataset};
use crate::list::{self, manifest, RunDir};
use crate::plan::Plan;

pub fn run(args: &RunArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let mut timings: BTreeMap<String, u64> = BTreeMap::new();
    let mut lap = {
        let mut t = Instant::now();
        move |stage: &str, timings: &mut BTreeMap<String, u64>| {
            let ms = t.elapsed().as_millis() as u64;
            timings.insert(stage.to_string(), ms);
            t = Instant::now();
            ms
        }
    };
    if let Some(n) = args.threads {
        if n == 0 {
            return Err(UsageError("--threads must be at least 1".into()).into());
        }
        rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build_global()
            .context("starting the worker threads")?;
    }

    let progress = Progress::new();
    progress.stage("checking the rule pack");
    let pack = crate::pack::load(&args.pack)?;
    tracing::info!(stage = "pack", pack = %pack.meta.id, version = %pack.meta.version, ms = lap("pack", &mut timings), "rule pack checked");

    let ds = Dataset::open(&args.data)?;
    let (as_of, as_of_source) = match (args.as_of, ds.meta.extract_date) {
        (Some(d), _) => (d, "--as-of"),
        (None, Some(d)) => (d, "dataset.toml extract_date"),
        (None, None) => (
            quality::latest_event_date(&ds)?.ok_or_else(|| {
                UsageError("the dataset has no events and no extract_date: give --as-of".into())
            })?,
            "latest event date",
        ),
    };
    progress.stage("reading patients");
    let patients = ds.read_patients()?;
    tracing::info!(stage = "patients", people = patients.len(), %as_of, ms = lap("read_patients", &mut timings), "patients read");

    let plan = Plan::bind(&pack, &ds, &patients, as_of)?;
    progress.stage("scanning events and scoring");
    let outcomes = crate::exec::execute(&pack, &plan, &ds, &patients)?;
    lap("execute", &mut timings);

    let previous = args
        .previous
        .as_deref()
        .map(list::read_previous)
        .transpose()?;
    let lists = list::rank(&pack, &plan, &patients, &outcomes, previous.as_ref());
    let listed: usize = lists.iter().map(|l| l.entries.len()).sum();
    tracing::info!(
        stage = "rank",
        practices = lists.len(),
        listed,
        ms = lap("rank", &mut timings),
        "lists ranked"
    );

    let name = args
        .name
        .clone()
        .unwrap_or_else(|| format!("{as_of}-{}", pack.meta.id));
    if name.is_empty() || name.contains(['/', '\\']) || name.starts_with('.') {
        return Err(UsageError(format!("--name {name:?} is not a plain folder name")).into());
    }
    progress.stage("writing the run");
    let dest = args.out.join(&name);
    let run = RunDir::create(&dest)?;
    list::write_lists(
        &run,
        &pack,
        &plan,
        &patients,
        &outcomes,
        &lists,
        previous.is_some(),
    )?;
    lap("write_lists", &mut timings);
    if std::env::var_os("STRATA_TEST_FAIL_AFTER_LISTS").is_some() {
        // A test hook: fail half way through writing a run.
        anyhow::bail!("failing on purpose after writing the lists (STRATA_TEST_FAIL_AFTER_LISTS)");
    }

    let inputs = ds
        .files()
        .iter()
        .map(|f| manifest::hash_file(f).with_context(|| format!("hashing {}", f.display())))
        .collect::<anyhow::Result<Vec<_>>>()?;
    lap("hash_inputs", &mut timings);
    let (people, rules) = manifest::count_people(&pack, &outcomes);
    timings.insert("total".into(), started.elapsed().as_millis() as u64);
    let m = manifest::Manifest {
        strata_version: env!("CARGO_PKG_VERSION"),
        pack: manifest::PackInfo {
            id: pack.meta.id.clone(),
            title: pack.meta.title.clone(),
            version: pack.meta.version.clone(),
            content_hash: pack.content_hash.clone(),
        },
        as_of: as_of.to_string(),
        as_of_source: as_of_source.into(),
        command_line: std::env::args().collect(),
        inputs,
        people,
        tiers_by_practice: manifest::tiers_by_practice(&pack, &lists),
        rules,
        tables: outcomes.tables.clone(),
        timings_ms: timings,
    };
    let mut json = serde_json::to_vec_pretty(&m).context("encoding the manifest")?;
    json.push(b'\n');
    run.write("manifest.json", &json)?;
    let dest = run.commit()?;
    progress.done();
    tracing::info!(
        stage = "done",
        listed,
        in_population = m.people.in_population,
        ms = started.elapsed().as_millis() as u64,
        "run written to {}",
        dest.display()
    );
    println!("{}", dest.display());
    Ok(())
}

/// A spinner naming the current stage, shown only when stderr is a terminal
/// (schedulers get the log lines instead).
struct Progress(Option<indicatif::ProgressBar>);

impl Progress {
    fn new() -> Progress {
        use std::io::IsTerminal;
        if !std::io::stderr().is_terminal() {
            return Progress(None);
        }
        let bar = indicatif::ProgressBar::new_spinner();
        bar.enable_steady_tick(std::time::Duration::from_millis(120));
        Progress(Some(bar))
    }

    fn stage(&self, what: &'static str) {
        if let Some(bar) = &self.0 {
            bar.set_message(what);
        }
    }

    fn done(&self) {
        if let Some(bar) = &self.0 {
            bar.finish_and_clear();
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.done();
    }
}
