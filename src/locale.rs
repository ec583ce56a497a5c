//! How amounts and dates read in each language. Written by hand rather than
//! pulled from a locale database so that output bytes never change with a
//! system library: fr `1 234,56 €` and `22 novembre 2026`, en `€1,234.56`
//! and `22 November 2026`, zh `€1,234.56` and `2026年11月22日`. Plain spaces
//! are used as French separators: a no-break space would force every French
//! SMS into UCS-2 and more than double its cost.

use crate::money::Cents;
use chrono::{Datelike, NaiveDate};

/// Languages with their own formats; any other falls back to English forms.
pub const KNOWN: &[&str] = &["fr", "en", "zh"];

fn symbol(currency: &str) -> Option<&'static str> {
    Some(match currency {
        "EUR" => "€",
        "USD" => "$",
        "GBP" => "£",
        "CNY" => "¥",
        "JPY" => "¥",
        _ => return None,
    })
}

/// `int` with `sep` between groups of three digits, appended to `out`.
fn group_into(out: &mut String, int: u64, sep: &str) {
    let mut buf = itoa::Buffer::new();
    let digits = buf.format(int);
    let first = match digits.len() % 3 {
        0 => 3,
        n => n,
    };
    out.push_str(&digits[..first]);
    for at in (first..digits.len()).step_by(3) {
        out.push_str(sep);
        out.push_str(&digits[at..at + 3]);
    }
}

/// An amount with its currency, as a reader of `lang` expects it. Written
/// piece by piece into one string: each e-mail formats several (every
/// overdue item's amounts, the totals), and `format!` on `format!` was a
/// twenty-fifth of an e-mail's time.
pub fn money(cents: Cents, currency: &str, lang: &str) -> String {
    let neg = cents < 0;
    let abs = cents.unsigned_abs();
    let (int, frac) = (abs / 100, abs % 100);
    let mut out = String::with_capacity(24 + currency.len());
    let two = |out: &mut String| {
        out.push(char::from(b'0' + (frac / 10) as u8));
        out.push(char::from(b'0' + (frac % 10) as u8));
    };
    if neg {
        out.push('-');
    }
    match lang {
        "fr" => {
            group_into(&mut out, int, " ");
            out.push(',');
            two(&mut out);
            out.push(' ');
            out.push_str(symbol(currency).unwrap_or(currency));
        }
        _ => {
            match symbol(currency) {
                Some(s) => out.push_str(s),
                None => {
                    out.push_str(currency);
                    out.push(' ');
                }
            }
            group_into(&mut out, int, ",");
            out.push('.');
            two(&mut out);
        }
    }
    out
}

const FR_MONTHS: [&str; 12] = [
    "janvier",
    "février",
    "mars",
    "avril",
    "mai",
    "juin",
    "juillet",
    "août",
    "septembre",
    "octobre",
    "novembre",
    "décembre",
];
const EN_MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];

/// A date written out, as a reader of `lang` expects it.
pub fn date(d: NaiveDate, lang: &str) -> String {
    let m = d.month0() as usize;
    let mut out = String::with_capacity(24);
    let mut n = itoa::Buffer::new();
    let (day, year) = (d.day(), d.year());
    match lang {
        "zh" => {
            out.push_str(n.format(year));
            out.push('年');
            out.push_str(n.format(d.month()));
            out.push('月');
            out.push_str(n.format(day));
            out.push('日');
        }
        _ => {
            let month = if lang == "fr" {
                FR_MONTHS[m]
            } else {
                EN_MONTHS[m]
            };
            if lang == "fr" && day == 1 {
                out.push_str("1er");
            } else {
                out.push_str(n.format(day));
            }
            out.push(' ');
            out.push_str(month);
            out.push(' ');
            out.push_str(n.format(year));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(s: &str) -> NaiveDate {
        crate::dates::parse_date(s).unwrap()
    }

    #[test]
    fn amounts() {
        assert_eq!(money(123456, "EUR", "fr"), "1 234,56 €");
        assert_eq!(money(123456, "EUR", "en"), "€1,234.56");
        assert_eq!(money(123456, "EUR", "zh"), "€1,234.56");
        assert_eq!(money(5, "EUR", "fr"), "0,05 €");
        assert_eq!(money(100_000_000, "USD", "en"), "$1,000,000.00");
        assert_eq!(money(99_999, "CHF", "fr"), "999,99 CHF");
        assert_eq!(money(99_999, "CHF", "en"), "CHF 999.99");
        assert_eq!(money(-1050, "GBP", "en"), "-£10.50");
    }

    /// The forms as first written, with `format!`: what `money` and
    /// `date` must still write.
    fn money_as_written(cents: Cents, currency: &str, lang: &str) -> String {
        fn group(int: u64, sep: &str) -> String {
            let digits = int.to_string();
            let mut out = String::new();
            for (i, c) in digits.chars().enumerate() {
                if i > 0 && (digits.len() - i).is_multiple_of(3) {
                    out.push_str(sep);
                }
                out.push(c);
            }
            out
        }
        let sign = if cents < 0 { "-" } else { "" };
        let abs = cents.unsigned_abs();
        let (int, frac) = (abs / 100, abs % 100);
        match lang {
            "fr" => {
                let n = format!("{sign}{},{frac:02}", group(int, " "));
                match symbol(currency) {
                    Some(s) => format!("{n} {s}"),
                    None => format!("{n} {currency}"),
                }
            }
            _ => {
                let n = format!("{}.{frac:02}", group(int, ","));
                match symbol(currency) {
                    Some(s) => format!("{sign}{s}{n}"),
                    None => format!("{sign}{currency} {n}"),
                }
            }
        }
    }

    fn date_as_written(d: NaiveDate, lang: &str) -> String {
        let m = d.month0() as usize;
        match lang {
            "fr" if d.day() == 1 => format!("1er {} {}", FR_MONTHS[m], d.year()),
            "fr" => format!("{} {} {}", d.day(), FR_MONTHS[m], d.year()),
            "zh" => format!("{}年{}月{}日", d.year(), d.month(), d.day()),
            _ => format!("{} {} {}", d.day(), EN_MONTHS[m], d.year()),
        }
    }

    proptest::proptest! {
        #[test]
        fn amounts_and_dates_read_as_first_written(
            cents in proptest::prelude::any::<i64>(),
            small in -1_000_000_000i64..1_000_000_000,
            currency in "EUR|USD|GBP|CNY|JPY|CHF|XOF",
            lang in "fr|en|zh|de",
            days in -200_000i32..200_000,
        ) {
            proptest::prop_assert_eq!(money(cents, &currency, &lang), money_as_written(cents, &currency, &lang));
            proptest::prop_assert_eq!(money(small, &currency, &lang), money_as_written(small, &currency, &lang));
            let d = NaiveDate::from_ymd_opt(2000, 1, 1).unwrap() + chrono::Duration::days(i64::from(days));
            proptest::prop_assert_eq!(date(d, &lang), date_as_written(d, &lang));
        }
    }

    #[test]
    fn dates() {
        assert_eq!(date(day("2026-11-22"), "fr"), "22 novembre 2026");
        assert_eq!(date(day("2026-11-01"), "fr"), "1er novembre 2026");
        assert_eq!(date(day("2026-11-22"), "en"), "22 November 2026");
        assert_eq!(date(day("2026-11-22"), "zh"), "2026年11月22日");
        assert_eq!(date(day("2026-02-05"), "de"), "5 February 2026");
    }
}
