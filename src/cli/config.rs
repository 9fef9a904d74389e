//! Configuration of the long-running commands: flags, then `IAMLET_*` environment variables,
//! then a YAML file (`--config FILE` or `IAMLET_CONFIG`), then the built-in defaults.
//!
//! The file's keys are the flags' long names (`max-serve-stale: 1h`, `tenants: [a, b]`), so
//! every setting has one name everywhere. Its values become the flags' defaults, which clap's
//! environment variables and flags then override: one parser checks all three sources.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{CommandFactory, FromArgMatches};

use super::Cli;

/// The exit status for invalid configuration (`EX_USAGE`): a process with a bad
/// configuration never starts half-configured.
pub(crate) const EXIT_CONFIG: u8 = 64;

/// The subcommands that read configuration files.
const CONFIGURABLE: [&str; 2] = ["control-plane", "sidecar"];

/// Why the command line and its configuration could not be read.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ConfigError {
    #[error("cannot read the configuration file `{path}`: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("configuration file `{path}`: {message}")]
    Invalid { path: PathBuf, message: String },
    /// A usage error of clap's; `configuring` is true for the long-running commands.
    #[error("{error}")]
    Clap {
        error: clap::Error,
        configuring: bool,
    },
}

impl ConfigError {
    /// Prints the error and returns the exit status: 0 for `--help`/`--version`, 64 for the
    /// long-running commands' configuration, clap's own otherwise.
    pub(crate) fn report(&self) -> u8 {
        match self {
            Self::Clap { error, configuring } => {
                let _ = error.print();
                match error.kind() {
                    clap::error::ErrorKind::DisplayHelp
                    | clap::error::ErrorKind::DisplayVersion
                    | clap::error::ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => 0,
                    _ if *configuring => EXIT_CONFIG,
                    _ => u8::try_from(error.exit_code()).unwrap_or(2),
                }
            }
            other => {
                use std::io::Write;
                let _ = writeln!(std::io::stderr().lock(), "iamlet: {other}");
                EXIT_CONFIG
            }
        }
    }
}

/// Parses `args` (with the program name first) with the configuration file applied.
pub(crate) fn parse(args: Vec<OsString>) -> Result<Cli, ConfigError> {
    let subcommand = args
        .iter()
        .skip(1)
        .filter_map(|a| a.to_str())
        .find(|a| !a.starts_with('-'))
        .map(str::to_owned);
    let configuring = subcommand
        .as_deref()
        .is_some_and(|s| CONFIGURABLE.contains(&s));
    let mut command = Cli::command();
    if let (true, Some(name)) = (configuring, subcommand.as_deref()) {
        if let Some(path) = config_path(&args) {
            let text = std::fs::read_to_string(&path).map_err(|source| ConfigError::Read {
                path: path.clone(),
                source,
            })?;
            let settings = settings(&text).map_err(|message| ConfigError::Invalid {
                path: path.clone(),
                message,
            })?;
            let sub = command
                .find_subcommand(name)
                .ok_or_else(|| ConfigError::Invalid {
                    path: path.clone(),
                    message: format!("`{name}` takes no configuration"),
                })?
                .clone();
            let mut ids = Vec::new();
            for (key, value) in settings {
                let id = sub
                    .get_arguments()
                    .find(|a| a.get_long() == Some(key.as_str()) && key != "config")
                    .map(|a| a.get_id().clone())
                    .ok_or_else(|| {
                        let known: Vec<&str> = sub
                            .get_arguments()
                            .filter_map(clap::Arg::get_long)
                            .filter(|l| *l != "config" && *l != "help")
                            .collect();
                        ConfigError::Invalid {
                            path: path.clone(),
                            message: format!(
                                "unknown key `{key}`; the keys are: {}",
                                known.join(", ")
                            ),
                        }
                    })?;
                ids.push((id, value));
            }
            command = command.mut_subcommand(name, |mut sub| {
                for (id, value) in ids {
                    sub = sub.mut_arg(id, |arg| arg.default_value(value));
                }
                sub
            });
        }
    }
    let matches = command
        .try_get_matches_from(args)
        .map_err(|error| ConfigError::Clap { error, configuring })?;
    Cli::from_arg_matches(&matches).map_err(|error| ConfigError::Clap { error, configuring })
}

