//! Unit tests of the mailboxes over the in-memory store (and the redb one where the writer
//! thread's timing matters).

use std::sync::mpsc;

use super::*;
use crate::store::{MemoryStore, Pruned, RedbStore};

fn user(name: &str) -> UserName {
    UserName::parse(name).unwrap()
}

fn message(from: &str, to: &str, content: &str) -> NewMessage {
    NewMessage {
        from: user(from),
        to: user(to),
        content: content.into(),
    }
}

fn mailboxes(limit: usize) -> (Arc<MemoryStore>, Arc<Mailboxes>) {
    let store = Arc::new(MemoryStore::default());
    (Arc::clone(&store), Arc::new(Mailboxes::new(store, limit)))
}

async fn send(boxes: &Arc<Mailboxes>, to: &str, content: &str) -> u64 {
    boxes.enqueue(message("jack", to, content)).await.unwrap()
}

fn open(boxes: &Arc<Mailboxes>, name: &str) -> Mailbox {
    boxes.open(&user(name), None).unwrap()
}

/// Takes and confirms everything there is now; answers the contents.
fn drain(mailbox: &mut Mailbox) -> Vec<String> {
    let mut seen = Vec::new();
    while let Some(taken) = mailbox.try_take().unwrap() {
        seen.push(taken.envelope.content.clone());
        mailbox.delivered(taken.receipt).unwrap();
    }
    seen
}

fn waiting(boxes: &Mailboxes, name: &str) -> usize {
    boxes.waiting(&user(name)).unwrap()
}

fn is_full(outcome: Result<u64, MailboxError>, name: &str, limit: usize) -> bool {
    matches!(outcome, Err(MailboxError::Full { user, limit: l }) if user.as_str() == name && l == limit)
}

#[tokio::test]
async fn messages_come_out_in_order_once() {
    let (_, boxes) = mailboxes(100);
    for text in ["one", "two", "three"] {
        send(&boxes, "mike", text).await;
    }
    assert_eq!(drain(&mut open(&boxes, "mike")), ["one", "two", "three"]);
    assert_eq!(waiting(&boxes, "mike"), 0);
}

#[tokio::test(start_paused = true)]
async fn take_waits_for_an_arrival() {
    let (_, boxes) = mailboxes(100);
    let mut mailbox = open(&boxes, "mike");
    let waiter = tokio::spawn(async move { mailbox.take().await.unwrap().envelope.content });
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(!waiter.is_finished());
    send(&boxes, "mike", "late").await;
    assert_eq!(waiter.await.unwrap(), "late");
}

#[tokio::test]
async fn an_undelivered_message_comes_first_again() {
    let (_, boxes) = mailboxes(100);
    send(&boxes, "mike", "first").await;
    send(&boxes, "mike", "second").await;
    let mut mailbox = open(&boxes, "mike");
    let first = mailbox.try_take().unwrap().unwrap();
    mailbox.undelivered(first.receipt);
    assert_eq!(drain(&mut mailbox), ["first", "second"]);
}

#[tokio::test]
async fn a_message_that_expired_while_out_is_not_served_again() {
    let (store, boxes) = mailboxes(100);
    send(&boxes, "mike", "soon gone").await;
    // Read ahead with the first, and expired before anyone claims it.
    let id = send(&boxes, "mike", "also gone").await;
    let mut mailbox = open(&boxes, "mike");
    let taken = mailbox.try_take().unwrap().unwrap();
    std::thread::sleep(Duration::from_millis(5));
    assert_eq!(boxes.prune(Duration::from_millis(1)).unwrap(), 2);
    mailbox.undelivered(taken.receipt);
    assert!(mailbox.try_take().unwrap().is_none());
    boxes.flush().unwrap();
    assert_eq!(
        store.cursor(&user("mike")).unwrap(),
        id - 1,
        "the first is no longer outstanding; the second was never claimed"
    );
}

