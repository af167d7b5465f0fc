//! Scenario files: load (with fixture includes), validate with file/line/column
//! diagnostics, and turn into server state and fault rules. Nothing in a bad file is
//! half-applied: [`load`] returns either a whole [`Scenario`] or every error.

pub(crate) mod api;
mod check;
pub(crate) mod files;
pub mod model;
pub(crate) mod record;
pub mod schema;
pub(crate) mod shape;

pub use files::FileAccess;

pub use model::{Expectation, ExpectedReply, FrameFilter, ScenarioFile, Step, TransportSpec};

use crate::backend::{AppConfig, BackendConfig, Seeds};
use crate::config;
use crate::faults::{self, FaultSpec};
use crate::protocol::Event;
use model::Fixtures;
use serde_saphyr::Spanned;
use std::collections::BTreeSet;
use std::fmt;
use std::path::{Path, PathBuf};

/// A problem in a file, at a position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub file: String,
    pub line: u64,
    pub column: u64,
    pub message: String,
    pub hint: Option<String>,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.file, self.line, self.column, self.message
        )?;
        if let Some(h) = &self.hint {
            write!(f, "\n  hint: {h}")?;
        }
        Ok(())
    }
}

/// A loaded, valid scenario.
#[derive(Debug, Clone)]
pub struct Scenario {
    pub id: Option<String>,
    pub name: String,
    pub description: String,
    pub spec: Option<String>,
    pub file: String,
    /// The state the server starts from.
    pub seeds: Seeds,
    pub fault_specs: Vec<FaultSpec>,
    pub time_scale: f64,
    /// Protocol rules the clients break on purpose (see the file field).
    pub breaks: Vec<String>,
    /// A failure is graded informational.
    pub informational: bool,
    pub steps: Vec<Step>,
    pub expect: Vec<Expectation>,
}

impl Scenario {
    /// The server state the scenario starts from.
    pub fn backend_config(&self) -> BackendConfig {
        BackendConfig {
            seeds: self.seeds.clone(),
            signature_ttl_ms: crate::protocol::sign::SIGNATURE_TTL_MS,
            history: Default::default(),
        }
    }

    /// The fault rules the scenario starts with.
    pub fn faults(&self) -> Vec<FaultSpec> {
        self.fault_specs.clone()
    }
}

/// Names of server pushes (valid `event` values in fault rules besides request events).
pub const PUSH_EVENTS: &[&str] = &[
    "ack",
    "msg_sync",
    "event_notification",
    "sync_conversation",
    "sync_event",
    "sync_receipt",
    "receipt_change",
    "trans_msg_rec",
    "room_msg_sync",
    "room_msg_sync_his",
];

fn diag(
    file: &str,
    loc: &serde_saphyr::Location,
    message: impl Into<String>,
    hint: Option<String>,
) -> Diagnostic {
    Diagnostic {
        file: file.to_owned(),
        line: loc.line(),
        column: loc.column(),
        message: message.into(),
        hint,
    }
}

fn parse_error(file: &str, e: &serde_saphyr::Error) -> Diagnostic {
    let (line, column) = e
        .location()
        .map(|l| (l.line(), l.column()))
        .unwrap_or((1, 1));
    // The library's message may repeat the snippet; keep its first line.
    let text = e.to_string();
    let message = text.lines().next().unwrap_or("invalid YAML").to_owned();
    Diagnostic {
        file: file.to_owned(),
        line,
        column,
        message,
        hint: None,
    }
}

/// Edit distance, for "did you mean" hints.
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur.push((prev[j + 1] + 1).min(cur[j] + 1).min(prev[j] + cost));
        }
        prev = cur;
    }
    prev[b.len()]
}

