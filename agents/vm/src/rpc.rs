//! The monitor's road to libvirtd: the four read-only calls of libvirt's remote protocol that
//! `virDomainGetState` makes over the local socket, without loading `libvirt.so`.
//!
//! Loading the C library costs more than the whole monitor may (see `docs/vm-monitor.md`), and
//! no maintained Rust crate speaks the protocol (`libvirt-rpc` stopped in 2018 on tokio 0.1). So
//! this module sends what the library itself sends to a local `qemu:///system`: `AUTH_LIST`
//! (which also lets libvirtd waive polkit for root), `CONNECT_OPEN`, `DOMAIN_LOOKUP_BY_NAME`,
//! `DOMAIN_GET_STATE`, `CONNECT_CLOSE`. The protocol is libvirt's stable ABI between any client
//! and daemon versions: procedure numbers and structures never change.
//!
//! Anything else answers [`RpcError::Unsupported`], and the caller asks the C library instead:
//! another URI (remote hosts, TLS, SSH, `session`, unknown parameters), an authentication other
//! than none or polkit, a reply that does not follow the protocol. So the fast path can only be
//! right or step aside, never guess.

use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clever_deadline::Deadline;
use socket2::{Domain, SockAddr, Socket, Type};

/// `REMOTE_PROGRAM` and `REMOTE_PROTOCOL_VERSION` of `remote_protocol.x`.
const PROGRAM: u32 = 0x2000_8086;
const VERSION: u32 = 1;
/// Procedure numbers of `remote_protocol.x`.
const PROC_CONNECT_OPEN: i32 = 1;
const PROC_CONNECT_CLOSE: i32 = 2;
const PROC_DOMAIN_LOOKUP_BY_NAME: i32 = 23;
const PROC_AUTH_LIST: i32 = 66;
const PROC_AUTH_POLKIT: i32 = 70;
const PROC_DOMAIN_GET_STATE: i32 = 212;
/// `virNetMessageType` and `virNetMessageStatus`.
const TYPE_CALL: u32 = 0;
const TYPE_REPLY: u32 = 1;
const TYPE_MESSAGE: u32 = 2;
const STATUS_OK: u32 = 0;
const STATUS_ERROR: u32 = 1;
/// `remote_auth_type`.
const AUTH_NONE: i32 = 0;
const AUTH_POLKIT: i32 = 2;
/// Length word plus the six-word header.
const HEADER_LEN: usize = 28;
/// Far above any reply these calls get (libvirt's own limit is 32 MiB).
const MAX_PACKET: usize = 1024 * 1024;
/// `VIR_ERR_NO_DOMAIN`.
pub const ERR_NO_DOMAIN: i32 = 42;
/// libvirt's sockets for the system instance: the monolithic daemon's, else the modular one's.
const SYSTEM_SOCKETS: [&str; 2] = ["/run/libvirt/libvirt-sock", "/run/libvirt/virtqemud-sock"];

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RpcError {
    /// Not a case this client handles: ask the C library.
    #[error("{0}")]
    Unsupported(String),
    /// libvirtd cannot be reached, or did not answer within the deadline.
    #[error("{0}")]
    Unavailable(String),
    /// libvirtd answered with an error.
    #[error("{message}")]
    Failed { code: i32, message: String },
}

/// Where a URI leads, if this client can go there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub socket: PathBuf,
    /// The URI as the daemon is given it (the socket is the client's business).
    pub name: String,
}

/// `qemu:///system`, optionally `qemu+unix` and `?socket=/absolute/path`; nothing else.
pub fn target(uri: &str) -> Result<Target, RpcError> {
    let unsupported = || RpcError::Unsupported(format!("URI {uri:?} is left to the C library"));
    let (scheme, rest) = uri.split_once("://").ok_or_else(unsupported)?;
    if scheme != "qemu" && scheme != "qemu+unix" {
        return Err(unsupported());
    }
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    if path != "/system" {
        return Err(unsupported());
    }
    let mut socket = None;
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        match pair.split_once('=') {
            Some(("socket", value))
                if value.starts_with('/') && !value.contains(['%', '+', '\0']) =>
            {
                socket = Some(PathBuf::from(value));
            }
            _ => return Err(unsupported()),
        }
    }
    let socket = match socket {
        Some(socket) => socket,
        None => SYSTEM_SOCKETS
            .iter()
            .map(PathBuf::from)
            .find(|p| p.exists())
            .unwrap_or_else(|| PathBuf::from(SYSTEM_SOCKETS[0])),
    };
    Ok(Target {
        socket,
        name: "qemu:///system".to_owned(),
    })
}

