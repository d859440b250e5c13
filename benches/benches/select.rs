//! SNI selection cost with 1, 100 and 10,000 certificates: exact hit, wildcard hit, miss.
//! It must stay flat: one `ArcSwap::load` and hash lookups, whatever the count.

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use gatehouse_benches::{LISTENER, store_with};

fn selection(c: &mut Criterion) {
    let mut group = c.benchmark_group("sni_selection");
    group
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(2));
    for n in [1usize, 100, 10_000] {
        let store = store_with(n);
        let resolver = store.resolver(LISTENER).expect("bench listener");
        let last = n - 1;
        let exact = format!("host{last}.example.test");
        let wildcard = format!("api.w{last}.example.test");
        for (case, name) in [
            ("exact", exact.as_str()),
            ("wildcard", wildcard.as_str()),
            ("miss", "nobody.example.org"),
        ] {
            group.bench_with_input(BenchmarkId::new(case, n), &name, |b, name| {
                b.iter(|| black_box(resolver.resolve_name(Some(black_box(name)))))
            });
        }
    }
    group.finish();
}

criterion_group!(benches, selection);
criterion_main!(benches);
