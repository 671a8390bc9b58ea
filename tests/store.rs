//! The store's behaviour, the same on each backend: every test runs on a SQLite file and on a fresh
//! PostgreSQL database. What only PostgreSQL does (serialised commits, the NOTIFY feed) follows.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use common::postgres::Database;
use switchboard::cid::Cid;
use switchboard::store::{
    Change, Changed, EventStatus, InvocationRecord, Op, Origin, PostgresStore, RecordFilter, ServerRecord, SqliteStore,
    StatusFilter, Store, Usage, Via,
};

/// Runs each behaviour on both stores.
macro_rules! on_every_store {
    ($($behaviour:ident),* $(,)?) => {
        mod sqlite {
            $(#[test]
            fn $behaviour() {
                let dir = tempfile::tempdir().unwrap();
                super::$behaviour(&super::SqliteStore::open(&dir.path().join("store.sqlite")).unwrap());
            })*
        }
        mod postgres {
            $(#[test]
            fn $behaviour() {
                let Some(database) = super::Database::fresh() else { return };
                super::$behaviour(&super::PostgresStore::open(&database.url).unwrap());
            })*
        }
    };
}

on_every_store!(
    blobs_are_kept_by_cid,
    binding_records_history_and_keeps_the_enabled_flag,
    a_failing_change_leaves_nothing_behind,
    removing_a_server_keeps_its_history,
    variables_are_replaced_as_a_whole,
    secrets_are_kept_sealed_and_listed_by_name,
    oauth_states_are_taken_once_by_their_server_and_only_before_they_expire,
    a_body_seen_within_the_window_refuses_the_event_whatever_its_id,
    events_are_unique_per_server_and_delivery_id,
    waiting_events_are_claimed_once_per_attempt_and_leave_the_queue_when_settled,
    an_event_its_receiver_claimed_is_due_only_once_the_claim_lapses,
    events_list_newest_first_and_filter_by_status,
    facts_are_upserted,
    records_come_back_newest_first_filtered_and_summed,
    pruning_keeps_the_newest_records_and_drops_the_old,
);

fn blobs_are_kept_by_cid(store: &dyn Store) {
    let mut change = Change::default();
    let cid = change.blob(b"hello".to_vec());
    store.commit(&change).unwrap();
    assert_eq!(cid, Cid::of(b"hello"));
    assert_eq!(store.blob(&cid).unwrap().as_deref(), Some(&b"hello"[..]));
    assert_eq!(store.blob(&Cid::of(b"absent")).unwrap(), None);
    assert_eq!(store.blobs(&[Cid::of(b"absent"), cid]).unwrap(), vec![(cid, b"hello".to_vec())]);
}

fn binding_records_history_and_keeps_the_enabled_flag(store: &dyn Store) {
    let mut change = Change::default();
    let v1 = change.blob(b"v1".to_vec());
    change.op(Op::Bind { name: "demo".into(), cid: v1, origin: Origin::Boot, enabled: Some(false) });
    store.commit(&change).unwrap();

    let mut change = Change::default();
    let v2 = change.blob(b"v2".to_vec());
    change.op(Op::Bind { name: "demo".into(), cid: v2, origin: Origin::Api, enabled: None });
    store.commit(&change).unwrap();

    assert_eq!(store.servers().unwrap(), vec![ServerRecord { name: "demo".into(), cid: v2, enabled: false }]);
    let history: Vec<_> = store.history("demo").unwrap().into_iter().map(|b| (b.cid, b.origin)).collect();
    assert_eq!(history, vec![(v1, Origin::Boot), (v2, Origin::Api)]);
}

fn a_failing_change_leaves_nothing_behind(store: &dyn Store) {
    let mut change = Change::default();
    let kept = change.blob(b"kept".to_vec());
    change.op(Op::Bind { name: "demo".into(), cid: kept, origin: Origin::Boot, enabled: None });
    // Binding to a CID whose blob is not stored violates the foreign key: the whole change fails.
    change.op(Op::Bind { name: "other".into(), cid: Cid::of(b"missing"), origin: Origin::Boot, enabled: None });
    assert!(store.commit(&change).is_err());
    assert!(store.servers().unwrap().is_empty());
    assert_eq!(store.blob(&kept).unwrap(), None);
}

