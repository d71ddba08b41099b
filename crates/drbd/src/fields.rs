//! The `key:value` words that `drbdsetup status` text and `drbdsetup events2` both print.
//!
//! The two formats differ in how they arrange lines, never in how one word reads, so one reader
//! serves both; the [`Format`] it is given names the tool output in every error. Unknown keys are
//! kept but never read, so newer drbd-utils printing more does not break it.

use std::str::FromStr;

use clever_command::{shorten, SHOWN_VALUE_LEN};

use crate::error::{DrbdParseError, Format};
use crate::model::UnknownStateError;

/// The `key:value` words of one line.
pub(crate) struct Fields<'a> {
    format: Format,
    line: usize,
    pairs: Vec<(&'a str, &'a str)>,
}

impl<'a> Fields<'a> {
    /// Every word must be `key:value`; anything else means the line is not what we think it is.
    pub(crate) fn new(
        format: Format,
        words: impl Iterator<Item = &'a str>,
        line: usize,
    ) -> Result<Self, DrbdParseError> {
        let pairs = words
            .map(|word| {
                word.split_once(':').ok_or_else(|| {
                    malformed(
                        format,
                        line,
                        &format!(
                            "expected key:value, found {:?}",
                            shorten(word, SHOWN_VALUE_LEN)
                        ),
                    )
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(Self {
            format,
            line,
            pairs,
        })
    }

    pub(crate) fn line(&self) -> usize {
        self.line
    }

    pub(crate) fn get(&self, key: &str) -> Option<&'a str> {
        self.pairs.iter().find(|(k, _)| *k == key).map(|(_, v)| *v)
    }

    pub(crate) fn required(&self, key: &'static str) -> Result<&'a str, DrbdParseError> {
        self.get(key).ok_or_else(|| self.missing(key))
    }

    pub(crate) fn state<T: FromStr<Err = UnknownStateError>>(
        &self,
        key: &str,
    ) -> Result<Option<T>, DrbdParseError> {
        self.get(key)
            .map(|value| {
                value
                    .parse()
                    .map_err(|source| DrbdParseError::UnknownState {
                        format: self.format,
                        location: format!("line {} {key}", self.line),
                        source,
                    })
            })
            .transpose()
    }

    pub(crate) fn required_state<T: FromStr<Err = UnknownStateError>>(
        &self,
        key: &'static str,
    ) -> Result<T, DrbdParseError> {
        self.state(key)?.ok_or_else(|| self.missing(key))
    }

    pub(crate) fn number<T: FromStr>(&self, key: &str) -> Result<Option<T>, DrbdParseError> {
        self.get(key)
            .map(|value| value.parse().map_err(|_| self.invalid(key, value)))
            .transpose()
    }

    pub(crate) fn required_number<T: FromStr>(
        &self,
        key: &'static str,
    ) -> Result<T, DrbdParseError> {
        self.number(key)?.ok_or_else(|| self.missing(key))
    }

    pub(crate) fn yes_no(&self, key: &str) -> Result<Option<bool>, DrbdParseError> {
        self.get(key)
            .map(|value| match value {
                "yes" => Ok(true),
                "no" => Ok(false),
                other => Err(self.invalid(key, other)),
            })
            .transpose()
    }

    pub(crate) fn missing(&self, field: &'static str) -> DrbdParseError {
        DrbdParseError::Missing {
            format: self.format,
            location: format!("line {}", self.line),
            field,
        }
    }

    pub(crate) fn invalid(&self, field: &str, value: &str) -> DrbdParseError {
        DrbdParseError::InvalidValue {
            format: self.format,
            location: format!("line {}", self.line),
            field: field.to_owned(),
            value: shorten(value, SHOWN_VALUE_LEN),
        }
    }
}

/// A line that fits nowhere in the format.
pub(crate) fn malformed(format: Format, line: usize, problem: &str) -> DrbdParseError {
    DrbdParseError::Malformed {
        format,
        line,
        problem: problem.to_owned(),
    }
}
