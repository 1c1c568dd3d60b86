//! Tests of request validation, including the fuzz properties (`make fuzz` runs many more
//! cases through `PROPTEST_CASES`).

use super::*;

fn proto(from: &str, to: &str, content: &str) -> Option<Message> {
    Some(Message {
        from: from.into(),
        to: to.into(),
        content: content.into(),
        ..Message::default()
    })
}

fn name(name: &str) -> UserName {
    UserName::parse(name).unwrap()
}

fn field_of(outcome: Result<NewMessage, CourierError>) -> String {
    match outcome {
        Err(CourierError::InvalidArgument { field, .. }) => field,
        other => panic!("expected InvalidArgument, got {other:?}"),
    }
}

#[test]
fn valid_messages_pass() {
    assert_eq!(
        new_message(proto("jack", "mike", "hi"), Some(&name("jack"))).unwrap(),
        NewMessage {
            from: name("jack"),
            to: name("mike"),
            content: "hi".into()
        }
    );
    assert!(new_message(proto("jack", "mike", "hi"), None).is_ok());
}

#[test]
fn invalid_messages_name_the_field() {
    assert_eq!(field_of(new_message(None, None)), "message");
    assert_eq!(
        field_of(new_message(proto("", "mike", "hi"), None)),
        "message.from"
    );
    assert_eq!(
        field_of(new_message(proto("jack", "", "hi"), None)),
        "message.to"
    );
    assert_eq!(
        field_of(new_message(proto("jack", "mi ke", "hi"), None)),
        "message.to"
    );
    assert_eq!(
        field_of(new_message(proto("jack", "mike", ""), None)),
        "message.content"
    );
    let long = "x".repeat(MAX_CONTENT_LEN + 1);
    assert_eq!(
        field_of(new_message(proto("jack", "mike", &long), None)),
        "message.content"
    );
    let mut with_id = proto("jack", "mike", "hi");
    with_id.as_mut().unwrap().id = "7".into();
    assert_eq!(field_of(new_message(with_id, None)), "message.id");
}