fn removing_a_server_keeps_its_history(store: &dyn Store) {
    let mut change = Change::default();
    let cid = change.blob(b"v1".to_vec());
    change.op(Op::Bind { name: "demo".into(), cid, origin: Origin::Boot, enabled: None });
    change.op(Op::Remove { name: "demo".into() });
    store.commit(&change).unwrap();
    assert!(store.servers().unwrap().is_empty());
    assert_eq!(store.history("demo").unwrap().len(), 1);
}

fn variables_are_replaced_as_a_whole(store: &dyn Store) {
    let mut change = Change::default();
    change.op(Op::SetVariables(BTreeMap::from([("A".into(), "1".into()), ("B".into(), "2".into())])));
    store.commit(&change).unwrap();
    let mut change = Change::default();
    change.op(Op::SetVariables(BTreeMap::from([("B".into(), "3".into())])));
    store.commit(&change).unwrap();
    assert_eq!(store.variables().unwrap(), BTreeMap::from([("B".into(), "3".into())]));
}

fn secrets_are_kept_sealed_and_listed_by_name(store: &dyn Store) {
    let mut change = Change::default();
    change.op(Op::SetSecret { name: "B".into(), sealed: vec![2] });
    change.op(Op::SetSecret { name: "A".into(), sealed: vec![1] });
    store.commit(&change).unwrap();
    assert_eq!(store.secret_names().unwrap(), vec!["A".to_string(), "B".into()]);
    assert_eq!(store.secret("A").unwrap(), Some(vec![1]));
    let mut change = Change::default();
    change.op(Op::RemoveSecret { name: "A".into() });
    store.commit(&change).unwrap();
    assert_eq!(store.secret("A").unwrap(), None);
}

fn oauth_states_are_taken_once_by_their_server_and_only_before_they_expire(store: &dyn Store) {
    let mut change = Change::default();
    let later = chrono::Utc::now().timestamp_millis() + 60_000;
    change.op(Op::PutOAuthState { key: "k".into(), server: "box".into(), sealed: vec![1], expires: later });
    change.op(Op::PutOAuthState { key: "old".into(), server: "box".into(), sealed: vec![2], expires: 1 });
    store.commit(&change).unwrap();
    assert_eq!(store.take_oauth_state("old", "box").unwrap(), None);
    assert_eq!(store.take_oauth_state("k", "other").unwrap(), None, "another server's callback");
    assert_eq!(store.take_oauth_state("k", "box").unwrap(), Some(vec![1]), "not used up by the wrong one");
    assert_eq!(store.take_oauth_state("k", "box").unwrap(), None);
}

/// Adds an event with `body` received at `at` to `change`; with `since`, refused if the same body
/// arrived at or after it.
fn event(change: &mut Change, (server, delivery_id): (&str, &str), body: &str, at: i64, since: Option<i64>) -> Cid {
    let body_cid = change.blob(body.as_bytes().to_vec());
    let cid = change.blob(format!("receipt of {server} {delivery_id}").into_bytes());
    change.op(Op::RecordEvent {
        cid,
        server: server.into(),
        delivery_id: delivery_id.into(),
        body_cid,
        received_at: at,
        status: EventStatus::Pending,
        same_body_since: since,
        claimed_until: None,
    });
    cid
}

fn record_event(change: &mut Change, server: &str, delivery_id: &str) -> Cid {
    event(change, (server, delivery_id), &format!("body of {delivery_id}"), 1, None)
}

fn event_with_body(server: &str, delivery_id: &str, body: &str, at: i64, since: i64) -> Change {
    let mut change = Change::default();
    event(&mut change, (server, delivery_id), body, at, Some(since));
    change
}