pub(crate) fn suggest<'a>(word: &str, known: impl IntoIterator<Item = &'a str>) -> Option<String> {
    let mut all: Vec<&str> = known.into_iter().collect();
    all.sort();
    all.dedup();
    let best = all.iter().map(|k| (distance(word, k), *k)).min();
    match best {
        Some((d, k)) if d <= 3.max(word.len() / 3) => Some(format!("did you mean {k:?}?")),
        _ if all.is_empty() => None,
        _ if all.len() <= 12 => Some(format!("known: {}", all.join(", "))),
        _ => None,
    }
}

fn locate_in(_file: &str, loc: &serde_saphyr::Location) -> (u64, u64) {
    (loc.line(), loc.column())
}

/// Finds `needle` at or after `loc` in `text`, for a precise position of a value inside
/// a located node.
fn locate(text: &str, loc: &serde_saphyr::Location, needle: &str) -> (u64, u64) {
    let start = loc.line().max(1) as usize;
    for (i, line) in text.lines().enumerate().skip(start - 1) {
        if let Some(c) = line.find(needle) {
            return (i as u64 + 1, line[..c].chars().count() as u64 + 1);
        }
    }
    (loc.line(), loc.column())
}

struct Loader {
    errors: Vec<Diagnostic>,
    visiting: Vec<PathBuf>,
    /// Which files `include:` and media `file:` may read.
    access: FileAccess,
}

/// A file's display name and text, or a diagnostic saying why it cannot be read.
fn read_file(path: &Path) -> Result<(String, String), Vec<Diagnostic>> {
    let file = path.display().to_string();
    match std::fs::read_to_string(path) {
        Ok(text) => Ok((file, text)),
        Err(e) => Err(vec![Diagnostic {
            file,
            line: 1,
            column: 1,
            message: format!("cannot read: {e}"),
            hint: None,
        }]),
    }
}

/// Reads and validates a scenario file (and the fixture files it includes).
pub fn load(path: &Path) -> Result<Scenario, Vec<Diagnostic>> {
    let (file, text) = read_file(path)?;
    parse_at(&text, &file, path.parent(), FileAccess::Local)
}

/// Parses and validates scenario text; includes are resolved from the current directory.
pub fn parse(text: &str, file: &str) -> Result<Scenario, Vec<Diagnostic>> {
    parse_at(text, file, None, FileAccess::Local)
}

/// Parses and validates scenario text whose file reads `access` limits (the admin API:
/// [`FileAccess::Denied`], or [`FileAccess::Under`] its files root, which relative paths
/// start from).
pub fn parse_with(
    text: &str,
    file: &str,
    access: &FileAccess,
) -> Result<Scenario, Vec<Diagnostic>> {
    parse_at(text, file, None, access.clone())
}

fn parse_at(
    text: &str,
    file: &str,
    dir: Option<&Path>,
    access: FileAccess,
) -> Result<Scenario, Vec<Diagnostic>> {
    let sf: ScenarioFile = serde_saphyr::from_str(text).map_err(|e| {
        let all = shape::scenario_errors(text, file);
        if all.is_empty() {
            vec![parse_error(file, &e)]
        } else {
            all
        }
    })?;
    let mut l = Loader {
        errors: Vec::new(),
        visiting: Vec::new(),
        access,
    };
    let mut fx = Fixtures::default();
    for inc in sf.include.iter().chain(&sf.fixtures.include) {
        l.include(file, dir, inc, &mut fx);
    }
    let mut own = sf.fixtures.clone();
    l.read_media(file, dir, &mut own);
    l.merge(&mut fx, own);
    let scenario = l.check_scenario(text, file, sf, fx);
    if l.errors.is_empty() {
        Ok(scenario)
    } else {
        Err(l.errors)
    }
}