/// `--config FILE`, `--config=FILE`, or `IAMLET_CONFIG`.
fn config_path(args: &[OsString]) -> Option<PathBuf> {
    let mut iter = args.iter().filter_map(|a| a.to_str());
    while let Some(arg) = iter.next() {
        if arg == "--config" {
            return iter.next().map(PathBuf::from);
        }
        if let Some(path) = arg.strip_prefix("--config=") {
            return Some(PathBuf::from(path));
        }
    }
    std::env::var_os("IAMLET_CONFIG")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

/// The file's settings: a mapping of flag names to scalars or lists of scalars (a list is
/// joined with commas, as the list flags take it).
fn settings(text: &str) -> Result<Vec<(String, String)>, String> {
    let value: serde_yaml_ng::Value = serde_yaml_ng::from_str(text).map_err(|e| e.to_string())?;
    let map = match value {
        serde_yaml_ng::Value::Mapping(map) => map,
        serde_yaml_ng::Value::Null => return Ok(Vec::new()),
        _ => return Err("expected a mapping of settings (`key: value`)".into()),
    };
    let scalar = |key: &str, v: &serde_yaml_ng::Value| match v {
        serde_yaml_ng::Value::String(s) => Ok(s.clone()),
        serde_yaml_ng::Value::Number(n) => Ok(n.to_string()),
        serde_yaml_ng::Value::Bool(b) => Ok(b.to_string()),
        _ => Err(format!(
            "`{key}`: expected a string, number, boolean or list of them"
        )),
    };
    map.iter()
        .map(|(k, v)| {
            let key = k
                .as_str()
                .ok_or_else(|| "keys must be strings".to_owned())?
                .to_owned();
            let value = match v {
                serde_yaml_ng::Value::Sequence(items) => items
                    .iter()
                    .map(|i| scalar(&key, i))
                    .collect::<Result<Vec<_>, _>>()?
                    .join(","),
                other => scalar(&key, other)?,
            };
            Ok((key, value))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::Command;

    fn args(list: &[&str]) -> Vec<OsString> {
        std::iter::once("iamlet")
            .chain(list.iter().copied())
            .map(OsString::from)
            .collect()
    }

    fn file(name: &str, text: &str) -> String {
        let path =
            std::env::temp_dir().join(format!("iamlet-config-{}-{name}", std::process::id()));
        std::fs::write(&path, text).unwrap();
        path.display().to_string()
    }

    #[test]
    fn the_file_sets_defaults_that_flags_override() {
        let path = file(
            "ok.yaml",
            "max-serve-stale: 1h\ntenants: ['111122223333', '444455556666']\ndecision-log: stdout\nsnapshot-keys: /etc/iamlet/snapshot-keys.pub\n",
        );
        let cli = parse(args(&[
            "sidecar",
            "--config",
            &path,
            "--decision-log",
            "off",
        ]))
        .unwrap();
        let Command::Sidecar(sidecar) = cli.command else {
            panic!("a sidecar command");
        };
        let debug = format!("{sidecar:?}");
        assert!(debug.contains("max_serve_stale: 3600s"), "{debug}");
        assert!(
            debug.contains("tenants: \"111122223333,444455556666\""),
            "{debug}"
        );
        assert!(
            debug.contains("decision_log: \"off\""),
            "the flag wins: {debug}"
        );
        assert!(
            debug.contains("snapshot_keys: Some(\"/etc/iamlet/snapshot-keys.pub\")"),
            "the file gives the required trust file: {debug}"
        );
    }

    #[test]
    fn bad_configuration_exits_64_and_names_the_problem() {
        let unknown = file("unknown.yaml", "max-stale: 1h\n");
        let err = parse(args(&["sidecar", "--config", &unknown])).unwrap_err();
        assert!(err.to_string().contains("unknown key `max-stale`"), "{err}");
        assert_eq!(err.report(), EXIT_CONFIG);
        let not_a_map = file("list.yaml", "- a\n- b\n");
        assert_eq!(
            parse(args(&["sidecar", "--config", &not_a_map]))
                .unwrap_err()
                .report(),
            EXIT_CONFIG
        );
        let bad_value = file("value.yaml", "max-serve-stale: soon\n");
        assert_eq!(
            parse(args(&["sidecar", "--config", &bad_value]))
                .unwrap_err()
                .report(),
            EXIT_CONFIG
        );
        let missing = parse(args(&["sidecar", "--config", "/nonexistent/iamlet.yaml"]));
        assert!(matches!(missing, Err(ConfigError::Read { .. })));
        let bad_flag = parse(args(&["control-plane", "--listen", "nowhere"])).unwrap_err();
        assert_eq!(bad_flag.report(), EXIT_CONFIG);
    }
}
