//! Guard: channel rules that stand above the ladder. An action whose
//! channel is not allowed for this debtor (no address, no consent,
//! do-not-contact) is rerouted to the channel's fallback or dropped, and the
//! decision says which and why.

use crate::policy::{Action, Fallback, Policy};
use crate::script::{Env, ScriptError};

/// What a guard did to one action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Guarded {
    pub wanted: Action,
    /// The action emitted, or `None` when dropped.
    pub emitted: Option<Action>,
    /// The channels whose guard refused, in order.
    pub refused_by: Vec<String>,
}

impl Guarded {
    /// A short, personal-data-free note for the decision's reason.
    pub fn note(&self) -> Option<String> {
        if self.refused_by.is_empty() {
            return None;
        }
        let via = self
            .refused_by
            .iter()
            .map(|c| format!("channels.{c}.allowed_when is false"))
            .collect::<Vec<_>>()
            .join(", ");
        Some(match &self.emitted {
            Some(a) => format!("{} -> {a} ({via})", self.wanted),
            None => format!("{} dropped ({via})", self.wanted),
        })
    }
}

/// Applies the channel rules to one action.
pub fn apply(
    policy: &Policy,
    action: &Action,
    env: &mut Env<'_, '_>,
    debtor_id: &str,
) -> Result<Guarded, ScriptError> {
    let mut channel = action.channel.clone();
    let mut refused_by = Vec::new();
    // The policy loader refuses circular fallbacks, so this ends; the bound
    // is a second line of defence.
    for _ in 0..=policy.channels.len() {
        let Some(ch) = policy.channels.get(channel.as_str()) else {
            break;
        };
        let allowed = match &ch.allowed_when {
            None => true,
            Some(cond) => env.eval(&policy.engine, cond, debtor_id)?,
        };
        if allowed {
            return Ok(Guarded {
                wanted: action.clone(),
                emitted: Some(Action {
                    channel,
                    template: action.template.clone(),
                }),
                refused_by,
            });
        }
        refused_by.push(channel.to_string());
        match &ch.otherwise {
            Fallback::Drop => break,
            Fallback::Channel(next) => channel = next.as_str().into(),
        }
    }
    Ok(Guarded {
        wanted: action.clone(),
        emitted: None,
        refused_by,
    })
}
