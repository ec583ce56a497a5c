//! Phone numbers to E.164, and the countries the engine knows: calling
//! code and the time zone used when a debtor gives none. A number that
//! cannot be normalised counts as no phone at all, so no SMS or call is ever
//! planned on a number no switch would dial.

/// (ISO 3166 alpha-2, calling code, default IANA time zone)
const COUNTRIES: &[(&str, &str, &str)] = &[
    ("AT", "43", "Europe/Vienna"),
    ("BE", "32", "Europe/Brussels"),
    ("CH", "41", "Europe/Zurich"),
    ("CN", "86", "Asia/Shanghai"),
    ("DE", "49", "Europe/Berlin"),
    ("ES", "34", "Europe/Madrid"),
    ("FR", "33", "Europe/Paris"),
    ("GB", "44", "Europe/London"),
    ("HK", "852", "Asia/Hong_Kong"),
    ("IE", "353", "Europe/Dublin"),
    ("IT", "39", "Europe/Rome"),
    ("LU", "352", "Europe/Luxembourg"),
    ("MA", "212", "Africa/Casablanca"),
    ("MC", "377", "Europe/Monaco"),
    ("NL", "31", "Europe/Amsterdam"),
    ("PT", "351", "Europe/Lisbon"),
    ("SG", "65", "Asia/Singapore"),
    ("US", "1", "America/New_York"),
];

pub fn calling_code(country: &str) -> Option<&'static str> {
    country_of(country).map(|x| x.1)
}

pub fn default_timezone(country: &str) -> Option<&'static str> {
    country_of(country).map(|x| x.2)
}

/// The known country `code` names, in any case and spacing: without an
/// upper-case copy, which was an allocation per debtor read.
fn country_of(code: &str) -> Option<&'static (&'static str, &'static str, &'static str)> {
    let c = code.trim();
    COUNTRIES.iter().find(|x| x.0.eq_ignore_ascii_case(c))
}

/// A number in E.164, kept inline: a million debtors' numbers are made
/// without an allocation each.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct E164 {
    /// `+` and at most 15 digits.
    bytes: [u8; 16],
    len: u8,
}

impl E164 {
    pub fn as_str(&self) -> &str {
        // Only `+` and ASCII digits are ever stored.
        std::str::from_utf8(&self.bytes[..usize::from(self.len)]).expect("ASCII")
    }
}

impl std::fmt::Debug for E164 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", self.as_str())
    }
}

