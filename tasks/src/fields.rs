//! Parsing only what expressions read. When every expression a record goes through is a
//! plain path (`.location.country`): a windowed stream without transforms, or
//! `http_to_kafka`'s key and topic, the record is parsed into the values on those paths
//! alone: the rest is checked as JSON and skipped, not built (building whole records was
//! about half of the stream's CPU, BENCHMARKS.md). The expressions then give on that smaller
//! value what they give on the whole record.

use std::{borrow::Cow, collections::BTreeMap, fmt};

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::value::RawValue;

use crate::jq::{self, JqError, JqFilter, Val};

/// The parts of a record that expressions read.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Fields {
    /// The whole value.
    Whole,
    /// Only these keys of an object, each with the parts of its value (a value that is not
    /// an object is taken whole).
    Keys(BTreeMap<String, Fields>),
}

impl Fields {
    /// What `filters` read, when each reads the record only through paths of plain keys
    /// (`.a.b`, `"x." + (.a | ascii_downcase)`); else none (the whole record is needed).
    pub(crate) fn read_by<'f>(filters: impl IntoIterator<Item = &'f JqFilter>) -> Option<Self> {
        let mut fields = Self::Keys(BTreeMap::new());
        for filter in filters {
            for keys in filter.input_paths()? {
                fields.add(keys);
            }
        }
        Some(fields)
    }

    fn add(&mut self, keys: &[String]) {
        let (Self::Keys(map), Some((first, rest))) = (&mut *self, keys.split_first()) else {
            return;
        };
        let entry = map
            .entry(first.clone())
            .or_insert_with(|| Self::Keys(BTreeMap::new()));
        if rest.is_empty() {
            *entry = Self::Whole;
        } else {
            entry.add(rest);
        }
    }

    /// The value in `bytes` with only these fields; an error when it is not JSON. What the
    /// partial parse refuses (invalid UTF-8 in a string it keeps, nesting deeper than 128) is
    /// parsed whole, so a record is accepted or refused, with the same reason, as without
    /// this.
    pub(crate) fn parse(&self, bytes: &[u8]) -> Result<Val, JqError> {
        self.parse_part(bytes).or_else(|_| jq::parse_json(bytes))
    }

    /// The value of `json` with only these fields, as [`Fields::parse`] gives it, for a value
    /// serde_json has checked already (a record of an answer it parsed whole): its text is
    /// not checked as UTF-8 again.
    pub(crate) fn parse_raw(&self, json: &RawValue) -> Result<Val, JqError> {
        let json = json.get();
        self.parse_checked(json)
            .or_else(|_| jq::parse_json(json.as_bytes()))
    }

    fn parse_part(&self, bytes: &[u8]) -> Result<Val, JqError> {
        match self.keys_of_object(bytes) {
            Some(keys) => kept_object(keys, serde_json::Deserializer::from_slice(bytes)),
            None => jq::parse_json(bytes),
        }
    }

    fn parse_checked(&self, json: &str) -> Result<Val, JqError> {
        match self.keys_of_object(json.as_bytes()) {
            Some(keys) => kept_object(keys, serde_json::Deserializer::from_str(json)),
            None => jq::parse_json(json.as_bytes()),
        }
    }

    /// The keys to keep when `json` is an object read in part; none when it is taken whole.
    fn keys_of_object(&self, json: &[u8]) -> Option<&BTreeMap<String, Fields>> {
        match self {
            Self::Keys(keys) if first_byte(json) == Some(b'{') => Some(keys),
            _ => None,
        }
    }

    /// `value` with only these fields: what [`Fields::parse`] gives on its JSON (a value
    /// that is not an object is taken whole; of a key given twice, the value kept is last).
    pub(crate) fn project(&self, value: &Val) -> Val {
        let (Self::Keys(keys), Val::Obj(object)) = (self, value) else {
            return value.clone();
        };
        let kept = object.iter().filter_map(|(key, value)| {
            let Val::TStr(name) = key else { return None };
            let fields = keys.get(std::str::from_utf8(name).ok()?)?;
            Some((key.clone(), fields.project(value)))
        });
        Val::obj(kept.collect())
    }
}

/// The object `deserializer` reads, with only the keys of `keys`, each with its fields.
fn kept_object<'de, R: serde_json::de::Read<'de>>(
    keys: &BTreeMap<String, Fields>,
    mut deserializer: serde_json::Deserializer<R>,
) -> Result<Val, JqError> {
    let kept = Object(keys)
        .deserialize(&mut deserializer)
        .and_then(|kept| deserializer.end().map(|()| kept))
        .map_err(|e| JqError::Json(e.to_string()))?;
    let object = kept
        .into_iter()
        .map(|(key, fields, raw)| Ok((Val::from(key.clone()), fields.parse_checked(raw.get())?)))
        .collect::<Result<_, JqError>>()?;
    Ok(Val::obj(object))
}

fn first_byte(bytes: &[u8]) -> Option<u8> {
    bytes.iter().copied().find(|b| !b.is_ascii_whitespace())
}

/// Reads an object: the raw values of the keys it names, in order; the other values skipped.
struct Object<'k>(&'k BTreeMap<String, Fields>);

type KeptValues<'k, 'de> = Vec<(&'k String, &'k Fields, &'de RawValue)>;

impl<'de, 'k> DeserializeSeed<'de> for Object<'k> {
    type Value = KeptValues<'k, 'de>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de, 'k> Visitor<'de> for Object<'k> {
    type Value = KeptValues<'k, 'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut kept = Vec::with_capacity(self.0.len());
        while let Some(Key(key)) = map.next_key()? {
            match self.0.get_key_value(key.as_ref()) {
                Some((name, fields)) => kept.push((name, fields, map.next_value()?)),
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(kept)
    }
}

/// An object key, borrowed from the record unless it has escapes.
pub(crate) struct Key<'de>(pub Cow<'de, str>);

impl<'de> de::Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_str(KeyVisitor)
    }
}

