//! Errors of config loading: every one names the file, the JSON path of the offending value and
//! what to do about it. Loading collects as many as it can before giving up, so one run shows
//! every problem of a config.

use std::fmt;
use std::path::{Path, PathBuf};

/// At most this many errors are kept; a config that breaks more often than this is usually
/// the wrong file, and a longer list helps nobody. Arbitrary.
const MAX_ERRORS: usize = 100;

/// One problem found in a flow config.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigError {
    /// The config file (or the name given to an in-memory config).
    pub file: PathBuf,
    /// Dot-separated path of the offending value, e.g. `flows.web.destinations.api.config.url`;
    /// empty when the problem concerns the file as a whole.
    pub json_path: String,
    /// What is wrong.
    pub kind: ConfigErrorKind,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.json_path.is_empty() {
            write!(f, "{}: {}", self.file.display(), self.kind)
        } else {
            write!(
                f,
                "{}: {}: {}",
                self.file.display(),
                self.json_path,
                self.kind
            )
        }
    }
}

impl std::error::Error for ConfigError {}

/// Every problem found while loading one config; never empty.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigErrors {
    errors: Vec<ConfigError>,
    /// Errors dropped after [`MAX_ERRORS`].
    omitted: usize,
}

impl ConfigErrors {
    /// The collected errors, in the order they were found.
    pub fn errors(&self) -> &[ConfigError] {
        &self.errors
    }

    /// Number of errors kept (see [`ConfigErrors::omitted`] for the ones dropped).
    pub fn len(&self) -> usize {
        self.errors.len()
    }

    /// Always false: a `ConfigErrors` is only built with at least one error.
    pub fn is_empty(&self) -> bool {
        self.errors.is_empty()
    }

    /// Errors found beyond the first [`MAX_ERRORS`] and not kept.
    pub fn omitted(&self) -> usize {
        self.omitted
    }

    /// Iterates over the errors.
    pub fn iter(&self) -> std::slice::Iter<'_, ConfigError> {
        self.errors.iter()
    }
}

impl<'a> IntoIterator for &'a ConfigErrors {
    type Item = &'a ConfigError;
    type IntoIter = std::slice::Iter<'a, ConfigError>;

