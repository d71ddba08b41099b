//! The real binary, on this machine: HTTPS with the certificate it makes, and PAM (through the
//! packaged service file) deciding who logs in.

use std::path::{Path, PathBuf};

use clever_command::HostCommands;

use crate::support::{free_port, Accounts, Curl, ADMIN, PASSWORD, VISITOR};

#[test]
fn the_binary_serves_https_only_and_pam_with_haclient_decides_who_logs_in() {
    let dir = PathBuf::from(format!("/tmp/clever-console-pam-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let accounts = Accounts::new(&dir, Path::new("/"));
    let port = free_port();
    let certificate = dir.join("tls/cert.pem");
    let args: Vec<String> = [
        "--listen",
        &format!("127.0.0.1:{port}"),
        "--certificate",
        certificate.to_str().unwrap(),
        "--key",
        dir.join("tls/key.pem").to_str().unwrap(),
        "--timeout",
        "5",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    let mut console = accounts.spawn(
        Path::new(env!("CARGO_BIN_EXE_clever-console")),
        &args,
        None,
        &dir.join("console.log"),
    );
    console.wait_until("it listens", || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    let curl = Curl {
        runner: HostCommands,
        base: format!("https://localhost:{port}"),
        certificate: certificate.clone(),
        dir: dir.clone(),
    };
    // Plain HTTP gets no page.
    let plain = Curl {
        base: format!("http://localhost:{port}"),
        ..Curl {
            runner: HostCommands,
            base: String::new(),
            certificate: certificate.clone(),
            dir: dir.clone(),
        }
    };
    let answer = plain.request("GET", "/login", &[]);
    assert!(answer.status != 200, "plain HTTP answered: {answer:?}");
    // The certificate it made verifies for localhost, and its key is private.
    let answer = curl.request("GET", "/login", &[]);
    assert_eq!(answer.status, 200, "{answer:?}\n{}", console.log_text());
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(dir.join("tls/key.pem"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);

    let answer = curl.request("POST", "/login", &[("user", ADMIN), ("password", "wrong")]);
    assert_eq!(answer.status, 401, "{answer:?}");
    let answer = curl.request(
        "POST",
        "/login",
        &[("user", VISITOR), ("password", PASSWORD)],
    );
    assert_eq!(answer.status, 401, "not in haclient: {answer:?}");
    let answer = curl.request(
        "POST",
        "/login",
        &[("user", "nosuchuser"), ("password", PASSWORD)],
    );
    assert_eq!(answer.status, 401, "{answer:?}");
    let answer = curl.request("GET", "/api/status", &[]);
    assert_eq!(answer.status, 401, "{answer:?}");

    let answer = curl.request("POST", "/login", &[("user", ADMIN), ("password", PASSWORD)]);
    assert_eq!(answer.status, 303, "{answer:?}\n{}", console.log_text());
    let cookie_line = answer
        .headers
        .lines()
        .find(|l| l.to_ascii_lowercase().starts_with("set-cookie:"))
        .unwrap();
    for attribute in ["Secure", "HttpOnly", "SameSite=Strict"] {
        assert!(cookie_line.contains(attribute), "{cookie_line}");
    }
    let page = curl.request("GET", "/", &[]);
    assert_eq!(page.status, 200);
    assert!(page.body.contains(ADMIN), "{}", page.body);
    assert!(page.body.contains("Problems"), "{}", page.body);
    let answer = curl.request("POST", "/cleanup", &[]);
    assert_eq!(answer.status, 403, "no CSRF token: {answer:?}");
    let answer = curl.request("POST", "/cleanup", &[("csrf", "forged")]);
    assert_eq!(answer.status, 403, "{answer:?}");

    let passwd = std::fs::read_to_string("/etc/passwd").unwrap();
    assert!(
        !passwd.contains(ADMIN),
        "the test user leaked into this machine's /etc/passwd"
    );
    drop(console);
    std::fs::remove_dir_all(&dir).unwrap();
}
