//! The pixel GET: a query string in bracket syntax becomes an event object, the way walkerOS
//! `requestToData` and `castValue` do it (`name=page%20view&data[title]=Home&data[n]=1` →
//! `{"name":"page view","data":{"title":"Home","n":1}}`).
//!
//! Values are cast like JavaScript's `Number()`: `"1"` → 1, `"9.99"` → 9.99, `"0x1A"` → 26,
//! `" "` → 0, `"true"`/`"false"` → booleans; everything else stays a string. Array indices
//! (`nested[0][entity]=product`) build arrays; JavaScript would grow an array to any index it is
//! given, so indices above [`MAX_ARRAY_INDEX`] are dropped here instead.

use serde_json::{Map, Number, Value};

/// Largest array index a query may address. Arbitrary: far above what an event needs, low
/// enough that `a[999999999]=1` cannot make the host build a billion-element array.
pub const MAX_ARRAY_INDEX: usize = 999;

/// The transparent 1×1 GIF every pixel request is answered with: 42 bytes (the walkerOS source
/// calls it 43, but its base64 decodes to 42, and that is what the original sends).
pub const TRANSPARENT_GIF: &[u8] = &[
    0x47, 0x49, 0x46, 0x38, 0x39, 0x61, 0x01, 0x00, 0x01, 0x00, 0x80, 0x00, 0x00, 0x00, 0x00, 0x00,
    0xff, 0xff, 0xff, 0x21, 0xf9, 0x04, 0x01, 0x00, 0x00, 0x00, 0x00, 0x2c, 0x00, 0x00, 0x00, 0x00,
    0x01, 0x00, 0x01, 0x00, 0x00, 0x02, 0x01, 0x44, 0x00, 0x3b,
];

/// Parses the request target of a pixel GET (path and query, as `req.url` in Express) into an
/// event object. As in walkerOS, the part between the first and a second `?` is parsed, and a
/// target without a query is parsed whole (`/collect` → `{"/collect":""}`).
pub fn request_to_data(target: &str) -> Value {
    let query = match target.split('?').nth(1) {
        Some(query) if !query.is_empty() => query,
        _ => target,
    };
    let query = query.strip_prefix('?').unwrap_or(query);

    let mut root = Value::Object(Map::new());
    for (key, value) in form_urlencoded::parse(query.as_bytes()) {
        let keys: Vec<&str> = key
            .split(['[', ']'])
            .filter(|part| !part.is_empty())
            .collect();
        if keys.is_empty() {
            continue;
        }
        assign(&mut root, &keys, cast_value(&value));
    }
    root
}

/// Sets `keys` (a bracket path) to `value` below `root`, creating containers on the way: an
/// array when the next key is numeric, an object otherwise. A truthy non-container already in
/// the way stops the assignment, as it does in JavaScript.
fn assign(root: &mut Value, keys: &[&str], value: Value) {
    let mut current = root;
    for (i, key) in keys.iter().enumerate() {
        let last = i + 1 == keys.len();
        let fresh = || match keys.get(i + 1).and_then(|next| parse_int(next)) {
            Some(_) => Value::Array(Vec::new()),
            None => Value::Object(Map::new()),
        };
        current = match current {
            Value::Array(items) => {
                // JavaScript stores a negative or non-numeric "index" as a property, which
                // JSON.stringify never shows: the value goes nowhere.
                let Some(index) = parse_int(key)
                    .and_then(|n| usize::try_from(n).ok())
                    .filter(|n| *n <= MAX_ARRAY_INDEX)
                else {
                    return;
                };
                if items.len() <= index {
                    items.resize(index + 1, Value::Null);
                }
                let slot = &mut items[index];
                if last {
                    *slot = value;
                    return;
                }
                if !truthy(slot) {
                    *slot = fresh();
                }
                slot
            }
            Value::Object(map) => {
                if last {
                    map.insert((*key).to_string(), value);
                    return;
                }
                let slot = map.entry((*key).to_string()).or_insert(Value::Null);
                if !truthy(slot) {
                    *slot = fresh();
                }
                slot
            }
            _ => return,
        };
    }
}

