//! `sockstats`: query the sockstats daemon. See `sockstats --help`.
use std::{
    io::{IsTerminal as _, Write as _},
    path::Path,
    process::ExitCode,
};

use clap::{CommandFactory as _, Parser as _};
use serde::Serialize;
use sockstats_common::client::{default_socket_path, Client, ClientError};
use sockstats_daemon::cli::{
    args::{Args, Command, RulesAction},
    format, run, watch,
};

fn main() -> ExitCode {
    let args = Args::parse();
    format::set_colour(std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none());
    let socket = args.socket.clone().unwrap_or_else(default_socket_path);
    let result = match &args.command {
        Command::Run {
            label,
            user,
            command,
        } => user
            .as_deref()
            .map(run::RunAs::user)
            .transpose()
            .and_then(|run_as| run::run_labeled(&socket, label, run_as.as_ref(), command))
            .map_err(|e| e.to_string()),
        Command::Completions { shell } => {
            clap_complete::generate(
                *shell,
                &mut Args::command(),
                "sockstats",
                &mut std::io::stdout(),
            );
            Ok(ExitCode::SUCCESS)
        }
        command => query(command, &socket).map_err(|e| e.to_string()),
    };
    result.unwrap_or_else(|error| {
        eprintln!("sockstats: {error}");
        ExitCode::FAILURE
    })
}

fn print_json<T: Serialize>(value: &T) {
    let mut text = serde_json::to_string_pretty(value).expect("replies serialize");
    text.push('\n');
    let _ = std::io::stdout().write_all(text.as_bytes());
}

/// Prints `reply` as JSON with `json`, else as the text `human` makes of it.
fn show<T: Serialize>(json: bool, reply: &T, human: impl FnOnce(&T) -> String) {
    if json {
        print_json(reply);
    } else {
        let _ = std::io::stdout().write_all(human(reply).as_bytes());
    }
}

fn query(command: &Command, socket: &Path) -> Result<ExitCode, ClientError> {
    let mut client = Client::connect(socket)?;
    match command {
        Command::Get {
            json,
            bytes,
            by: Some(by),
            ..
        } => {
            let reply = client.get_by((*by).into())?;
            show(*json, &reply, |reply| format::groups_table(reply, *bytes));
        }
        Command::Get {
            json,
            bytes,
            validation: true,
            ..
        } => {
            let reply = client.get_validation()?;
            show(*json, &reply, |reply| {
                format::validation_table(reply, *bytes)
            });
        }
        Command::Get {
            json,
            bytes,
            interfaces: true,
            wire,
            ..
        } => {
            let reply = client.get_interfaces()?;
            show(*json, &reply, |reply| {
                format::interfaces_table(reply, *bytes, *wire)
            });
        }
        Command::Get { json, bytes, .. } => {
            let reply = client.get()?;
            show(*json, &reply, |reply| format::get_table(reply, *bytes));
        }
        Command::Rules { action, json } => {
            let reply = match action {
                None => client.rules()?,
                Some(RulesAction::Add { selector, label }) => {
                    client.add_rule(selector.selector(), label, false)?
                }
                Some(RulesAction::Remove { selector }) => {
                    client.remove_rule(selector.selector())?
                }
            };
            show(*json, &reply, format::rules_table);
        }
        Command::Labels { json } => {
            let reply = client.labels()?;
            show(*json, &reply, format::labels_table);
        }
        Command::Watch {
            interval,
            interfaces,
            bytes,
            count,
        } => {
            let options = watch::WatchOptions {
                interval: std::time::Duration::from_secs_f64(*interval),
                interfaces: *interfaces,
                exact: *bytes,
                count: *count,
            };
            watch::watch(&mut client, options)?;
        }
        Command::Debug { json } => {
            let reply = client.debug_info()?;
            show(*json, &reply, format::debug_text);
        }
        Command::Status { json } => {
            let reply = client.status()?;
            show(*json, &reply, format::status_text);
            if !reply.attached {
                return Ok(ExitCode::FAILURE);
            }
        }
        Command::Run { .. } | Command::Completions { .. } => unreachable!("handled in main"),
    }
    Ok(ExitCode::SUCCESS)
}
