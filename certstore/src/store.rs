//! The atomic snapshot of everything served, and how a reload replaces it.
//!
//! A reload builds every certificate off to the side, keeps the previous version of any
//! that fails, and publishes the result with one `ArcSwap::store`. Handshakes load the
//! snapshot without locking; established connections keep the key they were given.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

use arc_swap::ArcSwap;

use crate::cert::LoadedCert;
use crate::error::LoadError;
use crate::last_good;
use crate::pool::Intermediates;
use crate::report::{InitialLoadError, Outcome, ReloadReport, ReportEntry, Version};
use crate::resolve::{ListenerIndex, SniResolver};
use crate::source::{CertSpec, ListenerSpec, StoreConfig};
use crate::time::Timestamp;

/// Everything served at one moment. Immutable once published.
#[derive(Debug, Default)]
pub struct Snapshot {
    certs: BTreeMap<String, Arc<LoadedCert>>,
    /// Indexed by listener slot (see [`Store::resolver`]); a slot absent from the
    /// configuration has an empty index.
    listeners: Vec<ListenerIndex>,
    /// Certificates served from an earlier version because their files failed, with why.
    stale: BTreeMap<String, String>,
    generation: u64,
}

impl Snapshot {
    /// Builds the name indexes of every listener. `slots` gives each listener's slot.
    pub fn build(
        certs: BTreeMap<String, Arc<LoadedCert>>,
        listeners: &[ListenerSpec],
        slots: &[String],
        generation: u64,
    ) -> Self {
        let indexes = slots
            .iter()
            .map(|slot| {
                let Some(spec) = listeners.iter().find(|l| &l.name == slot) else {
                    return ListenerIndex::default();
                };
                let mut index = ListenerIndex::new(spec.strict_sni);
                for cert in spec.certificates.iter().filter_map(|n| certs.get(n)) {
                    index.add(&cert.leaf().dns_names, &cert.certified_key);
                }
                index
            })
            .collect();
        Self {
            certs,
            listeners: indexes,
            stale: BTreeMap::new(),
            generation,
        }
    }

    pub fn certificates(&self) -> impl Iterator<Item = &Arc<LoadedCert>> {
        self.certs.values()
    }

    pub fn certificate(&self, name: &str) -> Option<&Arc<LoadedCert>> {
        self.certs.get(name)
    }

    /// Why certificate `name` serves an earlier version than its files (they failed to
    /// load), or `None` when it serves what its files hold.
    pub fn stale(&self, name: &str) -> Option<&str> {
        self.stale.get(name).map(String::as_str)
    }

    pub(crate) fn listener(&self, slot: usize) -> Option<&ListenerIndex> {
        self.listeners.get(slot)
    }

    /// Counts published snapshots: 1 after the first load, +1 per reload.
    pub fn generation(&self) -> u64 {
        self.generation
    }
}

/// Holds the published snapshot and replaces it on reload.
#[derive(Debug)]
pub struct Store {
    current: Arc<ArcSwap<Snapshot>>,
    /// Listener name per slot; slots only grow, so resolvers keep their index for life.
    /// Locked on resolver creation and reload, never on a handshake.
    slots: Mutex<Vec<String>>,
    /// Reloads run one at a time (SIGHUP and the admin API may race).
    reloading: Mutex<()>,
}

impl Store {
    /// First load: every certificate must serve, from its files or, when they fail, from
    /// its last known good version; otherwise nothing is served.
    pub fn load(
        config: &StoreConfig,
        now: Timestamp,
    ) -> Result<(Self, ReloadReport), InitialLoadError> {
        let store = Self {
            current: Arc::new(ArcSwap::from_pointee(Snapshot::default())),
            slots: Mutex::new(Vec::new()),
            reloading: Mutex::new(()),
        };
        let report = store.reload_at(config, now);
        if !report.has_unserved() {
            Ok((store, report))
        } else {
            Err(InitialLoadError { report })
        }
    }

    /// A store serving certificates already loaded (issued in memory, or for benchmarks).
    pub fn from_loaded(certs: Vec<LoadedCert>, listeners: &[ListenerSpec]) -> Self {
        let slots: Vec<String> = listeners.iter().map(|l| l.name.clone()).collect();
        let certs = certs
            .into_iter()
            .map(|c| (c.name.clone(), Arc::new(c)))
            .collect();
        let snapshot = Snapshot::build(certs, listeners, &slots, 1);
        Self {
            current: Arc::new(ArcSwap::from_pointee(snapshot)),
            slots: Mutex::new(slots),
            reloading: Mutex::new(()),
        }
    }

