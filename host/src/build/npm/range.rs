//! npm version ranges and dependency specs.
//!
//! npm writes ranges in its own grammar (`^1.2`, `~1.2.3`, `1.x`, `>=1 <2`, `1 - 2`, `a || b`)
//! that the `semver` crate does not read, so this module parses them into comparator sets and
//! matches [`semver::Version`]s with npm's rules, including its prerelease rule: a prerelease
//! matches only when a comparator of the same set names a prerelease of the same
//! `major.minor.patch`. Build metadata is ignored, as npm ignores it.

use std::cmp::Ordering;
use std::fmt;

use semver::{BuildMetadata, Prerelease, Version};

/// A parsed npm range: the version matches when any of its comparator sets matches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Range {
    /// `||`-separated alternatives; each is a conjunction of comparators.
    sets: Vec<Vec<Comparator>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Comparator {
    op: Op,
    version: Version,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Lt,
    Le,
    Gt,
    Ge,
    Eq,
}

/// Why a range string was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{token}` is not a version or comparator")]
pub struct RangeError {
    token: String,
}

impl Range {
    /// Parses an npm range. The empty string and `*` match every release.
    pub fn parse(text: &str) -> Result<Range, RangeError> {
        let sets = text
            .split("||")
            .map(parse_set)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Range { sets })
    }

    /// Whether `version` satisfies the range under npm's rules.
    pub fn matches(&self, version: &Version) -> bool {
        self.sets.iter().any(|set| set_matches(set, version))
    }

    /// The one version this range allows, when it is a plain `1.2.3` or `=1.2.3`.
    pub fn exact(&self) -> Option<&Version> {
        match self.sets.as_slice() {
            [set] => match set.as_slice() {
                [
                    Comparator {
                        op: Op::Eq,
                        version,
                    },
                ] => Some(version),
                _ => None,
            },
            _ => None,
        }
    }
}

fn set_matches(set: &[Comparator], version: &Version) -> bool {
    if !set.iter().all(|c| c.matches(version)) {
        return false;
    }
    if version.pre.is_empty() {
        return true;
    }

    // npm only lets a prerelease through when the range opted into prereleases of that exact
    // release line, so `^1.0.0` never picks `2.0.0-beta` or `1.5.0-rc.1`.
    set.iter().any(|c| {
        !c.version.pre.is_empty()
            && (c.version.major, c.version.minor, c.version.patch)
                == (version.major, version.minor, version.patch)
    })
}

impl Comparator {
    fn matches(&self, version: &Version) -> bool {
        let ordering = compare(version, &self.version);
        match self.op {
            Op::Lt => ordering == Ordering::Less,
            Op::Le => ordering != Ordering::Greater,
            Op::Gt => ordering == Ordering::Greater,
            Op::Ge => ordering != Ordering::Less,
            Op::Eq => ordering == Ordering::Equal,
        }
    }
}

/// Semver precedence without build metadata, which `Version`'s own `Ord` also compares.
pub fn compare(a: &Version, b: &Version) -> Ordering {
    (a.major, a.minor, a.patch, &a.pre).cmp(&(b.major, b.minor, b.patch, &b.pre))
}

/// A version with some components left open: `1`, `1.2`, `1.x`, `*`.
#[derive(Debug, Clone)]
struct Partial {
    major: Option<u64>,
    minor: Option<u64>,
    patch: Option<u64>,
    pre: Prerelease,
}

fn parse_set(text: &str) -> Result<Vec<Comparator>, RangeError> {
    let tokens = tokenize(text);

    // A hyphen range is exactly `A - B`; npm requires the spaces around the dash.
    if let [low, dash, high] = tokens.as_slice()
        && dash == "-"
    {
        let low = parse_partial(low)?;
        let high = parse_partial(high)?;
        let mut set = Vec::new();
        if low.major.is_some() {
            set.push(Comparator::new(Op::Ge, low.floor()));
        }
        set.extend(upper_inclusive(&high));
        return Ok(with_any(set));
    }

    let mut set = Vec::new();
    for token in &tokens {
        set.extend(parse_comparator(token)?);
    }
    Ok(with_any(set))
}

/// An empty comparator list (from `*`, `x`, `<=*` or nothing) stands for every release.
fn with_any(set: Vec<Comparator>) -> Vec<Comparator> {
    if set.is_empty() {
        vec![Comparator::new(Op::Ge, Version::new(0, 0, 0))]
    } else {
        set
    }
}

