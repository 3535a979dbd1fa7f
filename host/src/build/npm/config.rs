//! The npm configuration that decides where packages come from: the default registry,
//! per-scope registries, per-host credentials and extra certificate authorities, read the way
//! npm reads them.
//!
//! Sources, strongest first: `npm_config_*` environment variables, the project `.npmrc` (in the
//! nearest directory upwards from the working directory that has a `package.json` or a
//! `node_modules`, else the working directory itself), the user file (`NPM_CONFIG_USERCONFIG`,
//! else `$HOME/.npmrc`) and the global file (`globalconfig`, else `<prefix>/etc/npmrc` where the
//! prefix is the `prefix` setting, `$PREFIX`, or, as for npm, two levels above the `node`
//! found on `PATH`; Node itself is never run). `${VAR}` in keys and values is replaced by the
//! environment variable and left as written when the variable is unset (`${VAR?}` becomes
//! empty instead), as npm does. `cafile` and `NODE_EXTRA_CA_CERTS` add trusted authorities on
//! top of the built-in roots, which TLS-inspecting proxies need.
//!
//! flowhost has no built-in registry: when none is configured, anything that needs the network
//! fails with [`NpmError::NoRegistry`], which tells the user to set `NPM_CONFIG_REGISTRY` or add a
//! `registry=` line to an `.npmrc`. Not read: proxy settings (reqwest follows `HTTPS_PROXY`),
//! `strict-ssl`, inline `ca`, `username` / `_password`, and npm's built-in `npmrc`.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use reqwest::Url;

use super::NpmError;

/// Where packages are fetched from and which credentials go to which host.
#[derive(Clone, Default)]
pub struct NpmConfig {
    /// The default registry, normalised to end in `/`; `None` when nothing configures one.
    registry: Option<String>,
    /// `@scope` → registry for packages of that scope.
    scoped: BTreeMap<String, String>,
    /// Nerf-darted URL prefix (`//host[:port]/path/`) → credential for requests under it.
    credentials: BTreeMap<String, Credential>,
    /// Extra certificate authorities (`cafile`, `NODE_EXTRA_CA_CERTS`) as PEM, with origin,
    /// trusted in addition to the built-in roots; needed behind TLS-inspecting proxies.
    ca_bundles: Vec<(String, Vec<u8>)>,
}

/// A secret from an `.npmrc` auth line; never printed.
#[derive(Clone, PartialEq, Eq)]
enum Credential {
    /// `:_authToken=` sent as `Authorization: Bearer`.
    Bearer(String),
    /// `:_auth=` (base64 `user:password`) sent as `Authorization: Basic`.
    Basic(String),
}

/// The environment and directories a configuration is read from; split out so tests do
/// not depend on the process environment.
pub(crate) struct Sources<'a> {
    /// Looks up one environment variable (for `${VAR}` and `NODE_EXTRA_CA_CERTS`).
    pub env: &'a dyn Fn(&str) -> Option<String>,
    /// All environment variables, for the `npm_config_*` ones.
    pub env_pairs: Vec<(String, String)>,
    /// Where the build runs; its project `.npmrc` is searched from here.
    pub cwd: &'a Path,
    /// The home directory with the user `.npmrc`.
    pub home: Option<PathBuf>,
    /// `PATH`, to find the Node installation whose prefix holds the global `npmrc`.
    pub path: Option<std::ffi::OsString>,
}

/// One parsed configuration source, with the name used in error messages.
type Layer = (String, BTreeMap<String, String>);

impl NpmConfig {
    /// Reads the npm configuration as npm would when run in `cwd`.
    pub fn from_env(cwd: &Path) -> Result<NpmConfig, NpmError> {
        let lookup = |key: &str| std::env::var(key).ok();
        NpmConfig::from_sources(&Sources {
            env: &lookup,
            env_pairs: std::env::vars().collect(),
            cwd,
            home: std::env::var_os("HOME").map(PathBuf::from),
            path: std::env::var_os("PATH"),
        })
    }

    /// A configuration with only a default registry and no credentials.
    pub fn with_registry(registry: &str) -> Result<NpmConfig, NpmError> {
        let mut config = NpmConfig::default();
        config.set_registry(registry)?;
        Ok(config)
    }

    /// Replaces the default registry (for a command-line flag that beats the configuration).
    pub fn set_registry(&mut self, registry: &str) -> Result<(), NpmError> {
        self.registry = Some(normalize_registry(registry, "the caller")?);
        Ok(())
    }

