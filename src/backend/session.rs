//! `c_init`, `register` and `login` (protocol.md 3).

use super::limits;
use super::model::{LoginState, User, UserKey};
use super::{signature, Backend, ConnId, Outcome};
use crate::protocol::PushEvent;
use crate::protocol::{Args, Code, Failure};
use serde_json::{json, Map, Value};

/// Platforms a login may declare (the SDK never does: it is always `web`).
const PLATFORMS: &[&str] = &["web", "pc", "Android", "ios"];

/// JMessage usernames: 4-128 bytes, start with a letter or digit, then letters, digits
/// and `_ - . @`.
pub(crate) fn valid_username(s: &str) -> bool {
    let b = s.as_bytes();
    (4..=128).contains(&b.len())
        && b[0].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'-' | b'.' | b'@'))
}

fn too_long(field: &str, max: usize) -> Failure {
    Failure::new(
        Code::InvalidValue,
        format!("{field} is longer than {max} bytes"),
    )
}

/// Profile fields shared by `register` and `update_user_inf`, validated.
#[derive(Default)]
pub(crate) struct ProfilePatch {
    pub nickname: Option<String>,
    pub avatar: Option<String>,
    pub birthday: Option<String>,
    pub gender: Option<i64>,
    pub signature: Option<String>,
    pub region: Option<String>,
    pub address: Option<String>,
    pub extras: Option<Map<String, Value>>,
}

impl ProfilePatch {
    pub fn parse(a: Args<'_>, avatar_key: &str) -> Result<Self, Failure> {
        let text = |key: &str, max: usize| -> Result<Option<String>, Failure> {
            match a.opt_str(key)? {
                Some(s) if s.len() > max => Err(too_long(key, max)),
                other => Ok(other.map(str::to_owned)),
            }
        };
        let birthday = match a.get("birthday") {
            None => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(Value::Number(n)) => Some(n.to_string()),
            Some(_) => return Err(Failure::new(Code::InvalidType, "birthday must be a string")),
        };
        if let Some(b) = &birthday {
            limits::check_str("birthday", b, limits::MAX_BIRTHDAY_BYTES)?;
        }
        let extras = a.opt_obj("extras")?;
        if let Some(x) = extras {
            limits::check_obj("extras", x, limits::MAX_EXTRAS_BYTES)?;
        }
        let gender = match a.opt_i64("gender")? {
            Some(g @ 0..=2) => Some(g),
            Some(_) => return Err(Failure::new(Code::InvalidValue, "gender must be 0, 1 or 2")),
            None => None,
        };
        Ok(Self {
            nickname: text("nickname", 64)?,
            avatar: text(avatar_key, 256)?,
            birthday,
            gender,
            signature: text("signature", 250)?,
            region: text("region", 250)?,
            address: text("address", 250)?,
            extras: extras.cloned(),
        })
    }

    pub fn apply(self, u: &mut User) {
        let Self {
            nickname,
            avatar,
            birthday,
            gender,
            signature,
            region,
            address,
            extras,
        } = self;
        set(&mut u.nickname, nickname);
        set(&mut u.avatar, avatar);
        set(&mut u.birthday, birthday);
        set(&mut u.gender, gender);
        set(&mut u.signature, signature);
        set(&mut u.region, region);
        set(&mut u.address, address);
        set(&mut u.extras, extras);
    }
}

/// Normalises a password field: the SDK sends lower-case hex MD5, `is_md5` apps may
/// send their own case.
pub(crate) fn password_field(a: Args<'_>, key: &str) -> Result<String, Failure> {
    let p = a.str(key)?;
    limits::check_str(key, p, limits::MAX_PASSWORD_BYTES)?;
    Ok(p.to_ascii_lowercase())
}