fn a_body_seen_within_the_window_refuses_the_event_whatever_its_id(store: &dyn Store) {
    store.commit(&event_with_body("hook", "a", "{}", 1_000, 0)).unwrap();
    assert!(store.commit(&event_with_body("hook", "b", "{}", 2_000, 1_000)).is_err(), "within the window");
    assert!(store.event_by_delivery("hook", "b").unwrap().is_none(), "nothing of it kept");
    store.commit(&event_with_body("other", "b", "{}", 2_000, 1_000)).unwrap();
    store.commit(&event_with_body("hook", "c", "{\"n\":2}", 2_000, 1_000)).unwrap();
    store.commit(&event_with_body("hook", "d", "{}", 9_000, 1_001)).unwrap();
    let body = Cid::of(b"{}");
    assert_eq!(store.event_by_body("hook", &body, 0).unwrap().unwrap().delivery_id, "a");
    assert_eq!(store.event_by_body("hook", &body, 1_001).unwrap().unwrap().delivery_id, "d");
    assert_eq!(store.event_by_body("hook", &body, 9_001).unwrap(), None);
}

fn events_are_unique_per_server_and_delivery_id(store: &dyn Store) {
    let mut change = Change::default();
    let first = record_event(&mut change, "hook", "evt_1");
    let other_server = record_event(&mut change, "other", "evt_1");
    store.commit(&change).unwrap();

    // The same delivery again fails the whole change: nothing of it is kept.
    let mut change = Change::default();
    let kept_out = record_event(&mut change, "hook", "evt_2");
    record_event(&mut change, "hook", "evt_1");
    assert!(store.commit(&change).is_err());
    assert_eq!(store.event("hook", &kept_out).unwrap(), None);

    let found = store.event_by_delivery("hook", "evt_1").unwrap().unwrap();
    assert_eq!((found.cid, found.status, found.attempts), (first, EventStatus::Pending, 0));
    assert_eq!(store.event("other", &other_server).unwrap().unwrap().server, "other");
    assert_eq!(store.event("hook", &other_server).unwrap(), None);
}

fn outcome(store: &dyn Store, cid: Cid, status: EventStatus, next_attempt_at: Option<i64>) {
    let mut change = Change::default();
    let outcome = Some(serde_json::json!({"type": "script_error", "message": status.as_str()}));
    change.op(Op::EventOutcome { cid, status, outcome, next_attempt_at });
    store.commit(&change).unwrap();
}

fn an_event_its_receiver_claimed_is_due_only_once_the_claim_lapses(store: &dyn Store) {
    let mut change = Change::default();
    let cid = change.blob(b"receipt".to_vec());
    let body_cid = change.blob(b"{}".to_vec());
    change.op(Op::RecordEvent {
        cid,
        server: "hook".into(),
        delivery_id: "d".into(),
        body_cid,
        received_at: 10,
        status: EventStatus::Pending,
        same_body_since: None,
        claimed_until: Some(500),
    });
    store.commit(&change).unwrap();
    let stored = store.event("hook", &cid).unwrap().unwrap();
    assert_eq!((stored.attempts, stored.next_attempt_at), (1, Some(500)), "its first attempt is the receiver's");
    assert!(store.due_events(499, 10).unwrap().is_empty());
    assert_eq!(store.claim_event(&cid, Some(499), 1_000).unwrap(), None, "no worker takes it from the receiver");
    assert_eq!(store.claim_event(&cid, Some(500), 1_000).unwrap(), Some(2), "a receiver that stopped leaves it due");
}

