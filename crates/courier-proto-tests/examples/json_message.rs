//! The Rust side of the cross-language JSON test (`make sdk-json`): a `courier.message.v1.Message`
//! with every field set, written and read as proto3 JSON by the generated crate.
//!
//! `json_message write` prints the JSON of the message in `tests/sdk/message-fixture.json`;
//! `json_message read FILE` reads FILE and exits non-zero unless it is that message with `sentAt`
//! written exactly as in the fixture (the canonical form: UTC, `Z`, 9 digits here).

use std::process::ExitCode;

use courier_proto::courier::message::v1::Message;

const FIXTURE: &str = include_str!("../../../tests/sdk/message-fixture.json");

fn main() -> ExitCode {
    let expected: Message = serde_json::from_str(FIXTURE).expect("the fixture is proto3 JSON");
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["write"] => {
            println!(
                "{}",
                serde_json::to_string(&expected).expect("the message serializes")
            );
            ExitCode::SUCCESS
        }
        ["read", file] => {
            let text = std::fs::read_to_string(file).expect("the file is readable");
            let sent_at = |json: &str| {
                let value: serde_json::Value = serde_json::from_str(json).ok()?;
                Some(value.get("sentAt")?.as_str()?.to_owned())
            };
            if sent_at(&text) != sent_at(FIXTURE) {
                eprintln!(
                    "{file}: sentAt is {:?}, not {:?}",
                    sent_at(&text),
                    sent_at(FIXTURE)
                );
                return ExitCode::FAILURE;
            }
            match serde_json::from_str::<Message>(&text) {
                Ok(message) if message == expected => ExitCode::SUCCESS,
                Ok(message) => {
                    eprintln!("{file}: read {message:?}, expected {expected:?}");
                    ExitCode::FAILURE
                }
                Err(error) => {
                    eprintln!("{file}: not a courier.message.v1.Message: {error}");
                    ExitCode::FAILURE
                }
            }
        }
        _ => {
            eprintln!("usage: json_message write | json_message read FILE");
            ExitCode::from(2)
        }
    }
}
