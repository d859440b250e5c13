//! `gatehouse demo`: Gatehouse on an embedded default, with no files to supply. Makes a
//! throwaway internal CA and certificates for portal/engine/console `.localhost`, starts
//! three small upstreams, and serves them through one SNI-routed listener.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use certstore::InternalCa;
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::signal::unix::{SignalKind, signal};

use crate::server::Running;

/// Where the demo listens unless told otherwise.
pub const DEFAULT_DEMO_BIND: &str = "127.0.0.1:8443";

const COMPONENTS: [&str; 3] = ["portal", "engine", "console"];

/// Runs the demo until Ctrl-C or SIGTERM.
pub async fn demo(bind: SocketAddr, dir: Option<PathBuf>) -> anyhow::Result<()> {
    let dir = dir.unwrap_or_else(|| {
        std::env::temp_dir().join(format!("gatehouse-demo-{}", std::process::id()))
    });
    let config_path = prepare(&dir, bind).await?;
    let running = Running::start(&config_path).await?;
    let addr = running.addr("demo").unwrap_or(bind);
    let ca = crate::config::ca_dir(&dir.join("state")).join(InternalCa::CERT_FILE);
    println!("Gatehouse demo: files in {}", dir.display());
    println!(
        "Listening on https://{addr} for portal.localhost, engine.localhost and console.localhost."
    );
    println!("Try:");
    for name in COMPONENTS {
        println!(
            "  curl --cacert {} --resolve {name}.localhost:{port}:{ip} https://{name}.localhost:{port}/",
            ca.display(),
            port = addr.port(),
            ip = addr.ip(),
        );
    }
    if let Some(admin) = running.admin {
        println!("Metrics: curl http://{admin}/metrics   Certificates: curl http://{admin}/certs");
    }
    println!("Press Ctrl-C to stop.");
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    tokio::select! {
        _ = terminate.recv() => {}
        _ = interrupt.recv() => {}
    }
    running.shutdown(std::time::Duration::from_secs(5)).await;
    println!("Gatehouse demo stopped.");
    Ok(())
}

/// Starts the upstreams and writes the configuration; returns the config path. The
/// certificates are `issuer = "internal"`: Gatehouse's internal CA issues them at start,
/// exactly as on an appliance's first boot.
async fn prepare(dir: &Path, bind: SocketAddr) -> anyhow::Result<PathBuf> {
    let mut config = format!(
        "state_dir = \"{}\"\n[admin]\nlisten = \"127.0.0.1:0\"\n",
        toml_escape(&dir.join("state"))
    );
    let mut upstreams = Vec::new();
    for name in COMPONENTS {
        config.push_str(&format!(
            "\n[[certificate]]\nname = \"{name}\"\nissuer = \"internal\"\nnames = [\"{name}.localhost\"]\n"
        ));
        upstreams.push((name, start_upstream(name).await?));
    }
    config.push_str(&format!(
        "\n[[listener]]\nname = \"demo\"\nbind = \"{bind}\"\nprotocol = \"http\"\ncertificates = [\"portal\", \"engine\", \"console\"]\nupstream = \"http://{}\"\n",
        upstreams[0].1
    ));
    for (name, addr) in &upstreams[1..] {
        config.push_str(&format!(
            "\n[[listener.route]]\nserver_name = \"{name}.localhost\"\nupstream = \"http://{addr}\"\n"
        ));
    }
    let path = dir.join("gatehouse.toml");
    certstore::write_atomic(&path, config.as_bytes(), certstore::FileMode::Public)?;
    Ok(path)
}

fn toml_escape(path: &Path) -> String {
    path.display()
        .to_string()
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
}

/// A tiny HTTP/1.1 server on 127.0.0.1:0 that says who it is and what it was asked.
async fn start_upstream(name: &'static str) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            tokio::spawn(async move {
                let service = hyper::service::service_fn(
                    move |req: Request<Incoming>| async move {
                        let host = req
                            .headers()
                            .get("x-forwarded-host")
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or("-")
                            .to_owned();
                        let body = format!(
                            "Hello from the {name} (a Gatehouse demo upstream). You asked for {} on {host} over {:?}, through Gatehouse.\n",
                            req.uri().path(),
                            req.version(),
                        );
                        Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(body))))
                    },
                );
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tcp), service)
                    .await;
            });
        }
    });
    Ok(addr)
}
