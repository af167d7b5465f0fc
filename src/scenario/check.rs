//! The cross-checks of a scenario after it parsed: every fault, step and expectation
//! names only users, clients, events and faults that exist, each refusal with the word's
//! line and column and a suggestion. Split from `Loader::check_scenario` by what is checked.

use super::model::{Expectation, Fixtures, Step};
use super::{api, config, diag, faults, suggest, Diagnostic, FaultSpec, Loader, ScenarioFile};
use serde_saphyr::Spanned;
use std::collections::BTreeSet;

/// What a scenario defines, for the checks to look names up in.
pub(super) struct Names<'a> {
    pub text: &'a str,
    pub file: &'a str,
    /// Users of the fixtures and of `register` steps.
    pub usernames: BTreeSet<String>,
    /// Request and push names of the protocol.
    pub events: Vec<&'a str>,
    /// Ids of the scenario's faults (filled by `check_faults`).
    pub fault_ids: BTreeSet<String>,
}

/// The users the fixtures define, to check the names other fixtures use.
pub(super) struct FixtureUsers<'a> {
    pub users: BTreeSet<(String, String)>,
    pub text: &'a str,
    pub file: &'a str,
}

impl FixtureUsers<'_> {
    /// Refuses `name` in `app` unless a fixture defines that user; `what` names the fixture.
    pub fn check(
        &self,
        errors: &mut Vec<Diagnostic>,
        loc: &serde_saphyr::Location,
        app: &str,
        name: &str,
        what: &str,
    ) {
        if self.users.contains(&(app.to_owned(), name.to_owned())) {
            return;
        }
        let known = self
            .users
            .iter()
            .filter(|(a, _)| a == app)
            .map(|(_, u)| u.as_str());
        let (line, column) = super::locate(self.text, loc, name);
        errors.push(Diagnostic {
            file: self.file.into(),
            line,
            column,
            message: format!("{what} names user {name:?}, which no fixture defines"),
            hint: suggest(name, known),
        });
    }
}

/// Adds the embedded demo users, groups, rooms and friendships (`demo_data: true`).
pub(super) fn add_demo_data(fx: &mut Fixtures) {
    let app = fx
        .apps
        .first()
        .map(|a| a.appkey.clone())
        .unwrap_or_else(|| config::DEFAULT_APPKEY.to_owned());
    let demo = config::backend_config(None, Some(&app), fx.apps.first().map(|a| a.secret.as_str()));
    let loc = serde_saphyr::Location::UNKNOWN;
    for u in demo.seeds.users {
        fx.users.push(Spanned::new(u, loc, loc));
    }
    for g in demo.seeds.groups {
        fx.groups.push(Spanned::new(g, loc, loc));
    }
    fx.rooms.extend(demo.seeds.rooms);
    for f in demo.seeds.friends {
        fx.friends.push(Spanned::new(f, loc, loc));
    }
}

impl Loader {
    /// Fault ids are unique and valid; their users and events exist.
    pub(super) fn check_faults(&mut self, n: &mut Names, faults: &[Spanned<FaultSpec>]) {
        for f in faults {
            let v = &f.value;
            if !n.fault_ids.insert(v.id.clone()) {
                self.error_at(
                    n.text,
                    n.file,
                    &f.referenced,
                    &v.id,
                    format!("fault id {:?} is used twice", v.id),
                    None,
                );
            }
            if let Err(e) = faults::validate(v) {
                self.errors.push(diag(
                    n.file,
                    &f.referenced,
                    format!("fault {:?}: {e}", v.id),
                    None,
                ));
            }
            if let Some(u) = &v.when.user {
                if !n.usernames.contains(u) {
                    self.error_at(
                        n.text,
                        n.file,
                        &f.referenced,
                        u,
                        format!("fault {:?} names user {u:?}, which no fixture or register step defines", v.id),
                        suggest(u, n.usernames.iter().map(String::as_str)),
                    );
                }
            }
            for e in &v.when.event {
                if !n.events.contains(&e.as_str()) {
                    self.error_at(
                        n.text,
                        n.file,
                        &f.referenced,
                        e,
                        format!(
                            "fault {:?} names event {e:?}, which the protocol does not have",
                            v.id
                        ),
                        suggest(e, n.events.iter().copied()),
                    );
                }
            }
        }
    }

    /// Every step uses an open client, known names and a valid API call.
    pub(super) fn check_steps(&mut self, n: &Names, steps: &[Spanned<Step>]) {
        let mut clients = BTreeSet::new();
        for s in steps {
            self.check_step_client(n, s, &mut clients);
            for p in api::check_step(&s.value) {
                self.error_at(n.text, n.file, &s.referenced, &p.word, p.message, p.hint);
            }
            self.check_step_names(n, s);
        }
    }

