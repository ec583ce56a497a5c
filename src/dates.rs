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
    // Digits only from here: read them directly (chrono's format parser
    // costs more than the rest of a ledger row's checks).
    let num =
        |r: std::ops::Range<usize>| b[r].iter().fold(0u32, |n, c| n * 10 + u32::from(c - b'0'));
    NaiveDate::from_ymd_opt(num(0..4) as i32, num(5..7), num(8..10))
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

#[cfg(test)]
mod agreement {
    use super::*;
    use chrono::Datelike;

    /// The fast path says what chrono's parser says, on every day of four
    /// centuries and on strings that are almost dates.
    #[test]
    fn parse_date_agrees_with_chrono() {
        let chrono = |s: &str| NaiveDate::parse_from_str(s, "%Y-%m-%d").ok();
        let mut d = NaiveDate::from_ymd_opt(1800, 1, 1).unwrap();
        while d.year() < 2200 {
            let s = d.format("%Y-%m-%d").to_string();
            assert_eq!(parse_date(&s), Some(d), "{s}");
            d = d.succ_opt().unwrap();
        }
        for s in [
            "2026-02-29",
            "2024-02-29",
            "2026-13-01",
            "2026-00-10",
            "2026-01-00",
            "2026-01-32",
            "0000-01-01",
            "9999-12-31",
            "2026-04-31",
            "1900-02-29",
            "2000-02-29",
        ] {
            assert_eq!(parse_date(s), chrono(s), "{s}");
        }
        for bad in [
            "2026-1-05",
            "26-01-05",
            "2026/01/05",
            "2026-01-0a",
            "",
            "2026-01-051",
        ] {
            assert_eq!(parse_date(bad), None, "{bad}");
        }
    }
}