/// JavaScript truthiness of a value `castValue` can produce (holes are `null`).
fn truthy(value: &Value) -> bool {
    match value {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(_) | Value::Object(_) => true,
    }
}

/// `parseInt(text, 10)`: optional whitespace and sign, then the leading digits.
fn parse_int(text: &str) -> Option<i64> {
    let text = text.trim_start_matches(is_js_whitespace);
    let (negative, digits) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    let end = digits
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(digits.len());
    if end == 0 {
        return None;
    }
    // Saturate: an index that large is rejected by the caller anyway.
    let n = digits[..end].parse::<i64>().unwrap_or(i64::MAX);
    Some(if negative { -n } else { n })
}

/// walkerOS `castValue` for a query value.
pub fn cast_value(text: &str) -> Value {
    match text {
        "true" => return Value::Bool(true),
        "false" => return Value::Bool(false),
        "" => return Value::String(String::new()),
        _ => {}
    }
    match js_string_to_number(text) {
        Some(n) => js_number(n),
        None => Value::String(text.to_string()),
    }
}

/// A JavaScript number as JSON: integers without a fraction, non-finite values as `null` (what
/// `JSON.stringify` writes for them).
fn js_number(n: f64) -> Value {
    if !n.is_finite() {
        return Value::Null;
    }
    if n.fract() == 0.0 && n.abs() < 9.007_199_254_740_992e15 {
        return Value::Number(Number::from(n as i64));
    }
    Number::from_f64(n).map_or(Value::Null, Value::Number)
}

fn is_js_whitespace(c: char) -> bool {
    matches!(
        c,
        '\t' | '\n' | '\u{b}' | '\u{c}' | '\r' | ' ' | '\u{a0}' | '\u{1680}' | '\u{2000}'
            ..='\u{200a}'
                | '\u{2028}'
                | '\u{2029}'
                | '\u{202f}'
                | '\u{205f}'
                | '\u{3000}'
                | '\u{feff}'
    )
}

/// JavaScript's `Number(text)` for a string, `None` where it gives `NaN`.
pub fn js_string_to_number(text: &str) -> Option<f64> {
    let text = text.trim_matches(is_js_whitespace);
    if text.is_empty() {
        return Some(0.0);
    }

    // Hexadecimal, octal and binary literals take no sign.
    let radix = match text.get(..2) {
        Some("0x" | "0X") => Some(16),
        Some("0o" | "0O") => Some(8),
        Some("0b" | "0B") => Some(2),
        _ => None,
    };
    if let Some(radix) = radix {
        let digits = &text[2..];
        if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
            return None;
        }
        return Some(
            digits
                .chars()
                .filter_map(|c| c.to_digit(radix))
                .fold(0.0, |acc, d| acc * f64::from(radix) + f64::from(d)),
        );
    }

    let unsigned = text.strip_prefix(['+', '-']).unwrap_or(text);
    if unsigned == "Infinity" {
        return Some(if text.starts_with('-') {
            f64::NEG_INFINITY
        } else {
            f64::INFINITY
        });
    }
    is_decimal_literal(unsigned)
        .then(|| text.parse::<f64>().ok())
        .flatten()
}

