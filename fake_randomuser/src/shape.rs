//! A user as the API writes it: the fields of one person, and how each is written.

use chrono::{DateTime, Utc};
use serde::{Serialize, Serializer, ser::SerializeMap as _};

use crate::UserQuery;

/// One user, every field; `Selected` writes the ones the query asks for, in the API's order.
pub(crate) struct User {
    pub(crate) gender: &'static str,
    pub(crate) name: Name,
    pub(crate) location: Location,
    pub(crate) email: Email,
    pub(crate) login: Login,
    pub(crate) dob: Dated,
    pub(crate) registered: Dated,
    pub(crate) phone: String,
    pub(crate) cell: String,
    pub(crate) id: Id,
    pub(crate) picture: Picture,
    pub(crate) nat: &'static str,
}

#[derive(Serialize)]
pub(crate) struct Name {
    pub(crate) title: &'static str,
    pub(crate) first: &'static str,
    pub(crate) last: &'static str,
}

#[derive(Serialize)]
pub(crate) struct Location {
    pub(crate) street: Street,
    pub(crate) city: &'static str,
    pub(crate) state: &'static str,
    pub(crate) country: &'static str,
    pub(crate) postcode: Postcode,
    pub(crate) coordinates: Coordinates,
    pub(crate) timezone: Timezone,
}

#[derive(Serialize)]
pub(crate) struct Street {
    pub(crate) number: u64,
    pub(crate) name: &'static str,
}

#[derive(Serialize)]
#[serde(untagged)]
pub(crate) enum Postcode {
    Number(u64),
    Text(String),
}

#[derive(Serialize)]
pub(crate) struct Coordinates {
    #[serde(serialize_with = "shown")]
    pub(crate) latitude: Degrees,
    #[serde(serialize_with = "shown")]
    pub(crate) longitude: Degrees,
}

#[derive(Serialize)]
pub(crate) struct Timezone {
    pub(crate) offset: &'static str,
    pub(crate) description: &'static str,
}

#[derive(Serialize)]
pub(crate) struct Login {
    #[serde(serialize_with = "shown")]
    pub(crate) uuid: uuid::Uuid,
    pub(crate) username: String,
    pub(crate) password: &'static str,
    pub(crate) salt: String,
    pub(crate) md5: String,
    pub(crate) sha1: String,
    pub(crate) sha256: String,
}

#[derive(Serialize)]
pub(crate) struct Dated {
    #[serde(serialize_with = "millis")]
    pub(crate) date: DateTime<Utc>,
    pub(crate) age: i32,
}

#[derive(Serialize)]
pub(crate) struct Id {
    pub(crate) name: &'static str,
    pub(crate) value: Option<String>,
}

/// The portrait's folder (`men`, `women`) and number.
pub(crate) struct Picture {
    pub(crate) folder: &'static str,
    pub(crate) portrait: u64,
}

/// `first.last@example.com`, lower-case ASCII as the real API writes it.
pub(crate) struct Email {
    pub(crate) first: &'static str,
    pub(crate) last: &'static str,
}

/// A user with the fields its query keeps (`inc`, `exc`).
pub(crate) struct Selected<'q> {
    pub(crate) user: User,
    pub(crate) query: &'q UserQuery,
}

impl UserQuery {
    pub(crate) fn keeps(&self, field: &str) -> bool {
        (self.include.is_empty() || self.include.iter().any(|f| f == field))
            && !self.exclude.iter().any(|f| f == field)
    }
}

impl Serialize for Selected<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        macro_rules! keep {
            ($($field:ident),*) => {$(
                if self.query.keeps(stringify!($field)) {
                    map.serialize_entry(stringify!($field), &self.user.$field)?;
                }
            )*};
        }
        keep!(
            gender, name, location, email, login, dob, registered, phone, cell, id, picture, nat
        );
        map.end()
    }
}

impl Serialize for Picture {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let (folder, portrait) = (self.folder, self.portrait);
        let base = "https://randomuser.me/api/portraits";
        let mut map = serializer.serialize_map(Some(3))?;
        map.serialize_entry(
            "large",
            &Shown(format_args!("{base}/{folder}/{portrait}.jpg")),
        )?;
        map.serialize_entry(
            "medium",
            &Shown(format_args!("{base}/med/{folder}/{portrait}.jpg")),
        )?;
        map.serialize_entry(
            "thumbnail",
            &Shown(format_args!("{base}/thumb/{folder}/{portrait}.jpg")),
        )?;
        map.end()
    }
}

impl Serialize for Email {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl std::fmt::Display for Email {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use std::fmt::Write as _;
        let ascii = |f: &mut std::fmt::Formatter<'_>, s: &str| -> std::fmt::Result {
            for c in s.chars() {
                let c = c.to_lowercase().next().unwrap_or(c);
                let folded = if c.is_ascii_alphanumeric() {
                    Some(c)
                } else {
                    fold_accent(c)
                };
                if let Some(c) = folded {
                    f.write_char(c)?;
                }
            }
            Ok(())
        };
        ascii(f, self.first)?;
        f.write_char('.')?;
        ascii(f, self.last)?;
        f.write_str("@example.com")
    }
}

/// Writes a value by its `Display`, without building a `String` first.
pub(crate) struct Shown<T>(pub(crate) T);

impl<T: std::fmt::Display> Serialize for Shown<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(&self.0)
    }
}

fn shown<T: std::fmt::Display, S: Serializer>(value: &T, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.collect_str(value)
}

/// A coordinate drawn in millionths of a degree: `drawn / 1e6 - offset` degrees.
#[derive(Clone, Copy)]
pub(crate) struct Degrees {
    pub(crate) drawn: u64,
    pub(crate) offset: u64,
}

impl Degrees {
    /// The value as a float, as the generator has always computed it.
    pub(crate) fn as_f64(self) -> f64 {
        (self.drawn as f64 / 1e6) - self.offset as f64
    }
}

/// Writes a coordinate as the real API does: a string with four decimals. The text is
/// `format!("{:.4}", degrees.as_f64())`, found with integers except on a tie, where the
/// float's rounding decides.
impl std::fmt::Display for Degrees {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let micro = self.drawn as i64 - (self.offset * 1_000_000) as i64;
        if micro.unsigned_abs() % 100 == 50 {
            return write!(f, "{:.4}", self.as_f64());
        }
        let rounded = (micro.unsigned_abs() + 50) / 100;
        let sign = if micro < 0 { "-" } else { "" };
        write!(f, "{sign}{}.{:04}", rounded / 10_000, rounded % 10_000)
    }
}

fn millis<S: Serializer>(date: &DateTime<Utc>, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.collect_str(&date.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
}

fn fold_accent(c: char) -> Option<char> {
    Some(match c {
        'á' | 'à' | 'â' | 'ä' | 'ã' => 'a',
        'é' | 'è' | 'ê' | 'ë' => 'e',
        'í' | 'ì' | 'î' | 'ï' | 'ı' => 'i',
        'ó' | 'ò' | 'ô' | 'ö' | 'õ' | 'ø' => 'o',
        'ú' | 'ù' | 'û' | 'ü' => 'u',
        'ç' | 'č' | 'ć' => 'c',
        'ş' | 'š' => 's',
        'ğ' => 'g',
        'ñ' => 'n',
        'đ' => 'd',
        'ž' => 'z',
        _ => return None,
    })
}