    fn into_iter(self) -> Self::IntoIter {
        self.errors.iter()
    }
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, error) in self.errors.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{error}")?;
        }
        if self.omitted > 0 {
            write!(f, "\n... and {} more errors not shown", self.omitted)?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// What is wrong with a value. The messages say what to do; where the original walkerOS CLI
/// has a well-known message (flow selection, `$var` cycles) the wording follows it.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ConfigErrorKind {
    /// The file could not be read.
    #[error("cannot read the flow config: {reason}; check the path and its permissions")]
    Read {
        /// The operating system's reason.
        reason: String,
    },

    /// The file is not JSON.
    #[error("invalid JSON at line {line}, column {column}: {reason}")]
    Json {
        /// 1-based line of the problem.
        line: usize,
        /// 1-based column of the problem.
        column: usize,
        /// The parser's description.
        reason: String,
    },

    /// A value has the wrong JSON type.
    #[error("expected {expected}, found {found}")]
    WrongType {
        /// The type the format requires here.
        expected: &'static str,
        /// The JSON type that was found.
        found: &'static str,
    },

    /// A required field is absent.
    #[error("required field \"{field}\" is missing")]
    MissingField {
        /// The missing key.
        field: &'static str,
    },

    /// A key the format does not know, at a place where unknown keys are refused.
    #[error("unknown field \"{field}\"; allowed fields are {allowed}")]
    UnknownField {
        /// The unknown key.
        field: String,
        /// The keys allowed here, comma-separated.
        allowed: String,
    },

    /// The root has no `version`.
    #[error("missing \"version\"; flow configs start with \"version\": 4")]
    MissingVersion,

    /// The `version` is not one flowhost can read.
    #[error(
        "unsupported flow config version {found}; flowhost reads version 4 and converts \
         versions 1, 2 and 3"
    )]
    UnsupportedVersion {
        /// The version as written.
        found: String,
    },

    /// `flows` is empty.
    #[error("At least one flow is required; add a named flow under \"flows\"")]
    NoFlows,

    /// Several flows and no name given.
    #[error(
        "Multiple flows found. Please specify a flow using --flow flag or FLOW_NAME. \
         Available flows: {}", available.join(", ")
    )]
    MultipleFlows {
        /// Names of all flows in the file.
        available: Vec<String>,
    },

    /// The requested flow does not exist.
    #[error(
        "Flow \"{name}\" not found in configuration. Available flows: {}",
        available.join(", ")
    )]
    UnknownFlow {
        /// The name asked for.
        name: String,
        /// Names of all flows in the file.
        available: Vec<String>,
    },

    /// The selected flow has no `config.platform`.
    #[error("flow \"{flow}\" must have config.platform set to \"web\" or \"server\"")]
    MissingPlatform {
        /// The flow's name.
        flow: String,
    },

    /// `config.platform` is neither `web` nor `server`.
    #[error("platform must be \"web\" or \"server\", found {found}")]
    InvalidPlatform {
        /// The value as written.
        found: String,
    },

    /// Two old-format fields that must not appear together (or neither appears).
    #[error("{reason}")]
    Upgrade {
        /// What the up-conversion could not decide.
        reason: String,
    },

    /// A step id is not a JavaScript identifier; the bundler turns ids into property names.
    #[error(
        "Invalid {section} name \"{id}\": must be a valid JavaScript identifier (letters, \
         digits, _ and $, not starting with a digit), e.g. \"{suggestion}\""
    )]
    InvalidStepId {
        /// `sources`, `transformers`, `destinations` or `stores`.
        section: &'static str,
        /// The id as written.
        id: String,
        /// A camelCase spelling that would be valid.
        suggestion: String,
    },

    /// A step sets both `package` and inline `code`.
    #[error("{kind} sets both \"package\" and \"code\"; use one or the other")]
    PackageAndCode {
        /// `Source`, `Destination`, ...
        kind: &'static str,
    },

    /// A source or destination has neither `package` nor `code`.
    #[error("{kind} must specify either \"package\" or \"code\"")]
    NoImplementation {
        /// `Source` or `Destination`.
        kind: &'static str,
    },

    /// `code` given as a string (the pre-v4 named-export form).
    #[error(
        "code: \"{name}\" is no longer supported; use \"import\": \"{name}\" together with \
         \"package\""
    )]
    ObsoleteCodeString {
        /// The export name that was given.
        name: String,
    },

    /// `import` together with inline `code`.
    #[error("\"import\" cannot be combined with inline \"code\"; remove one of them")]
    ImportWithCode,

    /// `import` without `package`.
    #[error("\"import\" requires \"package\"; name the package the export comes from")]
    ImportWithoutPackage,

    /// A value that must be a JavaScript identifier is not one.
    #[error("\"{value}\" is not a valid JavaScript identifier")]
    InvalidIdentifier {
        /// The value as written.
        value: String,
    },

    /// A `$code:` string (or `code.push`/`code.init`) with nothing after the prefix.
    #[error("inline code is empty; write a JavaScript function after \"$code:\"")]
    EmptyCode,

    /// Inline JavaScript that cannot be valid.
    #[error(
        "inline JavaScript does not parse: {reason} (flowhost checks only brackets, quotes and \
         comments here; QuickJS compiles the code when the flow is bundled)"
    )]
    InvalidCode {
        /// What the light check found.
        reason: String,
    },

    /// A malformed `next`/`before` route.
    #[error("invalid route: {reason}")]
    InvalidRoute {
        /// What is wrong with it.
        reason: String,
    },

    /// A route names a transformer that does not exist.
    #[error(
        "route target \"{target}\" is not a transformer of this flow; {}",
        known_list(known)
    )]
    UnknownRouteTarget {
        /// The id in the route.
        target: String,
        /// Ids of the flow's transformers.
        known: Vec<String>,
    },

    /// A package name that npm would refuse.
    #[error(
        "\"{name}\" is not a valid npm package name (lowercase letters, digits, - . _ ~, \
         optionally @scope/)"
    )]
    InvalidPackageName {
        /// The name as written.
        name: String,
    },

    /// A package version that is neither a semver range nor a dist-tag.
    #[error(
        "version \"{version}\" of {package} is not a valid semver range or dist-tag ({reason}); \
         write e.g. \"4.2.1\", \"^4.2.0\" or \"latest\""
    )]
    InvalidVersion {
        /// The package the version belongs to.
        package: String,
        /// The version as written.
        version: String,
        /// Why the range parser refused it.
        reason: String,
    },

    /// Two steps pin different inline versions of one package.
    #[error(
        "Conflicting inline versions for {package}: \"{first}\" and \"{second}\" are declared \
         by different steps; pin one version in config.bundle.packages"
    )]
    ConflictingInlineVersions {
        /// The bare package name.
        package: String,
        /// The version seen first.
        first: String,
        /// The other version.
        second: String,
    },

    /// A bundle setting that resolves to a run-time value.
    #[error(
        "bundle settings are needed when the flow is bundled and cannot use $env or $secret; \
         use a literal or a $var"
    )]
    RuntimeValueInBundle,

    /// `$var.NAME` where no variable NAME exists in the cascade.
    #[error(
        "Variable \"{name}\" not found{}; define it under \"variables\" at the root, the flow \
         or the step",
        via_text(via)
    )]
    VariableNotFound {
        /// The missing variable.
        name: String,
        /// Variables whose values led to this reference, outermost first.
        via: Vec<String>,
    },

    /// Variables that refer to each other in a circle.
    #[error("Cyclic $var reference: {chain}")]
    VariableCycle {
        /// `a -> b -> a`.
        chain: String,
    },

    /// A variable with an object/array/null value used inside a longer string.
    #[error(
        "Variable \"{reference}\" resolves to non-scalar ({found}) and cannot be inlined into a \
         string; use it as the whole string value: \"$var.{reference}\""
    )]
    VariableNotScalar {
        /// The reference path after `$var.`.
        reference: String,
        /// The type found.
        found: &'static str,
    },

    /// A deep path (`$var.a.b`, `$flow.x.y`, `$contract.c.d`) that does not exist.
    #[error(
        "Path \"{path}\" not found in \"{reference}\": \"{segment}\" does not exist{}",
        in_text(visited)
    )]
    PathNotFound {
        /// The reference prefix, e.g. `$var.api`.
        reference: String,
        /// The whole path after the prefix.
        path: String,
        /// The first segment that is missing.
        segment: String,
        /// The segments walked before it.
        visited: String,
    },

    /// `$env.NAME` without default and NAME absent from the environment given to the loader.
    #[error(
        "missing environment variable {name} (used at {used_at}); set it or give a default \
         with $env.{name}:default"
    )]
    MissingEnv {
        /// The variable name.
        name: String,
        /// JSON path of the reference (repeated here so the message stands alone).
        used_at: String,
    },

    /// `$secret` in a web flow.
    #[error(
        "Secret \"$secret.{name}\" cannot be used in a web flow: secrets are never sent to the \
         browser; move the step to a server flow"
    )]
    SecretInWebFlow {
        /// The secret name.
        name: String,
    },

    /// `$secret` inside a longer string, or with an invalid name.
    #[error(
        "\"{text}\" is not a usable secret reference: $secret.NAME must be the whole string \
         value and NAME uses only A-Z, 0-9 and _"
    )]
    InvalidSecretRef {
        /// The string that contains the reference.
        text: String,
    },

    /// `$flow.NAME` where no flow NAME exists.
    #[error("$flow.{name} cannot resolve: flow \"{name}\" does not exist in this config")]
    FlowRefUnknown {
        /// The flow name.
        name: String,
    },

    /// Flows whose config blocks refer to each other in a circle.
    #[error("Cyclic $flow reference: {chain}")]
    FlowRefCycle {
        /// `a -> b -> a`.
        chain: String,
    },

    /// `$contract.NAME` where no contract NAME exists.
    #[error("Contract \"{name}\" not found; {}", contract_list(known))]
    ContractNotFound {
        /// The contract name.
        name: String,
        /// Names of the contracts in the file.
        known: Vec<String>,
    },

    /// Contracts whose `extend` fields form a circle.
    #[error("Circular extend chain detected: {chain}")]
    ContractExtendCycle {
        /// `a -> b -> a`.
        chain: String,
    },

    /// `$store.ID` where no store ID exists.
    #[error(
        "\"$store.{id}\" refers to store \"{id}\", which is not defined; {}",
        store_list(known)
    )]
    StoreNotFound {
        /// The store id.
        id: String,
        /// Ids of the flow's stores.
        known: Vec<String>,
    },

    /// References that expand to more than the loader builds.
    #[error(
        "references expand the config to more than {limit} values; a variable is probably used \
         inside itself many times over, flatten the variables"
    )]
    TooLarge {
        /// The limit that was hit.
        limit: usize,
    },

    /// References or values nested beyond what the loader follows.
    #[error(
        "references are nested more than {limit} levels deep; this is almost certainly a loop \
         the cycle checks cannot see, flatten the variables"
    )]
    TooDeep {
        /// The limit that was hit.
        limit: usize,
    },
}

