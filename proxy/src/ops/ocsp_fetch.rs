//! `ocsp_fetch = true`: Gatehouse asks the certificate's OCSP responder (the URL in its
//! Authority Information Access) for a response, checks it as a configured `ocsp` file is
//! checked, keeps it in `state_dir/ocsp/NAME.der` (so a restart staples at once) and
//! reloads to staple it. It asks again at half the response's remaining validity, and
//! after a failure with a backoff from a minute to an hour; meanwhile the last good
//! response keeps being stapled while it is current.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use rustls::pki_types::CertificateDer;
use tokio::time::Instant;

/// A responder that does not answer within this is tried again later.
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);
/// OCSP responses are a few KiB; more is not one.
const MAX_RESPONSE: usize = 64 * 1024;
/// The first wait after a failure, doubled at each failure up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_secs(60);
const MAX_BACKOFF: Duration = Duration::from_secs(3600);
/// The wait after a response without `nextUpdate`, and the shortest after any response.
const NO_NEXT_UPDATE: Duration = Duration::from_secs(3600);
const MIN_REFRESH: Duration = Duration::from_secs(60);

/// A certificate whose response is fetched, as served now.
#[derive(Debug, Clone)]
pub struct Target {
    pub name: String,
    /// The served chain, leaf first.
    pub chain: Vec<CertificateDer<'static>>,
    /// Where the response is kept (the certificate's `ocsp` file).
    pub file: PathBuf,
}

/// When each certificate's response is fetched next.
#[derive(Default)]
pub struct OcspFetcher {
    /// Per certificate: when to fetch next, and the failures in a row so far.
    schedule: HashMap<String, (Instant, u32)>,
}

impl OcspFetcher {
    /// Waits for the next fetch that is due, does it, and returns the certificate's name
    /// once a new response is in its file (to reload). Never resolves without targets.
    /// `targets` lists them as served now.
    pub async fn fetched(&mut self, targets: impl Fn() -> Vec<Target>) -> String {
        loop {
            let targets = targets();
            let next = targets
                .iter()
                .map(|t| (self.due(&t.name), t))
                .min_by_key(|(due, _)| *due);
            let Some((due, target)) = next else {
                return std::future::pending().await;
            };
            tokio::time::sleep_until(due).await;
            match fetch(target).await {
                Ok(wait) => {
                    tracing::info!(certificate = %target.name, "OCSP response fetched; the next in {}s", wait.as_secs());
                    self.schedule
                        .insert(target.name.clone(), (Instant::now() + wait, 0));
                    return target.name.clone();
                }
                Err(why) => {
                    let failures = self.schedule.get(&target.name).map_or(0, |s| s.1) + 1;
                    let backoff = FIRST_BACKOFF
                        .saturating_mul(1 << failures.min(6).saturating_sub(1))
                        .min(MAX_BACKOFF);
                    tracing::warn!(certificate = %target.name, "OCSP response not fetched: {why}; trying again in {}s (the last good one, if any, stays stapled while it is current)", backoff.as_secs());
                    self.schedule
                        .insert(target.name.clone(), (Instant::now() + backoff, failures));
                }
            }
        }
    }

    /// When `name`'s response is due: now for a certificate not fetched yet.
    fn due(&self, name: &str) -> Instant {
        self.schedule
            .get(name)
            .map_or_else(Instant::now, |(at, _)| *at)
    }
}

/// Fetches, checks and keeps one response; returns how long until the next fetch.
async fn fetch(target: &Target) -> Result<Duration, String> {
    let (Some(leaf), Some(issuer)) = (target.chain.first(), target.chain.get(1)) else {
        return Err("the certificate is served without its issuer".into());
    };
    let url = certstore::ocsp_responder_url(leaf).ok_or(
        "the certificate names no OCSP responder (http:// in Authority Information Access)",
    )?;
    let request = certstore::ocsp_request(leaf, issuer).map_err(|e| e.to_string())?;
    let response = tokio::time::timeout(FETCH_TIMEOUT, post(&url, request))
        .await
        .map_err(|_| format!("{url} did not answer within {}s", FETCH_TIMEOUT.as_secs()))??;
    let now = certstore::Timestamp::now();
    let staple = certstore::check_ocsp(&response, leaf, issuer, now)
        .map_err(|e| format!("{url} answered, but {e}"))?;
    certstore::write_atomic(&target.file, &response, certstore::FileMode::Public)
        .map_err(|e| format!("cannot write {}: {e}", target.file.display()))?;
    let left = staple
        .next_update
        .map(|n| n.unix_seconds().saturating_sub(now.unix_seconds()))
        .map_or(NO_NEXT_UPDATE, |secs| {
            Duration::from_secs(u64::try_from(secs / 2).unwrap_or(0))
        });
    Ok(left.max(MIN_REFRESH))
}

/// POSTs a DER request to an OCSP responder (RFC 6960 appendix A) and returns the body.
async fn post(url: &str, request: Vec<u8>) -> Result<Vec<u8>, String> {
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let req = http::Request::post(url)
        .header(http::header::CONTENT_TYPE, "application/ocsp-request")
        .body(Full::new(Bytes::from(request)))
        .map_err(|e| format!("{url}: {e}"))?;
    let resp = client
        .request(req)
        .await
        .map_err(|e| format!("{url}: {e}"))?;
    if !resp.status().is_success() {
        return Err(format!("{url} answered {}", resp.status()));
    }
    let body = Limited::new(resp.into_body(), MAX_RESPONSE)
        .collect()
        .await
        .map_err(|e| format!("{url}: {e}"))?;
    Ok(body.to_bytes().to_vec())
}