fn waiting_events_are_claimed_once_per_attempt_and_leave_the_queue_when_settled(store: &dyn Store) {
    let mut change = Change::default();
    let older = record_event(&mut change, "hook", "a");
    let newer = record_event(&mut change, "other", "b");
    store.commit(&change).unwrap();
    assert_eq!(store.next_event_due().unwrap(), Some(1), "due when received");
    let due: Vec<Cid> = store.due_events(1, 10).unwrap().iter().map(|e| e.cid).collect();
    assert_eq!(due, vec![older, newer]);

    // A claim counts the attempt and holds the event until the lease ends; a second claim loses.
    assert_eq!(store.claim_event(&older, Some(5), 100).unwrap(), Some(1));
    assert_eq!(store.claim_event(&older, Some(5), 100).unwrap(), None);
    assert_eq!(store.due_events(99, 10).unwrap().iter().map(|e| e.cid).collect::<Vec<_>>(), vec![newer]);
    // A lease that ran out (its process stopped) makes the event due again.
    assert_eq!(store.due_events(100, 10).unwrap().iter().map(|e| e.cid).collect::<Vec<_>>(), vec![newer, older]);

    outcome(store, older, EventStatus::Failed, Some(500));
    assert_eq!(store.claim_event(&older, Some(499), 1_000).unwrap(), None, "not due yet");
    assert_eq!(store.claim_event(&older, Some(500), 1_000).unwrap(), Some(2));
    outcome(store, older, EventStatus::Dead, None);
    assert_eq!(store.claim_event(&older, Some(i64::MAX), 1_000).unwrap(), None, "a dead event waits for no one");
    assert_eq!(store.claim_event(&older, None, 1_000).unwrap(), Some(3), "a replay takes any event");
    outcome(store, older, EventStatus::Handled, None);
    outcome(store, newer, EventStatus::Handled, None);
    assert_eq!(store.next_event_due().unwrap(), None);
    assert!(store.due_events(i64::MAX, 10).unwrap().is_empty());
    let handled = store.event("hook", &older).unwrap().unwrap();
    assert_eq!((handled.status, handled.attempts, handled.next_attempt_at), (EventStatus::Handled, 3, None));
}

fn events_list_newest_first_and_filter_by_status(store: &dyn Store) {
    let mut change = Change::default();
    let older = record_event(&mut change, "hook", "a");
    let newer = record_event(&mut change, "hook", "b");
    record_event(&mut change, "other", "c");
    store.commit(&change).unwrap();
    outcome(store, older, EventStatus::Dead, None);

    let all: Vec<Cid> = store.events("hook", None, 10).unwrap().iter().map(|e| e.cid).collect();
    assert_eq!(all, vec![newer, older]);
    assert_eq!(store.events("hook", None, 1).unwrap().len(), 1);
    let dead = store.events("hook", Some(EventStatus::Dead), 10).unwrap();
    assert_eq!(dead.iter().map(|e| e.cid).collect::<Vec<_>>(), vec![older]);
    assert_eq!(dead[0].outcome.as_ref().unwrap()["message"], "dead");
    assert_eq!(store.events("hook", Some(EventStatus::Pending), 10).unwrap()[0].cid, newer);
    assert!(store.events("hook", Some(EventStatus::Handled), 10).unwrap().is_empty());
}

fn facts_are_upserted(store: &dyn Store) {
    let mut change = Change::default();
    change.op(Op::SetFact { key: "k".into(), value: "1".into() });
    change.op(Op::SetFact { key: "k".into(), value: "2".into() });
    store.commit(&change).unwrap();
    assert_eq!(store.fact("k").unwrap().as_deref(), Some("2"));
    assert_eq!(store.fact("absent").unwrap(), None);
}

// What only PostgreSQL does: several instances on one database.

fn record(time: i64, server: &str, via: Via, error: Option<&str>, cost: f64) -> InvocationRecord {
    InvocationRecord {
        time,
        server: Some(server.into()),
        operation: (via != Via::Cli).then(|| "op".into()),
        cid: Some(Cid::of(b"script")),
        via,
        input_cid: (via == Via::Mcp).then(|| Cid::of(b"in")),
        output_cid: Some(Cid::of(b"out")),
        status: match error {
            Some("timeout") => 504,
            Some(_) => 502,
            None => 200,
        },
        error_type: error.map(str::to_owned),
        duration_ms: 1.5,
        upstream_calls: 2,
        upstream_bytes: 10_000_000_000,
        request_id: format!("r{time}"),
        trace_id: "4bf92f3577b34da6a3ce929d0e0e4736".into(),
        cost,
        currency: Some("USD".into()),
    }
}

