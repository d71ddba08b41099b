//! HTTPS only, as pcsd: the admin's certificate, or one made at first start.
//!
//! A generated pair is self-signed for this host's name and `localhost`: browsers warn once,
//! which is the honest answer for a console nobody has given a certificate to. The key is
//! written with mode 0600 before any byte of it exists on disk.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::error::TlsError;

/// Makes a self-signed pair when neither file exists; returns whether it did.
pub fn ensure_pair(certificate: &Path, key: &Path, names: &[String]) -> Result<bool, TlsError> {
    match (certificate.exists(), key.exists()) {
        (true, true) => return Ok(false),
        (true, false) => {
            return Err(TlsError::HalfPair {
                path: certificate.to_owned(),
                missing: key.to_owned(),
            })
        }
        (false, true) => {
            return Err(TlsError::HalfPair {
                path: key.to_owned(),
                missing: certificate.to_owned(),
            })
        }
        (false, false) => {}
    }
    let generated = rcgen::generate_simple_self_signed(names.to_vec())?;
    write_new(key, generated.signing_key.serialize_pem().as_bytes(), 0o600)?;
    write_new(certificate, generated.cert.pem().as_bytes(), 0o644)?;
    Ok(true)
}

fn write_new(path: &Path, bytes: &[u8], mode: u32) -> Result<(), TlsError> {
    let error = |source| TlsError::Write {
        path: path.to_owned(),
        source,
    };
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(parent)
            .map_err(error)?;
    }
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(error)?;
    file.write_all(bytes).map_err(error)?;
    file.sync_all().map_err(error)
}

/// The server side of TLS with ring's primitives (the only provider compiled in).
pub fn server_config(certificate: &Path, key: &Path) -> Result<rustls::ServerConfig, TlsError> {
    let read_error = |path: &Path, e: &dyn std::fmt::Display| TlsError::Read {
        path: path.to_owned(),
        reason: e.to_string(),
    };
    let chain = CertificateDer::pem_file_iter(certificate)
        .map_err(|e| read_error(certificate, &e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| read_error(certificate, &e))?;
    if chain.is_empty() {
        return Err(read_error(certificate, &"no certificate in it"));
    }
    let key_der = PrivateKeyDer::from_pem_file(key).map_err(|e| read_error(key, &e))?;
    // ring rather than aws-lc-rs: it builds with cc alone (no cmake, no Go), as the Debian
    // build must. rustls deprecates it for lacking post-quantum key exchange, which a console
    // on a plant's management network can do without.
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, key_der)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_pair_is_private_reusable_and_makes_a_configuration() {
        let dir = std::env::temp_dir().join(format!("clever-console-tls-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let certificate = dir.join("tls/cert.pem");
        let key = dir.join("tls/key.pem");
        let names = vec!["localhost".to_owned()];
        assert!(ensure_pair(&certificate, &key, &names).unwrap());
        let mode = |p: &Path| {
            use std::os::unix::fs::PermissionsExt;
            std::fs::metadata(p).unwrap().permissions().mode() & 0o777
        };
        assert_eq!(mode(&key), 0o600);
        assert_eq!(mode(&dir.join("tls")), 0o700);
        let first = std::fs::read(&certificate).unwrap();
        assert!(!ensure_pair(&certificate, &key, &names).unwrap());
        assert_eq!(
            std::fs::read(&certificate).unwrap(),
            first,
            "an existing pair is kept"
        );
        server_config(&certificate, &key).unwrap();
        std::fs::remove_file(&key).unwrap();
        assert!(matches!(
            ensure_pair(&certificate, &key, &names),
            Err(TlsError::HalfPair { .. })
        ));
        std::fs::write(&key, "not a key").unwrap();
        assert!(matches!(
            server_config(&certificate, &key),
            Err(TlsError::Read { .. })
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
