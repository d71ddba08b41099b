//! ICMP and ICMPv6 echo messages: building requests and reading what comes back.
//!
//! Only the echo header (RFC 792, RFC 4443) and the error messages that quote one are needed;
//! that is a few fixed offsets, kept here with their tests rather than pulling in a general
//! packet library. Parsers take any byte slice and never panic: raw sockets deliver whatever
//! the network sends.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

pub const ICMP_ECHO_REPLY: u8 = 0;
pub const ICMP_DEST_UNREACHABLE: u8 = 3;
pub const ICMP_ECHO_REQUEST: u8 = 8;
pub const ICMP_TIME_EXCEEDED: u8 = 11;
pub const ICMPV6_DEST_UNREACHABLE: u8 = 1;
pub const ICMPV6_TIME_EXCEEDED: u8 = 3;
pub const ICMPV6_ECHO_REQUEST: u8 = 128;
pub const ICMPV6_ECHO_REPLY: u8 = 129;

const ECHO_HEADER_LEN: usize = 8;
/// Our payload: the run's token, then the target's index again.
pub const PAYLOAD_LEN: usize = 16;
const IPV6_HEADER_LEN: usize = 40;
const PROTO_ICMP: u8 = 1;
const PROTO_ICMPV6: u8 = 58;

/// What identifies our echo requests among everything a raw socket sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tag {
    /// The echo identifier; a datagram ICMP socket replaces it with its own, so it is only
    /// checked on raw sockets.
    pub ident: u16,
    /// Random per run: replies to anyone else's pings never count for us.
    pub token: u64,
}

/// The IP version of a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    V4,
    V6,
}

/// One message read from an ICMP socket that concerns one of our requests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Received {
    /// An echo reply to request `seq`.
    Reply { seq: u16 },
    /// An error about request `seq`, which went to `destination`: a router or the target says
    /// it will not get through.
    Error {
        seq: u16,
        destination: IpAddr,
        reason: &'static str,
    },
}

/// An echo request for target `seq`. The ICMP checksum is filled in for IPv4; for ICMPv6 the
/// kernel computes it (it needs the source address).
pub fn echo_request(version: Version, tag: Tag, seq: u16) -> Vec<u8> {
    let kind = match version {
        Version::V4 => ICMP_ECHO_REQUEST,
        Version::V6 => ICMPV6_ECHO_REQUEST,
    };
    let mut packet = Vec::with_capacity(ECHO_HEADER_LEN + PAYLOAD_LEN);
    packet.extend_from_slice(&[kind, 0, 0, 0]);
    packet.extend_from_slice(&tag.ident.to_be_bytes());
    packet.extend_from_slice(&seq.to_be_bytes());
    packet.extend_from_slice(&tag.token.to_be_bytes());
    packet.extend_from_slice(&u64::from(seq).to_be_bytes());
    if version == Version::V4 {
        let sum = checksum(&packet);
        packet[2..4].copy_from_slice(&sum.to_be_bytes());
    }
    packet
}

/// The Internet checksum (RFC 1071): one's complement of the one's complement sum of 16-bit
/// words, an odd last byte padded with zero.
pub fn checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    let mut chunks = data.chunks_exact(2);
    for word in &mut chunks {
        sum += u32::from(u16::from_be_bytes([word[0], word[1]]));
    }
    if let [last] = chunks.remainder() {
        sum += u32::from(*last) << 8;
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    #[allow(clippy::cast_possible_truncation, reason = "folded into 16 bits above")]
    let folded = sum as u16;
    !folded
}

/// Reads an IPv4 message: with its IP header from a raw socket, without from a datagram one.
pub fn parse_v4(buf: &[u8], with_ip_header: bool, tag: Tag) -> Option<Received> {
    let icmp = if with_ip_header {
        let (protocol, _, payload) = ipv4_payload(buf)?;
        if protocol != PROTO_ICMP {
            return None;
        }
        payload
    } else {
        buf
    };
    let kind = *icmp.first()?;
    match kind {
        ICMP_ECHO_REPLY => {
            // A raw socket sees the packet before the kernel checks it.
            if with_ip_header && checksum(icmp) != 0 {
                return None;
            }
            echo(icmp, tag, with_ip_header).map(|seq| Received::Reply { seq })
        }
        ICMP_DEST_UNREACHABLE | ICMP_TIME_EXCEEDED => {
            let code = *icmp.get(1)?;
            let (protocol, destination, quoted) = ipv4_payload(icmp.get(ECHO_HEADER_LEN..)?)?;
            if protocol != PROTO_ICMP || quoted.first() != Some(&ICMP_ECHO_REQUEST) {
                return None;
            }
            let seq = quoted_echo(quoted, tag)?;
            Some(Received::Error {
                seq,
                destination: IpAddr::V4(destination),
                reason: v4_reason(kind, code),
            })
        }
        _ => None,
    }
}

