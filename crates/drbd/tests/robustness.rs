//! Garbage, truncated and mutated input must give errors, never panics: an agent that panics
//! while reading DRBD state turns a monitor into an unexplained failure.

use clever_drbd::{parse_events2, parse_proc_drbd, parse_status_json, parse_status_text};

use crate::parse_fixtures::EXPECTED;
use crate::support::{fixture, kind_of, parse, Kind};

const KINDS: [Kind; 4] = [Kind::Json, Kind::Text, Kind::Events2, Kind::Proc];

#[test]
fn garbage_is_an_error_for_every_parser() {
    let garbage = [
        "hello world\n",
        "\u{0}\u{1}\u{2}\u{ff}",
        "{}",
        "[[[[[[[[",
        "::::::",
        "r0 role:\n",
        "r0 role:Primary\n disk:UpToDate\n",
        "  disk:UpToDate\n",
        "version\n",
        " 0: cs:Connected ro:/ ds:/\n",
        "exists resource\n",
        "-\n",
        "\u{feff}[]",
        "💥 rôle:Primary",
    ];
    for text in garbage {
        for kind in KINDS {
            assert!(parse(kind, text).is_err(), "{kind:?} accepted {text:?}");
        }
    }
}

#[test]
fn fixtures_in_the_wrong_parser_are_errors() {
    for (name, _) in EXPECTED {
        let text = fixture(name);
        for kind in KINDS {
            if kind != kind_of(name) {
                assert!(parse(kind, &text).is_err(), "{kind:?} accepted {name}");
            }
        }
    }
}

#[test]
fn every_truncation_of_every_fixture_is_survived() {
    for (name, _) in EXPECTED {
        let text = fixture(name);
        let kind = kind_of(name);
        for (cut, _) in text.char_indices() {
            let prefix = &text[..cut];
            let result = parse(kind, prefix);
            match kind {
                // Any JSON cut short of its closing bracket is invalid.
                Kind::Json if !text[cut..].trim().is_empty() => {
                    assert!(result.is_err(), "{name} cut at {cut} parsed");
                }
                // A `--now` dump cut before its end marker is incomplete.
                Kind::Events2 if !prefix.contains("exists -") => {
                    assert!(result.is_err(), "{name} cut at {cut} parsed");
                }
                _ => {}
            }
        }
    }
}

/// Deterministic pseudo-random numbers: the test must fail the same way every run.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, bound: usize) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        ((self.0 >> 33) % bound as u64) as usize
    }
}

#[test]
fn mutated_fixtures_never_panic() {
    const ALPHABET: &[char] = &[
        ' ', '\n', ':', '/', '"', ',', '{', '}', '[', ']', '-', '.', '%', '0', '9', 'a', 'n', 'e',
        '\t', 'é',
    ];
    let mut rng = Lcg(0x5eed);
    let mut inputs: Vec<String> = EXPECTED.iter().map(|(name, _)| fixture(name)).collect();
    inputs.push(fixture(
        "real-drbd84-tcg/03-syncsource-synctarget-initial-sync-in-progress.txt",
    ));
    for text in &inputs {
        for _ in 0..300 {
            let mut chars: Vec<char> = text.chars().collect();
            for _ in 0..=rng.next(4) {
                let at = rng.next(chars.len() + 1);
                let c = ALPHABET[rng.next(ALPHABET.len())];
                match rng.next(3) {
                    0 if at < chars.len() => chars[at] = c,
                    1 if at < chars.len() => {
                        chars.remove(at);
                    }
                    _ => chars.insert(at, c),
                }
            }
            let mutated: String = chars.into_iter().collect();
            let _ = parse_status_json(&mutated);
            let _ = parse_status_text(&mutated);
            let _ = parse_events2(&mutated);
            let _ = parse_proc_drbd(&mutated);
        }
    }
}

#[test]
fn huge_numbers_and_values_are_errors_not_overflows() {
    let big = "9".repeat(400);
    let json = format!(
        r#"[{{"name": "r0", "role": "Primary", "devices": [{{"volume": {big}, "disk-state": "UpToDate"}}]}}]"#
    );
    assert!(parse_status_json(&json).is_err());
    let text = format!("r0 role:Primary\n  volume:{big} disk:UpToDate\n");
    assert!(parse_status_text(&text).is_err());
    let events = format!("exists resource name:r0 role:Primary\nexists device name:r0 volume:{big} disk:UpToDate\nexists -\n");
    assert!(parse_events2(&events).is_err());
    let proc = format!("version: 8.4.11\n {big}: cs:Unconfigured\n");
    assert!(parse_proc_drbd(&proc).is_err());
    // A long unknown state is quoted shortened in the message.
    let long = "X".repeat(100_000);
    let err = parse_status_text(&format!("r0 role:{long}\n"))
        .unwrap_err()
        .to_string();
    assert!(err.len() < 200, "{}", err.len());
    // ap-in-flight underflows to near 2^64 in real output; we do not read it, so it is fine.
    let json = r#"[{"name": "r0", "role": "Primary", "connections": [{"name": "b", "connection-state": "Connecting", "peer-role": "Unknown", "ap-in-flight": 18446744073709551608}]}]"#;
    assert!(parse_status_json(json).is_ok());
}
