//! The ICMP seam: name resolution and echo requests sent by the agent itself.
//!
//! All hosts are probed at once from one socket per address family. The `attempts` echo
//! requests per host are spread evenly over `timeout` (as the stock agent's fping path does):
//! attempt `k` leaves at `k x timeout / attempts`, only to hosts that have not answered, and a
//! host that has not answered `timeout` after the first request is down. A host is up at its
//! first reply, to any attempt. A refusal (an ICMP error such as "administratively
//! prohibited", or the kernel refusing to send, as with a `prohibit` route) settles the host
//! as down at once: routers rate-limit ICMP errors, so asking again would only wait. The probe
//! ends as soon as every host is settled, and never after the action's deadline. As root the
//! sockets are raw; otherwise datagram ICMP sockets are used, which need
//! `net.ipv4.ping_group_range` to include the agent's group.

use std::collections::hash_map::RandomState;
use std::fmt;
use std::hash::{BuildHasher, Hasher};
use std::io;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs, UdpSocket};
use std::os::fd::AsFd;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use clever_deadline::Deadline;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use socket2::{Domain, Protocol, Socket, Type};

use crate::packet::{self, Received, Tag, Version};
use crate::params::{Host, HostSpec};

/// How one host fared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// It answered; the time from its first request to its first reply.
    Up { address: IpAddr, rtt: Duration },
    /// No reply to any attempt; the last refusal when one came (an ICMP error, or the kernel
    /// refusing to send, as with a `prohibit` route).
    Down {
        address: IpAddr,
        refused: Option<String>,
    },
    /// The name did not resolve (in time).
    Unresolved { reason: String },
}

impl Outcome {
    pub fn is_up(&self) -> bool {
        matches!(self, Self::Up { .. })
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Up { address, rtt } => write!(f, "{address} answered in {rtt:?}"),
            Self::Down {
                address,
                refused: None,
            } => write!(f, "{address} did not answer"),
            Self::Down {
                address,
                refused: Some(reason),
            } => write!(f, "{address} unreachable: {reason}"),
            Self::Unresolved { reason } => write!(f, "does not resolve: {reason}"),
        }
    }
}

/// What a probe is allowed to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeSettings {
    pub attempts: u32,
    pub timeout: Duration,
    /// Bind the sockets to this interface.
    pub interface: Option<String>,
}

/// ICMP could not be used at all (as opposed to a host not answering).
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("cannot open an {family} ICMP socket (raw sockets need root, datagram ICMP sockets net.ipv4.ping_group_range): {source}")]
    Permission {
        family: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("cannot bind the {family} ICMP socket to interface {interface}: {source}")]
    Interface {
        family: &'static str,
        interface: String,
        #[source]
        source: io::Error,
    },
    #[error("ICMP {family} socket: {source}")]
    Socket {
        family: &'static str,
        #[source]
        source: io::Error,
    },
}

/// The seam: production probes the network, unit tests of the handlers script outcomes.
pub trait Prober {
    /// One outcome per entry of `hosts`, in order.
    fn probe(
        &self,
        hosts: &[HostSpec],
        settings: &ProbeSettings,
        deadline: &Deadline,
    ) -> Result<Vec<Outcome>, ProbeError>;
}

/// Real ICMP echo from this process.
#[derive(Debug, Default, Clone, Copy)]
pub struct IcmpProber;

impl Prober for IcmpProber {
    fn probe(
        &self,
        hosts: &[HostSpec],
        settings: &ProbeSettings,
        deadline: &Deadline,
    ) -> Result<Vec<Outcome>, ProbeError> {
        let resolved = resolve(hosts, &deadline.capped(settings.timeout));
        let addresses: Vec<Option<SocketAddr>> =
            resolved.iter().map(|r| r.as_ref().ok().copied()).collect();
        let mut outcomes = echo(&addresses, settings, deadline)?;
        for (outcome, resolution) in outcomes.iter_mut().zip(resolved) {
            if let Err(reason) = resolution {
                *outcome = Outcome::Unresolved { reason };
            }
        }
        Ok(outcomes)
    }
}