impl ConfigErrorKind {
    /// A stable snake_case name for the kind, for machine-readable output and tests.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Read { .. } => "read",
            Self::Json { .. } => "json",
            Self::WrongType { .. } => "wrong_type",
            Self::MissingField { .. } => "missing_field",
            Self::UnknownField { .. } => "unknown_field",
            Self::MissingVersion => "missing_version",
            Self::UnsupportedVersion { .. } => "unsupported_version",
            Self::NoFlows => "no_flows",
            Self::MultipleFlows { .. } => "multiple_flows",
            Self::UnknownFlow { .. } => "unknown_flow",
            Self::MissingPlatform { .. } => "missing_platform",
            Self::InvalidPlatform { .. } => "invalid_platform",
            Self::Upgrade { .. } => "upgrade",
            Self::InvalidStepId { .. } => "invalid_step_id",
            Self::PackageAndCode { .. } => "package_and_code",
            Self::NoImplementation { .. } => "no_implementation",
            Self::ObsoleteCodeString { .. } => "obsolete_code_string",
            Self::ImportWithCode => "import_with_code",
            Self::ImportWithoutPackage => "import_without_package",
            Self::InvalidIdentifier { .. } => "invalid_identifier",
            Self::EmptyCode => "empty_code",
            Self::InvalidCode { .. } => "invalid_code",
            Self::InvalidRoute { .. } => "invalid_route",
            Self::UnknownRouteTarget { .. } => "unknown_route_target",
            Self::InvalidPackageName { .. } => "invalid_package_name",
            Self::InvalidVersion { .. } => "invalid_version",
            Self::ConflictingInlineVersions { .. } => "conflicting_inline_versions",
            Self::RuntimeValueInBundle => "runtime_value_in_bundle",
            Self::VariableNotFound { .. } => "variable_not_found",
            Self::VariableCycle { .. } => "variable_cycle",
            Self::VariableNotScalar { .. } => "variable_not_scalar",
            Self::PathNotFound { .. } => "path_not_found",
            Self::MissingEnv { .. } => "missing_env",
            Self::SecretInWebFlow { .. } => "secret_in_web_flow",
            Self::InvalidSecretRef { .. } => "invalid_secret_ref",
            Self::FlowRefUnknown { .. } => "flow_ref_unknown",
            Self::FlowRefCycle { .. } => "flow_ref_cycle",
            Self::ContractNotFound { .. } => "contract_not_found",
            Self::ContractExtendCycle { .. } => "contract_extend_cycle",
            Self::StoreNotFound { .. } => "store_not_found",
            Self::TooLarge { .. } => "too_large",
            Self::TooDeep { .. } => "too_deep",
        }
    }
}

