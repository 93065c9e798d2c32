//! The consent cache: LRU by tax code, versioned so that an older read never replaces a newer
//! write, and aware of loads in flight so that a change notified meanwhile is not hidden.

use std::collections::HashMap;
use std::num::NonZeroUsize;
use std::sync::Arc;
use std::time::{Duration, Instant};

use lru::LruCache;

use crate::db::consent::CitizenConsent;
use crate::domain::TaxCode;

/// A cached answer: the citizen, or `None` for a citizen the database does not know.
pub type Entry = Option<Arc<CitizenConsent>>;

fn version_of(e: &Entry) -> i64 {
    e.as_ref().map_or(0, |c| c.version)
}

/// The cache (owned by the actor, so no locking). Entries also expire after a TTL: the bound on
/// staleness should another replica's change notification ever be lost.
pub struct ConsentCache {
    entries: LruCache<String, (Entry, Instant)>,
    ttl: Duration,
    /// Loads in flight per tax code: how many, and the highest version notified meanwhile.
    loading: HashMap<String, (u32, i64)>,
}

impl ConsentCache {
    /// A cache holding at most `capacity` citizens, each for at most `ttl`.
    pub fn new(capacity: usize, ttl: Duration) -> Self {
        let cap = NonZeroUsize::new(capacity).unwrap_or(NonZeroUsize::MIN);
        Self {
            entries: LruCache::new(cap),
            ttl,
            loading: HashMap::new(),
        }
    }

    /// A cached answer, refreshing its recency.
    pub fn get(&mut self, tax: &TaxCode) -> Option<Entry> {
        let ttl = self.ttl;
        match self.entries.get(tax.as_str()) {
            Some((entry, stored)) if stored.elapsed() < ttl => Some(entry.clone()),
            Some(_) => {
                self.entries.pop(tax.as_str());
                None
            }
            None => None,
        }
    }

    /// A cached citizen without touching recency (writes use it as a hint only).
    pub fn peek(&self, tax: &TaxCode) -> Option<Arc<CitizenConsent>> {
        self.entries
            .peek(tax.as_str())
            .and_then(|(entry, _)| entry.clone())
    }

    /// Notes that a load from the database starts.
    pub fn load_started(&mut self, tax: &TaxCode) {
        self.loading
            .entry(tax.as_str().to_owned())
            .or_insert((0, 0))
            .0 += 1;
    }

    /// Stores a loaded answer unless a newer version was notified or cached meanwhile.
    pub fn load_finished(&mut self, tax: &TaxCode, loaded: Entry) {
        let key = tax.as_str();
        let notified = match self.loading.get_mut(key) {
            Some((n, max)) => {
                let max = *max;
                *n -= 1;
                if *n == 0 {
                    self.loading.remove(key);
                }
                max
            }
            None => 0,
        };
        if version_of(&loaded) >= notified {
            self.store(tax, loaded);
        }
    }

    /// Notes that a load failed (nothing to store).
    pub fn load_failed(&mut self, tax: &TaxCode) {
        if let Some((n, _)) = self.loading.get_mut(tax.as_str()) {
            *n -= 1;
            if *n == 0 {
                self.loading.remove(tax.as_str());
            }
        }
    }

    /// Stores an answer if it is at least as new as the cached one (a committed write, or a load).
    pub fn store(&mut self, tax: &TaxCode, entry: Entry) {
        let newer = self
            .entries
            .peek(tax.as_str())
            .is_none_or(|(cur, _)| version_of(cur) <= version_of(&entry));
        if newer {
            self.entries
                .put(tax.as_str().to_owned(), (entry, Instant::now()));
        }
    }

    /// Another process committed `version`: drop anything older.
    pub fn invalidate(&mut self, tax: &str, version: i64) {
        if let Some((_, max)) = self.loading.get_mut(tax) {
            *max = (*max).max(version);
        }
        if self
            .entries
            .peek(tax)
            .is_some_and(|(e, _)| version_of(e) < version)
        {
            self.entries.pop(tax);
        }
    }

    /// Drops everything (listener reconnected, actor restarted).
    pub fn clear(&mut self) {
        self.entries.clear();
        for (_, max) in self.loading.values_mut() {
            *max = i64::MAX;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tax() -> TaxCode {
        TaxCode::parse("RSSMRA85T10A562S").unwrap()
    }

    fn at(version: i64) -> Entry {
        Some(Arc::new(CitizenConsent {
            version,
            changes: Vec::new(),
            complete: true,
        }))
    }

    #[test]
    fn an_older_answer_never_replaces_a_newer_one() {
        let mut c = ConsentCache::new(10, Duration::from_secs(60));
        c.store(&tax(), at(3));
        c.store(&tax(), at(2));
        assert_eq!(version_of(&c.get(&tax()).unwrap()), 3);
    }

    #[test]
    fn a_load_that_raced_a_notified_change_is_not_cached() {
        let mut c = ConsentCache::new(10, Duration::from_secs(60));
        c.load_started(&tax());
        c.invalidate(tax().as_str(), 5);
        c.load_finished(&tax(), at(4));
        assert!(c.get(&tax()).is_none());
        c.load_started(&tax());
        c.load_finished(&tax(), at(5));
        assert_eq!(version_of(&c.get(&tax()).unwrap()), 5);
    }

    #[test]
    fn invalidation_drops_older_entries_only() {
        let mut c = ConsentCache::new(10, Duration::from_secs(60));
        c.store(&tax(), at(5));
        c.invalidate(tax().as_str(), 5);
        assert!(c.get(&tax()).is_some(), "own write already cached");
        c.invalidate(tax().as_str(), 6);
        assert!(c.get(&tax()).is_none());
    }

    #[test]
    fn unknown_citizens_are_cached_until_someone_creates_them() {
        let mut c = ConsentCache::new(10, Duration::from_secs(60));
        c.store(&tax(), None);
        assert_eq!(c.get(&tax()), Some(None));
        c.invalidate(tax().as_str(), 1);
        assert_eq!(c.get(&tax()), None);
    }

    #[test]
    fn entries_expire_after_the_ttl() {
        let mut c = ConsentCache::new(10, Duration::from_millis(0));
        c.store(&tax(), at(1));
        assert!(c.get(&tax()).is_none());
    }

    #[test]
    fn clear_poisons_loads_in_flight() {
        let mut c = ConsentCache::new(10, Duration::from_secs(60));
        c.load_started(&tax());
        c.clear();
        c.load_finished(&tax(), at(9));
        assert!(c.get(&tax()).is_none());
    }
}