/// `digits [. digits?] [exponent]` or `. digits [exponent]`, which is what JavaScript accepts
/// (Rust's parser also takes `inf` and `nan`, which JavaScript does not).
fn is_decimal_literal(text: &str) -> bool {
    let bytes = text.as_bytes();
    let mut i = 0;
    let digits = |i: &mut usize| {
        let start = *i;
        while *i < bytes.len() && bytes[*i].is_ascii_digit() {
            *i += 1;
        }
        *i - start
    };
    let whole = digits(&mut i);
    let mut fraction = 0;
    if i < bytes.len() && bytes[i] == b'.' {
        i += 1;
        fraction = digits(&mut i);
    }
    if whole == 0 && fraction == 0 {
        return false;
    }
    if i < bytes.len() && (bytes[i] == b'e' || bytes[i] == b'E') {
        i += 1;
        if i < bytes.len() && (bytes[i] == b'+' || bytes[i] == b'-') {
            i += 1;
        }
        if digits(&mut i) == 0 {
            return false;
        }
    }
    i == bytes.len()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn gif_is_the_42_byte_pixel_walkeros_sends() {
        use base64::Engine;
        let expected = base64::engine::general_purpose::STANDARD
            .decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")
            .unwrap();
        assert_eq!(TRANSPARENT_GIF, expected.as_slice());
        assert_eq!(TRANSPARENT_GIF.len(), 42);
    }

    #[test]
    fn bracket_query_becomes_a_nested_event_with_cast_values() {
        let data = request_to_data(
            "/collect?name=page%20view&data[title]=Home&data[n]=1&data[price]=9.99\
             &data[ok]=true&data[off]=false&nested[0][entity]=product&nested[0][data][id]=0123\
             &user[id]=us3r+1",
        );
        assert_eq!(
            data,
            json!({
                "name": "page view",
                "data": {"title": "Home", "n": 1, "price": 9.99, "ok": true, "off": false},
                "nested": [{"entity": "product", "data": {"id": 123}}],
                "user": {"id": "us3r 1"}
            })
        );
    }

    #[test]
    fn target_without_query_is_parsed_whole_as_walkeros_does() {
        assert_eq!(request_to_data("/collect"), json!({"/collect": ""}));
        assert_eq!(request_to_data("/collect?"), json!({"/collect?": ""}));
    }

    #[test]
    fn arrays_keep_holes_and_ignore_bad_or_huge_indices() {
        assert_eq!(
            request_to_data("/c?a[2]=x&a[0]=y"),
            json!({"a": ["y", null, "x"]})
        );
        assert_eq!(request_to_data("/c?a[0]=1&a[x]=2"), json!({"a": [1]}));
        assert_eq!(request_to_data("/c?a[0]=1&a[-1]=2"), json!({"a": [1]}));
        assert_eq!(
            request_to_data("/c?a[0]=1&a[999999999]=2"),
            json!({"a": [1]})
        );
    }

    #[test]
    fn a_truthy_value_in_the_way_stops_deeper_keys_and_a_falsy_one_is_replaced() {
        assert_eq!(
            request_to_data("/c?a=x&a[b]=y"),
            json!({"a": "x"}),
            "a string blocks a[b]"
        );
        assert_eq!(
            request_to_data("/c?a=0&a[b]=y"),
            json!({"a": {"b": "y"}}),
            "0 is falsy and replaced"
        );
        assert_eq!(request_to_data("/c?a=1&a=2"), json!({"a": 2}), "last wins");
    }

    #[test]
    fn values_cast_like_javascript_number() {
        let cases = [
            ("1", json!(1)),
            ("-1", json!(-1)),
            ("9.99", json!(9.99)),
            ("1e3", json!(1000)),
            (".5", json!(0.5)),
            ("5.", json!(5)),
            ("0x1A", json!(26)),
            ("0b101", json!(5)),
            (" 12 ", json!(12)),
            (" ", json!(0)),
            ("Infinity", Value::Null),
            ("1_000", json!("1_000")),
            ("-0x1", json!("-0x1")),
            ("inf", json!("inf")),
            ("NaN", json!("NaN")),
            ("12px", json!("12px")),
            ("", json!("")),
            ("true", json!(true)),
            ("True", json!("True")),
        ];
        for (input, expected) in cases {
            assert_eq!(cast_value(input), expected, "castValue({input:?})");
        }
    }
}