/// Splits on whitespace and glues a bare operator to the version after it (`>= 1.2`).
fn tokenize(text: &str) -> Vec<String> {
    let mut tokens: Vec<String> = Vec::new();
    let mut pending_operator = false;
    for word in text.split_whitespace() {
        if pending_operator && let Some(last) = tokens.last_mut() {
            last.push_str(word);
            pending_operator = is_operator(word);
            continue;
        }
        pending_operator = is_operator(word);
        tokens.push(word.to_string());
    }
    tokens
}

fn is_operator(word: &str) -> bool {
    matches!(word, "<" | "<=" | ">" | ">=" | "=" | "~" | "~>" | "^")
}

fn parse_comparator(token: &str) -> Result<Vec<Comparator>, RangeError> {
    let (operator, rest) = split_operator(token);
    let p = parse_partial(rest).map_err(|_| RangeError {
        token: token.to_string(),
    })?;
    let comparators = match operator {
        "" | "=" => match (p.major, p.minor, p.patch) {
            (None, _, _) => vec![],
            (Some(_), Some(_), Some(_)) => vec![Comparator::new(Op::Eq, p.floor())],
            _ => vec![Comparator::new(Op::Ge, p.floor()), bump_lt(&p)],
        },
        "~" | "~>" => match (p.major, p.minor) {
            (None, _) => vec![],
            (Some(major), None) => vec![
                Comparator::new(Op::Ge, p.floor()),
                Comparator::new(Op::Lt, below(major + 1, 0, 0)),
            ],
            (Some(major), Some(minor)) => vec![
                Comparator::new(Op::Ge, p.floor()),
                Comparator::new(Op::Lt, below(major, minor + 1, 0)),
            ],
        },
        "^" => match (p.major, p.minor, p.patch) {
            (None, _, _) => vec![],
            (Some(major), None, _) => vec![
                Comparator::new(Op::Ge, p.floor()),
                Comparator::new(Op::Lt, below(major + 1, 0, 0)),
            ],
            (Some(major), Some(minor), patch) => {
                // The caret keeps the leftmost non-zero component fixed.
                let upper = if major > 0 {
                    below(major + 1, 0, 0)
                } else if minor > 0 || patch.is_none() {
                    below(0, minor + 1, 0)
                } else {
                    below(0, 0, patch.unwrap_or(0) + 1)
                };
                vec![
                    Comparator::new(Op::Ge, p.floor()),
                    Comparator::new(Op::Lt, upper),
                ]
            }
        },
        ">" => match (p.major, p.minor, p.patch) {
            (None, _, _) => vec![Comparator::new(Op::Lt, below(0, 0, 0))],
            (Some(major), None, _) => vec![Comparator::new(Op::Ge, Version::new(major + 1, 0, 0))],
            (Some(major), Some(minor), None) => {
                vec![Comparator::new(Op::Ge, Version::new(major, minor + 1, 0))]
            }
            _ => vec![Comparator::new(Op::Gt, p.floor())],
        },
        ">=" => match p.major {
            None => vec![],
            Some(_) => vec![Comparator::new(Op::Ge, p.floor())],
        },
        "<" => match (p.major, p.minor, p.patch) {
            (None, _, _) => vec![Comparator::new(Op::Lt, below(0, 0, 0))],
            (Some(_), Some(_), Some(_)) => vec![Comparator::new(Op::Lt, p.floor())],
            _ => {
                let mut floor = p.floor();
                floor.pre = zero_pre();
                vec![Comparator::new(Op::Lt, floor)]
            }
        },
        "<=" => upper_inclusive(&p),
        _ => unreachable!("split_operator only returns known operators"),
    };
    Ok(comparators)
}

fn split_operator(token: &str) -> (&str, &str) {
    for operator in ["<=", ">=", "~>", "<", ">", "=", "~", "^"] {
        if let Some(rest) = token.strip_prefix(operator) {
            return (operator, rest.trim_start());
        }
    }
    ("", token)
}

/// `<=p` with npm's widening of partial versions: `<=1.2` is `<1.3.0-0`.
fn upper_inclusive(p: &Partial) -> Vec<Comparator> {
    match (p.major, p.minor, p.patch) {
        (None, _, _) => vec![],
        (Some(_), Some(_), Some(_)) => vec![Comparator::new(Op::Le, p.floor())],
        _ => vec![bump_lt(p)],
    }
}

