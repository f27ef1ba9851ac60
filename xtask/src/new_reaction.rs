//! `cargo xtask new-reaction <name>`: adds a reaction crate to the workspace and
//! wires it into the worker.
//!
//! It creates `crates/reaction-<name>` from the templates in
//! `xtask/templates/new-reaction` (a `Reaction` implementation, a validated
//! config type, settings, an error that carries its classification, unit tests
//! and a conformance test), then edits three files at their
//! `xtask:new-reaction:*` marker comments:
//!
//! - the root `Cargo.toml`: a workspace member and a `[workspace.dependencies]`
//!   entry;
//! - `crates/area-worker/Cargo.toml`: an optional dependency and a non-default
//!   feature named after the service, so existing binaries do not change;
//! - `crates/area-worker/src/reactions.rs`: the registration, and the entry in
//!   `compiled_services`.
//!
//! Every edit is computed before anything is written, so a missing marker or an
//! existing crate leaves the tree untouched. The generated crate builds, passes
//! its tests, and is served by `cargo run -p area-worker --features <name>`
//! without further edits; the test at the bottom checks exactly that in a copy
//! of the workspace.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail, ensure};

/// Options of `new-reaction`.
#[derive(clap::Args)]
pub struct Args {
    /// The service name, e.g. `pager-duty`: lowercase ASCII letters, digits
    /// and single dashes, starting with a letter.
    name: String,
    /// The workspace to add the crate to; defaults to this one.
    #[arg(long)]
    workspace: Option<PathBuf>,
}

/// Generates the crate and wires it in, then says what to do next.
pub fn run(args: Args) -> anyhow::Result<()> {
    let root = args.workspace.unwrap_or_else(workspace_root);
    let names = generate(&root, &args.name)?;
    println!(
        "created crates/{crate_name} and wired it into the worker as feature `{name}`\n\
         \n\
         next:\n  \
         cargo test -p {crate_name}\n  \
         cargo run -p area-worker --features {name} -- run\n\
         \n\
         then make `deliver` in crates/{crate_name}/src/reaction.rs call the service\n\
         (docs/adding-a-reaction.md walks through it)",
        crate_name = names.crate_name,
        name = names.service,
    );
    Ok(())
}

/// The workspace this xtask belongs to.
fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives one level below the workspace root")
        .to_path_buf()
}

/// The forms of one reaction's name.
#[derive(Debug, PartialEq)]
struct Names {
    /// The service, feature and stream name: `pager-duty`.
    service: String,
    /// The package name: `reaction-pager-duty`.
    crate_name: String,
    /// The library name in Rust paths: `reaction_pager_duty`.
    crate_ident: String,
    /// The service as an identifier: `pager_duty`.
    ident: String,
    /// The prefix of type names: `PagerDuty`.
    type_prefix: String,
    /// The infix of environment variables: `PAGER_DUTY`.
    env: String,
}

impl Names {
    fn new(service: &str) -> anyhow::Result<Self> {
        let is_valid = service.starts_with(|first: char| first.is_ascii_lowercase())
            && service
                .bytes()
                .all(|byte| byte.is_ascii_lowercase() || byte.is_ascii_digit() || byte == b'-')
            && !service.ends_with('-')
            && !service.contains("--");
        ensure!(
            is_valid,
            "`{service}` is not a valid reaction name: use lowercase ASCII letters, digits and \
             single dashes, starting with a letter (e.g. `pager-duty`)"
        );
        ensure!(
            service != "default",
            "`default` is the name of the worker's default feature set"
        );

        let ident = service.replace('-', "_");
        let type_prefix = service
            .split('-')
            .map(|word| {
                let mut chars = word.chars();
                let first = chars.next().expect("words are not empty");
                first.to_ascii_uppercase().to_string() + chars.as_str()
            })
            .collect();
        Ok(Self {
            service: service.to_owned(),
            crate_name: format!("reaction-{service}"),
            crate_ident: format!("reaction_{ident}"),
            env: ident.to_ascii_uppercase(),
            ident,
            type_prefix,
        })
    }

    /// `template` with every placeholder replaced.
    fn fill(&self, template: &str) -> String {
        template
            .replace("__CRATE__", &self.crate_ident)
            .replace("__TYPE__", &self.type_prefix)
            .replace("__IDENT__", &self.ident)
            .replace("__ENV__", &self.env)
            .replace("__NAME__", &self.service)
    }
}