    /// The client a step uses was opened before; `connect`/`create` open one.
    fn check_step_client(&mut self, n: &Names, s: &Spanned<Step>, clients: &mut BTreeSet<String>) {
        let client = match &s.value {
            // A refused connect leaves no client behind.
            Step::Connect { refused: true, .. } => None,
            Step::Connect { client, .. } | Step::Create { client } => {
                clients.insert(client.clone());
                None
            }
            Step::Call { client, .. }
            | Step::Listen { client, .. }
            | Step::ExpectListener { client, .. } => Some(client),
            Step::AdvanceTimers(_) | Step::Settle(_) => None,
            Step::Init { client, .. }
            | Step::Register { client, .. }
            | Step::Login { client, .. }
            | Step::SendText { client, .. }
            | Step::Request { client, .. }
            | Step::ExpectPush { client, .. }
            | Step::NoPush { client, .. }
            | Step::Disconnect { client, .. }
            | Step::ExpectClosed { client, .. } => Some(client),
            Step::FaultOn(id) | Step::FaultOff(id) => {
                if !n.fault_ids.contains(id) {
                    self.error_at(
                        n.text,
                        n.file,
                        &s.referenced,
                        id,
                        format!("step switches fault {id:?}, which this scenario does not define"),
                        suggest(id, n.fault_ids.iter().map(String::as_str)),
                    );
                }
                None
            }
            Step::AdvanceClock(_) | Step::WaitMs(_) | Step::AsDevice { .. } => None,
        };
        if let Some(c) = client {
            if !clients.contains(c) {
                self.error_at(
                    n.text,
                    n.file,
                    &s.referenced,
                    c,
                    format!("client {c:?} is used before a connect or create step opens it"),
                    suggest(c, clients.iter().map(String::as_str)),
                );
            }
        }
    }

    /// The events, users and devices a step names exist.
    fn check_step_names(&mut self, n: &Names, s: &Spanned<Step>) {
        match &s.value {
            Step::Request { event, .. }
            | Step::ExpectPush { event, .. }
            | Step::NoPush { event, .. }
                if !n.events.contains(&event.as_str()) =>
            {
                self.error_at(
                    n.text,
                    n.file,
                    &s.referenced,
                    event,
                    format!("unknown event {event:?}"),
                    suggest(event, n.events.iter().copied()),
                );
            }
            Step::AsDevice {
                user,
                platform,
                event,
                expect,
                ..
            } => self.check_as_device(
                n.text,
                n.file,
                &s.referenced,
                (user, platform, event, expect),
                &n.usernames,
                &n.events,
            ),
            Step::SendText { to, .. } if !n.usernames.contains(to) => {
                self.error_at(
                    n.text,
                    n.file,
                    &s.referenced,
                    to,
                    format!("send_text to user {to:?}, which no fixture or register step defines"),
                    suggest(to, n.usernames.iter().map(String::as_str)),
                );
            }
            _ => {}
        }
    }

    /// Expectations name only faults and events that exist.
    pub(super) fn check_expectations(&mut self, n: &Names, expect: &[Spanned<Expectation>]) {
        for x in expect {
            if let Some(f) = x.value.filter() {
                if let Some(id) = f.fault.as_ref().filter(|id| !n.fault_ids.contains(*id)) {
                    self.error_at(
                        n.text,
                        n.file,
                        &x.referenced,
                        id,
                        format!(
                            "expectation names fault {id:?}, which this scenario does not define"
                        ),
                        suggest(id, n.fault_ids.iter().map(String::as_str)),
                    );
                }
                if let Some(e) = f.event.as_ref().filter(|e| !n.events.contains(&e.as_str())) {
                    self.error_at(
                        n.text,
                        n.file,
                        &x.referenced,
                        e,
                        format!("expectation names unknown event {e:?}"),
                        suggest(e, n.events.iter().copied()),
                    );
                }
            }
        }
    }

    /// `time_scale` is in range and `breaks` names known protocol rules.
    pub(super) fn check_settings(&mut self, file: &str, sf: &ScenarioFile) {
        if let Some(t) = sf.time_scale {
            if !(t > 0.0 && t <= 10.0) {
                self.errors.push(Diagnostic {
                    file: file.into(),
                    line: 1,
                    column: 1,
                    message: format!("time_scale must be in (0, 10], not {t}"),
                    hint: None,
                });
            }
        }
        for b in sf
            .breaks
            .iter()
            .filter(|b| crate::oracle::rules::rule(b).is_none())
        {
            self.errors.push(Diagnostic {
                file: file.into(),
                line: 1,
                column: 1,
                message: format!("breaks names unknown protocol rule {b:?}"),
                hint: Some("rule ids are listed in docs/rules.md, e.g. JMP-ORDER-002".into()),
            });
        }
    }
}
