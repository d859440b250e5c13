//! The systemd notification protocol (`Type=notify`): `READY=1` once every listener is
//! bound and every certificate loaded, `RELOADING=1` (with `MONOTONIC_USEC`) and `READY=1`
//! around each reload, `STOPPING=1` when draining, and a `STATUS=` line with the
//! certificates' state. Without `NOTIFY_SOCKET` (not under systemd) every call does
//! nothing.

use certstore::{Snapshot, Timestamp};

/// The status line systemd shows (`systemctl status`): how many certificates serve, how
/// many from an earlier version, and the next to expire.
pub fn status(snapshot: &Snapshot, now: Timestamp) -> String {
    let mut serving = 0;
    let mut stale = 0;
    let mut next: Option<(i64, &str)> = None;
    for cert in snapshot.certificates() {
        serving += 1;
        if snapshot.stale(&cert.name).is_some() {
            stale += 1;
        }
        let days = cert.leaf().days_left(now);
        if next.is_none_or(|(d, _)| days < d) {
            next = Some((days, &cert.name));
        }
    }
    let mut line = format!("serving {serving} certificate(s)");
    if stale > 0 {
        line.push_str(&format!(", {stale} STALE (their files fail; see the log)"));
    }
    if let Some((days, name)) = next {
        line.push_str(&format!("; next expiry: {name} in {days} days"));
    }
    line
}

/// Every listener is bound and every certificate loaded.
pub fn ready(status: &str) {
    send(&[
        sd_notify::NotifyState::Ready,
        sd_notify::NotifyState::Status(status),
    ]);
}

/// A reload starts; `ready` says when it is over.
pub fn reloading() {
    let mut states = vec![sd_notify::NotifyState::Reloading];
    if let Ok(now) = sd_notify::NotifyState::monotonic_usec_now() {
        states.push(now);
    }
    send(&states);
}

/// The drain started: no new connections.
pub fn stopping() {
    send(&[
        sd_notify::NotifyState::Stopping,
        sd_notify::NotifyState::Status("draining"),
    ]);
}

fn send(states: &[sd_notify::NotifyState<'_>]) {
    if let Err(e) = sd_notify::notify(states) {
        tracing::warn!("cannot notify systemd (NOTIFY_SOCKET): {e}");
    }
}
