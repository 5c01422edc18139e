//! The riferimento temporale: one instant per transaction, shown in Italian legal time.
//!
//! The same reading appears in the envelope `Date:`, the human text, daticert.xml and the
//! CMS signing time (pec-rules §2.5, §9.3), so every builder takes a `PecTime`.

use chrono::{DateTime, FixedOffset, NaiveDate, NaiveTime, TimeZone, Utc};
use chrono_tz::Europe::Rome;

/// An instant with the zone it is presented in (second precision).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PecTime(DateTime<FixedOffset>);

impl PecTime {
    /// `instant` presented in Italian legal time (Europe/Rome, CET/CEST).
    pub fn italian(instant: DateTime<Utc>) -> Self {
        let local = instant.with_timezone(&Rome);
        let trimmed = local.fixed_offset();
        Self::from_fixed(trimmed)
    }

    pub fn now() -> Self {
        Self::italian(Utc::now())
    }

    /// Keeps the given offset (used when parsing what another provider wrote).
    pub fn from_fixed(t: DateTime<FixedOffset>) -> Self {
        use chrono::Timelike;
        Self(t.with_nanosecond(0).unwrap_or(t))
    }

    pub fn datetime(&self) -> DateTime<FixedOffset> {
        self.0
    }

    pub fn utc(&self) -> DateTime<Utc> {
        self.0.with_timezone(&Utc)
    }

    /// `dd/mm/yyyy`
    pub fn giorno(&self) -> String {
        self.0.format("%d/%m/%Y").to_string()
    }

    /// `hh:mm:ss`
    pub fn ora(&self) -> String {
        self.0.format("%H:%M:%S").to_string()
    }

    /// `+hhmm` / `-hhmm`, as daticert's `zona` and the human text.
    pub fn zona(&self) -> String {
        self.0.format("%z").to_string()
    }

    /// RFC 5322 `Date:` value.
    pub fn rfc5322(&self) -> String {
        self.0.format("%a, %d %b %Y %H:%M:%S %z").to_string()
    }

    /// `Il giorno dd/mm/yyyy alle ore hh:mm:ss (+hhmm)` as real providers write it.
    pub fn italian_phrase(&self) -> String {
        format!(
            "Il giorno {} alle ore {} ({})",
            self.giorno(),
            self.ora(),
            self.zona()
        )
    }

    /// Rebuilds an instant from daticert's `giorno`, `ora` and `zona` (lenient about spaces).
    pub fn from_parts(giorno: &str, ora: &str, zona: &str) -> Option<Self> {
        let date = NaiveDate::parse_from_str(giorno.trim(), "%d/%m/%Y").ok()?;
        let time = NaiveTime::parse_from_str(ora.trim(), "%H:%M:%S").ok()?;
        let offset = parse_zona(zona)?;
        let t = offset.from_local_datetime(&date.and_time(time)).single()?;
        Some(Self(t))
    }
}

/// `+0100`, `-0530`, also `+01:00` (the RFC ABNF form) and `Z`.
pub fn parse_zona(zona: &str) -> Option<FixedOffset> {
    let z = zona.trim();
    if z.eq_ignore_ascii_case("z") {
        return FixedOffset::east_opt(0);
    }
    let (sign, rest) = match z.as_bytes().first()? {
        b'+' => (1, &z[1..]),
        b'-' => (-1, &z[1..]),
        _ => return None,
    };
    let digits: String = rest.chars().filter(|c| *c != ':').collect();
    if digits.len() != 4 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let hours: i32 = digits[..2].parse().ok()?;
    let minutes: i32 = digits[2..].parse().ok()?;
    if hours > 23 || minutes > 59 {
        return None;
    }
    FixedOffset::east_opt(sign * (hours * 3600 + minutes * 60))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn winter_and_summer_offsets_follow_italian_legal_time() {
        let winter = PecTime::italian(Utc.with_ymd_and_hms(2014, 11, 14, 17, 26, 32).unwrap());
        assert_eq!(winter.giorno(), "14/11/2014");
        assert_eq!(winter.ora(), "18:26:32");
        assert_eq!(winter.zona(), "+0100");
        assert_eq!(
            winter.italian_phrase(),
            "Il giorno 14/11/2014 alle ore 18:26:32 (+0100)"
        );
        let summer = PecTime::italian(Utc.with_ymd_and_hms(2021, 5, 3, 10, 0, 0).unwrap());
        assert_eq!(summer.zona(), "+0200");
        assert_eq!(summer.ora(), "12:00:00");
    }

    #[test]
    fn parts_round_trip_and_reject_garbage() {
        let t = PecTime::from_parts("13/11/2018", "16:39:27", "+0100").unwrap();
        assert_eq!(t.utc().to_rfc3339(), "2018-11-13T15:39:27+00:00");
        assert_eq!(
            PecTime::from_parts(" 13/11/2018 ", "16:39:27", "+01:00"),
            Some(t)
        );
        assert!(PecTime::from_parts("31/02/2018", "16:39:27", "+0100").is_none());
        assert!(PecTime::from_parts("13/11/2018", "25:00:00", "+0100").is_none());
        assert!(PecTime::from_parts("13/11/2018", "16:39:27", "0100").is_none());
    }
}
