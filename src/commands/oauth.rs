//! `switchboard oauth connect NAME`: asks the running server to start the browser flow.
//!
//! The flow is started by `POST /api/oauth/{name}/start` on the server that will finish it, with the
//! admin token of its data directory, rather than in this process: the authorize URL is then built as
//! `serve` builds it — with the overrides in *its* environment (`<NAME>_AUTHORIZE_URL`), its variables
//! and its `--public-url` — and the redirect URI is the one its callback answers at. A shell that lacks
//! the server's environment gets the same URL as the API would give.

use std::process::ExitCode;

use clap::Args;

use super::{DataDirArg, Exit, INVOCATION_ERROR, init_logging, stdout, tokio_runtime, usage};
use crate::oauth::connect::Started;

#[derive(Debug, Clone, clap::Subcommand)]
pub enum OAuthCommand {
    /// Start connecting a server through the browser (authorization code with PKCE): the running server
    /// starts the flow with its own settings and this prints the URL to open (valid 10 minutes).
    Connect(ConnectArgs),
}

#[derive(Debug, Clone, Args)]
pub struct ConnectArgs {
    name: String,
    /// Where the running server is reached (its --public-url, or its listen address).
    #[arg(long, value_name = "URL", default_value = "http://127.0.0.1:8080")]
    public_url: url::Url,
    /// The running server's data directory, whose admin token authorizes the request (unless
    /// $SWITCHBOARD_ADMIN_TOKEN is set).
    #[command(flatten)]
    state: DataDirArg,
}

/// `switchboard oauth connect`.
pub fn oauth(command: OAuthCommand) -> Exit {
    init_logging("warn");
    let OAuthCommand::Connect(args) = command;
    crate::server::validate_name(&args.name).map_err(usage)?;
    let token = crate::keys::existing_admin_token(&args.state.settings().data_dir).map_err(usage)?;
    let start = format!("{}/api/oauth/{}/start", args.public_url.as_str().trim_end_matches('/'), args.name);
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| usage(format!("cannot start: {e}")))?;
    let answer = tokio_runtime()?.block_on(async {
        let response = client.post(&start).bearer_auth(token).send().await?;
        Ok::<_, reqwest::Error>((response.status(), response.bytes().await?))
    });
    let (status, body) = answer.map_err(|e| {
        let reason = e.without_url();
        eprintln!(
            "switchboard: no Switchboard answers at {} ({reason}): start `switchboard serve`, or give --public-url",
            args.public_url
        );
        ExitCode::from(INVOCATION_ERROR)
    })?;
    if !status.is_success() {
        eprintln!("{}", String::from_utf8_lossy(&body));
        if status == reqwest::StatusCode::UNAUTHORIZED {
            eprintln!(
                "switchboard: the running server has another admin token: give its --data DIR or $SWITCHBOARD_ADMIN_TOKEN"
            );
        }
        return Err(ExitCode::from(INVOCATION_ERROR));
    }
    let started: Started = serde_json::from_slice(&body)
        .map_err(|e| usage(format!("{} did not answer a started flow: {e}", args.public_url)))?;
    stdout::line(&started.authorize_url)?;
    eprintln!("open this URL within 10 minutes; the provider returns to {}", started.redirect_uri);
    Ok(())
}
