//! The `courier-client` binary: parses arguments and calls the [`courier_client`] library.
//!
//! User names given as flags are checked against `courier-common`'s rule before anything is
//! sent; every error is printed with its whole chain of causes.

use std::collections::HashMap;
use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use courier_client::demo::{Demo, describe_metadata};
use courier_client::pb::chat::ChatRequest;
use courier_client::pb::hello::HelloRequest;
use courier_client::pb::message::{
    Message, PostMessageRequest, ReceiveMessageRequest, SendMessageRequest,
};
use courier_client::{CallMetadata, ConnectOptions, Connection, ExtraMetadata, RpcError};
use courier_common::user_name::{self, UserNameError};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::metadata::MetadataMap;

/// Talks to a Courier server: hello, send, post, receive, chat, and the tutorial demo.
#[derive(Debug, Parser)]
#[command(version)]
struct Cli {
    /// Server address; https:// (or --ca) turns on TLS.
    #[arg(long, global = true, default_value = "http://127.0.0.1:50051")]
    addr: String,
    /// CA certificate (PEM) to trust for the server.
    #[arg(long, global = true)]
    ca: Option<PathBuf>,
    /// Name to check the server certificate against, if not the host of --addr.
    #[arg(long, global = true)]
    domain: Option<String>,
    /// Client certificate (PEM) for mutual TLS.
    #[arg(long, global = true, requires = "key")]
    cert: Option<PathBuf>,
    /// Client private key (PEM) for mutual TLS.
    #[arg(long, global = true, requires = "cert")]
    key: Option<PathBuf>,
    /// Bearer token sent as `authorization: Bearer <token>`.
    #[arg(long, global = true, env = "COURIER_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Extra metadata `key:value`, repeatable; `-bin` keys take base64 values.
    #[arg(short = 'H', long = "header", global = true)]
    headers: Vec<String>,
    /// Print responses as proto3 JSON, one per line.
    #[arg(long, global = true)]
    json: bool,
    /// Print response headers and trailers to stderr.
    #[arg(short, long, global = true)]
    verbose: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// SayHelloService.Hello.
    Hello {
        /// Who to greet.
        #[arg(long, required_unless_present = "data")]
        name: Option<String>,
        /// The HelloRequest as JSON instead.
        #[arg(short = 'd', long = "data", conflicts_with = "name")]
        data: Option<String>,
    },
    /// MessageService.SendMessage: one message per argument, or per stdin line if none.
    Send {
        /// Sender (must be you when the server checks tokens).
        #[arg(long, required_unless_present = "json_input")]
        from: Option<String>,
        /// Recipient.
        #[arg(long, required_unless_present = "json_input")]
        to: Option<String>,
        /// Each argument or line is a SendMessageRequest as JSON.
        #[arg(short = 'd', long = "data")]
        json_input: bool,
        /// Message texts.
        messages: Vec<String>,
    },
    /// MessageService.PostMessage: one message, queued once per idempotency key; prints its id
    /// and sent_at, and the key to retry with.
    Post {
        /// Sender (must be you when the server checks tokens).
        #[arg(long, required_unless_present = "data")]
        from: Option<String>,
        /// Recipient.
        #[arg(long, required_unless_present = "data")]
        to: Option<String>,
        /// Idempotency key; the same key retries safely (a fresh UUID when omitted). Not
        /// `--key`, which is the client's TLS key.
        #[arg(long)]
        idempotency_key: Option<String>,
        /// The PostMessageRequest as JSON instead.
        #[arg(
            short = 'd',
            long = "data",
            conflicts_with_all = ["from", "to", "idempotency_key", "text"]
        )]
        data: Option<String>,
        /// Message text.
        #[arg(required_unless_present = "data")]
        text: Option<String>,
    },
    /// MessageService.ReceiveMessage: prints messages as they arrive.
    Receive {
        /// Whose messages.
        #[arg(long, required_unless_present = "data")]
        user: Option<String>,
        /// End after this long without a message, e.g. `5s` or `1.5s`.
        #[arg(long)]
        idle_timeout: Option<String>,
        /// Resume right after this message id (the last one you processed).
        #[arg(long)]
        after_id: Option<String>,
        /// The ReceiveMessageRequest as JSON instead.
        #[arg(short = 'd', long = "data", conflicts_with_all = ["user", "idle_timeout", "after_id"])]
        data: Option<String>,
    },
    /// ChatService.Chat: stdin lines go to --to, received messages are printed.
    Chat {
        /// You.
        #[arg(long)]
        user: String,
        /// Who your lines go to.
        #[arg(long)]
        to: String,
    },
    /// Plays the tutorial's scenarios and checks every answer; exits non-zero on a wrong one.
    Demo {
        /// Directory with `jack.token` and `mike.token`, for servers that check tokens.
        #[arg(long)]
        tokens_dir: Option<PathBuf>,
    },
}

