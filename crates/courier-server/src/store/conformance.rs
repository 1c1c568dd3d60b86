//! The behaviour every [`Store`] must have, as one suite each implementation's tests run
//! (`memory.rs`, `redb/mod.rs`; a new store adds one line calling [`check`]).

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::{PostOutcome, Store};
use crate::domain::{Envelope, IdempotencyKey, NewMessage, PostRecord, UserName, content_digest};

fn user(name: &str) -> UserName {
    UserName::parse(name).unwrap()
}

/// A message from `from` to `to`.
pub(crate) fn message(from: &str, to: &str, content: &str) -> NewMessage {
    NewMessage {
        from: user(from),
        to: user(to),
        content: content.into(),
    }
}

/// Appends one message from jack and answers it as stored.
pub(crate) async fn append(
    store: &dyn Store,
    to: &str,
    content: &str,
    sent_at: SystemTime,
) -> Envelope {
    let ids = store
        .append_all(vec![message("jack", to, content)], sent_at)
        .await
        .unwrap();
    assert_eq!(ids.end - ids.start, 1, "one message, one id");
    Envelope {
        id: ids.start,
        from: user("jack"),
        to: user(to),
        content: content.into(),
        sent_at,
    }
}

/// Runs a blocking store call (flush, prune) the way the server does: off the async workers.
fn blocking<T>(call: impl FnOnce() -> T) -> T {
    tokio::task::block_in_place(call)
}

/// Runs the whole suite against `store`, which must be empty. Needs a multi-threaded runtime.
pub(crate) async fn check(store: &dyn Store) {
    logs_cursors_and_pruning(store).await;
    pruning_goes_in_bounded_chunks(store).await;
    a_batch_is_pruned_in_bounded_chunks_too(store).await;
    posts_are_appended_once_per_sender_and_key(store).await;
    post_records_expire_in_bounded_chunks(store).await;
}

fn key(key: &str) -> IdempotencyKey {
    IdempotencyKey::parse(key).unwrap()
}

/// A post appends its message and records it under (sender, key), in one step; a second post
/// under the pair appends nothing and answers the record, whatever its message; the same key
/// from another sender is another pair. Posts take ids from the same sequence as appends.
async fn posts_are_appended_once_per_sender_and_key(store: &dyn Store) {
    let at = |seconds| UNIX_EPOCH + Duration::new(seconds, 123_456_789);
    let (pat, sam, quin, rita) = (user("pat"), user("sam"), user("quin"), user("rita"));
    assert_eq!(store.posted(&pat, &key("k-1")).unwrap(), None);
    let before = append(store, "quin", "appended", at(500)).await;

    let outcome = store
        .post(message("pat", "quin", "hello"), key("k-1"), at(500))
        .await
        .unwrap();
    let PostOutcome::Appended(id) = outcome else {
        panic!("a first post appends: {outcome:?}");
    };
    assert!(id > before.id, "posts and appends share the ids");
    let posted = Envelope {
        id,
        from: pat.clone(),
        to: quin.clone(),
        content: "hello".into(),
        sent_at: at(500),
    };
    assert_eq!(
        store.read_after(&quin, before.id, 10).unwrap(),
        std::slice::from_ref(&posted)
    );
    let record = PostRecord {
        id,
        sent_at: at(500),
        to: quin.clone(),
        digest: content_digest("hello"),
    };
    assert_eq!(record, PostRecord::of(&posted));
    assert_eq!(
        store.posted(&pat, &key("k-1")).unwrap(),
        Some(record.clone())
    );
    assert_eq!(store.posted(&pat, &key("k-2")).unwrap(), None);
    assert_eq!(store.posted(&sam, &key("k-1")).unwrap(), None);

    // Again under the pair, with the same message or another: nothing is appended.
    for (to, content) in [("quin", "hello"), ("rita", "something else")] {
        assert_eq!(
            store
                .post(message("pat", to, content), key("k-1"), at(600))
                .await
                .unwrap(),
            PostOutcome::Recorded(record.clone())
        );
    }
    assert_eq!(store.count_after(&quin, before.id).unwrap(), 1);
    assert_eq!(store.read_after(&rita, 0, 10).unwrap(), []);

    // Another sender's k-1.
    let outcome = store
        .post(message("sam", "quin", "hello"), key("k-1"), at(600))
        .await
        .unwrap();
    let PostOutcome::Appended(sams) = outcome else {
        panic!("another sender's key is its own: {outcome:?}");
    };
    assert!(sams > id);
    assert_eq!(store.posted(&sam, &key("k-1")).unwrap().unwrap().id, sams);
    assert_eq!(store.posted(&pat, &key("k-1")).unwrap(), Some(record));
    assert!(append(store, "quin", "next", at(600)).await.id > sams);

    // Records expire by their message's time, apart from the messages: the two go.
    assert_eq!(blocking(|| store.prune_posts(at(550), 100)).unwrap(), 1);
    assert_eq!(store.posted(&pat, &key("k-1")).unwrap(), None);
    assert!(store.posted(&sam, &key("k-1")).unwrap().is_some());
    assert_eq!(store.count_after(&quin, before.id).unwrap(), 3);
    assert_eq!(blocking(|| store.prune_posts(at(1000), 100)).unwrap(), 1);
    assert_eq!(blocking(|| store.prune_posts(at(1000), 100)).unwrap(), 0);
    // An expired key is new again.
    let outcome = store
        .post(message("pat", "quin", "hello"), key("k-1"), at(700))
        .await
        .unwrap();
    assert!(
        matches!(outcome, PostOutcome::Appended(again) if again > sams),
        "{outcome:?}"
    );
    assert_eq!(blocking(|| store.prune_posts(at(1000), 100)).unwrap(), 1);
}

