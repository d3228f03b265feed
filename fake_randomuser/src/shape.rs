//! A user as the API writes it: the fields of one person, and how each is written. Users
//! are written straight into the answer's buffer, not through serde: serde_json's string
//! escaping and `collect_str` were about two thirds of the time of making a user
//! (BENCHMARKS.md).

use chrono::{DateTime, Datelike as _, Timelike as _, Utc};

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

pub(crate) struct Name {
    pub(crate) title: &'static str,
    pub(crate) first: &'static str,
    pub(crate) last: &'static str,
}

pub(crate) struct Location {
    pub(crate) street: Street,
    pub(crate) city: &'static str,
    pub(crate) state: &'static str,
    pub(crate) country: &'static str,
    pub(crate) postcode: Postcode,
    pub(crate) coordinates: Coordinates,
    pub(crate) timezone: Timezone,
}

pub(crate) struct Street {
    pub(crate) number: u64,
    pub(crate) name: &'static str,
}

pub(crate) enum Postcode {
    Number(u64),
    Text(String),
}

pub(crate) struct Coordinates {
    pub(crate) latitude: Degrees,
    pub(crate) longitude: Degrees,
}

pub(crate) struct Timezone {
    pub(crate) offset: &'static str,
    pub(crate) description: &'static str,
}

pub(crate) struct Login {
    pub(crate) uuid: uuid::Uuid,
    pub(crate) username: String,
    pub(crate) password: &'static str,
    pub(crate) salt: String,
    pub(crate) md5: String,
    pub(crate) sha1: String,
    pub(crate) sha256: String,
}

pub(crate) struct Dated {
    pub(crate) date: DateTime<Utc>,
    pub(crate) age: i32,
}

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

/// A value written as the API's compact JSON.
pub(crate) trait WriteJson {
    fn write_json(&self, out: &mut Vec<u8>);
}

impl WriteJson for Selected<'_> {
    fn write_json(&self, out: &mut Vec<u8>) {
        let mut object = Object::start(out);
        macro_rules! keep {
            ($($field:ident),*) => {$(
                if self.query.keeps(stringify!($field)) {
                    object.value(stringify!($field), &self.user.$field);
                }
            )*};
        }
        keep!(
            gender, name, location, email, login, dob, registered, phone, cell, id, picture, nat
        );
        object.end();
    }
}

/// `WriteJson` for structs written as an object of their fields, in the order given.
macro_rules! object_of_fields {
    ($($type:ty { $($field:ident),* })*) => {$(
        impl WriteJson for $type {
            fn write_json(&self, out: &mut Vec<u8>) {
                let mut object = Object::start(out);
                $(object.value(stringify!($field), &self.$field);)*
                object.end();
            }
        }
    )*};
}

object_of_fields! {
    Name { title, first, last }
    Location { street, city, state, country, postcode, coordinates, timezone }
    Street { number, name }
    Coordinates { latitude, longitude }
    Timezone { offset, description }
    Login { uuid, username, password, salt, md5, sha1, sha256 }
    Dated { date, age }
    Id { name, value }
}

impl WriteJson for Postcode {
    fn write_json(&self, out: &mut Vec<u8>) {
        match self {
            Self::Number(number) => number.write_json(out),
            Self::Text(text) => text.write_json(out),
        }
    }
}

impl WriteJson for Picture {
    fn write_json(&self, out: &mut Vec<u8>) {
        let mut object = Object::start(out);
        for (key, size) in [("large", ""), ("medium", "med/"), ("thumbnail", "thumb/")] {
            object.value(
                key,
                &PortraitUrl {
                    size,
                    picture: self,
                },
            );
        }
        object.end();
    }
}

/// `https://randomuser.me/api/portraits/{size}{folder}/{portrait}.jpg`: nothing to escape.
struct PortraitUrl<'p> {
    size: &'static str,
    picture: &'p Picture,
}

impl WriteJson for PortraitUrl<'_> {
    fn write_json(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"\"https://randomuser.me/api/portraits/");
        out.extend_from_slice(self.size.as_bytes());
        out.extend_from_slice(self.picture.folder.as_bytes());
        out.push(b'/');
        out.extend_from_slice(itoa::Buffer::new().format(self.picture.portrait).as_bytes());
        out.extend_from_slice(b".jpg\"");
    }
}

impl WriteJson for Email {
    fn write_json(&self, out: &mut Vec<u8>) {
        let ascii = |out: &mut Vec<u8>, s: &str| {
            for c in s.chars() {
                let c = c.to_lowercase().next().unwrap_or(c);
                let folded = if c.is_ascii_alphanumeric() {
                    Some(c)
                } else {
                    fold_accent(c)
                };
                // Both are ASCII: one byte each.
                if let Some(c) = folded {
                    out.push(c as u8);
                }
            }
        };
        out.push(b'"');
        ascii(out, self.first);
        out.push(b'.');
        ascii(out, self.last);
        out.extend_from_slice(b"@example.com\"");
    }
}

