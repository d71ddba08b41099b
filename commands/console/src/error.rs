//! The console's failures at start-up; request-time failures are answers, not errors.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum ConsoleError {
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error("cannot start the async runtime: {0}")]
    Runtime(std::io::Error),
    #[error("cannot serve on {address}: {source}")]
    Serve {
        address: std::net::SocketAddr,
        source: std::io::Error,
    },
}

/// The certificate and key could not be read, made or used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{path} exists but {missing} does not: give both or neither")]
    HalfPair { path: PathBuf, missing: PathBuf },
    #[error("cannot read {path}: {reason}")]
    Read { path: PathBuf, reason: String },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot generate a self-signed certificate: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("the certificate and key do not make a TLS configuration: {0}")]
    Config(#[from] rustls::Error),
}
