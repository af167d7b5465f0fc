//! `POST /__admin/act`: performs a method of the Web SDK guide as any user, on a lasting
//! device session of that user (docs/admin-api.md, "Act as a user").
//!
//! Each acting user gets a device: a reference [`SdkInstance`] (the same facade that maps
//! guide methods to wire requests for the portable `call` step) connected over loopback to
//! this very server and logged in on platform `Android`, so a web login of the same user is
//! not kicked (docs/decisions.md, "Multi-end"). Its requests travel through the engine, the
//! fault layer and the journal like a real device's, and everyone else sees what a real
//! device of that user causes.
//!
//! Bounds: at most [`MAX_DEVICES`] devices (the least recently used one is logged out to
//! make room); a device's pushes are drained by the facade's pump as they arrive and, since
//! no listener is registered, never queued; what the facade records (sent frames, unread
//! counters) is forgotten after each action and every [`TRIM_EVERY`]. Calls on one device
//! are serialised (an async per-device lock; no lock is held on the backend meanwhile).

use super::admin::AdminState;
use crate::backend::UserKey;
use crate::client::sdk::{SdkCall, SdkError, SdkInstance};
use crate::client::ClientConfig;
use crate::lock::lock;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

/// Most device sessions kept at once.
pub const MAX_DEVICES: usize = 64;
/// How often the devices' records are trimmed.
pub const TRIM_EVERY: Duration = Duration::from_secs(5);
/// The platform the devices log in on.
pub const DEVICE_PLATFORM: &str = "Android";
/// An action answers within this bound (beyond the SDK's own timers: 5 transmissions).
const CALL_LIMIT: Duration = Duration::from_secs(60);

/// Guide methods `act` performs (the facade's vocabulary, minus the session lifecycle
/// that `act` manages itself).
pub const METHODS: &[&str] = &[
    "getUserInfo",
    "updateSelfInfo",
    "updateSelfAvatar",
    "updateSelfPwd",
    "getConversation",
    "updateConversation",
    "getUnreadMsgCnt",
    "resetUnreadCount",
    "msgUnreadList",
    "addSingleReceiptReport",
    "addGroupReceiptReport",
    "getResource",
    "msgRetract",
    "transSingleMsg",
    "transGroupMsg",
    "transPlatMsg",
    "createGroup",
    "updateGroupInfo",
    "exitGroup",
    "getGroups",
    "getGroupInfo",
    "getGroupMembers",
    "addGroupMembers",
    "delGroupMembers",
    "joinGroup",
    "addGroupMemberResp",
    "addGroupMemSilence",
    "delGroupMemSilence",
    "dissolveGroup",
    "addGroupKeeper",
    "delGroupKeeper",
    "changeGroupAdmin",
    "getAppkeyPublicGroups",
    "getAppkeyChatrooms",
    "getSelfChatrooms",
    "getChatroomInfo",
    "enterChatroom",
    "exitChatroom",
    "getNoDisturb",
    "addSingleNoDisturb",
    "delSingleNoDisturb",
    "addGroupNoDisturb",
    "delGroupNoDisturb",
    "addGlobalNoDisturb",
    "delGlobalNoDisturb",
    "groupShieldList",
    "addGroupShield",
    "delGroupShield",
    "getBlacks",
    "addSingleBlacks",
    "delSingleBlacks",
    "getFriendList",
    "addFriend",
    "acceptFriend",
    "declineFriend",
    "delFriend",
    "updateFriendMemo",
    "sendSingleMsg",
    "sendSingleFile",
    "sendSinglePic",
    "sendSingleLocation",
    "sendSingleCustom",
    "sendGroupMsg",
    "sendGroupFile",
    "sendGroupPic",
    "sendGroupLocation",
    "sendGroupCustom",
    "sendChatroomMsg",
    "sendChatroomFile",
    "sendChatroomPic",
    "sendChatroomLocation",
    "sendChatroomCustom",
];

/// Methods that belong to the device's lifecycle, not to `act`.
const LIFECYCLE: &[&str] = &["init", "login", "register", "loginOut"];

struct Device {
    sdk: tokio::sync::Mutex<Option<SdkInstance>>,
    used: Mutex<Instant>,
}

/// The device sessions, per user.
#[derive(Default)]
pub struct Devices {
    map: Mutex<HashMap<UserKey, Arc<Device>>>,
}