impl WriteJson for uuid::Uuid {
    fn write_json(&self, out: &mut Vec<u8>) {
        out.push(b'"');
        out.extend_from_slice(
            self.hyphenated()
                .encode_lower(&mut uuid::Uuid::encode_buffer())
                .as_bytes(),
        );
        out.push(b'"');
    }
}

/// `1985-03-02T10:11:12.123Z`, as `to_rfc3339_opts(Millis, true)` writes it.
impl WriteJson for DateTime<Utc> {
    fn write_json(&self, out: &mut Vec<u8>) {
        if !(0..=9999).contains(&self.year()) || self.nanosecond() >= 1_000_000_000 {
            let text = self.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
            return text.write_json(out);
        }
        // The accessors of a `DateTime` each work out the local time again; the naive UTC
        // time is that already.
        let at = self.naive_utc();
        out.push(b'"');
        digits(out, at.year() as u32, 4);
        out.push(b'-');
        digits(out, at.month(), 2);
        out.push(b'-');
        digits(out, at.day(), 2);
        out.push(b'T');
        digits(out, at.hour(), 2);
        out.push(b':');
        digits(out, at.minute(), 2);
        out.push(b':');
        digits(out, at.second(), 2);
        out.push(b'.');
        digits(out, at.nanosecond() / 1_000_000, 3);
        out.extend_from_slice(b"Z\"");
    }
}

/// `value` in `width` decimal digits, zero-padded.
fn digits(out: &mut Vec<u8>, value: u32, width: u32) {
    for place in (0..width).rev() {
        out.push(b'0' + (value / 10u32.pow(place) % 10) as u8);
    }
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
impl WriteJson for Degrees {
    fn write_json(&self, out: &mut Vec<u8>) {
        let micro = self.drawn as i64 - (self.offset * 1_000_000) as i64;
        out.push(b'"');
        if micro.unsigned_abs() % 100 == 50 {
            out.extend_from_slice(format!("{:.4}", self.as_f64()).as_bytes());
        } else {
            let rounded = (micro.unsigned_abs() + 50) / 100;
            if micro < 0 {
                out.push(b'-');
            }
            out.extend_from_slice(itoa::Buffer::new().format(rounded / 10_000).as_bytes());
            out.push(b'.');
            digits(out, (rounded % 10_000) as u32, 4);
        }
        out.push(b'"');
    }
}

/// `null` when there is no value.
impl<T: WriteJson> WriteJson for Option<T> {
    fn write_json(&self, out: &mut Vec<u8>) {
        match self {
            Some(value) => value.write_json(out),
            None => out.extend_from_slice(b"null"),
        }
    }
}

impl WriteJson for str {
    fn write_json(&self, out: &mut Vec<u8>) {
        // Without an early exit the check runs on whole vectors of bytes.
        let escaped = self.bytes().fold(false, |found, b| {
            found | (b < 0x20) | (b == b'"') | (b == b'\\')
        });
        if escaped {
            // Writing into a Vec cannot fail.
            let _ = serde_json::to_writer(&mut *out, self);
        } else {
            out.push(b'"');
            out.extend_from_slice(self.as_bytes());
            out.push(b'"');
        }
    }
}

impl WriteJson for &str {
    fn write_json(&self, out: &mut Vec<u8>) {
        (**self).write_json(out);
    }
}

impl WriteJson for String {
    fn write_json(&self, out: &mut Vec<u8>) {
        self.as_str().write_json(out);
    }
}

impl WriteJson for u64 {
    fn write_json(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(itoa::Buffer::new().format(*self).as_bytes());
    }
}

impl WriteJson for i32 {
    fn write_json(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(itoa::Buffer::new().format(*self).as_bytes());
    }
}

/// An object being written: `{"key":value,...}`; its keys are the API's plain names.
struct Object<'o> {
    out: &'o mut Vec<u8>,
    empty: bool,
}

impl<'o> Object<'o> {
    fn start(out: &'o mut Vec<u8>) -> Self {
        out.push(b'{');
        Self { out, empty: true }
    }

    fn value(&mut self, key: &str, value: &(impl WriteJson + ?Sized)) {
        if !self.empty {
            self.out.push(b',');
        }
        self.empty = false;
        self.out.push(b'"');
        self.out.extend_from_slice(key.as_bytes());
        self.out.extend_from_slice(b"\":");
        value.write_json(self.out);
    }

    fn end(self) {
        self.out.push(b'}');
    }
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