/// Why a command failed. Causes stay [`source`](std::error::Error::source)s, so that
/// [`courier_common::Chain`] can print them all.
#[derive(Debug, thiserror::Error)]
enum CliError {
    #[error(transparent)]
    Client(#[from] courier_client::ClientError),
    #[error(transparent)]
    Demo(#[from] courier_client::demo::DemoError),
    #[error(transparent)]
    Rpc(#[from] RpcError),
    #[error("{flag}: user name {name:?}")]
    UserName {
        flag: &'static str,
        name: String,
        #[source]
        source: UserNameError,
    },
    #[error("{what}")]
    Json {
        what: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("cannot read {path}")]
    ReadFile {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

impl From<tonic::Status> for CliError {
    fn from(status: tonic::Status) -> Self {
        Self::Rpc(status.into())
    }
}

/// Checks the user name given as `flag`, if one was given.
fn check_user(flag: &'static str, name: Option<&str>) -> Result<(), CliError> {
    match name {
        Some(name) => user_name::check(name).map_err(|source| CliError::UserName {
            flag,
            name: name.to_owned(),
            source,
        }),
        None => Ok(()),
    }
}

/// Checks every user name `command` takes as a flag, before anything goes over the network.
/// Requests given as JSON (`-d`) are sent as they are, for the server to judge.
fn check_user_names(command: &Command) -> Result<(), CliError> {
    match command {
        Command::Send { from, to, .. } | Command::Post { from, to, .. } => {
            check_user("--from", from.as_deref())?;
            check_user("--to", to.as_deref())
        }
        Command::Receive { user, .. } => check_user("--user", user.as_deref()),
        Command::Chat { user, to } => {
            check_user("--user", Some(user))?;
            check_user("--to", Some(to))
        }
        Command::Hello { .. } | Command::Demo { .. } => Ok(()),
    }
}

fn parse_json<T: DeserializeOwned>(what: &str, text: &str) -> Result<T, CliError> {
    serde_json::from_str(text).map_err(|source| CliError::Json {
        what: what.to_owned(),
        source,
    })
}

fn print_json(value: &impl Serialize) {
    println!(
        "{}",
        serde_json::to_string(value).expect("generated types serialize")
    );
}

fn show_metadata(verbose: bool, label: &str, metadata: &MetadataMap) {
    if verbose {
        eprintln!("{label}: {}", describe_metadata(metadata));
    }
}

/// How responses are printed.
#[derive(Clone, Copy, Debug)]
struct Output {
    json: bool,
    verbose: bool,
}

/// Prints each message of `stream` as it arrives (JSON or `human`), then the trailers if verbose.
async fn print_stream<T: Serialize>(
    mut stream: tonic::Streaming<T>,
    output: Output,
    human: impl Fn(&T) -> String,
) -> Result<(), CliError> {
    while let Some(item) = stream.message().await? {
        if output.json {
            print_json(&item);
        } else {
            println!("{}", human(&item));
        }
        std::io::stdout().flush()?;
    }
    if let Some(trailers) = stream.trailers().await? {
        show_metadata(output.verbose, "trailers", &trailers);
    }
    Ok(())
}

fn stdin_lines() -> Vec<String> {
    std::io::stdin()
        .lock()
        .lines()
        .map_while(Result::ok)
        .filter(|line| !line.trim().is_empty())
        .collect()
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {}", courier_common::Chain(&error));
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<(), CliError> {
    check_user_names(&cli.command)?;
    let output = Output {
        json: cli.json,
        verbose: cli.verbose,
    };
    let options = ConnectOptions {
        addr: cli.addr.clone(),
        ca: cli.ca.clone(),
        domain: cli.domain.clone(),
        identity: cli.cert.clone().zip(cli.key.clone()),
    };
    let connection = Connection::open(&options).await?;
    let extra = cli
        .headers
        .iter()
        .map(|entry| ExtraMetadata::parse(entry))
        .collect::<Result<Vec<_>, _>>()?;
    let metadata = CallMetadata::new(cli.token.as_deref(), extra)?;

    match cli.command {
        Command::Hello { name, data } => {
            let request = match data {
                Some(json) => parse_json::<HelloRequest>("-d", &json)?,
                None => HelloRequest {
                    name: name.unwrap_or_default(),
                },
            };
            let response = connection.hello(metadata).hello(request).await?;
            show_metadata(cli.verbose, "headers", response.metadata());
            let body = response.into_inner();
            if cli.json {
                print_json(&body)
            } else {
                println!("{}", body.msg)
            }
        }
        Command::Send {
            from,
            to,
            json_input,
            messages,
        } => {
            let inputs = if messages.is_empty() {
                stdin_lines()
            } else {
                messages
            };
            let requests = inputs
                .iter()
                .map(|input| {
                    if json_input {
                        parse_json::<SendMessageRequest>("message", input)
                    } else {
                        let message = Message {
                            from: from.clone().unwrap_or_default(),
                            to: to.clone().unwrap_or_default(),
                            content: input.clone(),
                            ..Message::default()
                        };
                        Ok(SendMessageRequest {
                            message: Some(message),
                        })
                    }
                })
                .collect::<Result<Vec<_>, _>>()?;
            let response = connection
                .messages(metadata)
                .send_message(tokio_stream::iter(requests))
                .await?;
            show_metadata(cli.verbose, "headers", response.metadata());
            let body = response.into_inner();
            if cli.json {
                print_json(&body)
            } else {
                println!("queued {}", body.count)
            }
        }
        Command::Post {
            from,
            to,
            idempotency_key,
            data,
            text,
        } => {
            let request = match data {
                Some(json) => parse_json::<PostMessageRequest>("-d", &json)?,
                None => PostMessageRequest {
                    message: Some(Message {
                        from: from.unwrap_or_default(),
                        to: to.unwrap_or_default(),
                        content: text.unwrap_or_default(),
                        ..Message::default()
                    }),
                    idempotency_key: idempotency_key
                        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string()),
                },
            };
            let key = request.idempotency_key.clone();
            let response = connection.messages(metadata).post_message(request).await?;
            show_metadata(cli.verbose, "headers", response.metadata());
            let body = response.into_inner();
            if cli.json {
                print_json(&body)
            } else {
                let message = body.message.unwrap_or_default();
                let sent_at = message
                    .sent_at
                    .map(|sent_at| {
                        serde_json::to_value(sent_at)
                            .ok()
                            .and_then(|value| value.as_str().map(str::to_owned))
                            .unwrap_or_default()
                    })
                    .unwrap_or_default();
                println!("posted #{} at {sent_at} with key {key}", message.id)
            }
        }
        Command::Receive {
            user,
            idle_timeout,
            after_id,
            data,
        } => {
            let request = match data {
                Some(json) => parse_json::<ReceiveMessageRequest>("-d", &json)?,
                None => ReceiveMessageRequest {
                    user: user.unwrap_or_default(),
                    idle_timeout: idle_timeout
                        .map(|text| {
                            parse_json::<courier_wkt::Duration>(
                                "--idle-timeout",
                                &format!("{text:?}"),
                            )
                        })
                        .transpose()?,
                    after_id: after_id.unwrap_or_default(),
                },
            };
            let response = connection
                .messages(metadata)
                .receive_message(request)
                .await?;
            show_metadata(cli.verbose, "headers", response.metadata());
            print_stream(response.into_inner(), output, |response| {
                let message = response.message.clone().unwrap_or_default();
                format!("#{} {}: {}", message.id, message.from, message.content)
            })
            .await?;
        }
        Command::Chat { user, to } => {
            let (outbound, requests) = mpsc::channel(16);
            let metadata = CallMetadata::new(
                cli.token.as_deref(),
                cli.headers
                    .iter()
                    .map(|entry| ExtraMetadata::parse(entry))
                    .chain([ExtraMetadata::caller(&user)])
                    .collect::<Result<Vec<_>, _>>()?,
            )?;
            let response = connection
                .chat(metadata)
                .chat(ReceiverStream::new(requests))
                .await?;
            show_metadata(cli.verbose, "headers", response.metadata());
            let inbound = response.into_inner();
            // Stdin is read on a blocking thread; dropping `outbound` at EOF half-closes the chat.
            std::thread::spawn(move || {
                for line in std::io::stdin().lock().lines().map_while(Result::ok) {
                    let message = Message {
                        from: user.clone(),
                        to: to.clone(),
                        content: line,
                        ..Message::default()
                    };
                    if outbound
                        .blocking_send(ChatRequest {
                            message: Some(message),
                        })
                        .is_err()
                    {
                        break;
                    }
                }
            });
            print_stream(inbound, output, |response| {
                let message = response.message.clone().unwrap_or_default();
                format!("{}: {}", message.from, message.content)
            })
            .await?;
        }
        Command::Demo { tokens_dir } => {
            let mut tokens = HashMap::new();
            if let Some(dir) = tokens_dir {
                for user in ["jack", "mike"] {
                    let path = dir.join(format!("{user}.token"));
                    let token =
                        std::fs::read_to_string(&path).map_err(|source| CliError::ReadFile {
                            path: path.display().to_string(),
                            source,
                        })?;
                    tokens.insert(user.to_owned(), token.trim().to_owned());
                }
            }
            Demo::new(connection, tokens)
                .run(&mut std::io::stdout())
                .await?;
        }
    }
    Ok(())
}