impl Backend {
    pub(super) fn c_init(&mut self, conn: ConnId, a: Args<'_>) -> Result<Outcome, Failure> {
        let appkey = a.str("appkey")?;
        let random_str = a.str("random_str")?;
        let sig = a.str("signature")?;
        let timestamp = match a.get("timestamp") {
            Some(Value::String(s)) if !s.is_empty() => s.clone(),
            Some(Value::Number(n)) => n.to_string(),
            None => return Err(Failure::new(Code::Missing, "timestamp is required")),
            Some(_) => {
                return Err(Failure::new(
                    Code::InvalidType,
                    "timestamp must be a string of milliseconds",
                ))
            }
        };
        let flag = a.opt_i64("flag")?.unwrap_or(0);
        let app = self.apps.get(appkey).ok_or_else(|| {
            Failure::new(
                Code::AppkeyNotExist,
                format!("appkey {appkey} does not exist"),
            )
        })?;
        let expected = signature(appkey, &timestamp, random_str, &app.secret);
        if !expected.eq_ignore_ascii_case(sig) {
            return Err(Failure::new(
                Code::SignatureFail,
                "signature does not match md5(appkey=..&timestamp=..&random_str=..&key=secret)",
            ));
        }
        let ts: i64 = timestamp.trim().parse().map_err(|_| {
            Failure::new(
                Code::InvalidValue,
                "timestamp must be milliseconds since the epoch",
            )
        })?;
        let now = self.now_ms();
        if now - ts > self.signature_ttl_ms || ts - now > self.signature_ttl_ms {
            return Err(Failure::new(
                Code::SignatureExpired,
                format!(
                    "signature timestamp is {}s away from server time (limit {}s)",
                    (now - ts) / 1000,
                    self.signature_ttl_ms / 1000
                ),
            ));
        }
        let c = self.conns.entry(conn).or_default();
        if let Some(login) = &c.login {
            if login.user.appkey != appkey {
                return Err(Failure::new(
                    Code::RepetitiveOperation,
                    "connection is logged in under another appkey",
                ));
            }
        }
        c.appkey = Some(appkey.to_owned());
        c.sync_type = if flag == 1 { 1 } else { 0 };
        Ok(Outcome::ok_empty())
    }

    pub(super) fn register(&mut self, conn: ConnId, a: Args<'_>) -> Result<Outcome, Failure> {
        let c = self.conns.get(&conn).cloned().unwrap_or_default();
        if c.login.is_some() {
            return Err(Code::LogoutBeforeRegister.into());
        }
        let appkey = c.appkey.unwrap_or_default();
        let username = a.str("username")?;
        if !valid_username(username) {
            return Err(Failure::new(
                Code::InvalidParameter,
                "username must be 4-128 bytes of letters, digits, _ - . @ starting with a letter or digit",
            ));
        }
        let password = password_field(a, "password")?;
        let patch = ProfilePatch::parse(a, "media_id")?;
        let key = UserKey::new(appkey.clone(), username);
        if self.users.contains_key(&key) {
            return Err(Failure::new(
                Code::UserExists,
                format!("user {username} already exists"),
            ));
        }
        if let Some(max) = self.apps.get(&appkey).and_then(|app| app.max_users) {
            if self.users.keys().filter(|k| k.appkey == appkey).count() >= max {
                return Err(Code::RegisterLimit.into());
            }
        }
        let now = self.now_ms();
        let uid = self.ids.next_uid();
        let mut user = User {
            uid,
            key: key.clone(),
            password_md5: password,
            nickname: String::new(),
            avatar: String::new(),
            birthday: String::new(),
            gender: 0,
            signature: String::new(),
            region: String::new(),
            address: String::new(),
            extras: Map::new(),
            mtime_s: now / 1000,
            ctime_ms: now,
            disabled: false,
        };
        patch.apply(&mut user);
        self.uids.insert(uid, key.clone());
        self.users.insert(key, user);
        Ok(Outcome::ok_empty())
    }

