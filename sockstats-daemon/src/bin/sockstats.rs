//! `sockstats`: query the sockstats daemon. See `sockstats --help`.
use std::{
    io::{IsTerminal as _, Write as _},
    path::Path,
    process::ExitCode,
};

use clap::{CommandFactory as _, Parser as _};
use serde::Serialize;
use sockstats_common::{
    client::{default_socket_path, Client, ClientError},
    protocol::{HistoryQuery, Period},
};
use sockstats_daemon::cli::{
    args::{Args, Command, HistoryAction, RulesAction, WindowArgs},
    format, history, plot, run, watch,
};
use sockstats_daemon::history::clock::{Clock as _, SystemClock};

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
        command => query(command, &socket),
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

/// The history request of a window of the command line, with `period` (and `default_since`
/// seconds back when --since is not given).
fn history_query(
    window: &WindowArgs,
    period: Period,
    default_since: i64,
) -> Result<HistoryQuery, String> {
    let now = SystemClock.now();
    let since = match &window.since {
        Some(text) => history::parse_time(text, now)?,
        None => now - default_since,
    };
    let until = window
        .until
        .as_deref()
        .map(|text| history::parse_time(text, now))
        .transpose()?;
    Ok(HistoryQuery {
        period,
        by: window.by.into(),
        labels: window.labels.clone(),
        interfaces: window.interfaces.clone(),
        destinations: window.destinations.clone(),
        metered: window.metered,
        since: Some(since),
        until,
    })
}

fn query(command: &Command, socket: &Path) -> Result<ExitCode, String> {
    let mut client = Client::connect(socket).map_err(|e| e.to_string())?;
    match command {
        Command::History {
            action: Some(HistoryAction::Reset { label }),
            ..
        } => {
            let reply = client
                .history_reset(label.as_deref())
                .map_err(|e| e.to_string())?;
            println!(
                "forgot the recorded usage of {} ({} bucket rows)",
                reply.label.map_or_else(
                    || "every label".to_owned(),
                    |label| format!("label {label:?}")
                ),
                reply.rows_deleted
            );
        }
        Command::History {
            action: None,
            window,
            period,
            json,
            csv,
            plot,
        } => {
            let request = history_query(window, *period, history::default_since_seconds(*period))?;
            let reply = client.history(request).map_err(|e| e.to_string())?;
            if let Some(path) = plot {
                plot::plot(&reply, path).map_err(|e| e.to_string())?;
            }
            if *json {
                print_json(&history::history_json(&reply));
            } else if *csv {
                let _ = std::io::stdout().write_all(history::history_csv(&reply).as_bytes());
            } else {
                let text = history::history_text(&reply, window.bytes);
                let _ = std::io::stdout().write_all(text.as_bytes());
            }
        }
        Command::Top { window, json } => {
            let now = SystemClock.now();
            let since = match &window.since {
                Some(text) => history::parse_time(text, now)?,
                None => now - 24 * 3600,
            };
            let period = history::top_period(now - since);
            let request = history_query(window, period, now - since)?;
            let reply = client.history(request).map_err(|e| e.to_string())?;
            if *json {
                print_json(&history::top_json(&reply));
            } else {
                let text = history::top_text(&reply, window.bytes);
                let _ = std::io::stdout().write_all(text.as_bytes());
            }
        }
        command => return client_query(command, &mut client).map_err(|e| e.to_string()),
    }
    Ok(ExitCode::SUCCESS)
}

/// The `get` variants: one op each.
fn get(command: &Command, client: &mut Client) -> Result<(), ClientError> {
    match command {
        Command::Get {
            json,
            bytes,
            by: Some(by),
            destinations: true,
            ..
        } => {
            let reply = client.get_by_destinations((*by).into())?;
            show(*json, &reply, |reply| {
                format::groups_by_destination_table(reply, *bytes)
            });
        }
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
            peers: true,
            label,
            top,
            ..
        } => {
            let reply = client.get_peers(label.as_deref(), *top)?;
            show(*json, &reply, |reply| format::peers_table(reply, *bytes));
        }
        Command::Get {
            json,
            bytes,
            destinations: true,
            interfaces,
            cost,
            ..
        } => {
            let reply = client.get_destinations(*interfaces, *cost)?;
            show(*json, &reply, |reply| {
                format::destinations_table(reply, *bytes)
            });
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
        _ => unreachable!("only get commands come here"),
    }
    Ok(())
}

fn client_query(command: &Command, client: &mut Client) -> Result<ExitCode, ClientError> {
    match command {
        Command::Get { .. } => get(command, client)?,
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
        Command::Quotas { json, bytes } => {
            let reply = client.quotas()?;
            show(*json, &reply, |reply| format::quotas_table(reply, *bytes));
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
            watch::watch(client, options)?;
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
        Command::Run { .. }
        | Command::Completions { .. }
        | Command::History { .. }
        | Command::Top { .. } => unreachable!("handled before"),
    }
    Ok(ExitCode::SUCCESS)
}