/// Records go oldest first, at most `max` a call, and only those sent before the cutoff.
async fn post_records_expire_in_bounded_chunks(store: &dyn Store) {
    let at = |seconds| UNIX_EPOCH + Duration::from_secs(seconds);
    let pam = user("pam");
    for n in 0..5 {
        let outcome = store
            .post(
                message("pam", "ravi", "old"),
                key(&format!("p{n}")),
                at(2000),
            )
            .await
            .unwrap();
        assert!(matches!(outcome, PostOutcome::Appended(_)));
    }
    let kept = store
        .post(message("pam", "ravi", "new"), key("p-kept"), at(2050))
        .await
        .unwrap();
    let mut removed = 0;
    loop {
        let chunk = blocking(|| store.prune_posts(at(2020), 2)).unwrap();
        assert!(chunk <= 2, "a chunk holds at most max");
        removed += chunk;
        if chunk < 2 {
            break;
        }
    }
    assert_eq!(removed, 5);
    for n in 0..5 {
        assert_eq!(store.posted(&pam, &key(&format!("p{n}"))).unwrap(), None);
    }
    let PostOutcome::Appended(kept) = kept else {
        panic!("{kept:?}")
    };
    assert_eq!(
        store
            .posted(&pam, &key("p-kept"))
            .unwrap()
            .map(|record| record.id),
        Some(kept)
    );
    assert_eq!(
        store.count_after(&user("ravi"), 0).unwrap(),
        6,
        "messages are pruned apart"
    );
}

/// Posts under one sender and key from many tasks at once append one message: one answer is
/// `Appended`, every other the record of that message. Posts under distinct keys all append.
pub(crate) async fn concurrent_posts(store: Arc<dyn Store>) {
    let (cora, dan) = (user("cora"), user("dan"));
    let before = store.count_after(&dan, 0).unwrap();
    let posts = (0..16).map(|writer| {
        let store = Arc::clone(&store);
        tokio::spawn(async move {
            let content = format!("from writer {writer}");
            let message = message("cora", "dan", &content);
            let outcome = store.post(message, key("race"), SystemTime::now());
            (content, outcome.await.unwrap())
        })
    });
    let mut outcomes = Vec::new();
    for post in posts {
        outcomes.push(post.await.unwrap());
    }
    let appended: Vec<(&String, u64)> = outcomes
        .iter()
        .filter_map(|(content, outcome)| match outcome {
            PostOutcome::Appended(id) => Some((content, *id)),
            PostOutcome::Recorded(_) => None,
        })
        .collect();
    assert_eq!(appended.len(), 1, "{outcomes:?}");
    let (content, id) = appended[0];
    let stored = store.read_after(&dan, 0, 10_000).unwrap();
    assert_eq!(stored.len(), before + 1);
    let last = stored.last().unwrap();
    assert_eq!((last.id, &last.content), (id, content));
    let record = store.posted(&cora, &key("race")).unwrap().unwrap();
    assert_eq!(record, PostRecord::of(last));
    for (_, outcome) in &outcomes {
        if let PostOutcome::Recorded(found) = outcome {
            assert_eq!(*found, record);
        }
    }

    let posts = (0..16).map(|writer| {
        let store = Arc::clone(&store);
        tokio::spawn(async move {
            let message = message("cora", "dan", "distinct");
            let key = key(&format!("distinct-{writer}"));
            store.post(message, key, SystemTime::now()).await.unwrap()
        })
    });
    let mut ids = Vec::new();
    for post in posts {
        match post.await.unwrap() {
            PostOutcome::Appended(id) => ids.push(id),
            recorded => panic!("distinct keys: {recorded:?}"),
        }
    }
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 16);
    assert_eq!(store.count_after(&dan, 0).unwrap(), before + 17);
}

