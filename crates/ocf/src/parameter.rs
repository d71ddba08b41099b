//! Typed agent parameters, declared once.
//!
//! A parameter is a `static Parameter<T>`: its name, descriptions, required-ness and default feed
//! the metadata, the usage text and the checks, and `T` says how the value parses. Agents read a
//! value through the same static (`DEVICE.get(&parameters)`), so a name is never typed twice.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fmt;
use std::marker::PhantomData;
use std::path::{Component, Path, PathBuf};

use clever_command::{shorten, SHOWN_VALUE_LEN};

use crate::status::{HasExitCode, OcfExitCode};

/// Longest parameter value we look at; anything longer is refused before parsing.
pub const MAX_VALUE_LEN: usize = 64 * 1024;

/// The `type` of a parameter's `<content>` element.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContentType {
    String,
    Integer,
    Boolean,
}

impl ContentType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::String => "string",
            Self::Integer => "integer",
            Self::Boolean => "boolean",
        }
    }
}

/// A parameter value that is missing, malformed or contradictory. All of them mean the resource
/// is not configured right: `OCF_ERR_CONFIGURED`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParameterError {
    #[error("required parameter {name} is not set")]
    Missing { name: &'static str },
    #[error("parameter {name}={value:?} is invalid: {reason}")]
    Invalid {
        name: &'static str,
        value: String,
        reason: String,
    },
    #[error("parameter {name} is not valid UTF-8")]
    NotUtf8 { name: &'static str },
    #[error("parameter {name} is longer than {MAX_VALUE_LEN} bytes")]
    TooLong { name: &'static str },
    #[error("parameters {first} and {second} conflict: {reason}")]
    Conflict {
        first: &'static str,
        second: &'static str,
        reason: String,
    },
}

impl ParameterError {
    /// `value` is invalid for `name`, quoted shortened: it comes from the CIB and may be
    /// anything, and the exit reason must stay one readable line.
    pub fn invalid(name: &'static str, value: &str, reason: impl Into<String>) -> Self {
        Self::Invalid {
            name,
            value: shorten(value, SHOWN_VALUE_LEN),
            reason: reason.into(),
        }
    }
}

impl HasExitCode for ParameterError {
    fn exit_code(&self) -> OcfExitCode {
        OcfExitCode::ErrConfigured
    }
}

/// How a parameter's text becomes a value of the agent's type.
pub trait ParameterType: Sized {
    const CONTENT_TYPE: ContentType;

    /// Parses a non-empty value, or says in a few words why it is wrong.
    fn parse(raw: &str) -> Result<Self, String>;

    /// The complete list of accepted values, for choice parameters.
    fn choices() -> Option<&'static [&'static str]> {
        None
    }
}

impl ParameterType for String {
    const CONTENT_TYPE: ContentType = ContentType::String;

    fn parse(raw: &str) -> Result<Self, String> {
        Ok(raw.to_owned())
    }
}

/// OCF booleans as the shell helpers accept them (`ocf_is_true`).
impl ParameterType for bool {
    const CONTENT_TYPE: ContentType = ContentType::Boolean;

    fn parse(raw: &str) -> Result<Self, String> {
        match raw.trim().to_ascii_lowercase().as_str() {
            "1" | "yes" | "true" | "on" | "y" => Ok(true),
            "0" | "no" | "false" | "off" | "n" => Ok(false),
            _ => Err("expected yes/no, true/false, on/off or 1/0".to_owned()),
        }
    }
}

macro_rules! integer_parameter {
    ($($t:ty),*) => {$(
        impl ParameterType for $t {
            const CONTENT_TYPE: ContentType = ContentType::Integer;

            fn parse(raw: &str) -> Result<Self, String> {
                raw.trim().parse::<$t>().map_err(|_| {
                    format!("expected an integer from {} to {}", <$t>::MIN, <$t>::MAX)
                })
            }
        }
    )*};
}
integer_parameter!(i32, i64, u8, u16, u32, u64);

/// An absolute path without `..`, so that what an admin reads in the CIB is the path used.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AbsolutePath(PathBuf);

impl AbsolutePath {
    pub fn as_path(&self) -> &Path {
        &self.0
    }

    pub fn into_path_buf(self) -> PathBuf {
        self.0
    }
}

impl AsRef<Path> for AbsolutePath {
    fn as_ref(&self) -> &Path {
        &self.0
    }
}

impl fmt::Display for AbsolutePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.display().fmt(f)
    }
}

