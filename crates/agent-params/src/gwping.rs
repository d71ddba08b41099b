//! The parameters of `ocf:clever:gwping` and the value types behind them.
//!
//! Names and defaults follow the stock `ocf:pacemaker:ping` wherever the meaning is the same, so
//! an admin can swap agents by changing only the type. Stage one (pure): every value is parsed
//! here and `configure` turns them into [`Settings`].

use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

use clever_ocf::{
    AbsolutePath, Action, ContentType, Parameter, ParameterError, ParameterSpec, ParameterType,
    Parameters,
};

use crate::{AdvertisedAction, AgentParameters};

/// The type name: `ocf:clever:gwping`.
pub const AGENT_NAME: &str = "gwping";

pub const START: AdvertisedAction = AdvertisedAction::new(Action::Start, 20);
pub const STOP: AdvertisedAction = AdvertisedAction::new(Action::Stop, 20);
/// Every 2 s, not the stock agent's 10 s: a gateway loss reaches the CIB within interval +
/// timeout + dampen, 9 s with the defaults instead of 17 s. A monitor costs about 8 ms of CPU,
/// 6.6 ms of it the `attrd_updater` it runs (docs/benchmarks.md), so 1800 an hour take ~14 s,
/// 0.4% of one core. The 20 s timeout holds a round to a gateway that is down (names resolve
/// within `timeout`, then the probe takes `timeout`) with the reserve for `attrd_updater`, and
/// the stock agent's attempts x timeout too.
pub const MONITOR: AdvertisedAction = AdvertisedAction::new(Action::Monitor, 20)
    .interval(2)
    .depth(0);
pub const VALIDATE_ALL: AdvertisedAction = AdvertisedAction::new(Action::ValidateAll, 20);

/// Every action line of the metadata, in order.
pub static ACTIONS: &[AdvertisedAction] = &[START, STOP, MONITOR, VALIDATE_ALL];

/// Every parameter, in the order of the metadata.
pub static PARAMETERS: &[&dyn ParameterSpec] = &[
    &HOST_LIST,
    &NAME,
    &MULTIPLIER,
    &DAMPEN,
    &ATTEMPTS,
    &TIMEOUT,
    &FAILURE_SCORE,
    &INTERFACE,
    &PIDFILE,
    &OPTIONS,
    &USE_FPING,
    &DEBUG,
];

/// The agent as the generator checks it.
pub static AGENT: AgentParameters = AgentParameters {
    name: AGENT_NAME,
    parameters: PARAMETERS,
    actions: ACTIONS,
    configure,
};

fn configure(parameters: &Parameters) -> Result<(), ParameterError> {
    Settings::from_parameters(parameters).map(drop)
}

/// Most entries `host_list` may hold: every one is probed at once, each with its own sequence
/// number.
pub const MAX_HOSTS: usize = 256;
/// Largest per-host weight.
pub const MAX_WEIGHT: u32 = 1_000_000;
/// Largest absolute multiplier.
pub const MAX_MULTIPLIER: i64 = 1_000_000;
/// Most echo requests per host.
pub const MAX_ATTEMPTS: u32 = 20;
/// Shortest and longest wait for a reply.
pub const MIN_TIMEOUT: Duration = Duration::from_millis(10);
pub const MAX_TIMEOUT: Duration = Duration::from_secs(300);
/// Longest dampening accepted.
pub const MAX_DAMPEN: Duration = Duration::from_secs(3600);

pub static HOST_LIST: Parameter<HostList> = Parameter::new(
    "host_list",
    "Hosts to ping, with optional weights",
    "The hosts whose reachability is scored, separated by spaces (or commas): IPv4 addresses, \
     IPv6 addresses (a link-local one with its zone, fe80::1%eth0) or host names. A host may \
     carry a weight after an equals sign, which can never be part of an address or a name: \
     '192.0.2.1=5 gw.example.com=2 2001:db8::53' counts the first host 5, the second 2 and the \
     third 1. Without weights the score is the number of reachable hosts, as with \
     ocf:pacemaker:ping. A name that does not resolve counts as unreachable and is logged.",
)
.required();

pub static NAME: Parameter<AttributeName> = Parameter::new(
    "name",
    "Attribute name",
    "The node attribute that holds the score; location rules refer to it (score-attribute, \
     'not_defined pingd', 'pingd lte 0').",
)
.default("pingd");

