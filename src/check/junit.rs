//! The JUnit XML report CI systems show (GitHub Actions, GitLab, Jenkins):
//! one testsuite per snapshot, one testcase per rule, a failure with the
//! rule's message; written by `quick-junit`, not by string concatenation.

use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus, TestSuite};

use super::rules::RuleResult;

/// The report for `(snapshot name, rule results)` pairs.
pub fn report(runs: &[(String, Vec<RuleResult>)]) -> Result<String, quick_junit::SerializeError> {
    let mut report = Report::new("etcdsnap check");
    for (snapshot, results) in runs {
        let mut suite = TestSuite::new(snapshot.as_str());
        for r in results {
            let status = if r.passed {
                TestCaseStatus::success()
            } else {
                let mut s = TestCaseStatus::non_success(NonSuccessKind::Failure);
                s.set_message(r.message.as_str());
                s.set_type(r.rule.split(' ').next().unwrap_or_default());
                s
            };
            let mut case = TestCase::new(r.rule.as_str(), status);
            case.set_classname(snapshot.as_str());
            suite.add_test_case(case);
        }
        report.add_test_suite(suite);
    }
    report.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rr(rule: &str, passed: bool, message: &str) -> RuleResult {
        RuleResult {
            rule: rule.into(),
            passed,
            message: message.into(),
        }
    }

    /// The exact bytes CI systems read: the declaration, attribute order,
    /// indentation and escaping (of names and messages from files) are pinned.
    #[test]
    fn report_bytes_are_pinned() {
        let runs = vec![
            (
                "/backups/a.db".to_string(),
                vec![
                    rr("verify", true, "ok"),
                    rr("requiredNamespaces kube-system", true, "present"),
                ],
            ),
            (
                "/backups/<b & \"c\">'d'.db".to_string(),
                vec![
                    rr(
                        "verify",
                        false,
                        "page 7 at offset 28672: truncated <&>\"'\ttab",
                    ),
                    rr("minObjects nodes", false, "1 < 3 nodes"),
                    rr("maxAge", true, ""),
                    rr(
                        "requiredObjects a",
                        false,
                        "two\nlines, \u{1b}[31mred\u{1b}[0m, \u{1}, é, \r",
                    ),
                ],
            ),
            ("/backups/empty.db".to_string(), vec![]),
        ];
        let got = report(&runs).unwrap();
        assert_eq!(
            got,
            concat!(
                r#"<?xml version="1.0" encoding="UTF-8"?>"#,
                "\n",
                r#"<testsuites name="etcdsnap check" tests="6" skipped="0" failures="3" errors="0">"#,
                "\n",
                r#"    <testsuite name="/backups/a.db" tests="2" skipped="0" errors="0" failures="0">"#,
                "\n",
                r#"        <testcase name="verify" classname="/backups/a.db"/>"#,
                "\n",
                r#"        <testcase name="requiredNamespaces kube-system" classname="/backups/a.db"/>"#,
                "\n",
                r#"    </testsuite>"#,
                "\n",
                r#"    <testsuite name="/backups/&lt;b &amp; &quot;c&quot;&gt;&apos;d&apos;.db" tests="4" skipped="0" errors="0" failures="3">"#,
                "\n",
                r#"        <testcase name="verify" classname="/backups/&lt;b &amp; &quot;c&quot;&gt;&apos;d&apos;.db">"#,
                "\n",
                r#"            <failure message="page 7 at offset 28672: truncated &lt;&amp;&gt;&quot;&apos;tab" type="verify"/>"#,
                "\n",
                r#"        </testcase>"#,
                "\n",
                r#"        <testcase name="minObjects nodes" classname="/backups/&lt;b &amp; &quot;c&quot;&gt;&apos;d&apos;.db">"#,
                "\n",
                r#"            <failure message="1 &lt; 3 nodes" type="minObjects"/>"#,
                "\n",
                r#"        </testcase>"#,
                "\n",
                r#"        <testcase name="maxAge" classname="/backups/&lt;b &amp; &quot;c&quot;&gt;&apos;d&apos;.db"/>"#,
                "\n",
                r#"        <testcase name="requiredObjects a" classname="/backups/&lt;b &amp; &quot;c&quot;&gt;&apos;d&apos;.db">"#,
                "\n",
                r#"            <failure message="two"#,
                "\n",
                r#"lines, red, , é, " type="requiredObjects"/>"#,
                "\n",
                r#"        </testcase>"#,
                "\n",
                r#"    </testsuite>"#,
                "\n",
                r#"    <testsuite name="/backups/empty.db" tests="0" skipped="0" errors="0" failures="0"/>"#,
                "\n",
                r#"</testsuites>"#,
                "\n",
            )
        );
    }
}
