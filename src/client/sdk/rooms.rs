//! The SDK facade's calls of one area (`Shared::call` routes by area, as backend/ is
//! split): Chat rooms: listing, info, enter and exit.

use super::*;

impl Shared {
    /// The calls of this area; `None` when `method` is not one of them.
    pub(super) async fn call_rooms(
        self: &Arc<Self>,
        method: &str,
        o: &mut Map<String, Value>,
    ) -> Result<Option<SdkCall>, SdkError> {
        let done = match method {
            "getAppkeyChatrooms" => {
                self.send(
                    "room_list",
                    Value::Object(std::mem::take(o)),
                    Post::Data,
                    |s, b| {
                        let Some(rooms) = b
                            .get("result")
                            .and_then(|r| r.get("rooms"))
                            .and_then(Value::as_array)
                        else {
                            return false;
                        };
                        s.cache_rooms(rooms);
                        true
                    },
                )
                .await
            }
            "getSelfChatrooms" => {
                self.send("room_list_self", json!({}), Post::Data, |s, b| {
                    let Some(rooms) = b.get("chat_rooms").and_then(Value::as_array) else {
                        return false;
                    };
                    s.cache_rooms(rooms);
                    true
                })
                .await
            }
            "getChatroomInfo" => {
                let id = o.get("id").map(id_string).unwrap_or_default();
                let cached = lock(&self.state).rooms.get(&id).cloned();
                if let Some(info) = cached {
                    tokio::time::sleep(self.sdk_wait(100)).await;
                    return Ok(Some(SdkCall::Callbacks(Callbacks {
                        success: Some(vec![json!({"code": 0, "message": "success", "info": info})]),
                        ..Callbacks::default()
                    })));
                }
                self.send(
                    "room_info",
                    Value::Object(std::mem::take(o)),
                    Post::Data,
                    |s, b| {
                        let Some(info) = b.get("info") else {
                            return false;
                        };
                        s.cache_rooms(std::slice::from_ref(info));
                        true
                    },
                )
                .await
            }
            "enterChatroom" => self.forward("join_room", o).await,
            "exitChatroom" => self.forward("exit_room", o).await,
            _ => return Ok(None),
        };
        done.map(Some)
    }
}
