//! jq expressions (the jaq crates): compiled once when a config is read, so a typo is reported
//! when the DAG file loads, then run on every record.

use std::{fmt, sync::Arc};

use jaq_core::{
    Ctx, Vars,
    compile::Undefined,
    data::JustLut,
    load::{self, Arena, File, Loader},
};
pub(crate) use jaq_json::Val;
use serde::{Deserialize, Deserializer};

mod reads;

type Data = JustLut<Val>;

/// A jq expression that does not compile, fails on a value, or gives the wrong number of
/// values; or a document that is not JSON.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JqError {
    #[error("jq expression {code:?}: {message}")]
    Compile { code: String, message: String },
    #[error("jq {code:?}: {message}")]
    Run { code: Arc<str>, message: String },
    #[error("jq {code:?} must give exactly one value, gave {count}")]
    NotOne { code: Arc<str>, count: usize },
    #[error("invalid JSON: {0}")]
    Json(String),
}

/// A compiled jq expression; cheap to clone and shareable between threads.
#[derive(Clone)]
pub struct JqFilter {
    source: Arc<str>,
    filter: Arc<jaq_core::Filter<Data>>,
    /// The keys of a plain path (`.a.b`), looked up without running jaq when they can be.
    plain: Option<Arc<[Val]>>,
    /// The paths it reads its input through, when it reads nothing else of it.
    input_paths: Option<Arc<[Vec<String>]>>,
    /// Whether it gives the same outputs whenever given the same input.
    pure: bool,
}

impl fmt::Debug for JqFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "JqFilter({:?})", self.source)
    }
}

impl<'de> Deserialize<'de> for JqFilter {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let source = String::deserialize(deserializer)?;
        Self::compile(&source).map_err(serde::de::Error::custom)
    }
}

impl JqFilter {
    /// Compiles `code` with jq's standard library; the error names the position and problem.
    pub fn compile(code: &str) -> Result<Self, JqError> {
        let defs = jaq_core::defs()
            .chain(jaq_std::defs())
            .chain(jaq_json::defs());
        let funs = jaq_core::funs::<Data>()
            .chain(jaq_std::funs::<Data>())
            .chain(jaq_json::funs::<Data>());
        let arena = Arena::default();
        let modules = Loader::new(defs)
            .load(&arena, File { code, path: () })
            .map_err(|errors| JqError::Compile {
                code: code.into(),
                message: load_errors(&errors),
            })?;
        let filter = jaq_core::Compiler::default()
            .with_funs(funs)
            .compile(modules)
            .map_err(|errors| JqError::Compile {
                code: code.into(),
                message: compile_errors(&errors),
            })?;
        let plain = plain_keys(code)
            .map(|keys| keys.into_iter().map(|k| Val::from(k.to_owned())).collect());
        Ok(Self {
            source: code.into(),
            filter: Arc::new(filter),
            plain,
            input_paths: reads::input_paths(code).map(Arc::from),
            pure: reads::is_pure(code),
        })
    }

