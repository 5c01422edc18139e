//! Italian months (`YYYY-MM`): the registro's unit of storage, sealing and rotation.

use chrono::{DateTime, Datelike, TimeZone, Utc};

use crate::pec::timestamp::PecTime;

/// `YYYY-MM` of an instant, in Italian legal time (months are the holder's months).
pub fn month_of(t: DateTime<Utc>) -> String {
    let local = PecTime::italian(t).datetime();
    format!("{:04}-{:02}", local.year(), local.month())
}

/// The month `n` months before `month` (`YYYY-MM`).
pub fn month_minus(month: &str, n: u32) -> Option<String> {
    let (y, m) = month.split_once('-')?;
    let (y, m): (i64, i64) = (y.parse().ok()?, m.parse().ok()?);
    let index = y * 12 + (m - 1) - i64::from(n);
    Some(format!(
        "{:04}-{:02}",
        index.div_euclid(12),
        index.rem_euclid(12) + 1
    ))
}

/// The month after `month` (`YYYY-MM`).
pub fn month_after(month: &str) -> Option<String> {
    let (y, m) = month.split_once('-')?;
    let (y, m): (i32, u32) = (y.parse().ok()?, m.parse().ok()?);
    Some(if m >= 12 {
        format!("{:04}-01", y + 1)
    } else {
        format!("{y:04}-{:02}", m + 1)
    })
}

/// The instant an Italian month begins (midnight in Rome).
pub fn month_start_italian(month: &str) -> Option<DateTime<Utc>> {
    let (y, m) = month.split_once('-')?;
    chrono_tz::Europe::Rome
        .with_ymd_and_hms(y.parse().ok()?, m.parse().ok()?, 1, 0, 0, 0)
        .earliest()
        .map(|t| t.with_timezone(&Utc))
}

/// Midnight UTC of the first day of `YYYY-MM` (for synthetic clocks in tests).
pub fn month_start(month: &str) -> Option<DateTime<Utc>> {
    let (y, m) = month.split_once('-')?;
    Utc.with_ymd_and_hms(y.parse().ok()?, m.parse().ok()?, 1, 0, 0, 0)
        .single()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn month_arithmetic() {
        assert_eq!(month_minus("2026-03", 2).as_deref(), Some("2026-01"));
        assert_eq!(month_minus("2026-03", 3).as_deref(), Some("2025-12"));
        assert_eq!(month_minus("2026-01", 29).as_deref(), Some("2023-08"));
        // Italian months: 23:30 UTC on 31 Jan is already February in Rome.
        let t = Utc.with_ymd_and_hms(2026, 1, 31, 23, 30, 0).unwrap();
        assert_eq!(month_of(t), "2026-02");
        assert_eq!(month_after("2026-12").as_deref(), Some("2027-01"));
        assert_eq!(month_after("2026-03").as_deref(), Some("2026-04"));
        // Rome is UTC+1 in winter, UTC+2 in summer.
        assert_eq!(
            month_start_italian("2026-02"),
            Some(Utc.with_ymd_and_hms(2026, 1, 31, 23, 0, 0).unwrap())
        );
        assert_eq!(
            month_start_italian("2026-07"),
            Some(Utc.with_ymd_and_hms(2026, 6, 30, 22, 0, 0).unwrap())
        );
    }
}
