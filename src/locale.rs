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

fn group(int: u64, sep: &str) -> String {
    let digits = int.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3 * sep.len());
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push_str(sep);
        }
        out.push(c);
    }
    out
}

/// An amount with its currency, as a reader of `lang` expects it.
pub fn money(cents: Cents, currency: &str, lang: &str) -> String {
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
    match lang {
        "fr" if d.day() == 1 => format!("1er {} {}", FR_MONTHS[m], d.year()),
        "fr" => format!("{} {} {}", d.day(), FR_MONTHS[m], d.year()),
        "zh" => format!("{}年{}月{}日", d.year(), d.month(), d.day()),
        _ => format!("{} {} {}", d.day(), EN_MONTHS[m], d.year()),
    }
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

    #[test]
    fn dates() {
        assert_eq!(date(day("2026-11-22"), "fr"), "22 novembre 2026");
        assert_eq!(date(day("2026-11-01"), "fr"), "1er novembre 2026");
        assert_eq!(date(day("2026-11-22"), "en"), "22 November 2026");
        assert_eq!(date(day("2026-11-22"), "zh"), "2026年11月22日");
        assert_eq!(date(day("2026-02-05"), "de"), "5 February 2026");
    }
}
