//! Segment: the first segment whose condition holds picks the account's
//! strategy (its ladder).

use crate::policy::Policy;
use crate::script::{Env, ScriptError};

/// One segment condition tried, for the trace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tried {
    pub segment: String,
    pub condition: String,
    pub matched: bool,
}

/// Index of the first matching segment, and what was tried on the way.
pub fn choose(
    policy: &Policy,
    env: &mut Env<'_, '_>,
    debtor_id: &str,
    tried: Option<&mut Vec<Tried>>,
) -> Result<Option<usize>, ScriptError> {
    let mut tried = tried;
    for (i, seg) in policy.segments.iter().enumerate() {
        let matched = env.eval(&policy.engine, &seg.when, debtor_id)?;
        if let Some(t) = tried.as_deref_mut() {
            t.push(Tried {
                segment: seg.name.clone(),
                condition: seg.when.source.clone(),
                matched,
            });
        }
        if matched {
            return Ok(Some(i));
        }
    }
    Ok(None)
}
