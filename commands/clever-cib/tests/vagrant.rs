//! The Vagrant lab's cluster description (provision/vagrant-cluster.toml) as the boxes load it:
//! `provision/cluster.sh description` writes each node's cluster.toml from it (the provider's
//! gateway; fencing off, or one fence_virsh or fence_vbox device per node), and `clever-cib
//! check` must accept every variant, or `vagrant up` would stop at the CIB. No box is booted here.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]

use std::path::{Path, PathBuf};
use std::time::Duration;

use clever_command::{CommandLine, HostCommands, Output, RunCommand};
use clever_deadline::Deadline;

const BUDGET: Duration = Duration::from_secs(30);

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn template() -> PathBuf {
    repo().join("provision/vagrant-cluster.toml")
}

fn run(command: &CommandLine) -> Output {
    HostCommands
        .run(command, &Deadline::after(BUDGET))
        .unwrap_or_else(|e| panic!("{command}: {e}"))
}

/// The fence settings the Vagrantfile hands the provisioning (every variable set, so that none
/// leaks in from the environment running the tests).
#[derive(Default)]
struct Fence<'a> {
    agent: &'a str,
    host: &'a str,
    user: &'a str,
    identity: &'a str,
    password: &'a str,
}

/// `cluster.sh description TEMPLATE GATEWAY` as the last node runs it.
fn describe(gateway: &str, fence: &Fence) -> Output {
    run(&CommandLine::new("sh")
        .arg(repo().join("provision/cluster.sh"))
        .arg("description")
        .arg(template())
        .arg(gateway)
        .env("CLEVER_FENCE_AGENT", fence.agent)
        .env("CLEVER_FENCE_HOST", fence.host)
        .env("CLEVER_FENCE_USER", fence.user)
        .env("CLEVER_FENCE_IDENTITY", fence.identity)
        .env("CLEVER_FENCE_PASSWORD", fence.password)
        .env("CLEVER_FENCE_PLUG_PREFIX", "clever-lab-"))
}

/// `clever-cib check FILE`: must pass; returns its stderr (the warnings).
fn check(name: &str, description: &str) -> String {
    // A directory per variant: the tests run in parallel.
    let dir =
        std::env::temp_dir().join(format!("clever-cib-vagrant-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join(format!("{name}.toml"));
    std::fs::write(&file, description).unwrap();
    let output = run(&CommandLine::new(env!("CARGO_BIN_EXE_clever-cib"))
        .arg("check")
        .arg(&file));
    let _ = std::fs::remove_file(&file);
    let _ = std::fs::remove_dir(&dir);
    assert!(
        output.status.success(),
        "clever-cib check refused the Vagrant description ({name}):\n{}\n--- description ---\n{description}",
        output.stderr_text()
    );
    output.stderr_text()
}

#[test]
fn the_committed_description_passes_the_check_and_says_fencing_is_off() {
    let text = std::fs::read_to_string(template()).unwrap();
    let warnings = check("committed", &text);
    assert!(warnings.contains("FENCING IS DISABLED"), "{warnings}");
    assert!(
        warnings.contains("no fence agent configured: a node that stops answering is not fenced"),
        "{warnings}"
    );
}

#[test]
fn without_fencing_each_provider_gateway_is_pinged() {
    for gateway in ["192.168.121.1", "10.0.2.2"] {
        let output = describe(gateway, &Fence::default());
        assert!(output.status.success(), "{}", output.stderr_text());
        let description = output.stdout_text();
        assert!(
            description.contains(&format!("host_list = [\"{gateway}\"]")),
            "{description}"
        );
        let warnings = check("unfenced", &description);
        assert!(warnings.contains("FENCING IS DISABLED"), "{warnings}");
        let generated = clever_cib::generate(&description).unwrap();
        assert!(
            generated.crm.contains("stonith-enabled=false"),
            "{}",
            generated.crm
        );
    }
}

#[test]
fn with_a_fence_login_every_node_gets_a_device() {
    let key = Fence {
        agent: "fence_virsh",
        host: "192.168.121.1",
        user: "lab",
        identity: "/etc/clever-lab/fence_key",
        ..Fence::default()
    };
    let password = Fence {
        agent: "fence_vbox",
        host: "10.0.2.2",
        user: "lab",
        password: "secret",
        ..Fence::default()
    };
    for (fence, gateway, login) in [
        (&key, "192.168.121.1", "identity_file"),
        (&password, "10.0.2.2", "password"),
    ] {
        let output = describe(gateway, fence);
        assert!(output.status.success(), "{}", output.stderr_text());
        let description = output.stdout_text();
        let warnings = check(fence.agent, &description);
        assert!(!warnings.contains("FENCING"), "{warnings}");
        let generated = clever_cib::generate(&description).unwrap();
        assert!(
            generated.crm.contains("stonith-enabled=true"),
            "{}",
            generated.crm
        );
        for node in ["node1", "node2"] {
            let device = format!("primitive fence_{node} stonith:{}", fence.agent);
            assert!(generated.crm.contains(&device), "{}", generated.crm);
            assert!(
                generated.crm.contains(&format!("plug=clever-lab-{node}")),
                "{}",
                generated.crm
            );
        }
        assert!(
            generated.crm.contains(&format!("{login}=")),
            "{}",
            generated.crm
        );
    }
}

#[test]
fn half_a_fence_login_is_refused() {
    for fence in [
        Fence {
            agent: "fence_virsh",
            host: "192.168.121.1",
            ..Fence::default()
        },
        Fence {
            agent: "fence_virsh",
            host: "192.168.121.1",
            user: "lab",
            ..Fence::default()
        },
        Fence {
            agent: "fence_ipmilan",
            host: "192.168.121.1",
            user: "lab",
            password: "secret",
            ..Fence::default()
        },
        Fence {
            agent: "fence_vbox",
            host: "10.0.2.2",
            user: "la\"b",
            password: "secret",
            ..Fence::default()
        },
    ] {
        let output = describe("10.0.2.2", &fence);
        assert_eq!(output.code(), Some(2), "{}", output.stdout_text());
        assert!(
            output.stderr_text().starts_with("cluster.sh description: "),
            "{}",
            output.stderr_text()
        );
    }
}

/// The guest's files (`make vagrant-assets`, the Vagrantfile's seeding) and the description name
/// the same place.
#[test]
fn the_guest_is_where_the_description_looks_for_it() {
    let text = std::fs::read_to_string(template()).unwrap();
    let makefile = std::fs::read_to_string(repo().join("Makefile")).unwrap();
    let vagrantfile = std::fs::read_to_string(repo().join("Vagrantfile")).unwrap();
    let variable = |name: &str| {
        makefile
            .lines()
            .find_map(|line| line.strip_prefix(&format!("{name} := ")))
            .unwrap_or_else(|| panic!("no {name} in the Makefile"))
            .trim()
            .to_owned()
    };
    let mount = variable("VAGRANT_MOUNT");
    let domain = variable("VAGRANT_DOMAIN");
    assert!(
        text.contains(&format!(
            "mount = {{ directory = \"{mount}\", fstype = \"ext4\" }}"
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!("config = \"{mount}/{domain}.xml\"")),
        "{text}"
    );
    assert!(
        text.contains(&format!("name = \"{domain}\"")),
        "the VM's name is its domain's: {text}"
    );
    assert!(
        vagrantfile.contains(&format!("MOUNT = \"{mount}\""))
            && vagrantfile.contains(&format!("#{{GUEST}}/{domain}.xml")),
        "the Vagrantfile seeds other files"
    );
}
