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

/// Builds the registry from the worker's configuration, and refuses a setting
/// under a served reaction's prefix that the reaction never reads: a misspelt
/// `AREA_SMTP_PASWORD` would otherwise be ignored without a word.
pub fn registry_from_config(config: &crate::config::Config) -> anyhow::Result<Registry> {
    let asked = std::cell::RefCell::new(std::collections::HashSet::new());
    let registry = registry_from_lookup(|name: &str| {
        asked.borrow_mut().insert(name.to_owned());
        config.reaction_setting(name)
    })?;
    let asked = asked.into_inner();
    // A reaction that is compiled in but not served was not configured: its
    // required setting is missing. Any other setting under its prefix is then
    // a typo of that setting (`AREA_SMTP_HOTS`) or a sign that it is missing,
    // and would otherwise be ignored with no more than a warning.
    let served = registry.services();
    for service in compiled_services() {
        if served.contains(&service) {
            continue;
        }
        let prefix = format!("{}_", setting_prefix(service));
        let set = |(key, value): &(&String, &serde_json::Value)| {
            key.starts_with(&prefix)
                && !matches!(value, serde_json::Value::Null)
                && value.as_str() != Some("")
        };
        if let Some((key, _)) = config.reactions.iter().find(set) {
            anyhow::bail!(
                "AREA_{} is set, but the {service} reaction is not configured: it is served only \
                 when {} is set (misspelt?)",
                key.to_uppercase(),
                required_setting(service)
            );
        }
    }
    for service in registry.services() {
        let prefix = format!("{}_", setting_prefix(service));
        let unread = config.reactions.keys().find(|key| {
            key.starts_with(&prefix) && !asked.contains(&format!("AREA_{}", key.to_uppercase()))
        });
        if let Some(key) = unread {
            anyhow::bail!(
                "unknown configuration key `{key}` (AREA_{}): the {service} reaction has no such \
                 setting",
                key.to_uppercase()
            );
        }
    }
    Ok(registry)
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
// One push per cargo feature, each behind its own cfg: a `vec![]` literal
// cannot hold them, and a binary with no feature pushes nothing.
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

/// Every reaction service of this workspace, compiled into this binary or not.
pub const WORKSPACE_SERVICES: &[&str] = &[
    "webhook", "email", "slack",
    "noop",
    // xtask:new-reaction:workspace-services (cargo xtask new-reaction adds services above)
];

/// The setting whose presence makes a reaction served, for those that need one.
fn required_setting(service: &str) -> &'static str {
    match service {
        "email" => "AREA_SMTP_HOST",
        "slack" => "AREA_SLACK_TOKEN or AREA_SLACK_TOKEN_FILE",
        _ => "its required setting",
    }
}

/// A service's configuration key prefix: `smtp` for email, `pager_duty` (i.e.
/// `AREA_PAGER_DUTY_*`) for a `pager-duty` service.
fn setting_prefix(service: &str) -> String {
    match service {
        "email" => "smtp".to_owned(),
        _ => service.replace('-', "_"),
    }
}

/// The configuration key prefixes of the compiled services: a key under one
/// is that reaction's setting.
pub fn setting_prefixes() -> Vec<String> {
    compiled_services()
        .into_iter()
        .map(setting_prefix)
        .collect()
}

/// The key prefixes of the workspace's reactions this binary was built
/// without: their settings are ignored with a warning, so single-reaction
/// binaries can share one environment.
pub fn absent_setting_prefixes() -> Vec<String> {
    let compiled = compiled_services();
    WORKSPACE_SERVICES
        .iter()
        .filter(|service| !compiled.contains(service))
        .map(|service| setting_prefix(service))
        .collect()
}

#[cfg(test)]
// figment's Jail closures return its own (large) error type.
#[allow(clippy::result_large_err)]
mod tests {
    use crate::Config;
    use crate::config::Overrides;

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

    #[test]
    fn every_compiled_service_owns_the_variables_under_its_prefix() {
        figment::Jail::expect_with(|jail| {
            let prefixes = setting_prefixes();
            let variables: Vec<String> = prefixes
                .iter()
                .map(|prefix| format!("AREA_{}_TIMEOUT_MS", prefix.to_uppercase()))
                .collect();
            for variable in &variables {
                jail.set_env(variable, "2500");
            }

            let prefixes: Vec<&str> = prefixes.iter().map(String::as_str).collect();
            let config = Config::load(None, &Overrides::default(), &prefixes, &[])
                .map_err(|error| error.to_string())?;
            for variable in &variables {
                assert_eq!(
                    config.reaction_setting(variable).as_deref(),
                    Some("2500"),
                    "{variable} must reach its reaction"
                );
            }
            Ok(())
        });
    }

    #[cfg(feature = "webhook")]
    #[test]
    fn a_misspelt_setting_of_a_served_reaction_is_refused() {
        let mut config = crate::config::Config::defaults();
        config
            .reactions
            .insert("webhook_allow".into(), "127.0.0.1".into());
        assert!(registry_from_config(&config).is_ok());
        config
            .reactions
            .insert("webhook_alow".into(), "10.0.0.0/8".into());
        let error = registry_from_config(&config).unwrap_err().to_string();
        assert!(error.contains("AREA_WEBHOOK_ALOW"), "{error}");
    }

    #[cfg(all(feature = "email", feature = "slack"))]
    #[test]
    fn a_setting_of_a_reaction_left_unconfigured_is_refused() {
        let mut config = crate::config::Config::defaults();
        assert!(registry_from_config(&config).is_ok());
        // An empty variable is an unset one.
        config.reactions.insert("smtp_port".into(), "".into());
        assert!(registry_from_config(&config).is_ok());

        // The required setting misspelt: email is not served, and says why.
        config
            .reactions
            .insert("smtp_hots".into(), "smtp.example.com".into());
        let error = registry_from_config(&config).unwrap_err().to_string();
        assert!(error.contains("AREA_SMTP_HOTS"), "{error}");
        assert!(error.contains("AREA_SMTP_HOST"), "{error}");

        let mut config = crate::config::Config::defaults();
        config
            .reactions
            .insert("slack_tokne".into(), "xoxb-1".into());
        let error = registry_from_config(&config).unwrap_err().to_string();
        assert!(error.contains("AREA_SLACK_TOKNE"), "{error}");
        assert!(
            !error.contains("xoxb-1"),
            "the value stays out of the error: {error}"
        );
    }
}
