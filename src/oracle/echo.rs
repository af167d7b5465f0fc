//! The event echo obligation (JMP-EVENT-001/002): the official SDK answers an
//! `event_notification` push of event type 1 (the session was kicked by another login)
//! with an `event_notification` request naming the pushed `event_id`; no other event type
//! is echoed (their confirmation is the sync key of `sync_event`). All three official
//! builds echo (e.g. `scenarios/conformance/session/snapshots/jmessage-web-2.4.0/
//! 3_2-006-a-second-web-login-kicks-the-first-session-with-event-1.snap`).
//!
//! Pending echoes are kept per connection (at most [`super::MAX_PENDING`]); the pushed
//! event ids per user (at most [`super::MAX_USER_ITEMS`]), so an echo sent on another
//! connection of the user is not taken for a made-up id.

use super::{int_field, push_bounded, rules, Conn, Ctx, UserMemory, MAX_PENDING, MAX_USER_ITEMS};
use serde_json::{Map, Value};
use std::time::Instant;

/// The event type the SDK echoes.
pub const ECHOED_TYPE: i64 = 1;

/// An outbound `event_notification` push: one echo owed when it is of type 1.
pub fn note_push(
    c: &mut Conn,
    mem: Option<&mut UserMemory>,
    payload: &Map<String, Value>,
    now: Instant,
) {
    if int_field(payload, "event_type") != Some(ECHOED_TYPE) {
        return;
    }
    let Some(id) = int_field(payload, "event_id") else {
        return;
    };
    push_bounded(&mut c.echoes, (id, now), MAX_PENDING);
    if let Some(m) = mem {
        push_bounded(&mut m.events, id, MAX_USER_ITEMS);
    }
}

/// An inbound `event_notification` (an echo): it settles the echo owed for its
/// `event_id`, and must name an event of type 1 the server pushed to the user.
pub fn check(
    c: &mut Conn,
    mem: Option<&UserMemory>,
    payload: &Map<String, Value>,
    ctx: &mut Ctx<'_>,
) {
    let Some(id) = int_field(payload, "event_id") else {
        return;
    };
    let before = c.echoes.len();
    c.echoes.retain(|(e, _)| *e != id);
    let known = mem.is_some_and(|m| m.events.contains(&id));
    if before == c.echoes.len() && !known {
        ctx.report(
            rules::EVENT_ECHO_UNKNOWN,
            format!("event_notification echo for event {id}, which was never pushed to this user as event type 1"),
        );
    }
}

/// Reports echoes owed for longer than `late` allows (and forgets them).
pub fn overdue(c: &mut Conn, ctx: &mut Ctx<'_>, late: impl Fn(&Instant) -> bool, ms: u128) {
    while let Some((id, _)) = c.echoes.front().copied().filter(|(_, t)| late(t)) {
        c.echoes.pop_front();
        ctx.report(
            rules::EVENT_ECHO,
            format!("event_notification echo for event {id} (type 1) not sent within {ms} ms of the push"),
        );
    }
}

/// Reports every echo still owed at the end of an exchange.
pub fn owed_at_end(c: &mut Conn, ctx: &mut Ctx<'_>) {
    for (id, _) in c.echoes.drain(..) {
        ctx.report(
            rules::EVENT_ECHO,
            format!("event_notification echo for event {id} (type 1) never sent"),
        );
    }
}

/// Reports every echo still owed when the connection closes: the SDK echoes as soon as
/// the push arrives, before it lets the kicked connection go.
pub fn owed_at_close(c: &mut Conn, ctx: &mut Ctx<'_>) {
    for (id, _) in c.echoes.drain(..) {
        ctx.report(
            rules::EVENT_ECHO,
            format!("event_notification echo for event {id} (type 1) never sent before the connection closed"),
        );
    }
}
