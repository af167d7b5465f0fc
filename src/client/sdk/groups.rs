//! The SDK facade's calls of one area (`Shared::call` routes by area, as backend/ is
//! split): Groups: create and update, members, silence, keepers, public groups.

use super::*;

impl Shared {
    /// The calls of this area; `None` when `method` is not one of them.
    pub(super) async fn call_groups(
        self: &Arc<Self>,
        method: &str,
        o: &mut Map<String, Value>,
    ) -> Result<Option<SdkCall>, SdkError> {
        let done = match method {
            "createGroup" | "updateGroupInfo" => {
                if let Some(file) = o.shift_remove("avatar") {
                    let up = match self.upload(&file, "image").await? {
                        Ok(u) => u,
                        Err(call) => return Ok(Some(call)),
                    };
                    o.insert(
                        "media_id".into(),
                        up.get("media_id").cloned().unwrap_or(Value::Null),
                    );
                }
                let event = if method == "createGroup" {
                    "create_group"
                } else {
                    "update_group_info"
                };
                self.forward(event, o).await
            }
            "exitGroup" => self.forward("exit_group", o).await,
            "getGroups" => {
                self.send("get_groups_list", json!({}), Post::Data, |_, b| {
                    if !b.contains_key("group_list") {
                        return false;
                    }
                    flag_to_group_type(b.get_mut("group_list"));
                    true
                })
                .await
            }
            "getGroupInfo" => {
                self.send(
                    "get_group_info",
                    Value::Object(std::mem::take(o)),
                    Post::Data,
                    |_, b| {
                        if !b.contains_key("group_info") {
                            return false;
                        }
                        flag_to_group_type(b.get_mut("group_info"));
                        true
                    },
                )
                .await
            }
            "getGroupMembers" => self.get_group_members(o).await,
            "addGroupMembers" => self.forward("add_across_group_member", o).await,
            "delGroupMembers" => self.forward("del_across_group_member", o).await,
            "joinGroup" => self.forward("apply_join_group", o).await,
            "addGroupMemberResp" => self.forward("admin_add_group_member", o).await,
            "addGroupMemSilence" | "delGroupMemSilence" => {
                o.insert("keep_silence".into(), json!(method == "addGroupMemSilence"));
                self.forward("group_mem_silence", o).await
            }
            "dissolveGroup" => self.forward("dissolve_group", o).await,
            "addGroupKeeper" => self.forward("add_group_keeper", o).await,
            "delGroupKeeper" => self.forward("del_group_keeper", o).await,
            "changeGroupAdmin" => self.forward("change_group_admin", o).await,
            "getAppkeyPublicGroups" => {
                self.send(
                    "public_group_list",
                    Value::Object(std::mem::take(o)),
                    Post::Data,
                    |_, b| match b.get_mut("result").and_then(Value::as_object_mut) {
                        Some(r) => {
                            flag_to_group_type(r.get_mut("groups"));
                            true
                        }
                        None => false,
                    },
                )
                .await
            }
            _ => return Ok(None),
        };
        done.map(Some)
    }

    /// getGroupMembers, in the SDK's shape.
    async fn get_group_members(&self, o: &mut Map<String, Value>) -> Result<SdkCall, SdkError> {
        self.send(
            "get_group_members",
            Value::Object(std::mem::take(o)),
            Post::Data,
            |s, b| {
                let Some(list) = b.get_mut("member_list").and_then(Value::as_array_mut) else {
                    return false;
                };
                let mut st = lock(&s.state);
                for m in list.iter_mut().filter_map(Value::as_object_mut) {
                    let uid = m.shift_remove("uid").and_then(|u| u.as_i64());
                    let mt = m.shift_remove("mtime").and_then(|u| u.as_i64());
                    if let (Some(uid), Some(mt)) = (uid, mt) {
                        st.mtimes.insert(uid, mt);
                    }
                }
                true
            },
        )
        .await
    }
}