impl ParameterType for AbsolutePath {
    const CONTENT_TYPE: ContentType = ContentType::String;

    fn parse(raw: &str) -> Result<Self, String> {
        let path = Path::new(raw);
        if !path.is_absolute() {
            return Err("must be an absolute path".to_owned());
        }
        if path.components().any(|c| c == Component::ParentDir) {
            return Err("must not contain '..'".to_owned());
        }
        Ok(Self(path.to_path_buf()))
    }
}

/// Declares an enum whose variants are the only accepted values of a parameter; the metadata
/// lists them and parsing rejects anything else.
///
/// ```
/// clever_ocf::choice! {
///     /// How to check the filesystem before mounting.
///     pub enum Fsck { Auto = "auto", Force = "force", Never = "no" }
/// }
/// assert_eq!("force".parse::<Fsck>(), Ok(Fsck::Force));
/// assert_eq!(Fsck::Never.to_string(), "no");
/// ```
#[macro_export]
macro_rules! choice {
    ($(#[$meta:meta])* $vis:vis enum $name:ident { $($(#[$vmeta:meta])* $variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        $vis enum $name { $($(#[$vmeta])* $variant),+ }

        impl $name {
            pub const VALUES: &'static [&'static str] = &[$($text),+];

            pub fn as_str(self) -> &'static str {
                match self { $(Self::$variant => $text),+ }
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl ::std::str::FromStr for $name {
            type Err = ::std::string::String;

            fn from_str(raw: &str) -> ::std::result::Result<Self, Self::Err> {
                match raw.trim() {
                    $($text => Ok(Self::$variant),)+
                    _ => Err(format!("expected one of: {}", Self::VALUES.join(", "))),
                }
            }
        }

        impl $crate::ParameterType for $name {
            const CONTENT_TYPE: $crate::ContentType = $crate::ContentType::String;

            fn parse(raw: &str) -> ::std::result::Result<Self, ::std::string::String> {
                raw.parse()
            }

            fn choices() -> Option<&'static [&'static str]> {
                Some(Self::VALUES)
            }
        }
    };
}

/// What the framework needs of any parameter, whatever its value type.
pub trait ParameterSpec: Sync {
    fn name(&self) -> &'static str;
    fn shortdesc(&self) -> &'static str;
    fn longdesc(&self) -> &'static str;
    fn required(&self) -> bool;
    fn unique(&self) -> bool;
    fn default(&self) -> Option<&'static str>;
    fn content_type(&self) -> ContentType;
    fn choices(&self) -> Option<&'static [&'static str]>;
    /// Parses `raw` and drops the value: the pure check of stage one.
    fn check(&self, raw: &str) -> Result<(), String>;
}

/// One declared parameter with values of type `T`.
pub struct Parameter<T> {
    name: &'static str,
    shortdesc: &'static str,
    longdesc: &'static str,
    required: bool,
    unique: bool,
    default: Option<&'static str>,
    value_type: PhantomData<fn() -> T>,
}

impl<T> fmt::Debug for Parameter<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Parameter")
            .field("name", &self.name)
            .finish()
    }
}

impl<T: ParameterType> Parameter<T> {
    /// An optional parameter without default.
    pub const fn new(name: &'static str, shortdesc: &'static str, longdesc: &'static str) -> Self {
        Self {
            name,
            shortdesc,
            longdesc,
            required: false,
            unique: false,
            default: None,
            value_type: PhantomData,
        }
    }

