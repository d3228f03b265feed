//! Simulated records: each field drawn by a generator, from a seeded random source.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use rand::{Rng as _, SeedableRng as _, rngs::StdRng};
use serde_json::Value;

/// How one field of a record is drawn.
#[derive(Debug, Clone, PartialEq)]
pub enum Generator {
    /// One of `values`, by weight.
    Pick {
        values: Vec<Value>,
        /// Running totals of the weights (all 1 without `weights`).
        cumulative: Vec<f64>,
    },
    /// An integer in `[low, high]`.
    Int {
        low: i64,
        high: i64,
    },
    /// A number in `[low, high)`, rounded to `decimals` when set.
    Float {
        low: f64,
        high: f64,
        decimals: Option<u32>,
    },
    /// The same value every time.
    Value(Value),
    Uuid,
    /// The time of the run, RFC 3339.
    Now,
    /// The time of the run, seconds since the epoch.
    NowEpoch,
    /// 0, 1, 2, ... within a run.
    Sequence,
    /// Null with probability `nulls`, else drawn by `of` (TOML has no null to pick).
    Nullable {
        nulls: f64,
        of: Box<Generator>,
    },
}

const HELPERS: &str = "\"uuid\", \"now\", \"now_epoch\", \"sequence\"";
const TABLES: &str = "{ pick = [...], weights = [...] }, { int = [low, high] }, { float = [low, high], decimals = 2 } or { value = ... }, each with an optional nulls = 0.1";

impl Generator {
    /// Reads a field's spec as written in the DAG file; the error says what is wrong.
    pub fn parse(spec: &Value) -> Result<Self, String> {
        match spec {
            Value::String(name) => match name.as_str() {
                "uuid" => Ok(Self::Uuid),
                "now" => Ok(Self::Now),
                "now_epoch" => Ok(Self::NowEpoch),
                "sequence" => Ok(Self::Sequence),
                other => Err(format!(
                    "unknown generator {other:?}: use {HELPERS}, or a table: {TABLES}"
                )),
            },
            Value::Object(table) => Self::parse_table(table),
            other => Err(format!(
                "expected a generator, got {other}: use {HELPERS}, or {TABLES}"
            )),
        }
    }

    fn parse_table(table: &serde_json::Map<String, Value>) -> Result<Self, String> {
        let Some(nulls) = table.get("nulls") else {
            return Self::parse_kind(table);
        };
        let nulls = nulls
            .as_f64()
            .filter(|p| (0.0..=1.0).contains(p))
            .ok_or("nulls must be a probability from 0 to 1")?;
        let mut rest = table.clone();
        rest.remove("nulls");
        Ok(Self::Nullable {
            nulls,
            of: Box::new(Self::parse_kind(&rest)?),
        })
    }

    fn parse_kind(table: &serde_json::Map<String, Value>) -> Result<Self, String> {
        let kinds: Vec<&str> = ["pick", "int", "float", "value"]
            .into_iter()
            .filter(|k| table.contains_key(*k))
            .collect();
        let [kind] = kinds[..] else {
            return Err(format!(
                "give exactly one of pick, int, float, value: {TABLES}"
            ));
        };
        let allowed: &[&str] = match kind {
            "pick" => &["pick", "weights"],
            "float" => &["float", "decimals"],
            _ => &[kind],
        };
        if let Some(extra) = table.keys().find(|k| !allowed.contains(&k.as_str())) {
            return Err(format!("unknown key `{extra}` for a `{kind}` generator"));
        }
        match kind {
            "pick" => Self::pick(&table["pick"], table.get("weights")),
            "int" => {
                let [low, high] = pair(&table["int"], "int", Value::as_i64)?;
                Ok(Self::Int { low, high })
            }
            "float" => {
                let [low, high] = pair(&table["float"], "float", Value::as_f64)?;
                let decimals = match table.get("decimals") {
                    None => None,
                    Some(d) => Some(
                        d.as_u64()
                            .filter(|d| *d <= 12)
                            .ok_or("decimals must be an integer from 0 to 12")?
                            as u32,
                    ),
                };
                Ok(Self::Float {
                    low,
                    high,
                    decimals,
                })
            }
            _ => Ok(Self::Value(table["value"].clone())),
        }
    }

