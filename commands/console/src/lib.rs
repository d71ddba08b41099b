//! `clever-console`: the "special application" of the original design, a web console for
//! the plant's admins. One screen says where the VM runs and whether it is safe (the same
//! report as `clevervm status --json`); one button moves it, through the same checks and
//! actions as `clevervm migrate`.
//!
//! The web layer (`server`) reaches the cluster only through the [`cluster::Cluster`] seam and
//! the host's accounts only through [`auth::Authenticator`], so its tests run against fakes.

pub mod auth;
pub mod cli;
pub mod cluster;
pub mod error;
pub mod page;
pub mod ratelimit;
pub mod server;
pub mod session;
pub mod tls;

use std::io::Write;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use clever_ocf::logging::{ClusterLog, LogSettings};

use crate::cli::Cli;
use crate::error::ConsoleError;

pub fn main() -> ExitCode {
    // Before any thread starts: a stop of the service must not leave a crm_resource behind.
    clever_command::end_children_on_termination(last_words);
    let cli = Cli::parse();
    ClusterLog::install(LogSettings {
        tag: "clever-console".to_owned(),
        facility: Some(syslog::Facility::LOG_DAEMON),
        logfile: None,
        debuglog: None,
        debug: cli.debug,
    });
    match run(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            log::error!("{e}");
            let _ = writeln!(std::io::stderr(), "clever-console: {e}");
            ExitCode::FAILURE
        }
    }
}

#[allow(
    clippy::exit,
    reason = "a termination signal ends the console once the programs it ran are gone"
)]
fn last_words(signal: nix::sys::signal::Signal) {
    log::info!("ended by {signal}");
    std::process::exit(0);
}

fn run(cli: &Cli) -> Result<(), ConsoleError> {
    let mut names = vec!["localhost".to_owned()];
    if let Ok(host) = nix::unistd::gethostname() {
        if let Some(host) = host.to_str().filter(|h| !h.is_empty() && *h != "localhost") {
            names.insert(0, host.to_owned());
        }
    }
    if tls::ensure_pair(&cli.certificate, &cli.key, &names)? {
        log::info!(
            "made a self-signed certificate for {} in {}",
            names.join(", "),
            cli.certificate.display()
        );
    }
    let tls = tls::server_config(&cli.certificate, &cli.key)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(ConsoleError::Runtime)?;
    let cluster = cluster::LiveCluster::new(
        cli.cib_file.clone(),
        cli.node.clone(),
        Duration::from_secs(cli.timeout),
        Duration::from_secs(cli.move_timeout),
    );
    let auth = auth::PamAuthenticator {
        service: cli.pam_service.clone(),
        group: cli.group.clone(),
    };
    let console = server::Console::new(
        Arc::new(cluster),
        Arc::new(auth),
        Duration::from_secs(cli.refresh),
    );
    let address = cli.listen;
    runtime.block_on(async move {
        let listener = std::net::TcpListener::bind(address)
            .map_err(|source| ConsoleError::Serve { address, source })?;
        log::info!("serving https://{address}/");
        serve(listener, tls, console).await
    })
}

/// Serves the console on `listener` until the process ends; also what tests run in-process.
pub async fn serve(
    listener: std::net::TcpListener,
    tls: rustls::ServerConfig,
    console: Arc<server::Console>,
) -> Result<(), ConsoleError> {
    let address = listener
        .local_addr()
        .map_err(|source| ConsoleError::Serve {
            address: SocketAddr::from(([0, 0, 0, 0], 0)),
            source,
        })?;
    listener
        .set_nonblocking(true)
        .map_err(|source| ConsoleError::Serve { address, source })?;
    tokio::spawn(server::refresh_loop(Arc::clone(&console)));
    let app = server::router(console);
    let config = axum_server::tls_rustls::RustlsConfig::from_config(Arc::new(tls));
    axum_server::from_tcp_rustls(listener, config)
        .map_err(|source| ConsoleError::Serve { address, source })?
        .serve(app.into_make_service_with_connect_info::<SocketAddr>())
        .await
        .map_err(|source| ConsoleError::Serve { address, source })
}