/// Reads an ICMPv6 message (sockets never include the IPv6 header).
pub fn parse_v6(icmp: &[u8], check_ident: bool, tag: Tag) -> Option<Received> {
    let kind = *icmp.first()?;
    match kind {
        ICMPV6_ECHO_REPLY => echo(icmp, tag, check_ident).map(|seq| Received::Reply { seq }),
        ICMPV6_DEST_UNREACHABLE | ICMPV6_TIME_EXCEEDED => {
            let code = *icmp.get(1)?;
            let inner = icmp.get(ECHO_HEADER_LEN..)?;
            if inner.len() < IPV6_HEADER_LEN || inner[0] >> 4 != 6 || inner[6] != PROTO_ICMPV6 {
                return None;
            }
            let mut destination = [0_u8; 16];
            destination.copy_from_slice(&inner[24..40]);
            let quoted = &inner[IPV6_HEADER_LEN..];
            if quoted.first() != Some(&ICMPV6_ECHO_REQUEST) {
                return None;
            }
            let seq = quoted_echo(quoted, tag)?;
            Some(Received::Error {
                seq,
                destination: IpAddr::V6(Ipv6Addr::from(destination)),
                reason: v6_reason(kind, code),
            })
        }
        _ => None,
    }
}

/// The sequence number of an echo reply carrying our token (and identifier when checked).
fn echo(icmp: &[u8], tag: Tag, check_ident: bool) -> Option<u16> {
    if icmp.len() < ECHO_HEADER_LEN + PAYLOAD_LEN {
        return None;
    }
    let ident = u16::from_be_bytes([icmp[4], icmp[5]]);
    let seq = u16::from_be_bytes([icmp[6], icmp[7]]);
    let token = u64::from_be_bytes(icmp[8..16].try_into().ok()?);
    let echoed_seq = u64::from_be_bytes(icmp[16..24].try_into().ok()?);
    let ours =
        (!check_ident || ident == tag.ident) && token == tag.token && echoed_seq == u64::from(seq);
    ours.then_some(seq)
}

/// The sequence number of our request quoted in an error. Routers must quote only the first
/// 8 bytes (RFC 792), so the token is checked only when it is there.
fn quoted_echo(quoted: &[u8], tag: Tag) -> Option<u16> {
    let header = quoted.get(..ECHO_HEADER_LEN)?;
    let ident = u16::from_be_bytes([header[4], header[5]]);
    let seq = u16::from_be_bytes([header[6], header[7]]);
    if ident != tag.ident {
        return None;
    }
    if let Some(token) = quoted.get(8..16) {
        if token != tag.token.to_be_bytes() {
            return None;
        }
    }
    Some(seq)
}

/// Protocol, destination and payload of an IPv4 packet; `None` for anything malformed.
fn ipv4_payload(packet: &[u8]) -> Option<(u8, Ipv4Addr, &[u8])> {
    let first = *packet.first()?;
    if first >> 4 != 4 {
        return None;
    }
    let header_len = usize::from(first & 0x0f) * 4;
    if header_len < 20 || packet.len() < header_len {
        return None;
    }
    let destination = Ipv4Addr::new(packet[16], packet[17], packet[18], packet[19]);
    Some((packet[9], destination, &packet[header_len..]))
}

fn v4_reason(kind: u8, code: u8) -> &'static str {
    match (kind, code) {
        (ICMP_TIME_EXCEEDED, _) => "time to live exceeded",
        (_, 0) => "network unreachable",
        (_, 1) => "host unreachable",
        (_, 2 | 3) => "protocol or port unreachable",
        (_, 4) => "fragmentation needed",
        (_, 6 | 11) => "destination network unknown or unreachable for this service",
        (_, 7 | 12) => "destination host unknown or unreachable for this service",
        (_, 9 | 10 | 13) => "administratively prohibited",
        _ => "destination unreachable",
    }
}