/// Resolves every host, names in parallel, none past `deadline`. An address literal needs no
/// lookup; a name takes the first address the resolver prefers, as ping(8) does.
pub fn resolve(hosts: &[HostSpec], deadline: &Deadline) -> Vec<Result<SocketAddr, String>> {
    let (done, results) = mpsc::channel();
    let mut resolved: Vec<Option<Result<SocketAddr, String>>> = Vec::with_capacity(hosts.len());
    let mut waiting = 0;
    for (index, spec) in hosts.iter().enumerate() {
        match &spec.host {
            Host::Address(address) => resolved.push(Some(Ok(SocketAddr::new(*address, 0)))),
            Host::Name(name) => {
                resolved.push(None);
                waiting += 1;
                let done = done.clone();
                let name = name.clone();
                // getaddrinfo cannot be cancelled: a lookup that outlives the deadline is left
                // to finish on its own thread and ignored.
                std::thread::spawn(move || {
                    let answer = (name.as_str(), 0)
                        .to_socket_addrs()
                        .map_err(|e| e.to_string())
                        .and_then(|mut all| all.next().ok_or_else(|| "no address".to_owned()));
                    let _ = done.send((index, answer));
                });
            }
        }
    }
    while waiting > 0 {
        match results.recv_timeout(deadline.remaining()) {
            Ok((index, answer)) => {
                if let Some(slot) = resolved.get_mut(index) {
                    *slot = Some(answer);
                }
                waiting -= 1;
            }
            Err(_) => break,
        }
    }
    resolved
        .into_iter()
        .map(|r| r.unwrap_or_else(|| Err("no answer from the resolver in time".to_owned())))
        .collect()
}

/// One socket per family in use.
struct IcmpSocket {
    version: Version,
    socket: UdpSocket,
    raw: bool,
}

impl IcmpSocket {
    fn open(version: Version, interface: Option<&str>) -> Result<Self, ProbeError> {
        let (domain, protocol, family) = match version {
            Version::V4 => (Domain::IPV4, Protocol::ICMPV4, "IPv4"),
            Version::V6 => (Domain::IPV6, Protocol::ICMPV6, "IPv6"),
        };
        let (socket, raw) = match Socket::new(domain, Type::RAW, Some(protocol)) {
            Ok(socket) => (socket, true),
            Err(raw_error) if raw_error.kind() == io::ErrorKind::PermissionDenied => {
                match Socket::new(domain, Type::DGRAM, Some(protocol)) {
                    Ok(socket) => (socket, false),
                    Err(source) => return Err(ProbeError::Permission { family, source }),
                }
            }
            Err(source) => return Err(ProbeError::Socket { family, source }),
        };
        if let Some(interface) = interface {
            socket
                .bind_device(Some(interface.as_bytes()))
                .map_err(|source| ProbeError::Interface {
                    family,
                    interface: interface.to_owned(),
                    source,
                })?;
        }
        socket
            .set_nonblocking(true)
            .map_err(|source| ProbeError::Socket { family, source })?;
        // std's UdpSocket gives safe sendto/recvfrom on any datagram-style socket; the kernel
        // does the ICMP, std only converts the addresses.
        Ok(Self {
            version,
            socket: UdpSocket::from(socket),
            raw,
        })
    }

    fn parse(&self, buf: &[u8], tag: Tag) -> Option<Received> {
        match self.version {
            Version::V4 => packet::parse_v4(buf, self.raw, tag),
            Version::V6 => packet::parse_v6(buf, self.raw, tag),
        }
    }
}

/// A random tag per run, from the standard library's randomly keyed hasher.
fn new_tag() -> Tag {
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u32(std::process::id());
    let token = hasher.finish();
    Tag {
        ident: token.to_be_bytes()[0..2]
            .try_into()
            .map(u16::from_be_bytes)
            .unwrap_or(0),
        token,
    }
}

