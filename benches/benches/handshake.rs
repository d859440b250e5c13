//! A full in-memory TLS 1.3 handshake between a rustls client and Gatehouse's server
//! configuration, with an ECDSA P-256 and an RSA-2048 leaf (intermediate served), and a
//! resumed one (TLS 1.3 ticket, PSK with (EC)DHE).
//!
//! `…/pair` is both sides; `…/server` is the time spent in the server's calls only — the
//! proxy's share of the handshake, comparable with the proxy CPU per handshake that
//! `benches/load/compare.sh` measures (which adds sockets, the runtime and the kernel).
//! Full handshakes run with `session_resumption = false` (no tickets), as in the load test.
//! `full_mutual_tls` adds a client certificate the server verifies (`client_auth`);
//! `full_ocsp_stapled` a 1,500-byte OCSP staple the server sends.

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkGroup, Criterion, criterion_group, criterion_main};
use gatehouse_benches::tls::{KeyKind, Material, Pair};
use rustls::HandshakeKind;

fn bench_pair(
    group: &mut BenchmarkGroup<'_, criterion::measurement::WallTime>,
    id: &str,
    mut pair: Pair,
    expect: HandshakeKind,
) {
    let first = pair.handshake();
    if expect == HandshakeKind::Resumed {
        // The first connection was full; it left the tickets the next ones resume with.
        assert_eq!(
            first.kind,
            HandshakeKind::Full,
            "{id}: the first handshake is full"
        );
    }
    let next = pair.handshake();
    assert_eq!(
        next.kind, expect,
        "{id}: the benchmarked handshake is {expect:?}"
    );
    group.bench_function(format!("{id}/pair"), |b| {
        b.iter(|| black_box(pair.handshake()))
    });
    group.bench_function(format!("{id}/server"), |b| {
        b.iter_custom(|iters| {
            (0..iters)
                .map(|_| pair.handshake().server_time)
                .sum::<Duration>()
        })
    });
}

fn handshakes(c: &mut Criterion) {
    let mut group = c.benchmark_group("handshake");
    group
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    for kind in KeyKind::ALL {
        let material = Material::new(kind);
        let full = Pair::new(material.client_config(false), material.server_config(false));
        bench_pair(
            &mut group,
            &format!("full/{}", kind.as_str()),
            full,
            HandshakeKind::Full,
        );
        let resumed = Pair::new(material.client_config(true), material.server_config(true));
        bench_pair(
            &mut group,
            &format!("resumed/{}", kind.as_str()),
            resumed,
            HandshakeKind::Resumed,
        );
    }
    // An OCSP staple sent in the handshake (the client asks for it, as browsers do).
    let material = Material::new(KeyKind::EcdsaP256);
    let stapled = Pair::new(
        material.client_config(false),
        material.server_config_stapled(1500),
    );
    bench_pair(
        &mut group,
        "full_ocsp_stapled/ecdsa-p256",
        stapled,
        HandshakeKind::Full,
    );
    // Mutual TLS: the client's certificate (ECDSA P-256, with its intermediate) verified
    // against the root as well.
    let dir = gatehouse_tests::temp_dir();
    let material = Material::new(KeyKind::EcdsaP256);
    let mutual = Pair::new(
        material.client_config_with_certificate(),
        material.server_config_mutual_tls(dir.path()),
    );
    bench_pair(
        &mut group,
        "full_mutual_tls/ecdsa-p256",
        mutual,
        HandshakeKind::Full,
    );
    group.finish();
}

criterion_group!(benches, handshakes);
criterion_main!(benches);