    /// The resource cannot be configured without it.
    pub const fn required(mut self) -> Self {
        self.required = true;
        self
    }

    /// No two resources of this agent may share the value (a device, a domain).
    pub const fn unique(mut self) -> Self {
        self.unique = true;
        self
    }

    /// The value used when the CIB sets none (or sets it empty).
    pub const fn default(mut self, value: &'static str) -> Self {
        self.default = Some(value);
        self
    }

    pub const fn name(&self) -> &'static str {
        self.name
    }

    /// The value, which must be present (required, or with a default).
    pub fn get(&self, parameters: &Parameters) -> Result<T, ParameterError> {
        self.optional(parameters)?
            .ok_or(ParameterError::Missing { name: self.name })
    }

    /// The value if the CIB or the default gives one.
    pub fn optional(&self, parameters: &Parameters) -> Result<Option<T>, ParameterError> {
        parameters
            .raw(self.name)
            .map(|raw| self.parse(raw))
            .transpose()
    }

    fn parse(&self, raw: &str) -> Result<T, ParameterError> {
        T::parse(raw).map_err(|reason| ParameterError::invalid(self.name, raw, reason))
    }
}

impl<T: ParameterType> ParameterSpec for Parameter<T> {
    fn name(&self) -> &'static str {
        self.name
    }
    fn shortdesc(&self) -> &'static str {
        self.shortdesc
    }
    fn longdesc(&self) -> &'static str {
        self.longdesc
    }
    fn required(&self) -> bool {
        self.required
    }
    fn unique(&self) -> bool {
        self.unique
    }
    fn default(&self) -> Option<&'static str> {
        self.default
    }
    fn content_type(&self) -> ContentType {
        T::CONTENT_TYPE
    }
    fn choices(&self) -> Option<&'static [&'static str]> {
        T::choices()
    }
    fn check(&self, raw: &str) -> Result<(), String> {
        T::parse(raw).map(drop)
    }
}

/// The effective values of the declared parameters: what the CIB set, else the default. Only
/// declared names are kept, and every kept value has passed its type's check.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Parameters {
    values: BTreeMap<&'static str, String>,
}