/// The times of the records `filter` selects (at most 100 when it names no limit), newest first.
fn times(store: &dyn Store, filter: RecordFilter) -> Vec<i64> {
    let limit = if filter.limit == 0 { 100 } else { filter.limit };
    store.records(&RecordFilter { limit, ..filter }).unwrap().iter().map(|r| r.time).collect()
}

fn records_come_back_newest_first_filtered_and_summed(store: &dyn Store) {
    store.append_records(&[]).unwrap();
    let appended = [
        record(1, "a", Via::Http, None, 0.5),
        record(2, "b", Via::Webhook, Some("upstream"), 0.0),
        record(3, "a", Via::Mcp, Some("timeout"), 0.25),
        record(4, "a", Via::Cli, None, 0.0),
    ];
    store.append_records(&appended).unwrap();
    let all = store.records(&RecordFilter { limit: 10, ..Default::default() }).unwrap();
    assert_eq!(all.iter().map(|r| r.time).collect::<Vec<_>>(), [4, 3, 2, 1]);
    assert_eq!(all[1], appended[2], "every field comes back as it went in");
    assert_eq!(times(store, RecordFilter { limit: 2, ..Default::default() }), [4, 3]);
    let a = || Some("a".to_owned());
    assert_eq!(
        times(store, RecordFilter { server: a(), status: Some(StatusFilter::Error), ..Default::default() }),
        [3]
    );
    assert_eq!(
        times(store, RecordFilter { server: a(), status: Some(StatusFilter::Ok), ..Default::default() }),
        [4, 1]
    );
    assert_eq!(times(store, RecordFilter { status: Some(StatusFilter::Code(502)), ..Default::default() }), [2]);
    assert_eq!(times(store, RecordFilter { via: Some(Via::Webhook), ..Default::default() }), [2]);
    assert_eq!(times(store, RecordFilter { since: Some(2), until: Some(4), ..Default::default() }), [3, 2]);
    let usage = store.usage(&RecordFilter { server: a(), ..Default::default() }).unwrap();
    let usage_of = |operation: Option<&str>, calls, errors, cost| Usage {
        server: "a".into(),
        operation: operation.map(str::to_owned),
        calls,
        errors,
        cost,
        currency: Some("USD".into()),
    };
    assert_eq!(usage, [usage_of(None, 1, 0, 0.0), usage_of(Some("op"), 2, 1, 0.75)]);
    let everyone = store.usage(&RecordFilter { since: Some(2), ..Default::default() }).unwrap();
    assert_eq!(
        everyone.iter().map(|u| (u.server.as_str(), u.calls)).collect::<Vec<_>>(),
        [("a", 1), ("a", 1), ("b", 1)]
    );
}

fn pruning_keeps_the_newest_records_and_drops_the_old(store: &dyn Store) {
    store.append_records(&(1..=10).map(|t| record(t, "a", Via::Http, None, 0.0)).collect::<Vec<_>>()).unwrap();
    assert_eq!(store.prune_records(6, 0).unwrap(), 4);
    assert_eq!(store.prune_records(100, 8).unwrap(), 3);
    assert_eq!(times(store, RecordFilter::default()), [10, 9, 8]);
    assert_eq!(store.prune_records(0, 0).unwrap(), 3);
    assert!(store.records(&RecordFilter { limit: 10, ..Default::default() }).unwrap().is_empty());
}

/// Waits (bounded only so that a broken feed fails instead of hanging) for the next report of `changes`.
fn next(changes: &mut tokio::sync::broadcast::Receiver<Changed>) -> Changed {
    for _ in 0..600 {
        match changes.try_recv() {
            Ok(changed) => return changed,
            Err(tokio::sync::broadcast::error::TryRecvError::Empty) => std::thread::sleep(Duration::from_millis(100)),
            Err(other) => panic!("the feed failed: {other}"),
        }
    }
    panic!("nothing was reported within a minute");
}