fn v6_reason(kind: u8, code: u8) -> &'static str {
    match (kind, code) {
        (ICMPV6_TIME_EXCEEDED, _) => "hop limit exceeded",
        (_, 0) => "no route to destination",
        (_, 1) => "administratively prohibited",
        (_, 3) => "address unreachable",
        (_, 4) => "port unreachable",
        (_, 5 | 6) => "rejected by policy",
        _ => "destination unreachable",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TAG: Tag = Tag {
        ident: 0x1234,
        token: 0x0102_0304_0506_0708,
    };

    /// The reply a host sends to `request`: type changed, checksum recomputed.
    fn reply_to(request: &[u8], kind: u8) -> Vec<u8> {
        let mut reply = request.to_vec();
        reply[0] = kind;
        reply[2..4].copy_from_slice(&[0, 0]);
        let sum = checksum(&reply);
        reply[2..4].copy_from_slice(&sum.to_be_bytes());
        reply
    }

    fn ipv4(protocol: u8, source: [u8; 4], destination: [u8; 4], payload: &[u8]) -> Vec<u8> {
        let mut packet = vec![0x45, 0, 0, 0, 0, 0, 0, 0, 64, protocol, 0, 0];
        packet.extend_from_slice(&source);
        packet.extend_from_slice(&destination);
        packet.extend_from_slice(payload);
        packet
    }

    #[test]
    fn checksum_matches_rfc1071_examples() {
        // RFC 1071 section 3: the sum of 0001 f203 f4f5 f6f7 is ddf2, complement 220d.
        assert_eq!(
            checksum(&[0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7]),
            0x220d
        );
        // An odd length pads with a zero byte.
        assert_eq!(checksum(&[0x01]), !0x0100);
        assert_eq!(checksum(&[]), 0xffff);
        // A packet that carries its checksum sums to zero.
        let request = echo_request(Version::V4, TAG, 7);
        assert_eq!(checksum(&request), 0);
    }

    #[test]
    fn echo_request_layout() {
        let request = echo_request(Version::V4, TAG, 0x0203);
        assert_eq!(request.len(), ECHO_HEADER_LEN + PAYLOAD_LEN);
        assert_eq!(&request[..2], &[ICMP_ECHO_REQUEST, 0]);
        assert_eq!(&request[4..8], &[0x12, 0x34, 0x02, 0x03]);
        assert_eq!(&request[8..16], &TAG.token.to_be_bytes());
        // Worked by hand: 0800 + 1234 + 0001 + 6162 + 6364 = defb, complement 2104.
        let known = [8, 0, 0, 0, 0x12, 0x34, 0, 1, b'a', b'b', b'c', b'd'];
        assert_eq!(checksum(&known), 0x2104);
        let v6 = echo_request(Version::V6, TAG, 1);
        assert_eq!(&v6[..4], &[ICMPV6_ECHO_REQUEST, 0, 0, 0]);
    }

    #[test]
    fn replies_are_recognised_with_and_without_ip_header() {
        let request = echo_request(Version::V4, TAG, 5);
        let reply = reply_to(&request, ICMP_ECHO_REPLY);
        let packet = ipv4(PROTO_ICMP, [192, 0, 2, 1], [192, 0, 2, 2], &reply);
        assert_eq!(
            parse_v4(&packet, true, TAG),
            Some(Received::Reply { seq: 5 })
        );
        assert_eq!(
            parse_v4(&reply, false, TAG),
            Some(Received::Reply { seq: 5 })
        );
        // Our own request, looped back to a raw socket, is not a reply.
        let looped = ipv4(PROTO_ICMP, [127, 0, 0, 1], [127, 0, 0, 1], &request);
        assert_eq!(parse_v4(&looped, true, TAG), None);
    }

    #[test]
    fn foreign_or_damaged_replies_are_ignored() {
        let reply = reply_to(&echo_request(Version::V4, TAG, 5), ICMP_ECHO_REPLY);
        let other_run = Tag { token: 99, ..TAG };
        assert_eq!(parse_v4(&reply, false, other_run), None);
        let other_ident = Tag { ident: 1, ..TAG };
        let packet = ipv4(PROTO_ICMP, [192, 0, 2, 1], [192, 0, 2, 2], &reply);
        assert_eq!(parse_v4(&packet, true, other_ident), None);
        // A datagram socket rewrites the identifier: not checked there.
        assert_eq!(
            parse_v4(&reply, false, other_ident),
            Some(Received::Reply { seq: 5 })
        );
        let mut corrupt = packet.clone();
        let last = corrupt.len() - 1;
        corrupt[last] ^= 0xff;
        assert_eq!(parse_v4(&corrupt, true, TAG), None);
        let udp = ipv4(17, [192, 0, 2, 1], [192, 0, 2, 2], &reply);
        assert_eq!(parse_v4(&udp, true, TAG), None);
        // The sequence number echoed in the payload must match the header's.
        let mut forged = reply.clone();
        forged[7] = 6;
        assert_eq!(parse_v4(&forged, false, TAG), None);
    }

    #[test]
    fn errors_name_the_request_and_destination() {
        let request = echo_request(Version::V4, TAG, 3);
        let quoted = ipv4(PROTO_ICMP, [192, 0, 2, 2], [198, 51, 100, 7], &request);
        let mut error = vec![ICMP_DEST_UNREACHABLE, 13, 0, 0, 0, 0, 0, 0];
        error.extend_from_slice(&quoted);
        let packet = ipv4(PROTO_ICMP, [192, 0, 2, 254], [192, 0, 2, 2], &error);
        assert_eq!(
            parse_v4(&packet, true, TAG),
            Some(Received::Error {
                seq: 3,
                destination: "198.51.100.7".parse().unwrap(),
                reason: "administratively prohibited",
            })
        );
        // A router quoting only the 8 required bytes still counts.
        let mut short = vec![ICMP_TIME_EXCEEDED, 0, 0, 0, 0, 0, 0, 0];
        short.extend_from_slice(&ipv4(
            PROTO_ICMP,
            [192, 0, 2, 2],
            [198, 51, 100, 7],
            &request[..8],
        ));
        assert!(matches!(
            parse_v4(&short, false, TAG),
            Some(Received::Error {
                seq: 3,
                reason: "time to live exceeded",
                ..
            })
        ));
        // Someone else's request quoted in an error is not ours.
        let other = Tag { ident: 9, ..TAG };
        assert_eq!(parse_v4(&packet, true, other), None);
    }

    #[test]
    fn icmpv6_replies_and_errors() {
        let request = echo_request(Version::V6, TAG, 9);
        let reply = reply_to(&request, ICMPV6_ECHO_REPLY);
        assert_eq!(
            parse_v6(&reply, true, TAG),
            Some(Received::Reply { seq: 9 })
        );
        assert_eq!(parse_v6(&request, true, TAG), None);

        let destination: Ipv6Addr = "2001:db8::7".parse().unwrap();
        let mut inner = vec![0x60, 0, 0, 0, 0, 24, PROTO_ICMPV6, 64];
        inner.extend_from_slice(&Ipv6Addr::LOCALHOST.octets());
        inner.extend_from_slice(&destination.octets());
        inner.extend_from_slice(&request);
        let mut error = vec![ICMPV6_DEST_UNREACHABLE, 1, 0, 0, 0, 0, 0, 0];
        error.extend_from_slice(&inner);
        assert_eq!(
            parse_v6(&error, true, TAG),
            Some(Received::Error {
                seq: 9,
                destination: IpAddr::V6(destination),
                reason: "administratively prohibited",
            })
        );
    }

    #[test]
    fn parsers_survive_any_input() {
        // Every truncation of valid messages, and some noise, parse to something or nothing.
        let request = echo_request(Version::V4, TAG, 3);
        let mut error = vec![ICMP_DEST_UNREACHABLE, 1, 0, 0, 0, 0, 0, 0];
        error.extend_from_slice(&ipv4(PROTO_ICMP, [1, 2, 3, 4], [5, 6, 7, 8], &request));
        let packet = ipv4(PROTO_ICMP, [9, 9, 9, 9], [1, 2, 3, 4], &error);
        for len in 0..=packet.len() {
            let _ = parse_v4(&packet[..len], true, TAG);
            let _ = parse_v4(&packet[..len], false, TAG);
            let _ = parse_v6(&packet[..len], true, TAG);
        }
        let mut seed: u32 = 0x9e37_79b9;
        for _ in 0..2000 {
            let mut noise = Vec::new();
            for _ in 0..(seed % 96) {
                seed ^= seed << 13;
                seed ^= seed >> 17;
                seed ^= seed << 5;
                noise.push(seed.to_be_bytes()[0]);
            }
            let _ = parse_v4(&noise, true, TAG);
            let _ = parse_v4(&noise, false, TAG);
            let _ = parse_v6(&noise, false, TAG);
        }
        // A header length larger than the packet, or below the minimum, is refused.
        assert_eq!(parse_v4(&[0x4f, 0, 0], true, TAG), None);
        assert_eq!(parse_v4(&[0x41; 40], true, TAG), None);
    }
}