impl Devices {
    /// The device set, with a task that trims the devices' records while it lives.
    pub fn new() -> Arc<Self> {
        let devices = Arc::new(Self::default());
        let weak = Arc::downgrade(&devices);
        tokio::spawn(trim_loop(weak));
        devices
    }

    /// How many device sessions exist.
    pub fn count(&self) -> usize {
        lock(&self.map).len()
    }

    /// The device of `user`, made (evicting the least recently used one) if needed.
    fn device(&self, user: &UserKey) -> Arc<Device> {
        let mut map = lock(&self.map);
        if let Some(d) = map.get(user) {
            *lock(&d.used) = Instant::now();
            return d.clone();
        }
        if map.len() >= MAX_DEVICES {
            let oldest = map
                .iter()
                .min_by_key(|(_, d)| *lock(&d.used))
                .map(|(k, _)| k.clone());
            if let Some(k) = oldest {
                map.remove(&k);
            }
        }
        let d = Arc::new(Device {
            sdk: tokio::sync::Mutex::new(None),
            used: Mutex::new(Instant::now()),
        });
        map.insert(user.clone(), d.clone());
        d
    }

    fn all(&self) -> Vec<Arc<Device>> {
        lock(&self.map).values().cloned().collect()
    }
}

async fn trim_loop(devices: Weak<Devices>) {
    loop {
        tokio::time::sleep(TRIM_EVERY).await;
        let Some(d) = devices.upgrade() else { return };
        for dev in d.all() {
            if let Ok(sdk) = dev.sdk.try_lock() {
                if let Some(i) = sdk.as_ref() {
                    i.trim_records();
                }
            }
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ActRequest {
    #[serde(rename = "as")]
    user: String,
    #[serde(default)]
    appkey: Option<String>,
    method: String,
    #[serde(default)]
    args: Option<Value>,
}

fn bad(message: impl Into<String>) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(json!({"error": message.into()})),
    )
        .into_response()
}

/// The configuration's first app when it still exists, else the first app of the state.
pub(crate) fn default_appkey(s: &AdminState) -> Option<String> {
    let configured = s
        .initial
        .backend
        .seeds
        .apps
        .first()
        .map(|a| a.appkey.clone());
    s.hub.with_backend(|b| {
        let mut apps = b.apps().map(|a| a.appkey.clone());
        match configured {
            Some(k) if b.apps().any(|a| a.appkey == k) => Some(k),
            _ => apps.next(),
        }
    })
}

/// What a device needs to log in: the app's secret and the user's password hash.
struct Credentials {
    key: UserKey,
    secret: String,
    password_md5: String,
}

fn credentials(s: &AdminState, user: &str, appkey: Option<String>) -> Result<Credentials, String> {
    let appkey = match appkey {
        Some(k) => k,
        None => default_appkey(s).ok_or("the server has no app")?,
    };
    let key = UserKey::new(&appkey, user);
    s.hub.read_backend(|b, _, _| {
        let Some(app) = b.apps().find(|a| a.appkey == appkey) else {
            let known: Vec<&str> = b.apps().map(|a| a.appkey.as_str()).collect();
            let hint = crate::scenario::suggest(&appkey, known).unwrap_or_default();
            return Err(format!("unknown appkey {appkey:?} {hint}")
                .trim()
                .to_owned());
        };
        let Some(u) = b.user(&key) else {
            let names = b.usernames(&appkey);
            let hint = crate::scenario::suggest(user, names.iter().map(String::as_str))
                .unwrap_or_default();
            return Err(format!("no user {user:?} in app {appkey} {hint}")
                .trim()
                .to_owned());
        };
        Ok(Credentials {
            key: key.clone(),
            secret: app.secret.clone(),
            password_md5: u.password_md5.clone(),
        })
    })
}

fn check_method(method: &str) -> Result<(), String> {
    if method.starts_with("on") && !METHODS.contains(&method) {
        // Listeners would queue deliveries that nobody reads.
        return Err(format!(
            "{method} is a listener: watch GET /__admin/events instead"
        ));
    }
    if LIFECYCLE.contains(&method) {
        return Err(format!(
            "{method} is not available: act keeps the device session logged in itself"
        ));
    }
    if METHODS.contains(&method) {
        return Ok(());
    }
    let hint = crate::scenario::suggest(method, METHODS.iter().copied()).unwrap_or_default();
    Err(format!("unknown method {method:?} {hint}")
        .trim()
        .to_owned())
}

/// `POST /__admin/act`.
pub(crate) async fn act(State(s): State<AdminState>, body: axum::body::Bytes) -> Response {
    let req: ActRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            return bad(format!(
                "expected {{\"as\": USER, \"appkey\"?: APPKEY, \"method\": METHOD, \"args\": {{…}}}}: {e}"
            ))
        }
    };
    if let Err(e) = check_method(&req.method) {
        return bad(e);
    }
    let args = match req.args {
        None | Some(Value::Null) => vec![],
        Some(Value::Array(a)) => a,
        Some(o @ Value::Object(_)) => vec![o],
        Some(other) => return bad(format!("args must be an object (or a list), not {other}")),
    };
    let cred = match credentials(&s, &req.user, req.appkey) {
        Ok(c) => c,
        Err(e) => return bad(e),
    };
    let device = s.devices.device(&cred.key);
    let mut slot = device.sdk.lock().await;
    if let Err(e) = ensure_logged_in(&s, &mut slot, &cred).await {
        return (StatusCode::BAD_GATEWAY, Json(json!({"error": e}))).into_response();
    }
    let Some(sdk) = slot.as_ref() else {
        return (
            StatusCode::BAD_GATEWAY,
            Json(json!({"error": "no device session"})),
        )
            .into_response();
    };
    let outcome = tokio::time::timeout(CALL_LIMIT, sdk.call(&req.method, &args)).await;
    sdk.trim_records();
    match outcome {
        Err(_) => Json(json!({"callback": "timeout", "data": null})).into_response(),
        Ok(Err(SdkError::UnknownMethod(m))) => bad(format!("unknown method {m:?}")),
        Ok(Err(e)) => {
            *slot = None;
            (
                StatusCode::BAD_GATEWAY,
                Json(json!({"error": e.to_string()})),
            )
                .into_response()
        }
        Ok(Ok(call)) => answer(call),
    }
}