fn bind(store: &dyn Store, name: &str, script: &str) -> Cid {
    let mut change = Change::default();
    let cid = change.blob(script.as_bytes().to_vec());
    change.op(Op::Bind { name: name.into(), cid, origin: Origin::Api, enabled: None });
    store.commit(&change).unwrap();
    cid
}

#[test]
fn a_commit_is_told_to_every_instance_as_what_it_changed_and_never_a_secret_value() {
    let Some(database) = Database::fresh() else { return };
    let (one, other) = (PostgresStore::open(&database.url).unwrap(), PostgresStore::open(&database.url).unwrap());
    let mut heard = other.changes();
    let cid = bind(&one, "demo", "v1");
    assert_eq!(next(&mut heard), Changed::Server { name: "demo".into(), head: Some(cid) });
    let mut change = Change::default();
    change.op(Op::SetSecret { name: "API_KEY".into(), sealed: b"sealed-bytes".to_vec() });
    change.op(Op::SetVariables(BTreeMap::from([("REGION".into(), "eu".into())])));
    one.commit(&change).unwrap();
    assert_eq!(next(&mut heard), Changed::Secret { name: "API_KEY".into() });
    assert_eq!(next(&mut heard), Changed::Variables);
    assert_eq!(other.secret("API_KEY").unwrap().as_deref(), Some(&b"sealed-bytes"[..]));
    // A change that failed is told to nobody.
    let mut failing = Change::default();
    failing.op(Op::Bind { name: "ghost".into(), cid: Cid::of(b"no blob"), origin: Origin::Api, enabled: None });
    assert!(one.commit(&failing).is_err());
    bind(&one, "after", "v1");
    assert!(matches!(next(&mut heard), Changed::Server { name, .. } if name == "after"));
}

#[test]
fn records_written_by_one_instance_are_read_by_another_and_told_to_none() {
    let Some(database) = Database::fresh() else { return };
    let (one, other) = (PostgresStore::open(&database.url).unwrap(), PostgresStore::open(&database.url).unwrap());
    let mut heard = other.changes();
    one.append_records(&(1..=3).map(|t| record(t, "a", Via::Http, None, 0.5)).collect::<Vec<_>>()).unwrap();
    one.prune_records(2, 0).unwrap();
    // A commit after them is the first thing the other instance hears: records sent no NOTIFY.
    let cid = bind(&one, "demo", "v1");
    assert_eq!(next(&mut heard), Changed::Server { name: "demo".into(), head: Some(cid) });
    assert_eq!(times(&other, RecordFilter::default()), [3, 2]);
    assert_eq!(other.usage(&RecordFilter::default()).unwrap()[0].calls, 2);
}

