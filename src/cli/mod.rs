//! The command line: argument parsing, logging setup, and exit codes.
//!
//! Exit codes: 0 success, 2 bad input or usage (with a clear message naming
//! the file, line and column where there is one), 1 an internal failure.
//! Logs go to stderr through `tracing`, human-readable by default or JSON
//! lines for schedulers (`--log-format json`); they report stages, counts
//! and timings, never a patient identifier.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

use crate::dataset::{self, Dataset};
use crate::error::Error;
use crate::run::{ExplainConfig, RunConfig};

#[derive(Debug, Parser)]
#[command(
    name = "strata",
    version,
    about = "Population risk stratification for general practice: ranked proactive-contact lists with reasons."
)]
pub struct Cli {
    /// Log format on stderr.
    #[arg(long, value_enum, default_value_t = LogFormat::Human, global = true)]
    pub log_format: LogFormat,
    /// Log level (error, warn, info, debug, trace).
    #[arg(long, default_value = "info", global = true)]
    pub log_level: String,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Human,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Summarise a dataset: row counts, practices, date range, data-quality findings.
    Inspect {
        /// The dataset folder.
        data: PathBuf,
        /// Print the summary as JSON.
        #[arg(long)]
        json: bool,
    },
    /// The nightly batch: score everyone with a rule pack and write ranked
    /// per-practice contact lists, list.parquet and manifest.json.
    Run(RunArgs),
    /// Write a realistic synthetic population in the input contract.
    Synth(SynthArgs),
    /// Validate a rule pack; every problem is reported at once.
    Check {
        /// The rule pack folder (holding pack.toml).
        pack: PathBuf,
        /// Also print the physical plan the engine would evaluate.
        #[arg(long)]
        plan: bool,
        /// The as-of date the plan's windows are computed from (with --plan;
        /// default: today).
        #[arg(long, value_parser = parse_date)]
        as_of: Option<chrono::NaiveDate>,
    },
    /// The audit trail for one person: every feature with the events behind
    /// it, every rule fired or not, the score, tier and rank.
    Explain(ExplainArgs),
    /// Run a rule pack's worked examples (rules/<pack>/tests/*.toml) through
    /// the engine and the reference evaluator; exit 1 if any fails.
    Test {
        /// The rule pack folder (holding pack.toml and tests/).
        pack: PathBuf,
    },
}

#[derive(Debug, clap::Args)]
pub struct SynthArgs {
    /// People to generate (including some who died or left).
    #[arg(long)]
    pub patients: u64,
    /// Number of practices.
    #[arg(long, default_value_t = 3)]
    pub practices: u32,
    /// Random seed: the same arguments give byte-identical files.
    #[arg(long, default_value_t = 2020)]
    pub seed: u64,
    /// Dataset folder to create (must not exist, or be empty).
    #[arg(long)]
    pub out: PathBuf,
    #[arg(long, value_enum, default_value_t = SynthFormat::Parquet)]
    pub format: SynthFormat,
    /// The day the data is "taken from the clinical system".
    #[arg(long, value_parser = parse_date)]
    pub extract_date: Option<chrono::NaiveDate>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SynthFormat {
    Parquet,
    Csv,
}

#[derive(Debug, clap::Args)]
pub struct ExplainArgs {
    #[arg(long)]
    pub pack: PathBuf,
    #[arg(long)]
    pub data: PathBuf,
    /// The patient_id to explain (printed only on stdout, never logged).
    #[arg(long)]
    pub patient: String,
    #[arg(long, value_parser = parse_date)]
    pub as_of: Option<chrono::NaiveDate>,
}

#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// The rule pack folder (holding pack.toml).
    #[arg(long)]
    pub pack: PathBuf,
    /// The dataset folder.
    #[arg(long)]
    pub data: PathBuf,
    /// Where runs are kept: the run is written to OUT/<as-of>-<pack id>
    /// (or OUT/<name> with --name).
    #[arg(long)]
    pub out: PathBuf,
    /// Name of the run folder inside OUT.
    #[arg(long)]
    pub name: Option<String>,
    /// As-of date (YYYY-MM-DD); default: the dataset's extract date, else its
    /// latest event date (never the clock).
    #[arg(long, value_parser = parse_date)]
    pub as_of: Option<chrono::NaiveDate>,
    /// An earlier run folder, to mark who is new and how tiers moved and
    /// write changes.csv; `auto` takes the latest earlier run of the same
    /// pack in OUT.
    #[arg(long)]
    pub previous: Option<PathBuf>,
    /// Worker threads (default: all cores).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Show exact counts in report.html (internal use only); by default
    /// counts of 1 to 7 are hidden and others rounded to 5.
    #[arg(long)]
    pub exact_counts: bool,
    /// Calls each practice makes in a week: the first N people of every
    /// list are marked call_this_week (default: the pack's [list] capacity).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    pub capacity: Option<u32>,
}

