//! Criterion bench for `strata synth`: a 20,000-person, 3-practice
//! population (the size of the bundled sample) written as Parquet.
//! The million-patient figure comes from `examples/synth_1m.rs`.

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use strata::synth::{generate, SynthConfig};

fn synth_sample(c: &mut Criterion) {
    let mut group = c.benchmark_group("synth");
    group.sample_size(10);
    group.throughput(Throughput::Elements(20_000));
    group.bench_function("20k_patients_parquet", |b| {
        b.iter_batched(
            || tempfile::tempdir().expect("temporary folder"),
            |scratch| {
                let out = scratch.path().join("sample");
                generate(&SynthConfig::new(20_000, 3, 2020, &out)).expect("synth");
                scratch
            },
            BatchSize::PerIteration,
        )
    });
    group.finish();
}

criterion_group!(benches, synth_sample);
criterion_main!(benches);
