//! Carrying live connections over to a replacement backend (a scenario loaded at run
//! time): a connection keeps its login when the new state still has its user with the
//! same uid and app, and its `c_init` when the app still exists; otherwise the server
//! closes it. docs/admin-api.md, "Load a scenario".

use super::model::Conn;
use super::{Backend, ConnId};

/// What became of one connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Adoption {
    /// Carried over (logged in as before when it was).
    Kept,
    /// The new state cannot hold it: close it, for this reason.
    Closed(String),
}

/// A connection's state in the backend it leaves.
#[derive(Debug, Clone)]
pub struct Departing {
    conn: Conn,
    uid: Option<u64>,
}

impl Departing {
    /// The username the connection is logged in as, if any.
    pub fn username(&self) -> Option<&str> {
        self.conn.login.as_ref().map(|l| l.user.username.as_str())
    }
}

impl Backend {
    /// The state of `conn`, to hand to [`Backend::adopt`] on a replacement.
    pub fn departing(&self, conn: ConnId) -> Option<Departing> {
        let c = self.conns.get(&conn)?.clone();
        let uid = c
            .login
            .as_ref()
            .and_then(|l| self.user(&l.user))
            .map(|u| u.uid);
        Some(Departing { conn: c, uid })
    }

    /// Takes over a connection from the backend this one replaces, when the state
    /// allows it. A paged conversation sync in progress is forgotten.
    pub fn adopt(&mut self, conn: ConnId, d: Departing) -> Adoption {
        let Departing {
            conn: mut conn_state,
            uid,
        } = d;
        if let Some(k) = &conn_state.appkey {
            if !self.apps.contains_key(k) {
                return Adoption::Closed(format!("app {k} is not in the new state"));
            }
        }
        if let Some(l) = &conn_state.login {
            match self.user(&l.user) {
                None => {
                    return Adoption::Closed(format!(
                        "user {} is not in the new state",
                        l.user.username
                    ))
                }
                Some(u) if Some(u.uid) != uid => {
                    return Adoption::Closed(format!(
                        "user {} has another uid in the new state",
                        l.user.username
                    ))
                }
                Some(u) if u.disabled => {
                    return Adoption::Closed(format!("user {} is disabled", l.user.username))
                }
                Some(_) => {}
            }
        }
        conn_state.sync_cursor = None;
        self.insert_conn(conn, conn_state);
        Adoption::Kept
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::*;
    use crate::backend::UserSeed;

    /// A fresh backend of `users` (app APP, password pw), in that order.
    fn replacement(users: &[&str], with_app: bool) -> Backend {
        let mut cfg = Harness::config();
        if !with_app {
            cfg.seeds.apps.retain(|a| a.appkey != APP);
        }
        cfg.seeds.users = users
            .iter()
            .map(|u| UserSeed::new(APP, u, "pw", u))
            .collect();
        Harness::with_config(cfg).b
    }

    #[test]
    fn logins_survive_when_user_uid_and_app_do() {
        let mut h = Harness::new();
        h.user(1, "alice");
        h.user(2, "bobby");
        h.b.connect(3);
        assert_eq!(h.init(3, APP, SECRET).code(), Some(0));
        h.b.connect(4);
        let mut next = replacement(&["alice"], true);
        for c in 1..=4 {
            let d = h.b.departing(c).expect("conn");
            let out = next.adopt(c, d);
            match c {
                1 | 3 | 4 => assert_eq!(out, Adoption::Kept, "conn {c}"),
                _ => assert!(
                    matches!(out, Adoption::Closed(ref w) if w.contains("bobby")),
                    "{out:?}"
                ),
            }
        }
        assert_eq!(
            next.conn_user(1).map(|u| u.username.as_str()),
            Some("alice")
        );
        assert_eq!(next.conn_user(3), None);
        // The kept login works in the new state.
        h.b = next;
        let r = h.req(
            1,
            "get_across_user_info",
            serde_json::json!({"username": "alice", "appkey": APP}),
        );
        assert_eq!(r.code(), Some(0), "{r:?}");
    }

    #[test]
    fn another_uid_or_a_missing_app_closes() {
        let mut h = Harness::new();
        h.user(1, "alice");
        // carol takes alice's uid in the new state: alice's uid changes.
        let mut next = replacement(&["carol", "alice"], true);
        let out = next.adopt(1, h.b.departing(1).expect("conn"));
        assert!(
            matches!(out, Adoption::Closed(ref w) if w.contains("uid")),
            "{out:?}"
        );
        let mut next = replacement(&[], false);
        let out = next.adopt(1, h.b.departing(1).expect("conn"));
        assert!(
            matches!(out, Adoption::Closed(ref w) if w.contains("app")),
            "{out:?}"
        );
    }
}