/// The generated crate's files, relative to its directory, and their templates.
const TEMPLATES: [(&str, &str); 8] = [
    (
        "Cargo.toml",
        include_str!("../templates/new-reaction/Cargo.toml.tmpl"),
    ),
    (
        "src/lib.rs",
        include_str!("../templates/new-reaction/lib.rs.tmpl"),
    ),
    (
        "src/config.rs",
        include_str!("../templates/new-reaction/config.rs.tmpl"),
    ),
    (
        "src/error.rs",
        include_str!("../templates/new-reaction/error.rs.tmpl"),
    ),
    (
        "src/reaction.rs",
        include_str!("../templates/new-reaction/reaction.rs.tmpl"),
    ),
    (
        "src/settings.rs",
        include_str!("../templates/new-reaction/settings.rs.tmpl"),
    ),
    (
        "tests/conformance.rs",
        include_str!("../templates/new-reaction/conformance.rs.tmpl"),
    ),
    (
        "README.md",
        include_str!("../templates/new-reaction/README.md.tmpl"),
    ),
];

/// Creates the crate for `service` in `root` and wires it in.
fn generate(root: &Path, service: &str) -> anyhow::Result<Names> {
    let names = Names::new(service)?;
    let crate_dir = root.join("crates").join(&names.crate_name);
    ensure!(
        !crate_dir.exists(),
        "{} already exists: choose another name, or remove it first",
        crate_dir.display()
    );

    // Compute every edit first: a missing marker must leave the tree untouched.
    let edits = [
        (root.join("Cargo.toml"), root_manifest_edits(&names)),
        (
            root.join("crates/area-worker/Cargo.toml"),
            worker_manifest_edits(&names),
        ),
        (
            root.join("crates/area-worker/src/reactions.rs"),
            registration_edits(&names),
        ),
    ];
    let mut edited = Vec::with_capacity(edits.len());
    for (path, insertions) in &edits {
        let text = fs::read_to_string(path).with_context(|| format!("read {}", path.display()))?;
        let text = apply_insertions(&text, insertions, &names)
            .with_context(|| format!("edit {}", path.display()))?;
        edited.push((path, text));
    }

    let mut rust_files = Vec::new();
    for (relative, template) in TEMPLATES {
        let path = crate_dir.join(relative);
        let parent = path.parent().expect("template paths have a parent");
        fs::create_dir_all(parent).with_context(|| format!("create {}", parent.display()))?;
        fs::write(&path, names.fill(template))
            .with_context(|| format!("write {}", path.display()))?;
        if relative.ends_with(".rs") {
            rust_files.push(path);
        }
    }
    for (path, text) in edited {
        fs::write(path, text).with_context(|| format!("write {}", path.display()))?;
    }
    rust_files.push(root.join("crates/area-worker/src/reactions.rs"));
    format(&rust_files)?;
    Ok(names)
}

/// Runs rustfmt on `files`: where lines break and how imports sort depend on
/// the name, so the templates cannot be formatted once for every name.
fn format(files: &[PathBuf]) -> anyhow::Result<()> {
    let status = std::process::Command::new("rustfmt")
        .args(["--edition", "2024"])
        .args(files)
        .status()
        .context("run rustfmt (rustup component add rustfmt)")?;
    ensure!(status.success(), "rustfmt failed on the generated files");
    Ok(())
}

/// Lines to insert above a marker comment.
struct Insertion {
    /// The text after `xtask:new-reaction:` on the marker line.
    marker: &'static str,
    /// What must not be there yet, e.g. the feature's own line.
    conflict: String,
    /// The lines, without the marker line's indentation.
    lines: String,
}

fn root_manifest_edits(names: &Names) -> Vec<Insertion> {
    let crate_name = &names.crate_name;
    vec![
        Insertion {
            marker: "members",
            conflict: format!("\"crates/{crate_name}\""),
            lines: format!("\"crates/{crate_name}\",\n"),
        },
        Insertion {
            marker: "dependencies",
            conflict: format!("\n{crate_name} = "),
            lines: format!("{crate_name} = {{ path = \"crates/{crate_name}\" }}\n"),
        },
    ]
}