    fn pick(values: &Value, weights: Option<&Value>) -> Result<Self, String> {
        let values = values
            .as_array()
            .filter(|v| !v.is_empty())
            .ok_or("pick must be a non-empty list of values")?
            .clone();
        let weights: Vec<f64> = match weights {
            None => vec![1.0; values.len()],
            Some(weights) => weights
                .as_array()
                .and_then(|w| w.iter().map(Value::as_f64).collect::<Option<Vec<_>>>())
                .ok_or("weights must be a list of numbers")?,
        };
        if weights.len() != values.len() {
            return Err(format!(
                "{} weights for {} values: give one weight per value",
                weights.len(),
                values.len()
            ));
        }
        if weights.iter().any(|w| *w < 0.0 || !w.is_finite()) || weights.iter().sum::<f64>() <= 0.0
        {
            return Err("weights must not be negative, and not all 0".into());
        }
        let cumulative = weights
            .iter()
            .scan(0.0, |total, w| {
                *total += w;
                Some(*total)
            })
            .collect();
        Ok(Self::Pick { values, cumulative })
    }

    fn draw(&self, rng: &mut StdRng, index: u64, now: DateTime<Utc>) -> Value {
        match self {
            Self::Pick { values, cumulative } => {
                let total = cumulative.last().copied().unwrap_or(1.0);
                let at = rng.random::<f64>() * total;
                let chosen = cumulative
                    .iter()
                    .position(|c| at < *c)
                    .unwrap_or(values.len() - 1);
                values[chosen].clone()
            }
            Self::Int { low, high } => Value::from(rng.random_range(*low..=*high)),
            Self::Float {
                low,
                high,
                decimals,
            } => {
                let x = low + rng.random::<f64>() * (high - low);
                let x = match decimals {
                    Some(d) => {
                        let scale = 10f64.powi(*d as i32);
                        (x * scale).round() / scale
                    }
                    None => x,
                };
                serde_json::Number::from_f64(x).map_or(Value::Null, Value::Number)
            }
            Self::Value(value) => value.clone(),
            Self::Uuid => {
                let bytes: [u8; 16] = rng.random();
                Value::from(
                    uuid::Builder::from_random_bytes(bytes)
                        .into_uuid()
                        .to_string(),
                )
            }
            Self::Now => Value::from(now.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)),
            Self::NowEpoch => Value::from(now.timestamp()),
            Self::Sequence => Value::from(index),
            Self::Nullable { nulls, of } => {
                if rng.random::<f64>() < *nulls {
                    Value::Null
                } else {
                    of.draw(rng, index, now)
                }
            }
        }
    }
}

/// `[low, high]` with `low <= high`.
fn pair<T: PartialOrd + Copy>(
    value: &Value,
    kind: &str,
    number: fn(&Value) -> Option<T>,
) -> Result<[T; 2], String> {
    let pair = value
        .as_array()
        .filter(|a| a.len() == 2)
        .and_then(|a| Some([number(&a[0])?, number(&a[1])?]))
        .ok_or_else(|| format!("{kind} must be [low, high] of numbers"))?;
    if pair[0] > pair[1] {
        return Err(format!("{kind}: low is above high"));
    }
    Ok(pair)
}

/// Draws records field by field.
pub(super) struct Records {
    fields: Vec<(String, Generator)>,
    rng: StdRng,
    next: u64,
    now: DateTime<Utc>,
}

impl Records {
    /// Records from parsed generators; the same `seed` draws the same records (but `now`).
    pub(super) fn new(
        fields: Vec<(String, Generator)>,
        seed: Option<u64>,
        now: DateTime<Utc>,
    ) -> Self {
        Self {
            fields,
            rng: seed.map_or_else(StdRng::from_os_rng, StdRng::seed_from_u64),
            next: 0,
            now,
        }
    }
}

impl Iterator for Records {
    type Item = serde_json::Map<String, Value>;