/// Sends echo requests to every address (`None`: skip, counted as down) and collects outcomes.
/// The port of each address is ignored; an IPv6 scope id is kept.
pub fn echo(
    addresses: &[Option<SocketAddr>],
    settings: &ProbeSettings,
    deadline: &Deadline,
) -> Result<Vec<Outcome>, ProbeError> {
    let interface = settings.interface.as_deref();
    let needs = |v6: bool| addresses.iter().flatten().any(|a| a.is_ipv6() == v6);
    let v4 = needs(false)
        .then(|| IcmpSocket::open(Version::V4, interface))
        .transpose()?;
    let v6 = match needs(true).then(|| IcmpSocket::open(Version::V6, interface)) {
        None => None,
        Some(Ok(socket)) => Some(socket),
        // A host without IPv6 cannot reach IPv6 hosts; that is their outcome, not a failure.
        Some(Err(ProbeError::Socket { source, .. }))
            if source.raw_os_error() == Some(nix::libc::EAFNOSUPPORT) =>
        {
            None
        }
        Some(Err(e)) => return Err(e),
    };
    let tag = new_tag();
    let mut outcomes: Vec<Outcome> = addresses
        .iter()
        .map(|address| Outcome::Down {
            address: address.map_or(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED), |a| a.ip()),
            refused: None,
        })
        .collect();
    let mut sent_at: Vec<Option<Instant>> = vec![None; addresses.len()];
    // Up, or refused for good: no further attempts.
    let mut settled: Vec<bool> = addresses.iter().map(Option::is_none).collect();
    let targets: Vec<(usize, SocketAddr, u16)> = addresses
        .iter()
        .enumerate()
        .filter_map(|(i, a)| Some((i, (*a)?, u16::try_from(i).ok()?)))
        .collect();
    let socket_for = |address: &SocketAddr| match address {
        SocketAddr::V4(_) => v4.as_ref(),
        SocketAddr::V6(_) => v6.as_ref(),
    };
    for (index, address, _) in &targets {
        if socket_for(address).is_none() {
            settled[*index] = true;
            outcomes[*index] = Outcome::Down {
                address: address.ip(),
                refused: Some("IPv6 is not available on this node".to_owned()),
            };
        }
    }
    let mut buf = vec![0_u8; 65_536];
    // Attempt k leaves at k x timeout/attempts; whatever has not answered by `timeout` after
    // the first is down. The op deadline can only shorten that.
    let started = Instant::now();
    let overall = deadline.capped(settings.timeout);
    let spacing = settings.timeout / settings.attempts.max(1);
    for attempt in 0..settings.attempts {
        if overall.expired() || settled.iter().all(|&s| s) {
            break;
        }
        for (index, address, seq) in &targets {
            if settled[*index] {
                continue;
            }
            let Some(socket) = socket_for(address) else {
                continue;
            };
            let request = packet::echo_request(socket.version, tag, *seq);
            let mut destination = *address;
            destination.set_port(0);
            match socket.socket.send_to(&request, destination) {
                Ok(_) => {
                    if sent_at[*index].is_none() {
                        sent_at[*index] = Some(Instant::now());
                    }
                }
                Err(e) => {
                    settled[*index] = refusal_is_final(&e);
                    outcomes[*index] = Outcome::Down {
                        address: address.ip(),
                        refused: Some(e.to_string()),
                    };
                }
            }
        }
        let next = started + spacing.saturating_mul(attempt + 1);
        let round = if attempt + 1 >= settings.attempts {
            overall
        } else {
            overall.capped(next.saturating_duration_since(Instant::now()))
        };
        while !settled.iter().all(|&s| s) && !round.expired() {
            let sockets: Vec<&IcmpSocket> = v4.iter().chain(v6.iter()).collect();
            let mut fds: Vec<PollFd<'_>> = sockets
                .iter()
                .map(|s| PollFd::new(s.socket.as_fd(), PollFlags::POLLIN))
                .collect();
            let wait = PollTimeout::try_from(round.remaining() + Duration::from_millis(1))
                .unwrap_or(PollTimeout::MAX);
            match poll(&mut fds, wait) {
                Ok(_) | Err(nix::errno::Errno::EINTR) => {}
                Err(errno) => {
                    return Err(ProbeError::Socket {
                        family: "poll",
                        source: io::Error::from(errno),
                    })
                }
            }
            for socket in &sockets {
                loop {
                    let (len, from) = match socket.socket.recv_from(&mut buf) {
                        Ok(received) => received,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                        // WouldBlock: drained. Any other error (a queued ICMP error on a
                        // datagram socket) is not about one host we can name: drop it.
                        Err(_) => break,
                    };
                    let Some(message) = buf.get(..len).and_then(|b| socket.parse(b, tag)) else {
                        continue;
                    };
                    if let Some(index) = record(&message, from, &targets, &sent_at, &mut outcomes) {
                        settled[index] = true;
                    }
                }
            }
        }
    }
    Ok(outcomes)
}

