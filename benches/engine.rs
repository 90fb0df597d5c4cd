//! Criterion benches for the engine's stages on seeded `strata synth`
//! populations of 20,000 and 200,000 people with the bundled
//! proactive-care pack: code -> match set over a code dictionary, the
//! event scan with its windowed per-person accumulators plus evaluation
//! (`execute`), per-practice ranking, and list writing.
//!
//! `cargo bench --bench engine`. Whole-process figures against DuckDB and
//! Polars are in `benches/peers/`.

use std::path::Path;

use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion, Throughput};
use strata::dataset::Dataset;
use strata::list::{self, RunDir};
use strata::plan::Plan;
use strata::synth::{generate, SynthConfig};

const SIZES: [u64; 2] = [20_000, 200_000];

struct Fixture {
    _dir: tempfile::TempDir,
    pack: strata::pack::Pack,
    ds: Dataset,
    patients: strata::dataset::Patients,
    plan: Plan,
}

fn fixture(people: u64) -> Fixture {
    let dir = tempfile::tempdir().expect("temporary folder");
    let data = dir.path().join("data");
    generate(&SynthConfig::new(people, 4, 2020, &data)).expect("synth");
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let pack = strata::pack::load(&root.join("benches/peers/pack")).expect("pack");
    let ds = Dataset::open(&data).expect("dataset");
    let patients = ds.read_patients().expect("patients");
    let as_of = ds.meta.extract_date.expect("extract date");
    let plan = Plan::bind(&pack, &ds, &patients, as_of).expect("plan");
    Fixture {
        _dir: dir,
        pack,
        ds,
        patients,
        plan,
    }
}

fn stages(c: &mut Criterion) {
    let mut group = c.benchmark_group("engine");
    group.sample_size(10);
    for people in SIZES {
        let f = fixture(people);

        // Code -> match set for every code the pack lists, as a dictionary would hold.
        let table = &f.plan.scan.tables[0];
        let codes: Vec<String> = f
            .pack
            .codelists
            .iter()
            .flat_map(|c| c.codes.iter().cloned())
            .chain((0..1000).map(|i| format!("{}", 100_000_000 + i)))
            .collect();
        group.throughput(Throughput::Elements(codes.len() as u64));
        group.bench_with_input(
            BenchmarkId::new("match_sets", people),
            &codes,
            |b, codes| b.iter(|| codes.iter().map(|c| table.match_set(c) as u64).sum::<u64>()),
        );

        // The other stages: throughput in people.
        group.throughput(Throughput::Elements(people));

        group.bench_with_input(BenchmarkId::new("scan_and_evaluate", people), &f, |b, f| {
            b.iter(|| {
                strata::exec::execute(&f.plan, &f.ds, &f.patients, strata::exec::Keep::Listed)
                    .expect("execute")
            })
        });

        let outcomes =
            strata::exec::execute(&f.plan, &f.ds, &f.patients, strata::exec::Keep::Listed)
                .expect("execute");
        group.bench_with_input(BenchmarkId::new("rank", people), &f, |b, f| {
            b.iter(|| list::rank(&f.pack, &f.plan, &f.patients, &outcomes, None))
        });

        let lists = list::rank(&f.pack, &f.plan, &f.patients, &outcomes, None);
        group.bench_with_input(BenchmarkId::new("write_lists", people), &f, |b, f| {
            b.iter_batched(
                || tempfile::tempdir().expect("temporary folder"),
                |scratch| {
                    let run = RunDir::create(&scratch.path().join("run")).expect("run folder");
                    list::write_lists(
                        &run,
                        &f.pack,
                        &f.plan,
                        &f.patients,
                        &outcomes,
                        &lists,
                        &list::ListOptions::default(),
                    )
                    .expect("write");
                    run.commit().expect("commit");
                    scratch
                },
                BatchSize::PerIteration,
            )
        });
    }
    group.finish();
}

criterion_group!(benches, stages);
criterion_main!(benches);