#[tokio::test]
async fn the_cursor_never_passes_an_unconfirmed_claim() {
    let (store, boxes) = mailboxes(100);
    let mut ids = Vec::new();
    for text in ["a", "b", "c"] {
        ids.push(send(&boxes, "mike", text).await);
    }
    let mut mailbox = open(&boxes, "mike");
    let a = mailbox.try_take().unwrap().unwrap();
    let b = mailbox.try_take().unwrap().unwrap();
    mailbox.delivered(b.receipt).unwrap();
    boxes.flush().unwrap();
    let mike = user("mike");
    assert_eq!(
        store.cursor(&mike).unwrap(),
        ids[0] - 1,
        "a is still outstanding"
    );
    mailbox.delivered(a.receipt).unwrap();
    boxes.flush().unwrap();
    assert_eq!(store.cursor(&mike).unwrap(), ids[1]);
    // A restart (new mailboxes over the same store) starts after the cursor.
    let restarted = Arc::new(Mailboxes::new(store, 100));
    let mut mailbox = open(&restarted, "mike");
    assert_eq!(mailbox.try_take().unwrap().unwrap().envelope.content, "c");
}

#[tokio::test]
async fn the_stored_cursor_moves_every_stride_and_when_the_state_goes() {
    let (store, boxes) = mailboxes(1000);
    let total = CURSOR_STRIDE + 10;
    for n in 0..total {
        send(&boxes, "mike", &n.to_string()).await;
    }
    let mut mailbox = open(&boxes, "mike");
    assert_eq!(drain(&mut mailbox).len() as u64, total);
    let mike = user("mike");
    assert_eq!(
        store.cursor(&mike).unwrap(),
        CURSOR_STRIDE,
        "written once a stride was delivered"
    );
    boxes.flush().unwrap();
    assert_eq!(store.cursor(&mike).unwrap(), total, "and the rest at flush");
    // Without a flush, a state that goes away leaves its cursor behind.
    send(&boxes, "mike", "one more").await;
    assert_eq!(drain(&mut mailbox), ["one more"]);
    drop(mailbox);
    assert_eq!(boxes.users(), 0);
    assert_eq!(store.cursor(&mike).unwrap(), total + 1);
}

#[tokio::test]
async fn a_replay_repeats_what_was_claimed_after_the_id_then_claims_the_rest() {
    let (_, boxes) = mailboxes(100);
    let mut ids = Vec::new();
    for n in 1..=5 {
        ids.push(send(&boxes, "mike", &format!("m{n}")).await);
    }
    let mut first = open(&boxes, "mike");
    for _ in 0..3 {
        let taken = first.try_take().unwrap().unwrap();
        first.delivered(taken.receipt).unwrap();
    }
    drop(first);
    // The client processed m1 only, then crashed; it resumes after m1.
    let mut resumed = boxes.open(&user("mike"), Some(ids[0])).unwrap();
    assert_eq!(drain(&mut resumed), ["m2", "m3", "m4", "m5"]);
    assert!(resumed.replay.is_none());
}

/// Found by grpcio: a receiver reads 10 of many and cancels while the server has one more out
/// for it (handed back when the stream could not take it); resuming after the 10th must carry
/// every later message exactly once, in order.
#[tokio::test]
async fn a_resume_after_a_cancel_carries_each_later_message_once() {
    let (_, boxes) = mailboxes(1000);
    let mut ids = Vec::new();
    for n in 0..100 {
        ids.push(send(&boxes, "mike", &n.to_string()).await);
    }
    let mut first = open(&boxes, "mike");
    for _ in 0..15 {
        let taken = first.try_take().unwrap().unwrap();
        first.delivered(taken.receipt).unwrap();
    }
    let out = first.try_take().unwrap().unwrap();
    first.undelivered(out.receipt);
    drop(first);
    let mut resumed = boxes.open(&user("mike"), Some(ids[9])).unwrap();
    let seen = drain(&mut resumed);
    let expected: Vec<String> = (10..100).map(|n| n.to_string()).collect();
    assert_eq!(seen, expected);
}

/// Found by grpcio too: the resume can arrive before the cancelled stream notices its client is
/// gone, so the message it had out is handed back after the new stream replayed it.
#[tokio::test]
async fn a_claim_handed_back_after_a_resume_replayed_it_does_not_come_again() {
    let (_, boxes) = mailboxes(1000);
    let mut ids = Vec::new();
    for n in 0..40 {
        ids.push(send(&boxes, "mike", &n.to_string()).await);
    }
    let mut first = open(&boxes, "mike");
    for _ in 0..15 {
        let taken = first.try_take().unwrap().unwrap();
        first.delivered(taken.receipt).unwrap();
    }
    let out = first.try_take().unwrap().unwrap();
    assert_eq!(out.envelope.content, "15");
    // The client read up to "9" and resumed; the first stream still holds "15".
    let mut resumed = boxes.open(&user("mike"), Some(ids[9])).unwrap();
    let mut seen = Vec::new();
    for _ in 0..6 {
        let taken = resumed.try_take().unwrap().unwrap();
        seen.push(taken.envelope.content.clone());
        resumed.delivered(taken.receipt).unwrap();
    }
    first.undelivered(out.receipt);
    drop(first);
    seen.extend(drain(&mut resumed));
    let expected: Vec<String> = (10..40).map(|n| n.to_string()).collect();
    assert_eq!(seen, expected);
}

