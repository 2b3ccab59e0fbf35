//! Free-text search terms: words that must all appear, in any order and any
//! case (the read models match them with `LIKE` against text the projector
//! lower-cased).

use tenet_http::ApiError;

/// Longest `search` parameter accepted.
pub const SEARCH_MAX: usize = 200;
/// Most words in one search.
pub const WORDS_MAX: usize = 10;

pub struct Words(Vec<String>);

impl Words {
    pub fn parse(field: &str, search: Option<&str>) -> Result<Words, ApiError> {
        let Some(search) = search else {
            return Ok(Words(Vec::new()));
        };
        if search.chars().count() > SEARCH_MAX {
            return Err(ApiError::field(
                field,
                format!("must be at most {SEARCH_MAX} characters"),
            ));
        }
        if search.chars().any(char::is_control) {
            return Err(ApiError::field(
                field,
                "must not contain control characters",
            ));
        }
        let words: Vec<String> = search.split_whitespace().map(str::to_lowercase).collect();
        if words.len() > WORDS_MAX {
            return Err(ApiError::field(
                field,
                format!("must have at most {WORDS_MAX} words"),
            ));
        }
        Ok(Words(words))
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = &String> {
        self.0.iter()
    }

    /// The words, lower-cased.
    pub fn as_slice(&self) -> &[String] {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn searches_are_bounded_and_lower_cased() {
        let words = Words::parse("search", Some("  Web   PLATFORM ")).unwrap();
        assert_eq!(words.iter().collect::<Vec<_>>(), vec!["web", "platform"]);
        assert!(Words::parse("search", Some(&"x ".repeat(11))).is_err());
        assert!(Words::parse("search", Some("nul\0")).is_err());
    }
}
