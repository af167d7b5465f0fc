//! The SDK facade's calls of one area (`Shared::call` routes by area, as backend/ is
//! split): Connection and session: listeners, state queries, `init`, `register`, `login`,
//! `loginOut`.

use super::*;

impl Shared {
    /// The calls of this area; `None` when `method` is not one of them.
    pub(super) async fn call_session(
        self: &Arc<Self>,
        method: &str,
        o: &mut Map<String, Value>,
        cx: &CallContext,
    ) -> Result<Option<SdkCall>, SdkError> {
        let done = match method {
            m if m.starts_with("on") && m.len() > 2 => {
                lock(&self.state).listeners.insert(m.to_owned());
                Ok(SdkCall::Returned(Value::Null))
            }
            "isInit" => Ok(SdkCall::Returned(json!(cx.inited))),
            "isLogin" => Ok(SdkCall::Returned(json!(cx.logged_in))),
            "isConnect" => Ok(SdkCall::Returned(json!(
                cx.connected && !self.client().is_closed()
            ))),
            "loginOut" => {
                lock(&self.state).username = None;
                self.client().disconnect();
                Ok(SdkCall::Returned(Value::Null))
            }
            "init" => {
                o.insert("fromPlatForm".into(), json!("j"));
                let appkey = o.get("appkey").map(id_string).unwrap_or_default();
                let flag = o.get("flag").and_then(Value::as_i64);
                self.send(
                    "c_init",
                    Value::Object(std::mem::take(o)),
                    Post::Data,
                    move |s, _| {
                        let mut st = lock(&s.state);
                        st.appkey = Some(appkey);
                        if let Some(f @ (0 | 1)) = flag {
                            st.sync.insert("sync_type".into(), json!(f));
                        }
                        true
                    },
                )
                .await
            }
            "register" => {
                hash_password(o, "password");
                self.forward("register", o).await
            }
            "login" => self.login(o).await,
            _ => return Ok(None),
        };
        done.map(Some)
    }

    /// login: hashes the password, then starts the sync checks the SDK runs while logged in.
    async fn login(self: &Arc<Self>, o: &mut Map<String, Value>) -> Result<SdkCall, SdkError> {
        hash_password(o, "password");
        o.insert("version".into(), json!("2.5.0"));
        let user = o.get("username").map(id_string).unwrap_or_default();
        tokio::time::sleep(self.sdk_wait(500)).await;
        let r = self
            .send(
                "login",
                Value::Object(std::mem::take(o)),
                Post::Data,
                move |s, _| {
                    let mut st = lock(&s.state);
                    st.username = Some(user);
                    let sync_type = st.sync.get("sync_type").cloned().unwrap_or(json!(0));
                    // The SDK's own key order: sync_key, sync_type, sync_event_key,
                    // msg_receipt_key (transcripts compare frames as text).
                    st.sync = Map::new();
                    st.sync.insert("sync_key".into(), json!(0));
                    st.sync.insert("sync_type".into(), sync_type);
                    // The event key the SDK keeps in localStorage (per appkey and user,
                    // as a string) wins over the 0 of a fresh login.
                    let stored = st.stored_event_key();
                    st.sync.insert(
                        "sync_event_key".into(),
                        stored.map_or(json!(0), Value::String),
                    );
                    st.sync.insert("msg_receipt_key".into(), json!(0));
                    true
                },
            )
            .await?;
        let periodic = self.config.mutant != Some(Mutant::NoPeriodicSyncCheck);
        if r.success().is_some() {
            if self.config.mutant != Some(Mutant::NoLoginSyncCheck) {
                self.sync_check().await;
            }
            let me = self.clone();
            let session = self.client();
            tokio::spawn(async move {
                if !periodic {
                    return;
                }
                loop {
                    tokio::select! {
                        _ = tokio::time::sleep(sync_interval(&me.config)) => {}
                        _ = session.closed() => return,
                    }
                    if lock(&me.state).username.is_none() {
                        return;
                    }
                    me.sync_check().await;
                }
            });
        }
        Ok(r)
    }
}
