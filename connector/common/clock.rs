//! The one wall clock: event times, arrival times and signature windows are all read here, so a
//! module that needs the time depends on nothing above it to get it.

use std::time::{SystemTime, UNIX_EPOCH};

/// Now in Unix epoch milliseconds (0 if the clock is before 1970).
pub fn now_millis() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Now in Unix epoch seconds (0 if the clock is before 1970).
pub fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    #[test]
    fn seconds_and_milliseconds_agree() {
        let (secs, millis) = (super::now_secs(), super::now_millis());
        assert!(millis / 1000 - secs as i64 <= 1);
        assert!(secs > 1_700_000_000);
    }
}