    /// Reloads at the current time.
    pub fn reload(&self, config: &StoreConfig) -> ReloadReport {
        self.reload_at(config, Timestamp::now())
    }

    /// Loads every configured certificate off to the side, keeps the previous version of
    /// any that fails, and publishes the new snapshot in one swap.
    pub fn reload_at(&self, config: &StoreConfig, now: Timestamp) -> ReloadReport {
        let _one_at_a_time = self
            .reloading
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let old = self.current.load_full();
        let pool = Intermediates::gather(config);
        let mut certs = BTreeMap::new();
        let mut stale = BTreeMap::new();
        let mut entries = Vec::with_capacity(config.certificates.len());
        for spec in &config.certificates {
            let loaded =
                last_good::load_and_keep(spec, now, &pool, config.last_good_dir.as_deref());
            let (entry, serve) =
                settle(spec, loaded, old.certs.get(&spec.name), config, &pool, now);
            if let Some(cert) = serve {
                certs.insert(spec.name.clone(), cert);
            }
            if let Some(error) = entry.outcome.error() {
                stale.insert(spec.name.clone(), error.to_string());
            }
            entries.push(entry);
        }
        for (name, prev) in &old.certs {
            if !config.certificates.iter().any(|c| &c.name == name) {
                entries.push(ReportEntry {
                    name: name.clone(),
                    outcome: Outcome::Removed(Version::of(prev)),
                    warnings: Vec::new(),
                    completed: Vec::new(),
                });
            }
        }
        let generation = old.generation + 1;
        let snapshot = {
            let mut slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
            for l in &config.listeners {
                if !slots.contains(&l.name) {
                    slots.push(l.name.clone());
                }
            }
            Snapshot {
                stale,
                ..Snapshot::build(certs, &config.listeners, &slots, generation)
            }
        };
        self.current.store(Arc::new(snapshot));
        ReloadReport {
            entries,
            generation,
        }
    }

    /// The snapshot served right now.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.current.load_full()
    }

    /// The resolver for a configured listener, or `None` if no load has named it.
    pub fn resolver(&self, listener: &str) -> Option<Arc<SniResolver>> {
        let slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        let slot = slots.iter().position(|s| s == listener)?;
        Some(Arc::new(SniResolver::new(self.current.clone(), slot)))
    }
}

/// What a reload does with one certificate: the new material when it loaded, else the
/// previous version, else its last known good version. Returns the report row and what
/// to serve.
fn settle(
    spec: &CertSpec,
    loaded: Result<LoadedCert, LoadError>,
    previous: Option<&Arc<LoadedCert>>,
    config: &StoreConfig,
    pool: &Intermediates,
    now: Timestamp,
) -> (ReportEntry, Option<Arc<LoadedCert>>) {
    let entry = |outcome, warnings, completed| ReportEntry {
        name: spec.name.clone(),
        outcome,
        warnings,
        completed,
    };
    match (loaded, previous) {
        (Ok(new), Some(prev)) if new.same_chain(prev) => {
            // The same key object keeps serving; what is said about it (warnings such as
            // "expires in N days", source files) is current.
            let row = entry(
                Outcome::Unchanged(Version::of(prev)),
                new.warnings.clone(),
                new.completed.clone(),
            );
            let kept = LoadedCert {
                certified_key: prev.certified_key.clone(),
                loaded_at: prev.loaded_at,
                ..new
            };
            (row, Some(Arc::new(kept)))
        }
        (Ok(new), prev) => {
            let outcome = match prev {
                Some(prev) => Outcome::Updated {
                    before: Version::of(prev),
                    after: Version::of(&new),
                },
                None => Outcome::Added(Version::of(&new)),
            };
            let row = entry(outcome, new.warnings.clone(), new.completed.clone());
            (row, Some(Arc::new(new)))
        }
        (Err(error), Some(prev)) => {
            let outcome = Outcome::KeptPrevious {
                serving: Version::of(prev),
                error,
            };
            (entry(outcome, Vec::new(), Vec::new()), Some(prev.clone()))
        }
        (Err(error), None) => {
            let kept = config
                .last_good_dir
                .as_deref()
                .and_then(|dir| last_good::load(dir, spec, now, pool));
            match kept {
                Some(kept) => {
                    let outcome = Outcome::LastKnownGood {
                        serving: Version::of(&kept),
                        error,
                    };
                    (
                        entry(outcome, kept.warnings.clone(), Vec::new()),
                        Some(Arc::new(kept)),
                    )
                }
                None => (entry(Outcome::Failed(error), Vec::new(), Vec::new()), None),
            }
        }
    }
}
