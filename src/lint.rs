//! Static checks on ladder conditions, where the answer can be decided from
//! the text: a level whose condition can never hold (a contradiction, or a
//! bound the engine rules out when that level is tried: `level` is always
//! the level below, the gap is always respected), and thresholds that look
//! like slips (a later level asking for fewer days past due).
//!
//! Only top-level conjunctions of `variable op number` are understood; any
//! other part of a condition is left out, which can only widen what the
//! condition allows. So "can never hold" is never said of a condition that
//! can hold.

use rust_decimal::Decimal;
use std::collections::BTreeMap;

/// The values a variable may take: bounds with their inclusiveness.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Interval {
    lo: Option<(Decimal, bool)>,
    hi: Option<(Decimal, bool)>,
}

impl Interval {
    fn at_least(v: Decimal, inclusive: bool) -> Interval {
        Interval {
            lo: Some((v, inclusive)),
            hi: None,
        }
    }

    fn at_most(v: Decimal, inclusive: bool) -> Interval {
        Interval {
            lo: None,
            hi: Some((v, inclusive)),
        }
    }

    fn exactly(v: Decimal) -> Interval {
        Interval {
            lo: Some((v, true)),
            hi: Some((v, true)),
        }
    }

    fn intersect(&self, o: &Interval) -> Interval {
        let lo = match (self.lo, o.lo) {
            (Some(a), Some(b)) => Some(if a.0 > b.0 || (a.0 == b.0 && !a.1) {
                a
            } else {
                b
            }),
            (a, b) => a.or(b),
        };
        let hi = match (self.hi, o.hi) {
            (Some(a), Some(b)) => Some(if a.0 < b.0 || (a.0 == b.0 && !a.1) {
                a
            } else {
                b
            }),
            (a, b) => a.or(b),
        };
        Interval { lo, hi }
    }

    /// Empty over the integers when `integer`, else over the decimals.
    fn is_empty(&self, integer: bool) -> bool {
        let (Some((lo, li)), Some((hi, hi_inc))) = (self.lo, self.hi) else {
            return false;
        };
        if integer {
            let lo = if li {
                lo.ceil()
            } else {
                lo.floor() + Decimal::ONE
            };
            let hi = if hi_inc {
                hi.floor()
            } else {
                hi.ceil() - Decimal::ONE
            };
            return lo > hi;
        }
        lo > hi || (lo == hi && !(li && hi_inc))
    }

    fn show(&self, var: &str) -> String {
        let lo = self
            .lo
            .map(|(v, i)| format!("{var} {} {v}", if i { ">=" } else { ">" }));
        let hi = self
            .hi
            .map(|(v, i)| format!("{var} {} {v}", if i { "<=" } else { "<" }));
        match (lo, hi) {
            (Some(a), Some(b)) if self.lo.map(|l| l.0) == self.hi.map(|h| h.0) => {
                let _ = (a, b);
                format!("{var} == {}", self.lo.map(|l| l.0).unwrap_or_default())
            }
            (Some(a), Some(b)) => format!("{a} && {b}"),
            (Some(a), None) | (None, Some(a)) => a,
            (None, None) => format!("any {var}"),
        }
    }
}

/// Variables whose values are whole numbers.
fn is_integer(var: &str) -> bool {
    crate::script::VARIABLES
        .iter()
        .any(|(n, ty, _)| *n == var && *ty == "int")
        || var == "level"
}

/// Splits `src` at top-level `&&`; `None` when it has a top-level `||`
/// (a disjunction says nothing certain about each part).
fn conjuncts(src: &str) -> Option<Vec<&str>> {
    let mut out = Vec::new();
    let (mut depth, mut start, mut in_str) = (0i32, 0usize, false);
    let b = src.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'"' => in_str = !in_str,
            b'(' | b'[' | b'{' if !in_str => depth += 1,
            b')' | b']' | b'}' if !in_str => depth -= 1,
            b'&' if !in_str && depth == 0 && b.get(i + 1) == Some(&b'&') => {
                out.push(src[start..i].trim());
                start = i + 2;
                i += 1;
            }
            b'|' if !in_str && depth == 0 && b.get(i + 1) == Some(&b'|') => return None,
            _ => {}
        }
        i += 1;
    }
    out.push(src[start..].trim());
    Some(out)
}

