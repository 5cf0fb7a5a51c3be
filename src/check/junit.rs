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