    /// The value of a plain path on an object or null, as jq gives it (null where a key is
    /// missing); None for anything else, which jaq then runs on to give its own error.
    fn at_plain_path(&self, input: &Val) -> Option<Val> {
        let mut current = input;
        for key in self.plain.as_deref()? {
            match current {
                Val::Obj(map) => match map.get(key) {
                    Some(value) => current = value,
                    None => return Some(Val::Null),
                },
                Val::Null => return Some(Val::Null),
                _ => return None,
            }
        }
        Some(current.clone())
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    /// The paths of plain keys (`.a.b`) the expression reads its input through, when it
    /// reads nothing else of it (`"x." + (.a | ascii_downcase)` reads `.a`; `keys` may read
    /// anything).
    pub(crate) fn input_paths(&self) -> Option<&[Vec<String>]> {
        self.input_paths.as_deref()
    }

    /// Whether the expression gives the same outputs whenever given the same input (it reads
    /// neither the clock nor other inputs, and writes nothing to stderr).
    pub(crate) fn is_pure(&self) -> bool {
        self.pure
    }

    /// Every output of the expression on `input`, or the first error.
    pub fn run(&self, input: Val) -> Result<Vec<Val>, JqError> {
        let mut outputs = Vec::new();
        self.for_each(input, |value| outputs.push(value))?;
        Ok(outputs)
    }

    /// Calls `emit` on every output of the expression on `input`; stops at the first error.
    pub fn for_each(&self, input: Val, mut emit: impl FnMut(Val)) -> Result<(), JqError> {
        if let Some(value) = self.at_plain_path(&input) {
            emit(value);
            return Ok(());
        }
        let ctx = Ctx::<Data>::new(&self.filter.lut, Vars::new([]));
        for item in self.filter.id.run((ctx, input)) {
            match item {
                Ok(value) => emit(value),
                Err(exception) => {
                    let fail = |message: String| JqError::Run {
                        code: self.source.clone(),
                        message,
                    };
                    return match exception.get_err() {
                        Ok(error) => Err(fail(error.to_string())),
                        Err(exception) => match exception.get_halt() {
                            Ok(0) => Ok(()),
                            Ok(code) => Err(fail(format!("halt {code}"))),
                            Err(_) => Err(fail("internal error".into())),
                        },
                    };
                }
            }
        }
        Ok(())
    }

    /// The single output of the expression (e.g. a key or a topic name); an error when it
    /// gives none or several.
    pub fn one(&self, input: Val) -> Result<Val, JqError> {
        if let Some(value) = self.at_plain_path(&input) {
            return Ok(value);
        }
        let mut outputs = self.run(input)?;
        match outputs.len() {
            1 => Ok(outputs.remove(0)),
            count => Err(JqError::NotOne {
                code: self.source.clone(),
                count,
            }),
        }
    }
}

/// Text of a value used as a key or name: strings as they are, anything else as JSON.
pub(crate) fn as_text(value: &Val) -> String {
    match value {
        Val::TStr(bytes) | Val::BStr(bytes) => String::from_utf8_lossy(bytes).into_owned(),
        other => other.to_string(),
    }
}

/// A value as compact JSON bytes (jaq's writer straight into a buffer: faster than
/// formatting through `Display`).
pub(crate) fn to_json_bytes(value: &Val) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    // Writing into a Vec cannot fail.
    let _ = jaq_json::write::write(&mut out, &jaq_json::write::Pp::default(), 0, value);
    out
}

/// The keys of `path` when it is a plain path (`.a.b_2`; `.` gives none), else none.
pub(crate) fn plain_keys(path: &str) -> Option<Vec<&str>> {
    let path = path.trim();
    if path == "." {
        return Some(Vec::new());
    }
    let keys: Vec<&str> = path.strip_prefix('.')?.split('.').collect();
    let plain = |key: &&str| {
        key.chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    };
    keys.iter().all(plain).then_some(keys)
}

/// Parses one JSON document straight into a jq value.
pub(crate) fn parse_json(bytes: &[u8]) -> Result<Val, JqError> {
    jaq_json::read::parse_single(bytes).map_err(|e| JqError::Json(e.to_string()))
}

/// Converts a jq value to serde_json (non-finite numbers become null).
pub(crate) fn to_json(value: &Val) -> serde_json::Value {
    use serde_json::Value;
    match value {
        Val::Null => Value::Null,
        Val::Bool(b) => Value::Bool(*b),
        Val::Num(n) => number_to_json(n),
        Val::TStr(s) | Val::BStr(s) => Value::String(String::from_utf8_lossy(s).into_owned()),
        Val::Arr(items) => Value::Array(items.iter().map(to_json).collect()),
        Val::Obj(map) => Value::Object(map.iter().map(|(k, v)| (as_text(k), to_json(v))).collect()),
    }
}

/// A jq number as f64 (integers beyond 2^53 and long decimals rounded).
pub(crate) fn number_to_f64(number: &jaq_json::Num) -> Result<f64, String> {
    match number {
        jaq_json::Num::Int(i) => Ok(*i as f64),
        jaq_json::Num::Float(f) => Ok(*f),
        other => other.to_string().parse::<f64>().map_err(|e| e.to_string()),
    }
}

