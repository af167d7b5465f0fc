//! Which files a scenario may read: its `include:` fixture files and fixture media
//! `file:` entries. On the command line (`run`, `check`, `serve --scenario`) a scenario
//! reads files relative to the file that names them. A scenario posted to the admin API
//! reads none, or, when `serve --admin-files-root DIR` is given, only regular files
//! inside DIR (after following symlinks), named by relative paths without `..`.

use std::path::{Component, Path, PathBuf};

/// Include files nested deeper than this are refused (a guard against include chains
/// that never end, e.g. through `a/../a.yaml`).
pub const MAX_INCLUDE_DEPTH: usize = 16;

/// Where a scenario may read files from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum FileAccess {
    /// Anywhere, relative to the file that names them (the command line).
    #[default]
    Local,
    /// Nowhere (a scenario posted to the admin API without `--admin-files-root`).
    Denied,
    /// Only inside this directory, which must be canonical (see [`FileAccess::under`]).
    Under(PathBuf),
}

/// Why a path may not be read: a message and a hint. Never any file content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    pub message: String,
    pub hint: String,
}

impl FileAccess {
    /// Access limited to `root`, canonicalized (so symlinks in it are followed once, here).
    pub fn under(root: &Path) -> std::io::Result<Self> {
        let root = root.canonicalize()?;
        if !root.is_dir() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "not a directory",
            ));
        }
        Ok(Self::Under(root))
    }

    /// Whether this is the command line's unrestricted access.
    pub fn is_local(&self) -> bool {
        matches!(self, Self::Local)
    }

    /// The path to read for `rel`, named by a file in `dir` (`None`: the scenario body,
    /// whose files resolve from the working directory, or from the root under a root).
    /// `what` names the reference in messages (`include`, `media file`).
    pub fn resolve(&self, dir: Option<&Path>, rel: &str, what: &str) -> Result<PathBuf, Refused> {
        match self {
            Self::Local => Ok(dir.map(|d| d.join(rel)).unwrap_or_else(|| PathBuf::from(rel))),
            Self::Denied => Err(Refused {
                message: format!(
                    "{what} {rel:?} refused: a scenario loaded over the admin API may not read files"
                ),
                hint: "put the data in the scenario itself (fixtures inline, media as text or \
                       base64), or start serve with --admin-files-root DIR to allow files under DIR"
                    .into(),
            }),
            Self::Under(root) => resolve_under(root, dir, rel, what),
        }
    }
}

fn resolve_under(
    root: &Path,
    dir: Option<&Path>,
    rel: &str,
    what: &str,
) -> Result<PathBuf, Refused> {
    let hint = format!(
        "paths are relative to the files root {} (--admin-files-root), without `..`",
        root.display()
    );
    let refuse = |message: String| Refused {
        message,
        hint: hint.clone(),
    };
    let p = Path::new(rel);
    let lexical_ok = !rel.is_empty()
        && p.components()
            .all(|c| matches!(c, Component::Normal(_) | Component::CurDir));
    if !lexical_ok {
        return Err(refuse(format!(
            "{what} {rel:?} refused: only relative paths without `..` are allowed under the files root"
        )));
    }
    let base = dir.filter(|d| d.starts_with(root)).unwrap_or(root);
    let Ok(path) = base.join(p).canonicalize() else {
        return Err(refuse(format!(
            "{what} {rel:?}: no such file under the files root"
        )));
    };
    if !path.starts_with(root) {
        return Err(refuse(format!(
            "{what} {rel:?} refused: it resolves outside the files root"
        )));
    }
    if !path.is_file() {
        return Err(refuse(format!("{what} {rel:?} is not a regular file")));
    }
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn denied_reads_nothing_and_local_joins() {
        let e = FileAccess::Denied
            .resolve(None, "/etc/passwd", "include")
            .expect_err("denied");
        assert!(e.message.contains("may not read files"), "{e:?}");
        assert_eq!(
            FileAccess::Local.resolve(Some(Path::new("a")), "b.yaml", "include"),
            Ok(PathBuf::from("a/b.yaml"))
        );
    }

    #[test]
    fn under_a_root_only_relative_paths_inside_it() {
        let dir = std::env::temp_dir().join(format!("jmm-files-{}", std::process::id()));
        let root = dir.join("root");
        std::fs::create_dir_all(root.join("sub")).expect("mkdir");
        std::fs::write(root.join("sub/in.txt"), "in").expect("write");
        std::fs::write(dir.join("out.txt"), "secret").expect("write");
        let access = FileAccess::under(&root).expect("root");
        let ok = access
            .resolve(None, "sub/in.txt", "media file")
            .expect("inside");
        assert!(ok.ends_with("sub/in.txt"));
        let nested = access
            .resolve(ok.parent(), "./in.txt", "media file")
            .expect("relative to the naming file");
        assert_eq!(nested, ok);
        for bad in [
            "../out.txt",
            "sub/../../out.txt",
            "/etc/passwd",
            "",
            "sub",
            "nope.txt",
        ] {
            let e = access.resolve(None, bad, "include").expect_err(bad);
            assert!(!e.message.contains("secret"), "{e:?}");
        }
        #[cfg(unix)]
        {
            std::os::unix::fs::symlink(dir.join("out.txt"), root.join("link.txt")).expect("link");
            let e = access
                .resolve(None, "link.txt", "include")
                .expect_err("symlink out");
            assert!(e.message.contains("outside the files root"), "{e:?}");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