#[test]
fn records_kept_a_row_each_are_moved_into_blocks_by_the_migration_that_made_them() {
    let Some(database) = Database::fresh() else { return };
    drop(PostgresStore::open(&database.url).unwrap());
    // The schema as the binary before blocks left it: migration 5 not applied, a row per record.
    let script = Cid::of(b"script");
    common::postgres::admin_on(
        database.name(),
        format!(
            "DROP TABLE switchboard.invocation_blocks;
             DELETE FROM switchboard.migrations WHERE version = 5;
             CREATE TABLE switchboard.invocations (id bigserial PRIMARY KEY, time bigint NOT NULL, server text,
                 operation text, cid bytea, via text NOT NULL, input_cid bytea, output_cid bytea,
                 status integer NOT NULL, error_type text, duration_ms double precision NOT NULL,
                 upstream_calls bigint NOT NULL, upstream_bytes bigint NOT NULL, request_id text NOT NULL,
                 trace_id text NOT NULL, cost double precision NOT NULL, currency text);
             INSERT INTO switchboard.invocations (time, server, operation, cid, via, input_cid, output_cid, status,
                 error_type, duration_ms, upstream_calls, upstream_bytes, request_id, trace_id, cost, currency)
             VALUES (1, 'a', 'op', '\\x{digest}', 'http', NULL, '\\x{digest}', 200, NULL, 1.5, 2, 10000000000,
                     'r1', '4bf92f3577b34da6a3ce929d0e0e4736', 0.5, 'USD'),
                    (2, 'b', 'op', '\\x{digest}', 'webhook', NULL, '\\x{digest}', 502, 'upstream', 1.5, 2,
                     10000000000, 'r2', '4bf92f3577b34da6a3ce929d0e0e4736', 0.0, 'USD');",
            digest = hex::encode(script.digest()),
        ),
    )
    .unwrap();
    let store = PostgresStore::open(&database.url).unwrap();
    let moved = store.records(&RecordFilter { limit: 10, ..Default::default() }).unwrap();
    let mut expected = [record(2, "b", Via::Webhook, Some("upstream"), 0.0), record(1, "a", Via::Http, None, 0.5)];
    for record in &mut expected {
        record.cid = Some(script);
        record.output_cid = Some(script);
    }
    assert_eq!(moved, expected);
    let gone = common::postgres::admin_on(database.name(), "SELECT 1 FROM switchboard.invocations".into());
    assert!(gone.is_err(), "the table of a row per record is dropped once its rows are moved");
}

#[test]
fn concurrent_commits_to_one_server_through_two_instances_end_with_one_head() {
    let Some(database) = Database::fresh() else { return };
    let stores =
        [Arc::new(PostgresStore::open(&database.url).unwrap()), Arc::new(PostgresStore::open(&database.url).unwrap())];
    let writers: Vec<_> = (0..8)
        .map(|i| {
            let store = stores[i % 2].clone();
            std::thread::spawn(move || {
                (0..5).for_each(|round| {
                    bind(store.as_ref(), "shared", &format!("v{i}.{round}"));
                })
            })
        })
        .collect();
    writers.into_iter().for_each(|writer| writer.join().unwrap());
    for store in &stores {
        let history = store.history("shared").unwrap();
        assert_eq!(history.len(), 40);
        let head = store.server("shared").unwrap().unwrap().cid;
        assert_eq!(head, history.last().unwrap().cid, "the head is the last binding of the history");
    }
}

#[test]
fn three_instances_starting_at_once_migrate_the_schema_once() {
    let Some(database) = Database::fresh() else { return };
    let url = Arc::new(database.url.clone());
    let starting: Vec<_> = (0..3)
        .map(|_| {
            let url = url.clone();
            std::thread::spawn(move || PostgresStore::open(&url).map(drop))
        })
        .collect();
    for started in starting {
        started.join().unwrap().unwrap();
    }
    let store = PostgresStore::open(&database.url).unwrap();
    bind(&store, "demo", "v1");
    assert_eq!(
        store.servers().unwrap(),
        vec![ServerRecord { name: "demo".into(), cid: Cid::of(b"v1"), enabled: true }]
    );
}

#[test]
fn a_schema_from_a_newer_binary_is_refused() {
    let Some(database) = Database::fresh() else { return };
    drop(PostgresStore::open(&database.url).unwrap());
    common::postgres::admin_on(database.name(), "INSERT INTO switchboard.migrations (version) VALUES (999)".into())
        .unwrap();
    let refused = PostgresStore::open(&database.url).err().unwrap();
    assert!(refused.message().contains("newer Switchboard"), "{}", refused.message());
}

#[test]
fn an_unreachable_store_is_unavailable_and_named_without_its_password() {
    let refused = PostgresStore::open("postgres://someone:hunter2-secret@127.0.0.1:1/nowhere").err().unwrap();
    let json = refused.to_json().to_string();
    assert_eq!(refused.to_json()["error"]["type"], "unavailable", "{json}");
    assert!(json.contains("127.0.0.1:1/nowhere"), "{json}");
    assert!(!json.contains("hunter2"), "{json}");
}