fn parse_date(s: &str) -> Result<chrono::NaiveDate, String> {
    dataset::columns::parse_iso_date(s)
        .ok_or_else(|| format!("{s:?} is not a date (expected YYYY-MM-DD)"))
}

/// Set once a stop signal has arrived: the signal thread is cleaning up and
/// exits the process itself, with 128 + the signal.
static STOPPING: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// When a stop signal is being handled, wait for the signal thread to exit
/// the process (never return), so its exit code and message are the ones
/// seen, not a failure the cleanup caused in the main thread.
fn wait_if_stopping() {
    if STOPPING.load(std::sync::atomic::Ordering::SeqCst) {
        loop {
            std::thread::park();
        }
    }
}

/// Ctrl-C (SIGINT) or SIGTERM: remove the run's temporary folder and the
/// output root's lock at once, say so, and exit 130 / 143 (128 + the
/// signal), leaving any earlier run untouched.
fn stop_cleanly_on_signals() {
    #[cfg(unix)]
    {
        use signal_hook::consts::{SIGINT, SIGTERM};
        let Ok(mut signals) = signal_hook::iterator::Signals::new([SIGINT, SIGTERM]) else {
            return;
        };
        std::thread::spawn(move || {
            if let Some(sig) = signals.forever().next() {
                // From here on the main thread must not finish first (a
                // write into the folder being removed fails, and its exit
                // code would win the race): see `wait_if_stopping`.
                STOPPING.store(true, std::sync::atomic::Ordering::SeqCst);
                crate::list::run_dir::remove_on_signal();
                let name = if sig == SIGINT {
                    "interrupted"
                } else {
                    "terminated"
                };
                eprintln!("error: {name}; nothing was written and any earlier run is untouched");
                std::process::exit(128 + sig);
            }
        });
    }
}

pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    init_logging(cli.log_format, &cli.log_level);
    stop_cleanly_on_signals();
    // A panic is a bug in strata: report it plainly (exit 1), without a
    // backtrace full of internals, and never with data values.
    std::panic::set_hook(Box::new(|info| {
        let at = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        eprintln!("error: internal failure{at}; please report it (no output was written)");
    }));
    let outcome = std::panic::catch_unwind(|| run(cli));
    wait_if_stopping();
    let Ok(outcome) = outcome else {
        return ExitCode::from(1);
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) if err.is_broken_pipe() => ExitCode::SUCCESS,
        Err(err) => {
            let mut stderr = std::io::stderr().lock();
            let mut said = err.to_string();
            let _ = writeln!(stderr, "error: {said}");
            // Causes whose text the message already gives (a pack's
            // diagnostics, an I/O error quoted in its context) are not
            // said twice.
            let mut cause = std::error::Error::source(&err);
            while let Some(c) = cause {
                let text = c.to_string();
                if !said.contains(&text) {
                    let _ = writeln!(stderr, "  caused by: {text}");
                    said.push('\n');
                    said.push_str(&text);
                }
                cause = c.source();
            }
            ExitCode::from(err.blame().exit_code())
        }
    }
}

