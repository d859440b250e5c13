//! Building and reloading a snapshot of 1,000 certificates.
//!
//! - `build/1000`: `Store::from_loaded` over certificates already loaded — the name indexes
//!   and the snapshot, nothing parsed.
//! - `reload_unchanged/1000`: `Store::reload_at` over 1,000 certificates as files in a temp
//!   dir (leaf, key and intermediate each): what a SIGHUP costs when nothing changed — every
//!   file read, parsed, assembled and validated, then the snapshot rebuilt and swapped.

use std::hint::black_box;
use std::time::Duration;

use certstore::{Store, Timestamp};
use criterion::{BatchSize, Criterion, SamplingMode, criterion_group, criterion_main};
use gatehouse_benches::{copy_loaded, listener_for, loaded_certs, write_certs};

const CERTS: usize = 1_000;

fn snapshot(c: &mut Criterion) {
    let mut group = c.benchmark_group("snapshot");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));

    let certs = loaded_certs(CERTS);
    let listener = listener_for(certs.iter().map(|c| c.name.as_str()));
    group.bench_function(format!("build/{CERTS}"), |b| {
        b.iter_batched(
            || certs.iter().map(copy_loaded).collect::<Vec<_>>(),
            |certs| black_box(Store::from_loaded(certs, std::slice::from_ref(&listener))),
            BatchSize::LargeInput,
        )
    });

    let dir = gatehouse_tests::temp_dir();
    let config = write_certs(dir.path(), CERTS);
    let now = Timestamp::now();
    let (store, first) = Store::load(&config, now).expect("first load of the bench files");
    assert_eq!(first.entries.len(), CERTS, "every bench certificate loads");
    group.sampling_mode(SamplingMode::Flat);
    group.bench_function(format!("reload_unchanged/{CERTS}"), |b| {
        b.iter(|| {
            let report = store.reload_at(&config, now);
            debug_assert!(report.is_clean());
            black_box(report)
        })
    });
    group.finish();
}

criterion_group!(benches, snapshot);
criterion_main!(benches);