    /// When no registry is configured, takes the one the npm CLI would use (its built-in
    /// default, which flowhost deliberately does not know). For tests and benchmarks on machines
    /// where npm is installed but not configured; the runner itself never runs npm.
    pub fn or_npm_cli_registry(mut self) -> Result<NpmConfig, NpmError> {
        if self.registry_for("x").is_ok() {
            return Ok(self);
        }
        let output = std::process::Command::new("npm")
            .args(["config", "get", "registry"])
            .output()
            .map_err(|_| NpmError::NoRegistry)?;
        let registry = String::from_utf8_lossy(&output.stdout);
        self.set_registry(registry.trim())?;
        Ok(self)
    }

    pub(crate) fn from_sources(sources: &Sources<'_>) -> Result<NpmConfig, NpmError> {
        let env_layer = env_layer(&sources.env_pairs);

        let user_file = env_layer
            .get("userconfig")
            .map(PathBuf::from)
            .or_else(|| sources.home.as_ref().map(|home| home.join(".npmrc")));
        let project_file = project_dir(sources.cwd).join(".npmrc");
        let user = match &user_file {
            Some(file) => read_layer(file, sources.env)?,
            None => None,
        };
        let project = if user_file.as_deref() == Some(project_file.as_path()) {
            None
        } else {
            read_layer(&project_file, sources.env)?
        };

        // The global file sits under npm's prefix, which the stronger layers may set; by
        // default it is the prefix of the Node installation on PATH, as for npm itself.
        let setting = |key: &str| {
            env_layer
                .get(key)
                .or_else(|| project.as_ref().and_then(|(_, l)| l.get(key)))
                .or_else(|| user.as_ref().and_then(|(_, l)| l.get(key)))
                .cloned()
        };
        let global_file = setting("globalconfig").map(PathBuf::from).or_else(|| {
            let prefix = setting("prefix")
                .map(PathBuf::from)
                .or_else(|| (sources.env)("PREFIX").map(PathBuf::from))
                .or_else(|| node_prefix(sources.path.as_deref()))?;
            Some(prefix.join("etc").join("npmrc"))
        });
        let global = match &global_file {
            Some(file) => read_layer(file, sources.env)?,
            None => None,
        };

        // Weakest first, so each later layer overrides the keys it sets.
        let layers = [
            global,
            user,
            project,
            Some(("the npm_config_* environment".into(), env_layer)),
        ];
        let mut config = NpmConfig::default();
        for (origin, layer) in layers.into_iter().flatten() {
            for (key, value) in layer {
                config.apply(&origin, &key, value)?;
            }
        }

        // Node adds NODE_EXTRA_CA_CERTS to whatever CAs npm uses, so it applies here too.
        if let Some(file) = (sources.env)("NODE_EXTRA_CA_CERTS").filter(|f| !f.is_empty()) {
            config.read_ca_file("NODE_EXTRA_CA_CERTS", Path::new(&file))?;
        }
        Ok(config)
    }

    /// PEM bundles of extra trusted certificate authorities, with where each came from.
    pub(crate) fn ca_bundles(&self) -> &[(String, Vec<u8>)] {
        &self.ca_bundles
    }

    fn read_ca_file(&mut self, origin: &str, file: &Path) -> Result<(), NpmError> {
        let pem = std::fs::read(file).map_err(|e| NpmError::Config {
            source_name: origin.to_string(),
            detail: format!("cafile {}: {e}", file.display()),
        })?;
        self.ca_bundles
            .push((format!("{origin} ({})", file.display()), pem));
        Ok(())
    }

    fn apply(&mut self, origin: &str, key: &str, value: String) -> Result<(), NpmError> {
        if key == "registry" {
            self.registry = Some(normalize_registry(&value, origin)?);
        } else if let Some(scope) = key.strip_suffix(":registry")
            && scope.starts_with('@')
        {
            self.scoped
                .insert(scope.to_string(), normalize_registry(&value, origin)?);
        } else if let Some(rest) = key.strip_prefix("//")
            && let Some((prefix, field)) = rest.rsplit_once(':')
        {
            let mut prefix = format!("//{prefix}");
            if !prefix.ends_with('/') {
                prefix.push('/');
            }
            let credential = match field {
                "_authToken" => Credential::Bearer(value),
                "_auth" => Credential::Basic(value),
                _ => return Ok(()),
            };
            self.credentials.insert(prefix, credential);
        } else if key == "cafile" && !value.is_empty() {
            // Like npm, a stronger `cafile` replaces a weaker one.
            self.ca_bundles.clear();
            self.read_ca_file(origin, Path::new(&value))?;
        }
        Ok(())
    }