#[tokio::test]
async fn claims_handed_back_up_to_the_resume_point_count_as_delivered() {
    let (_, boxes) = mailboxes(100);
    let mut ids = Vec::new();
    for n in 0..4 {
        ids.push(send(&boxes, "mike", &n.to_string()).await);
    }
    let mut first = open(&boxes, "mike");
    let zero = first.try_take().unwrap().unwrap();
    let one = first.try_take().unwrap().unwrap();
    first.undelivered(zero.receipt);
    first.undelivered(one.receipt);
    drop(first);
    // The client says it has everything up to "1".
    let mut resumed = boxes.open(&user("mike"), Some(ids[1])).unwrap();
    assert_eq!(drain(&mut resumed), ["2", "3"]);
}

/// Found by the browser tests: after a crash the stored cursor lags behind what was delivered (it
/// is written every [`CURSOR_STRIDE`] deliveries); a client resuming after the last message it
/// processed must get exactly the messages after it, and later receivers must not get those up
/// to it again.
#[tokio::test]
async fn a_resume_past_a_lagging_cursor_delivers_nothing_up_to_the_id_again() {
    let (store, boxes) = mailboxes(10);
    let mut ids = Vec::new();
    for n in 1..=10 {
        ids.push(send(&boxes, "mike", &format!("m{n}")).await);
    }
    let mut first = open(&boxes, "mike");
    for _ in 0..5 {
        let taken = first.try_take().unwrap().unwrap();
        first.delivered(taken.receipt).unwrap();
    }
    // The crash: that state never reaches the store, whose cursor stands before m1.
    std::mem::forget(first);
    let mike = user("mike");
    assert_eq!(store.cursor(&mike).unwrap(), 0);
    let store: Arc<dyn Store> = store;
    let restarted = Arc::new(Mailboxes::new(Arc::clone(&store), 10));
    assert_eq!(waiting(&restarted, "mike"), 10, "as the store says");

    // The client processed m5.
    let mut resumed = restarted.open(&mike, Some(ids[4])).unwrap();
    assert_eq!(waiting(&restarted, "mike"), 5, "m1 to m5 are delivered");
    let next = resumed.try_take().unwrap().unwrap();
    assert_eq!(next.envelope.id, ids[5]);
    assert_eq!(next.envelope.content, "m6");
    resumed.delivered(next.receipt).unwrap();
    // A receiver without after_id competes for the rest, m1 to m5 are not among it.
    let mut other = open(&restarted, "mike");
    let mut rest = drain(&mut other);
    rest.extend(drain(&mut resumed));
    rest.sort();
    assert_eq!(rest, ["m10", "m7", "m8", "m9"]);
    // The queue's room is what is left of the cap.
    for n in 11..=20 {
        send(&restarted, "mike", &format!("m{n}")).await;
    }
    assert!(is_full(
        restarted.enqueue(message("jack", "mike", "m21")).await,
        "mike",
        10
    ));
    drop((resumed, other));
    restarted.flush().unwrap();
    assert_eq!(store.cursor(&mike).unwrap(), ids[9]);
}

/// An `after_id` past every message (a mistake, or another server's id) passes what exists, but
/// later messages, whose ids may well be below it, still come, and come again if handed back.
#[tokio::test]
async fn a_resume_after_an_id_past_the_end_swallows_no_later_message() {
    let (store, boxes) = mailboxes(100);
    for n in 1..=3 {
        send(&boxes, "mike", &format!("m{n}")).await;
    }
    let mut resumed = boxes.open(&user("mike"), Some(1_000_000)).unwrap();
    assert!(resumed.try_take().unwrap().is_none());
    assert_eq!(waiting(&boxes, "mike"), 0);
    let later = send(&boxes, "mike", "later").await;
    assert!(later < 1_000_000);
    let taken = resumed.try_take().unwrap().unwrap();
    assert_eq!(taken.envelope.content, "later");
    resumed.undelivered(taken.receipt);
    drop(resumed);
    let mut fresh = open(&boxes, "mike");
    assert_eq!(drain(&mut fresh), ["later"]);
    send(&boxes, "mike", "later still").await;
    assert_eq!(drain(&mut fresh), ["later still"]);
    drop(fresh);
    boxes.flush().unwrap();
    assert_eq!(store.cursor(&user("mike")).unwrap(), later + 1);
}