/// Normalises a number written any usual way (`06 12 34 56 78`,
/// `+33 6 12 34 56 78`, `0033612345678`, `(0)6-12-34-56-78`) to E.164,
/// using `country` (or `fallback_country`) for national numbers.
pub fn to_e164(raw: &str, country: &str, fallback_country: &str) -> Option<E164> {
    // The digits as written, and whether a `+` led them. No number longer
    // than this can end within 15 digits: a prefix of at most two and one
    // trunk zero are all that is ever taken off.
    const ROOM: usize = 20;
    let mut digits = [0u8; ROOM];
    let mut n = 0;
    let mut plus = false;
    for (i, c) in raw.trim().chars().enumerate() {
        match c {
            '0'..='9' => {
                if n == ROOM {
                    return None;
                }
                digits[n] = c as u8;
                n += 1;
            }
            '+' if i == 0 => plus = true,
            ' ' | '.' | '-' | '(' | ')' | '/' => {}
            _ => return None,
        }
    }
    let written = &digits[..n];
    // The number with its calling code, without `+` or `00`.
    let mut int = [0u8; ROOM + 3];
    let mut len = 0;
    let mut put = |bytes: &[u8]| {
        int[len..len + bytes.len()].copy_from_slice(bytes);
        len += bytes.len();
    };
    if plus {
        put(written);
    } else if let Some(rest) = written.strip_prefix(b"00") {
        put(rest);
    } else {
        let cc = calling_code(country).or_else(|| calling_code(fallback_country))?;
        put(cc.as_bytes());
        put(written.strip_prefix(b"0").unwrap_or(written));
    }
    let mut int = &mut int[..len];
    // "+33 (0)6..." writes the trunk zero after the country code. Calling
    // codes are one to three digits, so a number with no zero in the
    // places after them has none: most numbers are not compared with each
    // code (8 % of the debtors' check, when they all were).
    let maybe = int
        .get(1..4.min(int.len()))
        .is_some_and(|d| d.contains(&b'0'));
    let trunk_zero = maybe
        .then(|| {
            COUNTRIES.iter().find(|x| {
                int.starts_with(x.1.as_bytes()) && int.get(x.1.len()) == Some(&b'0') && x.1 != "39"
            })
        })
        .flatten();
    if let Some(x) = trunk_zero {
        int.copy_within(x.1.len() + 1.., x.1.len());
        let l = int.len() - 1;
        int = &mut int[..l];
    }
    if !(8..=15).contains(&int.len()) || int[0] == b'0' {
        return None;
    }
    let mut out = E164 {
        bytes: [0; 16],
        len: int.len() as u8 + 1,
    };
    out.bytes[0] = b'+';
    out.bytes[1..=int.len()].copy_from_slice(int);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::{COUNTRIES, E164};
    use proptest::prelude::*;

    fn to_e164(raw: &str, country: &str, fallback: &str) -> Option<String> {
        super::to_e164(raw, country, fallback).map(|e| e.as_str().to_owned())
    }

    /// The first, allocating version, kept as the reference the inline one
    /// must agree with.
    fn reference(raw: &str, country: &str, fallback_country: &str) -> Option<String> {
        let calling_code = |country: &str| {
            let c = country.trim().to_ascii_uppercase();
            COUNTRIES.iter().find(|x| x.0 == c).map(|x| x.1)
        };
        let mut s = String::with_capacity(raw.len());
        for (i, c) in raw.trim().chars().enumerate() {
            match c {
                '0'..='9' => s.push(c),
                '+' if i == 0 => s.push(c),
                ' ' | '.' | '-' | '(' | ')' | '/' => {}
                _ => return None,
            }
        }
        let international = if let Some(rest) = s.strip_prefix('+') {
            rest.to_owned()
        } else if let Some(rest) = s.strip_prefix("00") {
            rest.to_owned()
        } else {
            let cc = calling_code(country).or_else(|| calling_code(fallback_country))?;
            let national = s.strip_prefix('0').unwrap_or(&s);
            format!("{cc}{national}")
        };
        let international = match COUNTRIES.iter().find(|x| {
            international.starts_with(x.1)
                && international[x.1.len()..].starts_with('0')
                && x.1 != "39"
        }) {
            Some(x) => format!("{}{}", x.1, &international[x.1.len() + 1..]),
            None => international,
        };
        let ok = (8..=15).contains(&international.len())
            && !international.starts_with('0')
            && international.bytes().all(|b| b.is_ascii_digit());
        ok.then(|| format!("+{international}"))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4000))]
        /// Numbers of every length around the limits, with prefixes, trunk
        /// zeros, separators, stray signs and letters, for known, unknown
        /// and oddly written countries: the same answer as the reference.
        #[test]
        fn inline_numbers_are_the_reference_numbers(
            prefix in prop::sample::select(vec!["", "+", "00", "0", "+33 (0)", "0033", "+39 0", "++", " +", "+0"]),
            body in "[0-9 .()/-]{0,24}",
            tail in prop::sample::select(vec!["", "x", "+", "0", "٣"]),
            country in prop::sample::select(vec!["FR", "fr", " gb ", "IT", "US", "XX", "", "Fr", "ẞE"]),
            fallback in prop::sample::select(vec!["FR", "", "MA", "zz"]),
        ) {
            let raw = format!("{prefix}{body}{tail}");
            prop_assert_eq!(to_e164(&raw, country, fallback), reference(&raw, country, fallback), "{:?} {:?} {:?}", raw, country, fallback);
        }
    }

    #[test]
    fn an_e164_number_shows_as_its_text() {
        let e: E164 = super::to_e164("06 12 34 56 78", "FR", "FR").unwrap();
        assert_eq!(e.as_str(), "+33612345678");
        assert_eq!(format!("{e:?}"), "\"+33612345678\"");
    }

    #[test]
    fn usual_spellings() {
        for raw in [
            "06 12 34 56 78",
            "+33 6 12 34 56 78",
            "0033612345678",
            "+33 (0)6-12-34-56-78",
            "06.12.34.56.78",
        ] {
            assert_eq!(
                to_e164(raw, "FR", "FR").as_deref(),
                Some("+33612345678"),
                "{raw}"
            );
        }
        assert_eq!(
            to_e164("020 7946 0958", "GB", "FR").as_deref(),
            Some("+442079460958")
        );
        assert_eq!(
            to_e164("138 0013 8000", "CN", "FR").as_deref(),
            Some("+8613800138000")
        );
        assert_eq!(
            to_e164("06 12 34 56 78", "", "FR").as_deref(),
            Some("+33612345678")
        );
        // Italian numbers keep their leading zero after the country code.
        assert_eq!(
            to_e164("+39 06 1234 5678", "IT", "FR").as_deref(),
            Some("+390612345678")
        );
    }

    #[test]
    fn refuses_what_cannot_be_dialled() {
        assert_eq!(to_e164("", "FR", "FR"), None);
        assert_eq!(to_e164("call me", "FR", "FR"), None);
        assert_eq!(to_e164("12", "FR", "FR"), None);
        assert_eq!(to_e164("=cmd|' /C calc'!A0", "FR", "FR"), None);
        assert_eq!(to_e164("06 12\r\n34", "FR", "FR"), None);
        assert_eq!(to_e164("0612345678", "XX", "YY"), None);
    }
}