/// Applies one received message to the outcomes; the index of the host it settles.
fn record(
    message: &Received,
    from: SocketAddr,
    targets: &[(usize, SocketAddr, u16)],
    sent_at: &[Option<Instant>],
    outcomes: &mut [Outcome],
) -> Option<usize> {
    let seq = match message {
        Received::Reply { seq } | Received::Error { seq, .. } => *seq,
    };
    let &(index, address, _) = targets.iter().find(|(_, _, s)| *s == seq)?;
    let address = address.ip();
    let slot = outcomes.get_mut(index)?;
    match message {
        // The reply must come from the host itself (scope ids aside).
        Received::Reply { .. } if from.ip() == address => {
            if !slot.is_up() {
                let rtt = sent_at
                    .get(index)
                    .copied()
                    .flatten()
                    .map(|t| t.elapsed())
                    .unwrap_or_default();
                *slot = Outcome::Up { address, rtt };
            }
            Some(index)
        }
        Received::Error {
            destination,
            reason,
            ..
        } if *destination == address => {
            if !slot.is_up() {
                *slot = Outcome::Down {
                    address,
                    refused: Some(format!("{reason} (reported by {})", from.ip())),
                };
            }
            Some(index)
        }
        _ => None,
    }
}

/// Whether a failed send means the host cannot be reached this time (no route, prohibited),
/// rather than a passing shortage (full buffers) worth another attempt.
fn refusal_is_final(error: &io::Error) -> bool {
    use nix::libc;
    !matches!(
        error.raw_os_error(),
        Some(libc::ENOBUFS | libc::EAGAIN | libc::ENOMEM | libc::EINTR)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(host: Host) -> HostSpec {
        HostSpec { host, weight: 1 }
    }

    #[test]
    fn literals_need_no_resolver_and_bad_names_fail() {
        let hosts = [
            spec(Host::Address("192.0.2.1".parse().unwrap())),
            spec(Host::Name("localhost".into())),
            spec(Host::Name("no-such-host.invalid".into())),
        ];
        let resolved = resolve(&hosts, &Deadline::after(Duration::from_secs(10)));
        assert_eq!(resolved[0], Ok("192.0.2.1:0".parse().unwrap()));
        assert!(
            resolved[1].as_ref().unwrap().ip().is_loopback(),
            "{resolved:?}"
        );
        assert!(resolved[2].is_err(), "{resolved:?}");
    }

    #[test]
    fn outcomes_read_well() {
        let up = Outcome::Up {
            address: "192.0.2.1".parse().unwrap(),
            rtt: Duration::from_millis(3),
        };
        assert_eq!(up.to_string(), "192.0.2.1 answered in 3ms");
        let refused = Outcome::Down {
            address: "192.0.2.1".parse().unwrap(),
            refused: Some("Permission denied".into()),
        };
        assert_eq!(
            refused.to_string(),
            "192.0.2.1 unreachable: Permission denied"
        );
        assert!(!refused.is_up());
    }

    #[test]
    fn tags_differ_between_runs() {
        assert_ne!(new_tag().token, new_tag().token);
    }
}
