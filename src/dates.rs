//! Calendar days. Every date in the engine is a day; the night never looks at
//! a clock, so nothing about a run depends on when or where it ran.

use chrono::NaiveDate;

/// Strict `YYYY-MM-DD`: chrono alone would take `2026-1-5`, which a ledger
/// export should never produce.
pub fn parse_date(s: &str) -> Option<NaiveDate> {
    let b = s.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    if !b
        .iter()
        .enumerate()
        .all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit())
    {
        return None;
    }
    NaiveDate::parse_from_str(s, "%Y-%m-%d").ok()
}

/// Days since 1970-01-01, the physical value of a Polars `Date`.
pub fn to_days(d: NaiveDate) -> i32 {
    (d - NaiveDate::from_ymd_opt(1970, 1, 1).expect("epoch")).num_days() as i32
}

pub fn from_days(days: i32) -> NaiveDate {
    NaiveDate::from_ymd_opt(1970, 1, 1).expect("epoch") + chrono::Duration::days(days.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strict_iso_dates() {
        assert_eq!(
            parse_date("2026-11-22"),
            NaiveDate::from_ymd_opt(2026, 11, 22)
        );
        assert_eq!(parse_date("2026-1-05"), None);
        assert_eq!(parse_date("2026-02-30"), None);
        assert_eq!(parse_date("22/11/2026"), None);
        assert_eq!(parse_date("2026-11-22 "), None);
        assert_eq!(parse_date(""), None);
    }

    #[test]
    fn day_numbers_round_trip() {
        let d = NaiveDate::from_ymd_opt(2026, 11, 22).unwrap();
        assert_eq!(from_days(to_days(d)), d);
        assert_eq!(to_days(NaiveDate::from_ymd_opt(1970, 1, 2).unwrap()), 1);
    }
}
