//! The SDK facade's calls of one area (`Shared::call` routes by area, as backend/ is
//! split): The own user and other users: profiles, avatar, password.

use super::*;

impl Shared {
    /// The calls of this area; `None` when `method` is not one of them.
    pub(super) async fn call_users(
        self: &Arc<Self>,
        method: &str,
        o: &mut Map<String, Value>,
        cx: &CallContext,
    ) -> Result<Option<SdkCall>, SdkError> {
        let done = match method {
            "getUserInfo" => {
                default_appkey(o, &cx.own_appkey);
                self.send(
                    "get_across_user_info",
                    Value::Object(std::mem::take(o)),
                    Post::Data,
                    |_, b| match b.get_mut("user_info").and_then(Value::as_object_mut) {
                        Some(u) => {
                            u.shift_remove("uid");
                            true
                        }
                        None => false,
                    },
                )
                .await
            }
            "updateSelfInfo" => {
                if o.get("avatar")
                    .and_then(Value::as_str)
                    .is_some_and(|s| !s.is_empty())
                {
                    o.shift_remove("avatar");
                }
                self.forward("update_user_inf", o).await
            }
            "updateSelfAvatar" => {
                let file = o.get("avatar").cloned().unwrap_or(Value::Null);
                let up = match self.upload(&file, "image").await? {
                    Ok(u) => u,
                    Err(call) => return Ok(Some(call)),
                };
                let media = up.get("media_id").cloned().unwrap_or(Value::Null);
                self.plain("update_user_inf", json!({"avatar": media}))
                    .await
            }
            "updateSelfPwd" => {
                hash_password(o, "old_pwd");
                hash_password(o, "new_pwd");
                self.forward("update_user_pwd", o).await
            }
            _ => return Ok(None),
        };
        done.map(Some)
    }
}