async fn logs_cursors_and_pruning(store: &dyn Store) {
    let at = |seconds| UNIX_EPOCH + Duration::from_secs(seconds);
    let (mike, jack, nina, zed) = (user("mike"), user("jack"), user("nina"), user("zed"));
    let first = append(store, "mike", "one", at(100)).await;
    let second = append(store, "mike", "two", at(200)).await;
    let other = append(store, "jack", "hi", at(200)).await;
    assert!(first.id < second.id && second.id < other.id);
    assert_eq!(
        store.read_after(&mike, 0, 10).unwrap(),
        [first.clone(), second.clone()]
    );
    assert_eq!(
        store.read_after(&mike, first.id, 10).unwrap(),
        std::slice::from_ref(&second)
    );
    assert_eq!(
        store.read_after(&mike, 0, 1).unwrap(),
        std::slice::from_ref(&first)
    );
    assert_eq!(store.read_after(&user("nobody"), 0, 10).unwrap(), []);
    assert_eq!(store.count_after(&mike, 0).unwrap(), 2);
    assert_eq!(store.count_after(&mike, first.id).unwrap(), 1);

    assert_eq!(store.cursor(&mike).unwrap(), 0);
    store.advance_cursor(&mike, first.id).unwrap();
    store.advance_cursor(&mike, 0).unwrap();
    assert_eq!(
        store.cursor(&mike).unwrap(),
        first.id,
        "cursors never move back"
    );
    blocking(|| store.flush()).unwrap();
    assert_eq!(store.cursor(&mike).unwrap(), first.id, "nor when written");

    // Expired messages in two logs, on either side of a log with none.
    let old = append(store, "zed", "old", at(120)).await;
    append(store, "zed", "new", at(200)).await;
    let mut pruned = blocking(|| store.prune(at(150), 100)).unwrap();
    pruned.sort();
    assert_eq!(pruned, [(mike.clone(), first.id), (zed.clone(), old.id)]);
    assert_eq!(
        blocking(|| store.prune(at(150), 100)).unwrap(),
        [],
        "nothing left to prune"
    );
    assert_eq!(store.read_after(&mike, 0, 10).unwrap(), [second]);
    let zed_log = store.read_after(&zed, 0, 10).unwrap();
    assert_eq!(zed_log.len(), 1);
    assert_eq!(zed_log[0].content, "new");
    assert_eq!(
        store.read_after(&jack, 0, 10).unwrap(),
        std::slice::from_ref(&other)
    );
    let next = append(store, "mike", "three", at(300)).await;
    assert!(next.id > other.id, "ids never repeat");

    let batch = vec![
        message("jack", "mike", "four"),
        message("jack", "nina", "for nina"),
        message("jack", "mike", "five"),
    ];
    let ids = store.append_all(batch, at(400)).await.unwrap();
    assert_eq!(ids, next.id + 1..next.id + 4, "one id each, in order");
    let contents: Vec<String> = store
        .read_after(&mike, next.id, 10)
        .unwrap()
        .into_iter()
        .map(|e| e.content)
        .collect();
    assert_eq!(contents, ["four", "five"]);
    let nina_log = store.read_after(&nina, 0, 10).unwrap();
    assert_eq!(nina_log.len(), 1);
    assert_eq!(
        (nina_log[0].id, nina_log[0].content.as_str()),
        (next.id + 2, "for nina")
    );
    // Everything left expires: the logs empty out.
    let mut left = 0;
    loop {
        let chunk = blocking(|| store.prune(at(1000), 2)).unwrap();
        assert!(chunk.len() <= 2);
        left += chunk.len();
        if chunk.len() < 2 {
            break;
        }
    }
    assert_eq!(left, 7, "mike 4, jack 1, zed 1, nina 1");
}

