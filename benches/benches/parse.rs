//! Parsing what operators receive: a PEM bundle (leaf, intermediate and key in one file)
//! with `certstore::parse_bundle`, and a PKCS#12 file made by the `openssl` CLI (its
//! defaults: AES-256-CBC, PBKDF2 and a SHA-256 MAC, 2,048 iterations each) with
//! `certstore::parse_pkcs12`. Parsing only: no chain assembly, no key loading.

use std::hint::black_box;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use gatehouse_benches::tls::{KeyKind, Material};
use gatehouse_tests::write;

const PASSWORD: &str = "bench-password";

/// `openssl pkcs12 -export` of the leaf, its key and the intermediate.
fn pkcs12(dir: &Path, material: &Material, kind: KeyKind) -> Vec<u8> {
    let name = kind.as_str();
    let cert = write(dir, &format!("{name}.crt"), &material.leaf.cert_pem);
    let key = write(dir, &format!("{name}.key"), &material.leaf.key_pem);
    let chain = write(
        dir,
        &format!("{name}.chain.pem"),
        &material.pki.inter.cert_pem,
    );
    let out = dir.join(format!("{name}.p12"));
    let status = Command::new("openssl")
        .args(["pkcs12", "-export", "-passout"])
        .arg(format!("pass:{PASSWORD}"))
        .arg("-in")
        .arg(&cert)
        .arg("-inkey")
        .arg(&key)
        .arg("-certfile")
        .arg(&chain)
        .arg("-out")
        .arg(&out)
        .status()
        .expect("run openssl pkcs12 (is the openssl CLI installed?)");
    assert!(status.success(), "openssl pkcs12 -export failed");
    std::fs::read(&out).expect("read the PKCS#12 file")
}

fn parsing(c: &mut Criterion) {
    let mut group = c.benchmark_group("parse");
    group
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(2));
    let dir = gatehouse_tests::temp_dir();
    for kind in KeyKind::ALL {
        let material = Material::new(kind);
        let pem = format!(
            "{}{}{}",
            material.leaf.cert_pem, material.pki.inter.cert_pem, material.leaf.key_pem
        );
        let path = Path::new("bundle.pem");
        let parsed = certstore::parse_bundle(path, pem.as_bytes()).expect("parse the bundle");
        assert_eq!(
            (parsed.certs.len(), parsed.keys.len()),
            (2, 1),
            "leaf, chain, key"
        );
        group.bench_function(format!("pem_bundle/{}", kind.as_str()), |b| {
            b.iter(|| black_box(certstore::parse_bundle(path, black_box(pem.as_bytes()))))
        });

        let p12 = pkcs12(dir.path(), &material, kind);
        let path = Path::new("bundle.p12");
        let parsed = certstore::parse_pkcs12(path, &p12, PASSWORD).expect("parse the PKCS#12");
        assert_eq!(
            (parsed.certs.len(), parsed.keys.len()),
            (2, 1),
            "leaf, chain, key"
        );
        group.bench_function(format!("pkcs12/{}", kind.as_str()), |b| {
            b.iter(|| black_box(certstore::parse_pkcs12(path, black_box(&p12), PASSWORD)))
        });
    }
    group.finish();
}

criterion_group!(benches, parsing);
criterion_main!(benches);
