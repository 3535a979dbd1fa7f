//! A light plausibility check for inline JavaScript (`$code:` strings and inline step code).
//!
//! There is no JavaScript parser on the host side, so this only tokenises far enough to see
//! strings, template literals, comments and regular expressions, and checks that brackets pair
//! up, nothing is left open and the code does not end in the middle of an expression. It
//! refuses code that can never compile; the authoritative check is QuickJS compiling the
//! bundled flow. Where a `/` could start a regex or be a division the check prefers the
//! reading that does not fail, so valid code is never refused here.

/// Checks `source`; the error says what is wrong and at which character (1-based).
pub(crate) fn check_syntax(source: &str) -> Result<(), String> {
    let chars: Vec<char> = source.chars().collect();
    if chars.iter().all(|c| c.is_whitespace()) {
        return Err("the code is empty".to_string());
    }
    Scanner {
        chars: &chars,
        pos: 0,
        stack: Vec::new(),
        last: Last::Start,
        last_word: String::new(),
    }
    .run()
}

/// What the previous significant token was; decides whether `/` starts a regex.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Last {
    Start,
    /// An operator or punctuator (the char); a regex may follow.
    Punct(char),
    /// An identifier or keyword (kept in `last_word`).
    Word,
    /// A literal, a closing bracket or a string.
    Value,
}

#[derive(Debug, Clone, Copy)]
enum Open {
    Paren(usize),
    Bracket(usize),
    Brace(usize),
    /// `${` inside a template literal; its `}` resumes the template.
    TemplateExpr(usize),
}

struct Scanner<'a> {
    chars: &'a [char],
    pos: usize,
    stack: Vec<Open>,
    last: Last,
    last_word: String,
}

/// Keywords after which an expression (and so a regex) starts.
const EXPRESSION_KEYWORDS: &[&str] = &[
    "return",
    "typeof",
    "instanceof",
    "in",
    "of",
    "new",
    "delete",
    "void",
    "throw",
    "case",
    "do",
    "else",
    "yield",
    "await",
];