fn known_list(known: &[String]) -> String {
    if known.is_empty() {
        "the flow defines no transformers".to_string()
    } else {
        format!("known transformers: {}", known.join(", "))
    }
}

fn contract_list(known: &[String]) -> String {
    if known.is_empty() {
        "the config has no \"contract\" block".to_string()
    } else {
        format!("available contracts: {}", known.join(", "))
    }
}

fn store_list(known: &[String]) -> String {
    if known.is_empty() {
        "the flow defines no stores".to_string()
    } else {
        format!("available stores: {}", known.join(", "))
    }
}

fn via_text(via: &[String]) -> String {
    if via.is_empty() {
        String::new()
    } else {
        format!(" (referenced from $var.{})", via.join(" -> $var."))
    }
}

fn in_text(visited: &str) -> String {
    if visited.is_empty() {
        String::new()
    } else {
        format!(" in \"{visited}\"")
    }
}

/// Collects errors and warnings while one config is loaded.
#[derive(Debug)]
pub(crate) struct Diagnostics {
    file: PathBuf,
    errors: Vec<ConfigError>,
    omitted: usize,
    warnings: Vec<String>,
}

impl Diagnostics {
    pub(crate) fn new(file: &Path) -> Self {
        Self {
            file: file.to_path_buf(),
            errors: Vec::new(),
            omitted: 0,
            warnings: Vec::new(),
        }
    }

