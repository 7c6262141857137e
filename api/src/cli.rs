//! `api` command line: `api` (or `api serve`) runs the server, `api migrate` applies
//! migrations, `api create-super-admin --email E` creates a super admin with a password read
//! from standard input.

use std::io::BufRead;

use clap::{Parser, Subcommand};
use tokio::net::TcpListener;
use wharf_shared::{shutdown, telemetry, Config};

#[derive(Parser)]
#[command(name = "api", about = "Wharf API server", version)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the HTTP API (the default).
    Serve,
    /// Apply database migrations and exit.
    Migrate,
    /// Create a super admin; the password is read from standard input.
    CreateSuperAdmin {
        #[arg(long)]
        email: String,
    },
}

/// Entry point of the `api` binary.
pub fn main() {
    let cli = Cli::parse();
    telemetry::init(
        telemetry::format_from_env(),
        "info,sqlx=warn,tower_http=info",
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    if let Err(err) = runtime.block_on(run(cli)) {
        tracing::error!("{err:#}");
        eprintln!("api: {err:#}");
        std::process::exit(1);
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let config = Config::from_env()?;
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => {
            let shutdown = shutdown::on_signal();
            let listener = TcpListener::bind(config.api_addr).await?;
            let state = crate::build_state(config).await?;
            crate::serve(listener, state, shutdown).await
        }
        Command::Migrate => {
            crate::migrated_pool(&config, 2).await?;
            tracing::info!("migrations applied");
            Ok(())
        }
        Command::CreateSuperAdmin { email } => {
            let mut password = String::new();
            std::io::stdin().lock().read_line(&mut password)?;
            let password = password.trim_end_matches(['\r', '\n']);
            let pool = crate::migrated_pool(&config, 2).await?;
            match crate::bootstrap::create_super_admin(&pool, &email, password).await? {
                crate::bootstrap::Outcome::Created(id) => {
                    println!("created super admin {email} ({id})")
                }
                crate::bootstrap::Outcome::AlreadyExists => {
                    println!("a user with email {email} already exists; unchanged")
                }
            }
            Ok(())
        }
    }
}