impl Scanner<'_> {
    fn run(mut self) -> Result<(), String> {
        while let Some(c) = self.peek(0) {
            match c {
                c if c.is_whitespace() => self.pos += 1,
                '/' if self.peek(1) == Some('/') => self.skip_line_comment(),
                '/' if self.peek(1) == Some('*') => self.skip_block_comment()?,
                '/' if self.regex_allowed() && self.try_regex() => self.last = Last::Value,
                '\'' | '"' => {
                    self.skip_string(c)?;
                    self.last = Last::Value;
                }
                '`' => {
                    self.pos += 1;
                    self.scan_template(self.pos - 1)?;
                }
                '(' | '[' | '{' => {
                    self.stack.push(match c {
                        '(' => Open::Paren(self.pos),
                        '[' => Open::Bracket(self.pos),
                        _ => Open::Brace(self.pos),
                    });
                    self.pos += 1;
                    self.last = Last::Punct(c);
                }
                ')' | ']' | '}' => self.close(c)?,
                c if c.is_alphanumeric() || c == '_' || c == '$' => self.scan_word(),
                c => {
                    self.pos += 1;
                    self.last = Last::Punct(c);
                }
            }
        }

        if let Some(open) = self.stack.last() {
            return Err(match *open {
                Open::Paren(at) => format!("\"(\" at character {} is never closed", at + 1),
                Open::Bracket(at) => format!("\"[\" at character {} is never closed", at + 1),
                Open::Brace(at) => format!("\"{{\" at character {} is never closed", at + 1),
                Open::TemplateExpr(at) => {
                    format!("\"${{\" at character {} is never closed", at + 1)
                }
            });
        }
        self.check_ending()
    }

    fn peek(&self, ahead: usize) -> Option<char> {
        self.chars.get(self.pos + ahead).copied()
    }

    fn regex_allowed(&self) -> bool {
        match self.last {
            Last::Start => true,
            Last::Punct(c) => c != ')' && c != ']' && c != '}',
            Last::Word => EXPRESSION_KEYWORDS.contains(&self.last_word.as_str()),
            Last::Value => false,
        }
    }

    fn scan_word(&mut self) {
        let start = self.pos;
        // A number keeps its decimal point, so `1.5` stays one token.
        let numeric = self.chars[start].is_ascii_digit();
        while let Some(c) = self.peek(0) {
            if c.is_alphanumeric() || c == '_' || c == '$' || (numeric && c == '.') {
                self.pos += 1;
            } else {
                break;
            }
        }
        let word: String = self.chars[start..self.pos].iter().collect();
        if word.starts_with(|c: char| c.is_ascii_digit()) {
            self.last = Last::Value;
        } else {
            self.last = Last::Word;
            self.last_word = word;
        }
    }

    fn close(&mut self, c: char) -> Result<(), String> {
        let at = self.pos;
        let expected = match self.stack.pop() {
            None => return Err(format!("\"{c}\" at character {} closes nothing", at + 1)),
            Some(Open::Paren(_)) => ')',
            Some(Open::Bracket(_)) => ']',
            Some(Open::Brace(_)) => '}',
            Some(Open::TemplateExpr(start)) => {
                if c != '}' {
                    return Err(format!(
                        "\"{c}\" at character {} inside the template expression opened at \
                         character {}",
                        at + 1,
                        start + 1
                    ));
                }
                self.pos += 1;
                return self.scan_template(start);
            }
        };
        if c != expected {
            return Err(format!(
                "\"{c}\" at character {} where \"{expected}\" was expected",
                at + 1
            ));
        }
        self.pos += 1;
        self.last = Last::Punct(c);
        Ok(())
    }

    fn skip_line_comment(&mut self) {
        while let Some(c) = self.peek(0) {
            if c == '\n' {
                break;
            }
            self.pos += 1;
        }
    }

    fn skip_block_comment(&mut self) -> Result<(), String> {
        let start = self.pos;
        self.pos += 2;
        while let Some(c) = self.peek(0) {
            if c == '*' && self.peek(1) == Some('/') {
                self.pos += 2;
                return Ok(());
            }
            self.pos += 1;
        }
        Err(format!(
            "the comment opened at character {} is never closed",
            start + 1
        ))
    }

    fn skip_string(&mut self, quote: char) -> Result<(), String> {
        let start = self.pos;
        self.pos += 1;
        while let Some(c) = self.peek(0) {
            match c {
                '\\' => self.pos += 2,
                '\n' => break,
                c if c == quote => {
                    self.pos += 1;
                    return Ok(());
                }
                _ => self.pos += 1,
            }
        }
        Err(format!(
            "the string opened with {quote} at character {} is never closed",
            start + 1
        ))
    }

    /// Scans template text from `self.pos` up to the closing backtick or the next `${`.
    fn scan_template(&mut self, start: usize) -> Result<(), String> {
        while let Some(c) = self.peek(0) {
            match c {
                '\\' => self.pos += 2,
                '`' => {
                    self.pos += 1;
                    self.last = Last::Value;
                    return Ok(());
                }
                '$' if self.peek(1) == Some('{') => {
                    self.stack.push(Open::TemplateExpr(self.pos));
                    self.pos += 2;
                    self.last = Last::Punct('{');
                    return Ok(());
                }
                _ => self.pos += 1,
            }
        }
        Err(format!(
            "the template literal opened at character {} is never closed",
            start + 1
        ))
    }

    /// Tries to read a regex literal at `/`; on failure nothing is consumed and the `/` is
    /// taken as division, so an ambiguous slash never produces an error.
    fn try_regex(&mut self) -> bool {
        let mut i = self.pos + 1;
        let mut in_class = false;
        while let Some(&c) = self.chars.get(i) {
            match c {
                '\\' => i += 2,
                '\n' => return false,
                '[' => {
                    in_class = true;
                    i += 1;
                }
                ']' => {
                    in_class = false;
                    i += 1;
                }
                '/' if !in_class => {
                    if i == self.pos + 1 {
                        return false;
                    }
                    i += 1;
                    while self.chars.get(i).is_some_and(|c| c.is_ascii_alphabetic()) {
                        i += 1;
                    }
                    self.pos = i;
                    return true;
                }
                _ => i += 1,
            }
        }
        false
    }

    fn check_ending(&self) -> Result<(), String> {
        let tail: String = {
            let mut end = self.chars.len();
            while end > 0 && self.chars[end - 1].is_whitespace() {
                end -= 1;
            }
            self.chars[end.saturating_sub(3)..end].iter().collect()
        };
        let dangling = ["=>", "&&", "||", "??"]
            .iter()
            .find(|op| tail.ends_with(*op))
            .map(|op| op.to_string())
            .or_else(|| {
                let last = tail.chars().last()?;
                let before = tail.chars().rev().nth(1);
                match last {
                    '=' | ',' | '?' | ':' => Some(last.to_string()),
                    '.' if before != Some('.') || tail.ends_with("...") => Some(last.to_string()),
                    '+' | '-' if before != Some(last) => Some(last.to_string()),
                    _ => None,
                }
            });
        match (self.last, dangling) {
            (Last::Punct(_), Some(op)) => Err(format!("the code ends after \"{op}\"")),
            _ => Ok(()),
        }
    }
}