fn is_ident(s: &str) -> bool {
    let mut c = s.chars();
    c.next().is_some_and(|f| f.is_ascii_lowercase() || f == '_')
        && c.all(|x| x.is_ascii_lowercase() || x.is_ascii_digit() || x == '_')
}

/// `var op number` (either way round) as the interval it allows.
fn comparison(c: &str) -> Option<(String, Interval)> {
    for op in [">=", "<=", "==", ">", "<"] {
        let Some((l, r)) = c.split_once(op) else {
            continue;
        };
        if op.len() == 1 && (r.starts_with('=') || l.ends_with('!') || l.ends_with('=')) {
            continue;
        }
        let (l, r) = (l.trim(), r.trim());
        let (var, num, flipped) = if is_ident(l) {
            (l, r, false)
        } else if is_ident(r) {
            (r, l, true)
        } else {
            return None;
        };
        let v: Decimal = num.replace('_', "").parse().ok()?;
        let op = if flipped {
            match op {
                ">=" => "<=",
                "<=" => ">=",
                ">" => "<",
                "<" => ">",
                o => o,
            }
        } else {
            op
        };
        let iv = match op {
            ">=" => Interval::at_least(v, true),
            ">" => Interval::at_least(v, false),
            "<=" => Interval::at_most(v, true),
            "<" => Interval::at_most(v, false),
            _ => Interval::exactly(v),
        };
        return Some((var.to_owned(), iv));
    }
    None
}

/// What a condition allows, variable by variable; `None` when nothing can
/// be said (a top-level `||`).
pub fn allowed(src: &str) -> Option<BTreeMap<String, Interval>> {
    let mut m: BTreeMap<String, Interval> = BTreeMap::new();
    for c in conjuncts(src)? {
        if let Some((var, iv)) = comparison(c) {
            let cur = m.remove(&var).unwrap_or_default();
            m.insert(var, cur.intersect(&iv));
        }
    }
    Some(m)
}

/// One ladder level as the checks see it.
pub struct LevelText<'a> {
    pub number: u32,
    pub name: &'a str,
    pub when: &'a str,
    pub min_gap: i64,
    pub jump: bool,
}

/// A finding about level `index`: an error (`never`) or a warning.
#[derive(Debug, PartialEq)]
pub struct Finding {
    pub index: usize,
    pub never: bool,
    pub message: String,
}

