//! SNI selection cost with 1, 100 and 10,000 certificates: exact hit, wildcard hit, miss.
//! It must stay flat: one `ArcSwap::load` and hash lookups, whatever the count. And with
//! an ECDSA and an RSA certificate per name, chosen by the client's signature schemes.

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use gatehouse_benches::{LISTENER, store_with, store_with_both_key_types};
use rustls::SignatureScheme;

fn selection(c: &mut Criterion) {
    let mut group = c.benchmark_group("sni_selection");
    group
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(2));
    for n in [1usize, 100, 10_000] {
        let store = store_with(n);
        let resolver = store.resolver(LISTENER).expect("bench listener");
        // The same names whatever the count: a name's length sets its hashing cost, which
        // would otherwise differ between the counts.
        for (case, name) in [
            ("exact", "host0.example.test"),
            ("wildcard", "api.w0.example.test"),
            ("miss", "nobody.example.org"),
        ] {
            group.bench_with_input(BenchmarkId::new(case, n), &name, |b, name| {
                b.iter(|| black_box(resolver.resolve_name(Some(black_box(name)), &[])))
            });
        }
    }
    // An ECDSA and an RSA certificate for every name: the client's signature schemes pick
    // one (a browser's list gets ECDSA at once; an RSA-only client scans past it).
    let browser = [
        SignatureScheme::ECDSA_NISTP256_SHA256,
        SignatureScheme::RSA_PSS_SHA256,
        SignatureScheme::RSA_PKCS1_SHA256,
        SignatureScheme::ECDSA_NISTP384_SHA384,
        SignatureScheme::RSA_PSS_SHA384,
        SignatureScheme::RSA_PKCS1_SHA384,
        SignatureScheme::RSA_PSS_SHA512,
        SignatureScheme::RSA_PKCS1_SHA512,
    ];
    let rsa_only = [
        SignatureScheme::RSA_PSS_SHA256,
        SignatureScheme::RSA_PKCS1_SHA256,
    ];
    let n = 10_000;
    let store = store_with_both_key_types(n);
    let resolver = store.resolver(LISTENER).expect("bench listener");
    let name = "host0.example.test";
    for (case, offered) in [
        ("ecdsa_and_rsa/browser", &browser[..]),
        ("ecdsa_and_rsa/rsa_only", &rsa_only[..]),
    ] {
        group.bench_with_input(BenchmarkId::new(case, n), &offered, |b, offered| {
            b.iter(|| black_box(resolver.resolve_name(Some(black_box(name)), offered)))
        });
    }
    group.finish();
}

criterion_group!(benches, selection);
criterion_main!(benches);
