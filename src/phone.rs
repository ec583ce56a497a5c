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
    let c = country.trim().to_ascii_uppercase();
    COUNTRIES.iter().find(|x| x.0 == c).map(|x| x.1)
}

pub fn default_timezone(country: &str) -> Option<&'static str> {
    let c = country.trim().to_ascii_uppercase();
    COUNTRIES.iter().find(|x| x.0 == c).map(|x| x.2)
}

/// Normalises a number written any usual way (`06 12 34 56 78`,
/// `+33 6 12 34 56 78`, `0033612345678`, `(0)6-12-34-56-78`) to E.164,
/// using `country` (or `fallback_country`) for national numbers.
pub fn to_e164(raw: &str, country: &str, fallback_country: &str) -> Option<String> {
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
    // "+33 (0)6..." writes the trunk zero after the country code.
    let international = match COUNTRIES.iter().find(|x| {
        international.starts_with(x.1) && international[x.1.len()..].starts_with('0') && x.1 != "39"
    }) {
        Some(x) => format!("{}{}", x.1, &international[x.1.len() + 1..]),
        None => international,
    };
    let ok = (8..=15).contains(&international.len())
        && !international.starts_with('0')
        && international.bytes().all(|b| b.is_ascii_digit());
    ok.then(|| format!("+{international}"))
}

#[cfg(test)]
mod tests {
    use super::to_e164;

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