    /// The registry that serves `package`: its scope's registry if one is set, else the
    /// default one.
    pub fn registry_for(&self, package: &str) -> Result<&str, NpmError> {
        let scoped = package
            .split_once('/')
            .filter(|(scope, _)| scope.starts_with('@'))
            .and_then(|(scope, _)| self.scoped.get(scope));
        scoped
            .or(self.registry.as_ref())
            .map(String::as_str)
            .ok_or(NpmError::NoRegistry)
    }

    /// The `Authorization` header value for a request to `url`: the credential whose
    /// nerf-darted prefix is the longest match, so a token only goes to the host and path it
    /// was configured for.
    pub(crate) fn authorization_for(&self, url: &Url) -> Option<String> {
        let nerf = nerf_dart(url)?;
        self.credentials
            .iter()
            .filter(|(prefix, _)| nerf.starts_with(prefix.as_str()))
            .max_by_key(|(prefix, _)| prefix.len())
            .map(|(_, credential)| match credential {
                Credential::Bearer(token) => format!("Bearer {token}"),
                Credential::Basic(auth) => format!("Basic {auth}"),
            })
    }

    /// The registries in effect, without secrets; part of the resolution cache key so that
    /// switching registries resolves again.
    pub(crate) fn fingerprint(&self) -> String {
        let mut text = self.registry.clone().unwrap_or_default();
        for (scope, url) in &self.scoped {
            text.push_str(&format!(" {scope}={url}"));
        }
        text
    }
}

impl fmt::Debug for NpmConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NpmConfig")
            .field("registry", &self.registry)
            .field("scoped", &self.scoped)
            .field(
                "credentials_for",
                &self.credentials.keys().collect::<Vec<_>>(),
            )
            .field(
                "ca_bundles",
                &self.ca_bundles.iter().map(|(o, _)| o).collect::<Vec<_>>(),
            )
            .finish()
    }
}

/// npm's "nerf dart": the URL without scheme, credentials, query or file name.
fn nerf_dart(url: &Url) -> Option<String> {
    let host = url.host_str()?;
    let port = url.port().map(|p| format!(":{p}")).unwrap_or_default();
    let path = url.path();
    let dir = &path[..path.rfind('/').map_or(0, |i| i + 1)];
    Some(format!("//{host}{port}{dir}"))
}

fn normalize_registry(value: &str, origin: &str) -> Result<String, NpmError> {
    let mut url = value.trim().to_string();
    let parsed = Url::parse(&url)
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https"));
    if parsed.is_none() {
        return Err(NpmError::Config {
            source_name: origin.to_string(),
            detail: format!("registry `{value}` is not an http(s) URL"),
        });
    }
    if !url.ends_with('/') {
        url.push('/');
    }
    Ok(url)
}