    /// Records an error at `json_path`.
    pub(crate) fn error(&mut self, json_path: &str, kind: ConfigErrorKind) {
        if self.errors.len() >= MAX_ERRORS {
            self.omitted += 1;
            return;
        }
        let error = ConfigError {
            file: self.file.clone(),
            json_path: json_path.to_string(),
            kind,
        };
        // The same broken variable used twice at one place is reported once.
        if !self.errors.contains(&error) {
            self.errors.push(error);
        }
    }

    /// Records a warning; `json_path` may be empty.
    pub(crate) fn warn(&mut self, json_path: &str, message: impl fmt::Display) {
        let text = if json_path.is_empty() {
            message.to_string()
        } else {
            format!("{json_path}: {message}")
        };
        if !self.warnings.contains(&text) {
            self.warnings.push(text);
        }
    }

    pub(crate) fn has_errors(&self) -> bool {
        !self.errors.is_empty()
    }

    /// Number of errors recorded so far, including omitted ones.
    pub(crate) fn error_count(&self) -> usize {
        self.errors.len() + self.omitted
    }

    /// Ends loading with its result: the value and the warnings if there were no errors, else
    /// all errors.
    pub(crate) fn finish_with<T>(
        mut self,
        value: Option<T>,
    ) -> Result<(T, Vec<String>), ConfigErrors> {
        match value {
            Some(value) if self.errors.is_empty() => Ok((value, self.warnings)),
            _ => {
                // Every stage that gives up records why; this only guards against reporting
                // success without a result should one ever forget to.
                debug_assert!(self.has_errors(), "loading stopped without an error");
                if self.errors.is_empty() {
                    self.error(
                        "",
                        ConfigErrorKind::WrongType {
                            expected: "a loadable flow config",
                            found: "nothing to load",
                        },
                    );
                }
                Err(ConfigErrors {
                    errors: self.errors,
                    omitted: self.omitted,
                })
            }
        }
    }

    /// Ends a check that produces no value: the warnings if there were no errors, else all
    /// errors.
    #[cfg(test)]
    pub(crate) fn finish(self) -> Result<Vec<String>, ConfigErrors> {
        if self.errors.is_empty() {
            Ok(self.warnings)
        } else {
            Err(ConfigErrors {
                errors: self.errors,
                omitted: self.omitted,
            })
        }
    }
}

/// Joins a JSON path and a key.
pub(crate) fn child(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// The JSON type name of a value, for messages.
pub(crate) fn type_name(value: &serde_json::Value) -> &'static str {
    match value {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_prints_file_path_and_message_on_one_line() {
        let error = ConfigError {
            file: PathBuf::from("flow.json"),
            json_path: "flows.web.sources".into(),
            kind: ConfigErrorKind::NoFlows,
        };
        assert_eq!(
            error.to_string(),
            "flow.json: flows.web.sources: At least one flow is required; add a named flow \
             under \"flows\""
        );
    }

    #[test]
    fn errors_beyond_the_limit_are_counted_not_kept() {
        let mut diag = Diagnostics::new(Path::new("f.json"));
        for i in 0..MAX_ERRORS + 5 {
            diag.error(&format!("p{i}"), ConfigErrorKind::EmptyCode);
        }
        let errors = diag.finish().unwrap_err();
        assert_eq!(errors.len(), MAX_ERRORS);
        assert_eq!(errors.omitted(), 5);
        assert!(
            errors
                .to_string()
                .ends_with("... and 5 more errors not shown")
        );
    }

    #[test]
    fn identical_errors_are_reported_once() {
        let mut diag = Diagnostics::new(Path::new("f.json"));
        diag.error("a", ConfigErrorKind::EmptyCode);
        diag.error("a", ConfigErrorKind::EmptyCode);
        assert_eq!(diag.finish().unwrap_err().len(), 1);
    }
}