/// Validates a fixture file on its own (the `check` command).
pub fn check_fixture_file(path: &Path) -> Result<(), Vec<Diagnostic>> {
    let (file, text) = read_file(path)?;
    let mut f: Fixtures = serde_saphyr::from_str(&text).map_err(|e| {
        let all = shape::fixture_errors(&text, &file);
        if all.is_empty() {
            vec![parse_error(&file, &e)]
        } else {
            all
        }
    })?;
    let mut l = Loader {
        errors: Vec::new(),
        visiting: vec![path.to_path_buf()],
        access: FileAccess::Local,
    };
    let mut fx = Fixtures::default();
    for inc in &f.include {
        l.include(&file, path.parent(), inc, &mut fx);
    }
    l.read_media(&file, path.parent(), &mut f);
    l.merge(&mut fx, f);
    l.resolve_fixtures(&text, &file, &mut fx);
    if l.errors.is_empty() {
        Ok(())
    } else {
        Err(l.errors)
    }
}

/// Platforms an `as_device` step may name (the login platforms, any case).
const DEVICE_PLATFORMS: &[&str] = &["android", "ios", "pc", "web"];

impl Loader {
    /// The references of an `as_device` step: a defined user, a known platform, a request
    /// event, and a response code as the expectation.
    fn check_as_device(
        &mut self,
        text: &str,
        file: &str,
        loc: &serde_saphyr::Location,
        (user, platform, event, expect): (&String, &String, &String, &Option<ExpectedReply>),
        usernames: &BTreeSet<String>,
        events: &[&str],
    ) {
        if !usernames.contains(user) {
            self.error_at(
                text,
                file,
                loc,
                user,
                format!("as_device names user {user:?}, which no fixture or register step defines"),
                suggest(user, usernames.iter().map(String::as_str)),
            );
        }
        if !DEVICE_PLATFORMS.contains(&platform.to_ascii_lowercase().as_str()) {
            self.error_at(
                text,
                file,
                loc,
                platform,
                format!("as_device platform {platform:?} is not one of android, ios, pc, web"),
                suggest(platform, DEVICE_PLATFORMS.iter().copied()),
            );
        }
        let requests: Vec<&str> = Event::ALL.iter().map(|e| e.wire()).collect();
        if !requests.contains(&event.as_str()) {
            let hint = suggest(event, requests.iter().copied());
            let message = if events.contains(&event.as_str()) {
                format!("as_device event {event:?} is a push, not a request")
            } else {
                format!("as_device names unknown request event {event:?}")
            };
            self.error_at(text, file, loc, event, message, hint);
        }
        if let Some(x) = expect
            .as_ref()
            .filter(|x| !matches!(x, ExpectedReply::Code(_)))
        {
            self.error_at(
                text,
                file,
                loc,
                "expect",
                format!("as_device expects a response code ({{code: N}}), not {x:?}"),
                None,
            );
        }
    }

    /// Records an error at `needle`'s position at or after `loc`.
    fn error_at(
        &mut self,
        text: &str,
        file: &str,
        loc: &serde_saphyr::Location,
        needle: &str,
        message: String,
        hint: Option<String>,
    ) {
        let (line, column) = locate(text, loc, needle);
        self.errors.push(Diagnostic {
            file: file.into(),
            line,
            column,
            message,
            hint,
        });
    }