/// Reads one `.npmrc`; a missing file is no layer, an unreadable one an error.
fn read_layer(
    file: &Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<Layer>, NpmError> {
    match std::fs::read_to_string(file) {
        Ok(text) => Ok(Some((file.display().to_string(), parse_npmrc(&text, env)))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(NpmError::Config {
            source_name: file.display().to_string(),
            detail: e.to_string(),
        }),
    }
}

/// npm's default global prefix: two levels above the real path of the `node` executable.
fn node_prefix(path: Option<&std::ffi::OsStr>) -> Option<PathBuf> {
    let node = std::env::split_paths(path?)
        .map(|dir| dir.join("node"))
        .find(|candidate| candidate.is_file())?;
    let real = std::fs::canonicalize(node).ok()?;
    Some(real.parent()?.parent()?.to_path_buf())
}

/// The directory whose `.npmrc` is the project configuration: the nearest one upwards that
/// has a `package.json` or `node_modules`, else `cwd`.
fn project_dir(cwd: &Path) -> PathBuf {
    cwd.ancestors()
        .find(|dir| dir.join("package.json").is_file() || dir.join("node_modules").is_dir())
        .unwrap_or(cwd)
        .to_path_buf()
}

/// `npm_config_*` variables as config keys: `npm_config_foo_bar` → `foo-bar`, except that
/// nerf-darted keys (`npm_config_//host/:_authToken`) keep their spelling. Empty values are
/// ignored, as npm ignores them.
fn env_layer(pairs: &[(String, String)]) -> BTreeMap<String, String> {
    let mut layer = BTreeMap::new();
    for (name, value) in pairs {
        if name.len() <= "npm_config_".len()
            || !name[.."npm_config_".len()].eq_ignore_ascii_case("npm_config_")
            || value.is_empty()
        {
            continue;
        }
        let key = &name["npm_config_".len()..];
        let key = if key.starts_with("//") {
            key.to_string()
        } else {
            let mut chars = key.chars();
            let first = chars.next().map(String::from).unwrap_or_default();
            (first + &chars.as_str().replace('_', "-")).to_lowercase()
        };
        layer.insert(key, value.clone());
    }
    layer
}

/// Parses `.npmrc` text (INI without sections): `key = value` lines, `#` / `;` comments,
/// optionally quoted values, `${VAR}` expansion in keys and values.
pub(crate) fn parse_npmrc(
    text: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> BTreeMap<String, String> {
    let mut entries = BTreeMap::new();
    let mut in_section = false;
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        // npm ignores values under `[section]` headers.
        if line.starts_with('[') && line.ends_with(']') {
            in_section = true;
            continue;
        }
        if in_section {
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        let key = expand_env(key.trim(), env);
        let value = expand_env(&unquote(value.trim()), env);
        entries.insert(key, value);
    }
    entries
}

/// Strips matching quotes, or an inline `;`/`#` comment (and then quotes) from a value.
fn unquote(value: &str) -> String {
    let quoted = |v: &str| {
        v.len() >= 2
            && ((v.starts_with('"') && v.ends_with('"'))
                || (v.starts_with('\'') && v.ends_with('\'')))
    };
    if quoted(value) {
        return value[1..value.len() - 1].to_string();
    }
    let mut out = String::new();
    let mut escaped = false;
    for c in value.chars() {
        if escaped {
            out.push(c);
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == ';' || c == '#' {
            break;
        } else {
            out.push(c);
        }
    }
    let out = out.trim();
    if quoted(out) {
        out[1..out.len() - 1].to_string()
    } else {
        out.to_string()
    }
}

/// Replaces `${NAME}` with the variable's value; an unset variable stays literal so the
/// mistake is visible, unless written `${NAME?}`, which then becomes empty.
fn expand_env(text: &str, env: &dyn Fn(&str) -> Option<String>) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        let Some(len) = rest[start + 2..].find('}') else {
            break;
        };
        out.push_str(&rest[..start]);
        let inner = &rest[start + 2..start + 2 + len];
        let (name, optional) = match inner.strip_suffix('?') {
            Some(name) => (name, true),
            None => (inner, false),
        };
        match env(name) {
            Some(value) => out.push_str(&value),
            None if optional => {}
            None => out.push_str(&rest[start..start + 3 + len]),
        }
        rest = &rest[start + 3 + len..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn read(
        env: &[(&str, &str)],
        files: &[(&str, &str)],
        cwd_rel: &str,
    ) -> (tempfile::TempDir, Result<NpmConfig, NpmError>) {
        let root = tempfile::tempdir().unwrap();
        for (path, text) in files {
            let path = root.path().join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }
        let vars: HashMap<String, String> = env
            .iter()
            .map(|(k, v)| {
                (
                    k.to_string(),
                    v.replace("$ROOT", &root.path().display().to_string()),
                )
            })
            .collect();
        let lookup = |k: &str| vars.get(k).cloned();
        let cwd = root.path().join(cwd_rel);
        std::fs::create_dir_all(&cwd).unwrap();
        let config = NpmConfig::from_sources(&Sources {
            env: &lookup,
            env_pairs: vars.clone().into_iter().collect(),
            cwd: &cwd,
            home: Some(root.path().join("home")),
            path: None,
        });
        (root, config)
    }

    #[test]
    fn environment_beats_project_beats_user() {
        let files = [
            (
                "home/.npmrc",
                "registry=https://user.invalid/\n@a:registry=https://user-a.invalid",
            ),
            ("proj/package.json", "{}"),
            ("proj/.npmrc", "registry = https://project.invalid/npm"),
        ];
        let (_root, config) = read(&[], &files, "proj/src");
        let config = config.unwrap();
        assert_eq!(
            config.registry_for("zod").unwrap(),
            "https://project.invalid/npm/"
        );
        assert_eq!(
            config.registry_for("@a/x").unwrap(),
            "https://user-a.invalid/"
        );
        assert_eq!(
            config.registry_for("@b/x").unwrap(),
            "https://project.invalid/npm/"
        );

        let env = [("NPM_CONFIG_REGISTRY", "https://env.invalid")];
        let (_root, config) = read(&env, &files, "proj");
        assert_eq!(
            config.unwrap().registry_for("zod").unwrap(),
            "https://env.invalid/"
        );

        let env = [("npm_config_registry", "https://lower.invalid/")];
        let (_root, config) = read(&env, &files, "proj");
        assert_eq!(
            config.unwrap().registry_for("zod").unwrap(),
            "https://lower.invalid/"
        );
    }

    #[test]
    fn userconfig_variable_replaces_home_npmrc() {
        let files = [
            ("home/.npmrc", "registry=https://home.invalid/"),
            ("other/npmrc", "registry=https://other.invalid/"),
        ];
        let env = [("NPM_CONFIG_USERCONFIG", "$ROOT/other/npmrc")];
        let (_root, config) = read(&env, &files, "somewhere");
        assert_eq!(
            config.unwrap().registry_for("x").unwrap(),
            "https://other.invalid/"
        );
    }

    #[test]
    fn global_file_under_the_prefix_is_weakest_and_brings_its_cafile() {
        let files = [
            (
                "prefix/etc/npmrc",
                "registry=https://global.invalid/\ncafile=${CAROOT}/ca.pem",
            ),
            ("ca.pem", "-----BEGIN CERTIFICATE-----"),
        ];
        let env = [("PREFIX", "$ROOT/prefix"), ("CAROOT", "$ROOT")];
        let (_root, config) = read(&env, &files, "x");
        let config = config.unwrap();
        assert_eq!(config.registry_for("x").unwrap(), "https://global.invalid/");
        assert_eq!(config.ca_bundles().len(), 1);

        let files = [
            (
                "prefix/etc/npmrc",
                "registry=https://global.invalid/\ncafile=/missing.pem",
            ),
            ("home/.npmrc", "registry=https://user.invalid/"),
        ];
        let (_root, config) = read(&env, &files, "x");
        let message = config.unwrap_err().to_string();
        assert!(message.contains("/missing.pem"), "{message}");
    }

    #[test]
    fn nothing_configured_is_a_clear_error() {
        let (_root, config) = read(&[], &[], "empty");
        let error = config.unwrap().registry_for("zod").unwrap_err();
        assert!(matches!(error, NpmError::NoRegistry));
        let message = error.to_string();
        assert!(message.contains("NPM_CONFIG_REGISTRY") && message.contains(".npmrc"));
    }

    #[test]
    fn tokens_expand_from_env_and_go_only_to_their_host() {
        let files = [(
            "home/.npmrc",
            "registry=https://reg.invalid/npm/\n\
             //reg.invalid/npm/:_authToken=${TOKEN}\n\
             //other.invalid/:_authToken=${MISSING}\n\
             //basic.invalid:_auth=\"dXNlcjpwYXNz\" ; comment\n",
        )];
        let env = [("TOKEN", "s3cret")];
        let (_root, config) = read(&env, &files, "x");
        let config = config.unwrap();
        let auth = |url: &str| config.authorization_for(&Url::parse(url).unwrap());
        assert_eq!(
            auth("https://reg.invalid/npm/zod").as_deref(),
            Some("Bearer s3cret")
        );
        assert_eq!(
            auth("https://reg.invalid/npm/zod/-/zod-1.0.0.tgz").as_deref(),
            Some("Bearer s3cret")
        );
        assert_eq!(auth("https://reg.invalid/elsewhere/zod"), None);
        assert_eq!(auth("https://evil.invalid/npm/zod"), None);
        assert_eq!(
            auth("https://other.invalid/x").as_deref(),
            Some("Bearer ${MISSING}")
        );
        assert_eq!(
            auth("https://basic.invalid/x").as_deref(),
            Some("Basic dXNlcjpwYXNz")
        );
        assert!(!format!("{config:?}").contains("s3cret"));
    }

    #[test]
    fn npmrc_syntax_follows_ini() {
        let env = |k: &str| (k == "HOST").then(|| "h.invalid".to_string());
        let parsed = parse_npmrc(
            "# comment\n; other\n\nregistry=https://${HOST}/ # trailing\n\
             email=\"a;b\"\nempty=${UNSET?}\nkept=${UNSET}\n[section]\nregistry=ignored\n",
            &env,
        );
        assert_eq!(parsed["registry"], "https://h.invalid/");
        assert_eq!(parsed["email"], "a;b");
        assert_eq!(parsed["empty"], "");
        assert_eq!(parsed["kept"], "${UNSET}");
        assert_eq!(parsed.len(), 4);
    }

    #[test]
    fn scoped_registry_from_environment_and_bad_url_names_its_source() {
        let env = [("npm_config_@corp:registry", "https://corp.invalid")];
        let (_root, config) = read(&env, &[], "x");
        assert_eq!(
            config.unwrap().registry_for("@corp/pkg").unwrap(),
            "https://corp.invalid/"
        );

        let files = [("home/.npmrc", "registry=not a url")];
        let (_root, config) = read(&[], &files, "x");
        let message = config.unwrap_err().to_string();
        assert!(
            message.contains(".npmrc") && message.contains("not a url"),
            "{message}"
        );
    }
}
