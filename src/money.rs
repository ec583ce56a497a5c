//! Exact money. Amounts travel as integer minor units (hundredths) from the
//! moment they are read; Rhai sees them as `Decimal`. Binary floating point
//! never touches an amount, so `0.1 + 0.2` is always `0.30`.

use rust_decimal::Decimal;
use std::fmt;

/// Hundredths of the account's currency.
pub type Cents = i64;

/// Why a decimal string is not an acceptable amount.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AmountError {
    #[error("amount is empty")]
    Empty,
    #[error("not a decimal number (expected digits with an optional '.' and up to 2 decimals)")]
    Syntax,
    #[error("negative amount")]
    Negative,
    #[error("more than 2 decimals")]
    Precision,
    #[error("amount too large")]
    Overflow,
}

/// Parses `"1234"`, `"1234.5"` or `"1234.56"` into cents. No sign, no
/// thousands separator, no exponent, no spaces: a ledger that sends anything
/// else has a bug the night should surface rather than guess around.
pub fn parse_amount(s: &str) -> Result<Cents, AmountError> {
    // The shape nearly every ledger amount has, `digits.dd`, read in one
    // pass (9 million amounts a night at a million debtors); anything else
    // takes the general reading, which says what is wrong with it.
    let b = s.as_bytes();
    if (4..=19).contains(&b.len()) && b[b.len() - 3] == b'.' {
        let mut cents: i64 = 0;
        let mut digits = true;
        for (i, &c) in b.iter().enumerate() {
            if i == b.len() - 3 {
                continue;
            }
            let d = c.wrapping_sub(b'0');
            digits &= d < 10;
            // At most 18 digits cannot overflow; what a text that is not
            // all digits adds up to is not used.
            cents = cents.wrapping_mul(10).wrapping_add(i64::from(d));
        }
        if digits {
            return Ok(cents);
        }
    }
    parse_amount_general(s)
}

/// [`parse_amount`] for any text.
fn parse_amount_general(s: &str) -> Result<Cents, AmountError> {
    if s.is_empty() {
        return Err(AmountError::Empty);
    }
    let (negative, body) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s),
    };
    let (int_part, frac_part) = match body.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (body, None),
    };
    if int_part.is_empty() || !int_part.bytes().all(|b| b.is_ascii_digit()) {
        return Err(AmountError::Syntax);
    }
    if let Some(f) = frac_part {
        if f.is_empty() || !f.bytes().all(|b| b.is_ascii_digit()) {
            return Err(AmountError::Syntax);
        }
    }
    if negative {
        return Err(AmountError::Negative);
    }
    let frac = frac_part.unwrap_or("");
    // Trailing zeros beyond the second decimal are still exact ("1.500").
    let significant = frac.trim_end_matches('0');
    if significant.len() > 2 {
        return Err(AmountError::Precision);
    }
    let mut cents: i64 = 0;
    for b in int_part.bytes() {
        cents = cents
            .checked_mul(10)
            .and_then(|c| c.checked_add(i64::from(b - b'0')))
            .ok_or(AmountError::Overflow)?;
    }
    let mut frac_digits = [0u8; 2];
    for (slot, b) in frac_digits.iter_mut().zip(significant.bytes()) {
        *slot = b - b'0';
    }
    cents
        .checked_mul(100)
        .and_then(|c| c.checked_add(i64::from(frac_digits[0]) * 10 + i64::from(frac_digits[1])))
        .ok_or(AmountError::Overflow)
}

/// The canonical text of an amount: `1234.50`, `0.05`, `-3.00`.
pub fn format_cents(cents: Cents) -> String {
    Money(cents).to_string()
}

/// Display wrapper for cents.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Money(pub Cents);

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.0 < 0 { "-" } else { "" };
        let abs = self.0.unsigned_abs();
        write!(f, "{sign}{}.{:02}", abs / 100, abs % 100)
    }
}

/// The value a script sees.
pub fn to_decimal(cents: Cents) -> Decimal {
    Decimal::new(cents, 2)
}

/// Policy thresholds are written as decimal strings (`"10.00"`); they are
/// compared in cents, so a threshold with more precision is refused.
pub fn decimal_to_cents(d: Decimal) -> Option<Cents> {
    let scaled = d.checked_mul(Decimal::ONE_HUNDRED)?;
    if scaled.fract() != Decimal::ZERO {
        return None;
    }
    i64::try_from(scaled.trunc()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_plain_amounts() {
        assert_eq!(parse_amount("0"), Ok(0));
        assert_eq!(parse_amount("12"), Ok(1200));
        assert_eq!(parse_amount("12.3"), Ok(1230));
        assert_eq!(parse_amount("12.34"), Ok(1234));
        assert_eq!(parse_amount("12.340"), Ok(1234));
        assert_eq!(parse_amount("0012.00"), Ok(1200));
    }

    #[test]
    fn refuses_what_a_ledger_should_not_send() {
        assert_eq!(parse_amount(""), Err(AmountError::Empty));
        assert_eq!(parse_amount("-1.00"), Err(AmountError::Negative));
        assert_eq!(parse_amount("1.234"), Err(AmountError::Precision));
        assert_eq!(parse_amount("1,50"), Err(AmountError::Syntax));
        assert_eq!(parse_amount("1e3"), Err(AmountError::Syntax));
        assert_eq!(parse_amount(" 1"), Err(AmountError::Syntax));
        assert_eq!(parse_amount("1."), Err(AmountError::Syntax));
        assert_eq!(parse_amount(".5"), Err(AmountError::Syntax));
        assert_eq!(parse_amount("+1"), Err(AmountError::Syntax));
        assert_eq!(
            parse_amount("99999999999999999999"),
            Err(AmountError::Overflow)
        );
    }

    #[test]
    fn formats_with_two_decimals() {
        assert_eq!(format_cents(0), "0.00");
        assert_eq!(format_cents(5), "0.05");
        assert_eq!(format_cents(123450), "1234.50");
        assert_eq!(format_cents(-300), "-3.00");
    }

    proptest! {
        /// The one-pass reading of `digits.dd` gives what the general
        /// reading gives, for texts of that shape and of shapes near it (`/`
        /// and `:` stand either side of the digits).
        #[test]
        fn the_usual_shape_reads_as_any_other(s in "-?[0-9.,a :/]{0,4}[0-9]{0,16}[.][0-9a:/]{2}") {
            prop_assert_eq!(parse_amount(&s), parse_amount_general(&s));
        }

        /// Money is exact: every amount survives text and back unchanged.
        #[test]
        fn round_trips(c in 0i64..=9_000_000_000_000_000) {
            prop_assert_eq!(parse_amount(&format_cents(c)), Ok(c));
            prop_assert_eq!(decimal_to_cents(to_decimal(c)), Some(c));
        }
    }
}
