//! Deterministic fake users: user `i` of page `p` for seed `s` is always the same person.

use chrono::{DateTime, Datelike, Utc};
use serde_json::{Map, Value, json};
use sha1::Digest as _;

use super::data::{NATS, Nat, PASSWORDS, TIMEZONES, USERNAME_ANIMALS, USERNAME_WORDS};

/// The largest `results` the real API serves in one call.
pub const MAX_RESULTS: usize = 5000;

/// The top-level fields of a user, in the real API's order (for `inc` and `exc`).
pub const FIELDS: &[&str] = &[
    "gender",
    "name",
    "location",
    "email",
    "login",
    "registered",
    "dob",
    "phone",
    "cell",
    "id",
    "picture",
    "nat",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gender {
    Male,
    Female,
}

/// A parsed request of the API.
#[derive(Debug, Clone)]
pub struct UserQuery {
    pub results: usize,
    pub seed: String,
    pub page: u32,
    pub nats: Vec<&'static Nat>,
    pub gender: Option<Gender>,
    /// Top-level fields to include (all when empty) and to exclude.
    pub include: Vec<String>,
    pub exclude: Vec<String>,
    pub noinfo: bool,
}

impl std::fmt::Debug for Nat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.code)
    }
}

/// SplitMix64: tiny, fast, and stable across releases (a seed means the same users forever).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }

    /// Replaces `#` by a digit and `@` by an upper-case letter.
    fn fill(&mut self, pattern: &str) -> String {
        pattern
            .chars()
            .map(|c| match c {
                '#' => char::from(b'0' + self.below(10) as u8),
                '@' => char::from(b'A' + self.below(26) as u8),
                other => other,
            })
            .collect()
    }

    fn hex(&mut self, len: usize) -> String {
        (0..len)
            .map(|_| char::from_digit(self.below(16) as u32, 16).unwrap_or('0'))
            .collect()
    }
}

