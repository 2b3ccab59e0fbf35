//! Input rules shared by every endpoint: bounded strings, no NUL or control
//! characters (a database must never be the one to refuse them), slugs,
//! emails. Checks collect every field error of a request, so a client fixes
//! them all in one round.

use super::problem::{ApiError, FieldError};

#[derive(Debug, Default)]
pub struct Checks {
    errors: Vec<FieldError>,
}

/// Slugs: lower-case letters, digits and single hyphens, 2 to 50 long.
pub const SLUG_MAX: usize = 50;

impl Checks {
    pub fn new() -> Self {
        Checks::default()
    }

    pub fn add(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.errors.push(FieldError::new(field, message));
    }

    /// A one-line name: trimmed, 1 to `max` characters, no control
    /// characters. Answers the trimmed value.
    pub fn line(&mut self, field: &str, value: &str, max: usize) -> String {
        let trimmed = value.trim();
        if trimmed.is_empty() {
            self.add(field, "must not be empty");
        } else if trimmed.chars().count() > max {
            self.add(field, format!("must be at most {max} characters"));
        } else if trimmed.chars().any(char::is_control) {
            self.add(field, "must not contain control characters");
        }
        trimmed.to_owned()
    }

    /// Free text: up to `max` characters; line breaks and tabs allowed, other
    /// control characters (NUL above all) refused.
    pub fn text(&mut self, field: &str, value: &str, max: usize) -> String {
        if value.chars().count() > max {
            self.add(field, format!("must be at most {max} characters"));
        } else if value
            .chars()
            .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
        {
            self.add(field, "must not contain control characters");
        }
        value.to_owned()
    }

    pub fn slug(&mut self, field: &str, value: &str) -> String {
        if let Err(error) = check_slug(value) {
            self.add(field, error.to_string());
        }
        value.to_owned()
    }

    /// An email address, answered lower-cased (emails are compared so).
    pub fn email(&mut self, field: &str, value: &str) -> String {
        let email = value.trim().to_lowercase();
        if let Err(message) = check_email(&email) {
            self.add(field, message);
        }
        email
    }

    pub fn finish(self) -> Result<(), ApiError> {
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(ApiError::validation(self.errors))
        }
    }
}

/// Why a slug is refused (the message a field error shows).
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum SlugError {
    #[error("must be 2 to {SLUG_MAX} characters")]
    Length,
    #[error("must be lower-case letters, digits and single hyphens, not at either end")]
    Characters,
}

fn check_slug(value: &str) -> Result<(), SlugError> {
    let valid_chars = value
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if !(2..=SLUG_MAX).contains(&value.len()) {
        Err(SlugError::Length)
    } else if !valid_chars || value.starts_with('-') || value.ends_with('-') || value.contains("--")
    {
        Err(SlugError::Characters)
    } else {
        Ok(())
    }
}

fn check_email(email: &str) -> Result<(), &'static str> {
    let Some((local, domain)) = email.split_once('@') else {
        return Err("must be an email address");
    };
    let plausible = !local.is_empty()
        && local.len() <= 64
        && email.len() <= 254
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !domain.contains('@')
        && !email.chars().any(|c| c.is_whitespace() || c.is_control());
    if plausible {
        Ok(())
    } else {
        Err("must be an email address")
    }
}

/// A slug derived from a name ("Web Platform!" → "web-platform"). A name
/// with too few ASCII letters or digits to make one ("開発") gets
/// `fallback` and the start of `id`, so such names do not all collide on
/// one slug.
pub fn slugify(name: &str, fallback: &str, id: uuid::Uuid) -> String {
    let mut slug = String::new();
    for c in name.chars().flat_map(char::to_lowercase) {
        if c.is_ascii_alphanumeric() {
            slug.push(c);
        } else if !slug.ends_with('-') && !slug.is_empty() {
            slug.push('-');
        }
        if slug.len() >= SLUG_MAX {
            break;
        }
    }
    let slug = slug.trim_end_matches('-').to_owned();
    if slug.len() < 2 {
        let id = id.simple().to_string();
        // The random tail of a v7 id: its head is a timestamp.
        format!("{fallback}-{}", &id[id.len() - 8..])
    } else {
        slug
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_trimmed_and_bounded() {
        let mut checks = Checks::new();
        assert_eq!(checks.line("name", "  Web  ", 10), "Web");
        checks.line("empty", "   ", 10);
        checks.line("long", &"é".repeat(11), 10);
        checks.line("nul", "a\0b", 10);
        let error = checks.finish().unwrap_err();
        let fields: Vec<&str> = error.errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, vec!["empty", "long", "nul"]);
    }

    #[test]
    fn text_allows_line_breaks_but_not_nul() {
        let mut checks = Checks::new();
        checks.text("ok", "line\nline\ttab", 100);
        assert!(checks.finish().is_ok());
        let mut checks = Checks::new();
        checks.text("bad", "nul\0", 100);
        assert!(checks.finish().is_err());
    }

    #[test]
    fn slugs_follow_their_grammar() {
        for good in ["ab", "web-2", "a1b2"] {
            assert!(check_slug(good).is_ok(), "{good}");
        }
        for bad in [
            "a",
            "-ab",
            "ab-",
            "a--b",
            "Ab",
            "a_b",
            "a b",
            &"a".repeat(51),
        ] {
            assert!(check_slug(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn slugify_makes_valid_slugs() {
        let id = uuid::Uuid::now_v7();
        assert_eq!(slugify("Web Platform!", "project", id), "web-platform");
        assert_eq!(slugify("  Ünïcode  name ", "project", id), "n-code-name");
        assert!(check_slug(&slugify("!", "project", id)).is_ok());
        assert!(check_slug(&slugify(&"long name ".repeat(20), "project", id)).is_ok());
        let other = uuid::Uuid::now_v7();
        assert_ne!(
            slugify("開発", "workspace", id),
            slugify("開発", "workspace", other),
            "names without ASCII do not collide"
        );
        assert!(check_slug(&slugify("開発", "workspace", id)).is_ok());
    }

    #[test]
    fn emails_are_lowercased_and_checked() {
        let mut checks = Checks::new();
        assert_eq!(
            checks.email("email", " Ada@Example.COM "),
            "ada@example.com"
        );
        assert!(checks.finish().is_ok());
        for bad in [
            "ada",
            "ada@",
            "@example.com",
            "ada@example",
            "a da@example.com",
            "ada@.com",
        ] {
            assert!(check_email(bad).is_err(), "{bad}");
        }
    }
}