    fn next(&mut self) -> Option<Self::Item> {
        let index = self.next;
        self.next += 1;
        let record = self
            .fields
            .iter()
            .map(|(name, generator)| (name.clone(), generator.draw(&mut self.rng, index, self.now)))
            .collect();
        Some(record)
    }
}

/// Parses every field's generator; the error names the field.
pub(super) fn parse_fields(
    fields: &BTreeMap<String, Value>,
) -> Result<Vec<(String, Generator)>, (String, String)> {
    fields
        .iter()
        .map(|(name, spec)| {
            Generator::parse(spec)
                .map(|g| (name.clone(), g))
                .map_err(|message| (name.clone(), message))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn parse(spec: Value) -> Result<Generator, String> {
        Generator::parse(&spec)
    }

    fn draw_many(fields: Value, seed: u64, count: usize) -> Vec<serde_json::Map<String, Value>> {
        let fields: BTreeMap<String, Value> = serde_json::from_value(fields).unwrap();
        Records::new(parse_fields(&fields).unwrap(), Some(seed), Utc::now())
            .take(count)
            .collect()
    }

    #[test]
    fn specs_are_checked_with_a_reason() {
        assert!(parse(json!("uuid")).is_ok());
        assert!(
            parse(json!("teleport"))
                .unwrap_err()
                .contains("unknown generator \"teleport\"")
        );
        assert!(
            parse(json!({"pick": ["a"], "int": [1, 2]}))
                .unwrap_err()
                .contains("exactly one")
        );
        assert!(
            parse(json!({"pick": ["a", "b"], "weights": [1]}))
                .unwrap_err()
                .contains("1 weights for 2 values")
        );
        assert!(
            parse(json!({"pick": []}))
                .unwrap_err()
                .contains("non-empty")
        );
        assert!(
            parse(json!({"int": [5, 1]}))
                .unwrap_err()
                .contains("low is above high")
        );
        assert!(
            parse(json!({"float": [0, 1], "weights": [1]}))
                .unwrap_err()
                .contains("unknown key `weights`")
        );
        assert!(
            parse(json!({"pick": ["a"], "weights": [-1]}))
                .unwrap_err()
                .contains("negative")
        );
        assert!(
            parse(json!(7))
                .unwrap_err()
                .contains("expected a generator")
        );
    }

    #[test]
    fn the_same_seed_draws_the_same_records() {
        let fields =
            json!({"id": "uuid", "n": {"int": [1, 6]}, "x": {"float": [0, 1]}, "i": "sequence"});
        let a = draw_many(fields.clone(), 7, 50);
        assert_eq!(a, draw_many(fields.clone(), 7, 50));
        assert_ne!(a, draw_many(fields, 8, 50));
        assert_eq!(a[3]["i"], 3);
    }

    #[test]
    fn ranges_are_kept_and_weights_followed() {
        let records = draw_many(
            json!({
                "die": {"int": [1, 6]},
                "cpu": {"float": [0, 100], "decimals": 1},
                "status": {"pick": ["running", "failed"], "weights": [9, 1]},
                "zone": {"value": "eu-west"},
                "locale": {"pick": ["en_US", "fr_FR"], "nulls": 0.5},
            }),
            1,
            10_000,
        );
        let dice: std::collections::BTreeSet<i64> =
            records.iter().map(|r| r["die"].as_i64().unwrap()).collect();
        assert_eq!(dice, (1..=6).collect(), "both ends reached");
        for record in &records {
            let cpu = record["cpu"].as_f64().unwrap();
            assert!((0.0..100.0).contains(&cpu) || cpu == 100.0, "{cpu}");
            assert_eq!((cpu * 10.0).round(), cpu * 10.0, "one decimal: {cpu}");
            assert_eq!(record["zone"], "eu-west");
        }
        let running = records.iter().filter(|r| r["status"] == "running").count();
        assert!(
            (8_700..=9_300).contains(&running),
            "9 in 10 running: {running}"
        );
        let nulls = records.iter().filter(|r| r["locale"].is_null()).count();
        assert!((4_500..=5_500).contains(&nulls), "{nulls}");
    }
}