pub static MULTIPLIER: Parameter<i64> = Parameter::new(
    "multiplier",
    "Value multiplier",
    "The sum of the weights of the reachable hosts is multiplied by this number (from -1000000 \
     to 1000000) to give the attribute's value.",
)
.default("1");

pub static DAMPEN: Parameter<Interval> = Parameter::new(
    "dampen",
    "Dampening interval",
    "How long the attribute manager waits for further changes before it writes a new value to \
     the CIB (attrd_updater --delay), so a short blip does not move resources. Seconds, or a \
     number with unit ms, s, m or h. The first value after start is written at once. Keep it \
     above the monitor interval plus timeout, so that one failed round is overwritten by the next \
     before it is written. The default 5s does so for the advertised 2s monitor, which puts a \
     lost gateway in the CIB within 9s for about 8ms of CPU a monitor (14s an hour; \
     ocf:pacemaker:ping every 10s: 25ms, 9s an hour).",
)
.default("5s");

pub static ATTEMPTS: Parameter<u32> = Parameter::new(
    "attempts",
    "Echo requests per host",
    "How many echo requests (1 to 20) each host gets, spread evenly over timeout; a host that \
     has answered gets no more. A host counts as reachable at its first reply. (The stock \
     agent's fping mode spreads its attempts the same way.)",
)
.default("3");

pub static TIMEOUT: Parameter<Interval> = Parameter::new(
    "timeout",
    "How long a host has to answer",
    "How long a host has to answer, counted from its first echo request; whatever has not \
     answered by then counts as unreachable. Seconds, or a number with unit ms, s, m or h; \
     from 10ms to 300s. An unreachable host therefore costs this long, once, however many \
     hosts there are (all are probed at once); reachable hosts cost their round-trip time. \
     Names get at most as long again to resolve. The operation's timeout bounds it all.",
)
.default("2");

pub static FAILURE_SCORE: Parameter<i64> = Parameter::new(
    "failure_score",
    "Fail below this score",
    "When set, start and monitor fail (after updating the attribute) if the score is below this \
     value, so Pacemaker's on-fail handling applies. Unset: never fails for a low score.",
);

pub static INTERFACE: Parameter<InterfaceName> = Parameter::new(
    "interface",
    "Send probes through this interface",
    "When set, echo requests leave through this network interface only (SO_BINDTODEVICE), as \
     'ping -I' does: a host reachable only by another path counts as unreachable.",
);

pub static PIDFILE: Parameter<AbsolutePath> = Parameter::new(
    "pidfile",
    "State file",
    "The file whose presence means the resource is started on this node. Unset: \
     gwping-<resource instance> in ${HA_RSCTMP} (/run/resource-agents), which the system \
     empties at boot. The name is ocf:pacemaker:ping's, for drop-in compatibility.",
);

pub static OPTIONS: Parameter<String> = Parameter::new(
    "options",
    "Not supported",
    "ocf:pacemaker:ping passes this to the ping program; gwping runs no ping program, so any \
     value is refused (bind to an interface with the interface parameter instead of '-I').",
);

pub static USE_FPING: Parameter<bool> = Parameter::new(
    "use_fping",
    "Ignored",
    "Accepted for compatibility with ocf:pacemaker:ping and ignored: gwping sends its own echo \
     requests to all hosts at once.",
);

pub static DEBUG: Parameter<DebugLevel> = Parameter::new(
    "debug",
    "Log every probe result",
    "true (or a number above 0, as with ocf:pacemaker:ping) logs each host's result and the \
     score on every run at info level; otherwise only unreachable hosts are logged.",
)
.default("false");

/// One entry of `host_list`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostSpec {
    pub host: Host,
    pub weight: u32,
}

/// How a host was given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Host {
    /// An address literal: nothing to resolve.
    Address(IpAddr),
    /// A host name, or a scoped IPv6 address (`fe80::1%eth0`), resolved at probe time.
    Name(String),
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Address(address) => address.fmt(f),
            Self::Name(name) => f.write_str(name),
        }
    }
}

impl fmt::Display for HostSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.weight == 1 {
            self.host.fmt(f)
        } else {
            write!(f, "{}={}", self.host, self.weight)
        }
    }
}

/// The parsed `host_list`: at least one host, at most [`MAX_HOSTS`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostList(pub Vec<HostSpec>);

impl ParameterType for HostList {
    const CONTENT_TYPE: ContentType = ContentType::String;