pub fn check_ladder(levels: &[LevelText<'_>]) -> Vec<Finding> {
    let mut out = Vec::new();
    let mut below: Option<BTreeMap<String, Interval>> = None;
    for (i, l) in levels.iter().enumerate() {
        let src = l.when.trim();
        if src == "false" {
            out.push(Finding {
                index: i,
                never: true,
                message: "the condition is `false`: this level can never be reached".into(),
            });
            below = None;
            continue;
        }
        let Some(m) = allowed(src) else {
            below = None;
            continue;
        };
        let mut never = None;
        for (var, iv) in &m {
            if iv.is_empty(is_integer(var)) {
                never = Some(format!(
                    "can never hold: its bounds on `{var}` contradict each other"
                ));
                break;
            }
            // What the engine guarantees when this level is tried.
            let known = match var.as_str() {
                "level" if l.jump => Some((
                    Interval::at_least(Decimal::ZERO, true)
                        .intersect(&Interval::at_most(Decimal::from(l.number - 1), true)),
                    format!("`level` is below {} whenever level {} is tried", l.number, l.number),
                )),
                "level" => Some((
                    Interval::exactly(Decimal::from(l.number - 1)),
                    format!("`level` is {} whenever level {} is tried", l.number - 1, l.number),
                )),
                "days_since_escalation" if l.number == 1 && !l.jump => Some((
                    Interval::exactly(Decimal::from(-1)),
                    "an account at level 0 has never been escalated (or was cured), so `days_since_escalation` is -1".into(),
                )),
                "days_since_escalation" if l.number > 1 && !l.jump => Some((
                    Interval::at_least(Decimal::from(l.min_gap), true),
                    format!(
                        "the minimum gap makes `days_since_escalation` at least {} whenever level {} can be reached",
                        l.min_gap, l.number
                    ),
                )),
                _ => None,
            };
            if let Some((k, why)) = known {
                if iv.intersect(&k).is_empty(true) {
                    never = Some(format!(
                        "can never hold: it needs {}, but {why}",
                        iv.show(var)
                    ));
                    break;
                }
            }
        }
        if let Some(message) = never {
            out.push(Finding {
                index: i,
                never: true,
                message,
            });
            below = Some(m);
            continue;
        }
        if let (Some(prev), Some(prev_level)) = (&below, i.checked_sub(1).map(|p| &levels[p])) {
            for (var, iv) in &m {
                let Some(piv) = prev.get(var) else { continue };
                if var == "level" || var == "days_since_escalation" {
                    continue;
                }
                if iv.intersect(piv).is_empty(is_integer(var)) {
                    out.push(Finding {
                        index: i,
                        never: false,
                        message: format!(
                            "needs {} but level {} needed {}: it can only hold after `{var}` moved back (e.g. a payment)",
                            iv.show(var),
                            prev_level.number,
                            piv.show(var)
                        ),
                    });
                } else if matches!(var.as_str(), "max_dpd" | "oldest_due_days") {
                    if let (Some((a, _)), Some((b, _))) = (iv.lo, piv.lo) {
                        if a < b {
                            out.push(Finding {
                                index: i,
                                never: false,
                                message: format!(
                                    "needs {var} >= {a}, less than level {}'s {var} >= {b}: it follows level {} as soon as the gap allows; is the threshold a slip?",
                                    prev_level.number, prev_level.number
                                ),
                            });
                        }
                    }
                }
            }
        }
        below = Some(m);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lv(number: u32, when: &str) -> LevelText<'_> {
        LevelText {
            number,
            name: "x",
            when,
            min_gap: 7,
            jump: false,
        }
    }

    #[test]
    fn contradictions_are_found() {
        let f = check_ladder(&[lv(1, "max_dpd >= 30 && max_dpd < 20")]);
        assert_eq!(f.len(), 1);
        assert!(f[0].never);
        // Integers: > 4 and < 5 leaves nothing.
        assert!(check_ladder(&[lv(1, "max_dpd > 4 && max_dpd < 5")])[0].never);
        // Decimals: 4.5 lies between.
        assert!(check_ladder(&[lv(1, "overdue > 4 && overdue < 5")]).is_empty());
        assert!(check_ladder(&[lv(1, "false")])[0].never);
    }

    #[test]
    fn what_the_engine_guarantees_is_used() {
        let f = check_ladder(&[lv(1, "max_dpd >= 5"), lv(2, "level >= 3")]);
        assert!(f[0].never && f[0].index == 1, "{f:?}");
        let f = check_ladder(&[lv(1, "max_dpd >= 5"), lv(2, "days_since_escalation < 7")]);
        assert!(f[0].never, "{f:?}");
        let f = check_ladder(&[lv(1, "days_since_escalation >= 0")]);
        assert!(f[0].never, "{f:?}");
    }

    #[test]
    fn disjunctions_and_unknown_shapes_are_left_alone() {
        assert!(check_ladder(&[lv(1, "max_dpd >= 30 || max_dpd < 20")]).is_empty());
        assert!(check_ladder(&[lv(1, "kind == \"business\" && max_dpd >= 5")]).is_empty());
        assert!(check_ladder(&[lv(1, "(max_dpd >= 30 || x) && max_dpd < 20")]).is_empty());
    }

    #[test]
    fn slips_are_warnings() {
        let f = check_ladder(&[lv(1, "max_dpd >= 15"), lv(2, "max_dpd >= 10")]);
        assert_eq!(f.len(), 1);
        assert!(!f[0].never);
        let f = check_ladder(&[lv(1, "max_dpd >= 15"), lv(2, "max_dpd < 10")]);
        assert!(!f[0].never && f[0].message.contains("moved back"), "{f:?}");
        // retail-fr's ladder is clean.
        let f = check_ladder(&[
            lv(1, "max_dpd >= 5"),
            lv(2, "max_dpd >= 15"),
            lv(3, "max_dpd >= 30"),
            lv(4, "max_dpd >= 45"),
            lv(5, "max_dpd >= 60 && overdue >= 100.00"),
            lv(6, "max_dpd >= 90 && overdue >= 1500.00"),
        ]);
        assert!(f.is_empty(), "{f:?}");
    }
}
