//! The progress of a long operation as server-sent events: [`EventProgress`] is the
//! engine's [`Progress`] turned into `note`, `warning` and `progress` events, and the
//! operation's end is one `result` event (its report, as `--json` prints it) or one
//! `error` event (the `{error, hint, status}` object).

use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::stream::{self, Stream};
use serde::Serialize;
use serde_json::json;
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};

use crate::progress::{Progress, Task};

/// Sends an operation's messages and steps as events.
#[derive(Clone)]
pub struct EventProgress {
    sender: UnboundedSender<Event>,
}

impl EventProgress {
    /// The progress and the stream of its events.
    pub fn new() -> (EventProgress, UnboundedReceiver<Event>) {
        let (sender, receiver) = unbounded_channel();
        (EventProgress { sender }, receiver)
    }

    /// Sends the `kind` event with `value` as its JSON data. A client that went away is
    /// not the operation's business: it goes on.
    pub fn send(&self, kind: &str, value: &impl Serialize) {
        let data = serde_json::to_string(value).unwrap_or_else(|_| "null".to_owned());
        let _ = self.sender.send(Event::default().event(kind).data(data));
    }
}

impl EventProgress {
    /// Whether the client has gone (the response's stream was dropped).
    pub fn is_closed(&self) -> bool {
        self.sender.is_closed()
    }
}

impl Progress for EventProgress {
    fn note(&self, message: &str) {
        self.send("note", &json!({ "message": message }));
    }

    fn warning(&self, message: &str) {
        self.send("warning", &json!({ "message": message }));
    }

    fn task(&self, what: &'static str, len: u64) -> Box<dyn Task> {
        let task = EventTask {
            what,
            len,
            done: AtomicU64::new(0),
            shown: AtomicU64::new(0),
            events: self.clone(),
        };
        task.events
            .send("progress", &json!({ "step": what, "done": 0, "len": len }));
        Box::new(task)
    }
}

/// One step's progress, sent at each whole percent (a step may advance by thousands).
struct EventTask {
    what: &'static str,
    len: u64,
    done: AtomicU64,
    /// The percentage last sent.
    shown: AtomicU64,
    events: EventProgress,
}

impl Task for EventTask {
    fn advance(&self, done: u64) {
        let done = self.done.fetch_add(done, Ordering::Relaxed) + done;
        let percent = done.saturating_mul(100) / self.len.max(1);
        if self.shown.fetch_max(percent, Ordering::Relaxed) < percent {
            self.events.send(
                "progress",
                &json!({ "step": self.what, "done": done, "len": self.len }),
            );
        }
    }

    fn finish(&self) {
        let done = self.done.load(Ordering::Relaxed);
        self.events.send(
            "progress",
            &json!({ "step": self.what, "done": done, "len": self.len, "finished": true }),
        );
    }
}

/// The response streaming `receiver`'s events until the operation drops its sender.
pub fn stream_response(receiver: UnboundedReceiver<Event>) -> Response {
    Sse::new(events(receiver))
        .keep_alive(KeepAlive::default())
        .into_response()
}

fn events(receiver: UnboundedReceiver<Event>) -> impl Stream<Item = Result<Event, Infallible>> {
    stream::unfold(receiver, |mut receiver| async move {
        receiver.recv().await.map(|event| (Ok(event), receiver))
    })
}

/// Progress that is dropped, shared as the engine wants it.
pub fn silent() -> Arc<dyn Progress> {
    Arc::new(crate::progress::Silent)
}
