//! Where time zones come from.

use jiff::tz::{TimeZone, TimeZoneDatabase};
use std::sync::OnceLock;

/// Finds a time zone by its IANA name (`Europe/Berlin`, `UTC`); `None` when unknown.
pub trait Zones {
    fn zone(&self, name: &str) -> Option<TimeZone>;

    /// The names it knows, for suggestions when a name is unknown; may be empty.
    fn names(&self) -> Vec<String> {
        Vec::new()
    }
}

/// The IANA time zone database built into the program (jiff's bundled copy): reading it
/// needs no file, and every machine running one build resolves a name to the same rules, so
/// the controllers of a pair expand a schedule alike whatever their systems' databases say.
#[derive(Debug, Clone, Copy, Default)]
pub struct BundledZones;

fn bundled() -> &'static TimeZoneDatabase {
    static DB: OnceLock<TimeZoneDatabase> = OnceLock::new();
    DB.get_or_init(TimeZoneDatabase::bundled)
}

impl Zones for BundledZones {
    fn zone(&self, name: &str) -> Option<TimeZone> {
        if name.eq_ignore_ascii_case("UTC") {
            return Some(TimeZone::UTC);
        }
        bundled().get(name).ok()
    }

    fn names(&self) -> Vec<String> {
        bundled()
            .available()
            .map(|n| n.as_str().to_owned())
            .collect()
    }
}

impl<F: Fn(&str) -> Option<TimeZone>> Zones for F {
    fn zone(&self, name: &str) -> Option<TimeZone> {
        self(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bundled_database_knows_the_zones() {
        let berlin = BundledZones.zone("Europe/Berlin").expect("Berlin");
        assert_eq!(berlin.iana_name(), Some("Europe/Berlin"));
        assert!(BundledZones.zone("America/New_York").is_some());
        assert!(BundledZones.zone("utc").is_some());
        assert!(BundledZones.zone("Europe/Nowhere").is_none());
        assert!(BundledZones.zone("").is_none());
    }
}