/// Claims out with another stream keep the cursor before them when a resume passes the log;
/// handed back at or below the resume point, they count as delivered.
#[tokio::test]
async fn a_resume_past_the_claims_keeps_the_claims_out_and_the_read_ahead_right() {
    let (store, boxes) = mailboxes(100);
    let mut ids = Vec::new();
    for n in 1..=10 {
        ids.push(send(&boxes, "mike", &format!("m{n}")).await);
    }
    // m1 and m2 out with a stream that read m3 to m10 ahead.
    let mut first = open(&boxes, "mike");
    let one = first.try_take().unwrap().unwrap();
    let two = first.try_take().unwrap().unwrap();
    assert_eq!(two.envelope.content, "m2");
    let mike = user("mike");
    let mut resumed = boxes.open(&mike, Some(ids[5])).unwrap();
    boxes.flush().unwrap();
    assert_eq!(store.cursor(&mike).unwrap(), 0, "m1 is still out");
    first.undelivered(one.receipt);
    first.delivered(two.receipt).unwrap();
    assert_eq!(drain(&mut resumed), ["m7", "m8", "m9", "m10"]);
    assert!(first.try_take().unwrap().is_none());
    boxes.flush().unwrap();
    assert_eq!(store.cursor(&mike).unwrap(), ids[9]);
}

#[tokio::test]
async fn a_full_queue_refuses_and_keeps_what_it_has() {
    let (_, boxes) = mailboxes(2);
    send(&boxes, "mike", "one").await;
    send(&boxes, "mike", "two").await;
    let refused = boxes.enqueue(message("jack", "mike", "three")).await;
    let error = refused.as_ref().unwrap_err().to_string();
    assert!(is_full(refused, "mike", 2));
    assert_eq!(error, "the queue of mike is full (2 messages)");
    assert_eq!(waiting(&boxes, "mike"), 2);
    send(&boxes, "nina", "others are not affected").await;
    let mut mailbox = open(&boxes, "mike");
    let taken = mailbox.try_take().unwrap().unwrap();
    mailbox.delivered(taken.receipt).unwrap();
    send(&boxes, "mike", "three").await;
}

/// A queue that filled up and then expired takes messages again without a restart: pruning
/// lowers the count, while appends under way are counted apart.
#[tokio::test]
async fn a_full_queue_that_expired_takes_messages_again() {
    let (_, boxes) = mailboxes(3);
    for n in 0..3 {
        send(&boxes, "mike", &n.to_string()).await;
    }
    assert!(is_full(
        boxes.enqueue(message("jack", "mike", "x")).await,
        "mike",
        3
    ));
    std::thread::sleep(Duration::from_millis(5));
    assert_eq!(boxes.prune(Duration::from_millis(1)).unwrap(), 3);
    assert_eq!(waiting(&boxes, "mike"), 0);
    for n in 0..3 {
        send(&boxes, "mike", &format!("again {n}")).await;
    }
    assert!(is_full(
        boxes.enqueue(message("jack", "mike", "x")).await,
        "mike",
        3
    ));
    assert_eq!(
        drain(&mut open(&boxes, "mike")),
        ["again 0", "again 1", "again 2"]
    );
}

#[tokio::test]
async fn a_batch_stops_at_the_first_full_queue_and_keeps_what_came_before() {
    let (_, boxes) = mailboxes(2);
    let batch = vec![
        message("jack", "mike", "1"),
        message("jack", "nina", "2"),
        message("jack", "mike", "3"),
        message("jack", "mike", "4"),
        message("jack", "nina", "5"),
    ];
    let enqueued = boxes.enqueue_all(batch).await.unwrap();
    assert_eq!(enqueued.ids.end - enqueued.ids.start, 3, "1, 2 and 3");
    assert!(matches!(
        enqueued.refused,
        Some(MailboxError::Full { ref user, limit: 2 }) if user.as_str() == "mike"
    ));
    assert_eq!(waiting(&boxes, "mike"), 2);
    assert_eq!(waiting(&boxes, "nina"), 1);
}

