//! A full in-memory TLS 1.3 handshake between a rustls client and Gatehouse's server
//! configuration, with an ECDSA P-256 and an RSA-2048 leaf (intermediate served), and a
//! resumed one (TLS 1.3 ticket, PSK with (EC)DHE).
//!
//! `…/pair` is both sides; `…/server` is the time spent in the server's calls only — the
//! proxy's share of the handshake, comparable with the proxy CPU per handshake that
//! `benches/load/compare.sh` measures (which adds sockets, the runtime and the kernel).
//! Full handshakes run with `session_resumption = false` (no tickets), as in the load test.
//! `full_mutual_tls` adds a client certificate the server verifies (`client_auth`);
//! `full_ocsp_stapled` a 1,500-byte OCSP staple the server sends. `sign/…` is the server's
//! CertificateVerify signature alone (the scheme an OpenSSL client gets: ECDSA P-256
//! SHA-256, RSA-PSS SHA-256), the floor of a full handshake's cost: compare with
//! `openssl speed rsa2048 ecdsap256`, what nginx and HAProxy sign with.

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkGroup, Criterion, criterion_group, criterion_main};
use gatehouse_benches::tls::{KeyKind, Material, Pair};
use rustls::{HandshakeKind, SignatureScheme};

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

/// The signature of a handshake transcript's hash, as the server makes it.
fn bench_sign(group: &mut BenchmarkGroup<'_, criterion::measurement::WallTime>, kind: KeyKind) {
    let material = Material::new(kind);
    let key = &material.loaded().certified_key.key;
    let scheme = match kind {
        KeyKind::EcdsaP256 => SignatureScheme::ECDSA_NISTP256_SHA256,
        KeyKind::Rsa2048 => SignatureScheme::RSA_PSS_SHA256,
    };
    let signer = key
        .choose_scheme(&[scheme])
        .expect("the key signs with the scheme OpenSSL clients offer first");
    // What TLS 1.3 signs: 64 spaces, the context string, a zero byte, the transcript hash.
    let message = [0x20u8; 130];
    group.bench_function(format!("sign/{}", kind.as_str()), |b| {
        b.iter(|| black_box(signer.sign(black_box(&message)).expect("sign")))
    });
}

fn handshakes(c: &mut Criterion) {
    let mut group = c.benchmark_group("handshake");
    group
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    for kind in KeyKind::ALL {
        bench_sign(&mut group, kind);
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