    fn include(
        &mut self,
        file: &str,
        dir: Option<&Path>,
        inc: &Spanned<String>,
        into: &mut Fixtures,
    ) {
        let path = match self.access.resolve(dir, &inc.value, "include") {
            Ok(p) => p,
            Err(r) => {
                self.errors
                    .push(diag(file, &inc.referenced, r.message, Some(r.hint)));
                return;
            }
        };
        if self.visiting.len() >= files::MAX_INCLUDE_DEPTH {
            self.errors.push(diag(
                file,
                &inc.referenced,
                format!(
                    "includes nest deeper than {} files at {}",
                    files::MAX_INCLUDE_DEPTH,
                    inc.value
                ),
                Some("is there an include cycle?".into()),
            ));
            return;
        }
        if self.visiting.contains(&path) {
            self.errors.push(diag(
                file,
                &inc.referenced,
                format!("include cycle through {}", inc.value),
                None,
            ));
            return;
        }
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) => {
                self.errors.push(diag(
                    file,
                    &inc.referenced,
                    format!("cannot include {}: {e}", inc.value),
                    Some("paths are relative to the including file".into()),
                ));
                return;
            }
        };
        let inc_file = path.display().to_string();
        match serde_saphyr::from_str::<Fixtures>(&text) {
            Ok(mut f) => {
                self.read_media(&inc_file, path.parent(), &mut f);
                self.visiting.push(path.clone());
                for nested in &f.include {
                    self.include(&inc_file, path.parent(), nested, into);
                }
                self.visiting.pop();
                self.merge(into, f);
            }
            Err(e) => self.errors.push(self.included_parse_error(&inc_file, &e)),
        }
    }

    /// A parse error in an included file. Over the admin API it keeps only the position:
    /// the library's message may quote the file's text.
    fn included_parse_error(&self, inc_file: &str, e: &serde_saphyr::Error) -> Diagnostic {
        let mut d = parse_error(inc_file, e);
        if !self.access.is_local() {
            d.message = "not a valid fixtures file".into();
            d.hint = Some("the parser's details are not shown for files read over the admin API; run `jmessage-mock check` on the file".into());
        }
        d
    }

    fn merge(&mut self, into: &mut Fixtures, f: Fixtures) {
        into.apps.extend(f.apps);
        into.users.extend(f.users);
        into.groups.extend(f.groups);
        into.rooms.extend(f.rooms);
        into.friends.extend(f.friends);
        into.messages.extend(f.messages);
        into.media.extend(f.media);
        into.blacklists.extend(f.blacklists);
    }

    /// Reads `file:` media contents (relative to the file that names them) into base64,
    /// so a loaded scenario needs no file system.
    fn read_media(&mut self, file: &str, dir: Option<&Path>, fx: &mut Fixtures) {
        use base64::Engine as _;
        for m in &mut fx.media {
            let sources = [
                m.value.text.is_some(),
                m.value.base64.is_some(),
                m.value.file.is_some(),
            ];
            if sources.iter().filter(|s| **s).count() != 1 {
                self.errors.push(diag(
                    file,
                    &m.referenced,
                    "a media entry needs exactly one of text, base64 or file",
                    None,
                ));
                continue;
            }
            if let Some(rel) = m.value.file.take() {
                let path = match self.access.resolve(dir, &rel, "media file") {
                    Ok(p) => p,
                    Err(r) => {
                        self.errors
                            .push(diag(file, &m.referenced, r.message, Some(r.hint)));
                        continue;
                    }
                };
                match std::fs::read(&path) {
                    Ok(bytes) => {
                        m.value.base64 =
                            Some(base64::engine::general_purpose::STANDARD.encode(bytes))
                    }
                    Err(e) => self.errors.push(diag(
                        file,
                        &m.referenced,
                        format!("cannot read media file {rel}: {e}"),
                        Some("paths are relative to the file that names them".into()),
                    )),
                }
            }
            if !matches!(m.value.kind.as_str(), "image" | "file") {
                let (line, column) = locate_in(file, &m.referenced);
                self.errors.push(Diagnostic {
                    file: file.into(),
                    line,
                    column,
                    message: format!("media kind must be image or file, not {:?}", m.value.kind),
                    hint: None,
                });
            }
        }
    }

    /// Fills default appkeys and checks every reference between fixtures.
    fn resolve_fixtures(&mut self, text: &str, file: &str, fx: &mut Fixtures) {
        let users = self.resolve_users(text, file, fx);
        let fu = check::FixtureUsers { users, text, file };
        self.check_fixture_users(&fu, fx);
    }

    /// Fills the default app and every user's app; users are unique and in a known app.
    fn resolve_users(
        &mut self,
        text: &str,
        file: &str,
        fx: &mut Fixtures,
    ) -> BTreeSet<(String, String)> {
        if fx.apps.is_empty() {
            fx.apps.push(AppConfig {
                appkey: config::DEFAULT_APPKEY.into(),
                secret: config::DEFAULT_SECRET.into(),
                name: "jmessage-mock default app".into(),
                cross_app: None,
                max_users: None,
            });
        }
        let first = fx.apps[0].appkey.clone();
        let apps: BTreeSet<String> = fx.apps.iter().map(|a| a.appkey.clone()).collect();
        let mut users: BTreeSet<(String, String)> = BTreeSet::new();
        for u in &mut fx.users {
            if u.value.appkey.is_empty() {
                u.value.appkey = first.clone();
            }
            if !apps.contains(&u.value.appkey) {
                self.error_at(
                    text,
                    file,
                    &u.referenced,
                    &u.value.appkey,
                    format!(
                        "user {} is in app {}, which no fixture defines",
                        u.value.username, u.value.appkey
                    ),
                    suggest(&u.value.appkey, apps.iter().map(String::as_str)),
                );
            }
            if !users.insert((u.value.appkey.clone(), u.value.username.clone())) {
                self.error_at(
                    text,
                    file,
                    &u.referenced,
                    &u.value.username,
                    format!("user {} is defined twice", u.value.username),
                    None,
                );
            }
        }
        users
    }

    /// Fills each fixture's app (default: the first) and checks the users it names.
    fn check_fixture_users(&mut self, fu: &check::FixtureUsers, fx: &mut Fixtures) {
        let first = fx.apps[0].appkey.clone();
        for g in &mut fx.groups {
            fill_app(&mut g.value.appkey, &first);
            let v = &g.value;
            for n in std::iter::once(&v.owner)
                .chain(&v.admins)
                .chain(&v.members)
                .chain(&v.silenced)
            {
                fu.check(
                    &mut self.errors,
                    &g.referenced,
                    &v.appkey,
                    n,
                    &format!("group {:?}", v.name),
                );
            }
        }
        for r in &mut fx.rooms {
            if r.appkey.is_empty() {
                r.appkey = first.clone();
            }
        }
        for f in &mut fx.friends {
            fill_app(&mut f.value.appkey, &first);
            for n in &f.value.users {
                fu.check(
                    &mut self.errors,
                    &f.referenced,
                    &f.value.appkey,
                    n,
                    "friendship",
                );
            }
        }
        for b in &mut fx.blacklists {
            fill_app(&mut b.value.appkey, &first);
            let v = b.value.clone();
            for n in std::iter::once(&v.user).chain(&v.blocks) {
                fu.check(&mut self.errors, &b.referenced, &v.appkey, n, "blacklist");
            }
        }
        // Deliberately alike (media and messages): each kind names its users in its own
        // fields, and a message names up to two more below.
        for m in &mut fx.media {
            fill_app(&mut m.value.appkey, &first);
            let v = m.value.clone();
            fu.check(
                &mut self.errors,
                &m.referenced,
                &v.appkey,
                &v.owner,
                "media",
            );
        }
        for m in &mut fx.messages {
            fill_app(&mut m.value.appkey, &first);
            let v = m.value.clone();
            fu.check(
                &mut self.errors,
                &m.referenced,
                &v.appkey,
                &v.from,
                "message",
            );
            match (&v.to, v.group) {
                (Some(to), None) => {
                    fu.check(&mut self.errors, &m.referenced, &v.appkey, to, "message")
                }
                (None, Some(_)) => {}
                _ => self.errors.push(diag(
                    fu.file,
                    &m.referenced,
                    "a message needs exactly one of `to` and `group`",
                    None,
                )),
            }
        }
    }

    fn check_scenario(
        &mut self,
        text: &str,
        file: &str,
        sf: ScenarioFile,
        mut fx: Fixtures,
    ) -> Scenario {
        if sf.demo_data {
            check::add_demo_data(&mut fx);
        }
        self.resolve_fixtures(text, file, &mut fx);
        let mut usernames: BTreeSet<String> =
            fx.users.iter().map(|u| u.value.username.clone()).collect();
        for s in &sf.steps {
            if let Step::Register { username, .. } = &s.value {
                usernames.insert(username.clone());
            }
        }
        let events: Vec<&str> = Event::ALL
            .iter()
            .map(|e| e.wire())
            .chain(PUSH_EVENTS.iter().copied())
            .collect();
        let mut names = check::Names {
            text,
            file,
            usernames,
            events,
            fault_ids: BTreeSet::new(),
        };
        self.check_faults(&mut names, &sf.faults);
        self.check_steps(&names, &sf.steps);
        self.check_expectations(&names, &sf.expect);
        self.check_settings(file, &sf);
        Scenario {
            id: sf.id,
            name: sf.name,
            description: sf.description,
            spec: sf.spec,
            file: file.to_owned(),
            seeds: Seeds {
                apps: fx.apps,
                users: fx.users.into_iter().map(|u| u.value).collect(),
                groups: fx.groups.into_iter().map(|g| g.value).collect(),
                rooms: fx.rooms,
                friends: fx.friends.into_iter().map(|f| f.value).collect(),
                blacklists: fx.blacklists.into_iter().map(|b| b.value).collect(),
                media: fx.media.into_iter().map(|m| m.value).collect(),
                messages: fx.messages.into_iter().map(|m| m.value).collect(),
            },
            fault_specs: sf.faults.into_iter().map(|f| f.value).collect(),
            time_scale: sf.time_scale.unwrap_or(1.0),
            breaks: sf.breaks,
            informational: sf.informational,
            steps: sf.steps.into_iter().map(|s| s.value).collect(),
            expect: sf.expect.into_iter().map(|e| e.value).collect(),
        }
    }
}

