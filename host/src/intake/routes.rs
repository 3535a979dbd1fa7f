//! The source's paths, matched the way Express 5 routes them: case-insensitive, a trailing slash
//! optional, `:name` for one segment, `*name` for one or more, `{...}` for an optional part.
//!
//! Only the route shapes walkerOS configs use are supported; anything else is taken literally.

/// One part of a compiled path.
#[derive(Debug, Clone, PartialEq)]
enum Part {
    /// A literal segment, lowercased.
    Literal(String),
    /// `:name`: exactly one non-empty segment.
    Param,
    /// `*name`: one or more segments.
    Splat,
}

/// A configured path, with its alternatives when it has optional parts.
#[derive(Debug, Clone, PartialEq)]
pub struct PathPattern {
    /// The path as configured, for logs.
    pub source: String,
    alternatives: Vec<Vec<Part>>,
}

impl PathPattern {
    /// Compiles an Express path (`/collect`, `/events/:kind`, `/t/*rest`, `/e{/:v}`).
    pub fn new(path: &str) -> Self {
        let alternatives = expand_optional(path)
            .into_iter()
            .map(|path| compile(&path))
            .collect();
        Self {
            source: path.to_string(),
            alternatives,
        }
    }

    /// Whether the request path (no query) matches.
    pub fn matches(&self, path: &str) -> bool {
        // Non-strict routing: `/collect/` is `/collect`.
        let path = match path.strip_suffix('/') {
            Some(stripped) if !stripped.is_empty() => stripped,
            _ => path,
        };
        let segments: Vec<&str> = path.split('/').skip(1).collect();
        self.alternatives
            .iter()
            .any(|parts| match_parts(parts, &segments))
    }
}

fn match_parts(parts: &[Part], segments: &[&str]) -> bool {
    match (parts.first(), segments.first()) {
        (None, None) => true,
        (None, Some(_)) => false,
        (Some(Part::Splat), _) => {
            // One or more segments, then the rest of the pattern.
            (1..=segments.len()).any(|taken| match_parts(&parts[1..], &segments[taken..]))
        }
        (Some(_), None) => false,
        (Some(Part::Param), Some(segment)) => {
            !segment.is_empty() && match_parts(&parts[1..], &segments[1..])
        }
        (Some(Part::Literal(literal)), Some(segment)) => {
            literal.eq_ignore_ascii_case(segment) && match_parts(&parts[1..], &segments[1..])
        }
    }
}

fn compile(path: &str) -> Vec<Part> {
    let path = path
        .strip_suffix('/')
        .filter(|p| !p.is_empty())
        .unwrap_or(path);
    let path = path.strip_prefix('/').unwrap_or(path);
    if path.is_empty() {
        return vec![Part::Literal(String::new())];
    }
    path.split('/')
        .map(|segment| {
            if segment.len() > 1 && segment.starts_with(':') {
                Part::Param
            } else if segment.starts_with('*') {
                Part::Splat
            } else {
                Part::Literal(segment.to_ascii_lowercase())
            }
        })
        .collect()
}

/// Expands `{...}` groups into the paths with and without them (nested groups included).
fn expand_optional(path: &str) -> Vec<String> {
    let Some(open) = path.find('{') else {
        return vec![path.to_string()];
    };
    // Find the matching close brace.
    let mut depth = 0;
    let mut close = None;
    for (i, c) in path[open..].char_indices() {
        match c {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    close = Some(open + i);
                    break;
                }
            }
            _ => {}
        }
    }
    let Some(close) = close else {
        return vec![path.to_string()];
    };
    let (head, inner, tail) = (&path[..open], &path[open + 1..close], &path[close + 1..]);
    let mut out = Vec::new();
    for tail in expand_optional(tail) {
        for inner in expand_optional(inner) {
            out.push(format!("{head}{inner}{tail}"));
        }
        out.push(format!("{head}{tail}"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literal_paths_match_case_insensitively_with_an_optional_trailing_slash() {
        let p = PathPattern::new("/collect");
        assert!(p.matches("/collect"));
        assert!(p.matches("/collect/"));
        assert!(p.matches("/COLLECT"));
        assert!(!p.matches("/collect/x"));
        assert!(!p.matches("/collec"));
        assert!(!p.matches("/"));
    }

    #[test]
    fn params_splats_and_optional_groups() {
        let p = PathPattern::new("/events/:kind");
        assert!(p.matches("/events/page"));
        assert!(!p.matches("/events"));
        assert!(!p.matches("/events/a/b"));

        let p = PathPattern::new("/t/*rest");
        assert!(p.matches("/t/a"));
        assert!(p.matches("/t/a/b/c"));
        assert!(!p.matches("/t"));

        let p = PathPattern::new("/e{/:version}");
        assert!(p.matches("/e"));
        assert!(p.matches("/e/v2"));
        assert!(!p.matches("/e/v2/x"));
    }

    #[test]
    fn root_path() {
        let p = PathPattern::new("/");
        assert!(p.matches("/"));
        assert!(!p.matches("/x"));
    }
}
