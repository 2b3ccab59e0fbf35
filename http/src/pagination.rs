//! Offset pagination, as the contract has it: `offset` (default 0) and
//! `limit` (default 50, 1 to 100; outside → 422), answered as `items`,
//! `total`, `has_more`, `offset`, `limit`; `sort` names a field, `-field`
//! sorts descending; ties are broken by id so pages are stable.

use serde::Serialize;
use utoipa::ToSchema;

use super::problem::ApiError;

pub const DEFAULT_LIMIT: u64 = 50;
pub const MAX_LIMIT: u64 = 100;
/// Offsets beyond this are refused: deep offsets cost a scan of everything
/// before them.
pub const MAX_OFFSET: u64 = 1_000_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PageRequest {
    pub offset: u64,
    pub limit: u64,
}

impl PageRequest {
    pub fn new(offset: Option<u64>, limit: Option<u64>) -> Result<PageRequest, ApiError> {
        let offset = offset.unwrap_or(0);
        let limit = limit.unwrap_or(DEFAULT_LIMIT);
        if !(1..=MAX_LIMIT).contains(&limit) {
            return Err(ApiError::field(
                "limit",
                format!("must be between 1 and {MAX_LIMIT}"),
            ));
        }
        if offset > MAX_OFFSET {
            return Err(ApiError::field(
                "offset",
                format!("must be at most {MAX_OFFSET}"),
            ));
        }
        Ok(PageRequest { offset, limit })
    }

    pub fn offset_i64(&self) -> i64 {
        self.offset as i64
    }

    pub fn limit_i64(&self) -> i64 {
        self.limit as i64
    }

    pub fn page<T>(&self, items: Vec<T>, total: u64) -> Page<T> {
        let has_more = self.offset + (items.len() as u64) < total;
        Page {
            items,
            total,
            has_more,
            offset: self.offset,
            limit: self.limit,
        }
    }
}

/// One page of a list.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// How many items match, across all pages.
    pub total: u64,
    /// Whether items follow this page (`offset + items.len() < total`).
    pub has_more: bool,
    pub offset: u64,
    pub limit: u64,
}

impl<T> Page<T> {
    /// The same page with each item mapped.
    pub fn map<U>(self, f: impl FnMut(T) -> U) -> Page<U> {
        Page {
            items: self.items.into_iter().map(f).collect(),
            total: self.total,
            has_more: self.has_more,
            offset: self.offset,
            limit: self.limit,
        }
    }
}

/// A parsed `sort` parameter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sort<F> {
    pub field: F,
    pub descending: bool,
}

impl<F: Copy> Sort<F> {
    /// Parses `field` or `-field` against the fields a list allows.
    pub fn parse(
        value: Option<&str>,
        allowed: &[(&str, F)],
        default: Sort<F>,
    ) -> Result<Sort<F>, ApiError> {
        let Some(value) = value else {
            return Ok(default);
        };
        let (name, descending) = match value.strip_prefix('-') {
            Some(name) => (name, true),
            None => (value, false),
        };
        allowed
            .iter()
            .find(|(candidate, _)| *candidate == name)
            .map(|(_, field)| Sort {
                field: *field,
                descending,
            })
            .ok_or_else(|| {
                let names: Vec<&str> = allowed.iter().map(|(name, _)| *name).collect();
                ApiError::field(
                    "sort",
                    format!(
                        "must be one of {} (prefix - to sort descending)",
                        names.join(", ")
                    ),
                )
            })
    }

    pub fn direction(&self) -> &'static str {
        if self.descending { "DESC" } else { "ASC" }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_outside_one_to_a_hundred_are_refused() {
        assert_eq!(
            PageRequest::new(None, None).unwrap(),
            PageRequest {
                offset: 0,
                limit: 50
            }
        );
        assert!(PageRequest::new(None, Some(0)).is_err());
        assert!(PageRequest::new(None, Some(101)).is_err());
        assert!(PageRequest::new(Some(1_000_001), Some(1)).is_err());
    }

    #[test]
    fn has_more_follows_the_contract() {
        let request = PageRequest {
            offset: 40,
            limit: 10,
        };
        assert!(request.page(vec![0; 10], 51).has_more);
        assert!(!request.page(vec![0; 10], 50).has_more);
        let past_the_end = PageRequest {
            offset: 100,
            limit: 10,
        }
        .page(Vec::<u8>::new(), 50);
        assert!(!past_the_end.has_more);
    }

    #[test]
    fn sort_accepts_known_fields_in_either_direction() {
        let allowed = [("name", 1), ("created_at", 2)];
        let default = Sort {
            field: 2,
            descending: false,
        };
        assert_eq!(
            Sort::parse(Some("-name"), &allowed, default).unwrap(),
            Sort {
                field: 1,
                descending: true
            }
        );
        assert_eq!(Sort::parse(None, &allowed, default).unwrap(), default);
        assert!(Sort::parse(Some("password"), &allowed, default).is_err());
    }
}