fn worker_manifest_edits(names: &Names) -> Vec<Insertion> {
    let (service, crate_name) = (&names.service, &names.crate_name);
    vec![
        Insertion {
            marker: "features",
            conflict: format!("\n{service} = "),
            lines: format!("{service} = [\"dep:{crate_name}\"]\n"),
        },
        Insertion {
            marker: "dependencies",
            conflict: format!("\n{crate_name} = "),
            lines: format!("{crate_name} = {{ workspace = true, optional = true }}\n"),
        },
    ]
}

fn registration_edits(names: &Names) -> Vec<Insertion> {
    let service = &names.service;
    vec![
        Insertion {
            marker: "register",
            conflict: format!("feature = \"{service}\""),
            lines: names.fill(
                "#[cfg(feature = \"__NAME__\")]\n\
                 {\n    \
                     let settings = __CRATE__::__TYPE__Settings::from_lookup(lookup)\n        \
                         .context(\"configure the __NAME__ reaction\")?;\n    \
                     registry.register(__CRATE__::__TYPE__Reaction::new(settings));\n\
                 }\n",
            ),
        },
        Insertion {
            marker: "services",
            conflict: format!("services.push(\"{service}\")"),
            lines: names.fill("#[cfg(feature = \"__NAME__\")]\nservices.push(\"__NAME__\");\n"),
        },
        Insertion {
            marker: "workspace-services",
            conflict: format!("\n    \"{service}\",\n"),
            lines: format!("\"{service}\",\n"),
        },
    ]
}

