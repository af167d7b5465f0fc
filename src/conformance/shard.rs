//! Splitting a run over CI machines and joining the results again.
//!
//! `run --partition K/N` (or `hash:K/N`, nextest's spelling) keeps the cases whose key
//! hashes to shard K of N. The key is the case id (`JMC-2.2-001`), or its file when it
//! has none; the hash is FNV-1a 64 of those bytes, fixed here, so a case stays in its shard
//! on every machine, run and Rust version, and adding a case never moves the others.
//!
//! `run --results FILE` writes a shard's graded cells as JSON ([`Results`]);
//! `report merge` reads several and writes the JUnit, HTML and Markdown reports of the
//! whole, as one unsharded run would have.

use super::matrix::Cell;
use serde::{Deserialize, Serialize};

/// One shard of N (`index` is 1-based, as on the command line).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Partition {
    pub index: u64,
    pub count: u64,
}

/// Why a `--partition` value was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PartitionError {
    #[error("--partition {0:?}: expected K/N (or hash:K/N) with 1 <= K <= N, e.g. 2/4")]
    Syntax(String),
}

impl std::str::FromStr for Partition {
    type Err = PartitionError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let bad = || PartitionError::Syntax(text.to_owned());
        let spec = text.strip_prefix("hash:").unwrap_or(text);
        let (k, n) = spec.split_once('/').ok_or_else(bad)?;
        let index: u64 = k.trim().parse().map_err(|_| bad())?;
        let count: u64 = n.trim().parse().map_err(|_| bad())?;
        if index == 0 || count == 0 || index > count {
            return Err(bad());
        }
        Ok(Partition { index, count })
    }
}

impl Partition {
    /// Whether the case with this key belongs to this shard.
    pub fn includes(&self, key: &str) -> bool {
        fnv1a(key.as_bytes()) % self.count == self.index - 1
    }
}

/// The key a case is sharded by: its id, or its file when it has none.
pub fn case_key<'a>(id: Option<&'a str>, file: &'a str) -> &'a str {
    id.unwrap_or(file)
}

/// FNV-1a, 64 bits.
fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// What `run --results` writes: the clients in order and every graded cell.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Results {
    /// The format of this file; readers refuse another.
    pub format: u32,
    pub clients: Vec<String>,
    pub cells: Vec<Cell>,
}

/// The current [`Results::format`].
pub const RESULTS_FORMAT: u32 = 1;

/// Why results could not be read or merged.
#[derive(Debug, thiserror::Error)]
pub enum ResultsError {
    #[error("{name}: not a results file of `run --results`: {source}")]
    Parse {
        name: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("{name}: results format {found}, this build reads {RESULTS_FORMAT}")]
    Format { name: String, found: u32 },
}

impl Results {
    /// Reads one results file (`name` is used in errors).
    pub fn parse(name: &str, text: &str) -> Result<Results, ResultsError> {
        let r: Results = serde_json::from_str(text).map_err(|source| ResultsError::Parse {
            name: name.to_owned(),
            source,
        })?;
        if r.format != RESULTS_FORMAT {
            return Err(ResultsError::Format {
                name: name.to_owned(),
                found: r.format,
            });
        }
        Ok(r)
    }

    /// Joins shards: clients in order of first appearance, cells in input order.
    pub fn merge(parts: Vec<Results>) -> Results {
        let mut all = Results {
            format: RESULTS_FORMAT,
            ..Results::default()
        };
        for part in parts {
            for c in part.clients {
                if !all.clients.contains(&c) {
                    all.clients.push(c);
                }
            }
            all.cells.extend(part.cells);
        }
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_refuses() {
        let p: Partition = "2/3".parse().expect("valid");
        assert_eq!(p, Partition { index: 2, count: 3 });
        assert_eq!(
            "hash:1/1".parse::<Partition>(),
            Ok(Partition { index: 1, count: 1 })
        );
        for bad in ["0/2", "3/2", "1/0", "x/2", "1", "", "1/2/3", "-1/2"] {
            assert!(bad.parse::<Partition>().is_err(), "{bad}");
        }
    }

    #[test]
    fn every_key_is_in_exactly_one_shard_and_stays_there() {
        let keys: Vec<String> = (0..200).map(|i| format!("JMC-{i}")).collect();
        for n in 1..=5u64 {
            let mut sizes = vec![0; n as usize];
            for k in &keys {
                let owners: Vec<u64> = (1..=n)
                    .filter(|i| {
                        Partition {
                            index: *i,
                            count: n,
                        }
                        .includes(k)
                    })
                    .collect();
                assert_eq!(owners.len(), 1, "{k} in {owners:?} of {n}");
                sizes[owners[0] as usize - 1] += 1;
            }
            assert!(sizes.iter().all(|s| *s > 0), "{n}: {sizes:?}");
        }
        // Fixed hash: the split is the same on every machine and release.
        assert_eq!(fnv1a(b"JMC-2.2-001"), fnv1a(b"JMC-2.2-001"));
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
    }
}