#[tokio::test]
async fn concurrent_batches_cannot_overfill_a_queue_together() {
    // The durable store answers appends from its writer thread, so both batches are checked
    // against the cap while the other is still being written.
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(RedbStore::open(dir.path()).unwrap());
    let boxes = Arc::new(Mailboxes::new(store, 3));
    let batch = |tag: &str| -> Vec<NewMessage> {
        (0..2)
            .map(|n| message("jack", "mike", &format!("{tag}{n}")))
            .collect()
    };
    let first = tokio::spawn({
        let boxes = Arc::clone(&boxes);
        let batch = batch("a");
        async move { boxes.enqueue_all(batch).await.unwrap() }
    });
    let second = tokio::spawn({
        let boxes = Arc::clone(&boxes);
        let batch = batch("b");
        async move { boxes.enqueue_all(batch).await.unwrap() }
    });
    let (first, second) = (first.await.unwrap(), second.await.unwrap());
    let queued = |enqueued: &Enqueued| enqueued.ids.end - enqueued.ids.start;
    assert_eq!(queued(&first) + queued(&second), 3);
    assert_eq!(
        [first.refused.is_some(), second.refused.is_some()],
        [false, true]
    );
    assert_eq!(waiting(&boxes, "mike"), 3);
}

#[tokio::test]
async fn an_append_whose_caller_went_away_still_wakes_the_consumers() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(RedbStore::open(dir.path()).unwrap());
    let boxes = Arc::new(Mailboxes::new(store, 10));
    let mut mailbox = open(&boxes, "mike");
    let waiter = tokio::spawn(async move { mailbox.take().await.unwrap().envelope.content });
    tokio::task::yield_now().await;
    // Dropped after its first poll, while the writer thread commits.
    tokio::select! {
        biased;
        _ = boxes.enqueue(message("jack", "mike", "sent anyway")) => panic!("a durable append waits for the disk"),
        () = std::future::ready(()) => {}
    }
    let delivered = tokio::time::timeout(Duration::from_secs(5), waiter).await;
    assert_eq!(delivered.unwrap().unwrap(), "sent anyway");
    assert_eq!(waiting(&boxes, "mike"), 0);
}

#[tokio::test(start_paused = true)]
async fn a_cancelled_take_loses_nothing() {
    let (_, boxes) = mailboxes(100);
    let mut mailbox = open(&boxes, "mike");
    let timed_out = tokio::time::timeout(Duration::from_secs(1), mailbox.take()).await;
    assert!(timed_out.is_err());
    send(&boxes, "mike", "kept").await;
    assert_eq!(waiting(&boxes, "mike"), 1);
}

#[tokio::test]
async fn idle_users_leave_no_state_behind() {
    let (_, boxes) = mailboxes(100);
    for n in 0..1000 {
        let mut mailbox = open(&boxes, &format!("user{n}"));
        assert!(mailbox.try_take().unwrap().is_none());
    }
    assert_eq!(boxes.users(), 0, "no mailbox open, nothing waiting");
    // A user with messages waiting keeps its count until they are delivered.
    send(&boxes, "mike", "waits").await;
    assert_eq!(boxes.users(), 1);
    assert_eq!(drain(&mut open(&boxes, "mike")), ["waits"]);
    assert_eq!(boxes.users(), 0);
    // Claims out keep the state even without a mailbox.
    send(&boxes, "mike", "out").await;
    let mut mailbox = open(&boxes, "mike");
    let taken = mailbox.try_take().unwrap().unwrap();
    mailbox.undelivered(taken.receipt);
    drop(mailbox);
    assert_eq!(boxes.users(), 1);
    assert_eq!(drain(&mut open(&boxes, "mike")), ["out"]);
    assert_eq!(boxes.users(), 0);
}

#[tokio::test]
async fn past_the_bound_idle_users_with_messages_waiting_are_dropped_too() {
    let (_, boxes) = mailboxes(100);
    for n in 0..MAX_IDLE_USERS + 100 {
        send(&boxes, &format!("u{n}"), "hi").await;
    }
    assert_eq!(boxes.users(), MAX_IDLE_USERS);
    // Their counts come back from the store.
    assert_eq!(waiting(&boxes, &format!("u{}", MAX_IDLE_USERS + 50)), 1);
    assert_eq!(drain(&mut open(&boxes, "u7")), ["hi"]);
}