/// The SDK callback as JSON.
fn answer(call: SdkCall) -> Response {
    match call {
        SdkCall::Callbacks(c) => {
            if let Some(args) = c.success {
                let data = args.first().cloned().unwrap_or(Value::Null);
                let mut out = json!({"callback": "success", "data": data});
                if args.len() > 1 {
                    out["args"] = Value::Array(args);
                }
                Json(out).into_response()
            } else if let Some(f) = c.fail {
                Json(json!({"callback": "fail", "data": f})).into_response()
            } else if let Some(t) = c.timeout {
                Json(json!({"callback": "timeout", "data": t})).into_response()
            } else {
                // The SDK calls nothing back (a dereferenced field is missing).
                Json(json!({"callback": null, "data": null})).into_response()
            }
        }
        SdkCall::Returned(v) => Json(json!({"callback": "returned", "data": v})).into_response(),
        SdkCall::Thrown(t) => bad(format!("the SDK throws: {t}")),
        SdkCall::Ignored(why) => bad(format!("bad arguments: {why}")),
    }
}

/// Connects and logs the device in unless it already is.
async fn ensure_logged_in(
    s: &AdminState,
    slot: &mut Option<SdkInstance>,
    cred: &Credentials,
) -> Result<(), String> {
    if slot.as_ref().is_some_and(SdkInstance::is_logged_in) {
        return Ok(());
    }
    *slot = None;
    let upload = format!("{}/resource", s.public_url);
    let sdk = SdkInstance::connect(&s.public_url, &upload, ClientConfig::default())
        .await
        .map_err(|e| format!("device session cannot connect: {e}"))?;
    let ts = s.shared_clock.now_ms().to_string();
    let random = format!("act{ts}");
    let sig = crate::protocol::sign::signature(&cred.key.appkey, &ts, &random, &cred.secret);
    let init =
        json!({"appkey": cred.key.appkey, "random_str": random, "timestamp": ts, "signature": sig});
    let r = sdk.call("init", &[init]).await.map_err(|e| e.to_string())?;
    if r.success().is_none() {
        return Err(format!("device init failed: {r:?}"));
    }
    let login = json!({"username": cred.key.username, "password": cred.password_md5,
        "is_md5": true, "platform": DEVICE_PLATFORM});
    let r = sdk
        .call("login", &[login])
        .await
        .map_err(|e| e.to_string())?;
    if r.success().is_none() {
        return Err(format!("device login failed: {r:?}"));
    }
    *slot = Some(sdk);
    Ok(())
}