    fn parse(raw: &str) -> Result<Self, String> {
        let entries = raw
            .split(|c: char| c.is_whitespace() || c == ',')
            .filter(|token| !token.is_empty())
            .map(parse_entry)
            .collect::<Result<Vec<_>, _>>()?;
        if entries.is_empty() {
            return Err("no host given".to_owned());
        }
        if entries.len() > MAX_HOSTS {
            return Err(format!(
                "{} hosts given, at most {MAX_HOSTS} allowed",
                entries.len()
            ));
        }
        Ok(Self(entries))
    }
}

fn parse_entry(token: &str) -> Result<HostSpec, String> {
    let (host, weight) = match token.split_once('=') {
        None => (token, 1),
        Some((host, weight)) => {
            let weight = weight
                .parse::<u32>()
                .ok()
                .filter(|w| (1..=MAX_WEIGHT).contains(w))
                .ok_or_else(|| {
                    format!("{token:?}: the weight after '=' must be from 1 to {MAX_WEIGHT}")
                })?;
            (host, weight)
        }
    };
    // [2001:db8::1] is accepted too, as in URLs.
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    Ok(HostSpec {
        host: parse_host(host).map_err(|reason| format!("{token:?}: {reason}"))?,
        weight,
    })
}

fn parse_host(host: &str) -> Result<Host, String> {
    if host.is_empty() {
        return Err("no host before the weight".to_owned());
    }
    if let Ok(address) = host.parse::<IpAddr>() {
        return unicast(address).map(Host::Address);
    }
    if let Some((address, zone)) = host.split_once('%') {
        let address = address
            .parse::<std::net::Ipv6Addr>()
            .map_err(|_| "only an IPv6 address may carry a %zone".to_owned())?;
        unicast(IpAddr::V6(address))?;
        if !valid_interface(zone) {
            return Err(format!("{zone:?} is not an interface name"));
        }
        return Ok(Host::Name(host.to_owned()));
    }
    if host.contains(':') {
        return Err("not an IPv6 address (a weight is written host=weight)".to_owned());
    }
    if host.len() > 253 {
        return Err("a host name has at most 253 characters".to_owned());
    }
    let label_ok = |label: &str| {
        !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && label
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    };
    if !host.trim_end_matches('.').split('.').all(label_ok) {
        return Err("not an IP address or a valid host name".to_owned());
    }
    Ok(Host::Name(host.to_owned()))
}

/// Only a unicast address can answer a ping as one host.
fn unicast(address: IpAddr) -> Result<IpAddr, String> {
    let bad = match address {
        IpAddr::V4(v4) => v4.is_unspecified() || v4.is_multicast() || v4.is_broadcast(),
        IpAddr::V6(v6) => v6.is_unspecified() || v6.is_multicast(),
    };
    if bad {
        Err(format!("{address} is not a unicast address"))
    } else {
        Ok(address)
    }
}

fn valid_interface(name: &str) -> bool {
    // IFNAMSIZ is 16 including the terminating NUL; the kernel refuses '/', ':' and blanks.
    !name.is_empty()
        && name.len() < 16
        && name != "."
        && name != ".."
        && name
            .chars()
            .all(|c| c.is_ascii_graphic() && c != '/' && c != ':' && c != '%')
}

/// A node attribute name, safe as one `attrd_updater` argument.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttributeName(String);

impl AttributeName {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for AttributeName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl ParameterType for AttributeName {
    const CONTENT_TYPE: ContentType = ContentType::String;

    fn parse(raw: &str) -> Result<Self, String> {
        let name = raw.trim();
        let ok = !name.is_empty()
            && name.len() <= 128
            && name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':'));
        if ok {
            Ok(Self(name.to_owned()))
        } else {
            Err(
                "expected a letter or '_' then letters, digits, '_', '-', '.' or ':' (at most \
                 128)"
                    .to_owned(),
            )
        }
    }
}

/// A network interface name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InterfaceName(String);

impl InterfaceName {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl ParameterType for InterfaceName {
    const CONTENT_TYPE: ContentType = ContentType::String;

    fn parse(raw: &str) -> Result<Self, String> {
        let name = raw.trim();
        if valid_interface(name) {
            Ok(Self(name.to_owned()))
        } else {
            Err("not an interface name (1 to 15 characters, no '/', ':' or blanks)".to_owned())
        }
    }
}

/// A duration as Pacemaker's shell agents accept it: an integer with an optional unit; a bare
/// number is seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Interval(pub Duration);

impl ParameterType for Interval {
    const CONTENT_TYPE: ContentType = ContentType::String;

