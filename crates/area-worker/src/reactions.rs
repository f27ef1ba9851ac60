//! The reactions compiled into this binary, one cargo feature each.
//!
//! A reaction that needs credentials (email, Slack) is served only when its
//! settings are present: a binary with every feature can run webhooks alone,
//! and the jobs of an unconfigured service wait in their stream for a worker
//! that has the credentials. Settings that are present but invalid stop the
//! start-up with the variable named.

#[allow(unused_imports)]
use anyhow::Context;
use area_core::Registry;

/// Builds the registry of the reactions this binary was compiled with, each
/// configured from the environment.
pub fn registry_from_env() -> anyhow::Result<Registry> {
    registry_from_lookup(|name| std::env::var(name).ok().filter(|value| !value.is_empty()))
}

/// As [`registry_from_env`], with variables looked up through `lookup`.
#[allow(unused_variables)]
pub fn registry_from_lookup(
    lookup: impl Fn(&str) -> Option<String> + Copy,
) -> anyhow::Result<Registry> {
    #[allow(unused_mut)]
    let mut registry = Registry::new();
    #[cfg(feature = "webhook")]
    {
        let settings = reaction_webhook::WebhookSettings::from_lookup(lookup)
            .context("configure the webhook reaction")?;
        tracing::info!(
            allow = %settings.describe_allow_list(),
            "webhooks may reach public addresses and these"
        );
        registry.register(
            reaction_webhook::WebhookReaction::new(settings)
                .context("build the webhook reaction")?,
        );
    }
    #[cfg(feature = "email")]
    if lookup("AREA_SMTP_HOST").is_some() {
        let settings = reaction_email::SmtpSettings::from_lookup(lookup)
            .context("configure the email reaction")?;
        registry.register(
            reaction_email::EmailReaction::new(settings).context("build the email reaction")?,
        );
    } else {
        tracing::warn!(
            "email is compiled in but AREA_SMTP_HOST is not set: email jobs are left to other workers"
        );
    }
    #[cfg(feature = "slack")]
    if lookup("AREA_SLACK_TOKEN").is_some() || lookup("AREA_SLACK_TOKEN_FILE").is_some() {
        let settings = reaction_slack::SlackSettings::from_lookup(lookup)
            .context("configure the slack reaction")?;
        registry.register(
            reaction_slack::SlackReaction::new(settings).context("build the slack reaction")?,
        );
    } else {
        tracing::warn!(
            "slack is compiled in but AREA_SLACK_TOKEN is not set: slack jobs are left to other workers"
        );
    }
    #[cfg(feature = "noop")]
    registry.register(crate::noop::NoopReaction);
    // xtask:new-reaction:register (cargo xtask new-reaction adds reactions above)
    Ok(registry)
}

/// The services this binary was compiled with, configured or not.
// One push per feature: a `vec![]` literal cannot hold cfg-gated items.
#[allow(clippy::vec_init_then_push)]
pub fn compiled_services() -> Vec<&'static str> {
    #[allow(unused_mut)]
    let mut services = Vec::new();
    #[cfg(feature = "webhook")]
    services.push("webhook");
    #[cfg(feature = "email")]
    services.push("email");
    #[cfg(feature = "slack")]
    services.push("slack");
    #[cfg(feature = "noop")]
    services.push(crate::noop::SERVICE);
    // xtask:new-reaction:services (cargo xtask new-reaction adds services above)
    services
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Settings for every reaction that needs some, as an operator gives them.
    fn configured(name: &str) -> Option<String> {
        let value = match name {
            "AREA_SMTP_HOST" => "127.0.0.1",
            "AREA_SMTP_TLS" => "none",
            "AREA_SMTP_FROM" => "AREA <area@example.com>",
            "AREA_SLACK_TOKEN" => "xoxb-registry-test",
            _ => return None,
        };
        Some(value.to_owned())
    }

    #[test]
    fn every_compiled_service_is_served_once_configured() {
        crate::install_crypto_provider();
        let registry = registry_from_lookup(configured).expect("the settings are valid");
        let mut compiled = compiled_services();
        compiled.sort_unstable();
        assert_eq!(
            registry.services(),
            compiled,
            "a reaction behind a cargo feature must be registered in registry_from_lookup"
        );
    }
}