/// The raw `(state, reason)` of domain `name`, `None` when no such domain is defined.
pub fn domain_state(
    uri: &str,
    name: &str,
    deadline: &Deadline,
) -> Result<Option<(i32, i32)>, RpcError> {
    let target = target(uri)?;
    let mut client = Client::connect(&target.socket, deadline)?;
    client.authenticate()?;
    let mut open = Vec::new();
    put_u32(&mut open, 1);
    put_string(&mut open, &target.name);
    put_u32(&mut open, 0);
    client.call(PROC_CONNECT_OPEN, &open)?;
    let mut lookup = Vec::new();
    put_string(&mut lookup, name);
    let domain = match client.call(PROC_DOMAIN_LOOKUP_BY_NAME, &lookup) {
        Ok(reply) => reply,
        Err(RpcError::Failed {
            code: ERR_NO_DOMAIN,
            ..
        }) => {
            client.close();
            return Ok(None);
        }
        Err(e) => return Err(e),
    };
    // The reply is the domain (name, UUID, id) that GET_STATE takes back, with its flags.
    let mut reader = Reader::new(&domain);
    reader.string()?;
    reader.fixed(16)?;
    reader.i32()?;
    reader.end()?;
    let mut get_state = domain;
    put_u32(&mut get_state, 0);
    let reply = client.call(PROC_DOMAIN_GET_STATE, &get_state)?;
    let mut reader = Reader::new(&reply);
    let state = (reader.i32()?, reader.i32()?);
    reader.end()?;
    client.close();
    Ok(Some(state))
}

struct Client<'d> {
    stream: UnixStream,
    serial: u32,
    deadline: &'d Deadline,
}

fn unavailable(socket: &Path, e: &io::Error) -> RpcError {
    RpcError::Unavailable(format!(
        "cannot reach libvirtd at {}: {e}",
        socket.display()
    ))
}