    fn parse(raw: &str) -> Result<Self, String> {
        const EXPECTED: &str = "expected a whole number with an optional unit ms, s, m or h";
        let text = raw.trim();
        let split = text
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len());
        let (number, unit) = text.split_at(split);
        let number: u64 = number.parse().map_err(|_| EXPECTED.to_owned())?;
        let millis_per = match unit.trim() {
            "ms" | "msec" => 1,
            "" | "s" | "sec" => 1_000,
            "m" | "min" => 60_000,
            "h" | "hr" => 3_600_000,
            _ => return Err(EXPECTED.to_owned()),
        };
        number
            .checked_mul(millis_per)
            .map(|ms| Self(Duration::from_millis(ms)))
            .ok_or_else(|| "too long".to_owned())
    }
}

/// `debug` as the stock agent reads it: a boolean or a level.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DebugLevel(pub bool);

impl ParameterType for DebugLevel {
    const CONTENT_TYPE: ContentType = ContentType::String;

    fn parse(raw: &str) -> Result<Self, String> {
        if let Ok(level) = raw.trim().parse::<u32>() {
            return Ok(Self(level > 0));
        }
        bool::parse(raw)
            .map(Self)
            .map_err(|_| "expected true/false or a level number".to_owned())
    }
}

/// Everything the handlers need, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub hosts: Vec<HostSpec>,
    pub name: AttributeName,
    pub multiplier: i64,
    pub dampen: Duration,
    pub attempts: u32,
    pub timeout: Duration,
    pub failure_score: Option<i64>,
    pub interface: Option<InterfaceName>,
    pub pidfile: Option<AbsolutePath>,
    pub verbose: bool,
}