/// The exclusive upper bound of a partial version: `1` → `<2.0.0-0`, `1.2` → `<1.3.0-0`.
fn bump_lt(p: &Partial) -> Comparator {
    let major = p.major.unwrap_or(0);
    let upper = match p.minor {
        None => below(major + 1, 0, 0),
        Some(minor) => below(major, minor + 1, 0),
    };
    Comparator::new(Op::Lt, upper)
}

/// The lowest prerelease of a release, so `<below(2,0,0)` also excludes `2.0.0-beta`.
fn below(major: u64, minor: u64, patch: u64) -> Version {
    let mut version = Version::new(major, minor, patch);
    version.pre = zero_pre();
    version
}

fn zero_pre() -> Prerelease {
    Prerelease::new("0").expect("`0` is a valid prerelease")
}

impl Comparator {
    fn new(op: Op, version: Version) -> Comparator {
        Comparator { op, version }
    }
}

impl Partial {
    /// The lowest version the partial names, open components set to zero.
    fn floor(&self) -> Version {
        let mut version = Version::new(
            self.major.unwrap_or(0),
            self.minor.unwrap_or(0),
            self.patch.unwrap_or(0),
        );
        if self.patch.is_some() {
            version.pre = self.pre.clone();
        }
        version
    }
}

fn parse_partial(text: &str) -> Result<Partial, RangeError> {
    let error = || RangeError {
        token: text.to_string(),
    };
    let text = text.trim_start_matches('=').trim_start_matches('v');
    let (core, pre) = match text.split_once('-') {
        Some((core, rest)) => {
            // Build metadata after the prerelease is ignored.
            let pre = rest.split('+').next().unwrap_or_default();
            (core, Prerelease::new(pre).map_err(|_| error())?)
        }
        None => (
            text.split('+').next().unwrap_or_default(),
            Prerelease::EMPTY,
        ),
    };

    let mut parts = [None, None, None];
    let mut open = false;
    let pieces: Vec<&str> = if core.is_empty() {
        vec!["*"]
    } else {
        core.split('.').collect()
    };
    if pieces.len() > 3 {
        return Err(error());
    }
    for (slot, piece) in parts.iter_mut().zip(&pieces) {
        if matches!(*piece, "x" | "X" | "*") {
            open = true;
            continue;
        }
        // Anything after a wildcard is open too, as npm reads `1.x.3` as `1.x`.
        if open {
            continue;
        }
        let number = piece.parse::<u64>().map_err(|_| error())?;
        if piece.len() > 1 && piece.starts_with('0') {
            return Err(error());
        }
        *slot = Some(number);
    }
    let [major, minor, patch] = parts;
    Ok(Partial {
        major,
        minor,
        patch,
        pre,
    })
}

/// Parses a published version the way npm reads a `versions` key: a leading `v` or `=`
/// is tolerated and build metadata is kept but never compared.
pub fn parse_version(text: &str) -> Option<Version> {
    let text = text.trim().trim_start_matches('=').trim_start_matches('v');
    let version = Version::parse(text).ok()?;
    Some(Version {
        build: BuildMetadata::EMPTY,
        ..version
    })
}

/// What a dependency value asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Spec {
    /// A semver range, including exact versions and `*`.
    Range(Range),
    /// A dist-tag such as `latest` or `next`.
    Tag(String),
    /// `npm:<real-name>@<range>`: install `real-name` under the dependency's name.
    Alias {
        /// The package fetched from the registry.
        package: String,
        /// What it must satisfy.
        spec: Box<Spec>,
    },
    /// Git URLs, tarball URLs, `file:`, `link:` and `workspace:` specs, which need a source
    /// other than the registry.
    Unsupported,
}

impl Spec {
    /// Classifies a dependency value as npm would (empty means `latest`).
    pub fn parse(text: &str) -> Spec {
        let text = text.trim();
        if let Some(alias) = text.strip_prefix("npm:") {
            let (package, spec) = split_name_version(alias);
            let spec = spec.map_or(Spec::Tag("latest".into()), Spec::parse);
            return match spec {
                Spec::Alias { .. } | Spec::Unsupported => Spec::Unsupported,
                spec => Spec::Alias {
                    package: package.to_string(),
                    spec: Box::new(spec),
                },
            };
        }
        if text.is_empty() {
            return Spec::Tag("latest".into());
        }
        if let Ok(range) = Range::parse(text) {
            return Spec::Range(range);
        }
        let is_tag = text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if is_tag && !text.starts_with('.') {
            Spec::Tag(text.to_string())
        } else {
            Spec::Unsupported
        }
    }
}