    pub(super) fn login(&mut self, conn: ConnId, a: Args<'_>) -> Result<Outcome, Failure> {
        let c = self.conns.get(&conn).cloned().unwrap_or_default();
        if c.login.is_some() {
            return Err(Code::AlreadyLogin.into());
        }
        let appkey = c.appkey.unwrap_or_default();
        let username = a.str("username")?;
        let password = password_field(a, "password")?;
        let version = a.opt_str("version")?.unwrap_or("");
        limits::check_str("version", version, limits::MAX_VERSION_BYTES)?;
        let version = version.to_owned();
        let platform = match a.opt_str("platform")? {
            None => "web",
            Some(p) if PLATFORMS.contains(&p) => p,
            Some(p) => {
                return Err(Failure::new(
                    Code::InvalidValue,
                    format!("unknown platform {p}"),
                ))
            }
        };
        let key = UserKey::new(appkey, username);
        let user = self.users.get(&key).ok_or_else(|| {
            Failure::new(
                Code::UserNotExist,
                format!("user {username} does not exist"),
            )
        })?;
        if user.disabled {
            return Err(Code::UserDisabled.into());
        }
        if user.password_md5 != password {
            return Err(Code::InvalidPassword.into());
        }
        let uid = user.uid;
        let now = self.now_ms();
        let mut out = Outcome::default();
        let mut online = Vec::new();
        let mut kicked = Vec::new();
        for id in self.conns_of(&key).to_vec() {
            let Some(l) = self.conns.get(&id).and_then(|c| c.login.as_ref()) else {
                continue;
            };
            if id == conn {
                continue;
            }
            if l.platform == platform {
                kicked.push((id, l.clone()));
            } else {
                online.push(json!({"platform": l.platform, "mtime": l.since_ms, "isOnline": true, "isLogin": true, "flag": false}));
            }
        }
        for (id, l) in &kicked {
            online.push(json!({"platform": l.platform, "mtime": l.since_ms, "isOnline": false, "isLogin": false, "flag": true}));
            let ev = self.new_event(
                1,
                json!({"from_username": "", "from_appkey": "", "gid": 0, "extra": 0}),
            );
            out.push(vec![*id], PushEvent::EventNotification, ev);
            self.set_login(*id, None);
        }
        self.set_login(
            conn,
            Some(LoginState {
                user: key,
                uid,
                platform: platform.to_owned(),
                version,
                since_ms: now,
            }),
        );
        let mut fields = Map::new();
        fields.insert("online_list".into(), Value::Array(online));
        out.response = Some(crate::protocol::success(fields));
        Ok(out)
    }
}