/// FNV-1a over the seed, page and index: the per-user RNG seed.
fn user_seed(seed: &str, page: u32, index: usize) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let bytes = seed
        .bytes()
        .chain(page.to_le_bytes())
        .chain((index as u64).to_le_bytes());
    for byte in bytes {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

/// A fresh seed for requests without one (16 hex digits, like the real API's).
pub fn random_seed() -> String {
    let nanos = Utc::now().timestamp_nanos_opt().unwrap_or_default() as u64;
    Rng(nanos ^ u64::from(std::process::id())).hex(16)
}

/// The users of one request.
pub fn users(query: &UserQuery, now: DateTime<Utc>) -> Vec<Value> {
    (0..query.results)
        .map(|index| user_at(query, index, now))
        .collect()
}

/// User `index` of the query's seed and page.
pub fn user_at(query: &UserQuery, index: usize, now: DateTime<Utc>) -> Value {
    let mut rng = Rng(user_seed(&query.seed, query.page, index));
    let user = user(&mut rng, query, now);
    select_fields(user, query)
}

fn select_fields(mut user: Map<String, Value>, query: &UserQuery) -> Value {
    if !query.include.is_empty() {
        user.retain(|key, _| query.include.iter().any(|f| f == key));
    }
    for field in &query.exclude {
        user.remove(field);
    }
    Value::Object(user)
}

fn user(rng: &mut Rng, query: &UserQuery, now: DateTime<Utc>) -> Map<String, Value> {
    let nat = if query.nats.is_empty() {
        rng.pick(NATS)
    } else {
        *rng.pick(&query.nats)
    };
    let gender = query.gender.unwrap_or(if rng.below(2) == 0 {
        Gender::Male
    } else {
        Gender::Female
    });
    let (first, title, sex, folder) = match gender {
        Gender::Male => (rng.pick(nat.male), rng.pick(nat.titles.0), "male", "men"),
        Gender::Female => (
            rng.pick(nat.female),
            rng.pick(nat.titles.1),
            "female",
            "women",
        ),
    };
    let last = rng.pick(nat.last);
    let dob = date_between(rng, now, 18, 77);
    let registered = date_between(rng, now, 0, 22);
    let portrait = rng.below(100);
    let mut user = Map::new();
    user.insert("gender".into(), sex.into());
    user.insert(
        "name".into(),
        json!({ "title": title, "first": first, "last": last }),
    );
    user.insert("location".into(), location(rng, nat));
    user.insert("email".into(), email(first, last).into());
    user.insert("login".into(), login(rng));
    user.insert("dob".into(), dated(dob, now));
    user.insert("registered".into(), dated(registered, now));
    user.insert("phone".into(), rng.fill(nat.phone).into());
    user.insert("cell".into(), rng.fill(nat.cell).into());
    user.insert(
        "id".into(),
        json!({
            "name": nat.id_name,
            "value": if nat.id_value.is_empty() { Value::Null } else { rng.fill(nat.id_value).into() },
        }),
    );
    let base = "https://randomuser.me/api/portraits";
    user.insert(
        "picture".into(),
        json!({
            "large": format!("{base}/{folder}/{portrait}.jpg"),
            "medium": format!("{base}/med/{folder}/{portrait}.jpg"),
            "thumbnail": format!("{base}/thumb/{folder}/{portrait}.jpg"),
        }),
    );
    user.insert("nat".into(), nat.code.into());
    user
}

fn location(rng: &mut Rng, nat: &Nat) -> Value {
    let (city, state) = rng.pick(nat.places);
    let postcode = rng.fill(nat.postcode);
    let postcode = match postcode.parse::<u64>() {
        Ok(number) if nat.numeric_postcode => Value::from(number),
        _ => Value::from(postcode),
    };
    let (offset, description) = rng.pick(TIMEZONES);
    let latitude = (rng.below(180_000_000) as f64 / 1e6) - 90.0;
    let longitude = (rng.below(360_000_000) as f64 / 1e6) - 180.0;
    json!({
        "street": { "number": 1 + rng.below(9999), "name": rng.pick(nat.streets) },
        "city": city,
        "state": state,
        "country": nat.country,
        "postcode": postcode,
        "coordinates": { "latitude": format!("{latitude:.4}"), "longitude": format!("{longitude:.4}") },
        "timezone": { "offset": offset, "description": description },
    })
}

/// `first.last@example.com`, lower-case ASCII as the real API writes it.
fn email(first: &str, last: &str) -> String {
    let ascii = |s: &str| -> String {
        s.chars()
            .filter_map(|c| {
                let c = c.to_lowercase().next().unwrap_or(c);
                if c.is_ascii_alphanumeric() {
                    Some(c)
                } else {
                    fold_accent(c)
                }
            })
            .collect()
    };
    format!("{}.{}@example.com", ascii(first), ascii(last))
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

fn login(rng: &mut Rng) -> Value {
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&rng.next().to_le_bytes());
    bytes[8..].copy_from_slice(&rng.next().to_le_bytes());
    let uuid = uuid::Builder::from_random_bytes(bytes).into_uuid();
    let username = format!(
        "{}{}{}",
        rng.pick(USERNAME_WORDS),
        rng.pick(USERNAME_ANIMALS),
        100 + rng.below(900)
    );
    let password = *rng.pick(PASSWORDS);
    let salt: String = (0..8)
        .map(|_| {
            let alphabet = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
            char::from(*rng.pick(alphabet))
        })
        .collect();
    let salted = format!("{password}{salt}");
    json!({
        "uuid": uuid.to_string(),
        "username": username,
        "password": password,
        "salt": salt,
        "md5": format!("{:x}", md5::Md5::digest(salted.as_bytes())),
        "sha1": format!("{:x}", sha1::Sha1::digest(salted.as_bytes())),
        "sha256": format!("{:x}", sha2::Sha256::digest(salted.as_bytes())),
    })
}

/// A moment between `min_years` and `max_years` before `now`, on a fixed grid so a seed gives
/// the same date whenever it is asked.
fn date_between(
    rng: &mut Rng,
    now: DateTime<Utc>,
    min_years: u64,
    max_years: u64,
) -> DateTime<Utc> {
    const YEAR_MS: u64 = 31_556_952_000;
    // Anchor to the start of the current year: dates stay put within a year.
    let anchor = now
        .with_ordinal(1)
        .and_then(|d| d.date_naive().and_hms_opt(0, 0, 0))
        .map(|d| d.and_utc())
        .unwrap_or(now);
    let back_ms = min_years * YEAR_MS + rng.below((max_years - min_years) * YEAR_MS);
    anchor - chrono::Duration::milliseconds(back_ms as i64)
}

fn dated(date: DateTime<Utc>, now: DateTime<Utc>) -> Value {
    json!({
        "date": date.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string(),
        "age": age(date, now),
    })
}

/// Whole years from `date` to `now`.
fn age(date: DateTime<Utc>, now: DateTime<Utc>) -> i32 {
    let mut years = now.year() - date.year();
    if (now.month(), now.day()) < (date.month(), date.day()) {
        years -= 1;
    }
    years.max(0)
}
