//! The SDK facade's calls of one area (`Shared::call` routes by area, as backend/ is
//! split): Conversations, unread counts, receipts, resources, retraction, transparent and
//! ordinary messages.

use super::*;

// Deliberately repeated: every area's `call_*` has the same signature, as `Shared::call`
// tries them in turn.
impl Shared {
    /// The calls of this area; `None` when `method` is not one of them.
    pub(super) async fn call_messages(
        self: &Arc<Self>,
        method: &str,
        o: &mut Map<String, Value>,
        cx: &CallContext,
    ) -> Result<Option<SdkCall>, SdkError> {
        let done = match method {
            "getConversation" => self.get_conversation().await,
            "updateConversation" => {
                let ck = self.conv_key(o, &cx.own_appkey);
                let extras = o.get("extras").cloned().unwrap_or(json!({}));
                lock(&self.state).conv_extras.insert(ck, extras);
                Ok(SdkCall::Returned(Value::Null))
            }
            "getUnreadMsgCnt" => {
                let ck = self.conv_key(o, &cx.own_appkey);
                let n = lock(&self.state).unread.get(&ck).map_or(0, Vec::len);
                Ok(SdkCall::Returned(json!(n)))
            }
            "resetUnreadCount" => {
                let ck = self.conv_key(o, &cx.own_appkey);
                lock(&self.state).unread.insert(ck, Vec::new());
                let (event, payload) = if o.contains_key("gid") {
                    ("unread_group_count", json!({"gid": o["gid"], "type": 4}))
                } else {
                    default_appkey(o, &cx.own_appkey);
                    (
                        "unread_single_count",
                        json!({"appkey": o["appkey"], "username": o.get("username").cloned().unwrap_or(Value::Null), "type": 3}),
                    )
                };
                self.plain(event, payload).await?;
                Ok(SdkCall::Returned(Value::Null))
            }
            "msgUnreadList" => self.forward("msg_unread_list", o).await,
            "addSingleReceiptReport" | "addGroupReceiptReport" => {
                self.receipt_report(method, o, cx).await
            }
            "getResource" => self.forward("get_resource", o).await,
            "msgRetract" => self.forward("msg_retract", o).await,
            "transSingleMsg" => self.forward("trans_msg_single", o).await,
            "transGroupMsg" => self.forward("trans_msg_group", o).await,
            "transPlatMsg" => self.forward("trans_msg_platform", o).await,
            m if m.starts_with("sendSingle")
                || m.starts_with("sendGroup")
                || m.starts_with("sendChatroom") =>
            {
                self.send_msg(m, std::mem::take(o), &cx.me, &cx.own_appkey)
                    .await
            }
            _ => return Ok(None),
        };
        done.map(Some)
    }

    /// getConversation: the conversations, with the extras and unread counts kept on this side.
    async fn get_conversation(&self) -> Result<SdkCall, SdkError> {
        self.send("get_conversations", json!({}), Post::Data, |s, b| {
            let Some(list) = b.get_mut("conversations").and_then(Value::as_array_mut) else {
                return false;
            };
            let mut st = lock(&s.state);
            for c in list.iter_mut().filter_map(Value::as_object_mut) {
                let key = c.get("key").cloned().unwrap_or(Value::Null);
                let ck = if c.get("type").and_then(Value::as_i64) == Some(4) {
                    c.insert("gid".into(), key.clone());
                    conv_key_group(&key)
                } else {
                    if let (Some(uid), Some(ut)) = (
                        key.as_i64(),
                        c.shift_remove("utime").and_then(|u| u.as_i64()),
                    ) {
                        st.mtimes.insert(uid, ut);
                    }
                    conv_key_single(
                        c.get("appkey").and_then(Value::as_str).unwrap_or(""),
                        c.get("username").and_then(Value::as_str).unwrap_or(""),
                    )
                };
                let extras = st.conv_extras.get(&ck).cloned().unwrap_or(json!({}));
                let unread = st.unread.get(&ck).map_or(0, Vec::len);
                c.insert("extras".into(), extras);
                c.insert("unread_msg_count".into(), json!(unread));
            }
            true
        })
        .await
    }

    /// addSingleReceiptReport / addGroupReceiptReport: ids de-duplicated, empty lists refused as the SDK does.
    async fn receipt_report(
        &self,
        method: &str,
        o: &mut Map<String, Value>,
        cx: &CallContext,
    ) -> Result<SdkCall, SdkError> {
        let ids: Vec<Value> = {
            let mut seen = Vec::new();
            for id in o
                .get("msg_ids")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter(|v| !v.is_null())
            {
                if !seen.contains(id) {
                    seen.push(id.clone());
                }
            }
            seen
        };
        if ids.is_empty() {
            return Ok(SdkCall::Ignored("msg_ids must be a non-empty array".into()));
        }
        if self.config.mutant == Some(Mutant::NeverReportsReceipt) {
            return Ok(SdkCall::Callbacks(Callbacks {
                success: Some(vec![
                    json!({"code": 0, "message": "success"}),
                    Value::Array(ids),
                ]),
                ack: true,
                ..Callbacks::default()
            }));
        }
        o.insert("msg_ids".into(), Value::Array(ids.clone()));
        if method == "addSingleReceiptReport" {
            default_appkey(o, &cx.own_appkey);
            o.insert("type".into(), json!(3));
        } else {
            o.insert("type".into(), json!(4));
        }
        self.send(
            "receipt_report",
            json!({"sessions": [Value::Object(std::mem::take(o))]}),
            Post::WithArg(Value::Array(ids)),
            |_, _| true,
        )
        .await
    }
}