async fn pruning_goes_in_bounded_chunks(store: &dyn Store) {
    let at = |seconds| UNIX_EPOCH + Duration::from_secs(seconds);
    let (amy, bob) = (user("amy"), user("bob"));
    let mut expected = Vec::new();
    for n in 0..5 {
        expected.push((
            amy.clone(),
            append(store, "amy", &n.to_string(), at(10)).await.id,
        ));
        expected.push((
            bob.clone(),
            append(store, "bob", &n.to_string(), at(10)).await.id,
        ));
    }
    let kept = append(store, "amy", "kept", at(50)).await;
    let mut removed = Vec::new();
    loop {
        let chunk = blocking(|| store.prune(at(20), 3)).unwrap();
        assert!(chunk.len() <= 3, "a chunk holds at most max");
        removed.extend(chunk.iter().cloned());
        if chunk.len() < 3 {
            break;
        }
    }
    removed.sort();
    expected.sort();
    assert_eq!(removed, expected);
    assert_eq!(store.read_after(&amy, 0, 10).unwrap(), [kept]);
    assert_eq!(store.count_after(&bob, 0).unwrap(), 0);
}

/// A batch to one recipient (which a store may keep together) expires message by message, in
/// chunks of at most `max`, and reads in between see exactly what is left.
async fn a_batch_is_pruned_in_bounded_chunks_too(store: &dyn Store) {
    let at = |seconds| UNIX_EPOCH + Duration::from_secs(seconds);
    let cara = user("cara");
    let batch = (0..10)
        .map(|n| message("jack", "cara", &format!("old {n}")))
        .collect();
    let old = store.append_all(batch, at(10)).await.unwrap();
    let kept = append(store, "cara", "kept", at(50)).await;
    let mut removed = Vec::new();
    loop {
        let chunk = blocking(|| store.prune(at(20), 3)).unwrap();
        assert!(chunk.len() <= 3, "a chunk holds at most max");
        removed.extend(chunk.iter().map(|(_, id)| *id));
        assert!(chunk.iter().all(|(user, _)| *user == cara));
        let left: Vec<u64> = store
            .read_after(&cara, 0, 100)
            .unwrap()
            .iter()
            .map(|e| e.id)
            .collect();
        let expected: Vec<u64> = (old.start + removed.len() as u64..old.end)
            .chain([kept.id])
            .collect();
        assert_eq!(left, expected, "the oldest go first");
        assert_eq!(store.count_after(&cara, 0).unwrap(), expected.len());
        if chunk.len() < 3 {
            break;
        }
    }
    removed.sort_unstable();
    assert_eq!(removed, old.collect::<Vec<_>>());
    assert_eq!(
        store.read_after(&cara, 0, 10).unwrap(),
        std::slice::from_ref(&kept)
    );
    let last = blocking(|| store.prune(at(60), 100)).unwrap();
    assert!(last.contains(&(cara.clone(), kept.id)), "{last:?}");
    assert_eq!(store.count_after(&cara, 0).unwrap(), 0);
}

/// Appends from many tasks at once get distinct ids, each batch contiguous and in order.
pub(crate) async fn concurrent_appends(store: Arc<dyn Store>) {
    let mike = user("mike");
    let before = store.count_after(&mike, 0).unwrap();
    let appends = (0..16).map(|writer| {
        let store = Arc::clone(&store);
        tokio::spawn(async move {
            let batch = (0..10)
                .map(|n| message("jack", "mike", &format!("{writer}-{n}")))
                .collect();
            store.append_all(batch, SystemTime::now()).await.unwrap()
        })
    });
    let mut ranges = Vec::new();
    for append in appends {
        ranges.push(append.await.unwrap());
    }
    let stored = store.read_after(&mike, 0, 10_000).unwrap();
    assert_eq!(stored.len(), before + 160);
    for range in ranges {
        assert_eq!(range.end - range.start, 10);
        let batch: Vec<&Envelope> = stored.iter().filter(|e| range.contains(&e.id)).collect();
        let writer = batch[0].content.split_once('-').unwrap().0;
        let contents: Vec<String> = batch.iter().map(|e| e.content.clone()).collect();
        let expected: Vec<String> = (0..10).map(|n| format!("{writer}-{n}")).collect();
        assert_eq!(contents, expected, "a batch is contiguous and in order");
    }
}