/// Splits `name@version` at the `@` that is not the scope's leading one.
pub fn split_name_version(text: &str) -> (&str, Option<&str>) {
    let search_from = usize::from(text.starts_with('@'));
    match text[search_from..].find('@') {
        Some(at) => {
            let at = at + search_from;
            (&text[..at], Some(&text[at + 1..]))
        }
        None => (text, None),
    }
}

impl fmt::Display for Range {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, set) in self.sets.iter().enumerate() {
            if i > 0 {
                f.write_str(" || ")?;
            }
            for (j, c) in set.iter().enumerate() {
                if j > 0 {
                    f.write_str(" ")?;
                }
                let op = match c.op {
                    Op::Lt => "<",
                    Op::Le => "<=",
                    Op::Gt => ">",
                    Op::Ge => ">=",
                    Op::Eq => "",
                };
                write!(f, "{op}{}", c.version)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(text: &str) -> Version {
        Version::parse(text).unwrap()
    }

    fn check(range: &str, yes: &[&str], no: &[&str]) {
        let parsed = Range::parse(range).unwrap_or_else(|e| panic!("{range}: {e}"));
        for version in yes {
            assert!(
                parsed.matches(&v(version)),
                "{range} should match {version}"
            );
        }
        for version in no {
            assert!(
                !parsed.matches(&v(version)),
                "{range} should not match {version}"
            );
        }
    }

    #[test]
    fn caret_keeps_leftmost_nonzero_component() {
        check(
            "^1.2.3",
            &["1.2.3", "1.9.0"],
            &["1.2.2", "2.0.0", "2.0.0-0"],
        );
        check("^0.2.3", &["0.2.3", "0.2.9"], &["0.3.0", "0.2.2"]);
        check("^0.0.3", &["0.0.3"], &["0.0.4", "0.0.2"]);
        check("^1.2", &["1.2.0", "1.99.0"], &["1.1.9", "2.0.0"]);
        check("^0.0", &["0.0.0", "0.0.9"], &["0.1.0"]);
        check("^0.0.x", &["0.0.5"], &["0.1.0"]);
        check("^0.x", &["0.0.1", "0.9.9"], &["1.0.0"]);
        check("^1.x", &["1.0.0", "1.5.0"], &["2.0.0"]);
        check("^ 4.2.0", &["4.2.0", "4.6.7"], &["5.0.0"]);
    }

    #[test]
    fn tilde_allows_patch_updates() {
        check("~1.2.3", &["1.2.3", "1.2.9"], &["1.3.0", "1.2.2"]);
        check("~1.2", &["1.2.0", "1.2.9"], &["1.3.0"]);
        check("~1", &["1.0.0", "1.9.9"], &["2.0.0"]);
        check("~0.2.3", &["0.2.3", "0.2.4"], &["0.3.0"]);
        check("~>1.2.3", &["1.2.4"], &["1.3.0"]);
    }

    #[test]
    fn x_ranges_and_partials_widen() {
        check("*", &["0.0.0", "9.9.9"], &["1.0.0-beta"]);
        check("", &["1.0.0"], &[]);
        check("x", &["3.0.0"], &[]);
        check("1.x", &["1.0.0", "1.9.0"], &["2.0.0", "0.9.0"]);
        check("1.2.x", &["1.2.0", "1.2.9"], &["1.3.0"]);
        check("1.2.*", &["1.2.7"], &["1.3.0"]);
        check("1", &["1.0.0", "1.5.5"], &["2.0.0"]);
        check("1.2", &["1.2.0", "1.2.5"], &["1.3.0"]);
    }

    #[test]
    fn exact_versions_match_only_themselves() {
        check("4.2.1", &["4.2.1"], &["4.2.0", "4.2.2"]);
        check("=4.2.1", &["4.2.1"], &["4.2.2"]);
        check("v4.2.1", &["4.2.1"], &["4.2.2"]);
        assert_eq!(Range::parse("4.2.1").unwrap().exact(), Some(&v("4.2.1")));
        assert_eq!(Range::parse("^4.2.1").unwrap().exact(), None);
    }

    #[test]
    fn comparators_combine_and_partial_bounds_widen() {
        check(">=1.2.3 <2", &["1.2.3", "1.9.9"], &["2.0.0", "1.2.2"]);
        check(">= 1.2.3 < 2.0.0", &["1.5.0"], &["2.0.0"]);
        check(">1", &["2.0.0"], &["1.9.9"]);
        check(">1.2", &["1.3.0"], &["1.2.9"]);
        check(">1.2.3", &["1.2.4"], &["1.2.3"]);
        check("<1.2", &["1.1.9"], &["1.2.0"]);
        check("<=1.2", &["1.2.9"], &["1.3.0"]);
        check("<=1.2.3", &["1.2.3"], &["1.2.4"]);
        check(">=1.2", &["1.2.0"], &["1.1.9"]);
    }

    #[test]
    fn hyphen_ranges_are_inclusive_and_widen_partials() {
        check("1.2.3 - 2.3.4", &["1.2.3", "2.3.4"], &["2.3.5", "1.2.2"]);
        check("1.2 - 2.3.4", &["1.2.0"], &["1.1.9"]);
        check("1.2.3 - 2.3", &["2.3.9"], &["2.4.0"]);
        check("1.2.3 - 2", &["2.9.9"], &["3.0.0"]);
    }

    #[test]
    fn alternatives_match_any_set() {
        check("^1.0.0 || ^2.0.0", &["1.5.0", "2.5.0"], &["3.0.0"]);
        check(
            "1.2.7 || >=1.2.9 <2.0.0",
            &["1.2.7", "1.4.6"],
            &["1.2.8", "2.0.0"],
        );
        check("<1.0.0 || >=3", &["0.9.0", "3.1.0"], &["2.0.0"]);
    }

    #[test]
    fn prereleases_match_only_when_the_range_names_their_release() {
        check(
            ">=1.2.3-alpha.3",
            &["1.2.3-alpha.7", "3.4.5"],
            &["3.4.5-alpha.9", "1.2.3-alpha.2"],
        );
        check(
            "^1.2.3-beta.2",
            &["1.2.3-beta.4", "1.2.3"],
            &["1.2.4-beta.1"],
        );
        check("^1.0.0", &["1.0.0"], &["1.1.0-rc.1", "2.0.0-beta"]);
        check("1.0.0-rc.1", &["1.0.0-rc.1"], &["1.0.0"]);
    }

    #[test]
    fn nonsense_is_rejected() {
        for bad in [
            "latest",
            "next",
            "1.2.3.4",
            "^abc",
            "git+ssh://x",
            "01.2.3",
            ">=a",
        ] {
            assert!(Range::parse(bad).is_err(), "{bad} should not parse");
        }
    }

    #[test]
    fn specs_are_classified_like_npm() {
        assert!(matches!(Spec::parse("^4.2.0"), Spec::Range(_)));
        assert_eq!(Spec::parse("latest"), Spec::Tag("latest".into()));
        assert_eq!(Spec::parse(""), Spec::Tag("latest".into()));
        assert_eq!(Spec::parse("next-1"), Spec::Tag("next-1".into()));
        match Spec::parse("npm:@scope/real@^2") {
            Spec::Alias { package, spec } => {
                assert_eq!(package, "@scope/real");
                assert!(matches!(*spec, Spec::Range(_)));
            }
            other => panic!("{other:?}"),
        }
        for unsupported in [
            "git+https://example.invalid/x.git",
            "file:../x",
            "workspace:*",
            "user/repo",
            "https://example.invalid/x.tgz",
        ] {
            assert_eq!(Spec::parse(unsupported), Spec::Unsupported, "{unsupported}");
        }
    }

    #[test]
    fn names_split_from_inline_versions() {
        assert_eq!(
            split_name_version("@walkeros/collector@4.2.1"),
            ("@walkeros/collector", Some("4.2.1"))
        );
        assert_eq!(
            split_name_version("@walkeros/collector"),
            ("@walkeros/collector", None)
        );
        assert_eq!(split_name_version("zod@^4"), ("zod", Some("^4")));
        assert_eq!(split_name_version("zod"), ("zod", None));
    }

    #[test]
    fn published_versions_drop_build_metadata() {
        assert_eq!(parse_version("v1.2.3+abc"), Some(v("1.2.3")));
        assert_eq!(parse_version("not-a-version"), None);
    }
}