fn timed_out(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

impl<'d> Client<'d> {
    /// Connects without ever blocking past the deadline: a stopped libvirtd leaves the socket
    /// accepting (the kernel queues) until its backlog is full, then refusing with EAGAIN.
    fn connect(socket: &Path, deadline: &'d Deadline) -> Result<Self, RpcError> {
        let address = SockAddr::unix(socket).map_err(|e| unavailable(socket, &e))?;
        let raw =
            Socket::new(Domain::UNIX, Type::STREAM, None).map_err(|e| unavailable(socket, &e))?;
        raw.connect_timeout(&address, remaining(deadline)?)
            .map_err(|e| unavailable(socket, &e))?;
        Ok(Self {
            stream: raw.into(),
            serial: 0,
            deadline,
        })
    }

    fn authenticate(&mut self) -> Result<(), RpcError> {
        let reply = self.call(PROC_AUTH_LIST, &[])?;
        let mut reader = Reader::new(&reply);
        let count = reader.u32()?;
        if count > 20 {
            return Err(protocol("an authentication list of implausible length"));
        }
        let methods = (0..count)
            .map(|_| reader.i32())
            .collect::<Result<Vec<_>, _>>()?;
        reader.end()?;
        if methods.is_empty() || methods.contains(&AUTH_NONE) {
            return Ok(());
        }
        if methods.contains(&AUTH_POLKIT) {
            let reply = self.call(PROC_AUTH_POLKIT, &[])?;
            let mut reader = Reader::new(&reply);
            if reader.i32()? == 1 {
                return Ok(());
            }
        }
        Err(RpcError::Unsupported(format!(
            "libvirtd asks for authentication {methods:?}, left to the C library"
        )))
    }

    /// One call: the reply's payload, or libvirtd's error.
    fn call(&mut self, procedure: i32, args: &[u8]) -> Result<Vec<u8>, RpcError> {
        self.serial = self.serial.wrapping_add(1);
        let mut packet = Vec::with_capacity(HEADER_LEN + args.len());
        let length = u32::try_from(HEADER_LEN + args.len())
            .map_err(|_| RpcError::Unsupported("an oversized call".to_owned()))?;
        put_u32(&mut packet, length);
        for word in [
            PROGRAM,
            VERSION,
            as_word(procedure),
            TYPE_CALL,
            self.serial,
            0,
        ] {
            put_u32(&mut packet, word);
        }
        packet.extend_from_slice(args);
        self.io(|stream, timeout| {
            stream.set_write_timeout(Some(timeout))?;
            stream.write_all(&packet)
        })?;
        loop {
            let reply = self.receive()?;
            match decode_reply(&reply, procedure, self.serial)? {
                Some(payload) => return payload,
                // An event or keepalive: not ours.
                None => continue,
            }
        }
    }

    fn receive(&mut self) -> Result<Vec<u8>, RpcError> {
        let mut length = [0_u8; 4];
        self.io(|stream, timeout| {
            stream.set_read_timeout(Some(timeout))?;
            stream.read_exact(&mut length)
        })?;
        let length = u32::from_be_bytes(length) as usize;
        if !(HEADER_LEN..=MAX_PACKET).contains(&length) {
            return Err(protocol("a packet of implausible length"));
        }
        let mut packet = vec![0_u8; length - 4];
        self.io(|stream, timeout| {
            stream.set_read_timeout(Some(timeout))?;
            stream.read_exact(&mut packet)
        })?;
        Ok(packet)
    }

    fn io(
        &mut self,
        operation: impl FnOnce(&mut UnixStream, Duration) -> io::Result<()>,
    ) -> Result<(), RpcError> {
        let timeout = remaining(self.deadline)?;
        operation(&mut self.stream, timeout).map_err(|e| {
            if timed_out(&e) {
                RpcError::Unavailable(format!("libvirtd did not answer within {timeout:.1?}"))
            } else {
                RpcError::Unavailable(format!("libvirtd connection failed: {e}"))
            }
        })
    }

    /// Ends the connection politely; its answer changes nothing.
    fn close(mut self) {
        if let Err(e) = self.call(PROC_CONNECT_CLOSE, &[]) {
            log::debug!("closing the libvirt connection: {e}");
        }
    }
}

fn remaining(deadline: &Deadline) -> Result<Duration, RpcError> {
    let left = deadline.remaining();
    if left.is_zero() {
        Err(RpcError::Unavailable(
            "no time left to ask libvirtd".to_owned(),
        ))
    } else {
        Ok(left)
    }
}

fn protocol(what: &str) -> RpcError {
    RpcError::Unsupported(format!(
        "libvirtd sent {what}; asking the C library instead"
    ))
}

/// Decodes one packet (without its length word) received after call `serial` of `procedure`:
/// `None` for a packet that is not the reply (an event), else the payload or the error.
pub fn decode_reply(
    packet: &[u8],
    procedure: i32,
    serial: u32,
) -> Result<Option<Result<Vec<u8>, RpcError>>, RpcError> {
    let mut reader = Reader::new(packet);
    let (program, version) = (reader.u32()?, reader.u32()?);
    let (got_procedure, kind) = (reader.i32()?, reader.u32()?);
    let (got_serial, status) = (reader.u32()?, reader.u32()?);
    if program != PROGRAM || kind == TYPE_MESSAGE {
        return Ok(None);
    }
    if version != VERSION || kind != TYPE_REPLY {
        return Err(protocol("a packet of an unknown version or type"));
    }
    if got_procedure != procedure || got_serial != serial {
        return Err(protocol("a reply to another call"));
    }
    let payload = reader.rest().to_vec();
    match status {
        STATUS_OK => Ok(Some(Ok(payload))),
        STATUS_ERROR => {
            let mut error = Reader::new(&payload);
            let code = error.i32()?;
            let _domain = error.i32()?;
            let message = error
                .optional_string()?
                .unwrap_or_else(|| format!("libvirt error {code}"));
            Ok(Some(Err(RpcError::Failed { code, message })))
        }
        _ => Err(protocol("a reply of an unknown status")),
    }
}

/// An XDR `int` as the word that carries it.
fn as_word(value: i32) -> u32 {
    u32::from_be_bytes(value.to_be_bytes())
}

fn put_u32(buffer: &mut Vec<u8>, value: u32) {
    buffer.extend_from_slice(&value.to_be_bytes());
}

/// XDR string: length, bytes, zero padding to a multiple of four.
fn put_string(buffer: &mut Vec<u8>, text: &str) {
    put_u32(buffer, u32::try_from(text.len()).unwrap_or(u32::MAX));
    buffer.extend_from_slice(text.as_bytes());
    buffer.resize(buffer.len().next_multiple_of(4), 0);
}

/// Reads XDR; every shortfall is a protocol error, never a panic.
#[derive(Debug)]
pub struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    pub fn new(bytes: &'a [u8]) -> Self {
        Self { bytes }
    }

    fn take(&mut self, count: usize) -> Result<&'a [u8], RpcError> {
        if count > self.bytes.len() {
            return Err(protocol("a truncated reply"));
        }
        let (head, tail) = self.bytes.split_at(count);
        self.bytes = tail;
        Ok(head)
    }

    pub fn u32(&mut self) -> Result<u32, RpcError> {
        let word = self.take(4)?;
        Ok(u32::from_be_bytes([word[0], word[1], word[2], word[3]]))
    }

    pub fn i32(&mut self) -> Result<i32, RpcError> {
        self.u32().map(|w| i32::from_be_bytes(w.to_be_bytes()))
    }

    pub fn fixed(&mut self, count: usize) -> Result<&'a [u8], RpcError> {
        self.take(count)
    }

    pub fn string(&mut self) -> Result<String, RpcError> {
        let length = self.u32()? as usize;
        let text = self.take(length)?;
        self.take(length.next_multiple_of(4) - length)?;
        Ok(String::from_utf8_lossy(text).into_owned())
    }

    pub fn optional_string(&mut self) -> Result<Option<String>, RpcError> {
        match self.u32()? {
            0 => Ok(None),
            1 => self.string().map(Some),
            _ => Err(protocol("a malformed optional value")),
        }
    }

    pub fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.bytes)
    }

    pub fn end(&self) -> Result<(), RpcError> {
        if self.bytes.is_empty() {
            Ok(())
        } else {
            Err(protocol("a reply longer than its structure"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_local_system_uris_take_the_fast_path() {
        let t = target("qemu:///system?socket=/tmp/x/libvirt-sock").unwrap();
        assert_eq!(t.socket, PathBuf::from("/tmp/x/libvirt-sock"));
        assert_eq!(t.name, "qemu:///system");
        assert!(target("qemu+unix:///system").is_ok());
        for uri in [
            "qemu:///session",
            "qemu+ssh://host/system",
            "qemu://host/system",
            "qemu+tls://host/system",
            "xen:///system",
            "qemu:///system?socket=relative",
            "qemu:///system?socket=/a%20b",
            "qemu:///system?socket=/a&no_verify=1",
            "qemu:///system?mode=legacy",
            "test:///default",
            "",
            "qemu",
        ] {
            assert!(
                matches!(target(uri), Err(RpcError::Unsupported(_))),
                "{uri}"
            );
        }
    }

    fn packet(procedure: i32, kind: u32, serial: u32, status: u32, payload: &[u8]) -> Vec<u8> {
        let mut p = Vec::new();
        for w in [PROGRAM, VERSION, as_word(procedure), kind, serial, status] {
            put_u32(&mut p, w);
        }
        p.extend_from_slice(payload);
        p
    }

    #[test]
    fn replies_decode_and_errors_carry_libvirts_message() {
        let ok = packet(23, TYPE_REPLY, 3, STATUS_OK, &[0, 0, 0, 1]);
        assert_eq!(
            decode_reply(&ok, 23, 3).unwrap(),
            Some(Ok(vec![0, 0, 0, 1]))
        );
        let mut error = Vec::new();
        put_u32(&mut error, 42);
        put_u32(&mut error, 10);
        put_u32(&mut error, 1);
        put_string(
            &mut error,
            "Domain not found: no domain with matching name 'x'",
        );
        let failed = packet(23, TYPE_REPLY, 3, STATUS_ERROR, &error);
        match decode_reply(&failed, 23, 3).unwrap() {
            Some(Err(RpcError::Failed { code, message })) => {
                assert_eq!(code, ERR_NO_DOMAIN);
                assert!(message.starts_with("Domain not found"), "{message}");
            }
            other => panic!("{other:?}"),
        }
        let event = packet(300, TYPE_MESSAGE, 0, STATUS_OK, &[]);
        assert_eq!(decode_reply(&event, 23, 3).unwrap(), None);
        for wrong in [
            packet(24, TYPE_REPLY, 3, STATUS_OK, &[]),
            packet(23, TYPE_REPLY, 4, STATUS_OK, &[]),
            packet(23, TYPE_REPLY, 3, 7, &[]),
            ok[..10].to_vec(),
        ] {
            assert!(
                matches!(decode_reply(&wrong, 23, 3), Err(RpcError::Unsupported(_))),
                "{wrong:?}"
            );
        }
    }

    #[test]
    fn strings_are_padded_and_read_back() {
        let mut b = Vec::new();
        put_string(&mut b, "abcde");
        assert_eq!(b.len(), 12);
        let mut r = Reader::new(&b);
        assert_eq!(r.string().unwrap(), "abcde");
        r.end().unwrap();
        let mut huge = Vec::new();
        put_u32(&mut huge, u32::MAX);
        assert!(Reader::new(&huge).string().is_err());
    }

    #[test]
    fn a_missing_socket_is_unavailable() {
        let result = domain_state(
            "qemu:///system?socket=/nonexistent/clever-vm-rpc.sock",
            "x",
            &Deadline::after(Duration::from_secs(5)),
        );
        assert!(
            matches!(result, Err(RpcError::Unavailable(_))),
            "{result:?}"
        );
    }
}