fn number_to_json(number: &jaq_json::Num) -> serde_json::Value {
    let float = |f: f64| {
        serde_json::Number::from_f64(f).map_or(serde_json::Value::Null, serde_json::Value::Number)
    };
    match number {
        jaq_json::Num::Int(i) => serde_json::Value::from(*i as i64),
        jaq_json::Num::Float(f) => float(*f),
        other => {
            let text = other.to_string();
            text.parse::<serde_json::Number>()
                .map(serde_json::Value::Number)
                .unwrap_or_else(|_| text.parse::<f64>().map_or(serde_json::Value::Null, float))
        }
    }
}

/// Converts serde_json to a jq value (records arrive as bytes and are parsed straight into
/// jq values; tests build them from JSON).
#[cfg(test)]
pub(crate) fn from_json(value: &serde_json::Value) -> Val {
    use serde_json::Value;
    match value {
        Value::Null => Val::Null,
        Value::Bool(b) => Val::Bool(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => Val::Num(jaq_json::Num::from_integral(i)),
            None => Val::from(n.as_f64().unwrap_or(f64::NAN)),
        },
        Value::String(s) => Val::from(s.clone()),
        Value::Array(items) => items.iter().map(from_json).collect(),
        Value::Object(map) => Val::obj(
            map.iter()
                .map(|(k, v)| (Val::from(k.clone()), from_json(v)))
                .collect(),
        ),
    }
}

/// Line and column of `part`, a slice of `code`.
fn position(code: &str, part: &str) -> String {
    let start = (part.as_ptr() as usize).wrapping_sub(code.as_ptr() as usize);
    match code.get(..start) {
        Some(before) => format!(
            "line {}, column {}",
            before.matches('\n').count() + 1,
            before.rsplit('\n').next().unwrap_or("").chars().count() + 1
        ),
        None => "end of input".into(),
    }
}

fn load_errors(errors: &load::Errors<&str, ()>) -> String {
    let mut messages = Vec::new();
    for (file, error) in errors {
        match error {
            load::Error::Io(errors) => messages.extend(
                errors
                    .iter()
                    .map(|(path, e)| format!("cannot load module {path}: {e}")),
            ),
            load::Error::Lex(errors) => messages.extend(errors.iter().map(|(expected, at)| {
                format!(
                    "at {}: expected {}",
                    position(file.code, at),
                    expected.as_str()
                )
            })),
            load::Error::Parse(errors) => {
                messages.extend(errors.iter().map(|(expected, found)| {
                    let shown = if found.is_empty() {
                        "end of input".to_owned()
                    } else {
                        format!("{found:?}")
                    };
                    format!(
                        "at {}: expected {}, found {shown}",
                        position(file.code, found),
                        expected.as_str()
                    )
                }))
            }
        }
    }
    messages.join("; ")
}