impl Parameters {
    /// Stage one: reads `OCF_RESKEY_<name>` for each declared parameter through `lookup` (the
    /// process environment in production), applies defaults, and checks required-ness and types.
    /// An empty value counts as unset, as in the shell agents' `${OCF_RESKEY_x:-default}`.
    pub fn load(
        declared: &[&'static dyn ParameterSpec],
        lookup: impl Fn(&str) -> Option<OsString>,
    ) -> Result<Self, ParameterError> {
        let mut values = BTreeMap::new();
        for spec in declared {
            let name = spec.name();
            let given = match lookup(&format!("OCF_RESKEY_{name}")) {
                None => None,
                Some(raw) => {
                    if raw.len() > MAX_VALUE_LEN {
                        return Err(ParameterError::TooLong { name });
                    }
                    let text = raw
                        .into_string()
                        .map_err(|_| ParameterError::NotUtf8 { name })?;
                    Some(text).filter(|t| !t.trim().is_empty())
                }
            };
            let value = match (given, spec.default()) {
                (Some(value), _) => value,
                (None, Some(default)) => default.to_owned(),
                (None, None) if spec.required() => return Err(ParameterError::Missing { name }),
                (None, None) => continue,
            };
            spec.check(&value)
                .map_err(|reason| ParameterError::invalid(name, &value, reason))?;
            values.insert(name, value);
        }
        Ok(Self { values })
    }

    /// The effective text of a declared parameter.
    pub fn raw(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    choice! {
        enum Mode { Fast = "fast", Safe = "safe" }
    }

    static DEVICE: Parameter<AbsolutePath> =
        Parameter::new("device", "Block device", "The device.")
            .required()
            .unique();
    static RETRIES: Parameter<u32> =
        Parameter::new("retries", "Retries", "How often.").default("3");
    static MODE: Parameter<Mode> = Parameter::new("mode", "Mode", "How.").default("safe");
    static LABEL: Parameter<String> = Parameter::new("label", "Label", "Free text.");
    static DECLARED: &[&dyn ParameterSpec] = &[&DEVICE, &RETRIES, &MODE, &LABEL];

    fn load(pairs: &[(&str, &str)]) -> Result<Parameters, ParameterError> {
        Parameters::load(DECLARED, |key| {
            pairs
                .iter()
                .find(|(k, _)| format!("OCF_RESKEY_{k}") == key)
                .map(|(_, v)| OsString::from(*v))
        })
    }

    #[test]
    fn defaults_and_typed_values() {
        let params = load(&[("device", "/dev/loop0")]).unwrap();
        assert_eq!(
            DEVICE.get(&params).unwrap().as_path(),
            Path::new("/dev/loop0")
        );
        assert_eq!(RETRIES.get(&params).unwrap(), 3);
        assert_eq!(MODE.get(&params).unwrap(), Mode::Safe);
        assert_eq!(LABEL.optional(&params).unwrap(), None);
        assert!(matches!(
            LABEL.get(&params),
            Err(ParameterError::Missing { name: "label" })
        ));
    }

    #[test]
    fn missing_required_and_empty_counts_as_unset() {
        assert_eq!(load(&[]), Err(ParameterError::Missing { name: "device" }));
        assert_eq!(
            load(&[("device", "  ")]),
            Err(ParameterError::Missing { name: "device" })
        );
        let params = load(&[("device", "/dev/x"), ("retries", "")]).unwrap();
        assert_eq!(RETRIES.get(&params).unwrap(), 3);
    }

    #[test]
    fn invalid_values_name_the_parameter() {
        let err = load(&[("device", "relative/path")]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "parameter device=\"relative/path\" is invalid: must be an absolute path"
        );
        let err = load(&[("device", "/dev/x"), ("retries", "-1")]).unwrap_err();
        assert!(err.to_string().contains("retries"), "{err}");
        let err = load(&[("device", "/dev/x"), ("mode", "reckless")]).unwrap_err();
        assert!(
            err.to_string().contains("expected one of: fast, safe"),
            "{err}"
        );
        assert!(load(&[("device", "/a/../b")]).is_err());
        assert_eq!(err.exit_code(), OcfExitCode::ErrConfigured);
    }

    #[test]
    fn hostile_values_give_short_reasons() {
        let long = "x".repeat(MAX_VALUE_LEN + 1);
        assert_eq!(
            load(&[("device", &long)]),
            Err(ParameterError::TooLong { name: "device" })
        );
        let err = load(&[("device", "/dev/x"), ("retries", &"9".repeat(5000))]).unwrap_err();
        assert!(err.to_string().len() < 200, "{err}");
        let err = load(&[("device", "rel\nwith newline")]).unwrap_err();
        assert!(!err.to_string().contains('\n'));
    }

    #[test]
    fn non_utf8_is_refused() {
        use std::os::unix::ffi::OsStringExt;
        let result = Parameters::load(DECLARED, |key| {
            (key == "OCF_RESKEY_device").then(|| OsString::from_vec(vec![b'/', 0xff]))
        });
        assert_eq!(result, Err(ParameterError::NotUtf8 { name: "device" }));
    }

    #[test]
    fn booleans_follow_ocf_is_true() {
        for yes in ["1", "yes", "TRUE", "on"] {
            assert_eq!(bool::parse(yes), Ok(true), "{yes}");
        }
        for no in ["0", "no", "False", "off"] {
            assert_eq!(bool::parse(no), Ok(false), "{no}");
        }
        assert!(bool::parse("maybe").is_err());
    }

    #[test]
    fn undeclared_variables_are_ignored() {
        let params = Parameters::load(DECLARED, |key| match key {
            "OCF_RESKEY_device" => Some("/dev/x".into()),
            _ => None,
        })
        .unwrap();
        assert_eq!(params.raw("unknown"), None);
    }
}