/// Every `.yaml`/`.yml` file under `path`, or `path` itself when it is a file.
pub fn collect_files(path: &Path) -> std::io::Result<Vec<PathBuf>> {
    if path.is_dir() {
        let mut out = Vec::new();
        collect_dir(path, &mut out)?;
        Ok(out)
    } else if path.exists() {
        Ok(vec![path.to_path_buf()])
    } else {
        Err(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            "no such file or directory",
        ))
    }
}

fn collect_dir(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)?.collect::<Result<_, _>>()?;
    entries.sort_by_key(|e| e.path());
    for e in entries {
        let p = e.path();
        if p.is_dir() {
            collect_dir(&p, out)?;
        } else if p.extension().is_some_and(|x| x == "yaml" || x == "yml")
            && !is_known_differences_file(&p)
        {
            out.push(p);
        }
    }
    Ok(())
}

/// Whether a file is an allowlist of known transcript differences
/// (`*known-differences.yaml`, e.g. `scenarios/conformance/builtin-known-differences.yaml`),
/// which lives among scenarios but is not one: directory walks skip it.
pub fn is_known_differences_file(path: &Path) -> bool {
    path.file_stem()
        .and_then(|s| s.to_str())
        .is_some_and(|s| s.ends_with("known-differences"))
}

/// Whether a file is a fixture file (it lives in a `fixtures` directory).
pub fn is_fixture_file(path: &Path) -> bool {
    path.components().any(|c| c.as_os_str() == "fixtures")
}

