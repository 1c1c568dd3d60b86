//! The proto3 JSON mapping of the generated types (pbjson), checked in both directions
//! against JSON written by hand from the proto3 JSON specification.

use courier_proto::courier::chat::v1::{ChatRequest, ChatResponse};
use courier_proto::courier::hello::v1::{HelloRequest, HelloResponse};
use courier_proto::courier::message::v1::{
    Message, ReceiveMessageRequest, ReceiveMessageResponse, SendMessageRequest, SendMessageResponse,
};
use courier_wkt::{Duration, Timestamp};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// 2026-11-23T10:00:00.5 UTC.
const SENT_AT: Timestamp = Timestamp {
    seconds: 1_795_428_000,
    nanos: 500_000_000,
};

fn message() -> Message {
    Message {
        from: "jack".into(),
        content: "hello mike".into(),
        to: "mike".into(),
        id: "00000001".into(),
        sent_at: Some(SENT_AT),
    }
}

/// The JSON pbjson writes for [`message()`]: lowerCamelCase names, fields in declaration order.
/// The timestamp in the proto3 spec's canonical form: UTC with a `Z`, 0, 3, 6 or 9 fractional
/// digits (other offsets are read, see `timestamps_accept_any_offset`).
const MESSAGE_JSON: &str = r#"{"from":"jack","content":"hello mike","to":"mike","id":"00000001","sentAt":"2026-11-23T10:00:00.500Z"}"#;

/// Serializes `value`, asserts the exact JSON text, parses that text back and asserts equality.
fn assert_round_trip<T>(value: &T, json: &str)
where
    T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug,
{
    assert_eq!(serde_json::to_string(value).unwrap(), json);
    assert_eq!(&serde_json::from_str::<T>(json).unwrap(), value);
}

#[test]
fn hello_messages_round_trip() {
    assert_round_trip(
        &HelloRequest {
            name: "world".into(),
        },
        r#"{"name":"world"}"#,
    );
    assert_round_trip(
        &HelloResponse {
            msg: "hello world! world".into(),
        },
        r#"{"msg":"hello world! world"}"#,
    );
}

#[test]
fn default_values_are_omitted() {
    assert_round_trip(&HelloRequest::default(), "{}");
    assert_round_trip(&Message::default(), "{}");
    assert_round_trip(&SendMessageResponse::default(), "{}");
}

#[test]
fn message_uses_lower_camel_case_and_rfc3339() {
    assert_round_trip(&message(), MESSAGE_JSON);
}

#[test]
fn nested_messages_round_trip() {
    let nested = format!(r#"{{"message":{MESSAGE_JSON}}}"#);
    assert_round_trip(
        &SendMessageRequest {
            message: Some(message()),
        },
        &nested,
    );
    assert_round_trip(
        &ReceiveMessageResponse {
            message: Some(message()),
        },
        &nested,
    );
    assert_round_trip(
        &ChatRequest {
            message: Some(message()),
        },
        &nested,
    );
    assert_round_trip(
        &ChatResponse {
            message: Some(message()),
        },
        &nested,
    );
}

#[test]
fn int64_is_a_string_and_parses_from_either_form() {
    assert_round_trip(&SendMessageResponse { count: 5 }, r#"{"count":"5"}"#);
    let from_number: SendMessageResponse = serde_json::from_str(r#"{"count":5}"#).unwrap();
    assert_eq!(from_number.count, 5);
}

#[test]
fn durations_use_seconds_with_an_s_suffix() {
    let request = ReceiveMessageRequest {
        user: "mike".into(),
        idle_timeout: Some(Duration {
            seconds: 1,
            nanos: 500_000_000,
        }),
        after_id: String::new(),
    };
    // Output uses 0, 3, 6 or 9 fractional digits, as the proto3 spec says.
    assert_round_trip(&request, r#"{"user":"mike","idleTimeout":"1.500s"}"#);
    let short: ReceiveMessageRequest =
        serde_json::from_str(r#"{"user":"mike","idleTimeout":"1.5s"}"#).unwrap();
    assert_eq!(short, request);
    let whole = ReceiveMessageRequest {
        user: "mike".into(),
        idle_timeout: Some(Duration {
            seconds: 30,
            nanos: 0,
        }),
        after_id: "41".into(),
    };
    assert_round_trip(
        &whole,
        r#"{"user":"mike","idleTimeout":"30s","afterId":"41"}"#,
    );
}

#[test]
fn timestamps_accept_any_offset() {
    for text in [
        "2026-11-23T10:00:00.5Z",
        "2026-11-23T10:00:00.500+00:00",
        "2026-11-23T11:00:00.5+01:00",
    ] {
        let parsed: Message = serde_json::from_str(&format!(r#"{{"sentAt":"{text}"}}"#)).unwrap();
        assert_eq!(parsed.sent_at, Some(SENT_AT), "{text}");
    }
}

#[test]
fn original_field_names_are_accepted() {
    let parsed: Message = serde_json::from_str(
        r#"{"from":"jack","content":"hello mike","to":"mike","id":"00000001","sent_at":"2026-11-23T10:00:00.5Z"}"#,
    )
    .unwrap();
    assert_eq!(parsed, message());
    let parsed: ReceiveMessageRequest =
        serde_json::from_str(r#"{"user":"mike","idle_timeout":"2s"}"#).unwrap();
    assert_eq!(
        parsed.idle_timeout,
        Some(Duration {
            seconds: 2,
            nanos: 0
        })
    );
}

#[test]
fn bad_json_is_rejected_with_a_reason() {
    let unknown = serde_json::from_str::<HelloRequest>(r#"{"nmae":"world"}"#).unwrap_err();
    assert!(
        unknown.to_string().contains("unknown field `nmae`"),
        "{unknown}"
    );
    let wrong_type = serde_json::from_str::<HelloRequest>(r#"{"name":5}"#).unwrap_err();
    assert!(
        wrong_type.to_string().contains("invalid type"),
        "{wrong_type}"
    );
    assert!(serde_json::from_str::<Message>(r#"{"sentAt":"yesterday"}"#).is_err());
    assert!(serde_json::from_str::<ReceiveMessageRequest>(r#"{"idleTimeout":"5"}"#).is_err());
    assert!(serde_json::from_str::<SendMessageResponse>(r#"{"count":"five"}"#).is_err());
}
