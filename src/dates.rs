//! Calendar days. Every date in the engine is a day; the night never looks at
//! a clock, so nothing about a run depends on when or where it ran.

use chrono::NaiveDate;

/// Strict `YYYY-MM-DD`: chrono alone would take `2026-1-5`, which a ledger
/// export should never produce.
pub fn parse_date(s: &str) -> Option<NaiveDate> {
    let (y, m, d) = ymd(s)?;
    NaiveDate::from_ymd_opt(y, m as u32, d as u32)
}

/// The year, month and day of `YYYY-MM-DD` text, not yet checked as a date.
fn ymd(s: &str) -> Option<(i32, i32, i32)> {
    let b: &[u8; 10] = s.as_bytes().try_into().ok()?;
    if b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    // Digits only, read directly (chrono's format parser costs more than
    // the rest of a ledger row's checks): each byte less `0`, which is
    // under 10 for a digit only.
    let d = b.map(|c| i32::from(c.wrapping_sub(b'0')));
    if [0, 1, 2, 3, 5, 6, 8, 9]
        .iter()
        .any(|&i| !(0..10).contains(&d[i]))
    {
        return None;
    }
    Some((
        d[0] * 1000 + d[1] * 100 + d[2] * 10 + d[3],
        d[5] * 10 + d[6],
        d[8] * 10 + d[9],
    ))
}

/// Days since 1970-01-01, the physical value of a Polars `Date`.
pub fn to_days(d: NaiveDate) -> i32 {
    use chrono::Datelike;
    // 719,163 days from 0001-01-01 (day 1 of the common era) to 1970-01-01.
    d.num_days_from_ce() - 719_163
}

/// Whether [`iso_text`] writes this day: years 0 to 9999, from
/// 0000-01-01 to 9999-12-31.
pub fn iso_writable(days: i32) -> bool {
    (-719_528..=2_932_896).contains(&days)
}

/// [`parse_date`] then [`to_days`], without building a date: the ledger
/// reads two dates a row, nine million a night at a million debtors.
pub fn parse_days(s: &str) -> Option<i32> {
    let (y, m, d) = ymd(s)?;
    let leap = y % 4 == 0 && (y % 100 != 0 || y % 400 == 0);
    let month_days = match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return None,
    };
    // chrono's calendar starts at year 0 here too (0000 is a leap year).
    if d < 1 || d > month_days {
        return None;
    }
    // Days from civil (H. Hinnant): years start in March, so the leap day
    // is the last of its year.
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    Some(era * 146_097 + doe - 719_468)
}

pub fn from_days(days: i32) -> NaiveDate {
    NaiveDate::from_ymd_opt(1970, 1, 1).expect("epoch") + chrono::Duration::days(days.into())
}

/// A day as `YYYY-MM-DD` without a heap allocation or chrono's formatter
/// (turning a Parquet ledger's 9 million dates into text went through
/// `strftime` and was a tenth of reading it); `None` outside years 0 to
/// 9999, which the strict format cannot write.
pub fn iso_text(days: i32) -> Option<IsoDate> {
    if !iso_writable(days) {
        return None;
    }
    use chrono::Datelike;
    let d = NaiveDate::from_ymd_opt(1970, 1, 1)?
        .checked_add_signed(chrono::Duration::days(days.into()))?;
    let (y, m, day) = (d.year(), d.month(), d.day());
    if !(0..=9999).contains(&y) {
        return None;
    }
    let y = y as u32;
    let digit = |n: u32| b'0' + (n % 10) as u8;
    Some(IsoDate([
        digit(y / 1000),
        digit(y / 100),
        digit(y / 10),
        digit(y),
        b'-',
        digit(m / 10),
        digit(m),
        b'-',
        digit(day / 10),
        digit(day),
    ]))
}

/// The ten bytes of an ISO date, as text.
#[derive(Clone, Copy)]
pub struct IsoDate([u8; 10]);

impl AsRef<str> for IsoDate {
    fn as_ref(&self) -> &str {
        // Only ASCII digits and dashes are ever written.
        std::str::from_utf8(&self.0).expect("ASCII")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Reading days straight from the text agrees with chrono on every
        /// text of the shape, valid dates or not (30 February, month 13,
        /// day 00, year 0000, leap centuries).
        #[test]
        fn days_straight_from_text(y in 0u32..10000, m in 0u32..14, d in 0u32..33) {
            let s = format!("{y:04}-{m:02}-{d:02}");
            prop_assert_eq!(parse_days(&s), parse_date(&s).map(to_days));
        }
    }

    proptest! {
        /// Year, month and day are read from `YYYY-MM-DD` and from nothing
        /// else: a reference reading by the text's pieces agrees, on texts
        /// near that shape (signs, spaces, letters, short or long parts,
        /// characters of two bytes).
        #[test]
        fn ymd_reads_only_the_strict_shape(s in prop_oneof![
            "[0-9+ :/]{0,5}[-/é]?[0-9a:]{0,3}[-]?[0-9 :/]{0,3}",
            // The shape itself, with `/` and `:` (either side of the
            // digits) among them.
            "[0-9:/]{4}-[0-9:/]{2}-[0-9:/]{2}",
        ]) {
            let reference = (|| {
                let parts: Vec<&str> = s.split('-').collect();
                let digits = |p: &str, n: usize| p.len() == n && p.bytes().all(|c| c.is_ascii_digit());
                if parts.len() != 3 || !digits(parts[0], 4) || !digits(parts[1], 2) || !digits(parts[2], 2) {
                    return None;
                }
                Some((parts[0].parse().ok()?, parts[1].parse().ok()?, parts[2].parse().ok()?))
            })();
            prop_assert_eq!(ymd(&s), reference);
        }
    }

    #[test]
    fn writable_days_are_years_0_to_9999() {
        for days in [-719_529, -719_528, 0, 2_932_896, 2_932_897] {
            assert_eq!(iso_writable(days), iso_text(days).is_some(), "{days}");
        }
        assert_eq!(iso_text(-719_528).unwrap().as_ref(), "0000-01-01");
        assert_eq!(iso_text(2_932_896).unwrap().as_ref(), "9999-12-31");
        assert!(!iso_writable(2_932_897) && !iso_writable(-719_529));
    }

    #[test]
    fn days_of_known_dates() {
        assert_eq!(parse_days("1970-01-01"), Some(0));
        assert_eq!(parse_days("2000-02-29"), Some(11_016));
        assert_eq!(parse_days("1900-02-29"), None);
        assert_eq!(
            parse_days("2026-11-22"),
            Some(to_days(NaiveDate::from_ymd_opt(2026, 11, 22).unwrap()))
        );
        assert_eq!(parse_days("0000-01-01"), Some(-719_528));
        for bad in ["2026-1-05", "2026-01-5 ", "2026/01/05", "", "+026-01-05"] {
            assert_eq!(parse_days(bad), None, "{bad}");
        }
    }

    #[test]
    fn iso_text_is_what_chrono_writes() {
        for days in [-719_528, -1, 0, 1, 20_000, 20_414, 2_932_896] {
            let d = from_days(days);
            assert_eq!(
                iso_text(days).unwrap().as_ref(),
                d.format("%Y-%m-%d").to_string()
            );
            assert_eq!(parse_date(iso_text(days).unwrap().as_ref()), Some(d));
        }
        assert!(iso_text(-719_529).is_none());
        assert!(iso_text(2_932_897).is_none());
    }

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
