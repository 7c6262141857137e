//! Request validation: a small trait every request body implements, and a collector that
//! produces the seed's 422 entries with camelCase locations.
//!
//! Written by hand rather than derived so that every rule, message and field name is visible
//! next to the type it guards, and the location is exactly the JSON field the client sent.

use chrono::{DateTime, Utc};

use crate::error::{ApiError, FieldError};

pub trait Validate {
    fn validate(&self, v: &mut Violations);
}

/// Collects every problem of a request so the client sees all of them at once.
#[derive(Debug)]
pub struct Violations {
    origin: &'static str,
    errors: Vec<FieldError>,
}

pub const MAX_NAME_LEN: usize = 200;
pub const MIN_PASSWORD_LEN: usize = 8;
pub const MAX_PASSWORD_LEN: usize = 128;

impl Violations {
    pub fn body() -> Self {
        Self {
            origin: "body",
            errors: Vec::new(),
        }
    }

    pub fn query() -> Self {
        Self {
            origin: "query",
            errors: Vec::new(),
        }
    }

    pub fn add(&mut self, field: &str, msg: impl Into<String>) {
        self.errors
            .push(FieldError::new(&[self.origin, field], msg, "value_error"));
    }

    pub fn add_kind(&mut self, field: &str, msg: impl Into<String>, kind: &str) {
        self.errors
            .push(FieldError::new(&[self.origin, field], msg, kind));
    }

    /// A problem at a nested location, e.g. `["slots", "0", "start"]`.
    pub fn add_at(&mut self, path: &[&str], msg: impl Into<String>) {
        let mut loc = vec![self.origin];
        loc.extend_from_slice(path);
        self.errors.push(FieldError::new(&loc, msg, "value_error"));
    }

    pub fn into_result(self) -> Result<(), ApiError> {
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(ApiError::Validation(self.errors))
        }
    }

    /// Required, trimmed non-empty text no longer than `max` characters.
    pub fn text(&mut self, field: &str, value: &str, max: usize) {
        let trimmed = value.trim();
        if trimmed.is_empty() {
            self.add(field, "must not be empty");
        } else if trimmed.chars().count() > max {
            self.add(field, format!("must be at most {max} characters"));
        }
    }

    pub fn optional_text(&mut self, field: &str, value: Option<&str>, max: usize) {
        if let Some(v) = value {
            self.text(field, v, max);
        }
    }

    pub fn email(&mut self, field: &str, value: &str) {
        if !is_valid_email(value) {
            self.add(field, "value is not a valid email address");
        }
    }

    /// Password strength: 8..=128 characters with at least one letter and one digit, and not
    /// only whitespace. Long passphrases are welcome; trivial ones are not.
    pub fn password(&mut self, field: &str, value: &str) {
        let len = value.chars().count();
        if len < MIN_PASSWORD_LEN {
            self.add(
                field,
                format!("password must be at least {MIN_PASSWORD_LEN} characters"),
            );
        } else if len > MAX_PASSWORD_LEN {
            self.add(
                field,
                format!("password must be at most {MAX_PASSWORD_LEN} characters"),
            );
        } else if !value.chars().any(char::is_alphabetic)
            || !value.chars().any(|c| c.is_ascii_digit())
        {
            self.add(
                field,
                "password must contain at least one letter and one digit",
            );
        }
    }

    /// Lowercase letters, digits and single hyphens, 2..=63 characters.
    pub fn slug(&mut self, field: &str, value: &str) {
        let ok = (2..=63).contains(&value.len())
            && value
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            && !value.starts_with('-')
            && !value.ends_with('-')
            && !value.contains("--");
        if !ok {
            self.add(
                field,
                "slug must be 2-63 lowercase letters, digits or single hyphens, not starting or ending with a hyphen",
            );
        }
    }

    /// An optional value from a fixed set: a 422 of type `enum` naming the allowed values.
    pub fn one_of(&mut self, field: &str, value: Option<&str>, allowed: &[&str]) {
        if value.is_some_and(|v| !allowed.contains(&v)) {
            self.add_kind(
                field,
                format!("must be one of {}", allowed.join(", ")),
                "enum",
            );
        }
    }

    pub fn future(&mut self, field: &str, value: Option<DateTime<Utc>>) {
        if let Some(t) = value {
            if t <= Utc::now() {
                self.add(field, "must be in the future");
            }
        }
    }
}

/// A pragmatic email check: one `@`, a non-empty local part, a dotted domain of sane
/// characters, no whitespace, at most 254 characters. Full RFC 5322 accepts addresses no mail
/// system delivers to; this accepts what users actually type.
pub fn is_valid_email(value: &str) -> bool {
    if value.len() > 254 || value.chars().any(char::is_whitespace) {
        return false;
    }
    let Some((local, domain)) = value.split_once('@') else {
        return false;
    };
    if local.is_empty() || local.len() > 64 || domain.contains('@') {
        return false;
    }
    let labels: Vec<&str> = domain.split('.').collect();
    labels.len() >= 2
        && labels.iter().all(|l| {
            !l.is_empty()
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
        && labels.last().is_some_and(|tld| tld.len() >= 2)
}

/// Normalises an email for storage and lookup.
pub fn normalize_email(value: &str) -> String {
    value.trim().to_lowercase()
}

/// Derives a slug from a display name: "Acme Coffee Co." → "acme-coffee-co".
pub fn slugify(name: &str) -> String {
    let mut slug = String::new();
    for c in name.chars().flat_map(char::to_lowercase) {
        if c.is_ascii_alphanumeric() {
            slug.push(c);
        } else if !slug.ends_with('-') && !slug.is_empty() {
            slug.push('-');
        }
    }
    let slug = slug.trim_end_matches('-').to_string();
    let mut slug: String = slug.chars().take(50).collect();
    slug = slug.trim_end_matches('-').to_string();
    if slug.len() < 2 {
        slug = format!("org-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    }
    slug
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails() {
        assert!(is_valid_email("ana@example.com"));
        assert!(is_valid_email("ana.b+tag@mail.example.co"));
        for bad in [
            "",
            "ana",
            "ana@",
            "@x.com",
            "ana@x",
            "a b@x.com",
            "ana@x..com",
            "ana@@x.com",
        ] {
            assert!(!is_valid_email(bad), "{bad}");
        }
    }

    #[test]
    fn passwords() {
        let check = |p: &str| {
            let mut v = Violations::body();
            v.password("password", p);
            v.into_result().is_ok()
        };
        assert!(check("Secret123"));
        assert!(!check("short1"));
        assert!(!check("onlyletters"));
        assert!(!check("12345678"));
    }

    #[test]
    fn slugs() {
        assert_eq!(slugify("Acme Coffee Co."), "acme-coffee-co");
        assert_eq!(slugify("  Ünïcode!! Shop "), "n-code-shop");
        assert!(slugify("!").starts_with("org-"));
        let mut v = Violations::body();
        v.slug("slug", "acme-1");
        v.slug("slug", "-bad");
        assert_eq!(v.into_result().unwrap_err().status().as_u16(), 422);
    }
}
