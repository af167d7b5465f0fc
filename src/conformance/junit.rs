//! The JUnit XML report of a run, written and read with `quick-junit` (the crate
//! cargo-nextest uses), so every name, message and payload is escaped by the writer and
//! characters XML cannot hold are dropped. `merge` joins the reports of CI shards
//! (`run --partition K/N`) into one: suites of the same client become one suite.

use super::{Report, Verdict};
use quick_junit::{NonSuccessKind, Report as Junit, TestCase, TestCaseStatus, TestSuite};
use std::time::Duration;

/// Why reports could not be written or merged.
#[derive(Debug, thiserror::Error)]
pub enum JunitError {
    /// The writer refused (it only fails on I/O, which a `String` never does).
    #[error("cannot write the JUnit report: {0}")]
    Write(#[from] quick_junit::SerializeError),
    /// One input of a merge is not a JUnit report.
    #[error("{name}: not a JUnit XML report: {source}")]
    Read {
        name: String,
        #[source]
        source: quick_junit::DeserializeError,
    },
}

/// The name of the `testsuites` element.
const REPORT_NAME: &str = "jmessage-mock";

/// A JUnit XML report: one `testsuite` per client (in order of first appearance), one
/// `testcase` per scenario. FAIL is a `failure`; UNIMPL, INFO and EXCL are `skipped` with
/// the verdict and reason; NON-STRICT passes and keeps the tolerated difference in
/// `system-out`.
pub fn junit(results: &[(&Report, Verdict)]) -> Result<String, JunitError> {
    let mut suites: Vec<TestSuite> = Vec::new();
    for (r, verdict) in results {
        let at = match suites.iter().position(|s| s.name.as_str() == r.client) {
            Some(at) => at,
            None => {
                suites.push(TestSuite::new(r.client.as_str()));
                suites.len() - 1
            }
        };
        let suite = &mut suites[at];
        suite.time = Some(suite.time.unwrap_or_default() + r.elapsed);
        suite.add_test_case(case(r, *verdict));
    }
    let mut report = Junit::new(REPORT_NAME);
    report.add_test_suites(suites);
    Ok(report.to_string()?)
}

fn case(r: &Report, verdict: Verdict) -> TestCase {
    let name = match &r.id {
        Some(id) => format!("{id} {}", r.name),
        None => r.name.clone(),
    };
    let why = r.failure().unwrap_or_default();
    let status = match verdict {
        Verdict::Pass | Verdict::NonStrict => TestCaseStatus::success(),
        Verdict::Fail => {
            let mut s = TestCaseStatus::non_success(NonSuccessKind::Failure);
            s.set_message(why.as_str());
            s
        }
        v => {
            let mut s = TestCaseStatus::skipped();
            s.set_message(format!("{}: {why}", v.label()));
            s
        }
    };
    let mut case = TestCase::new(name, status);
    case.set_classname(r.file.as_str()).set_time(r.elapsed);
    if verdict == Verdict::NonStrict {
        case.set_system_out(format!("NON-STRICT: {why}"));
    }
    case
}

/// Merges JUnit reports (`(name for errors, XML)`) into one: suites with the same name
/// are joined in order of first appearance, their cases kept in input order, and the
/// counts and times summed again.
pub fn merge(inputs: &[(String, String)]) -> Result<String, JunitError> {
    let mut suites: Vec<TestSuite> = Vec::new();
    for (name, xml) in inputs {
        let report = Junit::deserialize_from_str(xml).map_err(|source| JunitError::Read {
            name: name.clone(),
            source,
        })?;
        for suite in report.test_suites {
            let at = match suites.iter().position(|s| s.name == suite.name) {
                Some(at) => at,
                None => {
                    suites.push(TestSuite::new(suite.name.clone()));
                    suites.len() - 1
                }
            };
            let into = &mut suites[at];
            into.time = Some(into.time.unwrap_or_default() + suite.time.unwrap_or_default());
            into.add_test_cases(suite.test_cases);
        }
    }
    let mut report = Junit::new(REPORT_NAME);
    let total: Duration = suites.iter().filter_map(|s| s.time).sum();
    report.add_test_suites(suites);
    report.set_time(total);
    Ok(report.to_string()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conformance::Check;

    fn report(name: &str, ok: bool, client: &str, detail: &str) -> Report {
        Report {
            name: name.into(),
            id: Some("JMC-1".into()),
            file: "s.yaml".into(),
            checks: vec![Check::new("x", ok, detail)],
            elapsed: Duration::from_millis(5),
            error: None,
            client: client.into(),
            transcript: String::new(),
            identity: Default::default(),
        }
    }

    #[test]
    fn counts_and_verdicts() {
        let (pass, fail, tolerated, unimpl) = (
            report("a", true, "builtin", ""),
            report("b", false, "builtin", "\"bad\" & worse"),
            report("c", false, "builtin", "\"bad\" & worse"),
            report("d", false, "sdk", "lacks"),
        );
        let xml = junit(&[
            (&pass, Verdict::Pass),
            (&fail, Verdict::Fail),
            (&tolerated, Verdict::NonStrict),
            (&unimpl, Verdict::Unimplemented),
        ])
        .expect("written");
        let back = Junit::deserialize_from_str(&xml).expect("valid JUnit");
        let s = &back.test_suites;
        assert_eq!(
            (s[0].name.as_str(), s[0].tests, s[0].failures, s[0].skipped),
            ("builtin", 3, 1, 0)
        );
        assert_eq!(
            (s[1].name.as_str(), s[1].tests, s[1].failures, s[1].skipped),
            ("sdk", 1, 0, 1)
        );
        assert!(xml.contains("x: &quot;bad&quot; &amp; worse"), "{xml}");
        assert!(xml.contains("NON-STRICT: x: &quot;bad&quot;"), "{xml}");
        assert!(
            xml.contains("<skipped message=\"UNIMPL: x: lacks\""),
            "{xml}"
        );
    }

    #[test]
    fn hostile_names_and_payloads_stay_valid_xml() {
        let hostile = "</script><b>]]><!-- \u{1b}[31m\u{0}\"'&";
        let r = report(hostile, false, hostile, hostile);
        let xml = junit(&[(&r, Verdict::Fail)]).expect("written");
        assert!(!xml.contains("<b>"), "{xml}");
        assert!(!xml.contains('\u{0}') && !xml.contains('\u{1b}'), "{xml}");
        let back = Junit::deserialize_from_str(&xml).expect("valid XML");
        let case = &back.test_suites[0].test_cases[0];
        assert!(case.name.as_str().contains("</script><b>]]><!--"), "{xml}");
        insta::assert_snapshot!(xml);
    }

    #[test]
    fn merge_joins_suites_and_recounts() {
        let a = report("a", true, "builtin", "");
        let b = report("b", false, "builtin", "no");
        let c = report("c", false, "sdk", "no");
        let one = junit(&[(&a, Verdict::Pass), (&c, Verdict::Fail)]).expect("one");
        let two = junit(&[(&b, Verdict::Fail)]).expect("two");
        let merged = merge(&[("1.xml".into(), one), ("2.xml".into(), two)]).expect("merged");
        let back = Junit::deserialize_from_str(&merged).expect("valid");
        assert_eq!((back.tests, back.failures), (3, 2));
        let names: Vec<(&str, usize)> = back
            .test_suites
            .iter()
            .map(|s| (s.name.as_str(), s.tests))
            .collect();
        assert_eq!(names, [("builtin", 2), ("sdk", 1)]);
        let err = merge(&[("bad.xml".into(), "<html>".into())]).expect_err("not junit");
        assert!(
            err.to_string()
                .starts_with("bad.xml: not a JUnit XML report"),
            "{err}"
        );
    }
}
