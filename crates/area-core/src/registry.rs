//! The reactions a worker binary can run, by service name.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::reaction::Reaction;

/// Reactions by service name. Built once at start-up from the cargo features the
/// binary was compiled with; the worker reads only the job streams of these
/// services.
#[derive(Clone, Default)]
pub struct Registry {
    reactions: BTreeMap<&'static str, Arc<dyn Reaction>>,
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `reaction` under its service name, replacing any earlier one.
    pub fn register(&mut self, reaction: impl Reaction) -> &mut Self {
        let reaction: Arc<dyn Reaction> = Arc::new(reaction);
        self.reactions.insert(reaction.service(), reaction);
        self
    }

    /// The reaction for `service`, if this binary has it.
    pub fn get(&self, service: &str) -> Option<&Arc<dyn Reaction>> {
        self.reactions.get(service)
    }

    /// The service names, sorted.
    pub fn services(&self) -> Vec<&'static str> {
        self.reactions.keys().copied().collect()
    }

    /// Whether no reaction is registered.
    pub fn is_empty(&self) -> bool {
        self.reactions.is_empty()
    }
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_list()
            .entries(self.reactions.keys())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use async_trait::async_trait;
    use serde_json::Value;

    use super::*;
    use crate::reaction::{ConfigError, Outcome, ReactionContext, ReactionError};

    struct Named(&'static str);

    #[async_trait]
    impl Reaction for Named {
        fn service(&self) -> &'static str {
            self.0
        }
        fn validate(&self, _config: &Value) -> Result<(), ConfigError> {
            Ok(())
        }
        async fn execute(&self, _context: &ReactionContext) -> Result<Outcome, ReactionError> {
            Ok(Outcome::default())
        }
    }

    #[test]
    fn looks_reactions_up_by_service() {
        let mut registry = Registry::new();
        registry.register(Named("slack")).register(Named("email"));
        assert_eq!(registry.services(), ["email", "slack"]);
        assert_eq!(registry.get("slack").unwrap().service(), "slack");
        assert!(registry.get("webhook").is_none());
    }
}