/// True for a JavaScript identifier as the bundler accepts it: `[A-Za-z_$][A-Za-z0-9_$]*`.
pub(crate) fn is_identifier(text: &str) -> bool {
    let mut chars = text.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == '$')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$')
}

#[cfg(test)]
mod tests {
    use super::check_syntax;

    #[test]
    fn accepts_realistic_inline_functions() {
        for code in [
            "(event) => (String(event.name || '').startsWith('debug ') ? false : { event })",
            "(e) => e.entity === 'product'",
            "(event) => { const g = globalThis; g.n = (g.n || 0) + 1; if (g.n % 10 === 0) \
             console.error('[noop] ' + g.n); }",
            "async (ctx) => { const q = encodeURIComponent(`a${1}`); \
             const r = await fetch(`${ctx.url}/x?y=${q}&z=${`n${ctx.n}`}`); return r.ok; }",
            "(v) => /^[a-z]+\\/(\\d+)$/i.test(v) ? v.split('/')[1] : v",
            "function (a, b) { return a / b / 2; } // trailing comment",
            "(x) => { /* block { not a brace */ return x++; }",
            "(s) => s.replace(/[}{]/g, '')",
            "x => x",
            "(a) => a ?? { b: [1, 2, 3] }",
        ] {
            assert_eq!(check_syntax(code), Ok(()), "{code}");
        }
    }

    #[test]
    fn refuses_code_that_can_never_compile() {
        for (code, needle) in [
            ("", "empty"),
            ("   ", "empty"),
            (
                "(event) => { return event;",
                "\"{\" at character 12 is never closed",
            ),
            ("(event) => event)", "closes nothing"),
            ("(e) => [e}", "where \"]\" was expected"),
            ("(e) => 'unterminated", "string opened with '"),
            ("(e) => `a ${e.b`", "never closed"),
            ("(e) => e /* open comment", "comment opened"),
            ("(event) =>", "ends after \"=>\""),
            ("(a) => a &&", "ends after \"&&\""),
            ("(a) => a.", "ends after \".\""),
        ] {
            let error = check_syntax(code).expect_err(code);
            assert!(error.contains(needle), "{code}: {error}");
        }
    }

    #[test]
    fn never_panics_on_odd_input() {
        for code in [
            "\\", "`\\", "'\\", "/", "/[", "${", "`${", "}`", "/*", "ü/ü", "a/b/c", ".", "...",
        ] {
            let _ = check_syntax(code);
        }
    }
}