#[test]
fn spoofed_senders_are_denied() {
    match new_message(proto("jack", "mike", "hi"), Some(&name("mike"))) {
        Err(CourierError::PermissionDenied(reason)) => {
            assert_eq!(
                reason,
                "message.from is \"jack\" but the caller is \"mike\""
            )
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn after_ids_are_message_ids() {
    assert_eq!(after_id("").unwrap(), None);
    assert_eq!(after_id("42").unwrap(), Some(42));
    assert!(matches!(
        after_id("x"),
        Err(CourierError::InvalidArgument { field, reason }) if field == "after_id" && reason == "is not a message id"
    ));
}

#[test]
fn idle_timeouts_must_be_positive_and_bounded() {
    let duration = |seconds, nanos| Some(courier_wkt::Duration { seconds, nanos });
    assert_eq!(idle_timeout(None).unwrap(), None);
    assert_eq!(
        idle_timeout(duration(1, 500_000_000)).unwrap(),
        Some(Duration::from_millis(1500))
    );
    for bad in [
        duration(0, 0),
        duration(-1, 0),
        duration(0, -1),
        duration(90_000, 0),
        duration(1, 1_000_000_000),
    ] {
        assert!(
            matches!(idle_timeout(bad), Err(CourierError::InvalidArgument { ref field, .. }) if field == "idle_timeout"),
            "{bad:?}"
        );
    }
}

/// The decode and validation path a request takes, fuzzed.
mod fuzz {
    use super::*;
    use crate::pb::chat::ChatRequest;
    use crate::pb::message::{ReceiveMessageRequest, SendMessageRequest};
    use proptest::prelude::*;
    use prost::Message as _;

    /// One way to break a valid message, and the answer it must get.
    #[derive(Clone, Debug)]
    enum Breakage {
        None,
        EmptyFrom,
        LongTo,
        ForeignByteInTo(char),
        EmptyContent,
        LongContent,
        IdSet,
        SentAtSet,
        SpoofedCaller,
    }

    fn breakage() -> impl Strategy<Value = Breakage> {
        prop_oneof![
            Just(Breakage::None),
            Just(Breakage::EmptyFrom),
            Just(Breakage::LongTo),
            // Anything but ASCII letters, digits, '.', '_' and '-', chosen from a list, not
            // from the rule under test.
            prop::sample::select(vec![' ', '/', ':', '@', '\0', 'ä', '名', '\n', '+', '*'])
                .prop_map(Breakage::ForeignByteInTo),
            Just(Breakage::EmptyContent),
            Just(Breakage::LongContent),
            Just(Breakage::IdSet),
            Just(Breakage::SentAtSet),
            Just(Breakage::SpoofedCaller),
        ]
    }

    proptest! {
        /// Whatever bytes arrive, decoding and validation answer (never panic), and whatever
        /// they accept holds the guarantees the domain relies on.
        #[test]
        fn arbitrary_bytes_are_answered_and_what_is_accepted_is_sound(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let requests = [
                SendMessageRequest::decode(bytes.as_slice()).ok().and_then(|r| r.message),
                ChatRequest::decode(bytes.as_slice()).ok().and_then(|r| r.message),
            ];
            for message in requests.into_iter().flatten() {
                let sent = message.clone();
                if let Ok(accepted) = new_message(Some(message), None) {
                    prop_assert_eq!(accepted.from.as_str(), sent.from.as_str());
                    prop_assert_eq!(accepted.to.as_str(), sent.to.as_str());
                    prop_assert_eq!(&accepted.content, &sent.content);
                    prop_assert!((1..=MAX_CONTENT_LEN).contains(&accepted.content.len()));
                    prop_assert!(sent.id.is_empty() && sent.sent_at.is_none());
                }
            }
            if let Ok(request) = ReceiveMessageRequest::decode(bytes.as_slice()) {
                if let Ok(Some(timeout)) = idle_timeout(request.idle_timeout) {
                    prop_assert!(!timeout.is_zero() && timeout <= MAX_IDLE_TIMEOUT);
                }
                if let Ok(Some(id)) = after_id(&request.after_id) {
                    prop_assert!(request.after_id.bytes().all(|b| b.is_ascii_digit()));
                    let expected = if id == 0 { String::new() } else { id.to_string() };
                    prop_assert_eq!(request.after_id.trim_start_matches('0'), expected.as_str());
                }
            }
        }

        /// A valid message, broken in one known way, gets exactly the answer that breakage
        /// calls for: the oracle is the construction, not a copy of the rule.
        #[test]
        fn each_breakage_gets_its_own_answer(
            from in "[a-zA-Z0-9._-]{1,64}",
            to in "[a-zA-Z0-9._-]{1,63}",
            content in "\\PC{1,200}",
            breakage in breakage(),
        ) {
            let mut message = Message { from: from.clone(), to: to.clone(), content: content.clone(), ..Message::default() };
            let mut caller = Some(name(&from));
            let expected_field = match &breakage {
                Breakage::None | Breakage::SpoofedCaller => None,
                Breakage::EmptyFrom => { message.from.clear(); caller = None; Some("message.from") }
                Breakage::LongTo => { message.to = "t".repeat(65); Some("message.to") }
                Breakage::ForeignByteInTo(c) => { message.to.push(*c); Some("message.to") }
                Breakage::EmptyContent => { message.content.clear(); Some("message.content") }
                Breakage::LongContent => { message.content = "x".repeat(MAX_CONTENT_LEN + 1); Some("message.content") }
                Breakage::IdSet => { message.id = "1".into(); Some("message.id") }
                Breakage::SentAtSet => { message.sent_at = Some(courier_wkt::Timestamp::default()); Some("message.sent_at") }
            };
            if matches!(breakage, Breakage::SpoofedCaller) {
                caller = Some(name(if from == "mallory" { "eve" } else { "mallory" }));
            }
            let outcome = new_message(Some(message), caller.as_ref());
            match (breakage, expected_field, outcome) {
                (Breakage::None, _, Ok(accepted)) => {
                    prop_assert_eq!(accepted, NewMessage { from: name(&from), to: name(&to), content });
                }
                (Breakage::SpoofedCaller, _, Err(CourierError::PermissionDenied(_))) => {}
                (_, Some(expected), Err(CourierError::InvalidArgument { field, .. })) => {
                    prop_assert_eq!(field, expected);
                }
                (breakage, _, outcome) => prop_assert!(false, "{breakage:?} got {outcome:?}"),
            }
        }
    }
}