struct KeyVisitor;

impl<'de> Visitor<'de> for KeyVisitor {
    type Value = Key<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object key")
    }

    fn visit_borrowed_str<E: de::Error>(self, key: &'de str) -> Result<Self::Value, E> {
        Ok(Key(Cow::Borrowed(key)))
    }

    fn visit_str<E: de::Error>(self, key: &str) -> Result<Self::Value, E> {
        Ok(Key(Cow::Owned(key.to_owned())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filters(codes: &[&str]) -> Vec<JqFilter> {
        codes
            .iter()
            .map(|c| JqFilter::compile(c).unwrap())
            .collect()
    }

    fn fields(codes: &[&str]) -> Option<Fields> {
        Fields::read_by(&filters(codes))
    }

    const USER: &[u8] = br#"{"gender": "female", "name": {"first": "Ana", "last": "Lee"},
        "location": {"country": "Spain", "city": "Vigo", "coordinates": {"latitude": "1"}},
        "dob": {"age": 31, "date": "1994-01-01"}, "tags": [1, {"a": null}], "loc\u0061tion2": 1}"#;

    #[test]
    fn only_filters_reading_through_paths_of_a_key_or_more_are_read_in_part() {
        assert_eq!(fields(&[".", ".a"]), None);
        assert_eq!(fields(&["keys"]), None);
        assert_eq!(fields(&[".[0]"]), None);
        let through_pipe = fields(&["\"x.\" + (.a.b | ascii_downcase)", ".c[0]"]).unwrap();
        let Fields::Keys(keys) = through_pipe else {
            panic!()
        };
        assert_eq!(keys["c"], Fields::Whole);
        assert_eq!(
            keys["a"],
            Fields::Keys([("b".to_owned(), Fields::Whole)].into())
        );
        let both = fields(&[".a.b", ".a"]).unwrap();
        let Fields::Keys(keys) = both else { panic!() };
        assert_eq!(keys["a"], Fields::Whole);
    }

    #[test]
    fn the_filters_give_on_the_part_what_they_give_on_the_whole() {
        let codes = [
            ".location.country",
            ".gender",
            ".dob.age",
            ".name",
            ".missing.deeper",
            ".tags",
            "\"users.\" + (.location.country | ascii_downcase)",
            ".tags[1] | keys",
            "[.dob.age, .gender] | tostring",
        ];
        let part = fields(&codes).unwrap().parse(USER).unwrap();
        let whole = jq::parse_json(USER).unwrap();
        for filter in filters(&codes) {
            assert_eq!(
                filter.one(part.clone()).unwrap(),
                filter.one(whole.clone()).unwrap(),
                "{}",
                filter.source()
            );
        }
        let kept = jq::to_json(&part);
        assert_eq!(
            kept,
            serde_json::json!({"gender": "female", "name": {"first": "Ana", "last": "Lee"},
                "location": {"country": "Spain"}, "dob": {"age": 31}, "tags": [1, {"a": null}]})
        );
    }

    #[test]
    fn a_checked_value_gives_what_its_bytes_give() {
        let codes = [
            ".location.country",
            ".gender",
            ".dob",
            ".tags",
            ".location2",
        ];
        let read = fields(&codes).unwrap();
        for record in [
            USER,
            br#"{"location": "Vigo", "gender": {"x": "}"}, "dob": [1, "]"]}"#,
            br#"{"location": {"country": "A", "country": "B"}, "location": {"city": "C"}}"#,
            br#"[1, {"gender": "f"}]"#,
            br#""text""#,
            br#"{}"#,
        ] {
            let raw: &RawValue = serde_json::from_slice(record).unwrap();
            assert_eq!(
                read.parse_raw(raw).unwrap(),
                read.parse(record).unwrap(),
                "{}",
                String::from_utf8_lossy(record)
            );
        }
    }

    #[test]
    fn a_value_that_is_not_an_object_is_taken_whole() {
        let codes = [".location.country"];
        let read = fields(&codes).unwrap();
        for record in [&br#"{"location": "Vigo"}"#[..], br#"[1, 2]"#, br#""text""#] {
            let filter = &filters(&codes)[0];
            let part = filter
                .one(read.parse(record).unwrap())
                .map_err(|e| e.to_string());
            let whole = filter
                .one(jq::parse_json(record).unwrap())
                .map_err(|e| e.to_string());
            assert_eq!(part, whole, "{}", String::from_utf8_lossy(record));
        }
    }

    #[test]
    fn a_record_is_refused_or_taken_as_when_parsed_whole() {
        let codes = [".gender"];
        let read = fields(&codes).unwrap();
        let filter = &filters(&codes)[0];
        for record in [
            &br#"{"gender": "f", "other": [1, }"#[..],
            br#"{"gender": "f"} trailing"#,
            b"not json",
            b"{\"gender\": \"f\", \"x\": \"\xff\"}",
            b"{\"gender\": \"\xff\"}",
            b"{\"gender\": [\"\xff\"]}",
        ] {
            let part = read.parse(record).map(|v| filter.one(v).unwrap());
            let whole = jq::parse_json(record).map(|v| filter.one(v).unwrap());
            assert_eq!(
                part.map_err(|e| e.to_string()),
                whole.map_err(|e| e.to_string()),
                "{}",
                String::from_utf8_lossy(record)
            );
        }
    }
}