/// Overwrites `slot` when the patch has a value for it.
fn set<T>(slot: &mut T, value: Option<T>) {
    if let Some(v) = value {
        *slot = v;
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::super::{md5_hex, signature};
    use serde_json::json;

    fn init_with(h: &mut Harness, ts: i64, sig_secret: &str, appkey: &str) -> Option<i64> {
        let ts = ts.to_string();
        let rs = "random-string-of-20+";
        h.req(1, "c_init", json!({"appkey": appkey, "random_str": rs, "timestamp": ts, "signature": signature(appkey, &ts, rs, sig_secret)})).code()
    }

    #[test]
    fn c_init_checks_appkey_signature_and_expiry() {
        let mut h = Harness::new();
        assert_eq!(init_with(&mut h, T0, SECRET, "nope"), Some(880101));
        assert_eq!(init_with(&mut h, T0, "wrong", APP), Some(880102));
        assert_eq!(init_with(&mut h, T0 - 600_001, SECRET, APP), Some(880106));
        assert_eq!(init_with(&mut h, T0 - 600_000, SECRET, APP), Some(0));
        assert_eq!(
            h.req(1, "c_init", json!({"appkey": APP})).code(),
            Some(880001)
        );
    }

    #[test]
    fn c_init_signature_is_case_insensitive_and_timestamp_may_be_a_number() {
        let mut h = Harness::new();
        let ts = T0.to_string();
        let sig = signature(APP, &ts, "abcdefghijklmnopqrst", SECRET).to_uppercase();
        let o = h.req(1, "c_init", json!({"appkey": APP, "random_str": "abcdefghijklmnopqrst", "timestamp": T0, "signature": sig}));
        assert_eq!(o.code(), Some(0));
    }

    #[test]
    fn signature_expires_with_virtual_time() {
        let mut h = Harness::new();
        let ts = T0.to_string();
        h.clock.advance_ms(10 * 60 * 1000 + 1);
        let o = h.req(1, "c_init", json!({"appkey": APP, "random_str": "r", "timestamp": ts, "signature": signature(APP, &ts, "r", SECRET)}));
        assert_eq!(o.code(), Some(880106));
    }

    #[test]
    fn register_validates_and_rejects_duplicates() {
        let mut h = Harness::new();
        h.init(1, APP, SECRET);
        let ok = h.req(1, "register", json!({"username": "alice", "password": md5_hex("pw"), "nickname": "Alice", "gender": 2, "extras": {"k": "v"}, "birthday": "1990-01-01", "region": "r", "address": "a", "signature": "s"}));
        assert_eq!(ok.code(), Some(0));
        let u = h.b.user(&super::UserKey::new(APP, "alice")).unwrap();
        assert_eq!(u.nickname, "Alice");
        assert_eq!(u.gender, 2);
        assert_eq!(u.extras["k"], json!("v"));
        let dup = h.req(
            1,
            "register",
            json!({"username": "alice", "password": md5_hex("pw")}),
        );
        assert_eq!(dup.code(), Some(898001));
        for (payload, code) in [
            (json!({"password": "x"}), 880001),
            (json!({"username": "ab", "password": "x"}), 880002),
            (json!({"username": "_bad", "password": "x"}), 880002),
            (
                json!({"username": "bob1", "password": "x", "gender": 5}),
                880003,
            ),
            (
                json!({"username": "bob1", "password": "x", "extras": "no"}),
                880004,
            ),
            (json!({"username": "bob1"}), 880001),
            (
                json!({"username": "bob1", "password": "x", "nickname": "n".repeat(65)}),
                880003,
            ),
        ] {
            assert_eq!(
                h.req(1, "register", payload.clone()).code(),
                Some(code),
                "{payload}"
            );
        }
    }

    #[test]
    fn register_limit_per_app() {
        let mut h = Harness::new();
        h.init(1, APP2, "s2");
        assert_eq!(
            h.req(1, "register", json!({"username": "u001", "password": "x"}))
                .code(),
            Some(0)
        );
        assert_eq!(
            h.req(1, "register", json!({"username": "u002", "password": "x"}))
                .code(),
            Some(880007)
        );
    }

    #[test]
    fn login_errors() {
        let mut h = Harness::new();
        h.register(1, "alice");
        assert_eq!(
            h.req(
                1,
                "login",
                json!({"username": "nobody", "password": md5_hex("pw")})
            )
            .code(),
            Some(880103)
        );
        assert_eq!(
            h.req(
                1,
                "login",
                json!({"username": "alice", "password": md5_hex("no")})
            )
            .code(),
            Some(880104)
        );
        // is_md5 apps may send upper case.
        let ok = h.req(
            1,
            "login",
            json!({"username": "alice", "password": md5_hex("pw").to_uppercase(), "is_md5": true}),
        );
        assert_eq!(ok.code(), Some(0));
        assert_eq!(resp(&ok)["online_list"], json!([]));
        assert_eq!(
            h.req(1, "register", json!({"username": "carol", "password": "x"}))
                .code(),
            Some(880006)
        );
    }

    #[test]
    fn second_web_login_kicks_the_first_with_event_1() {
        let mut h = Harness::new();
        h.user(1, "alice");
        h.init(2, APP, SECRET);
        let o = h.req(
            2,
            "login",
            json!({"username": "alice", "password": md5_hex("pw")}),
        );
        assert_eq!(o.code(), Some(0));
        assert_eq!(o.pushes.len(), 1);
        assert_eq!(o.pushes[0].to, vec![1]);
        assert_eq!(o.pushes[0].event, "event_notification");
        assert_eq!(o.pushes[0].payload["event_type"], json!(1));
        assert_eq!(o.pushes[0].payload["extra"], json!(0));
        assert_eq!(resp(&o)["online_list"][0]["flag"], json!(true));
        assert!(h.b.conn_user(1).is_none());
        // A pc login does not kick the web one and shows up in online_list.
        h.init(3, APP, SECRET);
        let pc = h.req(
            3,
            "login",
            json!({"username": "alice", "password": md5_hex("pw"), "platform": "pc"}),
        );
        assert!(pc.pushes.is_empty());
        assert_eq!(resp(&pc)["online_list"][0]["platform"], json!("web"));
        assert_eq!(resp(&pc)["online_list"][0]["isOnline"], json!(true));
    }
}
