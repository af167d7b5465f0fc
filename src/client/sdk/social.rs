//! The SDK facade's calls of one area (`Shared::call` routes by area, as backend/ is
//! split): No-disturb, shields, blacklists and friends.

use super::*;

impl Shared {
    /// The calls of this area; `None` when `method` is not one of them.
    pub(super) async fn call_social(
        self: &Arc<Self>,
        method: &str,
        o: &mut Map<String, Value>,
    ) -> Result<Option<SdkCall>, SdkError> {
        let done = match method {
            "getNoDisturb" => self.get_no_disturb().await,
            "addSingleNoDisturb" | "delSingleNoDisturb" | "addGroupNoDisturb"
            | "delGroupNoDisturb" | "addGlobalNoDisturb" | "delGlobalNoDisturb" => {
                let event = match method {
                    "addSingleNoDisturb" => "add_msg_no_disturb_single",
                    "delSingleNoDisturb" => "delete_msg_no_disturb_single",
                    "addGroupNoDisturb" => "add_msg_no_disturb_group",
                    "delGroupNoDisturb" => "delete_msg_no_disturb_group",
                    "addGlobalNoDisturb" => "add_msg_no_disturb_global",
                    _ => "delete_msg_no_disturb_global",
                };
                o.insert("version".into(), json!(0));
                self.forward(event, o).await
            }
            "groupShieldList" => {
                self.send("list_shield_group", json!({}), Post::Data, |_, b| {
                    if !b.contains_key("groups") {
                        return false;
                    }
                    flag_to_group_type(b.get_mut("groups"));
                    true
                })
                .await
            }
            "addGroupShield" => self.forward("add_msg_shield_group", o).await,
            "delGroupShield" => self.forward("del_msg_shield_group", o).await,
            "getBlacks" => {
                self.send(
                    "get_black_list",
                    json!({"version": 0}),
                    Post::Data,
                    |_, b| {
                        if !b.contains_key("black_list") {
                            return false;
                        }
                        remove_in_list(b.get_mut("black_list"), &["uid"]);
                        true
                    },
                )
                .await
            }
            "addSingleBlacks" => self.forward("add_black_list", o).await,
            "delSingleBlacks" => self.forward("del_black_list", o).await,
            // ---- friends ----
            "getFriendList" => {
                self.send("get_friend_list", json!({}), Post::Data, |s, b| {
                    let Some(list) = b.get_mut("friend_list").and_then(Value::as_array_mut) else {
                        return false;
                    };
                    let mut st = lock(&s.state);
                    for f in list.iter_mut().filter_map(Value::as_object_mut) {
                        let uid = f.shift_remove("uid").and_then(|u| u.as_i64());
                        let mt = f.get("mtime").and_then(Value::as_i64);
                        if let (Some(uid), Some(mt)) = (uid, mt) {
                            st.mtimes.insert(uid, mt * 1000);
                        }
                    }
                    true
                })
                .await
            }
            "addFriend" => {
                o.insert("from_type".into(), json!(1));
                self.forward("add_friend", o).await
            }
            "acceptFriend" | "declineFriend" => {
                let why = if method == "acceptFriend" {
                    json!("yes")
                } else if truthy(o.get("why")) {
                    o["why"].clone()
                } else {
                    json!("no")
                };
                let mut p = Map::new();
                p.insert(
                    "target_name".into(),
                    o.get("target_name").cloned().unwrap_or(Value::Null),
                );
                if let Some(a) = o.get("appkey") {
                    p.insert("appkey".into(), a.clone());
                }
                p.insert("why".into(), why);
                p.insert("from_type".into(), json!(2));
                self.plain("add_friend", Value::Object(p)).await
            }
            "delFriend" => self.forward("del_friend", o).await,
            "updateFriendMemo" => self.forward("update_friend_memo", o).await,
            _ => return Ok(None),
        };
        done.map(Some)
    }

    /// getNoDisturb, in the SDK's shape.
    async fn get_no_disturb(&self) -> Result<SdkCall, SdkError> {
        self.send(
            "no_disturb",
            json!({"version": 0}),
            Post::Data,
            |_, b| match b.get_mut("no_disturb").and_then(Value::as_object_mut) {
                Some(n) if n.contains_key("groups") => {
                    flag_to_group_type(n.get_mut("groups"));
                    true
                }
                _ => false,
            },
        )
        .await
    }
}
