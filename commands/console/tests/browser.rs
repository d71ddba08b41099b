//! A real browser: Debian's headless Chromium, driven over the DevTools protocol, loads the
//! console, logs in, reads the status and moves the VM by clicking, against the in-process
//! server with the recording fake. It saves a screenshot of each step (docs/console.md shows
//! them): in `$CLEVER_CONSOLE_SCREENSHOTS` when set, else in cargo's test directory.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clever_console::cluster::Cluster;
use clever_console::server::Console;
use headless_chrome::protocol::cdp::Page::CaptureScreenshotFormatOption;
use headless_chrome::{Browser, LaunchOptions, Tab};

use crate::FakeCluster;

const CHROMIUM: &str = "/usr/bin/chromium";

fn screenshots() -> PathBuf {
    let dir = std::env::var_os("CLEVER_CONSOLE_SCREENSHOTS").map_or_else(
        || Path::new(env!("CARGO_TARGET_TMPDIR")).join("console-screenshots"),
        PathBuf::from,
    );
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn shoot(tab: &Tab, name: &str) {
    let png = tab
        .capture_screenshot(CaptureScreenshotFormatOption::Png, None, None, true)
        .unwrap();
    let path = screenshots().join(name);
    std::fs::write(&path, png).unwrap();
    eprintln!("screenshot: {}", path.display());
}

/// Polls the page's text until it contains `wanted` (bounded).
fn wait_for_text(tab: &Tab, selector: &str, wanted: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let text = tab
            .find_element(selector)
            .and_then(|e| e.get_inner_text())
            .unwrap_or_default();
        if text.contains(wanted) {
            return text;
        }
        assert!(
            Instant::now() < deadline,
            "{selector} never showed {wanted:?}; it shows:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Clicks `selector`, finding it again when a live update replaced it in between.
fn click(tab: &Tab, selector: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match tab
            .wait_for_element(selector)
            .and_then(|e| e.click().map(|_| ()))
        {
            Ok(()) => return,
            Err(e) => assert!(Instant::now() < deadline, "cannot click {selector}: {e}"),
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn chromium_logs_in_reads_the_status_and_moves_the_vm_by_clicking() {
    assert!(
        Path::new(CHROMIUM).exists(),
        "{CHROMIUM} is missing: scripts/setup.sh installs Debian's chromium"
    );
    let dir = PathBuf::from(format!(
        "/tmp/clever-console-browser-{}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    let (certificate, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    clever_console::tls::ensure_pair(&certificate, &key, &["localhost".to_owned()]).unwrap();
    let tls = clever_console::tls::server_config(&certificate, &key).unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let fake = FakeCluster::new();
    fake.slow.store(true, std::sync::atomic::Ordering::SeqCst);
    let console = Console::new(
        Arc::clone(&fake) as Arc<dyn Cluster>,
        Arc::new(crate::Accounts),
        Duration::from_millis(300),
    );
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.spawn(async move { clever_console::serve(listener, tls, console).await });

    let browser = Browser::new(
        LaunchOptions::default_builder()
            .path(Some(PathBuf::from(CHROMIUM)))
            .sandbox(false)
            .ignore_certificate_errors(true)
            .window_size(Some((1100, 1500)))
            .idle_browser_timeout(Duration::from_secs(60))
            .build()
            .unwrap(),
    )
    .unwrap();
    let tab = browser.new_tab().unwrap();
    tab.set_default_timeout(Duration::from_secs(20));
    tab.navigate_to(&format!("https://localhost:{port}/"))
        .unwrap()
        .wait_until_navigated()
        .unwrap();
    // No session: the login form.
    tab.wait_for_element("input[name=user]")
        .unwrap()
        .click()
        .unwrap();
    tab.type_str("alice").unwrap();
    tab.wait_for_element("input[name=password]")
        .unwrap()
        .click()
        .unwrap();
    tab.type_str("right").unwrap();
    shoot(&tab, "console-login.png");
    tab.press_key("Enter").unwrap();
    wait_for_text(&tab, "#verdict", "No problems: the VM is safe.");
    wait_for_text(&tab, ".where", "runs on node1");
    shoot(&tab, "console-status.png");

    click(&tab, "#migrate");
    let confirmation = wait_for_text(&tab, "#migrate-confirmation", "hibernated on node1");
    assert!(confirmation.contains("for about 7 s"), "{confirmation}");
    shoot(&tab, "console-confirm.png");
    tab.wait_for_element("#migrate-confirm")
        .unwrap()
        .click()
        .unwrap();
    // The phases arrive while the move runs (the fake takes a moment at each).
    wait_for_text(&tab, "#progress", "vm stopping (hibernating) on node1");
    shoot(&tab, "console-moving.png");
    wait_for_text(&tab, "#outcome", "migrate to the other node finished.");
    // The status part follows without a reload.
    wait_for_text(&tab, ".where", "runs on node2");
    shoot(&tab, "console-moved.png");
    assert_eq!(fake.calls(), ["migrate away"]);
    drop(browser);
    runtime.shutdown_timeout(Duration::from_secs(2));
    std::fs::remove_dir_all(&dir).unwrap();
}