fn init_logging(format: LogFormat, level: &str) {
    let filter: tracing_subscriber::filter::LevelFilter = level
        .parse()
        .unwrap_or(tracing_subscriber::filter::LevelFilter::INFO);
    let builder = tracing_subscriber::fmt()
        .with_max_level(filter)
        .with_writer(std::io::stderr)
        .with_target(false);
    let _ = match format {
        LogFormat::Human => builder
            .with_ansi(std::io::stderr().is_terminal())
            .compact()
            .try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}

fn run(cli: Cli) -> Result<(), Error> {
    match cli.command {
        Command::Inspect { data, json } => inspect(&data, json),
        Command::Run(args) => run_job(args),
        Command::Check { pack, plan, as_of } => check(&pack, plan, as_of),
        Command::Synth(args) => synth(&args),
        Command::Test { pack } => test_pack(&pack),
        Command::Explain(args) => {
            let text = crate::run::explain(&ExplainConfig {
                pack: args.pack,
                data: args.data,
                patient: args.patient,
                as_of: args.as_of,
            })?;
            print!("{text}");
            std::io::stdout().flush()?;
            Ok(())
        }
    }
}

fn test_pack(pack: &std::path::Path) -> Result<(), Error> {
    let report = crate::run::test_pack(pack)?;
    let mut file = "";
    for r in &report.results {
        if r.file != file {
            file = &r.file;
            println!("{}/{}", pack.display(), r.file);
        }
        if r.failures.is_empty() {
            println!("  ok      {}", r.name);
        } else {
            println!("  FAILED  {}", r.name);
            for f in &r.failures {
                println!("          {f}");
            }
        }
    }
    println!("{} passed, {} failed", report.passed(), report.failed());
    std::io::stdout().flush()?;
    if report.failed() > 0 {
        return Err(Error::ExamplesFailed {
            failed: report.failed(),
            total: report.results.len(),
        });
    }
    Ok(())
}

fn run_job(args: RunArgs) -> Result<(), Error> {
    let progress = Progress::new();
    let summary = crate::run::run(&RunConfig {
        pack: args.pack,
        data: args.data,
        out: args.out,
        name: args.name,
        as_of: args.as_of,
        previous: args.previous,
        threads: args.threads,
        exact_counts: args.exact_counts,
        capacity: args.capacity,
        command_line: std::env::args().collect(),
    })?;
    progress.done();
    println!("{}", summary.dir.display());
    Ok(())
}

fn inspect(data: &std::path::Path, json: bool) -> Result<(), Error> {
    let ds = Dataset::open(data)?;
    let summary = dataset::quality::summarise(&ds)?;
    let mut out = std::io::stdout().lock();
    if json {
        serde_json::to_writer_pretty(&mut out, &summary).map_err(|e| Error::Output(e.into()))?;
        writeln!(out)?;
    } else {
        write!(out, "{summary}")?;
    }
    Ok(())
}

fn check(
    pack: &std::path::Path,
    plan: bool,
    as_of: Option<chrono::NaiveDate>,
) -> Result<(), Error> {
    match crate::pack::load(pack) {
        Ok(p) => {
            println!(
                "{}: ok ({} {}: {} codelists, {} features, {} rules, {} tiers)",
                pack.display(),
                p.meta.id,
                p.meta.version,
                p.codelists.len(),
                p.features.len(),
                p.rules.len(),
                p.tiers.len()
            );
            for u in &p.uses {
                println!("  uses {} = {} {} ({})", u.alias, u.id, u.version, u.dir);
            }
            if plan {
                let as_of = as_of.unwrap_or_else(|| chrono::Local::now().date_naive());
                print!("{}", crate::plan::PhysicalPlan::compile(&p, as_of)?);
            }
            Ok(())
        }
        Err(errors) => {
            // The diagnostics are the output: print them whole, then exit 2.
            println!("{errors}");
            Err(Error::usage(format!(
                "{}: the rule pack has errors",
                pack.display()
            )))
        }
    }
}

fn synth(args: &SynthArgs) -> Result<(), Error> {
    use crate::synth::{self, OutputFormat, SynthConfig};
    let mut cfg = SynthConfig::new(args.patients, args.practices, args.seed, &args.out);
    cfg.format = match args.format {
        SynthFormat::Parquet => OutputFormat::Parquet,
        SynthFormat::Csv => OutputFormat::Csv,
    };
    if let Some(d) = args.extract_date {
        cfg.extract_date = d;
    }
    let started = std::time::Instant::now();
    let summary = synth::generate(&cfg)?;
    tracing::info!(
        stage = "synth",
        patients = summary.patients,
        events = summary.events,
        admissions = summary.admissions,
        contacts = summary.contacts,
        medications = summary.medications,
        practices = summary.practices.len(),
        ms = started.elapsed().as_millis() as u64,
        "synthetic dataset written"
    );
    println!("{}", summary.out.display());
    Ok(())
}

/// A spinner naming the run, shown only when stderr is a terminal
/// (schedulers get the log lines instead).
struct Progress(Option<indicatif::ProgressBar>);

impl Progress {
    fn new() -> Progress {
        if !std::io::stderr().is_terminal() {
            return Progress(None);
        }
        let bar = indicatif::ProgressBar::new_spinner();
        bar.set_message("running");
        bar.enable_steady_tick(std::time::Duration::from_millis(120));
        Progress(Some(bar))
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