/// A store whose reads for one user block until the test lets them go, and whose appends, with
/// `acks`, are in the log at once but acknowledged only when the test adds a permit (as a
/// durable store's commit may be seen before its answer arrives).
struct GatedStore {
    inner: MemoryStore,
    slow: UserName,
    entered: Mutex<mpsc::Sender<()>>,
    gate: Mutex<mpsc::Receiver<()>>,
    acks: Option<Arc<tokio::sync::Semaphore>>,
}

impl Store for GatedStore {
    fn append_all(
        &self,
        messages: Vec<NewMessage>,
        sent_at: SystemTime,
    ) -> crate::store::Appending {
        let appended = self.inner.append_all(messages, sent_at);
        match &self.acks {
            None => appended,
            Some(acks) => {
                let acks = Arc::clone(acks);
                Box::pin(async move {
                    acks.acquire().await.unwrap().forget();
                    appended.await
                })
            }
        }
    }
    fn read_after(
        &self,
        user: &UserName,
        after: u64,
        limit: usize,
    ) -> Result<Vec<Envelope>, StoreError> {
        if *user == self.slow {
            lock(&self.entered).send(()).unwrap();
            lock(&self.gate).recv().unwrap();
        }
        self.inner.read_after(user, after, limit)
    }
    fn count_after(&self, user: &UserName, after: u64) -> Result<usize, StoreError> {
        self.inner.count_after(user, after)
    }
    fn cursor(&self, user: &UserName) -> Result<u64, StoreError> {
        self.inner.cursor(user)
    }
    fn advance_cursor(&self, user: &UserName, id: u64) -> Result<(), StoreError> {
        self.inner.advance_cursor(user, id)
    }
    fn prune(&self, cutoff: SystemTime, max: usize) -> Result<Vec<Pruned>, StoreError> {
        self.inner.prune(cutoff, max)
    }
    fn post(
        &self,
        message: NewMessage,
        key: IdempotencyKey,
        sent_at: SystemTime,
    ) -> crate::store::Posting {
        self.inner.post(message, key, sent_at)
    }
    fn posted(
        &self,
        from: &UserName,
        key: &IdempotencyKey,
    ) -> Result<Option<PostRecord>, StoreError> {
        self.inner.posted(from, key)
    }
    fn prune_posts(&self, cutoff: SystemTime, max: usize) -> Result<usize, StoreError> {
        self.inner.prune_posts(cutoff, max)
    }
    fn flush(&self) -> Result<(), StoreError> {
        self.inner.flush()
    }
}

/// One user's store read in progress holds up nobody else: no lock another user needs is held
/// around store I/O.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_store_read_for_one_user_does_not_stall_another() {
    let (entered, on_enter) = mpsc::channel();
    let (open_gate, gate) = mpsc::channel();
    let store = Arc::new(GatedStore {
        inner: MemoryStore::default(),
        slow: user("slow"),
        entered: Mutex::new(entered),
        gate: Mutex::new(gate),
        acks: None,
    });
    let boxes = Arc::new(Mailboxes::new(store, 100));
    send(&boxes, "slow", "stuck").await;
    send(&boxes, "fast", "through").await;
    let mut slow = open(&boxes, "slow");
    let stuck = std::thread::spawn(move || slow.try_take().unwrap().unwrap().envelope.content);
    on_enter.recv_timeout(Duration::from_secs(5)).unwrap();
    // While the slow read is held: another user takes, another user is sent to.
    let (done, finished) = mpsc::channel();
    std::thread::spawn({
        let boxes = Arc::clone(&boxes);
        move || done.send(drain(&mut open(&boxes, "fast"))).unwrap()
    });
    let fast = finished.recv_timeout(Duration::from_secs(5));
    open_gate.send(()).unwrap();
    assert_eq!(
        fast.expect("the other user's take waited for the slow read"),
        ["through"]
    );
    assert_eq!(stuck.join().unwrap(), "stuck");
}

fn key(key: &str) -> IdempotencyKey {
    IdempotencyKey::parse(key).unwrap()
}

/// Posts `content` from jack to `to` under `with`.
async fn post(
    boxes: &Arc<Mailboxes>,
    to: &str,
    content: &str,
    with: &str,
) -> Result<Posted, MailboxError> {
    boxes.post(message("jack", to, content), key(with)).await
}

