//! `gatehouse run --config FILE`: serve until SIGTERM/SIGINT; SIGHUP reloads.

use std::path::Path;

use tokio::signal::unix::{SignalKind, signal};

use crate::ops::notify;
use crate::ops::ocsp_fetch::OcspFetcher;
use crate::ops::watch::Watch;
use crate::serve::sockets::Inherited;
use crate::server::Running;

/// Serves until a stop signal, then drains. Returns when the process should exit 0.
/// `inherited`: the listening sockets systemd passed (socket activation).
pub async fn run(config_path: &Path, inherited: Inherited) -> anyhow::Result<()> {
    let running = Running::start_with(config_path, inherited).await?;
    let mut hangup = signal(SignalKind::hangup())?;
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut watch = Watch::new(running.watched());
    let mut ocsp = OcspFetcher::default();
    tracing::info!("ready");
    notify::ready(&running.status());
    loop {
        tokio::select! {
            _ = hangup.recv() => {
                tracing::info!("SIGHUP: reloading {}", config_path.display());
                reload(&running, &mut watch).await;
            }
            name = ocsp.fetched(|| running.ocsp_targets()) => {
                tracing::info!("a new OCSP response for \"{name}\": reloading to staple it");
                reload(&running, &mut watch).await;
            }
            changed = watch.changed() => {
                let changed: Vec<_> = changed.iter().map(|p| p.display().to_string()).collect();
                tracing::info!("files changed ({}): reloading", changed.join(", "));
                reload(&running, &mut watch).await;
            }
            _ = terminate.recv() => { tracing::info!("SIGTERM: draining"); break; }
            _ = interrupt.recv() => { tracing::info!("SIGINT: draining"); break; }
        }
    }
    notify::stopping();
    let grace = running.shutdown_timeout();
    running.shutdown(grace).await;
    tracing::info!("stopped");
    Ok(())
}

/// A reload asked for by a signal or by the watcher (told to systemd and logged by the
/// reload itself); then the watcher follows the files the configuration now reads.
async fn reload(running: &Running, watch: &mut Watch) {
    // Its outcome is logged; either way the watcher goes on.
    let _ = running.reload_async().await;
    watch.update(running.watched());
}