impl Settings {
    /// Stage one: typed settings from the loaded parameters, ranges checked.
    pub fn from_parameters(parameters: &Parameters) -> Result<Self, ParameterError> {
        if let Some(options) = OPTIONS.optional(parameters)? {
            return Err(ParameterError::invalid(
                OPTIONS.name(),
                &options,
                "gwping runs no ping program; use interface= instead of -I",
            ));
        }
        let _ignored = USE_FPING.optional(parameters)?;
        let multiplier = MULTIPLIER.get(parameters)?;
        // Not abs(): i64::MIN has none (a panic in debug, a wrap past the check in release).
        if !(-MAX_MULTIPLIER..=MAX_MULTIPLIER).contains(&multiplier) {
            return Err(ParameterError::invalid(
                MULTIPLIER.name(),
                &multiplier.to_string(),
                format!("must be from -{MAX_MULTIPLIER} to {MAX_MULTIPLIER}"),
            ));
        }
        let attempts = ATTEMPTS.get(parameters)?;
        if !(1..=MAX_ATTEMPTS).contains(&attempts) {
            return Err(ParameterError::invalid(
                ATTEMPTS.name(),
                &attempts.to_string(),
                format!("must be from 1 to {MAX_ATTEMPTS}"),
            ));
        }
        let Interval(timeout) = TIMEOUT.get(parameters)?;
        if !(MIN_TIMEOUT..=MAX_TIMEOUT).contains(&timeout) {
            return Err(ParameterError::invalid(
                TIMEOUT.name(),
                parameters.raw(TIMEOUT.name()).unwrap_or_default(),
                "must be from 10ms to 300s",
            ));
        }
        let Interval(dampen) = DAMPEN.get(parameters)?;
        if dampen > MAX_DAMPEN {
            return Err(ParameterError::invalid(
                DAMPEN.name(),
                parameters.raw(DAMPEN.name()).unwrap_or_default(),
                "must be at most 1h",
            ));
        }
        Ok(Self {
            hosts: HOST_LIST.get(parameters)?.0,
            name: NAME.get(parameters)?,
            multiplier,
            dampen,
            attempts,
            timeout,
            failure_score: FAILURE_SCORE.optional(parameters)?,
            interface: INTERFACE.optional(parameters)?,
            pidfile: PIDFILE.optional(parameters)?,
            verbose: DEBUG.get(parameters)?.0,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsString;

    fn hosts(raw: &str) -> Result<Vec<HostSpec>, String> {
        HostList::parse(raw).map(|list| list.0)
    }

    fn ip(text: &str) -> Host {
        Host::Address(text.parse().unwrap())
    }

    #[test]
    fn host_list_accepts_addresses_names_and_weights() {
        let list =
            hosts("192.0.2.1=5  gw.example.com=2,2001:db8::53 [2001:db8::1]=3 fe80::1%eth0 gw")
                .unwrap();
        assert_eq!(
            list,
            vec![
                HostSpec {
                    host: ip("192.0.2.1"),
                    weight: 5
                },
                HostSpec {
                    host: Host::Name("gw.example.com".into()),
                    weight: 2
                },
                HostSpec {
                    host: ip("2001:db8::53"),
                    weight: 1
                },
                HostSpec {
                    host: ip("2001:db8::1"),
                    weight: 3
                },
                HostSpec {
                    host: Host::Name("fe80::1%eth0".into()),
                    weight: 1
                },
                HostSpec {
                    host: Host::Name("gw".into()),
                    weight: 1
                },
            ]
        );
        assert_eq!(list[0].to_string(), "192.0.2.1=5");
        assert_eq!(list[2].to_string(), "2001:db8::53");
    }

    #[test]
    fn ipv6_colons_are_never_a_weight() {
        // "::3" is an address, not host ":" with weight 3.
        assert_eq!(
            hosts("fd00::3").unwrap()[0],
            HostSpec {
                host: ip("fd00::3"),
                weight: 1
            }
        );
        assert!(hosts("10.0.0.1:3").unwrap_err().contains("host=weight"));
    }

    #[test]
    fn host_list_refuses_bad_entries() {
        for (raw, needle) in [
            ("", "no host"),
            (" , ", "no host"),
            ("10.0.0.1=0", "weight"),
            ("10.0.0.1=-1", "weight"),
            ("10.0.0.1=x", "weight"),
            ("10.0.0.1=1000001", "weight"),
            ("=3", "no host before"),
            ("0.0.0.0", "unicast"),
            ("224.0.0.1", "unicast"),
            ("255.255.255.255", "unicast"),
            ("::", "unicast"),
            ("ff02::1", "unicast"),
            ("-oops", "host name"),
            ("a..b", "host name"),
            ("bad/name", "host name"),
            ("10.0.0.1%eth0", "IPv6"),
            ("fe80::1%", "interface"),
            ("fe80::1%a/b", "interface"),
        ] {
            let err = hosts(raw).unwrap_err();
            assert!(err.contains(needle), "{raw:?}: {err}");
        }
        let many = vec!["10.0.0.1"; MAX_HOSTS + 1].join(" ");
        assert!(hosts(&many).unwrap_err().contains("at most"));
        assert_eq!(
            hosts(&vec!["10.0.0.1"; MAX_HOSTS].join(" ")).unwrap().len(),
            MAX_HOSTS
        );
        assert!(hosts(&format!("{}.example", "a".repeat(64))).is_err());
    }

    #[test]
    fn intervals_follow_the_shell_agents() {
        let ms = |raw: &str| Interval::parse(raw).map(|i| i.0.as_millis());
        assert_eq!(ms("5"), Ok(5_000));
        assert_eq!(ms("5s"), Ok(5_000));
        assert_eq!(ms(" 250ms "), Ok(250));
        assert_eq!(ms("2m"), Ok(120_000));
        assert_eq!(ms("1h"), Ok(3_600_000));
        assert_eq!(ms("0"), Ok(0));
        for bad in ["", "s", "1.5s", "-1", "5 parsecs", "99999999999999999999h"] {
            assert!(Interval::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn attribute_and_interface_names() {
        assert!(AttributeName::parse("pingd").is_ok());
        assert!(AttributeName::parse("gw-score.v4").is_ok());
        for bad in ["", "-n", "a b", "1st", "a\nb", "a=b"] {
            assert!(AttributeName::parse(bad).is_err(), "{bad:?}");
        }
        assert!(InterfaceName::parse("eth0.100").is_ok());
        for bad in ["", "a/b", "a b", "sixteen-chars-xx", ".."] {
            assert!(InterfaceName::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn debug_accepts_the_stock_values() {
        assert_eq!(DebugLevel::parse("false"), Ok(DebugLevel(false)));
        assert_eq!(DebugLevel::parse("true"), Ok(DebugLevel(true)));
        assert_eq!(DebugLevel::parse("2"), Ok(DebugLevel(true)));
        assert_eq!(DebugLevel::parse("0"), Ok(DebugLevel(false)));
        assert!(DebugLevel::parse("loud").is_err());
    }

    fn settings(pairs: &[(&str, &str)]) -> Result<Settings, ParameterError> {
        let parameters = Parameters::load(PARAMETERS, |key| {
            pairs
                .iter()
                .find(|(k, _)| format!("OCF_RESKEY_{k}") == key)
                .map(|(_, v)| OsString::from(*v))
        })?;
        Settings::from_parameters(&parameters)
    }

    #[test]
    fn defaults_match_the_stock_agent() {
        let s = settings(&[("host_list", "192.0.2.1")]).unwrap();
        assert_eq!(s.name.as_str(), "pingd");
        assert_eq!(s.multiplier, 1);
        assert_eq!(s.dampen, Duration::from_secs(5));
        assert_eq!(s.attempts, 3);
        assert_eq!(s.timeout, Duration::from_secs(2));
        assert_eq!(s.failure_score, None);
        assert_eq!(s.interface, None);
        assert!(!s.verbose);
    }

    /// attrd writes a changed value once no further change came for `dampen`: the next monitor's
    /// value has to arrive within it (an interval, then a round that answers within `timeout`)
    /// for one failed round not to move the stack.
    #[test]
    fn dampening_outlasts_the_next_monitor() {
        let s = settings(&[("host_list", "192.0.2.1")]).unwrap();
        let interval = Duration::from_secs(MONITOR.interval_secs.unwrap().into());
        assert!(
            s.dampen >= interval + s.timeout,
            "dampen {:?} < interval {interval:?} + timeout {:?}",
            s.dampen,
            s.timeout
        );
    }

    /// With the gateway down the monitor waits the whole round: names resolve within `timeout`,
    /// the probe takes `timeout`, and the agent keeps up to 3 s for `attrd_updater`. The stock
    /// agent's bound, attempts x timeout, fits as well, so nobody swapping agents has to raise it.
    #[test]
    fn the_monitor_timeout_covers_a_round_to_a_gateway_that_is_down() {
        let s = settings(&[("host_list", "192.0.2.1")]).unwrap();
        let ours = s.timeout * 2 + Duration::from_secs(3);
        let stock = s.timeout * s.attempts;
        let advertised = Duration::from_secs(MONITOR.timeout_secs.into());
        assert!(ours.max(stock) <= advertised, "{ours:?}, {stock:?}");
    }

    /// Found by `scripts/fuzz.sh` (gwping_params): the one i64 without an absolute value.
    #[test]
    fn the_most_negative_multiplier_is_refused_not_a_panic() {
        let err = settings(&[
            ("host_list", "10.0.0.1"),
            ("multiplier", "-9223372036854775808"),
        ])
        .unwrap_err();
        assert!(err.to_string().contains("multiplier"), "{err}");
    }

    #[test]
    fn out_of_range_values_are_configuration_errors() {
        for (pairs, needle) in [
            (&[("host_list", "")][..], "host_list is not set"),
            (&[("host_list", "10.0.0.1"), ("attempts", "0")], "attempts"),
            (&[("host_list", "10.0.0.1"), ("attempts", "21")], "attempts"),
            (&[("host_list", "10.0.0.1"), ("timeout", "5ms")], "timeout"),
            (&[("host_list", "10.0.0.1"), ("timeout", "301")], "timeout"),
            (&[("host_list", "10.0.0.1"), ("dampen", "2h")], "dampen"),
            (
                &[("host_list", "10.0.0.1"), ("multiplier", "1000001")],
                "multiplier",
            ),
            (
                &[("host_list", "10.0.0.1"), ("options", "-I eth1")],
                "interface=",
            ),
            (&[("host_list", "10.0.0.1"), ("name", "-D")], "name"),
            (
                &[("host_list", "10.0.0.1"), ("pidfile", "relative")],
                "pidfile",
            ),
            (
                &[("host_list", "10.0.0.1"), ("failure_score", "high")],
                "failure_score",
            ),
        ] {
            let err = settings(pairs).unwrap_err().to_string();
            assert!(err.contains(needle), "{pairs:?}: {err}");
        }
        let s = settings(&[
            ("host_list", "10.0.0.1"),
            ("use_fping", "0"),
            ("debug", "1"),
            ("timeout", "250ms"),
            ("dampen", "0"),
            ("multiplier", "-100"),
            ("failure_score", "1"),
        ])
        .unwrap();
        assert!(s.verbose);
        assert_eq!(s.timeout, Duration::from_millis(250));
        assert_eq!(s.dampen, Duration::ZERO);
        assert_eq!(s.multiplier, -100);
        assert_eq!(s.failure_score, Some(1));
    }
}
