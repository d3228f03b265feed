//! Passwords inside URLs (`scheme://user:password@host`): found once, for the one URL of a
//! setting or every URL of a text (driver errors and task output may carry connection
//! strings).

use std::borrow::Cow;

/// The password of a URL as written in it.
pub fn password_of_url(url: &str) -> Option<&str> {
    password_spans(url)
        .next()
        .map(|(start, end)| &url[start..end])
}

/// `text` with the password of every URL in it as `***`.
pub fn redact_urls(text: &str) -> Cow<'_, str> {
    let mut out = String::new();
    let mut copied = 0;
    for (start, end) in password_spans(text) {
        out.push_str(&text[copied..start]);
        out.push_str("***");
        copied = end;
    }
    if copied == 0 {
        return Cow::Borrowed(text);
    }
    out.push_str(&text[copied..]);
    Cow::Owned(out)
}

/// Where each password of a URL in `text` starts and ends: between the first `:` and the
/// last `@` of a URL's authority (up to the first `/`, blank or quote after `://`).
fn password_spans(text: &str) -> impl Iterator<Item = (usize, usize)> + '_ {
    let mut from = 0;
    std::iter::from_fn(move || {
        while let Some(found) = text[from..].find("://") {
            let start = from + found + 3;
            let end = text[start..]
                .find(|c: char| {
                    c == '/' || c.is_whitespace() || matches!(c, '"' | '\'' | '>' | '<')
                })
                .map_or(text.len(), |end| start + end);
            from = end;
            let authority = &text[start..end];
            if let (Some(colon), Some(at)) = (authority.find(':'), authority.rfind('@'))
                && colon < at
            {
                return Some((start + colon + 1, start + at));
            }
        }
        None
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_password_of_a_url() {
        assert_eq!(
            password_of_url("mongodb://u:p%40ss@h:27017/?authSource=admin"),
            Some("p%40ss")
        );
        assert_eq!(password_of_url("postgres://u@h/db"), None);
    }

    #[test]
    fn every_url_in_a_text_loses_its_password() {
        assert_eq!(
            redact_urls(
                "cannot reach mongodb://app:p%40ss@h1:27017,h2/?authSource=admin nor \"postgres://u:pw@db/x\""
            ),
            "cannot reach mongodb://app:***@h1:27017,h2/?authSource=admin nor \"postgres://u:***@db/x\""
        );
        for plain in [
            "no url here",
            "http://host:8080/path",
            "postgres://u@h/db",
            "a://",
        ] {
            assert!(matches!(redact_urls(plain), Cow::Borrowed(_)), "{plain}");
        }
    }
}
