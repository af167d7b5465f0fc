//! Group messages: `send_group_msg` (protocol.md 4.3, 5.3, 5.4, 7.2).
//!
//! The message is relayed with `msg_sync` to every live session of every member and to the
//! sender's other sessions (never to the sending connection), and recorded in each member's
//! sync log under [`ConvKey::Group`] so offline members get it via `sync_conversation`.

use super::chat::check_content;
use super::model::{ConvKey, Message, ReceiptState, Target, UserKey};
use super::{Backend, ConnId, Outcome};
use crate::protocol::{Args, Code, Failure};
use serde_json::{json, Map, Value};

/// Checks the `users` at-list: `[{username, appkey?}]` (`[]` = @all).
fn check_at_list(a: &Args<'_>) -> Result<(), Failure> {
    let Some(list) = a.opt_array("users")? else {
        return Ok(());
    };
    for (i, v) in list.iter().enumerate() {
        let ok = match v {
            Value::Object(m) => matches!(m.get("username"), Some(Value::String(s)) if !s.is_empty()),
            _ => false,
        };
        if !ok {
            return Err(Failure::new(
                Code::InvalidType,
                format!("users[{i}] must be {{username, appkey?}}"),
            ));
        }
    }
    Ok(())
}

impl Backend {
    pub(super) fn send_group_msg(&mut self, conn: ConnId, a: Args<'_>) -> Result<Outcome, Failure> {
        let me = self.me(conn)?;
        let content = a.obj("content")?;
        let gid_text = match a.opt_id("target_gid")? {
            Some(t) => t,
            None => Args(content)
                .opt_id("target_id")?
                .ok_or_else(|| Failure::new(Code::Missing, "target_gid is required"))?,
        };
        let gid: u64 = gid_text.trim().parse().map_err(|_| {
            Failure::new(
                Code::TargetGroupNotExist,
                format!("target_gid {gid_text} is not a group id"),
            )
        })?;
        check_content(content)?;
        check_at_list(&a)?;
        let no_offline = a.opt_bool("no_offline")?.unwrap_or(false);
        let need_receipt = a.opt_bool("need_receipt")?.unwrap_or(false);
        let custom_notification = a.opt_obj("custom_notification")?.cloned();
        let g = self.groups.get(&gid).ok_or_else(|| {
            Failure::new(
                Code::TargetGroupNotExist,
                format!("group {gid} does not exist"),
            )
        })?;
        let member = g.members.get(&me).ok_or_else(|| {
            Failure::new(
                Code::NotInGroup,
                format!("{me} is not a member of group {gid}"),
            )
        })?;
        if member.silenced {
            return Err(Failure::new(
                Code::Silenced,
                format!("{me} is silenced in group {gid}"),
            ));
        }
        let group_app = g.appkey.clone();
        let members: Vec<UserKey> = g.members.keys().cloned().collect();
        let sender = self
            .users
            .get(&me)
            .ok_or_else(|| Failure::from(Code::UserNotExist))?;
        let (from_uid, sui_mtime) = (sender.uid, sender.mtime_s);
        let now = self.now_ms();
        let msg_id = self.ids.next_msg();
        let mut content = content.clone();
        content.insert("from_id".into(), json!(me.username));
        content.insert("from_appkey".into(), json!(me.appkey));
        content.insert("target_id".into(), json!(gid.to_string()));
        content.insert("target_type".into(), json!("group"));
        content.insert("sui_mtime".into(), json!(sui_mtime));
        let mut wire = json!({
            "msg_id": msg_id,
            "msg_type": 4,
            "from_uid": from_uid,
            "from_gid": gid,
            "ctime_ms": now,
            "msg_level": if me.appkey == group_app { 0 } else { 1 },
            "need_receipt": need_receipt,
            "content": content,
        });
        if let (Some(cn), Some(m)) = (custom_notification, wire.as_object_mut()) {
            m.insert("custom_notification".into(), Value::Object(cn));
        }
        // Every live session of every member (the sender's other sessions included).
        let mut to: Vec<ConnId> = Vec::new();
        for u in &members {
            for c in self.conns_of(u) {
                if c != conn && !to.contains(&c) {
                    to.push(c);
                }
            }
        }
        let others: Vec<UserKey> = members.iter().filter(|u| **u != me).cloned().collect();
        if need_receipt && !others.is_empty() {
            self.receipts.insert(
                msg_id,
                ReceiptState {
                    sender: Some(me.clone()),
                    unread: others.iter().cloned().collect(),
                    read: Default::default(),
                },
            );
        }
        if !no_offline {
            self.messages.insert(
                msg_id,
                Message {
                    msg_id,
                    from: me.clone(),
                    target: Target::Group(gid),
                    ctime_ms: now,
                    wire: wire.clone(),
                },
            );
            for u in &members {
                // The sender's copy is delivered; 2.4.0 builds never send msg_recv_v2, so
                // a live push to one counts as delivered (as for single messages).
                let delivered = *u == me
                    || self.conns_of(u).iter().any(|c| {
                        self.conns
                            .get(c)
                            .and_then(|c| c.login.as_ref())
                            .is_some_and(|l| l.version.starts_with("2.4"))
                    });
                self.record(u, ConvKey::Group(gid), msg_id, now, delivered);
            }
        }
        let unread_count = if need_receipt { others.len() } else { 0 };
        let mut f = Map::new();
        f.insert("msg_id".into(), json!(msg_id));
        f.insert("ctime_ms".into(), json!(now));
        f.insert("target_gid".into(), json!(gid));
        f.insert("unread_count".into(), json!(unread_count));
        let mut out = Outcome::ok(f);
        out.push(to, "msg_sync", json!({ "messages": [wire] }));
        Ok(out)
    }
}