fn compile_errors(errors: &jaq_core::compile::Errors<&str, ()>) -> String {
    errors
        .iter()
        .flat_map(|(file, errors)| {
            errors.iter().map(move |(name, undefined)| {
                let arity = match undefined {
                    Undefined::Filter(n) => format!("/{n}"),
                    _ => String::new(),
                };
                format!(
                    "undefined {} {name}{arity} at {}",
                    undefined.as_str(),
                    position(file.code, name)
                )
            })
        })
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_bytes_are_the_compact_json_of_the_value() {
        let value = parse_json(
            br#"{"name": "Zo\u00eb \"Z\"\n\t\u0001", "n": [1, 2.5, -3e2, null, true], "e": {}}"#,
        )
        .unwrap();
        let bytes = to_json_bytes(&value);
        assert_eq!(bytes, value.to_string().into_bytes());
        let back: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(back["name"], "Zo\u{eb} \"Z\"\n\t\u{1}");
        assert_eq!(back["n"][2], -300.0);
    }

    #[test]
    fn plain_paths_give_what_jaq_gives() {
        let inputs = [
            r#"{"a": {"b": [1, {"c": 2}]}, "x": null}"#,
            r#"{"a": {"b": "text", "c": {"d": true}}}"#,
            r#"{"a": null}"#,
            r#"{"a": 3}"#,
            r#"{"a": {"b": 1.5e300}}"#,
            r#"{"b": 1}"#,
            r#"{"a": [1, 2]}"#,
            r#"{"a": "text"}"#,
            "null",
            "[1]",
            "7",
            r#""text""#,
        ];
        for path in [".", ".a", ".a.b", ".a.c.d", ".x.y", ".missing.b"] {
            let plain = JqFilter::compile(path).unwrap();
            assert!(plain.plain.is_some(), "{path} is a plain path");
            // The same path in parentheses is no plain path: jaq runs it.
            let jaq = JqFilter::compile(&format!("({path})")).unwrap();
            assert!(jaq.plain.is_none());
            for input in inputs {
                let value = parse_json(input.as_bytes()).unwrap();
                let strip = |r: Result<Vec<Val>, JqError>| {
                    r.map_err(|e| match e {
                        JqError::Run { message, .. } => message,
                        other => other.to_string(),
                    })
                };
                assert_eq!(
                    strip(plain.run(value.clone())),
                    strip(jaq.run(value.clone())),
                    "{path} on {input}"
                );
                assert_eq!(
                    plain.one(value.clone()).ok(),
                    jaq.one(value).ok(),
                    "one: {path} on {input}"
                );
            }
        }
    }

    fn run(code: &str, input: serde_json::Value) -> Vec<serde_json::Value> {
        JqFilter::compile(code)
            .unwrap()
            .run(from_json(&input))
            .unwrap()
            .iter()
            .map(to_json)
            .collect()
    }

    #[test]
    fn selects_reshapes_and_explodes() {
        let users =
            serde_json::json!({"results": [{"nat": "US", "age": 30}, {"nat": "FR", "age": 40}]});
        assert_eq!(run(".results[] | .nat", users.clone()), ["US", "FR"]);
        assert_eq!(
            run(
                ".results[] | select(.age > 35) | {n: (.nat | ascii_downcase)}",
                users
            ),
            [serde_json::json!({"n": "fr"})]
        );
        assert_eq!(
            run(
                r#".text | split(" ")[]"#,
                serde_json::json!({"text": "a b c"})
            ),
            ["a", "b", "c"]
        );
        assert_eq!(
            run(
                r#""users.\(.nat | ascii_downcase)""#,
                serde_json::json!({"nat": "GB"})
            ),
            ["users.gb"]
        );
    }

    #[test]
    fn syntax_and_undefined_errors_say_where() {
        let error = JqFilter::compile(".a | ").unwrap_err().to_string();
        assert!(error.contains("\".a | \""), "{error}");
        let error = JqFilter::compile(".a | nosuchfn").unwrap_err();
        assert!(matches!(&error, JqError::Compile { code, .. } if code == ".a | nosuchfn"));
        let error = error.to_string();
        assert!(
            error.contains("nosuchfn") && error.contains("column 6"),
            "{error}"
        );
    }

    #[test]
    fn runtime_errors_are_messages() {
        let filter = JqFilter::compile(".a.b").unwrap();
        let error = filter
            .run(from_json(&serde_json::json!({"a": "text"})))
            .unwrap_err()
            .to_string();
        assert!(error.contains(".a.b"), "{error}");
        let error = JqFilter::compile(".[]")
            .unwrap()
            .one(from_json(&serde_json::json!([1, 2])))
            .unwrap_err();
        assert!(matches!(error, JqError::NotOne { count: 2, .. }), "{error}");
    }

    #[test]
    fn values_round_trip_and_text_keys() {
        let value = serde_json::json!({"a": [1, 2.5, "x", null, true], "b": {"c": -3}});
        assert_eq!(to_json(&from_json(&value)), value);
        let parsed = parse_json(br#"{"k": "v"}"#).unwrap();
        assert_eq!(
            as_text(&JqFilter::compile(".k").unwrap().one(parsed).unwrap()),
            "v"
        );
        assert_eq!(as_text(&from_json(&serde_json::json!(7))), "7");
        assert!(matches!(parse_json(b"{oops"), Err(JqError::Json(_))));
    }
}