/// Mailboxes over each store: in memory, and redb in a fresh directory (kept while in use).
fn each_store(limit: usize) -> Vec<(&'static str, Arc<Mailboxes>, Option<tempfile::TempDir>)> {
    let dir = tempfile::tempdir().unwrap();
    let redb = Arc::new(RedbStore::open(dir.path()).unwrap());
    vec![
        ("memory", mailboxes(limit).1, None),
        ("redb", Arc::new(Mailboxes::new(redb, limit)), Some(dir)),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_post_reaches_a_waiting_receiver_and_its_retry_queues_and_wakes_nothing() {
    for (store, boxes, _dir) in each_store(100) {
        let mut mailbox = open(&boxes, "mike");
        let waiter = tokio::spawn(async move {
            let taken = mailbox.take().await.unwrap();
            mailbox.delivered(taken.receipt).unwrap();
            (taken.envelope, mailbox)
        });
        let posted = post(&boxes, "mike", "hi", "k1").await.unwrap();
        let Posted::Queued(queued) = posted else {
            panic!("{store}: the first post queues: {posted:?}");
        };
        assert_eq!(
            (
                queued.from.as_str(),
                queued.to.as_str(),
                queued.content.as_str()
            ),
            ("jack", "mike", "hi"),
            "{store}"
        );
        let (delivered, mut mailbox) = tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(delivered, queued, "{store}: delivered as answered");

        let retry = post(&boxes, "mike", "hi", "k1").await.unwrap();
        assert_eq!(retry, Posted::Replayed(queued.clone()), "{store}");
        assert_eq!(
            waiting(&boxes, "mike"),
            0,
            "{store}: the retry queued nothing"
        );
        let woken = tokio::time::timeout(Duration::from_millis(100), mailbox.take()).await;
        assert!(woken.is_err(), "{store}: the retry delivered nothing");
        // A new key is a new message.
        let next = post(&boxes, "mike", "hi", "k2").await.unwrap();
        assert!(
            matches!(&next, Posted::Queued(envelope) if envelope.id > queued.id),
            "{store}: {next:?}"
        );
        assert_eq!(drain(&mut mailbox), ["hi"], "{store}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_used_for_another_message_is_refused_and_queues_nothing() {
    for (store, boxes, _dir) in each_store(100) {
        let first = post(&boxes, "mike", "hi", "k")
            .await
            .unwrap()
            .into_envelope();
        for (to, content) in [("mike", "bye"), ("nina", "hi"), ("mike", "hi ")] {
            let refused = post(&boxes, to, content, "k").await.unwrap_err();
            assert!(
                matches!(
                    &refused,
                    MailboxError::KeyReused { from, key, id }
                        if from.as_str() == "jack" && key.as_str() == "k" && *id == first.id
                ),
                "{store}: {refused:?}"
            );
            assert_eq!(
                refused.to_string(),
                format!(
                    "idempotency key \"k\" was used by jack for a different message (id {}); \
                     use a new key for a new message",
                    first.id
                ),
                "{store}"
            );
        }
        assert_eq!(waiting(&boxes, "mike"), 1, "{store}");
        assert_eq!(waiting(&boxes, "nina"), 0, "{store}");
        // Another sender's key of the same name is its own.
        let nina = boxes
            .post(message("nina", "mike", "bye"), key("k"))
            .await
            .unwrap();
        assert!(matches!(nina, Posted::Queued(_)), "{store}: {nina:?}");
        assert_eq!(drain(&mut open(&boxes, "mike")), ["hi", "bye"], "{store}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_is_answered_even_when_the_queue_filled_up_and_a_refused_post_takes_no_key() {
    for (store, boxes, _dir) in each_store(2) {
        let first = post(&boxes, "mike", "one", "k1")
            .await
            .unwrap()
            .into_envelope();
        send(&boxes, "mike", "two").await;
        let refused = post(&boxes, "mike", "three", "k2").await;
        assert!(
            matches!(&refused, Err(MailboxError::Full { user, limit: 2 }) if user.as_str() == "mike"),
            "{store}: {refused:?}"
        );
        assert_eq!(
            post(&boxes, "mike", "one", "k1").await.unwrap(),
            Posted::Replayed(first),
            "{store}"
        );
        assert_eq!(drain(&mut open(&boxes, "mike")), ["one", "two"], "{store}");
        // The refused post left no record: its retry queues it.
        let retried = post(&boxes, "mike", "three", "k2").await.unwrap();
        assert!(matches!(retried, Posted::Queued(_)), "{store}: {retried:?}");
        assert_eq!(drain(&mut open(&boxes, "mike")), ["three"], "{store}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_posts_of_one_key_queue_one_message() {
    for (store, boxes, _dir) in each_store(100) {
        let posts: Vec<_> = (0..16)
            .map(|_| {
                let boxes = Arc::clone(&boxes);
                tokio::spawn(async move { post(&boxes, "mike", "once", "race").await.unwrap() })
            })
            .collect();
        let mut answers = Vec::new();
        for posting in posts {
            answers.push(posting.await.unwrap());
        }
        let queued: Vec<&Envelope> = answers
            .iter()
            .filter_map(|posted| match posted {
                Posted::Queued(envelope) => Some(envelope),
                Posted::Replayed(_) => None,
            })
            .collect();
        assert_eq!(queued.len(), 1, "{store}: {answers:?}");
        assert!(
            answers.iter().all(|posted| posted.envelope() == queued[0]),
            "{store}: every answer is the one message"
        );
        assert_eq!(waiting(&boxes, "mike"), 1, "{store}");
        assert_eq!(drain(&mut open(&boxes, "mike")), ["once"], "{store}");
    }
}

#[tokio::test]
async fn a_post_whose_caller_went_away_is_still_queued_and_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(RedbStore::open(dir.path()).unwrap());
    let boxes = Arc::new(Mailboxes::new(store, 10));
    let mut mailbox = open(&boxes, "mike");
    let waiter = tokio::spawn(async move { mailbox.take().await.unwrap().envelope });
    tokio::task::yield_now().await;
    // Dropped after its first poll, while the writer thread commits.
    tokio::select! {
        biased;
        _ = post(&boxes, "mike", "sent anyway", "k") => panic!("a durable post waits for the disk"),
        () = std::future::ready(()) => {}
    }
    let delivered = tokio::time::timeout(Duration::from_secs(5), waiter)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(delivered.content, "sent anyway");
    assert_eq!(
        post(&boxes, "mike", "sent anyway", "k").await.unwrap(),
        Posted::Replayed(delivered)
    );
    assert_eq!(waiting(&boxes, "mike"), 0);
}

#[tokio::test]
async fn pruning_forgets_a_key_with_its_message() {
    let (_, boxes) = mailboxes(10);
    let first = post(&boxes, "mike", "hi", "k")
        .await
        .unwrap()
        .into_envelope();
    // Within the retention period, the key is kept.
    assert_eq!(boxes.prune(Duration::from_secs(3600)).unwrap(), 0);
    assert_eq!(
        post(&boxes, "mike", "hi", "k").await.unwrap(),
        Posted::Replayed(first.clone())
    );
    std::thread::sleep(Duration::from_millis(5));
    assert_eq!(boxes.prune(Duration::from_millis(1)).unwrap(), 1);
    let again = post(&boxes, "mike", "hi", "k").await.unwrap();
    assert!(
        matches!(&again, Posted::Queued(envelope) if envelope.id > first.id),
        "an expired key posts anew: {again:?}"
    );
    assert_eq!(drain(&mut open(&boxes, "mike")), ["hi"]);
}

/// A message taken from the log after its append reached the store but before the append was
/// acknowledged is counted once: it is not left counted as waiting when the append settles.
#[tokio::test]
async fn a_message_taken_before_its_append_settles_is_not_counted_as_waiting() {
    let (entered, _) = mpsc::channel();
    let (_, gate) = mpsc::channel();
    let acks = Arc::new(tokio::sync::Semaphore::new(0));
    let store = Arc::new(GatedStore {
        inner: MemoryStore::default(),
        slow: user("nobody"),
        entered: Mutex::new(entered),
        gate: Mutex::new(gate),
        acks: Some(Arc::clone(&acks)),
    });
    let boxes = Arc::new(Mailboxes::new(Arc::clone(&store) as Arc<dyn Store>, 100));
    let mut mailbox = open(&boxes, "mike");
    let sending = tokio::spawn({
        let boxes = Arc::clone(&boxes);
        async move { send(&boxes, "mike", "early").await }
    });
    while store.inner.count_after(&user("mike"), 0).unwrap() == 0 {
        tokio::task::yield_now().await;
    }
    let taken = mailbox
        .try_take()
        .unwrap()
        .expect("the message is in the log");
    mailbox.delivered(taken.receipt).unwrap();
    acks.add_permits(1);
    assert_eq!(sending.await.unwrap(), taken.envelope.id);
    assert_eq!(waiting(&boxes, "mike"), 0);
    assert!(mailbox.try_take().unwrap().is_none());
}
