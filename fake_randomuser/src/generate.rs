//! Deterministic fake users: user `i` of page `p` for seed `s` is always the same person.

use chrono::{DateTime, Datelike, Utc};
use serde_json::Value;
use sha1::Digest as _;

use super::data::{NATS, Nat, PASSWORDS, TIMEZONES, USERNAME_ANIMALS, USERNAME_WORDS};
use super::shape::{
    Coordinates, Dated, Degrees, Email, Id, Location, Login, Name, Picture, Postcode, Selected,
    Street, Timezone, User, WriteJson as _,
};

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

/// The users of one request, as JSON values (the server writes them without this tree).
pub fn users(query: &UserQuery, now: DateTime<Utc>) -> Vec<Value> {
    let clock = Clock::new(now);
    (0..query.results)
        .map(|index| {
            let mut json = Vec::with_capacity(1100);
            user_at(query, index, &clock).write_json(&mut json);
            serde_json::from_slice(&json).unwrap_or(Value::Null)
        })
        .collect()
}

/// Writes users `range` of the query as JSON objects separated by commas.
pub fn write_users(
    query: &UserQuery,
    range: std::ops::Range<usize>,
    now: DateTime<Utc>,
) -> Vec<u8> {
    let clock = Clock::new(now);
    let mut out = Vec::with_capacity(range.len() * 1100);
    for (i, index) in range.enumerate() {
        if i > 0 {
            out.push(b',');
        }
        user_at(query, index, &clock).write_json(&mut out);
    }
    out
}

/// User `index` of the query's seed and page, with the query's fields.
fn user_at<'q>(query: &'q UserQuery, index: usize, clock: &Clock) -> Selected<'q> {
    let mut rng = Rng(user_seed(&query.seed, query.page, index));
    Selected {
        user: user(&mut rng, query, clock),
        query,
    }
}

/// The moment a request is answered, and the start of its year (dates stay put within a year).
struct Clock {
    now: DateTime<Utc>,
    year_start: DateTime<Utc>,
}

impl Clock {
    fn new(now: DateTime<Utc>) -> Self {
        let year_start = now
            .with_ordinal(1)
            .and_then(|d| d.date_naive().and_hms_opt(0, 0, 0))
            .map(|d| d.and_utc())
            .unwrap_or(now);
        Self { now, year_start }
    }
}

/// Lower-case hex of a digest.
fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut text = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        text.push(char::from(DIGITS[usize::from(byte >> 4)]));
        text.push(char::from(DIGITS[usize::from(byte & 15)]));
    }
    text
}

/// `1985-03-02T10:11:12.123Z`.
fn user(rng: &mut Rng, query: &UserQuery, clock: &Clock) -> User {
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
        Gender::Male => (*rng.pick(nat.male), *rng.pick(nat.titles.0), "male", "men"),
        Gender::Female => (
            *rng.pick(nat.female),
            *rng.pick(nat.titles.1),
            "female",
            "women",
        ),
    };
    let last = *rng.pick(nat.last);
    let dob = date_between(rng, clock, 18, 77);
    let registered = date_between(rng, clock, 0, 22);
    let portrait = rng.below(100);
    User {
        gender: sex,
        name: Name { title, first, last },
        location: location(rng, nat),
        email: Email { first, last },
        login: login(rng),
        dob: dated(dob, clock),
        registered: dated(registered, clock),
        phone: rng.fill(nat.phone),
        cell: rng.fill(nat.cell),
        id: Id {
            name: nat.id_name,
            value: (!nat.id_value.is_empty()).then(|| rng.fill(nat.id_value)),
        },
        picture: Picture { folder, portrait },
        nat: nat.code,
    }
}

fn location(rng: &mut Rng, nat: &Nat) -> Location {
    let &(city, state) = rng.pick(nat.places);
    let postcode = rng.fill(nat.postcode);
    let postcode = match postcode.parse::<u64>() {
        Ok(number) if nat.numeric_postcode => Postcode::Number(number),
        _ => Postcode::Text(postcode),
    };
    let &(offset, description) = rng.pick(TIMEZONES);
    let latitude = Degrees {
        drawn: rng.below(180_000_000),
        offset: 90,
    };
    let longitude = Degrees {
        drawn: rng.below(360_000_000),
        offset: 180,
    };
    let number = 1 + rng.below(9999);
    let name = *rng.pick(nat.streets);
    Location {
        street: Street { number, name },
        city,
        state,
        country: nat.country,
        postcode,
        coordinates: Coordinates {
            latitude,
            longitude,
        },
        timezone: Timezone {
            offset,
            description,
        },
    }
}

fn login(rng: &mut Rng) -> Login {
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
    let alphabet = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    let salt: String = (0..8).map(|_| char::from(*rng.pick(alphabet))).collect();
    let salted = format!("{password}{salt}");
    Login {
        uuid,
        username,
        password,
        md5: hex(&md5::Md5::digest(salted.as_bytes())),
        sha1: hex(&sha1::Sha1::digest(salted.as_bytes())),
        sha256: hex(&sha2::Sha256::digest(salted.as_bytes())),
        salt,
    }
}

/// A moment between `min_years` and `max_years` before the start of the year, on a fixed
/// grid so a seed gives the same date whenever it is asked.
fn date_between(rng: &mut Rng, clock: &Clock, min_years: u64, max_years: u64) -> DateTime<Utc> {
    const YEAR_MS: u64 = 31_556_952_000;
    let back_ms = min_years * YEAR_MS + rng.below((max_years - min_years) * YEAR_MS);
    clock.year_start - chrono::Duration::milliseconds(back_ms as i64)
}

fn dated(date: DateTime<Utc>, clock: &Clock) -> Dated {
    Dated {
        date,
        age: age(date, clock.now),
    }
}

/// Whole years from `date` to `now`.
fn age(date: DateTime<Utc>, now: DateTime<Utc>) -> i32 {
    let mut years = now.year() - date.year();
    if (now.month(), now.day()) < (date.month(), date.day()) {
        years -= 1;
    }
    years.max(0)
}