/// An empty fixture appkey means the first app's.
fn fill_app(appkey: &mut String, first: &str) {
    if appkey.is_empty() {
        *appkey = first.to_owned();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errors(text: &str) -> Vec<Diagnostic> {
        parse(text, "t.yaml").expect_err("should fail")
    }

    #[test]
    fn a_valid_scenario_loads() {
        let sc = parse(
            "name: ok\nfixtures:\n  users:\n    - {username: alice, password: pw}\n    - {username: bobby, password: pw}\nfaults:\n  - id: drop-ack\n    when: {direction: out, kind: ack, event: [s_across_single_text], user: alice}\n    action: drop\n    nth: [1]\nsteps:\n  - connect: {client: a}\n  - init: {client: a}\n  - login: {client: a, username: alice, password: pw}\n  - send_text: {client: a, to: bobby, text: hi}\n  - fault_off: drop-ack\n  - advance_clock: 600000\nexpect:\n  - count: {dir: in, event: s_across_single_text, equals: 2}\n  - messages_stored: 1\n",
            "t.yaml",
        )
        .expect("valid");
        assert_eq!(sc.seeds.users.len(), 2);
        assert_eq!(sc.seeds.users[0].appkey, config::DEFAULT_APPKEY);
        assert_eq!(sc.fault_specs.len(), 1);
        assert_eq!(sc.steps.len(), 6);
        assert_eq!(sc.expect.len(), 2);
    }

    #[test]
    fn unknown_keys_and_wrong_types_have_positions() {
        let e = errors("name: x\nfaults:\n  - id: a\n    action: drop\n    whne: {}\n");
        assert_eq!((e[0].line, e[0].file.as_str()), (5, "t.yaml"), "{e:?}");
        assert!(e[0].message.contains("whne"), "{}", e[0]);
        let e = errors("name: x\nfaults:\n  - id: a\n    action: drop\n    times: many\n");
        assert_eq!(e[0].line, 5, "{e:?}");
    }

    #[test]
    fn bad_references_point_at_the_value() {
        let e = errors("name: x\nfixtures:\n  users:\n    - {username: alice, password: pw}\nfaults:\n  - id: f\n    when:\n      user: alcie\n    action: drop\n");
        assert_eq!(e.len(), 1, "{e:?}");
        assert_eq!((e[0].line, e[0].column), (8, 13));
        assert_eq!(e[0].hint.as_deref(), Some("did you mean \"alice\"?"));
        let e = errors("name: x\nfaults:\n  - id: f\n    when: {event: [s_acros_single_text]}\n    action: drop\nsteps:\n  - fault_on: g\n  - init: {client: nobody}\n");
        assert_eq!(e.len(), 3, "{e:?}");
        assert_eq!(e[0].line, 4);
        assert!(e[0]
            .hint
            .as_deref()
            .is_some_and(|h| h.contains("s_across_single_text")));
        assert_eq!((e[1].line, e[1].column), (7, 15));
        assert_eq!(e[2].line, 8);
    }

    #[test]
    fn fixtures_are_cross_checked() {
        let e = errors("name: x\nfixtures:\n  users:\n    - {username: alice, password: pw}\n  groups:\n    - {name: g, owner: alice, members: [bobby]}\n  messages:\n    - {from: alice, text: hi}\n");
        assert_eq!(e.len(), 2, "{e:?}");
        assert_eq!(e[0].line, 6);
        assert!(e[0].message.contains("bobby"));
        assert!(e[1].message.contains("exactly one"));
    }

    #[test]
    fn duplicate_fault_ids_and_bad_values() {
        let e = errors("name: x\nfaults:\n  - {id: a, action: drop}\n  - {id: a, action: drop, probability: 2}\n");
        assert_eq!(e.len(), 2, "{e:?}");
        assert!(e.iter().any(|d| d.message.contains("twice") && d.line == 4));
        assert!(e.iter().any(|d| d.message.contains("probability")));
    }

    #[test]
    fn suggestions() {
        assert_eq!(distance("kitten", "sitting"), 3);
        assert_eq!(
            suggest("alcie", ["alice", "bobby"]).as_deref(),
            Some("did you mean \"alice\"?")
        );
        assert_eq!(
            suggest("zzzzzzzz", ["alice", "bobby"]).as_deref(),
            Some("known: alice, bobby")
        );
    }
}

#[cfg(test)]
mod more_tests {
    use super::*;

    #[test]
    fn media_files_and_includes_resolve_relative_to_their_file() {
        let dir = std::env::temp_dir().join(format!("jmm-media-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("fx")).unwrap();
        std::fs::write(dir.join("fx/hello.txt"), "hi").unwrap();
        std::fs::write(
            dir.join("fx/users.yaml"),
            "users: [{username: alice, password: pw}]\n",
        )
        .unwrap();
        std::fs::write(
            dir.join("case.yaml"),
            "name: m\nfixtures:\n  include: [fx/users.yaml]\n  media:\n    - {owner: alice, file: fx/hello.txt, id: m1}\n",
        )
        .unwrap();
        let sc = load(&dir.join("case.yaml")).expect("loads");
        assert_eq!(sc.seeds.users.len(), 1);
        assert_eq!(sc.seeds.media[0].base64.as_deref(), Some("aGk="));
        std::fs::write(
            dir.join("bad.yaml"),
            "name: m\nfixtures:\n  users: [{username: alice, password: pw}]\n  media:\n    - {owner: alice, file: nope.txt}\n",
        )
        .unwrap();
        let e = load(&dir.join("bad.yaml")).expect_err("missing file");
        assert!(
            e[0].message.contains("cannot read media file nope.txt"),
            "{e:?}"
        );
        assert_eq!(e[0].line, 5);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn misspelt_keys_in_steps_and_expectations_are_errors() {
        for bad in [
            "name: x\nsteps:\n  - connect: {client: a, transprt: polling}\n",
            "name: x\nexpect:\n  - count: {evnt: login, equals: 1}\n",
            "name: x\nexpect:\n  - same_rid: {evnt: login}\n",
            "name: x\nfaults:\n  - {id: r, action: {restart: {down: 5}}}\n",
        ] {
            let e = parse(bad, "t.yaml").expect_err(bad);
            assert!(e[0].line >= 2, "{bad}: {e:?}");
        }
    }

    #[test]
    fn as_device_steps_are_checked_with_positions() {
        let head = "name: x\nfixtures:\n  users:\n    - {username: alice, password: pw}\nsteps:\n";
        let ok = format!("{head}  - as_device: {{user: alice, event: update_user_inf, payload: {{nickname: A}}}}\n  - as_device: {{user: alice, platform: ios, event: del_friend, payload: {{target_name: x}}, expect: {{code: 881303}}}}\n");
        let sc = parse(&ok, "t.yaml").expect("valid as_device steps");
        assert!(matches!(
            &sc.steps[0],
            Step::AsDevice { platform, .. } if platform == "android"
        ));
        let e = parse(
            &format!("{head}  - as_device: {{user: alcie, event: update_user_inf}}\n"),
            "t.yaml",
        )
        .expect_err("unknown user");
        assert_eq!(e.len(), 1, "{e:?}");
        assert_eq!((e[0].line, e[0].column), (6, 23), "{e:?}");
        assert!(e[0].message.contains("\"alcie\""), "{e:?}");
        assert_eq!(e[0].hint.as_deref(), Some("did you mean \"alice\"?"));
        let e = parse(
            &format!("{head}  - as_device: {{user: alice, platform: symbian, event: msg_sync, expect: ack_timeout}}\n"),
            "t.yaml",
        )
        .expect_err("bad platform, event and expect");
        assert_eq!(e.len(), 3, "{e:?}");
        assert!(e[0].message.contains("symbian"), "{e:?}");
        assert!(e[1].message.contains("is a push, not a request"), "{e:?}");
        assert!(e[2].message.contains("response code"), "{e:?}");
        assert!(e.iter().all(|d| d.line == 6), "{e:?}");
    }

    #[test]
    fn a_refused_connect_leaves_no_client() {
        let e = parse(
            "name: x\nsteps:\n  - connect: {client: a, refused: true}\n  - init: {client: a}\n",
            "t.yaml",
        )
        .expect_err("a is not connected");
        assert!(e[0].message.contains("before a connect"), "{e:?}");
    }
}