#[test]
fn after_its_connection_is_terminated_the_feed_reconnects_and_says_everything() {
    let Some(database) = Database::fresh() else { return };
    let (one, other) = (PostgresStore::open(&database.url).unwrap(), PostgresStore::open(&database.url).unwrap());
    let mut heard = other.changes();
    common::postgres::terminate_connections(database.name());
    assert_eq!(next(&mut heard), Changed::Everything);
    // The pool's connections were terminated too: the next operation takes a new one.
    let cid = bind(&one, "demo", "v1");
    assert_eq!(next(&mut heard), Changed::Server { name: "demo".into(), head: Some(cid) });
}

/// A store holding one of everything `copy` moves.
fn populated(store: &dyn Store) {
    let v1 = bind(store, "demo", "v1");
    bind(store, "demo", "v2");
    let mut change = Change::default();
    change.op(Op::Bind { name: "demo".into(), cid: v1, origin: Origin::Api, enabled: Some(false) });
    change.op(Op::SetSecret { name: "API_KEY".into(), sealed: vec![1, 2, 3] });
    change.op(Op::SetConnection { server: "demo".into(), sealed: Some(vec![4, 5]) });
    change.op(Op::SetVariables(BTreeMap::from([("REGION".into(), "eu".into())])));
    change.op(Op::SetFact { key: "seeded".into(), value: "1".into() });
    let cid = event(&mut change, ("demo", "evt_1"), "{}", 1_000, None);
    store.commit(&change).unwrap();
    let mut change = Change::default();
    let outcome = Some(serde_json::json!({ "status": 200 }));
    change.op(Op::EventOutcome { cid, status: EventStatus::Handled, outcome, next_attempt_at: None });
    store.commit(&change).unwrap();
    store
        .append_records(&[record(1, "demo", Via::Http, None, 0.5), record(2, "demo", Via::Webhook, None, 0.0)])
        .unwrap();
}

/// Every invocation record a store holds, newest first.
fn records(store: &dyn Store) -> Vec<InvocationRecord> {
    store.records(&RecordFilter { limit: usize::MAX, ..Default::default() }).unwrap()
}

/// What a store holds, in an order that does not depend on the backend.
fn contents(store: &dyn Store) -> switchboard::store::copy::Dump {
    let mut dump = store.dump().unwrap();
    dump.blobs.sort();
    dump.servers.sort_by(|a, b| a.name.cmp(&b.name));
    dump.facts.sort();
    dump.secrets.sort();
    dump.connections.sort();
    dump
}

#[test]
fn an_installation_copied_from_sqlite_to_postgresql_and_back_is_the_same() {
    let Some(database) = Database::fresh() else { return };
    let dir = tempfile::tempdir().unwrap();
    let original = SqliteStore::open(&dir.path().join("original.sqlite")).unwrap();
    populated(&original);
    let postgres = PostgresStore::open(&database.url).unwrap();
    let copied = switchboard::store::copy::copy(&original, &postgres).unwrap();
    assert_eq!((copied.servers, copied.events, copied.records), (1, 1, 2));
    assert_eq!(contents(&postgres), contents(&original));
    assert_eq!(records(&postgres), records(&original));
    let back = SqliteStore::open(&dir.path().join("back.sqlite")).unwrap();
    switchboard::store::copy::copy(&postgres, &back).unwrap();
    assert_eq!(contents(&back), contents(&original));
    assert_eq!(records(&back), records(&original), "records keep their order");
    assert_eq!(back.history("demo").unwrap(), original.history("demo").unwrap(), "times and origins kept");
    // Into a store that holds servers already: refused, nothing changed.
    let refused = switchboard::store::copy::copy(&original, &back).unwrap_err();
    assert_eq!(refused.to_json()["error"]["type"], "bad_request");
    assert_eq!(contents(&back), contents(&original));
    assert_eq!(records(&back), records(&original));
}