/// `text` with each insertion placed above its marker line, indented like it.
fn apply_insertions(text: &str, insertions: &[Insertion], names: &Names) -> anyhow::Result<String> {
    let mut text = text.to_owned();
    for insertion in insertions {
        if text.contains(&insertion.conflict) {
            bail!(
                "`{}` is already wired in: `{}` is there already",
                names.service,
                insertion.conflict.trim()
            );
        }
        let marker = format!("xtask:new-reaction:{}", insertion.marker);
        let mut marker_lines = text.match_indices(&marker).map(|(at, _)| at);
        let (Some(at), None) = (marker_lines.next(), marker_lines.next()) else {
            bail!("expected exactly one `{marker}` marker comment");
        };
        let line_start = text[..at].rfind('\n').map_or(0, |newline| newline + 1);
        let indent: String = text[line_start..]
            .chars()
            .take_while(|char| *char == ' ')
            .collect();
        let block: String = insertion
            .lines
            .lines()
            .map(|line| {
                if line.is_empty() {
                    "\n".to_owned()
                } else {
                    format!("{indent}{line}\n")
                }
            })
            .collect();
        text.insert_str(line_start, &block);
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use std::process::Command;
    use std::time::Instant;

    use super::*;

    #[test]
    fn derives_every_form_of_the_name() {
        let names = Names::new("pager-duty2").unwrap();
        assert_eq!(names.crate_name, "reaction-pager-duty2");
        assert_eq!(names.crate_ident, "reaction_pager_duty2");
        assert_eq!(names.ident, "pager_duty2");
        assert_eq!(names.type_prefix, "PagerDuty2");
        assert_eq!(names.env, "PAGER_DUTY2");
    }

    #[test]
    fn refuses_names_that_cannot_be_a_crate_feature_and_stream() {
        for name in [
            "",
            "Pager",
            "pager_duty",
            "-pager",
            "pager-",
            "pager--duty",
            "9lives",
            "default",
            "pagér",
        ] {
            assert!(Names::new(name).is_err(), "`{name}` should be refused");
        }
    }

    #[test]
    fn inserts_above_the_marker_with_its_indentation_and_refuses_duplicates() {
        let names = Names::new("pager").unwrap();
        let text = "fn f() {\n    one();\n    // xtask:new-reaction:services (keep)\n}\n";
        let edited = apply_insertions(text, &registration_edits(&names)[1..2], &names).unwrap();
        assert_eq!(
            edited,
            "fn f() {\n    one();\n    #[cfg(feature = \"pager\")]\n    services.push(\"pager\");\n    // xtask:new-reaction:services (keep)\n}\n"
        );
        let again = apply_insertions(&edited, &registration_edits(&names)[1..2], &names);
        assert!(again.is_err(), "a second run must not wire it twice");
        let missing = apply_insertions("no marker\n", &registration_edits(&names), &names);
        assert!(missing.is_err());
    }

    #[test]
    fn refuses_an_existing_crate_without_touching_the_tree() {
        let copy = WorkspaceCopy::new("existing");
        let manifest = fs::read_to_string(copy.root.join("Cargo.toml")).unwrap();
        let error = generate(&copy.root, "slack").unwrap_err();
        assert!(error.to_string().contains("already exists"), "{error}");
        let after = fs::read_to_string(copy.root.join("Cargo.toml")).unwrap();
        assert_eq!(after, manifest);
    }

    /// Generates a reaction in a copy of the workspace, then checks it the way
    /// a developer would: formatted, clippy-clean, its tests green, and
    /// registered by the worker built with its feature. The copy shares this
    /// build's target directory, so only the workspace's own crates compile.
    #[test]
    fn generated_crate_builds_passes_its_tests_and_is_served_by_the_worker() {
        let started = Instant::now();
        let copy = WorkspaceCopy::new("generated");
        let root = &copy.root;
        generate(root, "echo-test").expect("the generator runs");

        cargo(root, &["fmt", "-p", "reaction-echo-test", "--check"]);
        cargo(
            root,
            &[
                "clippy",
                "--offline",
                "-p",
                "reaction-echo-test",
                "--all-targets",
                "--",
                "-D",
                "warnings",
            ],
        );
        cargo(root, &["test", "--offline", "-p", "reaction-echo-test"]);
        cargo(
            root,
            &[
                "test",
                "--offline",
                "-p",
                "area-worker",
                "--features",
                "echo-test",
                "--lib",
                "reactions::",
            ],
        );
        println!("generated and checked in {:?}", started.elapsed());
    }

    /// A copy of this workspace's sources (no build output, no git data) in a
    /// fresh temporary directory, removed when dropped, failed test or not.
    struct WorkspaceCopy {
        root: PathBuf,
    }

    impl WorkspaceCopy {
        fn new(label: &str) -> Self {
            let root = std::env::temp_dir()
                .join(format!("area-new-reaction-{label}-{}", std::process::id()));
            if root.exists() {
                fs::remove_dir_all(&root).unwrap();
            }
            copy_sources(&workspace_root(), &root);
            give_the_copy_its_own_version(&root);
            Self { root }
        }
    }

    /// Cargo names a path crate's build outputs after its name, version and
    /// path *relative to the workspace root*, so the copy's crates would
    /// overwrite this workspace's own outputs in the shared target directory,
    /// and a later step of the same `cargo test` (its doctests) would find
    /// crates that no longer match. Another version gives them outputs of
    /// their own, while the registry crates are still shared.
    fn give_the_copy_its_own_version(root: &Path) {
        let manifest_path = root.join("Cargo.toml");
        let manifest = fs::read_to_string(&manifest_path).unwrap();
        let (head, package) = manifest
            .split_once("[workspace.package]\n")
            .expect("the root manifest has [workspace.package]");
        let (version_line, rest) = package
            .split_once('\n')
            .expect("[workspace.package] has more than one line");
        assert!(
            version_line.starts_with("version = "),
            "the first key of [workspace.package] is the version, found {version_line}"
        );
        let manifest =
            format!("{head}[workspace.package]\nversion = \"0.0.0-new-reaction-test\"\n{rest}");
        fs::write(&manifest_path, manifest).unwrap();
    }

    impl Drop for WorkspaceCopy {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.root);
        }
    }

    fn copy_sources(from: &Path, to: &Path) {
        fs::create_dir_all(to).unwrap();
        for entry in fs::read_dir(from).unwrap() {
            let entry = entry.unwrap();
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name.starts_with("target") || name == ".git" {
                continue;
            }
            let file_type = entry.file_type().unwrap();
            if file_type.is_dir() {
                copy_sources(&entry.path(), &to.join(&*name));
            } else if file_type.is_file() {
                fs::copy(entry.path(), to.join(&*name)).unwrap();
            }
        }
    }

    /// Runs cargo in `root` with this build's target directory; panics with
    /// the command when it fails.
    fn cargo(root: &Path, args: &[&str]) {
        let target_dir = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| workspace_root().join("target"));
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo)
            .args(args)
            .current_dir(root)
            .env("CARGO_TARGET_DIR", target_dir)
            .status()
            .expect("cargo runs");
        assert!(
            status.success(),
            "cargo {} failed in {}",
            args.join(" "),
            root.display()
        );
    }
}
